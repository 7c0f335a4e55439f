#!/usr/bin/env python3
"""Image-generation throughput on a GPU: `reasongen generate` beside transformers'
Janus (`JanusForConditionalGeneration.generate(generation_mode="image")`) on the same
random Janus-Pro-1B-sized model in BF16, the same prompts and batch.

Janus-Pro's plain mode (no rationale): 16 prompts per batch by default, each with
its unconditional CFG twin (weight 5), 576 image codes sampled at temperature 1, then
VQ-16 decoding of the codes to 384 × 384 pixels. The model: a 24-layer Llama 2048
wide (16 heads, 5632 MLP, vocabulary 102400), the generation heads and a full-size
VQ-16, drawn with `torch.manual_seed` (the understanding tower, unused here, is
shrunk). It is written once in DeepSeek's layout (safetensors, BF16) for our binary;
both sides run the same weights.

Printed per side: seconds per batch for the codes (the first batch is a warm-up and
left out), image tokens/s, images/s for the codes alone and with VQ decoding.

Needs: a CUDA GPU, torch and transformers with `models/janus`, and `reasongen` built
with `cargo build --release --features cuda` (run from the repository root):

    python scripts/janus_gpu_bench.py --binary target/release/reasongen

`--smoke` runs the same steps on the CPU in F32 with a tiny model of the fixtures'
sizes (`scripts/janus_parity.py`: a 2-layer Llama 64 wide, 256 codes per 32 × 32
image): it checks the script, and its figures are those of the tiny model on the
CPU. Written in a session without a GPU: the GPU run has not been made yet.
"""

import argparse
import inspect
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import (
    GenerationConfig,
    JanusConfig,
    JanusForConditionalGeneration,
    JanusVisionConfig,
    JanusVQVAEConfig,
    LlamaConfig,
)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from janus_parity import BOI, BOS, EOS, PAD, original_key  # noqa: E402

TOKENIZER = ROOT / "train" / "tests" / "fixtures" / "janus" / "tokenizer.json"
PROMPTS = [
    "a red cube on the left of a blue sphere",
    "two green triangles above a yellow circle",
    "a photo of a cat sitting on a wooden chair",
    "a small purple square below three orange stars",
]
# Janus-Pro-1B's sizes (VQ-16 at its defaults), and the smoke test's tiny ones.
FULL = dict(
    text=dict(vocab_size=102400, hidden_size=2048, intermediate_size=5632, num_hidden_layers=24,
              num_attention_heads=16, num_key_value_heads=16, max_position_embeddings=16384),
    vq={},
    image_size=384,
    patch_size=16,
    device="cuda",
    dtype=torch.bfloat16,
)  # fmt: skip
SMOKE = dict(
    text=dict(vocab_size=320, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=1024),
    vq=dict(codebook_size=256, embed_dim=8, ch=32, ch_mult=[2, 1], z_channels=32, num_res_blocks=1, resolution=32),
    image_size=32,
    patch_size=2,
    device="cpu",
    dtype=torch.float32,
)  # fmt: skip


def image_tokens(setup) -> int:
    return (setup["image_size"] // setup["patch_size"]) ** 2


def build_model(setup, tok_ids: dict) -> JanusForConditionalGeneration:
    hidden = setup["text"]["hidden_size"]
    text = LlamaConfig(
        **setup["text"],
        tie_word_embeddings=False,
        bos_token_id=tok_ids["bos"],
        eos_token_id=tok_ids["eos"],
        pad_token_id=tok_ids["pad"],
    )
    vision = JanusVisionConfig(
        hidden_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=setup["image_size"],
        patch_size=setup["patch_size"],
        projection_dim=hidden,
        num_image_tokens=image_tokens(setup),
    )
    vq_sizes = {}
    if setup["vq"]:
        v = setup["vq"]
        vq_sizes = dict(
            num_embeddings=v["codebook_size"], embed_dim=v["embed_dim"], base_channels=v["ch"],
            channel_multiplier=v["ch_mult"], latent_channels=v["z_channels"], num_res_blocks=v["num_res_blocks"],
        )  # fmt: skip
    vq = JanusVQVAEConfig(projection_dim=hidden, image_token_embed_dim=hidden, **vq_sizes)
    config = JanusConfig(
        text_config=text, vision_config=vision, vq_config=vq, image_token_id=tok_ids["image"], tie_word_embeddings=False
    )
    torch.manual_seed(0)
    with torch.device(setup["device"]):
        model = JanusForConditionalGeneration(config)
    return model.to(setup["dtype"]).eval()


def deepseek_config(setup, codebook: int) -> dict:
    hidden = setup["text"]["hidden_size"]
    vision = {"image_token_size": codebook, "n_embed": 8}
    vision.update({k: v for k, v in setup["vq"].items() if k not in ("codebook_size", "embed_dim")})
    return {
        "architectures": ["MultiModalityCausalLM"],
        "model_type": "multi_modality",
        "language_config": {"model_type": "llama", **setup["text"]},
        "gen_vision_config": {"cls": "VQ-16", "params": vision},
        "gen_aligner_config": {
            "cls": "MlpProjector",
            "params": {"depth": 2, "input_dim": 8, "n_embed": hidden, "projector_type": "mlp_gelu"},
        },
        "gen_head_config": {
            "cls": "vision_head",
            "params": {"image_token_embed": hidden, "image_token_size": codebook, "n_embed": hidden},
        },
    }


def write_model(setup, model, out: Path):
    out.mkdir(parents=True, exist_ok=True)
    weights = {}
    for k, v in model.state_dict().items():
        name = original_key(k)
        if name is not None:
            weights[name] = v.detach().to("cpu", setup["dtype"]).contiguous()
    save_file(weights, str(out / "model.safetensors"), metadata={"format": "pt"})
    codebook = model.config.vq_config.num_embeddings
    (out / "config.json").write_text(json.dumps(deepseek_config(setup, codebook), indent=2) + "\n")
    shutil.copy(TOKENIZER, out / "tokenizer.json")


def sync(setup):
    if setup["device"] == "cuda":
        torch.cuda.synchronize()


def tolerate_missing_prefill_chunk_size(model):
    """Some transformers releases (5.17) call `_prepare_static_cache` from Janus's
    image `generate` without the `prefill_chunk_size` that `GenerationMixin` requires:
    supply its default (no chunking) when the caller leaves it out."""
    prepare = model._prepare_static_cache
    if "prefill_chunk_size" not in inspect.signature(prepare).parameters:
        return

    def prepare_with_default(*args, **kwargs):
        if len(args) < 4:
            kwargs.setdefault("prefill_chunk_size", None)
        return prepare(*args, **kwargs)

    model._prepare_static_cache = prepare_with_default


def transformers_side(setup, model, tok, tok_ids, prompts, batch, runs, cfg):
    encode = lambda p: tok.encode(f"<|User|>: {p}\n\n<|Assistant|>:", add_special_tokens=False).ids  # noqa: E731
    rows = [[tok_ids["bos"]] + encode(p) + [tok_ids["boi"]] for p in prompts]
    width = max(len(r) for r in rows)
    device = setup["device"]
    ids = torch.tensor([[tok_ids["pad"]] * (width - len(r)) + r for r in rows], device=device)
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=device)
    config = GenerationConfig(
        do_sample=True,
        temperature=1.0,
        guidance_scale=cfg,
        bos_token_id=tok_ids["bos"],
        pad_token_id=tok_ids["pad"],
        eos_token_id=tok_ids["eos"],
        max_new_tokens=image_tokens(setup),
        generation_kwargs={"boi_token_id": tok_ids["boi"]},
    )
    tolerate_missing_prefill_chunk_size(model)
    codes_s, decode_s = [], []
    for run in range(runs + 1):
        sync(setup)
        t0 = time.perf_counter()
        with torch.no_grad():
            codes = model.generate(input_ids=ids, attention_mask=mask, generation_mode="image", generation_config=config)
        sync(setup)
        t1 = time.perf_counter()
        with torch.no_grad():
            pixels = model.decode_image_tokens(codes)
            ((pixels.float().clamp(-1, 1) + 1) / 2 * 255).to(torch.uint8).cpu()
        sync(setup)
        t2 = time.perf_counter()
        print(f"transformers batch {run}: codes {t1 - t0:.3f} s, decoding {t2 - t1:.3f} s", flush=True)
        if run > 0:
            codes_s.append(t1 - t0)
            decode_s.append(t2 - t1)
    return codes_s, decode_s


BATCH_LINE = re.compile(r"batch (\d+): (\d+) images .*image codes ([\d.]+) s, decoding and writing ([\d.]+) s")


def reasongen_side(setup, binary, model_dir, work, prompts, batch, runs, cfg):
    prompts_file = work / "prompts.txt"
    prompts_file.write_text("\n".join(prompts[:batch] * (runs + 1)) + "\n")
    cmd = [
        str(binary), "generate", "--model", str(model_dir), "--prompts-file", str(prompts_file),
        "--out", str(work / "reasongen-out"), "--plain", "--template", "{}", "--batch-size", str(batch),
        "--cfg", str(cfg), "--device", setup["device"], "--seed", "1",
    ]  # fmt: skip
    print("$", " ".join(cmd), flush=True)
    done = subprocess.run(cmd, capture_output=True, text=True)
    print(done.stdout + done.stderr, flush=True)
    if done.returncode != 0:
        raise SystemExit(f"reasongen failed with status {done.returncode}")
    codes_s, decode_s = [], []
    for m in BATCH_LINE.finditer(done.stderr):
        if int(m.group(1)) > 0:
            codes_s.append(float(m.group(3)))
            decode_s.append(float(m.group(4)))
    return codes_s, decode_s


def summary(name, batch, tokens, codes_s, decode_s):
    if not codes_s:
        raise SystemExit(f"{name}: no timed batches")
    codes = sum(codes_s) / len(codes_s)
    total = codes + sum(decode_s) / len(decode_s)
    return f"| {name} | {codes:.2f} s | {batch * tokens / codes:.0f} | {batch / codes:.2f} | {batch / total:.2f} |"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=str(ROOT / "target" / "release" / "reasongen"))
    ap.add_argument("--work", default="/tmp/janus-gpu-bench")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--runs", type=int, default=3, help="timed batches per side, after one warm-up batch")
    ap.add_argument("--cfg", type=float, default=5.0)
    ap.add_argument("--smoke", action="store_true", help="the tiny model on the CPU, to check the script")
    args = ap.parse_args()
    setup = SMOKE if args.smoke else FULL
    if setup["device"] == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU (use --smoke to check the script on the CPU)")
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(TOKENIZER))
    tok_ids = {
        "bos": tok.token_to_id(BOS),
        "eos": tok.token_to_id(EOS),
        "pad": tok.token_to_id(PAD),
        "boi": tok.token_to_id(BOI),
        "image": tok.token_to_id("<image_placeholder>"),
    }
    work = Path(args.work)
    model_dir = work / ("janus-tiny-random" if args.smoke else "janus-pro-1b-random")
    prompts = (PROMPTS * ((args.batch + len(PROMPTS) - 1) // len(PROMPTS)))[: args.batch]

    model = build_model(setup, tok_ids)
    write_model(setup, model, model_dir)
    where = torch.cuda.get_device_name(0) if setup["device"] == "cuda" else "CPU (smoke test)"
    print(f"device: {where}; torch {torch.__version__}", flush=True)
    hf = transformers_side(setup, model, tok, tok_ids, prompts, args.batch, args.runs, args.cfg)
    del model
    if setup["device"] == "cuda":
        torch.cuda.empty_cache()
    ours = reasongen_side(setup, Path(args.binary), model_dir, work, prompts, args.batch, args.runs, args.cfg)

    tokens = image_tokens(setup)
    print(f"\n{where}, random model ({setup['dtype']}), batch {args.batch}, CFG {args.cfg}, {tokens} codes per image")
    print("| | codes per batch | image tokens/s | images/s (codes) | images/s (with VQ decode) |")
    print("| --- | --- | --- | --- | --- |")
    print(summary("transformers", args.batch, tokens, *hf))
    print(summary("reasongen", args.batch, tokens, *ours))


if __name__ == "__main__":
    main()
