//! Janus-Pro against transformers' implementation: the tiny random model and the
//! goldens that `scripts/janus_parity.py` wrote into `tests/fixtures/janus/`.
//!
//! Logits (text and image, for a sequence mixing text and image codes, alone and in a
//! left-padded batch) must be within 1e-4 (max abs error, F32 on the CPU) from every
//! checkpoint form: DeepSeek's layout in safetensors, transformers' layout, a single
//! `.bin` and sharded `.bin` files, with each kind of ops (ours fused, composite, candle's kernels).
//! Greedy rationales and greedy CFG image tokens must be equal token for token.

mod janus_support;

use candle_core::Device;
use janus_support::*;
use train::janus::generate::{GenerateOptions, RationaleOptions, Request, generate};
use train::janus::keys::Layout;
use train::janus::load::load;
use train::janus::sampling::Sampling;
use train::janus::{JanusConfig, Ops};

fn check_logits(dir: &str) {
    let model = model(&fixtures().join(dir));
    let golden = golden();
    for ops in [Ops::Fused, Ops::Composite, Ops::Kernels] {
        let (text, image) = logits(&model, &golden, "mixed", ops);
        let text_err = max_abs_diff(&text, &golden["mixed.text_logits"]);
        let image_err = max_abs_diff(&image, &golden["mixed.image_logits"]);
        println!("{dir} {ops:?} mixed: text logits {text_err:.2e}, image logits {image_err:.2e}");
        assert!(
            text_err <= TOLERANCE && image_err <= TOLERANCE,
            "{dir} {ops:?}: {text_err} {image_err}"
        );

        let (text, image) = logits(&model, &golden, "padded", ops);
        let mask = &golden["padded.attention_mask"];
        let text_err = max_abs_diff(
            &valid_rows(&text, mask),
            &valid_rows(&golden["padded.text_logits"], mask),
        );
        let image_err = max_abs_diff(
            &valid_rows(&image, mask),
            &valid_rows(&golden["padded.image_logits"], mask),
        );
        println!("{dir} {ops:?} padded: text logits {text_err:.2e}, image logits {image_err:.2e}");
        assert!(
            text_err <= TOLERANCE && image_err <= TOLERANCE,
            "{dir} {ops:?}: {text_err} {image_err}"
        );
    }
}

#[test]
fn logits_match_from_deepseeks_layout_in_safetensors() {
    check_logits("original");
}

#[test]
fn logits_match_from_transformers_layout() {
    check_logits("hf");
}

#[test]
fn logits_match_from_a_single_pytorch_bin_without_the_vq() {
    check_logits("bin");
}

#[test]
fn logits_match_from_sharded_pytorch_bins_with_their_index() {
    check_logits("sharded");
}

#[test]
fn both_configs_and_layouts_describe_the_same_model() {
    let original = JanusConfig::from_file(&fixtures().join("original/config.json")).unwrap();
    let hf = JanusConfig::from_file(&fixtures().join("hf/config.json")).unwrap();
    assert_eq!(original, hf);
    assert_eq!(original.image_tokens(), 256);
    assert_eq!(original.language.num_key_value_heads, 2);
    // Keys the DeepSeek config omits take LlamaConfig's defaults.
    assert_eq!(original.language.rms_norm_eps, 1e-6);
    assert_eq!(original.language.rope_theta, 10000.0);
    assert_eq!(original.language.head_dim, 16);
    let open = |d: &str| {
        train::janus::checkpoint::Checkpoint::open(&fixtures().join(d))
            .unwrap()
            .layout()
    };
    assert_eq!(open("original"), Layout::Original);
    assert_eq!(open("hf"), Layout::Transformers);
    assert_eq!(open("sharded"), Layout::Original);
}

#[test]
fn prompts_tokenise_as_in_python() {
    let loaded = load(&fixtures().join("original"), &Device::Cpu).unwrap();
    let meta = golden_json();
    let special = &meta["special_ids"];
    assert_eq!(
        loaded.text.special.bos,
        special["bos"].as_u64().unwrap() as u32
    );
    assert_eq!(
        loaded.text.special.begin_of_image,
        special["boi"].as_u64().unwrap() as u32
    );
    let template = meta["cot_template"].as_str().unwrap();
    for case in meta["cot"].as_array().unwrap() {
        let prompt = template.replace("{}", case["prompt"].as_str().unwrap());
        assert_eq!(
            loaded.text.prompt_ids(&prompt, false).unwrap(),
            ids(&case["prompt_ids"])
        );
    }
    for case in meta["plain"].as_array().unwrap() {
        let got = loaded
            .text
            .prompt_ids(case["prompt"].as_str().unwrap(), true)
            .unwrap();
        assert_eq!(got, ids(&case["prompt_ids"]));
    }
}

/// Greedy rationales for three prompts (ending on EOS, on `<begin_of_image>`, at the
/// cap), then 256 greedy image tokens each with CFG 5, all in one batch.
#[test]
fn greedy_generation_with_a_rationale_and_cfg_matches() {
    let loaded = load(&fixtures().join("hf"), &Device::Cpu).unwrap();
    let meta = golden_json();
    let cases = meta["cot"].as_array().unwrap();
    let requests: Vec<Request> = cases
        .iter()
        .map(|c| Request {
            prompt_ids: ids(&c["prompt_ids"]),
            seed: 0,
        })
        .collect();
    let options = GenerateOptions {
        rationale: Some(RationaleOptions {
            sampling: Sampling::GREEDY,
            max_tokens: meta["max_rationale_tokens"].as_u64().unwrap() as usize,
        }),
        image: Sampling::GREEDY,
        cfg_weight: meta["cfg_weight"].as_f64().unwrap(),
        unconditional: train::janus::generate::Unconditional::Pads,
        image_tokens: meta["image_tokens"].as_u64().unwrap() as usize,
    };
    let (out, _) = generate(&loaded.model, &loaded.text.special, &requests, &options).unwrap();
    for (case, got) in cases.iter().zip(&out) {
        let mut written = ids(&case["rationale_ids"]);
        written.pop(); // the token that ended it, or the one the cap replaced
        assert_eq!(got.rationale_ids, written, "{}", case["prompt"]);
        assert_eq!(
            got.image_tokens,
            ids(&case["image_tokens"]),
            "{}",
            case["prompt"]
        );
    }
}

#[test]
fn greedy_plain_generation_with_cfg_matches() {
    let loaded = load(&fixtures().join("original"), &Device::Cpu).unwrap();
    let meta = golden_json();
    let cases = meta["plain"].as_array().unwrap();
    let requests: Vec<Request> = cases
        .iter()
        .map(|c| Request {
            prompt_ids: ids(&c["prompt_ids"]),
            seed: 0,
        })
        .collect();
    let options = GenerateOptions {
        rationale: None,
        image: Sampling::GREEDY,
        cfg_weight: meta["cfg_weight"].as_f64().unwrap(),
        unconditional: train::janus::generate::Unconditional::Pads,
        image_tokens: meta["image_tokens"].as_u64().unwrap() as usize,
    };
    let (out, _) = generate(&loaded.model, &loaded.text.special, &requests, &options).unwrap();
    for (case, got) in cases.iter().zip(&out) {
        assert!(got.rationale_ids.is_empty());
        assert_eq!(
            got.image_tokens,
            ids(&case["image_tokens"]),
            "{}",
            case["prompt"]
        );
    }
}
