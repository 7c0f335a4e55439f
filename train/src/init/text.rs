//! A text tokenizer for a model trained from scratch: byte-level BPE (GPT-2's
//! pre-tokenisation, so any text encodes and decodes exactly) learned from a corpus,
//! with Janus-Pro's special tokens ([`crate::janus::text`]) added as special tokens,
//! and the words of the prompt templates ReasonGen-R1 uses put in the corpus so that
//! they are whole tokens too.
//!
//! The corpus is the text of tables: every string inside the named columns (nested
//! lists and structs included, such as `sft_sample.prompts`).

use crate::janus::text::{ASSISTANT, BEGIN_OF_IMAGE, BOS, END_OF_IMAGE, EOS, PAD, USER};
use arrow::array::{Array, AsArray, ListArray, StringArray, StructArray};
use arrow::datatypes::DataType;
use datasets::table::TableReader;
use std::path::Path;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::TrainerWrapper;
use tokenizers::models::bpe::{BPE, BpeTrainer};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer};

/// Janus-Pro's special tokens, in the order they get their ids.
pub const SPECIAL_TOKENS: [&str; 7] =
    [BOS, EOS, PAD, USER, ASSISTANT, BEGIN_OF_IMAGE, END_OF_IMAGE];

/// The text around a prompt in the templates of SFT and of generation (ReasonGen-R1's
/// and Janus-Pro's), between the role tokens.
const TEMPLATE_LINES: [&str; 3] = [
    ": A photo of . Output a richly detailed prompt:\n\n",
    ": . Output a richly detailed prompt:\n\n",
    ": A photo of .\n\n",
];

/// Columns read by default, those of them a table has: `sft_sample`'s prompts and
/// rationale, `rl_prompt`'s prompt, `rationale`'s captions and prompts.
pub const DEFAULT_COLUMNS: [&str; 6] = [
    "prompts",
    "rationale",
    "prompt",
    "detailed_caption",
    "brief_caption",
    "augmented_prompts",
];

/// Every string in `array` (lists and structs walked), appended to `out`.
fn strings(array: &dyn Array, out: &mut Vec<String>) -> Result<(), String> {
    match array.data_type() {
        DataType::Utf8 => {
            let a: &StringArray = array.as_string();
            out.extend(a.iter().flatten().map(str::to_string));
        }
        DataType::LargeUtf8 => {
            out.extend(
                array
                    .as_string::<i64>()
                    .iter()
                    .flatten()
                    .map(str::to_string),
            );
        }
        DataType::List(_) => {
            let a: &ListArray = array.as_list();
            for i in 0..a.len() {
                if a.is_valid(i) {
                    strings(a.value(i).as_ref(), out)?;
                }
            }
        }
        DataType::Struct(_) => {
            let a: &StructArray = array.as_struct();
            for column in a.columns() {
                strings(column.as_ref(), out)?;
            }
        }
        other => return Err(format!("holds {other}, not text")),
    }
    Ok(())
}

/// The text of a table's `columns` (`None`: those of [`DEFAULT_COLUMNS`] it has).
pub fn table_text(dir: &Path, columns: Option<&[String]>) -> Result<Vec<String>, String> {
    let reader = TableReader::open(dir).map_err(|e| e.to_string())?;
    let schema = reader.arrow_schema().map_err(|e| e.to_string())?;
    let columns: Vec<String> = match columns {
        Some(c) => c.to_vec(),
        None => DEFAULT_COLUMNS
            .iter()
            .filter(|c| schema.index_of(c).is_ok())
            .map(|c| c.to_string())
            .collect(),
    };
    if columns.is_empty() {
        return Err(format!(
            "the table has none of the text columns {}; name them in `columns`",
            DEFAULT_COLUMNS.join(", ")
        ));
    }
    let names: Vec<&str> = columns.iter().map(String::as_str).collect();
    let mut out = Vec::new();
    for batch in reader.batches(Some(&names)) {
        let batch = batch.map_err(|e| e.to_string())?;
        for (name, column) in names.iter().zip(batch.columns()) {
            strings(column.as_ref(), &mut out).map_err(|e| format!("column `{name}` {e}"))?;
        }
    }
    Ok(out)
}

/// Learn a byte-level BPE of at most `vocab_size` tokens (special tokens included)
/// from `corpus` and the templates. The same corpus gives the same tokenizer.
pub fn learn(corpus: &[String], vocab_size: usize) -> Result<Tokenizer, String> {
    let floor = SPECIAL_TOKENS.len() + ByteLevel::alphabet().len();
    if vocab_size <= floor {
        return Err(format!(
            "vocab_size {vocab_size} leaves no merges: the bytes and special tokens take {floor}"
        ));
    }
    let specials: Vec<AddedToken> = SPECIAL_TOKENS
        .iter()
        .map(|t| AddedToken::from(*t, true))
        .collect();
    let mut trainer: TrainerWrapper = BpeTrainer::builder()
        .vocab_size(vocab_size)
        .min_frequency(2)
        .show_progress(false)
        .special_tokens(specials)
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build()
        .into();
    let mut tokenizer = Tokenizer::new(BPE::default());
    tokenizer.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
    // Templates repeated so that their words pass `min_frequency` and merge early.
    let templates = TEMPLATE_LINES.iter().flat_map(|t| [*t; 4]);
    let lines = templates.chain(corpus.iter().map(String::as_str));
    tokenizer
        .train(&mut trainer, lines)
        .map_err(|e| format!("learning the BPE: {e}"))?;
    Ok(tokenizer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::janus::text::TextTokenizer;

    fn corpus() -> Vec<String> {
        [
            "A red circle and two blue squares on a gray background.",
            "The image shows three shapes on a plain gray canvas.",
            "a photo of a green triangle above a white diamond",
        ]
        .iter()
        .flat_map(|s| [s.to_string(), s.to_lowercase()])
        .collect()
    }

    #[test]
    fn the_tokenizer_round_trips_and_knows_janus_special_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let tokenizer = learn(&corpus(), 400).unwrap();
        let path = dir.path().join("tokenizer.json");
        tokenizer.save(&path, false).unwrap();
        let text = TextTokenizer::from_file(&path).unwrap();
        let s = text.special;
        let mut ids = vec![
            s.bos,
            s.eos,
            s.pad,
            s.user,
            s.assistant,
            s.begin_of_image,
            s.end_of_image,
        ];
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 7);
        let sentence = "A red circle above two blue squares, left of a zebra!";
        let encoded = text.encode(sentence).unwrap();
        assert_eq!(text.decode(&encoded).unwrap(), sentence);
        // Words of the corpus and of the templates are single tokens.
        for word in [" circle", " richly", " detailed", " prompt"] {
            assert_eq!(text.encode(word).unwrap().len(), 1, "{word:?}");
        }
        let prompt = text.prompt_ids("a red circle", false).unwrap();
        assert_eq!(prompt[0], s.bos);
        assert!(prompt.contains(&s.user) && prompt.contains(&s.assistant));
        let again = learn(&corpus(), 400).unwrap();
        assert_eq!(
            tokenizer.to_string(false).unwrap(),
            again.to_string(false).unwrap()
        );
        assert!(tokenizer.get_vocab_size(true) <= 400);
    }

    #[test]
    fn too_small_a_vocabulary_is_refused() {
        let err = learn(&corpus(), 200).unwrap_err();
        assert!(err.contains("vocab_size 200"), "{err}");
    }
}
