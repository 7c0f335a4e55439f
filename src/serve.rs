//! `reasongen serve shapes-vlm`: the shapes world's judge model as an OpenAI-compatible
//! server on loopback ([`eval::vlm::ShapesVlm`]): it answers ReasonGen-R1's judge
//! requests (the exact template and an image) with the exact shapes judge, so a GRPO
//! run can send its reward requests over HTTP as the real run sends them to vLLM, and
//! the caption and augment requests of `rationale.caption` and `rationale.augment`
//! with the exact teacher's text.

use anyhow::{Context, Result};
use eval::vlm::ShapesVlm;
use llm::mock::{Answerer, MockServer, Script};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Subcommand)]
pub enum ServeCommand {
    /// The shapes world's VLM (answers `model.grpo`'s VLM reward requests, and the
    /// rationale stages' caption and augment requests).
    ShapesVlm(ShapesVlmArgs),
}

#[derive(clap::Args)]
pub struct ShapesVlmArgs {
    /// Address to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:8390")]
    addr: String,
    /// Delay before every answer, in milliseconds (a stand-in for a real model's time).
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
}

pub fn serve(command: ServeCommand) -> Result<ExitCode> {
    let ServeCommand::ShapesVlm(args) = command;
    let vlm = Arc::new(ShapesVlm::default());
    let server = MockServer::start_on(
        &args.addr,
        Script {
            latency: Duration::from_millis(args.latency_ms),
            answerer: Some(Answerer(Arc::new(move |r| vlm.answer_request(r)))),
            ..Script::default()
        },
    )
    .with_context(|| format!("listening on {}", args.addr))?;
    println!(
        "the shapes VLM answers at {} (endpoint.base_url; any model name); Ctrl-C stops it",
        server.url()
    );
    let mut last = 0;
    loop {
        std::thread::sleep(Duration::from_secs(10));
        let n = server.counts().chat;
        if n != last {
            println!("{n} requests answered");
            last = n;
        }
    }
}
