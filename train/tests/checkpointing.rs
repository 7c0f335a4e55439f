//! Activation checkpointing gives the gradients of the plain backward, for every
//! parameter, on the tiny preset with a padded batch; the checkpointed graph holds no
//! decoder-layer parameter (their activations are not kept); the stepper's update
//! with checkpointing lands where the plain one does; in BF16 the gradients reach the
//! FP32 masters; and the memory options, off, leave the canonical config (the run key)
//! as it was.

use candle_core::{DType, Device, Tensor};
use train::core::batch::{Batch, Kind, Sequence, Weights};
use train::core::optim::AdamWConfig;
use train::core::params::Params;
use train::core::stepper::Stepper;
use train::janus::JanusConfig;
use train::janus::checkpointing::Checkpointing;
use train::sft::loss::loss;

fn config() -> JanusConfig {
    JanusConfig::tiny(48, 40)
}

/// Two rows of different lengths (so one is padded), text then image codes.
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

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

#[test]
fn checkpointed_gradients_equal_the_plain_ones() {
    let config = config();
    let params = Params::random(&config, &Device::Cpu).unwrap();
    let mut model = params.model(&config, DType::F32).unwrap();
    let batch = batch();
    assert!(batch.positions > batch.tokens, "one row is padded");
    let plain_loss = loss(&model, &batch, 1.0).unwrap().loss;
    let plain = plain_loss.backward().unwrap();

    let checkpointing = Checkpointing::new();
    model.set_checkpointing(Some(checkpointing.clone()));
    let loss_ck = loss(&model, &batch, 1.0).unwrap().loss;
    assert_eq!(
        plain_loss.to_scalar::<f32>().unwrap(),
        loss_ck.to_scalar::<f32>().unwrap(),
        "the checkpointed forward computes the same loss"
    );
    // The outer graph stops at each layer's input: no layer parameter is in it.
    let reached: Vec<_> = loss_ck.sorted_nodes().iter().map(|n| n.id()).collect();
    for (name, var) in params.names.iter().zip(&params.vars) {
        let in_graph = reached.contains(&var.id());
        assert_eq!(
            in_graph,
            !name.starts_with("language_model.model.layers."),
            "`{name}` in the checkpointed graph: {in_graph}"
        );
    }
    let mut grads = loss_ck.backward().unwrap();
    let layer_grads = params
        .names
        .iter()
        .zip(&params.vars)
        .filter(|(n, v)| {
            n.starts_with("language_model.model.layers.") && grads.get(v.as_tensor()).is_some()
        })
        .count();
    assert_eq!(
        layer_grads, 0,
        "before the drain, layer gradients are apart"
    );
    checkpointing.drain_into(&mut grads).unwrap();

    for (name, var) in params.names.iter().zip(&params.vars) {
        let want = plain.get(var.as_tensor());
        let got = grads.get(var.as_tensor());
        match (want, got) {
            (Some(want), Some(got)) => {
                let diff = max_abs_diff(want, got);
                assert!(diff <= 1e-5, "`{name}`: gradients differ by {diff}");
            }
            (None, None) => {}
            (want, got) => panic!(
                "`{name}`: plain gradient {}, checkpointed {}",
                want.is_some(),
                got.is_some()
            ),
        }
    }
    let mut drained_again = plain_loss.backward().unwrap();
    let before = drained_again.get_ids().count();
    checkpointing.drain_into(&mut drained_again).unwrap();
    assert_eq!(
        drained_again.get_ids().count(),
        before,
        "a drain empties the store"
    );
}

#[test]
fn a_checkpointed_step_updates_as_the_plain_one() {
    let config = config();
    let params = Params::random(&config, &Device::Cpu).unwrap();
    let copy = || {
        let tensors = params
            .tensors()
            .into_iter()
            .map(|(n, t)| (n, t.copy().unwrap()))
            .collect();
        Params::from_tensors(&params.names, &tensors).unwrap()
    };
    let adamw = AdamWConfig {
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
        weight_decay: 0.0,
        moments: Default::default(),
        seed: 0,
    };
    let batch = batch();
    let mut after = Vec::new();
    for on in [false, true] {
        let mut stepper = Stepper::new(config.clone(), copy(), adamw, DType::F32)
            .unwrap()
            .with_checkpointing(on);
        stepper
            .update(std::slice::from_ref(&batch), 1e-3, 0.0, |model, b| {
                Ok(loss(model, b, 1.0)?.loss)
            })
            .unwrap();
        after.push(stepper.params().tensors());
    }
    let mut moved = 0;
    for (((name, plain), (_, ck)), (_, start)) in
        after[0].iter().zip(&after[1]).zip(params.tensors())
    {
        let diff = max_abs_diff(plain, ck);
        assert!(diff <= 1e-5, "`{name}` after a step differs by {diff}");
        moved += (max_abs_diff(plain, &start) > 0.0) as usize;
    }
    assert!(
        moved > params.names.len() / 2,
        "the step moved {moved} parameters"
    );
}

/// The memory options are left out of the canonical config while off, so the run keys
/// of existing recipes stay what they were; set, they are in it (and in the key).
#[test]
fn memory_options_off_leave_the_canonical_config_alone() {
    use train::grpo::config::GrpoConfig;
    use train::sft::config::SftConfig;
    fn check<C: serde::Serialize + serde::de::DeserializeOwned>(
        kind: &str,
        base: serde_json::Value,
    ) {
        let canonical = |extra: serde_json::Value| {
            let mut v = base.clone();
            for (k, x) in extra.as_object().unwrap() {
                v[k] = x.clone();
            }
            serde_json::to_value(serde_json::from_value::<C>(v).unwrap()).unwrap()
        };
        let plain = canonical(serde_json::json!({}));
        for key in ["activation_checkpointing", "lora"] {
            assert!(plain.get(key).is_none(), "{kind}: `{key}` in {plain}");
        }
        let off = canonical(serde_json::json!({ "activation_checkpointing": false }));
        assert_eq!(plain, off, "{kind}");
        let on = canonical(serde_json::json!({
            "activation_checkpointing": true,
            "lora": { "rank": 8, "alpha": 16.0 },
        }));
        assert_eq!(on["activation_checkpointing"], true, "{kind}");
        assert_eq!(
            on["lora"]["target_modules"].as_array().unwrap().len(),
            7,
            "{kind}"
        );
    }
    check::<SftConfig>("model.sft", serde_json::json!({}));
    check::<GrpoConfig>("model.grpo", serde_json::json!({ "reward": "shapes" }));
}

/// In BF16 the recomputation reaches the FP32 masters through their casts, as the plain
/// backward does: the same gradients, on the `Var`s.
#[test]
fn checkpointing_in_bf16_sends_the_gradients_to_the_fp32_masters() {
    let config = config();
    let params = Params::random(&config, &Device::Cpu).unwrap();
    let batch = batch();
    let mut model = params.model(&config, DType::BF16).unwrap();
    let plain = loss(&model, &batch, 1.0).unwrap().loss.backward().unwrap();
    let checkpointing = Checkpointing::new();
    model.set_checkpointing(Some(checkpointing.clone()));
    let mut grads = loss(&model, &batch, 1.0).unwrap().loss.backward().unwrap();
    checkpointing.drain_into(&mut grads).unwrap();
    let mut layer_params = 0;
    for (name, var) in params.names.iter().zip(&params.vars) {
        let (Some(want), Some(got)) = (plain.get(var.as_tensor()), grads.get(var.as_tensor()))
        else {
            panic!("`{name}` has no gradient on its master");
        };
        assert_eq!(got.dtype(), DType::F32, "`{name}`");
        let scale = want
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let diff = max_abs_diff(want, got);
        assert!(diff <= 1e-6 + 1e-3 * scale, "`{name}`: {diff} of {scale}");
        layer_params += name.starts_with("language_model.model.layers.") as usize;
    }
    assert!(layer_params > 0);
}
