#!/usr/bin/env bash
# Builds the CUDA binary of reasongen on a machine without a GPU and packs it for a GPU
# machine that has an NVIDIA driver but no Rust toolchain.
#
# - CUDA 13.0 nvcc, headers and libraries come from NVIDIA's PyPI wheels, installed into a
#   virtual environment outside the repository ($REASONGEN_CUDA_VENV).
# - candle's cudarc links libcuda, libcudart, libcublas, libcublasLt, libcurand and libnvrtc
#   at link time (its `dynamic-linking` feature). The wheels ship only the versioned
#   libraries and no libcuda (that belongs to the driver), so a link folder gets the
#   unversioned names and a stub libcuda.so.1 that defines the driver API's symbols
#   (taken from cudarc's own bindings). At run time the driver's libcuda and the CUDA 13
#   libraries of the GPU machine are used (see scripts/device_check.sh).
# - Kernels are built for compute capability 9.0 (H100/H200): CUDA_COMPUTE_CAP=90.
# - The dev profile (which optimises candle, gemm and our own train crate) builds into its
#   own target folder ($REASONGEN_CUDA_TARGET), so it never blocks or overwrites the CPU
#   build. The binary is stripped and xz-compressed to gpu/reasongen.xz (git-ignored; xz,
#   as Python's lzma unpacks it on a GPU machine that may lack zstd).
#
# Usage: scripts/build_cuda.sh [--head]
#   --head builds the last commit (exported to $REASONGEN_CUDA_SRC) rather than the working
#   tree, so that uncommitted work in a shared tree cannot break the build; the packed
#   binary still lands in this tree's gpu/.
set -euo pipefail

cd "$(dirname "$0")/.."
REPO="$PWD"
if [ "${1:-}" = "--head" ]; then
  SRC="${REASONGEN_CUDA_SRC:-$HOME/.cache/reasongen-cuda-src}"
  rm -rf "$SRC"
  mkdir -p "$SRC"
  git archive HEAD | tar -x -C "$SRC"
  cd "$SRC"
fi
VENV="${REASONGEN_CUDA_VENV:-$HOME/.cache/reasongen-cuda}"
TARGET="${REASONGEN_CUDA_TARGET:-$HOME/.cache/reasongen-target-cuda}"
OUT_BIN="gpu/reasongen.xz"

# CUDA 13.0 (update 2) as PyPI wheels: compiler, front end, NVVM, headers, libraries.
WHEELS=(
  nvidia-cuda-nvcc==13.0.88
  nvidia-cuda-crt==13.0.88
  nvidia-nvvm==13.0.88
  nvidia-cuda-cccl==13.0.85
  nvidia-cuda-runtime==13.0.96
  nvidia-cuda-nvrtc==13.0.88
  nvidia-cublas==13.1.0.3
  nvidia-curand==10.4.0.35
)

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "${WHEELS[@]}"
CUDA_ROOT="$("$VENV/bin/python" -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13"))')"
"$CUDA_ROOT/bin/nvcc" --version | grep -q "release 13.0" || {
  echo "build_cuda.sh: $CUDA_ROOT/bin/nvcc is not CUDA 13.0" >&2
  exit 1
}

# The link folder: unversioned names for the linker, and the libcuda stub.
LINK="$VENV/link/lib"
mkdir -p "$LINK"
for lib in cudart cublas cublasLt curand nvrtc; do
  real="$(ls "$CUDA_ROOT/lib/lib$lib.so."* | grep -E "lib$lib\.so\.[0-9]+$" | head -n1)"
  ln -sf "$real" "$LINK/lib$lib.so"
done
CUDARC_DIR="$(cargo metadata --format-version 1 --features cuda 2>/dev/null |
  "$VENV/bin/python" -c 'import json, os, sys
m = json.load(sys.stdin)
print(next(os.path.dirname(p["manifest_path"]) for p in m["packages"] if p["name"] == "cudarc"))')"
STUB_C="$VENV/link/cuda_stub.c"
# The names the bindings declare in their `extern "C"` blocks (indented `fn cuXxx(`).
grep -ohE '^ +fn cu[A-Za-z0-9_]+\(' "$CUDARC_DIR/src/driver/sys/mod.rs" | sort -u |
  sed -E 's/^ +fn (cu[A-Za-z0-9_]+)\(/void \1(void) {}/' >"$STUB_C"
cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$LINK/libcuda.so" "$STUB_C"

export PATH="$CUDA_ROOT/bin:$PATH"
export NVCC="$CUDA_ROOT/bin/nvcc"
export CUDA_HOME="$VENV/link" # cudarc searches $CUDA_HOME/lib for the libraries above
export CUDA_COMPUTE_CAP=90
export CARGO_TARGET_DIR="$TARGET"

cargo build --features cuda --bin reasongen

BIN="$TARGET/debug/reasongen"
echo "libraries the binary needs:"
readelf -d "$BIN" | grep NEEDED
mkdir -p "$REPO/gpu"
STRIPPED="$(mktemp)"
strip -o "$STRIPPED" "$BIN"
xz -T0 -3 -c "$STRIPPED" >"$REPO/$OUT_BIN.part"
rm "$STRIPPED"
mv "$REPO/$OUT_BIN.part" "$REPO/$OUT_BIN"
ls -l "$REPO/$OUT_BIN"
