//! `shapes.teacher`: the exact teacher, standing in for the captioning LLM. For each
//! scene it writes the rationale (detailed caption) and the augmented prompts, as a
//! `rationale` table like the LLM tasks write, so that shapes data and real data flow
//! through the same downstream stages. The short caption among the augmented prompts
//! is the scene's own caption (for scenes built from a GenEval-style prompt, that
//! prompt), as ReasonGen-R1's short caption is the image's original caption. The
//! shapes VLM (`builtin:shapes-vlm`) writes the same rationales for
//! `rationale.caption` and `rationale.augment` over HTTP; this stage needs no server.

use datasets::shapes::{Scene, augmented_prompts, detailed_caption, terse_caption};
use datasets::table::{ShardOptions, ShardWriter, TableReader};
use pipeline::{
    Arity, ArtifactKind, ArtifactType, Digest, InputSpec, Output, OutputDecl, Stage, StageContext,
    StageError,
};
use schemars::JsonSchema;
use schemas::rationale::Rationale;
use schemas::source_image::SourceImage;
use schemas::{AugmentedPrompts, Provenance, Row};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Config of `shapes.teacher`: the teacher is exact; only the rationale's style is chosen.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TeacherConfig {
    /// How the rationale is written.
    #[serde(default)]
    pub style: Style,
}

/// The rationale's style.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Style {
    /// As a captioning LLM writes: varied sentences, relations between neighbours, a
    /// closing remark (`A small red square sits in the upper left. …`).
    #[default]
    Detailed,
    /// Each object's place then its noun phrase in one fixed wording, nothing else
    /// (`Top left: a small red square.`): half the tokens, and colour and shape next to
    /// the place they belong to.
    Terse,
}

impl Style {
    fn write(self, scene: &Scene) -> String {
        match self {
            Style::Detailed => detailed_caption(scene),
            Style::Terse => terse_caption(scene),
        }
    }

    /// The template name recorded in provenance.
    fn template(self) -> &'static str {
        match self {
            Style::Detailed => "exact",
            Style::Terse => "exact-terse",
        }
    }
}

pub struct ShapesTeacher;

/// The teacher's version, recorded in provenance like an LLM template's.
const TEMPLATE_VERSION: u32 = 3;

fn rationale(row: &SourceImage, style: Style) -> Result<Rationale, StageError> {
    let meta: serde_json::Value =
        serde_json::from_str(row.metadata.as_deref().unwrap_or("null"))
            .map_err(|e| StageError::msg(format!("row `{}`: metadata: {e}", row.id)))?;
    let scene = Scene::from_json(&meta["scene"])
        .map_err(|e| StageError::msg(format!("row `{}`: {e}", row.id)))?;
    let augmented = augmented_prompts(&scene);
    Ok(Rationale {
        id: row.id.clone(),
        brief_caption: row.caption.clone(),
        detailed_caption: style.write(&scene),
        augmented_prompts: Some(AugmentedPrompts {
            short_caption: row.caption.clone().or(augmented.short_caption),
            ..augmented
        }),
        provenance: vec![Provenance {
            task: "caption".into(),
            model: "shapes-teacher".into(),
            template: style.template().into(),
            template_version: TEMPLATE_VERSION,
            request_key: Digest::of_json(&meta["scene"]).to_hex(),
        }],
    })
}

impl Stage for ShapesTeacher {
    type Config = TeacherConfig;
    const KIND: &'static str = "shapes.teacher";
    const VERSION: u32 = 3;
    const DOC: &'static str =
        "The exact teacher: rationales (detailed captions) and augmented prompts of shapes scenes.";
    const INPUTS: &'static [InputSpec] = &[InputSpec {
        name: "scenes",
        kinds: &[ArtifactKind::Table],
        schema: Some("source_image"),
        arity: Arity::One,
        doc: "scenes from shapes.scenes (their metadata holds the scene graphs)",
    }];
    const OUTPUT: OutputDecl = OutputDecl::Fixed(ArtifactType::table("rationale"));

    async fn run(&self, config: TeacherConfig, ctx: StageContext) -> Result<Output, StageError> {
        let scenes = ctx.input("scenes")?.clone();
        tokio::task::spawn_blocking(move || {
            let reader = TableReader::open(&scenes.dir)?;
            ctx.progress.set_total(reader.row_count()?, "scenes");
            let mut writer = ShardWriter::new(
                &ctx.out_dir,
                Arc::new(Rationale::SCHEMA.arrow_schema()),
                ShardOptions::default(),
            );
            for rows in reader.rows::<SourceImage>()? {
                ctx.check_cancelled()?;
                let rows = rows?;
                let out = rows
                    .iter()
                    .map(|row| rationale(row, config.style))
                    .collect::<Result<Vec<_>, _>>()?;
                writer.write(&schemas::to_batch(&out)?)?;
                ctx.progress.inc(rows.len() as u64);
            }
            let summary = writer.finish()?;
            Ok(Output {
                rows: Some(summary.rows),
                schema: summary.schema_id.clone(),
                meta: summary.meta(),
            })
        })
        .await
        .map_err(|e| StageError::msg(format!("teacher thread: {e}")))?
    }
}
