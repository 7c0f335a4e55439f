//! Rows ↔ Arrow record batches, through serde.

use crate::def::SchemaDef;
use arrow::datatypes::FieldRef;
use arrow::record_batch::RecordBatch;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;

/// A Rust row type with its table schema.
pub trait Row: Serialize + DeserializeOwned {
    const SCHEMA: &'static SchemaDef;
}

#[derive(Debug, thiserror::Error)]
#[error("{schema} rows: {source}")]
pub struct RowError {
    schema: String,
    #[source]
    source: serde_arrow::Error,
}

/// A record batch of rows, with the schema's metadata (id, features).
pub fn to_batch<R: Row>(rows: &[R]) -> Result<RecordBatch, RowError> {
    let schema = R::SCHEMA.arrow_schema();
    let fields: Vec<FieldRef> = schema.fields().iter().cloned().collect();
    let err = |source| RowError {
        schema: R::SCHEMA.id().to_string(),
        source,
    };
    let batch = serde_arrow::to_record_batch(&fields, &rows).map_err(err)?;
    Ok(batch
        .with_schema(Arc::new(schema))
        .expect("same fields, with metadata"))
}

/// The rows of a batch (whose columns must be the schema's).
pub fn from_batch<R: Row>(batch: &RecordBatch) -> Result<Vec<R>, RowError> {
    columns_from_batch(R::SCHEMA, batch)
}

/// Some columns of a `def` table as a partial row type `T` (whose fields name the
/// columns), for readers that need a few columns of a wide table.
pub fn columns_from_batch<T: DeserializeOwned>(
    def: &SchemaDef,
    batch: &RecordBatch,
) -> Result<Vec<T>, RowError> {
    serde_arrow::from_record_batch(batch).map_err(|source| RowError {
        schema: def.id().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::{AugmentedPrompts, ImageData, Provenance};
    use crate::eval_sample::EvalSample;
    use crate::rationale::Rationale;
    use crate::rl_prompt::RlPrompt;
    use crate::rollout::Rollout;
    use crate::sft_sample::SftSample;
    use crate::source_image::SourceImage;
    use proptest::prelude::*;

    fn text() -> impl Strategy<Value = String> {
        "[ -~]{0,12}"
    }

    fn prompts() -> impl Strategy<Value = AugmentedPrompts> {
        (
            proptest::option::of(text()),
            prop::collection::vec(text(), 0..3),
            prop::collection::vec(text(), 0..3),
            prop::collection::vec(text(), 0..3),
            prop::collection::vec(text(), 0..3),
        )
            .prop_map(|(s, p, t, v, o)| AugmentedPrompts {
                short_caption: s,
                paraphrases: p,
                tags: t,
                varied_captions: v,
                object_prompts: o,
            })
    }

    fn image() -> impl Strategy<Value = ImageData> {
        (
            proptest::option::of(prop::collection::vec(any::<u8>(), 0..64)),
            proptest::option::of(text()),
        )
            .prop_map(|(bytes, path)| ImageData { bytes, path })
    }

    fn provenance() -> impl Strategy<Value = Vec<Provenance>> {
        prop::collection::vec(
            (text(), text(), any::<u32>()).prop_map(|(task, model, v)| Provenance {
                task,
                model,
                template: "caption".into(),
                template_version: v,
                request_key: "ab".repeat(32),
            }),
            0..3,
        )
    }

    fn round_trip<R: Row + PartialEq + std::fmt::Debug>(rows: Vec<R>) {
        let batch = to_batch(&rows).unwrap();
        assert_eq!(batch.num_rows(), rows.len());
        assert_eq!(
            batch.schema().metadata()["reasongen.schema"],
            R::SCHEMA.id().to_string()
        );
        let back: Vec<R> = from_batch(&batch).unwrap();
        assert_eq!(back, rows);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn sft_samples_round_trip(rows in prop::collection::vec(
            (text(), prompts(), text(), image(), proptest::option::of(prop::collection::vec(any::<u16>(), 0..20)), provenance())
                .prop_map(|(id, prompts, rationale, image, image_codes, provenance)| SftSample {
                    id, prompts, rationale, image, image_codes, tokenizer: Some("patch_vq".into()), provenance,
                }),
            0..6)) {
            round_trip(rows);
        }

        #[test]
        fn rationales_round_trip(rows in prop::collection::vec(
            (text(), proptest::option::of(text()), text(), proptest::option::of(prompts()), provenance())
                .prop_map(|(id, brief_caption, detailed_caption, augmented_prompts, provenance)| Rationale {
                    id, brief_caption, detailed_caption, augmented_prompts, provenance,
                }),
            0..6)) {
            round_trip(rows);
        }
    }

    #[test]
    fn every_schema_round_trips_a_row() {
        round_trip(vec![SourceImage {
            id: "a".into(),
            image: ImageData::from_bytes(vec![1, 2, 3], Some("a.png".into())),
            caption: Some("a cat".into()),
            source: "folder".into(),
            width: Some(3),
            height: None,
            aesthetic: Some(6.5),
            metadata: Some("{}".into()),
        }]);
        round_trip(vec![RlPrompt {
            id: "p".into(),
            prompt: "a red cube".into(),
            family: "shapes".into(),
            tag: Some("colors".into()),
            metadata: None,
        }]);
        round_trip(vec![Rollout {
            id: "r".into(),
            prompt_id: "p".into(),
            prompt: "x".into(),
            step: 3,
            sample: 1,
            rationale: "y".into(),
            image: None,
            image_codes: vec![1, 65535],
            reward: 1.0,
            advantage: -0.5,
            model: "m".into(),
            generation: Some(2),
            rationale_tokens: Some(17),
            capped: Some(false),
            rewards: Some(r#"{"vlm":1.0}"#.into()),
            judge_answer: Some("\\boxed{1}".into()),
            request_key: Some("ab".into()),
            failure: None,
            kept: Some(true),
            log_prob: Some(-12.5),
        }]);
        round_trip(vec![EvalSample {
            id: "e".into(),
            benchmark: "geneval".into(),
            prompt_id: "p".into(),
            prompt: "x".into(),
            tag: None,
            sample: 0,
            seed: u64::MAX,
            rationale: None,
            image: ImageData::from_bytes(vec![9], None),
            score: Some(0.5),
            details: None,
            model: "m".into(),
        }]);
    }
}
