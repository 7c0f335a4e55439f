#!/usr/bin/env python3
"""Parity fixtures for the Janus-Pro model in candle (`train/src/janus/`).

Builds a tiny random Janus-Pro with transformers' implementation
(`JanusForConditionalGeneration`) and writes, under `train/tests/fixtures/janus/`:

  tokenizer.json            a tiny byte-level BPE with Janus' special tokens, added after the
                            learned vocabulary (so their ids are looked up, never assumed)
  original/                 DeepSeek's layout: `config.json` (multi_modality format, partial
                            `language_config`), `model.safetensors` (BF16), `tokenizer.json`
  hf/                       transformers' layout: `config.json`, `model.safetensors` (BF16)
  bin/                      `pytorch_model.bin` (torch.save, BF16) of the language model and
                            the generation heads only (no VQ: a checkpoint like the shapes
                            world's, whose images use another tokenizer)
  sharded/                  the whole original layout as two `.bin` shards with
                            `pytorch_model.bin.index.json`, as Janus-Pro-7B ships
  golden.safetensors        reference outputs in F32 (see below)
  golden.json               prompts, ids, generated tokens and options of those outputs

The weights are drawn with `torch.manual_seed(SEED)` at scales where every part of the
model moves the outputs (attention, RoPE, the norms' weights, the heads' biases), then
rounded to BF16 so that the BF16 files hold them exactly; the references are computed
in F32 from those values. The original layout inverts transformers' key mapping
(`convert_janus_weights_to_hf.py`); the understanding path (`vision_model`, `aligner`)
is left out of it, and two keys the released checkpoints carry and the generation path
does not read are put in (`gen_vision_model.quantize.codebook_used`, a rotary
`inv_freq`).

Goldens: text (`lm_head`) and image (`gen_head`) logits for a fixed sequence mixing text
and image codes, and for a left-padded batch of two rows; greedy rationales for three
prompts (one row stops on EOS, one on `<begin_of_image>`, one at the token cap: two
`lm_head` rows are swapped after the draw to make the stops happen); then greedy image
tokens with classifier-free guidance (weight 5) both after those rationales and in
Janus-Pro's plain mode without one, from transformers' `generate(generation_mode="image")`.

The VQ has the sizes of `Vq16Config::tiny()` in `train/src/janus/vq16.rs` (32 × 32
images, 16 × 16 = 256 codes of a 256-entry codebook), the config that
`scripts/janus_parity_vq.py` uses for the VQ's own encode and decode references
(`train/tests/fixtures/janus_vq/`); the two scripts are independent and may run in
either order. Needs torch and transformers (with `models/janus`):

    $HOME/.cache/reasongen-torch/bin/python scripts/janus_parity.py

`--check-checkpoint DIR` instead loads a model folder that reasongen wrote (e.g. after
SFT from `original/`: DeepSeek's layout, F32 safetensors, the parity model's sizes) into
transformers' Janus, writes its logits on the golden mixed sequence to
`DIR/python_logits.safetensors`, and compares them with `DIR/candle_logits.safetensors`
when reasongen wrote those (exit status 1 beyond 1e-4):

    $HOME/.cache/reasongen-torch/bin/python scripts/janus_parity.py --check-checkpoint DIR
"""

import json
import math
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    GenerationConfig,
    JanusConfig,
    JanusForConditionalGeneration,
    JanusVisionConfig,
    JanusVQVAEConfig,
    LlamaConfig,
)

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "train" / "tests" / "fixtures" / "janus"
SEED = 7

BOS = "<\uff5cbegin\u2581of\u2581sentence\uff5c>"
EOS = "<\uff5cend\u2581of\u2581sentence\uff5c>"
PAD = "<\uff5c\u2581pad\u2581\uff5c>"
BOI = "<begin_of_image>"
EOI = "<end_of_image>"
SPECIALS = [
    BOS,
    EOS,
    PAD,
    "<image_placeholder>",
    "<|User|>",
    "<|Assistant|>",
    BOI,
    EOI,
]

# The tiny language model; the image side is `Vq16Config::tiny()`.
TEXT = dict(
    vocab_size=320,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=512,
)
VQ = dict(codebook_size=256, embed_dim=8, ch=32, ch_mult=[2, 1], z_channels=32, num_res_blocks=1, resolution=32)
IMAGE_TOKENS = (VQ["resolution"] >> (len(VQ["ch_mult"]) - 1)) ** 2

CORPUS = [
    "a photo of a red cube on the left of a blue sphere",
    "two green triangles above a yellow circle",
    "a small purple square below three orange stars",
    "Output a richly detailed prompt: a grey canvas with coloured shapes",
    "the picture shows one large red circle in the centre and a tiny blue square",
] * 4

CFG_WEIGHT = 5.0
MAX_RATIONALE = 10
PLAIN_PROMPTS = ["a red cube", "two blue spheres on the left"]
COT_PROMPTS = ["a red cube", "three green stars", "a blue circle above a square"]
COT_TEMPLATE = "A photo of {}. Output a richly detailed prompt: "


def build_tokenizer() -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(CORPUS, trainer)
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in SPECIALS])
    return tok


def build_model(ids: dict) -> JanusForConditionalGeneration:
    text = LlamaConfig(
        **TEXT,
        tie_word_embeddings=False,
        bos_token_id=ids["bos"],
        eos_token_id=ids["eos"],
        pad_token_id=ids["pad"],
    )
    latent = VQ["resolution"] >> (len(VQ["ch_mult"]) - 1)
    vision = JanusVisionConfig(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        mlp_ratio=2,
        image_size=VQ["resolution"],
        patch_size=VQ["resolution"] // latent,
        projection_dim=TEXT["hidden_size"],
        num_image_tokens=IMAGE_TOKENS,
    )
    vq = JanusVQVAEConfig(
        embed_dim=VQ["embed_dim"],
        num_embeddings=VQ["codebook_size"],
        base_channels=VQ["ch"],
        channel_multiplier=VQ["ch_mult"],
        latent_channels=VQ["z_channels"],
        num_res_blocks=VQ["num_res_blocks"],
        projection_dim=TEXT["hidden_size"],
        image_token_embed_dim=TEXT["hidden_size"],
    )
    config = JanusConfig(
        text_config=text,
        vision_config=vision,
        vq_config=vq,
        image_token_id=ids["image"],
        tie_word_embeddings=False,
    )
    torch.manual_seed(SEED)
    model = JanusForConditionalGeneration(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 0.1)
            elif p.dim() == 1:  # norm weights
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            elif "embed" in name:
                p.normal_(0.0, 1.0)
            else:
                p.normal_(0.0, 1.0 / math.sqrt(p[0].numel()))
            p.copy_(p.bfloat16().float())
    assert model.lm_head.weight.data_ptr() != model.model.language_model.embed_tokens.weight.data_ptr()
    return model


def original_key(hf: str):
    """transformers' name → DeepSeek's (the inverse of `convert_janus_weights_to_hf.py`);
    None for the understanding path, which the original layout here leaves out."""
    if hf == "lm_head.weight":
        return "language_model.lm_head.weight"
    if hf.startswith(("model.vision_model.", "model.aligner.")):
        return None
    if hf.startswith("model.language_model."):
        return "language_model.model." + hf[len("model.language_model.") :]
    if hf.startswith("model.generation_embeddings."):
        return "gen_embed." + hf[len("model.generation_embeddings.") :]
    if hf.startswith("model.generation_aligner."):
        rest = hf[len("model.generation_aligner.") :]
        if rest.startswith("fc1."):
            return "gen_aligner.layers.0." + rest[len("fc1.") :]
        _, i, leaf = rest.split(".", 2)  # hidden_layers.{i}.{leaf}
        return f"gen_aligner.layers.{2 * (int(i) + 1)}.{leaf}"
    if hf.startswith("model.generation_head.proj_out."):
        return "gen_head.output_mlp_projector." + hf[len("model.generation_head.proj_out.") :]
    if hf.startswith("model.generation_head."):
        return "gen_head." + hf[len("model.generation_head.") :]
    if hf.startswith("model.vqmodel."):
        parts = hf[len("model.vqmodel.") :].split(".")
        out = []
        for i, part in enumerate(parts):
            prev = parts[i - 1] if i else ""
            if part in ("down", "up") and prev in ("encoder", "decoder"):
                part = "conv_blocks"
            elif part == "block" and i >= 2 and parts[i - 2] in ("down", "up"):
                part = "res"
            elif prev == "mid":
                part = {"block_1": "0", "attn_1": "1", "block_2": "2"}[part]
            out.append(part)
        return "gen_vision_model." + ".".join(out)
    raise ValueError(f"unmapped key {hf}")


def deepseek_config(config: JanusConfig) -> dict:
    """`config.json` as DeepSeek ships it: `language_config` lists only what differs from
    LlamaConfig's defaults (plus the model type), as the released 7B's does."""
    t = config.text_config
    h = t.hidden_size
    language = {
        "model_type": "llama",
        "vocab_size": t.vocab_size,
        "hidden_size": h,
        "intermediate_size": t.intermediate_size,
        "num_hidden_layers": t.num_hidden_layers,
        "num_attention_heads": t.num_attention_heads,
        "num_key_value_heads": t.num_key_value_heads,
        "max_position_embeddings": t.max_position_embeddings,
        "torch_dtype": "bfloat16",
    }
    gen_vision = {"image_token_size": VQ["codebook_size"], "n_embed": VQ["embed_dim"]}
    # Not in DeepSeek's files (VQ-16 is fixed there): the tiny VQ's sizes.
    gen_vision.update({k: VQ[k] for k in ("ch", "ch_mult", "z_channels", "num_res_blocks", "resolution")})
    return {
        "architectures": ["MultiModalityCausalLM"],
        "model_type": "multi_modality",
        "torch_dtype": "bfloat16",
        "transformers_version": "4.33.1",
        "language_config": language,
        "gen_vision_config": {"cls": "VQ-16", "model_type": "gen_vision", "params": gen_vision},
        "gen_aligner_config": {
            "cls": "MlpProjector",
            "model_type": "gen_aligner",
            "params": {"depth": 2, "input_dim": VQ["embed_dim"], "n_embed": h, "projector_type": "mlp_gelu"},
        },
        "gen_head_config": {
            "cls": "vision_head",
            "model_type": "gen_head",
            "params": {"image_token_embed": h, "image_token_size": VQ["codebook_size"], "n_embed": h},
        },
        "vision_config": {
            "cls": "CLIPVisionTower",
            "model_type": "vision",
            "params": {"image_size": 384, "model_name": "siglip_large_patch16_384", "select_layer": -1},
        },
        "aligner_config": {
            "cls": "MlpProjector",
            "model_type": "aligner",
            "params": {"depth": 2, "input_dim": 1024, "n_embed": h, "projector_type": "mlp_gelu"},
        },
    }


def bf16(sd: dict) -> dict:
    return {k: v.detach().to(torch.bfloat16).contiguous() for k, v in sd.items()}


def prompt_ids(tok: Tokenizer, ids: dict, text: str) -> list:
    return [ids["bos"]] + tok.encode(text, add_special_tokens=False).ids


def plain_text(prompt: str) -> str:
    return f"<|User|>: {prompt.strip()}\n\n<|Assistant|>:{BOI}"


def cot_text(prompt: str) -> str:
    return f"<|User|>: {COT_TEMPLATE.format(prompt).strip()}\n\n<|Assistant|>:"


def left_pad(rows: list, pad: int):
    width = max(len(r) for r in rows)
    ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    return ids, mask


def forward_logits(model, ids, image_mask, attention_mask=None):
    """Text and image logits of a sequence whose image positions hold codes."""
    text_ids = ids.masked_fill(image_mask, 0)
    codes = ids.masked_fill(~image_mask, 0)
    embeds = torch.where(
        image_mask[..., None],
        model.prepare_embeddings_for_image_generation(codes),
        model.get_input_embeddings()(text_ids),
    )
    kwargs = {}
    if attention_mask is not None:
        kwargs["attention_mask"] = attention_mask
        kwargs["position_ids"] = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    hidden = model.model.language_model(inputs_embeds=embeds, **kwargs).last_hidden_state
    return model.lm_head(hidden), model.model.generation_head(hidden)


def greedy_rationales(model, tok, ids, prompts):
    rows = [prompt_ids(tok, ids, cot_text(p)) for p in prompts]
    input_ids, mask = left_pad(rows, ids["pad"])
    out = model.generate(
        input_ids=input_ids,
        attention_mask=mask,
        do_sample=False,
        max_new_tokens=MAX_RATIONALE,
        eos_token_id=[ids["eos"], ids["boi"]],
        pad_token_id=ids["pad"],
    )
    generated = []
    for row in out[:, input_ids.shape[1] :].tolist():
        cut = []
        for t in row:
            cut.append(t)
            if t in (ids["eos"], ids["boi"]):
                break
        generated.append(cut)
    return rows, generated


def engineer_stops(model, tok, ids):
    """Swap `lm_head` rows so that greedy rationale row 0 stops on EOS, row 1 on
    `<begin_of_image>`, and row 2 runs to the cap."""
    for target, (row, step) in (("eos", (0, 2)), ("boi", (1, 4))):
        _, generated = greedy_rationales(model, tok, ids, COT_PROMPTS)
        token = generated[row][step]
        w = model.lm_head.weight.data
        a, b = w[token].clone(), w[ids[target]].clone()
        w[token], w[ids[target]] = b, a
    _, generated = greedy_rationales(model, tok, ids, COT_PROMPTS)
    ends = [g[-1] for g in generated]
    assert ends[0] == ids["eos"] and len(generated[0]) == 3, generated
    assert ends[1] == ids["boi"] and len(generated[1]) == 5, generated
    assert len(generated[2]) == MAX_RATIONALE and ends[2] not in (ids["eos"], ids["boi"]), generated


def image_generate(model, ids, rows):
    input_ids, mask = left_pad(rows, ids["pad"])
    config = GenerationConfig(
        do_sample=False,
        guidance_scale=CFG_WEIGHT,
        bos_token_id=ids["bos"],
        pad_token_id=ids["pad"],
        eos_token_id=ids["eos"],
        max_new_tokens=IMAGE_TOKENS,
        generation_kwargs={"boi_token_id": ids["boi"]},
    )
    return model.generate(
        input_ids=input_ids, attention_mask=mask, generation_mode="image", generation_config=config
    ).tolist()


def cot_prefix(ids, prompt_row, generated):
    """Prompt + rationale + `<begin_of_image>`, as ReasonGen-R1 hands a rationale to the
    image phase: EOS becomes `<begin_of_image>`, and a row cut at the cap has its last
    token replaced by it."""
    rationale = list(generated)
    rationale[-1] = ids["boi"]
    return prompt_row + rationale


def main():
    torch.set_grad_enabled(False)
    if OUT.exists():
        for sub in ("original", "hf", "bin", "sharded"):
            shutil.rmtree(OUT / sub, ignore_errors=True)
    for sub in ("original", "hf", "bin", "sharded"):
        (OUT / sub).mkdir(parents=True, exist_ok=True)

    tok = build_tokenizer()
    ids = {
        "bos": tok.token_to_id(BOS),
        "eos": tok.token_to_id(EOS),
        "pad": tok.token_to_id(PAD),
        "boi": tok.token_to_id(BOI),
        "eoi": tok.token_to_id(EOI),
        "image": tok.token_to_id("<image_placeholder>"),
    }
    tok.save(str(OUT / "tokenizer.json"))
    for sub in ("original", "hf"):
        shutil.copy(OUT / "tokenizer.json", OUT / sub / "tokenizer.json")

    model = build_model(ids)
    engineer_stops(model, tok, ids)

    # ---- weights, both layouts
    hf_sd = {k: v for k, v in model.state_dict().items()}
    save_file(bf16(hf_sd), str(OUT / "hf" / "model.safetensors"), metadata={"format": "pt"})
    model.config.save_pretrained(str(OUT / "hf"))

    orig = {}
    for k, v in hf_sd.items():
        name = original_key(k)
        if name is not None:
            orig[name] = v
    orig["gen_vision_model.quantize.codebook_used"] = torch.zeros(1024)
    head_dim = TEXT["hidden_size"] // TEXT["num_attention_heads"]
    orig["language_model.model.layers.0.self_attn.rotary_emb.inv_freq"] = 1.0 / (
        10000.0 ** (torch.arange(0, head_dim, 2).float() / head_dim)
    )
    orig = bf16(orig)
    save_file(orig, str(OUT / "original" / "model.safetensors"), metadata={"format": "pt"})
    config_json = json.dumps(deepseek_config(model.config), indent=2) + "\n"
    for sub in ("original", "bin", "sharded"):
        (OUT / sub / "config.json").write_text(config_json)

    lm_only = {k: v for k, v in orig.items() if not k.startswith("gen_vision_model.")}
    torch.save(lm_only, OUT / "bin" / "pytorch_model.bin")
    names = sorted(orig)
    shards = [names[: len(names) // 2], names[len(names) // 2 :]]
    weight_map = {}
    for i, part in enumerate(shards):
        file = f"pytorch_model-{i + 1:05d}-of-{len(shards):05d}.bin"
        torch.save({k: orig[k] for k in part}, OUT / "sharded" / file)
        weight_map.update({k: file for k in part})
    total = sum(v.numel() * v.element_size() for v in orig.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (OUT / "sharded" / "pytorch_model.bin.index.json").write_text(json.dumps(index, indent=2) + "\n")

    # ---- goldens
    golden = {}
    g = torch.Generator().manual_seed(SEED)
    prompt = prompt_ids(tok, ids, cot_text("a red cube"))
    rationale = tok.encode("a small red cube on the left", add_special_tokens=False).ids
    codes = torch.randint(0, VQ["codebook_size"], (12,), generator=g).tolist()
    seq = prompt + rationale + [ids["boi"]] + codes + [ids["eoi"], ids["eos"]]
    is_image = [False] * (len(prompt) + len(rationale) + 1) + [True] * len(codes) + [False, False]
    mixed_ids = torch.tensor([seq])
    mixed_mask = torch.tensor([is_image])
    text_logits, image_logits = forward_logits(model, mixed_ids, mixed_mask)
    golden["mixed.ids"] = mixed_ids[0]
    golden["mixed.image_mask"] = mixed_mask[0].to(torch.uint8)
    golden["mixed.text_logits"] = text_logits[0]
    golden["mixed.image_logits"] = image_logits[0]

    short = prompt_ids(tok, ids, plain_text("two blue spheres")) + codes[:5]
    short_image = [False] * (len(short) - 5) + [True] * 5
    rows = [seq[:-4], short]
    images = [is_image[:-4], short_image]
    padded_ids, attention = left_pad(rows, ids["pad"])
    width = padded_ids.shape[1]
    padded_image = torch.tensor([[False] * (width - len(m)) + m for m in images])
    text_logits, image_logits = forward_logits(model, padded_ids, padded_image, attention)
    golden["padded.ids"] = padded_ids
    golden["padded.image_mask"] = padded_image.to(torch.uint8)
    golden["padded.attention_mask"] = attention.to(torch.uint8)
    golden["padded.text_logits"] = text_logits
    golden["padded.image_logits"] = image_logits

    cot_rows, rationales = greedy_rationales(model, tok, ids, COT_PROMPTS)
    prefixes = [cot_prefix(ids, r, gen) for r, gen in zip(cot_rows, rationales)]
    cot_images = image_generate(model, ids, prefixes)
    plain_rows = [prompt_ids(tok, ids, plain_text(p)) for p in PLAIN_PROMPTS]
    plain_images = image_generate(model, ids, plain_rows)

    save_file({k: v.contiguous() for k, v in golden.items()}, str(OUT / "golden.safetensors"))
    meta = {
        "seed": SEED,
        "special_ids": ids,
        "cfg_weight": CFG_WEIGHT,
        "image_tokens": IMAGE_TOKENS,
        "max_rationale_tokens": MAX_RATIONALE,
        "cot_template": COT_TEMPLATE,
        "cot": [
            {
                "prompt": p,
                "text": cot_text(p),
                "prompt_ids": r,
                "rationale_ids": gen,
                "rationale": tok.decode(gen, skip_special_tokens=True),
                "image_tokens": img,
            }
            for p, r, gen, img in zip(COT_PROMPTS, cot_rows, rationales, cot_images)
        ],
        "plain": [
            {"prompt": p, "text": plain_text(p), "prompt_ids": r, "image_tokens": img}
            for p, r, img in zip(PLAIN_PROMPTS, plain_rows, plain_images)
        ],
    }
    (OUT / "golden.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n")
    size = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"wrote {OUT} ({size / 1e6:.2f} MB)")


def check_checkpoint(folder: Path) -> int:
    """Load reasongen's written checkpoint into transformers and compare logits."""
    torch.set_grad_enabled(False)
    tok = Tokenizer.from_file(str(OUT / "tokenizer.json"))
    ids = {
        "bos": tok.token_to_id(BOS),
        "eos": tok.token_to_id(EOS),
        "pad": tok.token_to_id(PAD),
        "image": tok.token_to_id("<image_placeholder>"),
    }
    model = build_model(ids).float()
    written = load_file(str(folder / "model.safetensors"))
    state = model.state_dict()
    used = set()
    for hf in state:
        original = original_key(hf)
        if original is None or original.startswith("gen_vision_model."):
            continue  # the understanding path and the VQ are not trained
        if original not in written:
            raise SystemExit(f"{folder}: no tensor `{original}` (for transformers' `{hf}`)")
        if tuple(written[original].shape) != tuple(state[hf].shape):
            raise SystemExit(f"{folder}: `{original}` is {tuple(written[original].shape)}, transformers wants {tuple(state[hf].shape)}")
        state[hf] = written[original].float()
        used.add(original)
    if set(written) - used:
        raise SystemExit(f"{folder}: tensors transformers has no place for: {sorted(set(written) - used)}")
    model.load_state_dict(state)
    golden = load_file(str(OUT / "golden.safetensors"))
    mixed = golden["mixed.ids"][None].long()
    mask = golden["mixed.image_mask"][None].bool()
    text, image = forward_logits(model, mixed, mask)
    save_file({"text_logits": text[0].contiguous(), "image_logits": image[0].contiguous()},
              str(folder / "python_logits.safetensors"))
    print(f"{folder}: {len(used)} tensors loaded into transformers' Janus; logits written")
    theirs = folder / "candle_logits.safetensors"
    if not theirs.exists():
        return 0
    ours = load_file(str(theirs))
    worst = 0.0
    for name, ref in (("text_logits", text[0]), ("image_logits", image[0])):
        diff = (ours[name].float() - ref).abs().max().item()
        worst = max(worst, diff)
        print(f"  {name}: max |reasongen − transformers| = {diff:.2e} over {tuple(ref.shape)}")
    return 0 if worst <= 1e-4 else 1


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--check-checkpoint":
        sys.exit(check_checkpoint(Path(sys.argv[2])))
    main()
