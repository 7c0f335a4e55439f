//! Janus-Pro's model mechanics on the tiny fixture model and on fresh presets: the KV
//! cache against full forwards (padded batches too), loading errors that name the
//! keys, unknown keys ignored, seeded generation, gradient reachability, and writing
//! then reading our own checkpoints.

mod janus_support;

use candle_core::{D, DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use janus_support::*;
use std::collections::HashMap;
use std::sync::Arc;
use train::janus::checkpoint::Checkpoint;
use train::janus::generate::{GenerateOptions, RationaleOptions, Request, generate};
use train::janus::load::load;
use train::janus::sampling::Sampling;
use train::janus::{Janus, JanusConfig, JanusError, Ops, Padding};

/// Three rows mixing text ids and image codes: (ids, is_image) per row.
fn rows() -> Vec<(Vec<u32>, Vec<u8>)> {
    let meta = golden_json();
    let prompt = ids(&meta["plain"][0]["prompt_ids"]);
    let mut long = ids(&meta["cot"][2]["prompt_ids"]);
    long.truncate(17);
    let with_codes = |mut text: Vec<u32>, codes: &[u32]| {
        let mut image = vec![0u8; text.len()];
        text.extend_from_slice(codes);
        image.extend(std::iter::repeat_n(1u8, codes.len()));
        (text, image)
    };
    vec![
        with_codes(prompt.clone(), &[5, 200, 17]),
        with_codes(long, &[]),
        with_codes(prompt[..6].to_vec(), &[255, 0]),
    ]
}

/// `rows` laid out in `width` columns: row r's tokens at the columns `place(r)` lists,
/// padding (id 0, text) elsewhere.
fn layout(
    rows: &[(Vec<u32>, Vec<u8>)],
    width: usize,
    place: impl Fn(usize) -> Vec<usize>,
) -> (Tensor, Tensor, Padding) {
    let mut ids = vec![0u32; rows.len() * width];
    let mut image = vec![0u8; rows.len() * width];
    let mut valid = vec![vec![false; width]; rows.len()];
    for (r, (row_ids, row_image)) in rows.iter().enumerate() {
        for (k, col) in place(r).into_iter().enumerate() {
            ids[r * width + col] = row_ids[k];
            image[r * width + col] = row_image[k];
            valid[r][col] = true;
        }
    }
    let dev = Device::Cpu;
    (
        Tensor::from_vec(ids, (rows.len(), width), &dev).unwrap(),
        Tensor::from_vec(image, (rows.len(), width), &dev).unwrap(),
        Padding::from_fn(rows.len(), width, |r, j| valid[r][j]),
    )
}

/// Text and image logits [B, T, ·] concatenated on the last axis.
fn heads(model: &Janus, hidden: &Tensor) -> Tensor {
    Tensor::cat(
        &[
            model.text_logits(hidden).unwrap(),
            model.image_logits(hidden).unwrap(),
        ],
        D::Minus1,
    )
    .unwrap()
}

/// Logits of each row alone, without padding, [tokens, ·].
fn alone(model: &Janus, rows: &[(Vec<u32>, Vec<u8>)]) -> Vec<Tensor> {
    rows.iter()
        .map(|(ids, image)| {
            let n = ids.len();
            let ids = Tensor::from_vec(ids.clone(), (1, n), &Device::Cpu).unwrap();
            let image = Tensor::from_vec(image.clone(), (1, n), &Device::Cpu).unwrap();
            let embeds = model.embed_mixed(&ids, &image).unwrap();
            let hidden = model
                .forward(&embeds, &Padding::none(1, n), None, Ops::Fused)
                .unwrap();
            heads(model, &hidden).squeeze(0).unwrap()
        })
        .collect()
}

/// The logits of `x` [B, T, ·] at row r's token columns, [tokens, ·].
fn at(x: &Tensor, r: usize, cols: &[usize]) -> Tensor {
    let index = Tensor::new(
        cols.iter().map(|&c| c as u32).collect::<Vec<_>>(),
        x.device(),
    )
    .unwrap();
    x.get(r).unwrap().index_select(&index, 0).unwrap()
}

#[test]
fn padding_anywhere_changes_nothing_for_the_tokens() {
    let model = model(&fixtures().join("original"));
    let rows = rows();
    let reference = alone(&model, &rows);
    let width = 2 * rows.iter().map(|r| r.0.len()).max().unwrap();
    let left = |r: usize| (width - rows[r].0.len()..width).collect::<Vec<_>>();
    let right = |r: usize| (0..rows[r].0.len()).collect::<Vec<_>>();
    // Padding inside a row too: every third column is left empty.
    let scattered = |r: usize| {
        (0..width)
            .filter(|c| c % 3 != 1)
            .take(rows[r].0.len())
            .collect::<Vec<_>>()
    };
    for (name, place) in [
        ("left", &left as &dyn Fn(usize) -> Vec<usize>),
        ("right", &right),
        ("scattered", &scattered),
    ] {
        let (ids, image, padding) = layout(&rows, width, place);
        for ops in [Ops::Fused, Ops::Composite, Ops::Kernels] {
            let embeds = model.embed_mixed(&ids, &image).unwrap();
            let hidden = model.forward(&embeds, &padding, None, ops).unwrap();
            let logits = heads(&model, &hidden);
            for (r, want) in reference.iter().enumerate() {
                let err = max_abs_diff(&at(&logits, r, &place(r)), want);
                assert!(err <= TOLERANCE, "{name} padding, row {r}, {ops:?}: {err}");
            }
        }
    }
}

#[test]
fn the_kv_cache_gives_the_logits_of_a_full_forward() {
    let model = model(&fixtures().join("original"));
    let rows = rows();
    let width = rows.iter().map(|r| r.0.len()).max().unwrap();
    let left = |r: usize| (width - rows[r].0.len()..width).collect::<Vec<_>>();
    let (ids, image, padding) = layout(&rows, width, left);
    let embeds = model.embed_mixed(&ids, &image).unwrap();
    let full = heads(
        &model,
        &model.forward(&embeds, &padding, None, Ops::Fused).unwrap(),
    );

    // Prefill 7 columns, then 1, then 4, then one at a time.
    let mut cache = model.cache(rows.len(), width).unwrap();
    let mut chunks = vec![7, 1, 4];
    chunks.extend(std::iter::repeat_n(1, width - 12));
    let mut start = 0;
    let mut pieces = Vec::new();
    for len in chunks {
        let piece = embeds.narrow(1, start, len).unwrap();
        let piece_padding =
            Padding::from_fn(rows.len(), len, |r, j| padding.is_valid(r, start + j));
        let hidden = model
            .forward(&piece, &piece_padding, Some(&mut cache), Ops::Fused)
            .unwrap();
        pieces.push(heads(&model, &hidden));
        start += len;
    }
    assert_eq!(cache.len(), width);
    let incremental = Tensor::cat(&pieces, 1).unwrap();
    for r in 0..rows.len() {
        let err = max_abs_diff(&at(&incremental, r, &left(r)), &at(&full, r, &left(r)));
        println!("row {r}: cached vs full, max abs error {err:.2e}");
        assert!(err <= TOLERANCE, "row {r}: {err}");
    }
    // A full cache refuses more.
    let one = embeds.narrow(1, 0, 1).unwrap();
    assert!(
        model
            .forward(
                &one,
                &Padding::none(rows.len(), 1),
                Some(&mut cache),
                Ops::Fused
            )
            .is_err()
    );
}

/// A copy of the original fixture folder whose weights went through `edit`.
fn edited_checkpoint(edit: impl FnOnce(&mut HashMap<String, Tensor>)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let source = fixtures().join("original");
    let mut tensors =
        candle_core::safetensors::load(source.join("model.safetensors"), &Device::Cpu).unwrap();
    edit(&mut tensors);
    candle_core::safetensors::save(&tensors, dir.path().join("model.safetensors")).unwrap();
    for file in ["config.json", "tokenizer.json"] {
        std::fs::copy(source.join(file), dir.path().join(file)).unwrap();
    }
    dir
}

#[test]
fn missing_tensors_are_named_all_at_once() {
    let dir = edited_checkpoint(|t| {
        t.remove("language_model.model.layers.1.mlp.up_proj.weight");
        t.remove("gen_head.vision_head.bias");
    });
    let err = match load(dir.path(), &Device::Cpu) {
        Err(e) => e,
        Ok(_) => panic!("loaded a checkpoint with missing tensors"),
    };
    let JanusError::MissingKeys { keys, .. } = &err else {
        panic!("{err}");
    };
    assert_eq!(
        keys,
        &[
            "gen_head.vision_head.bias",
            "language_model.model.layers.1.mlp.up_proj.weight"
        ]
    );
    let text = err.to_string();
    assert!(text.contains(&dir.path().display().to_string()), "{text}");
    assert!(
        text.contains("language_model.model.layers.1.mlp.up_proj.weight"),
        "{text}"
    );
}

#[test]
fn a_tensor_of_the_wrong_shape_is_named_with_both_shapes() {
    let dir = edited_checkpoint(|t| {
        t.insert(
            "gen_embed.weight".into(),
            Tensor::zeros((10, 8), DType::F32, &Device::Cpu).unwrap(),
        );
    });
    let err = load(dir.path(), &Device::Cpu)
        .err()
        .expect("loads")
        .to_string();
    assert!(
        err.contains("gen_embed.weight") && err.contains("[10, 8]") && err.contains("[256, 8]"),
        "{err}"
    );
    assert!(err.contains("model.safetensors"), "{err}");
}

#[test]
fn tensors_the_model_does_not_use_are_ignored() {
    let original = Checkpoint::open(&fixtures().join("original")).unwrap();
    assert!(
        original
            .names()
            .contains(&"gen_vision_model.quantize.codebook_used")
    );
    assert!(
        original
            .names()
            .contains(&"language_model.model.layers.0.self_attn.rotary_emb.inv_freq")
    );
    let hf = Checkpoint::open(&fixtures().join("hf")).unwrap();
    assert!(
        hf.names()
            .iter()
            .any(|n| n.starts_with("model.vision_model."))
    );
    // Both load (the parity tests compare their outputs).
    model(&fixtures().join("original"));
    model(&fixtures().join("hf"));
}

#[test]
fn a_checkpoint_of_neither_layout_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let t = HashMap::from([(
        "encoder.weight".to_string(),
        Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap(),
    )]);
    candle_core::safetensors::save(&t, dir.path().join("model.safetensors")).unwrap();
    let err = Checkpoint::open(dir.path())
        .err()
        .expect("opens")
        .to_string();
    assert!(err.contains("not a Janus-Pro checkpoint"), "{err}");
}

fn sampled_options() -> GenerateOptions {
    GenerateOptions {
        rationale: Some(RationaleOptions {
            sampling: Sampling {
                temperature: 1.0,
                top_k: Some(40),
                top_p: Some(0.9),
            },
            max_tokens: 6,
        }),
        image: Sampling {
            temperature: 1.0,
            top_k: Some(100),
            top_p: None,
        },
        cfg_weight: 3.0,
        unconditional: train::janus::generate::Unconditional::Pads,
        image_tokens: 256,
    }
}

#[test]
fn generation_is_determined_by_the_seed() {
    let loaded = load(&fixtures().join("original"), &Device::Cpu).unwrap();
    let prompt = |p: &str| loaded.text.prompt_ids(p, false).unwrap();
    let batch = vec![
        Request {
            prompt_ids: prompt("a red cube"),
            seed: 1,
        },
        Request {
            prompt_ids: prompt("two blue spheres on the left of a tree"),
            seed: 2,
        },
        Request {
            prompt_ids: prompt("a red cube"),
            seed: 3,
        },
    ];
    let options = sampled_options();
    let run = |requests: &[Request]| {
        generate(&loaded.model, &loaded.text.special, requests, &options)
            .unwrap()
            .0
    };
    let first = run(&batch);
    let again = run(&batch);
    assert_eq!(first, again);
    // Another seed, another sample (same prompt as row 0).
    assert_ne!(first[0], first[2]);
    // A row alone gives what it gave in the batch.
    let alone = run(&batch[1..2]);
    assert_eq!(alone[0], first[1]);
    for g in &first {
        assert!(g.image_tokens.iter().all(|&c| c < 256));
        assert!(g.rationale_ids.len() <= 6);
    }
}

#[test]
fn guidance_zero_draws_from_the_unconditional_twin_masked_or_padded() {
    use train::janus::generate::Unconditional;
    let loaded = load(&fixtures().join("original"), &Device::Cpu).unwrap();
    let s = loaded.text.special;
    let prompt = loaded
        .text
        .prompt_ids("two blue spheres on the left of a tree", true)
        .unwrap();
    let options = |cfg_weight, unconditional| GenerateOptions {
        rationale: None,
        image: Sampling {
            temperature: 0.0,
            top_k: None,
            top_p: None,
        },
        cfg_weight,
        unconditional,
        image_tokens: 12,
    };
    let draw = |prompt_ids: Vec<u32>, o: GenerateOptions| {
        let request = Request {
            prompt_ids,
            seed: 1,
        };
        generate(&loaded.model, &s, &[request], &o).unwrap().0[0]
            .image_tokens
            .clone()
    };
    // Weight 0 draws from the twin alone. Masked, the twin is `[BOS] <begin_of_image>`
    // (the prompt left out, as a dropped SFT sample); padded, the prompt's length of
    // attended pads between them.
    let bare = vec![s.bos, s.begin_of_image];
    let masked = draw(prompt.clone(), options(0.0, Unconditional::Masked));
    assert_eq!(masked, draw(bare, options(1.0, Unconditional::Masked)));
    let pads: Vec<u32> = prompt
        .iter()
        .map(|&t| {
            if t == s.bos || t == s.begin_of_image {
                t
            } else {
                s.pad
            }
        })
        .collect();
    let padded = draw(prompt.clone(), options(0.0, Unconditional::Pads));
    assert_eq!(padded, draw(pads, options(1.0, Unconditional::Pads)));
    assert_ne!(masked, padded, "the two twins are different rows");
}

/// A fresh tiny preset (no checkpoint), its variables and a training batch.
fn fresh(text_vocab: usize, image_vocab: usize) -> (Janus, VarMap) {
    let config = JanusConfig::tiny(text_vocab, image_vocab);
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    (Janus::new(&config, vb).unwrap(), varmap)
}

/// A right-padded batch of mixed sequences and its loss: cross-entropy of the text
/// head on text targets and of the image head on image targets.
fn loss(model: &Janus, ops: Ops) -> Tensor {
    let dev = Device::Cpu;
    let ids = Tensor::new(&[[3u32, 7, 1, 30, 2, 9], [4, 5, 17, 8, 0, 0]], &dev).unwrap();
    let image = Tensor::new(&[[0u8, 0, 0, 1, 1, 1], [0, 0, 1, 1, 0, 0]], &dev).unwrap();
    let padding = Padding::right(&[6, 4], 6);
    let embeds = model.embed_mixed(&ids, &image).unwrap();
    let hidden = model.forward(&embeds, &padding, None, ops).unwrap();
    let h = hidden.dim(2).unwrap();
    let text_rows = Tensor::new(&[0u32, 1, 6, 7], &dev).unwrap();
    let image_rows = Tensor::new(&[2u32, 3, 4, 8, 9], &dev).unwrap();
    let flat = hidden.reshape((12, h)).unwrap();
    let text = model
        .text_logits(&flat.index_select(&text_rows, 0).unwrap())
        .unwrap();
    let image = model
        .image_logits(&flat.index_select(&image_rows, 0).unwrap())
        .unwrap();
    let text_loss =
        candle_nn::loss::cross_entropy(&text, &Tensor::new(&[7u32, 1, 5, 17], &dev).unwrap())
            .unwrap();
    let image_loss =
        candle_nn::loss::cross_entropy(&image, &Tensor::new(&[30u32, 2, 9, 8, 1], &dev).unwrap())
            .unwrap();
    (text_loss + image_loss).unwrap()
}

/// The variables whose gradient is missing or zero.
fn without_gradient(model: &Janus, varmap: &VarMap, ops: Ops) -> Vec<String> {
    let grads = loss(model, ops).backward().unwrap();
    let data = varmap.data().lock().unwrap();
    let mut names: Vec<String> = data
        .iter()
        .filter(|(_, var)| {
            grads.get(var.as_tensor()).is_none_or(|g| {
                g.abs()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
                    == 0.0
            })
        })
        .map(|(name, _)| name.clone())
        .collect();
    names.sort();
    names
}

#[test]
fn training_mode_sends_a_gradient_to_every_parameter() {
    let (model, varmap) = fresh(40, 32);
    let count = varmap.all_vars().len();
    // 2 layers × 9 + embed, norm, lm_head + gen_embed + 2 × 2 aligner + 2 × 2 head.
    assert_eq!(count, 2 * 9 + 3 + 1 + 4 + 4);
    for ops in [Ops::Fused, Ops::Composite] {
        let missing = without_gradient(&model, &varmap, ops);
        assert!(
            missing.is_empty(),
            "{ops:?}: no gradient reaches {missing:?}"
        );
    }
    // The check has teeth: candle's kernels record no gradient.
    let cut = without_gradient(&model, &varmap, Ops::Kernels);
    assert!(
        cut.contains(&"language_model.model.norm.weight".to_string()),
        "{cut:?}"
    );
}

#[test]
fn a_preset_written_in_the_original_layout_loads_back() {
    let (model, varmap) = fresh(320, 256);
    let dir = tempfile::tempdir().unwrap();
    varmap.save(dir.path().join("model.safetensors")).unwrap();
    let config = JanusConfig::tiny(320, 256);
    std::fs::write(
        dir.path().join("config.json"),
        serde_json::to_vec_pretty(&config.to_json()).unwrap(),
    )
    .unwrap();
    std::fs::copy(
        fixtures().join("tokenizer.json"),
        dir.path().join("tokenizer.json"),
    )
    .unwrap();
    assert_eq!(
        JanusConfig::from_file(&dir.path().join("config.json")).unwrap(),
        config
    );
    let loaded = load(dir.path(), &Device::Cpu).unwrap();
    let golden = golden();
    let (text, image) = logits(&model, &golden, "mixed", Ops::Fused);
    let (text_back, image_back) = logits(&loaded.model, &golden, "mixed", Ops::Fused);
    assert_eq!(max_abs_diff(&text, &text_back), 0.0);
    assert_eq!(max_abs_diff(&image, &image_back), 0.0);
    // Without VQ weights the model loads; its VQ does not, and says what is missing.
    let err = loaded
        .vq16(&Device::Cpu)
        .err()
        .expect("a VQ without weights")
        .to_string();
    assert!(
        err.contains("gen_vision_model.quantize.embedding.weight"),
        "{err}"
    );
}

#[test]
fn a_sharded_bin_converts_to_safetensors_with_the_same_tensors() {
    let out = tempfile::tempdir().unwrap();
    let source = fixtures().join("sharded");
    // Shards of 256 kB: several files and an index.
    let converted = train::janus::convert::convert(&source, out.path(), 256 * 1024).unwrap();
    let before = Checkpoint::open(&source).unwrap();
    let after = Arc::new(Checkpoint::open(out.path()).unwrap());
    assert!(after.paths().len() > 1, "{:?}", converted.files);
    assert!(out.path().join("model.safetensors.index.json").is_file());
    assert!(out.path().join("config.json").is_file());
    assert_eq!(before.names(), after.names());
    assert_eq!(converted.tensors, before.names().len());
    for name in before.names() {
        let (a, _) = before.read(name).unwrap().unwrap();
        let (b, _) = after.read(name).unwrap().unwrap();
        assert_eq!(a.dtype(), b.dtype(), "{name}");
        let (a, b) = (
            a.to_dtype(DType::F32).unwrap(),
            b.to_dtype(DType::F32).unwrap(),
        );
        assert_eq!(
            max_abs_diff(&a.flatten_all().unwrap(), &b.flatten_all().unwrap()),
            0.0,
            "{name}"
        );
    }
    // And the converted folder is a model.
    let converted_model = model(out.path());
    let golden = golden();
    let (text, _) = logits(&converted_model, &golden, "mixed", Ops::Fused);
    assert!(max_abs_diff(&text, &golden["mixed.text_logits"]) <= TOLERANCE);
}
