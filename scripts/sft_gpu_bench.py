#!/usr/bin/env python3
"""The SFT training step in PyTorch beside reasongen's, at the same sizes.

One step is forward, backward and AdamW (β 0.9/0.95, weight decay 0.01 on matrices,
global-norm clip 1.0) of Janus-Pro's generation path with random weights: FP32 master
weights, BF16 autocast on a GPU (FP32 on the CPU), on synthetic sequences of text then
image codes with every label in the loss (text × 2 through `lm_head`, image × 1 through
the generation head), the ReasonGen-R1 SFT loss. PyTorch runs transformers'
`JanusForConditionalGeneration` (language model, `lm_head`, generation embeddings,
aligner and head; the understanding tower and the VQ are built tiny and not trained);
reasongen runs `reasongen bench sft --json` with the same preset, batch and length.
Both print step time, tokens/s and, on a GPU, MFU with the same FLOP count (see
`eval/bench/src/sft.rs`).

    python scripts/sft_gpu_bench.py --binary target/release/reasongen            # GPU, 1B sizes
    python scripts/sft_gpu_bench.py --binary target/debug/reasongen --smoke      # CPU, tiny sizes

Without a GPU (torch sees none) it runs the --smoke sizes on the CPU.
"""

import argparse
import json
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from transformers import JanusConfig, JanusForConditionalGeneration, JanusVisionConfig, JanusVQVAEConfig, LlamaConfig

# The presets of `eval/bench/src/sft.rs`: (text config, image vocab, code dim, codes per image, default length).
PRESETS = {
    "tiny": (
        dict(vocab_size=1024, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048),
        256, 8, 256, 320,
    ),
    "1b": (
        dict(vocab_size=102400, hidden_size=2048, intermediate_size=5632, num_hidden_layers=24,
             num_attention_heads=16, num_key_value_heads=16, max_position_embeddings=16384),
        16384, 8, 576, 1024,
    ),
}


def build(preset: str, attn: str, device: str) -> JanusForConditionalGeneration:
    text, image_vocab, code_dim, _, _ = PRESETS[preset]
    h = text["hidden_size"]
    config = JanusConfig(
        text_config=LlamaConfig(**text, tie_word_embeddings=False),
        # The understanding tower and the VQ are not on the training path: tiny.
        vision_config=JanusVisionConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                        mlp_ratio=2, image_size=32, patch_size=16, projection_dim=h),
        vq_config=JanusVQVAEConfig(embed_dim=code_dim, num_embeddings=image_vocab, base_channels=32,
                                   channel_multiplier=[1, 1], latent_channels=32, num_res_blocks=1,
                                   projection_dim=h, image_token_embed_dim=h),
        tie_word_embeddings=False,
    )
    config._attn_implementation = attn
    with torch.device(device):
        model = JanusForConditionalGeneration(config)
    return model.float().train()


def trainable(name: str) -> bool:
    return name.startswith(("model.language_model.", "lm_head.", "model.generation_"))


def flops(preset: str, rows: int, text_len: int, image_len: int) -> float:
    """The FLOP count of `eval/bench/src/sft.rs` (PaLM's convention)."""
    t, image_vocab, code_dim, _, _ = PRESETS[preset]
    h, layers = t["hidden_size"], t["num_hidden_layers"]
    hd = h // t["num_attention_heads"]
    q, kv = t["num_attention_heads"] * hd, t["num_key_value_heads"] * hd
    layer = 2 * h * q + 2 * h * kv + 3 * h * t["intermediate_size"]
    seq = text_len + image_len
    per_token = 6 * layer * layers + 12 * layers * q * seq
    gen_head = h * h + h * image_vocab
    aligner = code_dim * h + h * h
    per_row = (per_token * seq + 6 * (text_len - 1) * h * t["vocab_size"]
               + 6 * image_len * gen_head + 6 * image_len * aligner)
    return per_row * rows


def torch_step_time(args, device: str, text_len: int, image_len: int) -> dict:
    torch.manual_seed(0)
    model = build(args.preset, args.attn, device)
    params = [p for n, p in model.named_parameters() if trainable(n)]
    for n, p in model.named_parameters():
        p.requires_grad_(trainable(n))
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-5, betas=(0.9, 0.95), eps=1e-8)
    t, image_vocab, _, _, _ = PRESETS[args.preset]
    seq = text_len + image_len
    g = torch.Generator().manual_seed(1)
    text_ids = torch.randint(0, t["vocab_size"], (args.batch, seq), generator=g)
    codes = torch.randint(0, image_vocab, (args.batch, seq), generator=g)
    is_image = torch.zeros(args.batch, seq, dtype=torch.bool)
    is_image[:, text_len:] = True
    text_ids, codes, is_image = text_ids.to(device), codes.to(device), is_image.to(device)
    # Position j predicts token j + 1: text head where it is text, image head where a code.
    nxt = is_image[:, 1:]
    flat_pos = (torch.arange(seq - 1, device=device)[None, :] + seq * torch.arange(args.batch, device=device)[:, None])
    text_pos, image_pos = flat_pos[~nxt], flat_pos[nxt]
    text_tgt = text_ids[:, 1:][~nxt]
    image_tgt = codes[:, 1:][nxt]
    count = args.batch * (seq - 1)
    cuda = device.startswith("cuda")
    embed = model.get_input_embeddings()

    def step():
        with torch.autocast("cuda" if cuda else "cpu", dtype=torch.bfloat16, enabled=cuda):
            embeds = torch.where(is_image[..., None], model.prepare_embeddings_for_image_generation(codes),
                                 embed(text_ids))
            hidden = model.model.language_model(inputs_embeds=embeds).last_hidden_state
            flat = hidden.reshape(-1, hidden.shape[-1])
            text_logits = model.lm_head(flat[text_pos]).float()
            image_logits = model.model.generation_head(flat[image_pos]).float()
            loss = (2.0 * F.cross_entropy(text_logits, text_tgt, reduction="sum")
                    + F.cross_entropy(image_logits, image_tgt, reduction="sum")) / count
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    sync = torch.cuda.synchronize if cuda else (lambda: None)
    for _ in range(args.warmup):
        step()
    sync()
    start = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    sync()
    step_s = (time.perf_counter() - start) / args.steps
    out = {
        "impl": f"PyTorch {torch.__version__} + transformers Janus ({args.attn} attention)",
        "parameters": sum(p.numel() for p in params),
        "step_s": step_s,
        "tokens_per_s": args.batch * seq / step_s,
        "tflops": flops(args.preset, args.batch, text_len, image_len) / step_s / 1e12,
        "loss": float(loss.detach()),
    }
    if cuda:
        out["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    del model, opt, params, decay, no_decay
    if cuda:
        torch.cuda.empty_cache()
    return out


def ours(args, device: str) -> dict:
    cmd = [args.binary, "bench", "sft", "--device", "cuda" if device.startswith("cuda") else "cpu",
           "--preset", args.preset, "--batch", str(args.batch), "--seq", str(args.seq),
           "--steps", str(args.steps), "--warmup", str(args.warmup), "--json"]
    print("$", " ".join(cmd), flush=True)
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        sys.stderr.write(run.stdout + run.stderr)
        raise SystemExit(f"reasongen bench sft failed with exit code {run.returncode}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", required=True, help="the reasongen binary (a cuda build for the GPU)")
    ap.add_argument("--work", help="scratch folder (unused; accepted for scripts/device_check.sh)")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU")
    ap.add_argument("--preset", choices=sorted(PRESETS), help="default: 1b on a GPU, tiny with --smoke")
    ap.add_argument("--batch", type=int, help="sequences per step (default: 2 for 1b, 8 for tiny)")
    ap.add_argument("--seq", type=int, help="tokens per sequence (default: 1024 for 1b, 320 for tiny)")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"], help="transformers' attention")
    ap.add_argument("--peak-tflops", type=float, help="dense BF16 peak for MFU (default: 989 for H100/H200)")
    args = ap.parse_args()
    gpu = torch.cuda.is_available() and not args.smoke
    if not gpu and not args.smoke:
        print("torch sees no GPU: running the --smoke sizes on the CPU")
    args.preset = args.preset or ("1b" if gpu else "tiny")
    _, _, _, codes, default_seq = PRESETS[args.preset]
    args.batch = args.batch or (2 if args.preset == "1b" else 8)
    args.seq = args.seq or default_seq
    image_len = min(codes, args.seq // 2)
    text_len = args.seq - image_len
    device = "cuda" if gpu else "cpu"
    name = torch.cuda.get_device_name(0) if gpu else "CPU"
    peak = args.peak_tflops or (989.0 if any(k in name for k in ("H100", "H200")) else None)
    print(f"SFT step, preset {args.preset}, batch {args.batch} × {args.seq} tokens "
          f"({text_len} text + {image_len} image), on {name}", flush=True)
    rows = [ours(args, device), torch_step_time(args, device, text_len, image_len)]
    print(f"{'implementation':<58} {'params (M)':>10} {'s/step':>8} {'tokens/s':>10} {'TFLOP/s':>8} {'MFU':>6}")
    for r in rows:
        mfu = f"{100 * r['tflops'] / peak:5.1f}%" if gpu and peak else "    -"
        print(f"{r['impl'][:58]:<58} {r['parameters'] / 1e6:>10.1f} {r['step_s']:>8.3f} "
              f"{r['tokens_per_s']:>10.0f} {r['tflops']:>8.2f} {mfu:>6}")
    print(f"reasongen / PyTorch step time: {rows[0]['step_s'] / rows[1]['step_s']:.2f}×")
    print("json:", json.dumps({"reasongen": rows[0], "pytorch": rows[1], "device": name, "peak_tflops": peak}))


if __name__ == "__main__":
    main()
