//! One GRPO run, a step at a time (paper.md §3):
//!
//! 1. **Rollouts with dynamic sampling**: each generation batch takes the next
//!    `prompts_per_step` prompts of the seeded stream and samples `group_size`
//!    trajectories each ([`super::rollout`]), in chunks whose images go to the reward
//!    ([`super::reward`]) as soon as they are drawn, so the judge works while the next
//!    chunk is generated; groups whose rewards are all equal are dropped and further
//!    batches drawn, up to `max_gen_batches`, until `prompts_per_step` groups are kept
//!    (the first ones, in generation order).
//! 2. **Advantages** per group ([`super::advantage`]), broadcast to every response
//!    token; the rollout policy's log-probabilities of every token, from one forward.
//! 3. **Updates**: the kept groups in `ppo_mini_batches` mini-batches, one optimiser
//!    step each through the training core ([`crate::core::stepper`]) over micro-batches
//!    of similar lengths, each micro-batch's loss ([`super::loss`]) divided by their
//!    count; the adaptive entropy coefficients ([`super::entropy`]) are read once per
//!    mini-batch and move after its update, once per micro-batch in order.
//!
//! Data-parallel, rank r draws the groups of prompts r, r + N, … of each generation
//! batch (a trajectory's randomness is keyed per prompt and sample, so it is the same
//! whichever rank draws it) and every rank gets all of them; the root alone scores them
//! and shares the rewards ([`super::ranks`]), so every rank keeps the same groups and
//! builds the same mini- and micro-batches. Rank r trains micro-batches r, r + N, … of each mini-batch, each scaled by
//! 1 / all its micro-batches, and the gradients are summed over the ranks: the update
//! is the one-rank update. The entropy readings, the log-probabilities and the
//! metrics are summed over the ranks too; only the root writes the rollout tables.
//!
//! Each step's rollout rows are written as a table of their own under the run's work
//! folder (`step-000012/`), which survives restarts beside the checkpoints; a run that
//! resumes removes the steps after its checkpoint, which it draws again, identically.

use super::advantage::{advantages, informative};
use super::config::GrpoConfig;
use super::entropy::AdaptiveEntropy;
use super::loss::{LabelValues, MicroBatch, Settings, label_log_probs, loss};
use super::ranks::{exchange, merge, share_outcomes};
use super::reward::{Item, Outcome, Pending, Rewarder};
use super::rollout::{RolloutOptions, Trajectory, sample, seed};
use crate::core::batch::{Batch, Sequence, Weights};
use crate::core::harness;
use crate::core::lora::split;
use crate::core::optim::AdamWConfig;
use crate::core::params::Params;
use crate::core::report::Plot;
use crate::core::stepper::Stepper;
use crate::dist::collective::Collective;
use crate::dist::{Replica, share};
use crate::janus::config::JanusConfig;
use crate::janus::draw::png;
use crate::janus::error::{JanusError, Result};
use crate::janus::model::Janus;
use crate::janus::text::TextTokenizer;
use crate::sft::data::{Order, Position};
use crate::tokenizer::ImageTokenizer;
use candle_core::DType;
use datasets::shapes::Metadata;
use datasets::table::{ShardOptions, ShardWriter};
use schemas::rollout::Rollout;
use schemas::{ImageData, Row};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// A prompt of the RL set.
#[derive(Clone, Debug)]
pub struct Prompt {
    pub id: String,
    pub text: String,
    /// Its shapes-GenEval record, if it has one.
    pub record: Option<Metadata>,
}

/// What one RL step did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    /// 1-based.
    pub step: usize,
    /// Mean and std of every scored trajectory's reward, before the filter.
    pub reward_mean: f64,
    pub reward_std: f64,
    pub trajectories: usize,
    /// Trajectories the judge gave no reward.
    pub failed: usize,
    pub generation_batches: usize,
    pub groups: usize,
    pub groups_kept: usize,
    /// Groups whose rewards were all 0, and all 1.
    pub groups_all_zero: usize,
    pub groups_all_one: usize,
    /// Mean entropy of the trained tokens, per modality, and the coefficients.
    pub entropy_text: Option<f64>,
    pub entropy_image: Option<f64>,
    pub alpha_text: f64,
    pub alpha_image: f64,
    /// Tokens whose clipped term counted, and the mean of `log π_old − log π`.
    pub clip_fraction: f64,
    pub approx_kl: f64,
    pub policy_loss: f64,
    /// Rationale tokens of the sampled trajectories: mean, most, fraction capped.
    pub cot_mean: f64,
    pub cot_max: usize,
    pub cot_capped: f64,
    /// Gradient norm before clipping, mean and largest over the step's updates.
    pub grad_norm: f64,
    pub grad_norm_max: f64,
    pub lr: f64,
    pub rollout_seconds: f64,
    /// Time spent waiting for rewards after the last chunk was drawn.
    pub judge_wait_seconds: f64,
    pub update_seconds: f64,
    pub seconds: f64,
    /// Tokens trained on, and per second of update.
    pub tokens: usize,
    pub tokens_per_s: f64,
}

/// The curves of a GRPO run.
pub const PLOTS: &[Plot<StepMetrics>] = &[
    Plot {
        file: "reward.png",
        title: "Reward (before the filter)",
        y: "reward",
        series: &[("mean reward", |m| Some(m.reward_mean))],
    },
    Plot {
        file: "entropy.png",
        title: "Entropy of trained tokens",
        y: "nats",
        series: &[("text", |m| m.entropy_text), ("image", |m| m.entropy_image)],
    },
    Plot {
        file: "alpha.png",
        title: "Entropy coefficient",
        y: "alpha",
        series: &[
            ("text", |m| Some(m.alpha_text)),
            ("image", |m| Some(m.alpha_image)),
        ],
    },
    Plot {
        file: "groups.png",
        title: "Groups per step",
        y: "groups",
        series: &[
            ("kept", |m| Some(m.groups_kept as f64)),
            ("all 0", |m| Some(m.groups_all_zero as f64)),
            ("all 1", |m| Some(m.groups_all_one as f64)),
        ],
    },
    Plot {
        file: "ppo.png",
        title: "Clip fraction and approximate KL",
        y: "value",
        series: &[
            ("clip fraction", |m| Some(m.clip_fraction)),
            ("approx KL", |m| Some(m.approx_kl)),
        ],
    },
    Plot {
        file: "grad_norm.png",
        title: "Gradient norm (before clipping)",
        y: "norm",
        series: &[("grad norm", |m| Some(m.grad_norm))],
    },
];

/// What a checkpoint keeps of a GRPO run beside the weights and the optimiser.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub step: usize,
    /// Where the prompt stream is drawn from next.
    pub position: Position,
    pub metrics: Vec<StepMetrics>,
    /// The entropy controllers (text, image).
    pub entropy: (AdaptiveEntropy, AdaptiveEntropy),
}

/// A micro-batch of trajectories: the batch, which trajectory each row is, and each
/// row's advantage.
type Micro = (Batch, Vec<usize>, Vec<f32>);

/// A sampled trajectory with its place and its reward.
struct Sampled {
    prompt: usize,
    sample: usize,
    generation: usize,
    trajectory: Trajectory,
    image_png: Vec<u8>,
    outcome: Outcome,
}

/// One GRPO run in progress.
pub struct Trainer {
    config: GrpoConfig,
    stepper: Stepper,
    text: TextTokenizer,
    images: Arc<dyn ImageTokenizer>,
    prompts: Vec<Prompt>,
    order: Order,
    /// `None` on a rank other than the root of a replica.
    rewarder: Option<Rewarder>,
    /// The replica's collective (`None`: alone).
    comm: Option<Arc<dyn Collective>>,
    entropy: (AdaptiveEntropy, AdaptiveEntropy),
    /// The frozen starting model, when the KL term is on.
    reference: Option<Janus>,
    /// Names the policy in rollout rows (`<input digest>@<step>`).
    model_id: String,
    step: usize,
    metrics: Vec<StepMetrics>,
    /// Where each step's rollout table goes.
    rollouts: PathBuf,
}

/// Everything a run is made of.
pub struct Setup {
    pub config: GrpoConfig,
    pub model_config: JanusConfig,
    pub text: TextTokenizer,
    pub images: Arc<dyn ImageTokenizer>,
    pub params: Params,
    pub prompts: Vec<Prompt>,
    /// The reward: the root's (`None` on the other ranks of a replica, which take the
    /// root's rewards).
    pub rewarder: Option<Rewarder>,
    pub dtype: DType,
    /// The input model's digest.
    pub model_id: String,
    /// Where each step's rollout table goes (a folder that survives restarts).
    pub rollouts: PathBuf,
    /// This process's rank of a data-parallel run (`None`: alone).
    pub replica: Option<Replica>,
}

impl Trainer {
    pub fn new(setup: Setup) -> Result<Trainer> {
        let Setup {
            config,
            model_config,
            text,
            images,
            params,
            prompts,
            rewarder,
            dtype,
            model_id,
            rollouts,
            replica,
        } = setup;
        config.check().map_err(JanusError::Invalid)?;
        let comm = replica.as_ref().map(|r| r.comm.clone());
        if rewarder.is_none() && comm.as_ref().is_none_or(|c| c.rank() == 0) {
            return Err(JanusError::Invalid(
                "the root rank has no reward to score with".into(),
            ));
        }
        if prompts.is_empty() {
            return Err(JanusError::Invalid("no prompts to train on".into()));
        }
        let reference = if config.kl_coef > 0.0 {
            // A copy of the starting weights, frozen.
            let tensors = params
                .tensors()
                .into_iter()
                .map(|(n, t)| Ok((n, t.copy()?)))
                .collect::<Result<std::collections::HashMap<_, _>>>()?;
            Some(Params::from_tensors(&params.names, &tensors)?.model(&model_config, dtype)?)
        } else {
            None
        };
        let adamw = AdamWConfig {
            beta1: config.beta1,
            beta2: config.beta2,
            eps: config.eps,
            weight_decay: config.weight_decay,
            moments: config.optimizer.moments,
            seed: config.seed,
        };
        let e = config.entropy;
        let order = Order::new(
            config.seed,
            prompts.len(),
            Position {
                epoch: 0,
                cursor: 0,
            },
        );
        let (params, frozen) = split(&model_config, params, config.lora.clone(), dtype)?;
        let stepper = Stepper::replicated(model_config, params, adamw, dtype, replica)?
            .with_checkpointing(config.activation_checkpointing)
            .with_frozen(frozen);
        Ok(Trainer {
            stepper,
            entropy: (
                AdaptiveEntropy::new(e.text.target, e.alpha_max, e.lr),
                AdaptiveEntropy::new(e.image.target, e.alpha_max, e.lr),
            ),
            config,
            text,
            images,
            prompts,
            order,
            rewarder,
            comm,
            reference,
            model_id,
            step: 0,
            metrics: Vec::new(),
            rollouts,
        })
    }

    pub fn metrics(&self) -> &[StepMetrics] {
        &self.metrics
    }

    /// The folders of the steps' rollout tables, in step order.
    pub fn rollout_tables(&self) -> Result<Vec<PathBuf>> {
        let mut steps: Vec<(usize, PathBuf)> = std::fs::read_dir(&self.rollouts)
            .map_err(|e| JanusError::io(&self.rollouts, e))?
            .filter_map(|e| e.ok())
            .filter_map(|e| Some((step_of(&e.path())?, e.path())))
            .collect();
        steps.sort();
        Ok(steps.into_iter().map(|(_, p)| p).collect())
    }

    /// The model as it stands, and the text tokenizer.
    pub fn model(&mut self) -> Result<(&Janus, &TextTokenizer)> {
        Ok((self.stepper.model()?, &self.text))
    }

    pub fn save_model(
        &self,
        dir: &std::path::Path,
        tokenizer: &std::path::Path,
        kept: Option<&Params>,
    ) -> Result<()> {
        self.stepper.save_model(dir, tokenizer, kept)
    }

    fn rollout_options(&self) -> RolloutOptions {
        let c = &self.config;
        RolloutOptions {
            template: c.template(),
            max_rationale_tokens: c.rationale.then_some(c.max_rationale_tokens),
            cfg_weight: c.cfg_weight,
            unconditional: c.unconditional,
            image_tokens: self.images.tokens(),
            batch_size: c.rollout_batch,
        }
    }

    /// Draw one generation batch: `group_size` trajectories of each of the next
    /// `prompts_per_step` prompts, scored. Returns them with the seconds spent drawing
    /// and waiting for rewards afterwards. On a replica each rank draws the groups of
    /// its share of the prompts and every rank gets all of them; the root scores them.
    fn generation(&mut self, generation: usize) -> Result<(Vec<Sampled>, f64, f64)> {
        let options = self.rollout_options();
        let (step, seed_of, group) = (self.step, self.config.seed, self.config.group_size);
        let prompts: Vec<usize> = (0..self.config.prompts_per_step)
            .map(|_| self.order.next_sample().0)
            .collect();
        let rows: Vec<(usize, usize)> = prompts
            .iter()
            .flat_map(|&p| (0..group).map(move |s| (p, s)))
            .collect();
        let (rank, world) = self.stepper.rank_and_world();
        let places: Vec<usize> = (0..prompts.len()).collect();
        let mine: Vec<usize> = share(&places, rank, world).copied().collect();
        let my_rows: Vec<usize> = (0..rows.len())
            .filter(|i| mine.contains(&(i / group)))
            .collect();
        let start = Instant::now();
        let Trainer {
            stepper,
            text,
            images,
            prompts: all,
            rewarder,
            config,
            comm,
            ..
        } = self;
        let model = stepper.model()?;
        let mut drawn: Vec<Option<Trajectory>> = vec![None; rows.len()];
        let mut pngs: Vec<Vec<u8>> = vec![Vec::new(); rows.len()];
        // Each scored chunk's rows, and its pending rewards.
        let mut pending: Vec<(Vec<usize>, Pending)> = Vec::new();
        for chunk in my_rows.chunks(config.rollout_batch) {
            let requests: Vec<(&str, u64)> = chunk
                .iter()
                .map(|&i| {
                    let prompt = &all[rows[i].0];
                    (
                        prompt.text.as_str(),
                        seed(seed_of, step, generation, &prompt.id, rows[i].1),
                    )
                })
                .collect();
            for (&i, t) in chunk.iter().zip(sample(model, text, &requests, &options)?) {
                drawn[i] = Some(t);
            }
            if let Some(rewarder) = rewarder {
                let batch = chunk
                    .iter()
                    .map(|&i| (i, &all[rows[i].0], drawn[i].as_ref().expect("drawn")));
                let scoring = score(rewarder, &**images, batch, &mut pngs, config.overlap)?;
                pending.push((chunk.to_vec(), scoring));
            }
        }
        let trajectories = exchange(comm.as_deref(), drawn)?;
        let drawing = start.elapsed().as_secs_f64();
        if let Some(rewarder) = rewarder {
            // The other ranks' trajectories.
            let others: Vec<usize> = (0..rows.len()).filter(|i| !my_rows.contains(i)).collect();
            for chunk in others.chunks(config.rollout_batch) {
                let batch = chunk
                    .iter()
                    .map(|&i| (i, &all[rows[i].0], &trajectories[i]));
                let scoring = score(rewarder, &**images, batch, &mut pngs, config.overlap)?;
                pending.push((chunk.to_vec(), scoring));
            }
        }
        let start = Instant::now();
        let mut outcomes: Vec<Option<Outcome>> = vec![None; rows.len()];
        for (chunk, p) in pending {
            for (&i, o) in chunk.iter().zip(wait(p)?) {
                outcomes[i] = Some(o);
            }
        }
        let scored = rewarder
            .is_some()
            .then(|| outcomes.into_iter().map(|o| o.expect("scored")).collect());
        let outcomes = share_outcomes(comm.as_deref(), scored, rows.len())?;
        let waiting = start.elapsed().as_secs_f64();
        let sampled = rows
            .into_iter()
            .zip(trajectories)
            .zip(pngs)
            .zip(outcomes)
            .map(
                |((((prompt, sample), trajectory), image_png), outcome)| Sampled {
                    prompt,
                    sample,
                    generation,
                    trajectory,
                    image_png,
                    outcome,
                },
            )
            .collect();
        Ok((sampled, drawing, waiting))
    }

    /// One RL step (see the module documentation).
    pub fn train_step(&mut self) -> Result<StepMetrics> {
        let start = Instant::now();
        let c = self.config.clone();
        let mut m = StepMetrics {
            step: self.step + 1,
            lr: c.lr,
            ..StepMetrics::default()
        };
        // 1. Rollouts, generation batch after generation batch, until enough groups.
        let mut sampled: Vec<Sampled> = Vec::new();
        let mut kept: Vec<Vec<usize>> = Vec::new();
        for generation in 0..c.max_gen_batches {
            let (batch, drawing, waiting) = self.generation(generation)?;
            m.rollout_seconds += drawing;
            m.judge_wait_seconds += waiting;
            m.generation_batches += 1;
            let first = sampled.len();
            sampled.extend(batch);
            for group in (first..sampled.len())
                .collect::<Vec<_>>()
                .chunks(c.group_size)
            {
                let rewards = group_rewards(&sampled, group);
                m.groups += 1;
                let scored: Vec<f64> = rewards.iter().flatten().copied().collect();
                m.groups_all_zero +=
                    usize::from(!scored.is_empty() && scored.iter().all(|&r| r == 0.0));
                m.groups_all_one +=
                    usize::from(!scored.is_empty() && scored.iter().all(|&r| r == 1.0));
                if !c.dynamic_sampling || informative(&rewards) {
                    kept.push(group.to_vec());
                }
            }
            if kept.len() >= c.prompts_per_step {
                break;
            }
        }
        kept.truncate(c.prompts_per_step);
        self.trajectory_metrics(&sampled, &mut m)?;
        m.groups_kept = kept.len();
        // 2. Advantages and the rollout policy's log-probabilities.
        let mut advantage = vec![None; sampled.len()];
        for group in &kept {
            for (&i, a) in group
                .iter()
                .zip(advantages(&group_rewards(&sampled, group)))
            {
                advantage[i] = a;
            }
        }
        let update_start = Instant::now();
        let mini_batches = self.mini_batches(&sampled, &kept, &advantage)?;
        let mut log_prob = vec![None; sampled.len()];
        let mut prepared = Vec::with_capacity(mini_batches.len());
        let (rank, world) = self.stepper.rank_and_world();
        for mini in mini_batches {
            // This rank's micro-batches, by their place in the mini-batch.
            let places: Vec<usize> = (0..mini.len()).collect();
            let mine: Vec<usize> = share(&places, rank, world).copied().collect();
            let count = mini.len();
            let mut micro = Vec::with_capacity(mine.len());
            for (place, (batch, rows, advantages)) in mini
                .into_iter()
                .enumerate()
                .filter(|(j, _)| mine.contains(j))
            {
                let old = label_log_probs(self.stepper.model()?, &batch)?;
                for (r, sum) in row_sums(&batch, &old).into_iter().enumerate() {
                    log_prob[rows[r]] = Some(sum);
                }
                let reference = match &self.reference {
                    Some(model) => Some(label_log_probs(model, &batch)?),
                    None => None,
                };
                micro.push((
                    place,
                    MicroBatch {
                        batch,
                        advantages,
                        old,
                        reference,
                    },
                ));
            }
            prepared.push((count, micro));
        }
        merge(self.comm.as_deref(), &mut log_prob)?;
        // 3. One optimiser step per mini-batch.
        let settings = Settings {
            clip: c.clip_ratio,
            kl_coef: c.kl_coef,
        };
        let (mut clipped, mut kl, mut tokens, mut policy) = (0usize, 0.0, 0usize, 0.0);
        let (mut h_text, mut h_image) = ((0.0, 0usize), (0.0, 0usize));
        let (mut norms, mut updates) = (0.0, 0usize);
        let Trainer {
            stepper,
            entropy,
            comm,
            ..
        } = self;
        for (count, micro) in &prepared {
            let scale = 1.0 / *count as f64;
            let alphas = if c.entropy.enabled {
                (entropy.0.alpha(), entropy.1.alpha())
            } else {
                (0.0, 0.0)
            };
            // Each micro-batch's mean entropy (text, image), by its place.
            let mut readings = vec![None; 2 * count];
            let norm = stepper.update(micro, c.lr, c.clip_norm, |model, (place, mb)| {
                let parts = loss(model, mb, settings, alphas, scale)?;
                readings[2 * place] = parts.entropy_text;
                readings[2 * place + 1] = parts.entropy_image;
                clipped += parts.clipped;
                kl += parts.kl_sum;
                tokens += parts.tokens;
                policy += parts.policy * scale;
                Ok(parts.loss)
            })?;
            merge(comm.as_deref(), &mut readings)?;
            for pair in readings.chunks(2) {
                if let Some(h) = pair[0] {
                    h_text = (h_text.0 + h, h_text.1 + 1);
                    if c.entropy.enabled {
                        entropy.0.update(h);
                    }
                }
                if let Some(h) = pair[1] {
                    h_image = (h_image.0 + h, h_image.1 + 1);
                    if c.entropy.enabled {
                        entropy.1.update(h);
                    }
                }
            }
            norms += norm;
            updates += 1;
            m.grad_norm_max = m.grad_norm_max.max(norm);
        }
        let mut sums = [clipped as f64, kl, tokens as f64, policy];
        stepper.sum_over_ranks(&mut sums)?;
        let [clipped, kl, tokens, policy] = sums;
        let tokens = tokens as usize;
        m.update_seconds = update_start.elapsed().as_secs_f64();
        let mean = |(sum, n): (f64, usize)| (n > 0).then(|| sum / n as f64);
        m.entropy_text = mean(h_text);
        m.entropy_image = mean(h_image);
        m.alpha_text = self.entropy.0.alpha();
        m.alpha_image = self.entropy.1.alpha();
        m.clip_fraction = clipped / tokens.max(1) as f64;
        m.approx_kl = kl / tokens.max(1) as f64;
        m.policy_loss = policy / updates.max(1) as f64;
        m.grad_norm = norms / updates.max(1) as f64;
        m.tokens = tokens;
        m.tokens_per_s = tokens as f64 / m.update_seconds.max(1e-9);
        if !(m.policy_loss.is_finite() && m.grad_norm.is_finite()) {
            return Err(JanusError::Invalid(format!(
                "the loss is not finite at step {} (policy loss {}, grad norm {})",
                m.step, m.policy_loss, m.grad_norm
            )));
        }
        if self.stepper.is_root() {
            let rows = self.rows(sampled, &kept, &advantage, &log_prob)?;
            write_table(&self.rollouts.join(format!("step-{:06}", m.step)), &rows)?;
        }
        self.step += 1;
        m.seconds = start.elapsed().as_secs_f64();
        self.metrics.push(m.clone());
        Ok(m)
    }

    /// Rewards, failures and rationale lengths of every sampled trajectory.
    fn trajectory_metrics(&self, sampled: &[Sampled], m: &mut StepMetrics) -> Result<()> {
        let rewards: Vec<f64> = sampled
            .iter()
            .filter_map(|s| s.outcome.as_ref().ok().map(|o| o.reward))
            .collect();
        m.trajectories = sampled.len();
        m.failed = sampled.len() - rewards.len();
        if m.failed as f64 > self.config.max_failed_fraction * sampled.len() as f64 {
            let first = sampled
                .iter()
                .find_map(|s| s.outcome.as_ref().err())
                .cloned()
                .unwrap_or_default();
            return Err(JanusError::Invalid(format!(
                "the reward failed for {} of {} trajectories at step {}, more than max_failed_fraction = {}; first: {first}",
                m.failed,
                sampled.len(),
                m.step,
                self.config.max_failed_fraction
            )));
        }
        let n = rewards.len().max(1) as f64;
        m.reward_mean = rewards.iter().sum::<f64>() / n;
        m.reward_std = (rewards
            .iter()
            .map(|r| (r - m.reward_mean).powi(2))
            .sum::<f64>()
            / n)
            .sqrt();
        let lengths: Vec<usize> = sampled
            .iter()
            .map(|s| s.trajectory.rationale_ids.len())
            .collect();
        m.cot_mean = lengths.iter().sum::<usize>() as f64 / lengths.len().max(1) as f64;
        m.cot_max = lengths.iter().copied().max().unwrap_or(0);
        m.cot_capped = sampled.iter().filter(|s| s.trajectory.capped).count() as f64
            / sampled.len().max(1) as f64;
        Ok(())
    }

    /// The kept groups' scored trajectories as `ppo_mini_batches` mini-batches (whole
    /// groups, in order), each cut into micro-batches of similar lengths.
    fn mini_batches(
        &mut self,
        sampled: &[Sampled],
        kept: &[Vec<usize>],
        advantage: &[Option<f64>],
    ) -> Result<Vec<Vec<Micro>>> {
        let c = &self.config;
        let device = self.stepper.device();
        let all_ones = Weights {
            text: 1.0,
            image: 1.0,
            begin_of_image: 1.0,
        };
        let parts = c.ppo_mini_batches.min(kept.len().max(1));
        let per = kept.len().div_ceil(parts.max(1)).max(1);
        let mut out = Vec::new();
        for groups in kept.chunks(per) {
            let mut rows: Vec<(usize, Sequence)> = groups
                .iter()
                .flatten()
                .filter(|&&i| advantage[i].is_some())
                .map(|&i| (i, sampled[i].trajectory.sequence(&self.text, c.rationale)))
                .collect();
            rows.sort_by_key(|(_, s)| std::cmp::Reverse(s.ids.len()));
            let mut micro = Vec::new();
            for chunk in rows.chunks(c.micro_batch) {
                let sequences: Vec<Sequence> = chunk.iter().map(|(_, s)| s.clone()).collect();
                let batch = Batch::new(&sequences, self.text.special.pad, all_ones, &device)?;
                let ids: Vec<usize> = chunk.iter().map(|(i, _)| *i).collect();
                let adv = ids
                    .iter()
                    .map(|&i| advantage[i].unwrap_or(0.0) as f32)
                    .collect();
                micro.push((batch, ids, adv));
            }
            if !micro.is_empty() {
                out.push(micro);
            }
        }
        Ok(out)
    }

    /// The step's rollout rows.
    fn rows(
        &self,
        sampled: Vec<Sampled>,
        kept: &[Vec<usize>],
        advantage: &[Option<f64>],
        log_prob: &[Option<f64>],
    ) -> Result<Vec<Rollout>> {
        let kept: std::collections::HashSet<usize> = kept.iter().flatten().copied().collect();
        let step = self.step as u32 + 1;
        sampled
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                let prompt = &self.prompts[s.prompt];
                let id = format!("{step}-{}-{}-{}", s.generation, prompt.id, s.sample);
                let (reward, rewards, answer, key, failure) = match s.outcome {
                    Ok(o) => (
                        o.reward,
                        Some(serde_json::to_string(&o.parts).expect("numbers serialise")),
                        o.answer,
                        o.request_key,
                        None,
                    ),
                    Err(why) => (0.0, None, None, None, Some(why)),
                };
                Ok(Rollout {
                    prompt_id: prompt.id.clone(),
                    prompt: prompt.text.clone(),
                    step,
                    sample: s.sample as u32,
                    rationale: self.text.decode(&s.trajectory.rationale_ids)?,
                    image: Some(ImageData::from_bytes(
                        s.image_png,
                        Some(format!("{id}.png")),
                    )),
                    image_codes: s.trajectory.codes.iter().map(|&c| c as u16).collect(),
                    reward,
                    advantage: advantage[i].unwrap_or(0.0),
                    model: format!("{}@{}", self.model_id, self.step),
                    generation: Some(s.generation as u32),
                    rationale_tokens: Some(s.trajectory.rationale_ids.len() as u32),
                    capped: Some(s.trajectory.capped),
                    rewards,
                    judge_answer: answer,
                    request_key: key,
                    failure,
                    kept: Some(kept.contains(&i) && advantage[i].is_some()),
                    log_prob: log_prob[i],
                    id,
                })
            })
            .collect()
    }
}

/// The step of a rollout folder `step-000012`.
fn step_of(path: &Path) -> Option<usize> {
    path.file_name()?
        .to_str()?
        .strip_prefix("step-")?
        .parse()
        .ok()
}

/// Write `rows` as the table `dir` (replacing one left by an interrupted run).
fn write_table(dir: &Path, rows: &[Rollout]) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| JanusError::io(dir, e))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| JanusError::io(dir, e))?;
    let invalid = |e: String| JanusError::Invalid(format!("{}: {e}", dir.display()));
    let mut writer = ShardWriter::new(
        dir,
        Arc::new(Rollout::SCHEMA.arrow_schema()),
        ShardOptions::default(),
    );
    let batch = schemas::to_batch(rows).map_err(|e| invalid(e.to_string()))?;
    writer.write(&batch).map_err(|e| invalid(e.to_string()))?;
    writer.finish().map_err(|e| invalid(e.to_string()))?;
    Ok(())
}

/// The rewards of a group's members (`None`: failed).
fn group_rewards(sampled: &[Sampled], group: &[usize]) -> Vec<Option<f64>> {
    group
        .iter()
        .map(|&i| sampled[i].outcome.as_ref().ok().map(|o| o.reward))
        .collect()
}

/// The sum of each row's label values.
fn row_sums(batch: &Batch, values: &LabelValues) -> Vec<f64> {
    let rows = batch.positions / batch.width.max(1);
    let mut sums = vec![0.0; rows];
    for (targets, v) in [(&batch.text, &values.text), (&batch.image, &values.image)] {
        for (p, x) in targets.positions.iter().zip(v) {
            sums[*p as usize / batch.width] += f64::from(*x);
        }
    }
    sums
}

/// Decode the images of `batch`'s trajectories (row, prompt, trajectory), keep their
/// PNGs in `pngs` by row and start scoring them (waiting for the rewards unless
/// `overlap`).
fn score<'a>(
    rewarder: &Rewarder,
    images: &dyn ImageTokenizer,
    batch: impl Iterator<Item = (usize, &'a Prompt, &'a Trajectory)>,
    pngs: &mut [Vec<u8>],
    overlap: bool,
) -> Result<Pending> {
    let mut items = Vec::new();
    for (i, prompt, t) in batch {
        let codes: Vec<u16> = t.codes.iter().map(|&c| c as u16).collect();
        let image = images.decode(&codes).map_err(JanusError::Invalid)?;
        pngs[i] = png(&image)?;
        items.push(Item {
            prompt: prompt.text.clone(),
            record: prompt.record.clone(),
            image,
        });
    }
    let submitted = rewarder.submit(Arc::new(items));
    Ok(if overlap {
        submitted
    } else {
        Pending::Ready(wait(submitted)?)
    })
}

/// A pending score's outcomes, its failure as the trainer's error.
fn wait(p: Pending) -> Result<Vec<Outcome>> {
    p.wait().map_err(|e| JanusError::Invalid(e.to_string()))
}

impl harness::Trainer for Trainer {
    type Metrics = StepMetrics;
    type Progress = Progress;

    fn step(&self) -> usize {
        self.step
    }

    fn train_step(&mut self) -> Result<StepMetrics> {
        Trainer::train_step(self)
    }

    fn log_line(&self, m: &StepMetrics) -> String {
        let h = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
        let per_step =
            self.metrics.iter().map(|m| m.seconds).sum::<f64>() / self.metrics.len().max(1) as f64;
        let eta = per_step * self.config.steps.saturating_sub(m.step) as f64;
        format!(
            "step {}/{} (ETA {:.0} s): reward {:.3} ± {:.3} over {} trajectories ({} failed), {}/{} groups kept in {} generation batch(es), entropy text {} image {}, α {:.1e}/{:.1e}, clip {:.3}, kl {:.4}, grad norm {:.3}, rationale {:.1} tokens ({:.0}% capped), rollout {:.1} s, judge wait {:.1} s, update {:.1} s ({:.0} tokens/s)",
            m.step,
            self.config.steps,
            eta,
            m.reward_mean,
            m.reward_std,
            m.trajectories,
            m.failed,
            m.groups_kept,
            m.groups,
            m.generation_batches,
            h(m.entropy_text),
            h(m.entropy_image),
            m.alpha_text,
            m.alpha_image,
            m.clip_fraction,
            m.approx_kl,
            m.grad_norm,
            m.cot_mean,
            100.0 * m.cot_capped,
            m.rollout_seconds,
            m.judge_wait_seconds,
            m.update_seconds,
            m.tokens_per_s
        )
    }

    fn stepper(&self) -> &Stepper {
        &self.stepper
    }

    fn stepper_mut(&mut self) -> &mut Stepper {
        &mut self.stepper
    }

    fn progress(&self) -> Progress {
        Progress {
            step: self.step,
            position: self.order.position().clone(),
            metrics: self.metrics.clone(),
            entropy: self.entropy.clone(),
        }
    }

    fn resume(&mut self, progress: Progress) -> Result<()> {
        // Steps after the checkpoint are drawn again (the root's tables).
        let tables = if self.stepper.is_root() {
            self.rollout_tables()?
        } else {
            Vec::new()
        };
        for dir in tables {
            if step_of(&dir).is_some_and(|s| s > progress.step) {
                std::fs::remove_dir_all(&dir).map_err(|e| JanusError::io(&dir, e))?;
            }
        }
        self.step = progress.step;
        self.metrics = progress.metrics;
        self.entropy = progress.entropy;
        self.order = Order::new(self.config.seed, self.prompts.len(), progress.position);
        Ok(())
    }
}
