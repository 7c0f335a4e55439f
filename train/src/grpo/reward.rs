//! Rewards, chosen in the config ([`RewardConfig`]):
//!
//! - `vlm`: ReasonGen-R1's judge (paper.md §3.2) over any OpenAI-compatible endpoint,
//!   through the `llm` crate's client (rate limits, `Retry-After`, breaker, ledger,
//!   budgets) and the memo of answers, keyed with the request, the image's bytes
//!   included, so no image is judged twice. The request is [`eval::vlm`]'s: the exact
//!   template, the prompt without "A photo of ", the image upscaled to 512² as a PNG,
//!   greedy decoding and 1,024 tokens unless the config says otherwise; the answer's
//!   last `\boxed{}` is the reward. `endpoint.base_url = "builtin:shapes-vlm"` starts
//!   the shapes world's judge model ([`eval::vlm::ShapesVlm`]) on loopback for the run.
//!   A request that still fails after its retries gives no reward: the trajectory is
//!   marked failed with the reason.
//! - `shapes`: the exact shapes judge in-process, on the decoded image.
//! - `sum`: a weighted sum of rewards, each part recorded.
//!
//! Scoring is started for a batch ([`Rewarder::submit`]) and collected later
//! ([`Pending::wait`]), so that the trainer generates the next batch while a judge
//! answers; the judge takes one batch at a time (each with its own concurrency), so a
//! request two batches hold is sent once.

use datasets::shapes::{Judge, JudgeOptions, Metadata};
use eval::vlm::{checkable, judge_image, judge_text, reward, start_builtin};
use image::RgbImage;
use llm::config::{Executor, LlmConfig};
use llm::cost::TokenCounter;
use llm::mock::MockServer;
use llm::template::{Builtin, Template};
use llm::{Answer, Expect, Job, Session, Shape};
use pipeline::{StageContext, StageError};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The memo namespace of the judge's answers (the LLM stages' namespace).
const ANSWERS_NAMESPACE: &str = "llm.chat";
/// Greedy decoding and 1,024 tokens, as ReasonGen-R1's judge.
const JUDGE_MAX_TOKENS: u32 = 1024;

/// Which reward.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RewardConfig {
    /// The exact shapes judge, in-process (prompts need shapes-GenEval records).
    Shapes,
    /// ReasonGen-R1's VLM judge over an OpenAI-compatible endpoint (the LLM stages'
    /// config: endpoint, limits, prices, budget_usd, cost; `sampling` defaults to
    /// temperature 0 and max_tokens 1024).
    Vlm(Box<LlmConfig>),
    /// A weighted sum of rewards.
    Sum(Vec<Weighted>),
}

/// One part of a sum.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Weighted {
    pub weight: f64,
    pub reward: RewardConfig,
}

impl RewardConfig {
    pub fn check(&self) -> Result<(), String> {
        match self {
            RewardConfig::Shapes => Ok(()),
            RewardConfig::Vlm(c) => {
                if c.executor != Executor::Online {
                    return Err("reward.vlm: the judge runs online (executor = \"online\")".into());
                }
                if c.template.system.is_some() || c.template.user.is_some() {
                    return Err("reward.vlm: the judge's template is ReasonGen-R1's".into());
                }
                // The builtin server's URL is known once the run starts it.
                checkable(&judge_config(c))
                    .check(false)
                    .map_err(|e| format!("reward.vlm: {e}"))
            }
            RewardConfig::Sum(parts) => {
                if parts.is_empty() {
                    return Err("reward.sum needs at least one part".into());
                }
                parts.iter().try_for_each(|p| p.reward.check())
            }
        }
    }

    /// Whether some part needs shapes-GenEval records with the prompts.
    pub fn needs_records(&self) -> bool {
        match self {
            RewardConfig::Shapes => true,
            RewardConfig::Vlm(_) => false,
            RewardConfig::Sum(parts) => parts.iter().any(|p| p.reward.needs_records()),
        }
    }
}

/// The judge's config with ReasonGen-R1's sampling where the recipe leaves it open.
pub fn judge_config(config: &LlmConfig) -> LlmConfig {
    let mut c = config.clone();
    c.sampling.temperature.get_or_insert(0.0);
    c.sampling.max_tokens.get_or_insert(JUDGE_MAX_TOKENS);
    c
}

/// The shape of the judge's requests under `config` (from [`judge_config`]):
/// ReasonGen-R1's template with the image where it says `<image>`, text answers.
pub fn judge_shape(config: &LlmConfig, recipe_dir: &std::path::Path) -> Result<Shape, String> {
    let builtin = Builtin {
        name: "reasongen-r1-judge",
        version: 1,
        system: "",
        user: "{before}<image>{after}",
    };
    let template = Template::new(&builtin, &config.template, &["before", "after"])?;
    let counter = TokenCounter::new(&config.cost, recipe_dir)?;
    Shape::new(config, template, None, "judge", counter)
}

/// The judge request of `image` for `prompt`, and its key in the memo: what a rollout
/// row's `request_key` names.
pub fn judge_request(
    shape: &Shape,
    prompt: &str,
    image: &RgbImage,
) -> Result<(pipeline::Digest, llm::Request), String> {
    let png = crate::janus::draw::png(&judge_image(image)?).map_err(|e| e.to_string())?;
    let (before, after) = judge_text(prompt);
    let fill = |slot: &str| {
        if slot == "before" {
            before.clone()
        } else {
            after.clone()
        }
    };
    shape.build(fill, Some(&png))
}

/// One image to score.
pub struct Item {
    pub prompt: String,
    /// The prompt's shapes-GenEval record, when it has one.
    pub record: Option<Metadata>,
    pub image: RgbImage,
}

/// A reward and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Scored {
    pub reward: f64,
    /// Each part's value, by name.
    pub parts: BTreeMap<String, f64>,
    /// The judge's answer (VLM).
    pub answer: Option<String>,
    /// The judge request's key in the memo.
    pub request_key: Option<String>,
}

/// A reward, or why there is none.
pub type Outcome = Result<Scored, String>;

/// The judge model behind a VLM reward.
pub struct Vlm {
    session: Arc<Session>,
    /// One batch at a time goes to the judge, so a request of a later batch that an
    /// earlier one holds too is found in the memo rather than sent twice.
    turn: tokio::sync::Mutex<()>,
    shape: Shape,
    progress_secs: f64,
    /// The shapes VLM, when the run started it.
    _server: Option<MockServer>,
}

/// Scores images.
pub enum Rewarder {
    Shapes(Judge),
    Vlm(Arc<Vlm>, tokio::runtime::Handle),
    Sum(Vec<(f64, String, Rewarder)>),
}

/// Scores being worked out.
pub enum Pending {
    Ready(Vec<Outcome>),
    Judging(
        tokio::task::JoinHandle<Result<Vec<Outcome>, StageError>>,
        tokio::runtime::Handle,
    ),
    Sum(Vec<(f64, String, Pending)>),
}

impl Rewarder {
    /// The rewarder of `config` for a run of `ctx`, scoring about `items` images in all
    /// (for the judge's progress line); `handle` runs the judge's requests.
    pub fn open(
        config: &RewardConfig,
        ctx: &Arc<StageContext>,
        items: u64,
        handle: &tokio::runtime::Handle,
    ) -> Result<Rewarder, StageError> {
        Ok(match config {
            RewardConfig::Shapes => Rewarder::Shapes(Judge::new(JudgeOptions::default())),
            RewardConfig::Vlm(c) => {
                let mut c = judge_config(c);
                // Built before the shapes VLM's port replaces `builtin:shapes-vlm`, so
                // that request keys, which hold the base URL, stay the same across runs.
                let shape = judge_shape(&c, &ctx.recipe_dir).map_err(StageError::msg)?;
                let server = start_builtin(&mut c).map_err(StageError::msg)?;
                if let Some(s) = &server {
                    ctx.log(format!("the shapes VLM answers at {}", s.url()));
                }
                // The session's memo writer runs on the runtime.
                let _runtime = handle.enter();
                let session = Session::open(
                    &c,
                    ctx.clone(),
                    items,
                    ANSWERS_NAMESPACE,
                    Expect::Text,
                    false,
                )?;
                Rewarder::Vlm(
                    Arc::new(Vlm {
                        session,
                        turn: tokio::sync::Mutex::new(()),
                        shape,
                        progress_secs: c.progress_secs,
                        _server: server,
                    }),
                    handle.clone(),
                )
            }
            RewardConfig::Sum(parts) => Rewarder::Sum(
                parts
                    .iter()
                    .map(|p| {
                        let name = match &p.reward {
                            RewardConfig::Shapes => "shapes",
                            RewardConfig::Vlm(_) => "vlm",
                            RewardConfig::Sum(_) => "sum",
                        };
                        Ok((
                            p.weight,
                            name.to_string(),
                            Rewarder::open(&p.reward, ctx, items, handle)?,
                        ))
                    })
                    .collect::<Result<_, StageError>>()?,
            ),
        })
    }

    /// Start scoring `items`.
    pub fn submit(&self, items: Arc<Vec<Item>>) -> Pending {
        match self {
            Rewarder::Shapes(judge) => Pending::Ready(
                items
                    .iter()
                    .map(|item| {
                        let record = item.record.as_ref().ok_or_else(|| {
                            format!("prompt `{}` has no shapes-GenEval record", item.prompt)
                        })?;
                        let reward = f64::from(u8::from(judge.score(&item.image, record).correct));
                        Ok(Scored {
                            reward,
                            parts: BTreeMap::from([("shapes".to_string(), reward)]),
                            answer: None,
                            request_key: None,
                        })
                    })
                    .collect(),
            ),
            Rewarder::Vlm(vlm, handle) => {
                let vlm = vlm.clone();
                Pending::Judging(
                    handle.spawn(async move { vlm.score(&items).await }),
                    handle.clone(),
                )
            }
            Rewarder::Sum(parts) => Pending::Sum(
                parts
                    .iter()
                    .map(|(w, name, r)| (*w, name.clone(), r.submit(items.clone())))
                    .collect(),
            ),
        }
    }
}

impl Pending {
    /// The scores, in the order of the items.
    pub fn wait(self) -> Result<Vec<Outcome>, StageError> {
        match self {
            Pending::Ready(outcomes) => Ok(outcomes),
            Pending::Judging(task, handle) => handle
                .block_on(task)
                .map_err(|e| StageError::msg(format!("the judge's task stopped: {e}")))?,
            Pending::Sum(parts) => {
                let mut total: Option<Vec<Outcome>> = None;
                for (weight, name, pending) in parts {
                    let outcomes = pending.wait()?;
                    let summed = match total.take() {
                        None => outcomes
                            .into_iter()
                            .map(|o| o.map(|s| weighted(s, weight, &name)))
                            .collect(),
                        Some(acc) => acc
                            .into_iter()
                            .zip(outcomes)
                            .map(|(a, o)| {
                                let (a, o) = (a?, o?);
                                let o = weighted(o, weight, &name);
                                let mut parts = a.parts;
                                parts.extend(o.parts);
                                Ok(Scored {
                                    reward: a.reward + o.reward,
                                    parts,
                                    answer: a.answer.or(o.answer),
                                    request_key: a.request_key.or(o.request_key),
                                })
                            })
                            .collect(),
                    };
                    total = Some(summed);
                }
                Ok(total.unwrap_or_default())
            }
        }
    }
}

/// A part of a sum: its reward times `weight`, recorded under `name`.
fn weighted(s: Scored, weight: f64, name: &str) -> Scored {
    Scored {
        reward: weight * s.reward,
        parts: BTreeMap::from([(name.to_string(), s.reward)]),
        ..s
    }
}

impl Vlm {
    async fn score(&self, items: &[Item]) -> Result<Vec<Outcome>, StageError> {
        let mut keys = Vec::with_capacity(items.len());
        let mut jobs = Vec::with_capacity(items.len());
        for item in items {
            let (key, request) =
                judge_request(&self.shape, &item.prompt, &item.image).map_err(StageError::msg)?;
            keys.push(key);
            jobs.push(Job {
                key,
                request: Ok(request),
            });
        }
        let _turn = self.turn.lock().await;
        let collected = self.session.resolve(jobs, self.progress_secs).await?;
        keys.iter()
            .map(|key| {
                if let Some(Answer { content, .. }) = self.session.lookup(key)? {
                    let text = content.as_str().unwrap_or_default().to_string();
                    let reward = reward(&text);
                    return Ok(Ok(Scored {
                        reward,
                        parts: BTreeMap::from([("vlm".to_string(), reward)]),
                        answer: Some(text),
                        request_key: Some(key.to_hex()),
                    }));
                }
                let why = match (collected.failures.get(key), &collected.stop) {
                    (Some(f), _) => format!("{}: {}", f.class.as_str(), f.message),
                    (None, Some(stop)) => format!("not sent: {stop}"),
                    (None, None) => "no answer".to_string(),
                };
                Ok(Err(format!("judge request {}: {why}", key.short())))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datasets::shapes::{HeldOut, SceneGenerator, TaskCounts, prompt_set, render};

    #[test]
    fn a_sum_weighs_its_parts_and_records_each() {
        let prompts = prompt_set(1, &TaskCounts::uniform(2), &HeldOut::default());
        let mut scenes = SceneGenerator::new(2);
        let right = &prompts[0].metadata;
        let image = render(&scenes.for_metadata(right).unwrap(), 64);
        let wrong = prompts
            .iter()
            .find(|p| p.metadata.tag != right.tag)
            .map(|p| &p.metadata)
            .unwrap();
        let item = |record: &Metadata| Item {
            prompt: record.prompt.clone(),
            record: Some(record.clone()),
            image: image.clone(),
        };
        let judge = || Rewarder::Shapes(Judge::new(JudgeOptions::default()));
        let sum = Rewarder::Sum(vec![
            (1.0, "exact".into(), judge()),
            (0.5, "half".into(), judge()),
        ]);
        let outcomes = sum
            .submit(Arc::new(vec![item(right), item(wrong)]))
            .wait()
            .unwrap();
        let right = outcomes[0].as_ref().unwrap();
        assert_eq!(right.reward, 1.5);
        assert_eq!(
            right.parts,
            BTreeMap::from([("exact".to_string(), 1.0), ("half".to_string(), 1.0)])
        );
        assert_eq!(outcomes[1].as_ref().unwrap().reward, 0.0);
        // Without a record the shapes judge cannot score: a failure, not a 0.
        let bare = Item {
            record: None,
            ..item(wrong)
        };
        let failed = judge().submit(Arc::new(vec![bare])).wait().unwrap();
        assert!(
            failed[0]
                .as_ref()
                .unwrap_err()
                .contains("no shapes-GenEval record")
        );
    }
}
