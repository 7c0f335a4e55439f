//! The pairing decisions, made by polars over narrow frames (ids, hashes, scores and
//! lengths; no image bytes): which image rows pair with which rationale rows, and why
//! every other row on either side was set aside.
//!
//! In order: a repeated id on either side keeps its first row (`duplicate_id`); images
//! without a rationale (`no_rationale`) and rationales without an image (`no_image`)
//! are set aside; the pairs then pass the length filters (`rationale_too_short`,
//! `rationale_too_long`), the aesthetic filter where there is a score
//! (`low_aesthetic`), and the deduplication by image SHA-256 (`duplicate_image`) and
//! by normalised rationale text (`duplicate_rationale`), each keeping the first pair
//! in image-table order. Filters come before deduplication, so that a duplicate that
//! passes them is not lost to an earlier copy that does not.

use polars::prelude::*;

/// The rules of pairing (from the stage's config).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Rules {
    pub dedup_images: bool,
    pub dedup_rationales: bool,
    pub min_tokens: Option<u32>,
    pub max_tokens: Option<u32>,
    pub min_aesthetic: Option<f64>,
}

/// What pairing decided. Reject frames have the columns of the reject table.
pub(crate) struct Decisions {
    /// (image row, rationale row) of each pair, by position in their tables, in image
    /// order.
    pub pairs: Vec<(u64, u64)>,
    pub unmatched_images: DataFrame,
    pub unmatched_rationales: DataFrame,
    /// Rows set aside for any other reason.
    pub dropped: DataFrame,
}

/// A null text column.
fn no_text() -> Expr {
    lit(NULL).cast(DataType::String)
}

/// The reject-table columns of `frame`'s rows, for `reason`, with `detail`.
fn rejects(frame: LazyFrame, reason: &str, detail: Expr, has_path: bool) -> LazyFrame {
    let (path, source) = if has_path {
        (col("path"), col("source"))
    } else {
        (no_text(), no_text())
    };
    frame.select([
        col("id"),
        lit(reason).alias("reason"),
        detail.alias("detail"),
        path.alias("path"),
        source.alias("source"),
    ])
}

/// Rows whose `key` (when not null) an earlier row (by `order`) already had.
fn repeated(key: &str, order: &str) -> PolarsResult<Expr> {
    let first = col(order).min().over([col(key)])?;
    Ok(col(key).is_not_null().and(col(order).neq(first)))
}

/// Split off the rows where `cond` holds (null counts as false) as rejects for `reason`
/// with `detail`, evaluated before the split.
fn split(
    kept: DataFrame,
    cond: Expr,
    reason: &str,
    detail: Expr,
    dropped: &mut Vec<LazyFrame>,
) -> PolarsResult<DataFrame> {
    let marked = kept
        .lazy()
        .with_columns([
            cond.fill_null(lit(false)).alias("_drop"),
            detail.alias("_detail"),
        ])
        .collect()?;
    let out = marked.clone().lazy().filter(col("_drop"));
    dropped.push(rejects(out, reason, col("_detail"), true));
    marked
        .lazy()
        .filter(col("_drop").not())
        .drop(cols(["_drop", "_detail"]))
        .collect()
}

/// `text` followed by the column `column` as text and `after`.
fn say(text: &str, column: Expr, after: &str) -> Expr {
    concat_str(
        [lit(text), column.cast(DataType::String), lit(after)],
        "",
        false,
    )
}

/// Decide the pairs of `images` (columns `pos`, `id`, `sha`, `aesthetic`, `path`,
/// `source`, in `pos` order) and `rationales` (columns `id`, `rpos`, `tokens`, `norm`).
pub(crate) fn decide(
    images: DataFrame,
    rationales: LazyFrame,
    rules: &Rules,
) -> PolarsResult<Decisions> {
    let images = images.lazy().collect()?;
    let rationales = rationales.collect()?;
    let mut dropped = vec![
        rejects(
            images.clone().lazy().filter(repeated("id", "pos")?),
            "duplicate_id",
            lit("an earlier image row has this id; the first is kept"),
            true,
        ),
        rejects(
            rationales.clone().lazy().filter(repeated("id", "rpos")?),
            "duplicate_id",
            lit("an earlier rationale row has this id; the first is kept"),
            false,
        ),
    ];
    let images = images
        .lazy()
        .filter(repeated("id", "pos")?.not())
        .collect()?;
    let rationales = rationales
        .lazy()
        .filter(repeated("id", "rpos")?.not())
        .collect()?;
    let on = [col("id")];
    let anti = JoinArgs::new(JoinType::Anti);
    let unmatched_images = rejects(
        images.clone().lazy().join(
            rationales.clone().lazy(),
            on.clone(),
            on.clone(),
            anti.clone(),
        ),
        "no_rationale",
        lit("no rationale has this id"),
        true,
    )
    .collect()?;
    let unmatched_rationales = rejects(
        rationales
            .clone()
            .lazy()
            .join(images.clone().lazy(), on.clone(), on.clone(), anti),
        "no_image",
        lit("no image has this id"),
        false,
    )
    .collect()?;
    let mut kept = images
        .lazy()
        .join(
            rationales.lazy(),
            on.clone(),
            on,
            JoinArgs::new(JoinType::Inner),
        )
        .sort(["pos"], SortMultipleOptions::default())
        .collect()?;

    if let Some(min) = rules.min_tokens {
        let detail = say(
            "",
            col("tokens"),
            &format!(" tokens, under min_tokens = {min}"),
        );
        kept = split(
            kept,
            col("tokens").lt(lit(min)),
            "rationale_too_short",
            detail,
            &mut dropped,
        )?;
    }
    if let Some(max) = rules.max_tokens {
        let detail = say(
            "",
            col("tokens"),
            &format!(" tokens, over max_tokens = {max}"),
        );
        kept = split(
            kept,
            col("tokens").gt(lit(max)),
            "rationale_too_long",
            detail,
            &mut dropped,
        )?;
    }
    if let Some(min) = rules.min_aesthetic {
        let detail = say(
            "aesthetic score ",
            col("aesthetic"),
            &format!(", under min_aesthetic = {min}"),
        );
        kept = split(
            kept,
            col("aesthetic").lt(lit(min)),
            "low_aesthetic",
            detail,
            &mut dropped,
        )?;
    }
    if rules.dedup_images {
        let first = col("id").first().over([col("sha")])?;
        let detail = say("the same image (sha256) as `", first, "`");
        kept = split(
            kept,
            repeated("sha", "pos")?,
            "duplicate_image",
            detail,
            &mut dropped,
        )?;
    }
    if rules.dedup_rationales {
        let first = col("id").first().over([col("norm")])?;
        let detail = say("the same rationale (normalised) as `", first, "`");
        kept = split(
            kept,
            repeated("norm", "pos")?,
            "duplicate_rationale",
            detail,
            &mut dropped,
        )?;
    }

    let positions = kept
        .lazy()
        .select([
            col("pos").cast(DataType::UInt64),
            col("rpos").cast(DataType::UInt64),
        ])
        .collect()?;
    let pairs = positions
        .column("pos")?
        .u64()?
        .into_no_null_iter()
        .zip(positions.column("rpos")?.u64()?.into_no_null_iter())
        .collect();
    Ok(Decisions {
        pairs,
        unmatched_images,
        unmatched_rationales,
        dropped: concat(dropped, UnionArgs::default())?.collect()?,
    })
}
