//! Weight names: DeepSeek's original layout, which the model code mirrors, and
//! transformers' converted layout (`convert_janus_weights_to_hf.py`), with the mapping
//! from the first to the second for the whole generation path, VQ included.
//!
//! | original | transformers |
//! |---|---|
//! | `language_model.model.*` | `model.language_model.*` |
//! | `language_model.lm_head.weight` | `lm_head.weight` |
//! | `gen_embed.*` | `model.generation_embeddings.*` |
//! | `gen_aligner.layers.0.*`, `gen_aligner.layers.{2k}.*` | `model.generation_aligner.fc1.*`, `….hidden_layers.{k−1}.*` |
//! | `gen_head.output_mlp_projector.*`, `gen_head.vision_head.*` | `model.generation_head.proj_out.*`, `….vision_head.*` |
//! | `gen_vision_model.*` | `model.vqmodel.*`, with `encoder.conv_blocks` → `encoder.down`, `decoder.conv_blocks` → `decoder.up`, a level's `res` → `block`, `mid.0/1/2` → `mid.block_1/attn_1/block_2` |
//!
//! transformers drops `gen_vision_model.quantize.codebook_used` (no counterpart) and
//! renames the understanding path (`vision_model`, `aligner`), which is not mapped here.

/// Which names a checkpoint uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// DeepSeek's release (`language_model.model.layers.0…`).
    Original,
    /// transformers' conversion (`model.language_model.layers.0…`).
    Transformers,
}

impl Layout {
    /// The layout of a checkpoint with these tensor names, if it is either.
    pub fn detect<'a>(mut names: impl Iterator<Item = &'a str>) -> Option<Layout> {
        names.find_map(|n| {
            if n.starts_with("language_model.") || n.starts_with("gen_head.") {
                Some(Layout::Original)
            } else if n.starts_with("model.language_model.") || n.starts_with("model.generation_") {
                Some(Layout::Transformers)
            } else {
                None
            }
        })
    }

    /// The name this layout stores the original-layout tensor `name` under.
    pub fn name(self, name: &str) -> Option<String> {
        match self {
            Layout::Original => Some(name.to_string()),
            Layout::Transformers => to_transformers(name),
        }
    }
}

/// transformers' name for an original-layout name of the generation path.
pub fn to_transformers(name: &str) -> Option<String> {
    if name == "language_model.lm_head.weight" {
        return Some("lm_head.weight".into());
    }
    if let Some(rest) = name.strip_prefix("language_model.model.") {
        return Some(format!("model.language_model.{rest}"));
    }
    if let Some(rest) = name.strip_prefix("gen_embed.") {
        return Some(format!("model.generation_embeddings.{rest}"));
    }
    if let Some(rest) = name.strip_prefix("gen_aligner.layers.") {
        let (index, leaf) = rest.split_once('.')?;
        let index: usize = index.parse().ok()?;
        return Some(match index {
            0 => format!("model.generation_aligner.fc1.{leaf}"),
            i if i % 2 == 0 => format!(
                "model.generation_aligner.hidden_layers.{}.{leaf}",
                i / 2 - 1
            ),
            _ => return None,
        });
    }
    if let Some(rest) = name.strip_prefix("gen_head.output_mlp_projector.") {
        return Some(format!("model.generation_head.proj_out.{rest}"));
    }
    if let Some(rest) = name.strip_prefix("gen_head.") {
        return Some(format!("model.generation_head.{rest}"));
    }
    let rest = name.strip_prefix("gen_vision_model.")?;
    let parts: Vec<&str> = rest.split('.').collect();
    let mut out = Vec::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        let before = |k: usize| i.checked_sub(k).map(|j| parts[j]);
        let mapped = match (*part, before(1), before(2)) {
            ("conv_blocks", Some("encoder"), _) => "down",
            ("conv_blocks", Some("decoder"), _) => "up",
            ("res", Some(_), Some("conv_blocks")) => "block",
            ("0", Some("mid"), _) => "block_1",
            ("1", Some("mid"), _) => "attn_1",
            ("2", Some("mid"), _) => "block_2",
            (p, _, _) => p,
        };
        out.push(mapped);
    }
    Some(format!("model.vqmodel.{}", out.join(".")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_as_transformers_converts_them() {
        let cases = [
            ("language_model.lm_head.weight", "lm_head.weight"),
            (
                "language_model.model.layers.3.self_attn.q_proj.weight",
                "model.language_model.layers.3.self_attn.q_proj.weight",
            ),
            ("gen_embed.weight", "model.generation_embeddings.weight"),
            (
                "gen_aligner.layers.0.bias",
                "model.generation_aligner.fc1.bias",
            ),
            (
                "gen_aligner.layers.2.weight",
                "model.generation_aligner.hidden_layers.0.weight",
            ),
            (
                "gen_head.output_mlp_projector.weight",
                "model.generation_head.proj_out.weight",
            ),
            (
                "gen_head.vision_head.bias",
                "model.generation_head.vision_head.bias",
            ),
            (
                "gen_vision_model.encoder.conv_blocks.4.res.1.nin_shortcut.weight",
                "model.vqmodel.encoder.down.4.block.1.nin_shortcut.weight",
            ),
            (
                "gen_vision_model.decoder.conv_blocks.0.attn.2.proj_out.bias",
                "model.vqmodel.decoder.up.0.attn.2.proj_out.bias",
            ),
            (
                "gen_vision_model.decoder.conv_blocks.3.upsample.conv.weight",
                "model.vqmodel.decoder.up.3.upsample.conv.weight",
            ),
            (
                "gen_vision_model.encoder.mid.1.q.weight",
                "model.vqmodel.encoder.mid.attn_1.q.weight",
            ),
            (
                "gen_vision_model.decoder.mid.2.norm2.bias",
                "model.vqmodel.decoder.mid.block_2.norm2.bias",
            ),
            (
                "gen_vision_model.quantize.embedding.weight",
                "model.vqmodel.quantize.embedding.weight",
            ),
            (
                "gen_vision_model.post_quant_conv.weight",
                "model.vqmodel.post_quant_conv.weight",
            ),
        ];
        for (original, hf) in cases {
            assert_eq!(to_transformers(original).as_deref(), Some(hf), "{original}");
        }
        assert_eq!(to_transformers("vision_model.vision_tower.pos_embed"), None);
        assert_eq!(to_transformers("gen_aligner.layers.1.weight"), None);
    }

    #[test]
    fn the_layout_is_read_from_the_names() {
        let original = ["vision_model.x", "language_model.model.norm.weight"];
        assert_eq!(Layout::detect(original.into_iter()), Some(Layout::Original));
        let hf = ["model.vision_model.x", "model.language_model.norm.weight"];
        assert_eq!(Layout::detect(hf.into_iter()), Some(Layout::Transformers));
        assert_eq!(Layout::detect(["encoder.weight"].into_iter()), None);
    }
}
