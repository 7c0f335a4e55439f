//! `eval.vlm_judge`: a benchmark's images judged by a vision-language model over any
//! OpenAI-compatible endpoint, a *substitute* for the benchmark's own evaluator and
//! labelled so in every score row, in `scores.json` and in the title of `report.md`
//! (`substitute: VLM <model>`).
//!
//! Each image gets one question ([`crate::vlm_questions`]: GenEval's record checks,
//! or ReasonGen-R1's match question for DPG-Bench and T2I-CompBench) with the image
//! upscaled as the judge sees it ([`crate::vlm::judge_image`]), greedy decoding, and
//! optionally an answer constraint the server enforces (`response_format`). Requests
//! go through the `llm` crate's client (limits, retries, breaker, budgets, ledger)
//! and its memo, keyed with the image's bytes, so a rerun sends nothing it has been
//! answered. Samples are streamed: one pass builds the requests as slots free up, a
//! second reads the answers ([`crate::vlm_verdicts`]) and writes the verdicts.
//! `endpoint.base_url = "builtin:shapes-vlm"` starts the shapes world's judge model on
//! loopback for the run.

pub use crate::benchmark::Benchmark;
use crate::scores::{self, ScoreContext, prompt_set, read_all};
use crate::vlm::{checkable, judge_image, start_builtin};
use crate::vlm_questions::{Question, geneval_question, match_question};
use crate::vlm_verdicts::{Overall, Tally, Verdict, read, report, score_rows};
use datasets::table::TableReader;
use llm::config::{
    CostConfig, EndpointConfig, Executor, LimitsConfig, LlmConfig, Policy, Price, SamplingConfig,
    Structured,
};
use llm::cost::TokenCounter;
use llm::template::{Builtin, Template};
use llm::{Answer, Collected, Job, Session, Shape};
use pipeline::{
    ArtifactKind, ArtifactType, Bindings, Digest, InputArtifact, InputSpec, Output, OutputDecl,
    Resources, Stage, StageContext, StageError,
};
use schemars::JsonSchema;
use schemas::eval_sample::EvalSample;
use schemas::rl_prompt::RlPrompt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use tokio::sync::mpsc;

/// The memo namespace of answers (the LLM stages' and GRPO's judge's).
const ANSWERS_NAMESPACE: &str = "llm.chat";
/// llama.cpp's GBNF grammar that admits only the verdict.
const BOXED_GRAMMAR: &str = r#"root ::= "\\boxed{" [01] "}""#;

/// An answer constraint the server enforces, for servers that support it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResponseFormat {
    /// llama.cpp server's `grammar` field: the answer is `\boxed{0}` or `\boxed{1}`
    /// and nothing else (no reasoning).
    Grammar,
    /// `response_format` with a JSON schema: the answer is `{"verdict": 0 | 1}`
    /// (OpenAI, vLLM, SGLang, llama.cpp).
    JsonSchema,
}

/// Config of `eval.vlm_judge`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VlmJudgeConfig {
    /// `geneval`, `dpg_bench` or `t2i_compbench`; default: from the prompts' family
    /// (`geneval`, `geneval_long` and `shapes` take GenEval's questions).
    #[serde(default)]
    pub benchmark: Option<Benchmark>,
    /// The judge model's server (the LLM stages' endpoint table); `base_url =
    /// "builtin:shapes-vlm"` starts the shapes VLM on loopback.
    pub endpoint: EndpointConfig,
    /// Concurrency, rate limits, retries and the circuit breaker.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Tokens per answer at most (ReasonGen-R1's judge: 1,024); decoding is greedy.
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
    /// `grammar` or `json_schema`: constrain answers to a verdict; none by default.
    #[serde(default)]
    pub response_format: Option<ResponseFormat>,
    /// Price per million tokens, by model name.
    #[serde(default)]
    pub prices: BTreeMap<String, Price>,
    /// Never spend more than this (USD) in one run of the node.
    #[serde(default)]
    pub budget_usd: Option<f64>,
    /// How a request's worst-case cost is bounded.
    #[serde(default)]
    pub cost: CostConfig,
    /// `"require_all"` (default): the stage fails if any image got no answer;
    /// `{ allow_failures = 0.05 }`: up to that fraction may, each scoring 0.
    #[serde(default)]
    pub policy: Policy,
    /// Bootstrap resamples for the overall interval.
    #[serde(default = "default_rounds")]
    pub bootstrap_rounds: usize,
    /// Seed of the bootstrap.
    #[serde(default)]
    pub seed: u64,
}

fn default_max_tokens() -> u32 {
    1024
}

fn default_rounds() -> usize {
    2000
}

impl VlmJudgeConfig {
    /// The client's config: greedy decoding, the constraint, the online executor.
    fn llm(&self) -> LlmConfig {
        let json = self.response_format == Some(ResponseFormat::JsonSchema);
        let mut extra = BTreeMap::new();
        if self.response_format == Some(ResponseFormat::Grammar) {
            extra.insert("grammar".to_string(), Value::from(BOXED_GRAMMAR));
        }
        LlmConfig {
            endpoint: self.endpoint.clone(),
            sampling: SamplingConfig {
                temperature: Some(0.0),
                max_tokens: Some(self.max_tokens),
                extra,
                ..SamplingConfig::default()
            },
            template: Default::default(),
            structured: json.then_some(Structured::JsonSchema),
            limits: self.limits.clone(),
            prices: self.prices.clone(),
            budget_usd: self.budget_usd,
            cost: self.cost.clone(),
            policy: self.policy,
            executor: Executor::Online,
            batch: Default::default(),
            progress_secs: 10.0,
        }
    }

    /// The judge as score rows name it.
    pub fn judge_label(&self) -> String {
        format!("substitute: VLM {}", self.endpoint.model)
    }
}

/// The requests' shape: the question's text around the image; text answers, or JSON
/// verdicts under `json_schema`.
fn shape(config: &LlmConfig, counter: TokenCounter) -> Result<Shape, String> {
    let builtin = Builtin {
        name: "vlm-judge",
        version: 1,
        system: "",
        user: "{before}<image>{after}",
    };
    let template = Template::new(&builtin, &config.template, &["before", "after"])?;
    let schema = config.structured.map(|_| {
        json!({
            "type": "object",
            "properties": {"verdict": {"type": "integer", "enum": [0, 1]}},
            "required": ["verdict"],
            "additionalProperties": false,
        })
    });
    Shape::new(config, template, schema, "verdict", counter)
}

/// Each prompt's question, by prompt id.
fn questions(
    prompts: &[RlPrompt],
    benchmark: Benchmark,
    node: &str,
) -> Result<HashMap<String, Question>, StageError> {
    prompts
        .iter()
        .map(|p| {
            let tag = p.tag.as_deref().unwrap_or("all");
            let q = match benchmark {
                Benchmark::Geneval => {
                    let record = p.metadata.as_deref().ok_or_else(|| {
                        format!(
                            "prompt `{}` (node `{node}`) has no GenEval record in `metadata`",
                            p.id
                        )
                    });
                    record
                        .and_then(|r| geneval_question(&p.prompt, r))
                        .map_err(|e| {
                            StageError::msg(format!("prompt `{}` (node `{node}`): {e}", p.id))
                        })?
                }
                Benchmark::DpgBench | Benchmark::T2iCompbench => match_question(&p.prompt, tag),
            };
            Ok((p.id.clone(), q))
        })
        .collect()
}

/// Pass 1: every sample's request, sent to `jobs` in table order; the keys, in order.
fn send_requests(
    samples: &InputArtifact,
    questions: &HashMap<String, Question>,
    shape: &Shape,
    jobs: mpsc::Sender<Job>,
    ctx: &StageContext,
) -> Result<Vec<Digest>, StageError> {
    let mut keys = Vec::new();
    for rows in TableReader::open(&samples.dir)?.rows::<EvalSample>()? {
        for s in rows? {
            ctx.check_cancelled()?;
            let at = || format!("sample `{}` (node `{}`)", s.id, samples.node);
            let q = questions.get(&s.prompt_id).ok_or_else(|| {
                StageError::msg(format!(
                    "{}: no prompt `{}` among the prompts",
                    at(),
                    s.prompt_id
                ))
            })?;
            let bytes = s
                .image
                .bytes
                .as_deref()
                .ok_or_else(|| StageError::msg(format!("{}: no image bytes", at())))?;
            let png = image::load_from_memory(bytes)
                .map_err(|e| e.to_string())
                .and_then(|img| judge_image(&img.to_rgb8()))
                .and_then(|img| datasets::shapes::encode_png(&img).map_err(|e| e.to_string()))
                .map_err(|e| StageError::msg(format!("{}: the image: {e}", at())))?;
            let fill = |slot: &str| {
                if slot == "before" {
                    q.before.clone()
                } else {
                    q.after.clone()
                }
            };
            let (key, request) = shape
                .build(fill, Some(&png))
                .map_err(|e| StageError::msg(format!("{}: {e}", at())))?;
            keys.push(key);
            if jobs
                .blocking_send(Job {
                    key,
                    request: Ok(request),
                })
                .is_err()
            {
                return Err(StageError::msg("the judge's requests stopped"));
            }
        }
    }
    Ok(keys)
}

/// Why a request has no answer.
fn why_unanswered(collected: &Collected, key: &Digest) -> String {
    match (collected.failures.get(key), &collected.stop) {
        (Some(f), _) => format!("{}: {}", f.class.as_str(), f.message),
        (None, Some(stop)) => format!("not sent: {stop}"),
        (None, None) => "no answer".to_string(),
    }
}

/// The samples with their verdicts (image bytes dropped), counted.
struct Judgement {
    verdicts: Vec<EvalSample>,
    tally: Tally,
    /// The first image without an answer, and why.
    first_failure: Option<String>,
}

/// Pass 2: the samples again, each with its verdict.
fn verdicts(
    samples: &InputArtifact,
    questions: &HashMap<String, Question>,
    keys: &[Digest],
    collected: &Collected,
    ctx: &StageContext,
) -> Result<Judgement, StageError> {
    let memo = ctx.memo_uncounted(ANSWERS_NAMESPACE)?;
    let mut keys = keys.iter();
    let (mut out, mut tally, mut first_failure) = (Vec::new(), Tally::default(), None);
    for rows in TableReader::open(&samples.dir)?.rows::<EvalSample>()? {
        for mut s in rows? {
            let key = keys.next().ok_or_else(|| {
                StageError::msg(format!("node `{}` grew while it was judged", samples.node))
            })?;
            let q = &questions[&s.prompt_id];
            let answer: Option<Answer> = memo.get_json(key)?;
            let (verdict, details) = match answer {
                Some(a) => {
                    let v = read(&a.content);
                    let details = json!({"task": q.tag, "verdict": u8::from(v.correct), "parsed": v.parsed, "answer": a.content, "request": key.to_hex()});
                    (Some(v), details)
                }
                None => {
                    let why = ctx.redact(&why_unanswered(collected, key));
                    first_failure.get_or_insert_with(|| format!("sample `{}`: {why}", s.id));
                    (
                        None,
                        json!({"task": q.tag, "failed": why, "request": key.to_hex()}),
                    )
                }
            };
            tally.add(&q.tag, &s.prompt_id, verdict.as_ref());
            s.score = Some(f64::from(u8::from(
                verdict.is_some_and(|v: Verdict| v.correct),
            )));
            s.details = Some(details.to_string());
            s.tag.get_or_insert_with(|| q.tag.clone());
            s.image.bytes = None;
            out.push(s);
        }
    }
    Ok(Judgement {
        verdicts: out,
        tally,
        first_failure,
    })
}

/// Whether the failure policy admits `failed` of `images` images without an answer.
fn check_policy(policy: Policy, failed: usize, images: usize, first: &str) -> Result<(), String> {
    if failed == 0 {
        return Ok(());
    }
    let fraction = failed as f64 / images.max(1) as f64;
    let allowed = match policy {
        Policy::RequireAll => false,
        Policy::AllowFailures(max) => fraction <= max,
    };
    if allowed {
        return Ok(());
    }
    Err(format!(
        "{failed} of {images} images got no answer from the judge (first: {first}); \
         fix the server or allow some with policy = {{ allow_failures = … }} (they score 0)"
    ))
}

pub struct VlmJudge;

impl Stage for VlmJudge {
    type Config = VlmJudgeConfig;
    const KIND: &'static str = "eval.vlm_judge";
    const VERSION: u32 = 1;
    const DOC: &'static str = "A benchmark's images judged by a VLM over HTTP (GenEval's record checks, or ReasonGen-R1's match question): a labelled substitute for the official evaluator; per task, overall and a bootstrap interval.";
    const INPUTS: &'static [InputSpec] = &[scores::SAMPLES, scores::PROMPTS];
    const OUTPUT: OutputDecl = OutputDecl::Fixed(ArtifactType::of(ArtifactKind::Report));

    fn resources(config: &VlmJudgeConfig) -> Resources {
        Resources {
            llm_slots: config.limits.concurrency,
            ..Resources::default()
        }
    }

    fn validate(config: &VlmJudgeConfig, _bindings: &Bindings) -> Result<(), String> {
        let c = checkable(&config.llm());
        c.check(c.structured.is_some())?;
        if config.max_tokens == 0 {
            return Err("max_tokens must be at least 1".into());
        }
        shape(&c, TokenCounter::from_bytes(&c.cost)).map(|_| ())
    }

    async fn run(&self, config: VlmJudgeConfig, ctx: StageContext) -> Result<Output, StageError> {
        let ctx = Arc::new(ctx);
        let result = judge(&config, &ctx).await;
        // Messages may quote what servers sent; a server may echo the key.
        result.map_err(|e| StageError::msg(ctx.redact(&e.to_string())))
    }
}

async fn judge(config: &VlmJudgeConfig, ctx: &Arc<StageContext>) -> Result<Output, StageError> {
    let samples = ctx.input("samples")?.clone();
    let prompts = ctx.input("prompts")?.clone();
    let prompt_rows: Vec<RlPrompt> = read_all(&prompts.dir)?;
    let families = prompt_set(prompt_rows.iter().map(|p| p.family.as_str()));
    let benchmark = Benchmark::for_prompts(config.benchmark, &families)
        .map_err(|e| StageError::msg(format!("input `prompts` (node `{}`): {e}", prompts.node)))?;
    let questions = Arc::new(questions(&prompt_rows, benchmark, &prompts.node)?);
    let mut llm = config.llm();
    let counter = TokenCounter::new(&llm.cost, &ctx.recipe_dir).map_err(StageError::msg)?;
    // Built before the shapes VLM's port replaces `builtin:shapes-vlm`, so that request
    // keys, which hold the base URL, stay the same across runs.
    let shape = Arc::new(shape(&llm, counter).map_err(StageError::msg)?);
    let _server = start_builtin(&mut llm).map_err(StageError::msg)?;
    let rows = TableReader::open(&samples.dir)?.row_count()?;
    ctx.progress.set_total(rows, "images");
    let session = Session::open(
        &llm,
        ctx.clone(),
        rows,
        ANSWERS_NAMESPACE,
        shape.expect().clone(),
        true,
    )?;

    let (tx, rx) = mpsc::channel((llm.limits.concurrency as usize).clamp(16, 256));
    let reading = {
        let (samples, questions, shape, ctx) = (
            samples.clone(),
            questions.clone(),
            shape.clone(),
            ctx.clone(),
        );
        tokio::task::spawn_blocking(move || send_requests(&samples, &questions, &shape, tx, &ctx))
    };
    let reporter = tokio::spawn(llm::session_report(session.clone(), llm.progress_secs));
    let collected = llm::online::collect(session.clone(), rx).await;
    reporter.abort();
    // A client error first: it is why the request builder stopped, if it did.
    let collected = collected?;
    let keys = reading
        .await
        .map_err(|e| StageError::msg(format!("the request builder stopped: {e}")))??;
    session.log(format!("requests done: {}", session.ledger.line()));
    session.ledger.publish(ctx);

    let ctx2 = ctx.clone();
    let label = config.judge_label();
    let (rounds, seed, policy) = (config.bootstrap_rounds, config.seed, config.policy);
    tokio::task::spawn_blocking(move || {
        let ctx = ctx2;
        let Judgement {
            verdicts,
            tally,
            first_failure,
        } = verdicts(&samples, &questions, &keys, &collected, &ctx)?;
        let first_failure = first_failure.unwrap_or_default();
        check_policy(policy, tally.failed, tally.images, &first_failure)
            .map_err(StageError::msg)?;
        let (name, title, overall) = match (benchmark, families.as_str()) {
            (Benchmark::Geneval, "shapes") => {
                ("shapes_geneval", "Shapes GenEval", Overall::MeanOfTasks)
            }
            (Benchmark::Geneval, "geneval_long") => (
                "geneval_long",
                "GenEval with Bagel's rewritten prompts",
                Overall::MeanOfTasks,
            ),
            (Benchmark::Geneval, _) => ("geneval", "GenEval", Overall::MeanOfTasks),
            (Benchmark::DpgBench, _) => ("dpg_bench", "DPG-Bench", Overall::MeanOfImages),
            (Benchmark::T2iCompbench, _) => {
                ("t2i_compbench", "T2I-CompBench", Overall::MeanOfTasks)
            }
        };
        let context = ScoreContext::new(
            name,
            &samples,
            verdicts.first(),
            &prompts,
            &families,
            &label,
            "substitute",
        );
        let (rows, summary) = score_rows(&tally, overall, &context, rounds, seed);
        scores::write(&ctx.out_dir, &rows, verdicts)?;
        std::fs::write(
            ctx.out_dir.join("scores.json"),
            serde_json::to_vec_pretty(&summary).expect("json"),
        )?;
        std::fs::write(ctx.out_dir.join("report.md"), report(title, &summary))?;
        ctx.log(format!(
            "{title} ({label}): overall {:.3} on {} images; {} unparsed, {} failed",
            rows[0].score, tally.images, tally.unparsed, tally.failed
        ));
        ctx.count("images", tally.images as u64);
        ctx.count("unparsed", tally.unparsed as u64);
        Ok(Output {
            rows: None,
            schema: None,
            meta: summary,
        })
    })
    .await
    .map_err(|e| StageError::msg(format!("the verdict thread: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_failure_policy_decides_on_unanswered_images() {
        assert!(check_policy(Policy::RequireAll, 0, 10, "").is_ok());
        let e = check_policy(Policy::RequireAll, 1, 10, "sample `s3`: timeout").unwrap_err();
        assert!(e.contains("1 of 10 images") && e.contains("s3"), "{e}");
        assert!(check_policy(Policy::AllowFailures(0.1), 1, 10, "").is_ok());
        assert!(check_policy(Policy::AllowFailures(0.1), 2, 10, "").is_err());
    }

    #[test]
    fn constraints_shape_the_request() {
        let config: VlmJudgeConfig = serde_json::from_value(json!({
            "endpoint": {"base_url": "http://127.0.0.1:1/v1", "model": "m"},
            "response_format": "grammar",
            "max_tokens": 16,
        }))
        .unwrap();
        let c = config.llm();
        assert_eq!(c.sampling.extra["grammar"], BOXED_GRAMMAR);
        let s = shape(&c, TokenCounter::from_bytes(&c.cost)).unwrap();
        let (_, r) = s.build(|_| "q".into(), None).unwrap();
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["grammar"], BOXED_GRAMMAR);
        assert_eq!(
            (body["temperature"].as_f64(), body["max_tokens"].as_u64()),
            (Some(0.0), Some(16))
        );
        assert!(body.get("response_format").is_none());
        let json_config = VlmJudgeConfig {
            response_format: Some(ResponseFormat::JsonSchema),
            ..config
        };
        let c = json_config.llm();
        let s = shape(&c, TokenCounter::from_bytes(&c.cost)).unwrap();
        let (_, r) = s.build(|_| "q".into(), None).unwrap();
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            body["response_format"]["json_schema"]["schema"]["properties"]["verdict"]["enum"],
            json!([0, 1])
        );
        assert!(body.get("grammar").is_none());
        assert_eq!(json_config.judge_label(), "substitute: VLM m");
    }
}
