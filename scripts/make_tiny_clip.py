#!/usr/bin/env python3
"""Write a tiny random CLIP in Hugging Face's layout, and its golden outputs.

`eval/tests/data/tiny_clip/` receives what a user's CLIP folder holds (`config.json`,
`model.safetensors` with `CLIPModel`'s tensor names, a fast-tokenizer `tokenizer.json`
in CLIP's structure: NFC + whitespace + lowercase normaliser, CLIP's split regex,
byte-level, BPE with `</w>`, `<|startoftext|>`/`<|endoftext|>` around the text), four
small PNG images, and `golden.json` + `golden.safetensors`: token ids, the images'
pixels after CLIPImageProcessor's resize and centre crop (Pillow's bicubic), the
normalised text and image embeddings and their cosine similarities, computed here by a
numpy forward written from transformers' `modeling_clip.py` (float64). The Rust CLIP
(`eval/src/clip/`) is tested against these, so CI needs no Python. Rerun after changing
a case:

    $HOME/.cache/reasongen-venv/bin/python scripts/make_tiny_clip.py

Needs numpy, Pillow and the `safetensors` package (no torch, no transformers). The
weights are stored as float16 (a real checkpoint may be either); the reference reads
them back, so both sides compute with the same values. The whole folder is ~150 KB.
"""

import collections
import io
import json
import math
import pathlib
import re
import unicodedata

import numpy as np
from PIL import Image
from safetensors.numpy import save_file

OUT = pathlib.Path(__file__).resolve().parent.parent / "eval" / "tests" / "data" / "tiny_clip"

TEXT = dict(hidden_size=32, intermediate_size=64, num_attention_heads=4, num_hidden_layers=2,
            max_position_embeddings=16, hidden_act="quick_gelu", layer_norm_eps=1e-5)
VISION = dict(hidden_size=32, intermediate_size=64, num_attention_heads=4, num_hidden_layers=2,
              image_size=32, patch_size=8, num_channels=3, hidden_act="gelu", layer_norm_eps=1e-5)
PROJECTION = 16
MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)

PROMPTS = [
    "a photo of a red cube",
    "A photo of a Blue sphere.",
    "two green cones   and a yellow  cylinder",
    "a photo of a purple cube to the left of an orange sphere, and three pink cones on the table",
]
COLORS = ["red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white"]
CORPUS = PROMPTS + ["sphere cone cylinder"] + [
    t for c in COLORS for t in (f"a photo of a {c} cube", f"a photo of a {c}-colored cube", f"a photo of a {c} object")
]
# The byte-level alphabet of the tiny vocabulary: the characters the prompts use.
ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789,.'-!?"
MERGES = 120


def bytes_to_unicode():
    """GPT-2/CLIP's byte → printable character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


BYTE = bytes_to_unicode()
# CLIP's split, for ASCII text: \p{L} → letters, \p{N} → digits.
SPLIT = re.compile(r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[a-z]+|[0-9]|[^\sa-z0-9]+")


def words(text):
    assert text.isascii(), text
    text = re.sub(r"\s+", " ", unicodedata.normalize("NFC", text)).lower()
    return ["".join(BYTE[b] for b in w.encode()) for w in SPLIT.findall(text)]


def symbols(word):
    return list(word[:-1]) + [word[-1] + "</w>"]


def learn_merges(corpus, n):
    """Plain BPE training: merge the most frequent pair (ties: the smallest pair)."""
    freq = collections.Counter(w for t in corpus for w in words(t))
    vocab = {tuple(symbols(w)): c for w, c in freq.items()}
    merges = []
    for _ in range(n):
        pairs = collections.Counter()
        for syms, c in vocab.items():
            for p in zip(syms, syms[1:]):
                pairs[p] += c
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        merged = {}
        for syms, c in vocab.items():
            out, i = [], 0
            while i < len(syms):
                if i + 1 < len(syms) and (syms[i], syms[i + 1]) == best:
                    out.append(syms[i] + syms[i + 1])
                    i += 2
                else:
                    out.append(syms[i])
                    i += 1
            merged[tuple(out)] = c
        vocab = merged
    return merges


def bpe(word, ranks):
    """CLIP's `bpe`: merge the lowest-ranked pair until none is left."""
    syms = symbols(word)
    while len(syms) > 1:
        pairs = [(ranks.get(p, math.inf), i) for i, p in enumerate(zip(syms, syms[1:]))]
        rank, i = min(pairs)
        if rank == math.inf:
            break
        syms = syms[:i] + [syms[i] + syms[i + 1]] + syms[i + 2:]
    return syms


def make_tokenizer():
    base = [BYTE[ord(c)] for c in ALPHABET]
    merges = learn_merges(CORPUS, MERGES)
    tokens = base + [c + "</w>" for c in base] + ["".join(m) for m in merges]
    tokens = list(dict.fromkeys(tokens)) + ["<|startoftext|>", "<|endoftext|>"]
    vocab = {t: i for i, t in enumerate(tokens)}
    special = lambda t: {"id": vocab[t], "content": t, "single_word": False, "lstrip": False,
                         "rstrip": False, "normalized": True, "special": True}
    tokenizer = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [special("<|startoftext|>"), special("<|endoftext|>")],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "NFC"},
            {"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": " "},
            {"type": "Lowercase"}]},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+"},
             "behavior": "Removed", "invert": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]},
        "post_processor": {"type": "RobertaProcessing",
                           "sep": ["<|endoftext|>", vocab["<|endoftext|>"]],
                           "cls": ["<|startoftext|>", vocab["<|startoftext|>"]],
                           "trim_offsets": False, "add_prefix_space": False},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "</w>", "fuse_unk": False, "byte_fallback": False,
                  "ignore_merges": False, "vocab": vocab, "merges": [list(m) for m in merges]},
    }
    ranks = {m: i for i, m in enumerate(merges)}

    def encode(text):
        ids = [vocab[s] for w in words(text) for s in bpe(w, ranks)]
        ids = ids[: TEXT["max_position_embeddings"] - 2]
        return [vocab["<|startoftext|>"]] + ids + [vocab["<|endoftext|>"]]

    return tokenizer, vocab, encode


def make_weights(rng, vocab_size):
    w = {}

    def normal(name, shape, std):
        w[name] = rng.normal(0.0, std, shape)

    def linear(name, n_in, n_out, bias=True):
        normal(f"{name}.weight", (n_out, n_in), n_in ** -0.5)
        if bias:
            normal(f"{name}.bias", (n_out,), 0.1)

    def norm(name, n):
        w[f"{name}.weight"] = 1.0 + rng.normal(0.0, 0.1, n)
        normal(f"{name}.bias", (n,), 0.1)

    def encoder(prefix, cfg):
        h, m = cfg["hidden_size"], cfg["intermediate_size"]
        for i in range(cfg["num_hidden_layers"]):
            p = f"{prefix}.encoder.layers.{i}"
            for proj in "qkv":
                linear(f"{p}.self_attn.{proj}_proj", h, h)
            linear(f"{p}.self_attn.out_proj", h, h)
            norm(f"{p}.layer_norm1", h)
            linear(f"{p}.mlp.fc1", h, m)
            linear(f"{p}.mlp.fc2", m, h)
            norm(f"{p}.layer_norm2", h)

    th, vh = TEXT["hidden_size"], VISION["hidden_size"]
    normal("text_model.embeddings.token_embedding.weight", (vocab_size, th), 0.5)
    normal("text_model.embeddings.position_embedding.weight", (TEXT["max_position_embeddings"], th), 0.2)
    encoder("text_model", TEXT)
    norm("text_model.final_layer_norm", th)
    p, c = VISION["patch_size"], VISION["num_channels"]
    patches = (VISION["image_size"] // p) ** 2
    normal("vision_model.embeddings.class_embedding", (vh,), 0.5)
    normal("vision_model.embeddings.patch_embedding.weight", (vh, c, p, p), (c * p * p) ** -0.5)
    normal("vision_model.embeddings.position_embedding.weight", (patches + 1, vh), 0.2)
    norm("vision_model.pre_layrnorm", vh)
    encoder("vision_model", VISION)
    norm("vision_model.post_layernorm", vh)
    linear("visual_projection", vh, PROJECTION, bias=False)
    linear("text_projection", th, PROJECTION, bias=False)
    w["logit_scale"] = np.array(2.6592)
    return {k: v.astype(np.float16) for k, v in w.items()}


# --- the reference forward (transformers' CLIPModel, eval mode) -------------------------

def layer_norm(x, w, prefix, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w[f"{prefix}.weight"] + w[f"{prefix}.bias"]


def linear_fw(x, w, prefix, bias=True):
    y = x @ w[f"{prefix}.weight"].T
    return y + w[f"{prefix}.bias"] if bias else y


ACT = {
    "quick_gelu": lambda x: x / (1.0 + np.exp(-1.702 * x)),
    "gelu": lambda x: 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0))),
}


def encoder_fw(x, w, prefix, cfg, mask):
    t, h = x.shape
    heads = cfg["num_attention_heads"]
    d = h // heads
    for i in range(cfg["num_hidden_layers"]):
        p = f"{prefix}.encoder.layers.{i}"
        res = x
        y = layer_norm(x, w, f"{p}.layer_norm1", cfg["layer_norm_eps"])
        q, k, v = (linear_fw(y, w, f"{p}.self_attn.{n}_proj").reshape(t, heads, d).transpose(1, 0, 2) for n in "qkv")
        scores = q @ k.transpose(0, 2, 1) * d ** -0.5
        if mask is not None:
            scores = scores + mask
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        attn = scores / scores.sum(-1, keepdims=True)
        y = (attn @ v).transpose(1, 0, 2).reshape(t, h)
        x = res + linear_fw(y, w, f"{p}.self_attn.out_proj")
        res = x
        y = layer_norm(x, w, f"{p}.layer_norm2", cfg["layer_norm_eps"])
        y = linear_fw(ACT[cfg["hidden_act"]](linear_fw(y, w, f"{p}.mlp.fc1")), w, f"{p}.mlp.fc2")
        x = res + y
    return x


def text_forward(ids, w, eos_token_id):
    ids = np.array(ids)
    t = len(ids)
    x = w["text_model.embeddings.token_embedding.weight"][ids] + w["text_model.embeddings.position_embedding.weight"][:t]
    mask = np.triu(np.full((t, t), -np.inf), 1)
    x = encoder_fw(x, w, "text_model", TEXT, mask)
    x = layer_norm(x, w, "text_model.final_layer_norm", TEXT["layer_norm_eps"])
    # transformers' pooling: the legacy eos_token_id (2) takes the largest id, otherwise
    # the first position of eos_token_id.
    at = int(ids.argmax()) if eos_token_id == 2 else int((ids == eos_token_id).argmax())
    return linear_fw(x[at], w, "text_projection", bias=False)


def vision_forward(pixels, w):
    c, s, _ = pixels.shape
    p = VISION["patch_size"]
    g = s // p
    patches = pixels.reshape(c, g, p, g, p).transpose(1, 3, 0, 2, 4).reshape(g * g, c * p * p)
    kernel = w["vision_model.embeddings.patch_embedding.weight"].reshape(-1, c * p * p)
    x = np.concatenate([w["vision_model.embeddings.class_embedding"][None], patches @ kernel.T])
    x = x + w["vision_model.embeddings.position_embedding.weight"]
    x = layer_norm(x, w, "vision_model.pre_layrnorm", VISION["layer_norm_eps"])
    x = encoder_fw(x, w, "vision_model", VISION, None)
    pooled = layer_norm(x[0], w, "vision_model.post_layernorm", VISION["layer_norm_eps"])
    return linear_fw(pooled, w, "visual_projection", bias=False)


# --- CLIPImageProcessor (resize the shortest side, bicubic; centre crop; normalise) ----

def resized_crop(image, size):
    w, h = image.size
    short, long = (w, h) if w <= h else (h, w)
    if short != size:
        new_long = int(size * long / short)
        image = image.resize((size, new_long) if w <= h else (new_long, size), Image.BICUBIC)
    w, h = image.size
    top, left = (h - size) // 2, (w - size) // 2
    return np.asarray(image.convert("RGB"))[top:top + size, left:left + size]


def normalise(crop):
    x = (crop.astype(np.float64) * (1 / 255)).astype(np.float32)
    return ((x - MEAN) / STD).transpose(2, 0, 1)


def make_images():
    """Four RGB images: two at the model's size, one to shrink, one to enlarge."""
    rng = np.random.default_rng(7)
    out = []
    y, x = np.mgrid[0:32, 0:32]
    a = np.zeros((32, 32, 3), np.uint8)
    a[...] = (200, 30, 40)
    a[(x - 20) ** 2 + (y - 12) ** 2 < 60] = (20, 40, 220)
    out.append(("square_red_blue.png", a))
    out.append(("square_noise.png", rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)))
    y, x = np.mgrid[0:40, 0:48]
    b = np.stack([x * 5, y * 6, (x * y) % 256], -1).astype(np.uint8)
    b[10:25, 5:20] = (250, 250, 0)
    out.append(("wide_48x40.png", b))
    y, x = np.mgrid[0:45, 0:30]
    c = np.stack([255 - y * 5, x * 8, np.full_like(x, 90)], -1).astype(np.uint8)
    c[30:40, 10:28] = (0, 160, 60)
    out.append(("tall_30x45.png", c))
    return out


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2024)
    tokenizer, vocab, encode = make_tokenizer()
    eos = vocab["<|endoftext|>"]
    config = {
        "_name_or_path": "reasongen/tiny-random-clip",
        "architectures": ["CLIPModel"],
        "model_type": "clip",
        "projection_dim": PROJECTION,
        "logit_scale_init_value": 2.6592,
        # As OpenAI's own configs: the legacy eos_token_id 2, so pooling takes the
        # largest id (the end token, the last of the vocabulary).
        "text_config": dict(TEXT, vocab_size=len(vocab), projection_dim=PROJECTION,
                            bos_token_id=0, pad_token_id=1, eos_token_id=2, model_type="clip_text_model"),
        "vision_config": dict(VISION, projection_dim=PROJECTION, model_type="clip_vision_model"),
    }
    weights = make_weights(rng, len(vocab))
    (OUT / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (OUT / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False) + "\n")
    save_file(weights, str(OUT / "model.safetensors"))

    w = {k: v.astype(np.float64) for k, v in weights.items()}
    ids = [encode(p) for p in PROMPTS]
    assert len(ids[-1]) == TEXT["max_position_embeddings"], "the last prompt must be truncated"
    text = np.stack([text_forward(i, w, 2) for i in ids])
    # The same towers with the post-#24773 pooling (first eos position): the same here,
    # since the end token is the largest id.
    assert np.allclose(text, np.stack([text_forward(i, w, eos) for i in ids]))
    crops, names = [], []
    for name, pixels in make_images():
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="PNG")
        (OUT / name).write_bytes(buf.getvalue())
        crops.append(resized_crop(Image.open(io.BytesIO(buf.getvalue())), VISION["image_size"]))
        names.append(name)
    image = np.stack([vision_forward(normalise(c).astype(np.float64), w) for c in crops])
    text /= np.linalg.norm(text, axis=-1, keepdims=True)
    image /= np.linalg.norm(image, axis=-1, keepdims=True)
    save_file({
        "pixels": np.stack(crops).astype(np.uint8),
        "text_embeds": text.astype(np.float32),
        "image_embeds": image.astype(np.float32),
        "cosine": (image @ text.T).astype(np.float32),
    }, str(OUT / "golden.safetensors"))
    golden = {"prompts": PROMPTS, "input_ids": ids, "images": names,
              "logit_scale": float(w["logit_scale"])}
    (OUT / "golden.json").write_text(json.dumps(golden, indent=1) + "\n")
    print(f"vocabulary {len(vocab)}, {sum(v.size for v in weights.values())} parameters")
    print("cosine (images x prompts):\n", np.round(image @ text.T, 4))


if __name__ == "__main__":
    main()
