#!/usr/bin/env python3
"""VQ-16 encoding throughput beside transformers' Janus VQ encoder, on the same device.

transformers' `JanusVQVAE` at its default config (Janus-Pro's VQ-16: 384² images, 576
codes) with random weights encodes batches of 384² images: encoder, quant_conv and
Janus' l2-normalised nearest-code search (as `scripts/janus_parity_vq.py` computes
it; transformers' own quantizer skips the normalisation). Then `reasongen bench vq16`
runs at the same batch sizes on the same device. Printed: images/s of each side per
batch size, the first batch a warm-up. BF16 on a GPU, F32 on the CPU (`--cpu`).

Needs torch and transformers with `models/janus`, and a `reasongen` binary (a CUDA
build for the GPU: scripts/build_cuda.sh). Run from the repository root:

    python scripts/vq16_bench.py --binary target/debug/reasongen --batch 1,16,64

Written in a session without a GPU or torch: not run yet.
"""

import argparse
import subprocess
import time

import torch
import torch.nn.functional as F
from transformers import JanusVQVAEConfig
from transformers.models.janus.modeling_janus import JanusVQVAE


def codes(model, pixels):
    latents = model.quant_conv(model.encoder(pixels)).float()
    b, e, h, w = latents.shape
    z = F.normalize(latents.permute(0, 2, 3, 1).reshape(-1, e), p=2, dim=-1)
    emb = F.normalize(model.quantize.embedding.weight.float(), p=2, dim=-1)
    d = torch.sum(z**2, dim=1, keepdim=True) + torch.sum(emb**2, dim=1) - 2 * z @ emb.t()
    return torch.argmin(d, dim=1).reshape(b, h * w)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--binary", required=True, help="the reasongen executable")
    ap.add_argument("--batch", default="1,16,64", help="batch sizes, comma-separated")
    ap.add_argument("--runs", type=int, default=2, help="timed batches after a warm-up")
    ap.add_argument("--cpu", action="store_true", help="the CPU in F32 (default: cuda, BF16)")
    args = ap.parse_args()
    device, dtype = ("cpu", torch.float32) if args.cpu else ("cuda", torch.bfloat16)
    batches = [int(b) for b in args.batch.split(",")]

    torch.manual_seed(0)
    model = JanusVQVAE(JanusVQVAEConfig()).eval().to(device=device, dtype=dtype)
    side = 384
    print(f"transformers {device} {dtype}: batch, s/batch, images/s")
    with torch.inference_mode():
        for batch in batches:
            pixels = torch.rand(batch, 3, side, side, device=device, dtype=dtype) * 2 - 1
            seconds = 0.0
            for run in range(args.runs + 1):
                if device == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                out = codes(model, pixels).cpu()
                if run > 0:
                    seconds += (time.perf_counter() - start) / args.runs
            assert out.shape == (batch, 576)
            print(f"  {batch:>5}  {seconds:7.3f}  {batch / seconds:8.2f}")

    print("reasongen:", flush=True)
    subprocess.run(
        [args.binary, "bench", "vq16", "--device", "cpu" if args.cpu else "cuda",
         "--batch", args.batch, "--runs", str(args.runs)],
        check=True,
    )


if __name__ == "__main__":
    main()
