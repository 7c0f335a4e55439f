#!/usr/bin/env python3
"""Copy the benchmark prompt files reasongen embeds into `datasets/benchmarks/`.

    python scripts/import_benchmarks.py SHARED_BENCHMARKS_DIR

SHARED_BENCHMARKS_DIR holds the byte-exact copies described by its `*/SOURCES.md`
(GenEval from djghosh13/geneval and ByteDance-Seed/Bagel, DPG-Bench from
TencentQQGYLab/ELLA, T2I-CompBench from Karine-Huang/T2I-CompBench). Files are copied as
they are, except DPG-Bench's 1,065 prompt files, which become one JSON line each
(`item_id`, `text`: the file's exact content, `blob`: its git blob id) in
`dpg_bench/prompts.jsonl`. Each suite's SOURCES.md is copied beside its files.
"""

import hashlib
import json
import shutil
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "datasets" / "benchmarks"

GENEVAL = [
    "evaluation_metadata.jsonl",
    "object_names.txt",
    "rewritten/bagel/evaluation_metadata_long.jsonl",
    "SOURCES.md",
]
T2I = [
    "dataset/color_val.txt",
    "dataset/shape_val.txt",
    "dataset/texture_val.txt",
    "dataset/spatial_val.txt",
    "dataset/non_spatial_val.txt",
    "dataset/complex_val.txt",
    "dataset/complex_val_spatial.txt",
    "dataset/complex_val_action.txt",
    "dataset/3d_spatial_val.txt",
    "dataset/numeracy_val.txt",
    "dataset/new_objects.txt",
    "dataset_before_2025-09-03/color_val.txt",
    "SOURCES.md",
]


def blob(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def copy(src: Path, suite: str, files: list[str]) -> None:
    for f in files:
        dst = OUT / suite / f
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / suite / f, dst)


def main() -> None:
    src = Path(sys.argv[1])
    copy(src, "geneval", GENEVAL)
    copy(src, "t2i_compbench", T2I)
    copy(src, "dpg_bench", ["SOURCES.md"])
    prompts = sorted((src / "dpg_bench" / "prompts").glob("*.txt"), key=lambda p: p.stem)
    with open(OUT / "dpg_bench" / "prompts.jsonl", "w", encoding="utf-8") as out:
        for p in prompts:
            data = p.read_bytes()
            line = {"item_id": p.stem, "text": data.decode("utf-8"), "blob": blob(data)}
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
    print(f"{len(prompts)} DPG prompts; files in {OUT}")


if __name__ == "__main__":
    main()
