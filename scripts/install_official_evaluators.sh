#!/usr/bin/env bash
# Install a benchmark's official evaluator on a GPU machine, for `eval.official`.
#
#   scripts/install_official_evaluators.sh geneval       DIR   # GenEval (Mask2Former + CLIP)
#   scripts/install_official_evaluators.sh dpg_bench     DIR   # ELLA's DPG-Bench (mPLUG-large)
#   scripts/install_official_evaluators.sh t2i_compbench DIR   # T2I-CompBench (BLIP, UniDet, CLIP)
#
# Each goes into DIR: the evaluator's checkout at the commit research/benchmarks.md was
# read at (DIR/repo), its own Python environment (DIR/venv; conda where the benchmark
# asks for it), and its models. Then set, in the eval.official node:
#   evaluator = "DIR/repo", python = "DIR/venv/bin/python"
#   geneval: detector = "DIR/detector";  dpg_bench: dpg_questions = "DIR/repo/dpg_bench/dpg_bench.csv"
# Needs git, network access and a CUDA GPU (the evaluators assert one). Not run by CI.
set -euo pipefail
which="${1:?geneval, dpg_bench or t2i_compbench}"
dir="${2:?the folder to install into}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"

checkout() { # url commit
    [ -d "$dir/repo/.git" ] || git clone --quiet "$1" "$dir/repo"
    git -C "$dir/repo" checkout --quiet "$2"
}
venv() {
    [ -x "$dir/venv/bin/python" ] || python3 -m venv "$dir/venv"
    "$dir/venv/bin/pip" install --quiet --upgrade pip wheel
}
pip() { "$dir/venv/bin/pip" install --quiet "$@"; }

case "$which" in
geneval)
    checkout https://github.com/djghosh13/geneval.git af4902f
    venv
    # GenEval's environment.yml: torch 2.x with mmcv-full 1.7 and mmdetection's 2.x branch.
    pip torch==2.1.2 torchvision==0.16.2 --index-url https://download.pytorch.org/whl/cu121
    pip openmim open-clip-torch==2.26.1 clip-benchmark==1.4.0 pandas numpy==1.26.4 "pillow<11"
    "$dir/venv/bin/mim" install "mmcv-full==1.7.2"
    [ -d "$dir/mmdetection" ] || git clone --quiet https://github.com/open-mmlab/mmdetection.git "$dir/mmdetection"
    git -C "$dir/mmdetection" checkout --quiet 2.x
    pip -e "$dir/mmdetection"
    (cd "$dir/repo" && ./evaluation/download_models.sh "$dir/detector/")
    echo "set: evaluator = \"$dir/repo\", python = \"$dir/venv/bin/python\", detector = \"$dir/detector\""
    ;;
dpg_bench)
    checkout https://github.com/TencentQQGYLab/ELLA.git 3c228f1
    venv
    pip torch==2.1.2 torchvision==0.16.2 --index-url https://download.pytorch.org/whl/cu121
    pip "modelscope[multi-modal]" accelerate pandas numpy==1.26.4 tqdm
    echo "set: evaluator = \"$dir/repo\", python = \"$dir/venv/bin/python\", dpg_questions = \"$dir/repo/dpg_bench/dpg_bench.csv\""
    ;;
t2i_compbench)
    checkout https://github.com/Karine-Huang/T2I-CompBench.git 1b70949
    venv
    pip torch==2.1.2 torchvision==0.16.2 --index-url https://download.pytorch.org/whl/cu121
    pip -r "$dir/repo/requirements.txt"
    "$dir/venv/bin/python" -m spacy download en_core_web_sm
    # UniDet's checkpoint goes where 2D_spatial_eval.py looks for it (its README).
    mkdir -p "$dir/repo/UniDet_eval/experts/expert_weights"
    wget -q -O "$dir/repo/UniDet_eval/experts/expert_weights/Unified_learned_OCIM_RS200_6x+2x.pth" \
        "https://huggingface.co/shikunl/prismer/resolve/main/expert_weights/Unified_learned_OCIM_RS200_6x%2B2x.pth"
    pip "git+https://github.com/facebookresearch/detectron2.git"
    echo "set: evaluator = \"$dir/repo\", python = \"$dir/venv/bin/python\""
    ;;
*)
    echo "unknown benchmark '$which': geneval, dpg_bench or t2i_compbench" >&2
    exit 2
    ;;
esac
