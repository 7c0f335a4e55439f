"""A tiny random-weight llama model and vision projector for llama.cpp's server.

Usage: make_tiny_models.py OUT_DIR [SEED]

Writes OUT_DIR/tiny-llm.gguf (a 2-layer, 64-wide llama with a byte-level BPE vocab
and a ChatML template) and OUT_DIR/tiny-mmproj.gguf (a 2-layer SigLIP-style vision
tower with a `gemma3` projector into the llm's 64 dimensions), with gguf and numpy
only: nothing is downloaded. The weights are random, so answers are noise unless the
server constrains them (a grammar or a JSON schema); the point is a real llama.cpp
server that takes images, not a judge that sees.
"""

import sys
from pathlib import Path

import gguf
import numpy as np

N_EMBD = 64
N_HEAD = 4
N_LAYER = 2
N_FF = 128
MERGES = ["Ġ t", "h e", "Ġt he", "i n", "a n", "e r", "o n", "Ġ a", "r e", "Ġ s"]
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}"
    "{% else %}{% for p in m['content'] %}{% if p['type'] == 'text' %}{{ p['text'] }}"
    "{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def bytes_to_unicode():
    """GPT-2's table from byte values to printable characters."""
    keep = list(range(ord("!"), ord("~") + 1))
    keep += list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars = keep[:]
    extra = 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(keep, (chr(c) for c in chars)))


def write_llm(path, rng):
    table = bytes_to_unicode()
    tokens = [table[b] for b in range(256)]
    tokens += [m.replace(" ", "") for m in MERGES] + SPECIAL
    types = [gguf.TokenType.NORMAL] * (256 + len(MERGES)) + [gguf.TokenType.CONTROL] * 3
    n_vocab = len(tokens)
    eot, im_start, im_end = (tokens.index(s) for s in SPECIAL)

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny-random-llama")
    w.add_context_length(4096)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(N_LAYER)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_HEAD)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(N_EMBD // N_HEAD)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(MERGES)
    w.add_bos_token_id(eot)
    w.add_eos_token_id(im_end)
    w.add_pad_token_id(eot)
    w.add_add_bos_token(False)
    w.add_chat_template(CHATML)

    def normal(shape, std):
        return rng.normal(0.0, std, size=shape).astype(np.float32)

    w.add_tensor("token_embd.weight", normal((n_vocab, N_EMBD), 1.0))
    w.add_tensor("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    # Only printable ASCII, newline and the merged tokens can be generated (plus the
    # end of turn), so answers are text.
    out = normal((n_vocab, N_EMBD), 3.0)
    for b in range(256):
        if not (0x20 <= b <= 0x7E or b == 0x0A):
            out[b] = 0.0
    out[eot] = 0.0
    out[im_start] = 0.0
    w.add_tensor("output.weight", out)
    for i in range(N_LAYER):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        w.add_tensor(p + "ffn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            w.add_tensor(p + name + ".weight", normal((N_EMBD, N_EMBD), 0.02))
        w.add_tensor(p + "ffn_gate.weight", normal((N_FF, N_EMBD), 0.02))
        w.add_tensor(p + "ffn_up.weight", normal((N_FF, N_EMBD), 0.02))
        w.add_tensor(p + "ffn_down.weight", normal((N_EMBD, N_FF), 0.02))
    finish(w)


def write_mmproj(path, rng, llm_embd):
    width, ff, patch, size, blocks = 64, 128, 8, 64, 2
    w = gguf.GGUFWriter(str(path), "clip")
    w.add_string("clip.projector_type", "gemma3")
    w.add_bool("clip.has_text_encoder", False)
    w.add_bool("clip.has_vision_encoder", True)
    w.add_bool("clip.has_llava_projector", False)
    w.add_uint32("clip.vision.image_size", size)
    w.add_uint32("clip.vision.patch_size", patch)
    w.add_uint32("clip.vision.embedding_length", width)
    w.add_uint32("clip.vision.feed_forward_length", ff)
    w.add_uint32("clip.vision.projection_dim", llm_embd)
    w.add_uint32("clip.vision.block_count", blocks)
    w.add_uint32("clip.vision.attention.head_count", 4)
    w.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-6)
    w.add_array("clip.vision.image_mean", [0.5, 0.5, 0.5])
    w.add_array("clip.vision.image_std", [0.5, 0.5, 0.5])
    w.add_bool("clip.use_gelu", True)
    w.add_uint32("clip.vision.projector.scale_factor", 4)

    def normal(shape, dtype=np.float16):
        return rng.normal(0.0, 0.02, size=shape).astype(dtype)

    def ones(n):
        return np.ones(n, dtype=np.float32)

    def zeros(n):
        return np.zeros(n, dtype=np.float32)

    w.add_tensor("v.patch_embd.weight", normal((width, 3, patch, patch), np.float32))
    w.add_tensor("v.patch_embd.bias", normal(width, np.float32))
    positions = (size // patch) ** 2
    w.add_tensor("v.position_embd.weight", normal((positions, width), np.float32))
    for i in range(blocks):
        p = f"v.blk.{i}."
        for ln in ("ln1", "ln2"):
            w.add_tensor(p + ln + ".weight", ones(width))
            w.add_tensor(p + ln + ".bias", zeros(width))
        for name in ("attn_q", "attn_k", "attn_v", "attn_out"):
            w.add_tensor(p + name + ".weight", normal((width, width)))
            w.add_tensor(p + name + ".bias", normal(width, np.float32))
        w.add_tensor(p + "ffn_up.weight", normal((ff, width)))
        w.add_tensor(p + "ffn_up.bias", normal(ff, np.float32))
        w.add_tensor(p + "ffn_down.weight", normal((width, ff)))
        w.add_tensor(p + "ffn_down.bias", normal(width, np.float32))
    w.add_tensor("v.post_ln.weight", ones(width))
    w.add_tensor("v.post_ln.bias", zeros(width))
    w.add_tensor("mm.input_projection.weight", normal((width, llm_embd)))
    w.add_tensor("mm.soft_emb_norm.weight", ones(width))
    finish(w)


def finish(w):
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    seed = int(sys.argv[2]) if len(sys.argv) == 3 else 0
    rng = np.random.default_rng(seed)
    write_llm(out / "tiny-llm.gguf", rng)
    write_mmproj(out / "tiny-mmproj.gguf", rng, N_EMBD)


if __name__ == "__main__":
    main()
