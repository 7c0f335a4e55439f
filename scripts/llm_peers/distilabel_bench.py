"""distilabel's side of `reasongen bench llm`.

A distilabel pipeline as its users write one: the rows of `--requests` (JSONL of
`id`, `system`, `user`) loaded from memory, then a `TextGeneration` task over an
`OpenAILLM` pointed at `--base-url`, in batches of `--concurrency` rows (distilabel
sends a batch's requests at once and waits for the whole batch). Prints one JSON
line: answered and failed rows, distilabel's version, the seconds the pipeline took
and the CPU seconds the process had used before it started (imports, setup).

The benchmark starts this with its own HOME and DISTILABEL_CACHE_DIR, and the
pipeline runs without its cache, so every request is sent.
"""

import argparse
import importlib.metadata
import json
import resource
import sys
import time


def cpu_seconds():
    """User + system CPU of this process and of the children it waited for."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        u = resource.getrusage(who)
        total += u.ru_utime + u.ru_stime
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", required=True)
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--concurrency", type=int, required=True)
    ap.add_argument("--work", required=True)
    args = ap.parse_args()

    with open(args.requests) as f:
        rows = [
            {"id": r["id"], "system_prompt": r["system"], "instruction": r["user"]}
            for r in (json.loads(line) for line in f if line.strip())
        ]

    from distilabel.models.llms import OpenAILLM
    from distilabel.pipeline import Pipeline
    from distilabel.steps import LoadDataFromDicts
    from distilabel.steps.tasks import TextGeneration

    with Pipeline(name="reasongen-bench-llm") as pipeline:
        load = LoadDataFromDicts(data=rows, batch_size=args.concurrency)
        generate = TextGeneration(
            llm=OpenAILLM(model=args.model, base_url=args.base_url, max_retries=3),
            input_batch_size=args.concurrency,
        )
        load >> generate

    before = cpu_seconds()
    started = time.perf_counter()
    distiset = pipeline.run(use_cache=False)
    seconds = time.perf_counter() - started

    out = distiset["default"]["train"]
    answered = sum(1 for g in out["generation"] if g)
    print(
        json.dumps(
            {
                "answered": answered,
                "failed": len(rows) - answered,
                "version": importlib.metadata.version("distilabel"),
                "gen_seconds": seconds,
                "cpu_before": before,
            }
        )
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
