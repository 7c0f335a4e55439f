#!/usr/bin/env bash
# The GPU checks of the Janus-Pro model path, in one command on a GPU machine that has
# an NVIDIA driver, CUDA 13 libraries (PyTorch's wheels or a toolkit), Python with torch
# and transformers, and no Rust toolchain. Run from the repository root:
#
#     OUT=/some/folder scripts/device_check.sh
#
# 1. Unpacks the CUDA build of reasongen (gpu/reasongen.xz, from scripts/build_cuda.sh)
#    and finds the CUDA 13 libraries it links (libcudart, libcublas, libcublasLt,
#    libcurand, libnvrtc; libcuda is the driver's).
# 2. Parity with transformers' Janus on the committed goldens, on the GPU in BF16 and
#    in F32 (`reasongen bench janus-parity`; tolerances in eval/bench/src/janus_parity.rs).
# 3. Image-generation throughput, Janus-Pro-1B-sized random weights, batch 16, CFG 5,
#    576 codes per image: reasongen beside transformers' Janus in PyTorch on the same
#    GPU (scripts/janus_gpu_bench.py).
# 4. Optional: the SFT training-step benchmark, if scripts/sft_gpu_bench.py exists.
#
# Each step prints a short summary; the full logs go to $OUT. Each step has a time
# limit so that the whole fits in about 8 minutes. STEPS (default "parity janus sft")
# picks which to run.
#
# `--dry-run` runs the same steps on the CPU (parity in F32 only: candle's CPU matmul has
# no BF16; the throughput script's --smoke model): it checks the script on a machine
# without a GPU. REASONGEN_BIN may name a binary to use instead of gpu/reasongen.xz; the
# CUDA build runs on the CPU where LD_LIBRARY_PATH finds the CUDA libraries it links.
set -uo pipefail

DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
OUT="${OUT:?set OUT to a folder for the logs}"
PY="${PYTHON:-python}"
command -v "$PY" >/dev/null || PY=python3
mkdir -p "$OUT"
WORK="$(mktemp -d)"
STATUS=0

step() { echo; echo "== $*"; }
# run NAME LIMIT_S CMD...: CMD's output to $OUT/NAME.log, its last lines shown.
run() {
  local name="$1" limit="$2"
  shift 2
  local t0=$SECONDS
  timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  grep -vE '^(batch [0-9]+:|transformers batch [0-9]+:)' "$OUT/$name.log" | tail -n "${SHOW:-14}"
  echo "-- $name: exit $rc after $((SECONDS - t0)) s (limit $limit s; log $OUT/$name.log)"
  [ $rc -eq 0 ] || STATUS=1
  return $rc
}

step "binary and libraries"
if [ -n "${REASONGEN_BIN:-}" ]; then
  BIN="$REASONGEN_BIN"
else
  BIN="$WORK/reasongen"
  "$PY" -c 'import lzma, shutil, sys
with lzma.open(sys.argv[1]) as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)' gpu/reasongen.xz "$BIN" || exit 1
  chmod +x "$BIN"
fi
if [ $DRY -eq 0 ]; then
  # Folders holding the CUDA 13 libraries: Python's nvidia wheels first, then a toolkit.
  LIBDIRS="$("$PY" - <<'EOF'
import glob, os
want = ["libcudart.so.13", "libcublas.so.13", "libcublasLt.so.13", "libcurand.so.10", "libnvrtc.so.13"]
roots = []
try:
    import nvidia
    roots += [os.path.join(p, "**") for p in nvidia.__path__]
except ImportError:
    pass
roots += ["/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib", "/usr/lib/x86_64-linux-gnu"]
dirs = []
for name in want:
    for root in roots:
        hits = glob.glob(os.path.join(root, name), recursive=True)
        if hits:
            d = os.path.dirname(hits[0])
            if d not in dirs:
                dirs.append(d)
            break
print(":".join(dirs))
EOF
)"
  export LD_LIBRARY_PATH="$LIBDIRS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/env.txt"
fi
{
  echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
  ldd "$BIN"
  "$PY" -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'
} >>"$OUT/env.txt" 2>&1
if grep -q "not found" "$OUT/env.txt"; then
  grep "not found" "$OUT/env.txt"
  echo "missing libraries; see $OUT/env.txt"
  exit 1
fi
tail -n 1 "$OUT/env.txt"
"$BIN" --version || exit 1

if [ $DRY -eq 0 ]; then
  DEVICE=cuda
  SMOKE=()
else
  DEVICE=cpu
  SMOKE=(--smoke --runs 1 --batch 4)
fi

# STEPS picks the checks (default all): parity janus sft.
STEPS="${STEPS:-parity janus sft}"
want() { case " $STEPS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

if want parity && [ $DRY -eq 0 ]; then # candle's CPU matmul has no BF16
  step "parity with transformers' Janus, $DEVICE, BF16"
  SHOW=10 run parity_bf16 60 "$BIN" bench janus-parity --device "$DEVICE" --dtype bf16
fi
if want parity; then
  step "parity with transformers' Janus, $DEVICE, F32"
  SHOW=10 run parity_f32 60 "$BIN" bench janus-parity --device "$DEVICE" --dtype f32
fi

if want janus; then
  step "generation throughput beside transformers (batch 16, CFG 5, 576 codes; 1B-sized random weights)"
  PYTHONUNBUFFERED=1 SHOW=8 run janus_bench 300 "$PY" scripts/janus_gpu_bench.py \
    --binary "$BIN" --work "$WORK/janus-bench" --runs 2 "${SMOKE[@]}"
fi

if ! want sft; then
  :
elif [ -f scripts/sft_gpu_bench.py ]; then
  step "optional: SFT training step beside PyTorch (scripts/sft_gpu_bench.py)"
  # Optional: its failure is reported but does not fail the check.
  REQUIRED=$STATUS
  PYTHONUNBUFFERED=1 SHOW=12 run sft_bench 240 "$PY" scripts/sft_gpu_bench.py \
    --binary "$BIN" --work "$WORK/sft-bench" ${SFT_BENCH_ARGS:-} ||
    echo "-- the optional SFT step failed; the Janus checks' verdict stands"
  STATUS=$REQUIRED
else
  step "optional: SFT training step: scripts/sft_gpu_bench.py is not there; skipped"
fi

rm -rf "$WORK"
echo
[ $STATUS -eq 0 ] && echo "device check: all steps passed" || echo "device check: a step FAILED (see above)"
exit $STATUS
