//! The three benchmarks the paper reports, as configs name them, and which one a
//! prompt table's family belongs to (`geneval_long` and the shapes world's records are
//! GenEval's).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A benchmark with its own layout, evaluator and questions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Benchmark {
    Geneval,
    DpgBench,
    T2iCompbench,
}

impl Benchmark {
    /// The benchmark of a prompt family (several joined by `+` name none).
    pub fn of_family(family: &str) -> Option<Benchmark> {
        match family {
            "geneval" | "geneval_long" | "shapes" => Some(Benchmark::Geneval),
            "dpg_bench" => Some(Benchmark::DpgBench),
            "t2i_compbench" => Some(Benchmark::T2iCompbench),
            _ => None,
        }
    }

    /// The benchmark a node judges: `configured`, else its prompts' family's; an error
    /// says to set it.
    pub fn for_prompts(configured: Option<Benchmark>, families: &str) -> Result<Benchmark, String> {
        configured.or_else(|| Benchmark::of_family(families)).ok_or_else(|| {
            format!(
                "the prompts' family `{families}` names no benchmark: set `benchmark` (geneval, dpg_bench or t2i_compbench)"
            )
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Benchmark::Geneval => "geneval",
            Benchmark::DpgBench => "dpg_bench",
            Benchmark::T2iCompbench => "t2i_compbench",
        }
    }

    /// Images per prompt the protocol asks for.
    pub fn samples_per_prompt(self) -> u32 {
        match self {
            Benchmark::Geneval | Benchmark::DpgBench => 4,
            Benchmark::T2iCompbench => 10,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_benchmark_follows_the_prompts_family_unless_set() {
        let of = Benchmark::for_prompts;
        assert_eq!(of(None, "shapes"), Ok(Benchmark::Geneval));
        assert_eq!(of(None, "t2i_compbench"), Ok(Benchmark::T2iCompbench));
        assert_eq!(
            of(Some(Benchmark::DpgBench), "geneval+x"),
            Ok(Benchmark::DpgBench)
        );
        assert!(
            of(None, "geneval+t2i_compbench")
                .unwrap_err()
                .contains("set `benchmark`")
        );
    }
}
