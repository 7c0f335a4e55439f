#!/usr/bin/env bash
# Check that GenEval's own summary_scores.py, run unchanged on the results.jsonl an
# eval node wrote, prints the numbers of our score table.
#
#   scripts/check_geneval_summary.sh GENEVAL_CHECKOUT EVAL_REPORT_DIR
#
# GENEVAL_CHECKOUT: a checkout of djghosh13/geneval (only evaluation/summary_scores.py
# and evaluation/object_names.txt are read; it needs pandas). EVAL_REPORT_DIR: the
# report of an eval.shapes_geneval or eval.official node (`reasongen show NODE` names
# it), holding results.jsonl and scores/. Prints both and exits non-zero on a mismatch.
set -euo pipefail
geneval="${1:?a checkout of djghosh13/geneval}"
report="${2:?the report folder of an eval node}"
python="${REASONGEN_PYTHON:-python3}"
report="$(cd "$report" && pwd)"
official="$(cd "$geneval/evaluation" && "$python" summary_scores.py "$report/results.jsonl")"
echo "$official"
"$python" - "$report" "$official" <<'PY'
import re, sys
import pyarrow.parquet as pq, glob
report, official = sys.argv[1], sys.argv[2]
rows = [r for f in sorted(glob.glob(f"{report}/scores/*.parquet")) for r in pq.read_table(f).to_pylist()]
ours = {r["task"]: r["score"] for r in rows}
printed = {}
for line in official.splitlines():
    m = re.match(r"\s*(\w+)\s*=\s*([0-9.]+)%", line)
    if m and m.group(1) in ours:
        printed[m.group(1)] = float(m.group(2)) / 100
m = re.search(r"Overall score \(avg\. over tasks\):\s*([0-9.]+)", official)
printed["overall"] = float(m.group(1))
bad = []
for task, value in printed.items():
    decimals = 5 if task == "overall" else 4
    if abs(round(ours[task], decimals) - value) > 10 ** -decimals:
        bad.append(f"{task}: summary_scores.py {value} vs our table {ours[task]}")
print(f"{len(printed)} numbers compared ({', '.join(sorted(printed))}): " + ("all equal" if not bad else "MISMATCH"))
for b in bad:
    print("  " + b)
sys.exit(1 if bad else 0)
PY
