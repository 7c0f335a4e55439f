//! LoRA: with B = 0 the adapted model is the base; a training step moves the adapters
//! and nothing else, and the backward leaves no gradient for a frozen projection;
//! the merged weights compute what the adapters do; the written model folder (merged,
//! original names) loads back to the same outputs, and the adapters are written in
//! PEFT's layout.

use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use train::core::batch::{Batch, Kind, Sequence, Weights};
use train::core::lora::{ADAPTER_DIR, split};
use train::core::optim::AdamWConfig;
use train::core::params::Params;
use train::core::stepper::Stepper;
use train::janus::lora::LoraConfig;
use train::janus::{Janus, JanusConfig, Ops};
use train::sft::loss::loss;

fn config() -> JanusConfig {
    JanusConfig::tiny(48, 40)
}

fn lora() -> LoraConfig {
    LoraConfig {
        rank: 4,
        alpha: 8.0,
        target_modules: train::janus::lora::MODULES
            .iter()
            .map(|m| m.to_string())
            .collect(),
        seed: 7,
    }
}

fn batch() -> Batch {
    let row = |text: &[u32], image: &[u32]| {
        let ids: Vec<u32> = text.iter().chain(image).copied().collect();
        let is_image: Vec<bool> = (0..ids.len()).map(|j| j >= text.len()).collect();
        let labels = (1..ids.len())
            .map(|j| Some(if is_image[j] { Kind::Image } else { Kind::Text }))
            .collect();
        Sequence {
            ids,
            is_image,
            labels,
        }
    };
    let rows = [
        row(&[3, 7, 1, 30, 2], &[9, 4, 17, 8]),
        row(&[4, 5, 11], &[21, 2]),
    ];
    let weights = Weights {
        text: 2.0,
        image: 1.0,
        begin_of_image: 0.0,
    };
    Batch::new(&rows, 0, weights, &Device::Cpu).unwrap()
}

/// Final hidden states and both heads' logits, flattened into one vector.
fn outputs(model: &Janus, b: &Batch) -> Vec<f32> {
    let embeds = model.embed_mixed(&b.ids, &b.is_image).unwrap();
    let hidden = model
        .forward(&embeds, &b.padding, None, Ops::Composite)
        .unwrap();
    let parts = [
        hidden.clone(),
        model.text_logits(&hidden).unwrap(),
        model.image_logits(&hidden).unwrap(),
    ];
    parts
        .iter()
        .flat_map(|t| t.flatten_all().unwrap().to_vec1::<f32>().unwrap())
        .collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn copy(params: &Params) -> Params {
    let tensors = params
        .tensors()
        .into_iter()
        .map(|(n, t)| (n, t.copy().unwrap()))
        .collect();
    Params::from_tensors(&params.names, &tensors).unwrap()
}

fn adamw() -> AdamWConfig {
    AdamWConfig {
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
        weight_decay: 0.0,
        moments: Default::default(),
        seed: 0,
    }
}

/// A LoRA stepper over a fresh base, after `steps` updates.
fn trained(base: &Params, steps: usize) -> Stepper {
    let (adapters, frozen) = split(&config(), copy(base), Some(lora()), DType::F32).unwrap();
    let mut stepper = Stepper::new(config(), adapters, adamw(), DType::F32)
        .unwrap()
        .with_frozen(frozen);
    let b = batch();
    for _ in 0..steps {
        stepper
            .update(std::slice::from_ref(&b), 1e-2, 0.0, |model, b| {
                Ok(loss(model, b, 1.0)?.loss)
            })
            .unwrap();
    }
    stepper
}

#[test]
fn adapters_with_b_zero_leave_the_base_model_as_it_is() {
    let base = Params::random(&config(), &Device::Cpu).unwrap();
    let plain = outputs(&base.model(&config(), DType::F32).unwrap(), &batch());
    let mut stepper = trained(&base, 0);
    let adapted = outputs(stepper.model().unwrap(), &batch());
    assert!(
        max_diff(&plain, &adapted) <= 1e-6,
        "B = 0 changes the outputs"
    );
    let params = stepper.params();
    for (name, var) in params.names.iter().zip(&params.vars) {
        let norm = var
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(
            norm == 0.0,
            name.ends_with("lora_B.weight"),
            "`{name}` sums to {norm}"
        );
    }
    // The trainable parameters are the adapters alone: rank × (in + out) per projection.
    let l = &config().language;
    let (h, q, kv, i) = (
        l.hidden_size,
        l.num_attention_heads * l.head_dim,
        l.num_key_value_heads * l.head_dim,
        l.intermediate_size,
    );
    let per_layer = (h + q) * 2 + (h + kv) * 2 + (h + i) * 3;
    let expected = lora().rank * per_layer * l.num_hidden_layers;
    println!(
        "trainable parameters: {} of {} ({:.2} %)",
        params.count(),
        base.count(),
        100.0 * params.count() as f64 / base.count() as f64
    );
    assert_eq!(params.count(), expected);
    assert!(params.names.iter().all(|n| n.contains(".lora_")));
}

#[test]
fn training_moves_only_the_adapters_and_frozen_projections_get_no_gradient() {
    let base = Params::random(&config(), &Device::Cpu).unwrap();
    let mut stepper = trained(&base, 3);
    let moved_b = stepper
        .params()
        .tensors()
        .iter()
        .filter(|(n, t)| {
            n.ends_with("lora_B.weight")
                && t.abs()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
                    > 0.0
        })
        .count();
    assert_eq!(
        moved_b,
        7 * config().language.num_hidden_layers,
        "every B moved"
    );
    // The base is untouched: the merged model minus the adapters' update is the base.
    let adapted = outputs(stepper.model().unwrap(), &batch());
    let base_out = outputs(&base.model(&config(), DType::F32).unwrap(), &batch());
    assert!(
        max_diff(&adapted, &base_out) > 1e-4,
        "the adapters changed the outputs"
    );
    let frozen = stepper.frozen().unwrap();
    let unmerged = frozen
        .merged(&{
            let zero: HashMap<String, Tensor> = stepper
                .params()
                .tensors()
                .into_iter()
                .map(|(n, t)| (n, t.zeros_like().unwrap()))
                .collect();
            Params::from_tensors(&stepper.params().names, &zero).unwrap()
        })
        .unwrap();
    for (name, t) in base.tensors() {
        let diff = max_diff(
            &t.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            &unmerged[&name]
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap(),
        );
        assert_eq!(diff, 0.0, "frozen `{name}` moved");
    }
    // No gradient of a projection weight is left in the store: candle's matmul rule
    // would leave one per frozen projection ([out, in]ᵀ); the frozen path computes none.
    let l = &config().language;
    let (h, kv, i) = (
        l.hidden_size,
        l.num_key_value_heads * l.head_dim,
        l.intermediate_size,
    );
    let shapes = [vec![h, kv], vec![kv, h], vec![h, i], vec![i, h]];
    let model = stepper.model().unwrap();
    let grads = loss(model, &batch(), 1.0).unwrap().loss.backward().unwrap();
    let mut left = 0;
    let mut bytes = 0;
    for id in grads.get_ids() {
        let g = grads.get_id(*id).unwrap();
        bytes += g.elem_count() * 4;
        left += shapes.contains(&g.dims().to_vec()) as usize;
    }
    println!("gradient store after a LoRA backward: {bytes} bytes");
    assert_eq!(left, 0, "{left} projection-weight gradients were computed");
}

#[test]
fn merged_weights_compute_what_the_adapters_do_and_the_folder_round_trips() {
    let base = Params::random(&config(), &Device::Cpu).unwrap();
    let mut stepper = trained(&base, 3);
    let adapted = outputs(stepper.model().unwrap(), &batch());
    let merged = stepper.frozen().unwrap().merged(stepper.params()).unwrap();
    let merged = Params::from_tensors(&base.names, &merged).unwrap();
    let direct = outputs(&merged.model(&config(), DType::F32).unwrap(), &batch());
    let diff = max_diff(&adapted, &direct);
    assert!(diff <= 1e-4, "merged and adapters differ by {diff}");

    let dir = tempfile::tempdir().unwrap();
    let tokenizer = dir.path().join("tokenizer-source.json");
    std::fs::write(&tokenizer, "{}").unwrap();
    let out = dir.path().join("model");
    stepper.save_model(&out, &tokenizer, None).unwrap();
    let loaded = Params::from_checkpoint(&out, &config(), &Device::Cpu).unwrap();
    assert_eq!(loaded.names.len(), base.names.len(), "original names only");
    let reloaded = outputs(&loaded.model(&config(), DType::F32).unwrap(), &batch());
    let diff = max_diff(&adapted, &reloaded);
    assert!(diff <= 1e-4, "the written model differs by {diff}");

    let adapters = candle_core::safetensors::load(
        out.join(ADAPTER_DIR).join("adapter_model.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    assert_eq!(adapters.len(), stepper.params().names.len());
    for (name, t) in stepper.params().tensors() {
        let saved = &adapters[&format!("base_model.model.{name}")];
        let diff = max_diff(
            &t.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            &saved.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        );
        assert_eq!(diff, 0.0, "`{name}`");
    }
    assert!(adapters.contains_key(
        "base_model.model.language_model.model.layers.0.self_attn.q_proj.lora_A.weight"
    ));
    let json: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out.join(ADAPTER_DIR).join("adapter_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(json["r"], 4);
    assert_eq!(json["lora_alpha"], 8.0);
    assert_eq!(json["peft_type"], "LORA");
}

#[test]
fn a_lora_config_names_what_is_wrong() {
    let mut bad = lora();
    bad.target_modules.push("qkv".into());
    let e = bad.check().unwrap_err();
    assert!(e.contains("`qkv`"), "{e}");
    bad = lora();
    bad.rank = 0;
    assert!(bad.check().unwrap_err().contains("rank"));
}
