//! The loop every training stage runs ([`fit`]): take up the newest checkpoint of the
//! node run if there is one, then step until done, with the log line, the held-out
//! evaluation and the checkpoint on their own periods, and a last evaluation at the end.
//! The step itself (forward → loss → backward → clip → AdamW) is the trainer's, through
//! [`super::stepper::Stepper::update`].

use super::stepper::Stepper;
use crate::janus::error::Result;
use pipeline::{StageContext, StageError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What the loop needs of a trainer.
pub trait Trainer {
    type Metrics;
    /// What a checkpoint keeps beside the weights and the optimiser.
    type Progress: Serialize + DeserializeOwned;
    /// Optimiser steps done.
    fn step(&self) -> usize;
    /// One step (an error when the loss is not finite).
    fn train_step(&mut self) -> Result<Self::Metrics>;
    /// The step's log line.
    fn log_line(&self, metrics: &Self::Metrics) -> String;
    fn stepper(&self) -> &Stepper;
    fn stepper_mut(&mut self) -> &mut Stepper;
    fn progress(&self) -> Self::Progress;
    fn resume(&mut self, progress: Self::Progress) -> Result<()>;
}

/// How long to train and how often to log, evaluate and checkpoint (0: never; the
/// last step is always logged and evaluated, never checkpointed).
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    pub steps: usize,
    pub log_every: usize,
    pub eval_every: usize,
    pub checkpoint_every: usize,
}

#[derive(Serialize, Deserialize)]
struct Saved<P> {
    trainer: P,
    evals: Vec<Value>,
}

fn due(step: usize, every: usize) -> bool {
    every > 0 && step.is_multiple_of(every)
}

/// Train to `schedule.steps`; `evaluate` scores the model as it stands (`Null`: no
/// evaluation). Returns the evaluations, in order.
pub fn fit<T: Trainer>(
    trainer: &mut T,
    schedule: Schedule,
    ctx: &StageContext,
    mut evaluate: impl FnMut(&mut T) -> std::result::Result<Value, StageError>,
) -> std::result::Result<Vec<Value>, StageError> {
    let err = |e: crate::janus::JanusError| StageError::msg(e);
    let checkpoints = ctx.checkpoints();
    let mut evals = Vec::new();
    if let Some((step, dir)) = checkpoints.latest()? {
        let saved: Saved<T::Progress> = trainer.stepper_mut().restore(&dir).map_err(err)?;
        trainer.resume(saved.trainer).map_err(err)?;
        evals = saved.evals;
        ctx.log(format!("resumed from the checkpoint of step {step}"));
    }
    ctx.progress.set_total(schedule.steps as u64, "steps");
    ctx.progress.inc(trainer.step() as u64);
    while trainer.step() < schedule.steps {
        ctx.check_cancelled()?;
        let metrics = trainer.train_step().map_err(err)?;
        let step = trainer.step();
        let last = step == schedule.steps;
        ctx.progress.inc(1);
        ctx.count("steps", 1);
        if step == 1 || last || due(step, schedule.log_every.max(1)) {
            ctx.log(trainer.log_line(&metrics));
            ctx.emit_counters();
        }
        if due(step, schedule.eval_every) && !last {
            let result = evaluate(trainer)?;
            if !result.is_null() {
                evals.push(result);
            }
        }
        if due(step, schedule.checkpoint_every) && !last {
            let saved = Saved {
                trainer: trainer.progress(),
                evals: evals.clone(),
            };
            // Data-parallel: only the root writes; the others take part in gathering
            // a sharded optimiser.
            if trainer.stepper().is_root() {
                checkpoints.save(step as u64, |dir| {
                    trainer.stepper().save_checkpoint(dir, &saved).map_err(err)
                })?;
            } else {
                trainer.stepper().whole_optimizer().map_err(err)?;
            }
        }
    }
    let result = evaluate(trainer)?;
    if !result.is_null() {
        evals.push(result);
    }
    Ok(evals)
}
