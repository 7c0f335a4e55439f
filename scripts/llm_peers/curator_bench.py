"""Bespoke Curator's side of `reasongen bench llm`.

Sends one chat completion per line of `--requests` (JSONL of `id`, `system`, `user`)
to the OpenAI-compatible server at `--base-url` through Curator's online OpenAI
backend, at most `--concurrency` requests in flight, and prints one JSON line:
answered and failed rows, Curator's version, the seconds the generation took and
the CPU seconds the process had used before it started (imports, setup).

The benchmark starts this with its own HOME, CURATOR_CACHE_DIR and OPENAI_API_KEY,
so nothing is read from or written to a user's caches.
"""

import argparse
import importlib.metadata
import importlib.util
import json
import os
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

    # Curator counts tokens with tiktoken's cl100k_base, which tiktoken downloads on
    # first use; litellm (a Curator dependency) ships that file, so point tiktoken at
    # it and nothing needs the network.
    litellm = importlib.util.find_spec("litellm")
    if litellm is not None and "TIKTOKEN_CACHE_DIR" not in os.environ:
        tokenizers = os.path.join(
            os.path.dirname(litellm.origin), "litellm_core_utils", "tokenizers"
        )
        os.environ["TIKTOKEN_CACHE_DIR"] = tokenizers

    with open(args.requests) as f:
        rows = [json.loads(line) for line in f if line.strip()]

    from bespokelabs import curator

    class Rationale(curator.LLM):
        def prompt(self, row):
            return [
                {"role": "system", "content": row["system"]},
                {"role": "user", "content": row["user"]},
            ]

        def parse(self, row, response):
            return {"id": row["id"], "rationale": response}

    llm = Rationale(
        model_name=args.model,
        backend="openai",
        backend_params={
            "base_url": args.base_url,
            "api_key": os.environ["OPENAI_API_KEY"],
            "max_concurrent_requests": args.concurrency,
            # Limits far above what the server can serve: concurrency is the only bound.
            "max_requests_per_minute": 100_000_000,
            "max_tokens_per_minute": 100_000_000_000,
            "require_all_responses": False,
        },
    )

    before = cpu_seconds()
    started = time.perf_counter()
    result = llm(rows, working_dir=os.path.join(args.work, "curator-work"))
    seconds = time.perf_counter() - started

    dataset = result.dataset if hasattr(result, "dataset") else result
    answered = sum(1 for r in dataset["rationale"] if r)
    print(
        json.dumps(
            {
                "answered": answered,
                "failed": len(rows) - answered,
                "version": importlib.metadata.version("bespokelabs-curator"),
                "gen_seconds": seconds,
                "cpu_before": before,
            }
        )
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
