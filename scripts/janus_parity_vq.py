"""Golden fixtures for VQ-16 parity (train/tests/vq16_parity.rs).

Builds a tiny random VQ-16 with transformers' Janus VQ model (`JanusVQVAE`) under a
fixed seed and writes, into train/tests/fixtures/janus_vq/:

- `tokenizer.json`: {"kind": "vq16", "config": ...}, the tiny config in our names;
- `model.safetensors`: its weights in Janus' original layout (`gen_vision_model.*`,
  keys renamed back from transformers' by MAPPING below), stored as BF16; the model
  is rounded to BF16 before the goldens are computed, so the Rust side loads exactly
  the weights that made them;
- `images/*.png`: a few 32x32 test images;
- `golden.safetensors`: for those images, `latents` (quant_conv output, F32),
  `codes` (I64 [B, 256]) and `pixels` (decode of `codes`, F32 [B, 3, 32, 32]); and
  `random_codes` / `random_pixels`, a decode of codes drawn over the whole codebook;
- `vq16_keys.txt`: every tensor name and shape of the full-size VQ-16 (transformers'
  default config, built on the meta device) in the original layout, which the Rust
  model must ask for exactly.

Reference: transformers' encoder, decoder, quant_conv, post_quant_conv and
`decode` (its `get_codebook_entry` l2-normalises the codes, as Janus does). Encoding
differs: Janus' quantizer (`codebook_l2_norm=True`) l2-normalises the latents and the
codebook before the nearest-code search, transformers' `JanusVQVAEVectorQuantizer`
does not, so `codes` are computed here with the normalisation (see `janus_codes`).

Run: $HOME/.cache/reasongen-torch/bin/python scripts/janus_parity_vq.py
(torch 2.15 CPU, transformers 5.24, safetensors, numpy, Pillow). Deterministic: the
same versions write the same files.
"""

import json
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file
from transformers import JanusVQVAEConfig
from transformers.models.janus.modeling_janus import JanusVQVAE

OUT = Path(__file__).resolve().parent.parent / "train" / "tests" / "fixtures" / "janus_vq"
SEED = 20250601

# Our config (train/src/janus/vq16.rs, Vq16Config::tiny) and transformers' names for it.
TINY = {
    "codebook_size": 256,
    "embed_dim": 8,
    "ch": 32,
    "ch_mult": [2, 1],
    "z_channels": 32,
    "num_res_blocks": 1,
    "resolution": 32,
}
LATENT_SIDE = TINY["resolution"] // 2 ** (len(TINY["ch_mult"]) - 1)

# transformers' VQ key → Janus' original key, applied in order (the inverse of the
# VQ part of transformers' convert_janus_weights_to_hf.py). `quantize.codebook_used`
# (a usage counter of the original, unused by the model) is not written.
MAPPING = [
    (r"^encoder\.down\.", "encoder.conv_blocks."),
    (r"^decoder\.up\.", "decoder.conv_blocks."),
    (r"\.mid\.block_1\.", ".mid.0."),
    (r"\.mid\.attn_1\.", ".mid.1."),
    (r"\.mid\.block_2\.", ".mid.2."),
    (r"\.block\.(\d+)\.", r".res.\1."),
]
PREFIX = "gen_vision_model."


def original_name(key):
    for pattern, repl in MAPPING:
        key = re.sub(pattern, repl, key)
    return PREFIX + key


def hf_config(c):
    return JanusVQVAEConfig(
        embed_dim=c["embed_dim"],
        num_embeddings=c["codebook_size"],
        latent_channels=c["z_channels"],
        base_channels=c["ch"],
        channel_multiplier=c["ch_mult"],
        num_res_blocks=c["num_res_blocks"],
        num_patches=LATENT_SIDE,
    )


def randomise(model, gen):
    """Every parameter random (transformers' init leaves norms at 1/0), at a scale that
    keeps activations O(1) through the blocks, then rounded to BF16."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                base = 1.0 if name.endswith("weight") else 0.0
                v = base + 0.2 * torch.randn(p.shape, generator=gen)
            elif name.endswith("quantize.embedding.weight"):
                v = torch.randn(p.shape, generator=gen)  # rows of any norm
            elif name.endswith("weight"):
                fan_in = p[0].numel()
                v = torch.randn(p.shape, generator=gen) / fan_in**0.5
            else:
                v = 0.1 * torch.randn(p.shape, generator=gen)
            p.copy_(v.to(torch.bfloat16).to(torch.float32))


def test_images(gen):
    """Three 32x32 RGB images: a colour gradient, a disc on a checkerboard, noise."""
    s = TINY["resolution"]
    y, x = np.mgrid[0:s, 0:s].astype(np.float32) / (s - 1)
    gradient = np.stack([x, y, 1 - (x + y) / 2], -1) * 255
    checker = ((np.mgrid[0:s, 0:s] // 4).sum(0) % 2)[..., None] * np.array([40, 160, 90])
    disc = ((x - 0.55) ** 2 + (y - 0.45) ** 2 < 0.09)[..., None] * np.array([180, 20, 200])
    shapes = np.clip(checker + disc, 0, 255)
    noise = torch.randint(0, 256, (s, s, 3), generator=gen).numpy()
    return [np.asarray(a, dtype=np.uint8) for a in (gradient, shapes, noise)]


def to_pixels(images):
    """uint8 HWC → F32 NCHW in [-1, 1]: ToTensor then Normalize(0.5, 0.5)."""
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).to(torch.float32) / 255.0
    return (x - 0.5) / 0.5


def janus_codes(model, latents):
    """Janus' VectorQuantizer(l2_norm=True).forward's indices: l2-normalised latents and
    codebook, argmin of |z|^2 + |e|^2 - 2 z.e. Also the smallest gap between the best and
    second-best distance (a tie-break a float rounding could flip)."""
    b, e, h, w = latents.shape
    z = F.normalize(latents.permute(0, 2, 3, 1).reshape(-1, e), p=2, dim=-1)
    emb = F.normalize(model.quantize.embedding.weight, p=2, dim=-1)
    d = torch.sum(z**2, dim=1, keepdim=True) + torch.sum(emb**2, dim=1) - 2 * z @ emb.t()
    top2 = torch.topk(d, 2, dim=1, largest=False).values
    gap = (top2[:, 1] - top2[:, 0]).min().item()
    return torch.argmin(d, dim=1).reshape(b, h * w), gap


def full_size_keys():
    with torch.device("meta"):
        model = JanusVQVAE(JanusVQVAEConfig())
    lines = [f"{original_name(k)} {list(v.shape)}" for k, v in model.state_dict().items()]
    return sorted(lines)


def main():
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    model = JanusVQVAE(hf_config(TINY)).eval()
    randomise(model, gen)

    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "images").mkdir(exist_ok=True)
    with open(OUT / "tokenizer.json", "w") as f:
        json.dump({"kind": "vq16", "config": TINY}, f, indent=2)
        f.write("\n")
    weights = {original_name(k): v.to(torch.bfloat16).contiguous() for k, v in model.state_dict().items()}
    save_file(weights, OUT / "model.safetensors")

    images = test_images(gen)
    names = ["gradient", "shapes", "noise"]
    for name, img in zip(names, images):
        Image.fromarray(img).save(OUT / "images" / f"{name}.png")
    # The PNGs round-trip exactly; the goldens read them back as the Rust test does.
    images = [np.asarray(Image.open(OUT / "images" / f"{n}.png").convert("RGB")) for n in names]

    with torch.no_grad():
        latents = model.quant_conv(model.encoder(to_pixels(images)))
        codes, gap = janus_codes(model, latents)
        # Rust's latents differ by ~1e-5 at most: a nearer tie could flip a code.
        assert gap > 1e-5, f"a near tie between codes ({gap:.1e}): change SEED"
        hf_codes = model.quantize(latents)[2].reshape(codes.shape)
        pixels = model.decode(codes)
        random_codes = torch.randint(0, TINY["codebook_size"], (2, LATENT_SIDE**2), generator=gen)
        random_pixels = model.decode(random_codes)
    save_file(
        {
            "latents": latents.contiguous(),
            "codes": codes.to(torch.int64).contiguous(),
            "pixels": pixels.contiguous(),
            "random_codes": random_codes.to(torch.int64).contiguous(),
            "random_pixels": random_pixels.contiguous(),
        },
        OUT / "golden.safetensors",
        metadata={"images": ",".join(names)},
    )
    with open(OUT / "vq16_keys.txt", "w") as f:
        f.write("\n".join(full_size_keys()) + "\n")

    print(f"weights: {len(weights)} tensors, {sum(v.numel() for v in weights.values())} parameters")
    print(f"distinct codes per image: {[len(set(c.tolist())) for c in codes]}")
    print(f"smallest gap between best and second-best code distance: {gap:.3e}")
    print(f"codes where transformers' unnormalised quantizer differs: {(hf_codes != codes).sum().item()} of {codes.numel()}")
    print(f"pixels range: [{pixels.min().item():.3f}, {pixels.max().item():.3f}]")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
