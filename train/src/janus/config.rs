//! The Janus-Pro config: the language model (a Llama), the image-generation heads and
//! the VQ's sizes, read from either `config.json` layout.
//!
//! - DeepSeek's release (`model_type: "multi_modality"`): `language_config` is a
//!   *partial* `LlamaConfig` (the 7B's lists five keys), so every key it omits takes
//!   transformers' `LlamaConfig` default; `gen_vision_config.params`,
//!   `gen_aligner_config.params` and `gen_head_config.params` size the image side. VQ-16
//!   itself is fixed there; a smaller VQ (the test presets) adds its sizes to
//!   `gen_vision_config.params` (`ch`, `ch_mult`, `z_channels`, `num_res_blocks`,
//!   `resolution`), which DeepSeek's code does not read.
//! - transformers' conversion (`model_type: "janus"`): `text_config` (also partial when
//!   saved as a diff), `vq_config`, and `vision_config` (whose `image_size / patch_size`
//!   is the side of the code grid).
//!
//! Options the model does not implement (rope scaling, biases in the Llama, another
//! activation) are errors rather than silently ignored. [`JanusConfig::tiny`] and
//! [`JanusConfig::mini`] and [`JanusConfig::small`] are presets of the same architecture for tests and the shapes
//! world, with any text and image vocabulary.

use super::error::{JanusError, Result};
use super::vq16::Vq16Config;
use serde_json::{Value, json};
use std::path::Path;

/// The language model's sizes (transformers' `LlamaConfig`; [`Default`] is its defaults).
#[derive(Clone, Debug, PartialEq)]
pub struct LlamaConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub max_position_embeddings: usize,
    /// The text head reuses `embed_tokens` when the checkpoint has no `lm_head`.
    pub tie_word_embeddings: bool,
}

impl Default for LlamaConfig {
    fn default() -> Self {
        LlamaConfig {
            vocab_size: 32000,
            hidden_size: 4096,
            intermediate_size: 11008,
            num_hidden_layers: 32,
            num_attention_heads: 32,
            num_key_value_heads: 32,
            head_dim: 128,
            rms_norm_eps: 1e-6,
            rope_theta: 10000.0,
            max_position_embeddings: 2048,
            tie_word_embeddings: false,
        }
    }
}

/// The whole generation path's sizes.
#[derive(Clone, Debug, PartialEq)]
pub struct JanusConfig {
    pub language: LlamaConfig,
    /// Image codes the heads know (`gen_embed` rows, `gen_head` outputs): 16384 for VQ-16.
    pub image_vocab: usize,
    /// Width of `gen_embed` (the VQ's code dimension, 8).
    pub code_dim: usize,
    /// Linear layers of `gen_aligner` (2: Linear, GELU, Linear).
    pub aligner_depth: usize,
    /// Width of `gen_head`'s hidden layer (`image_token_embed`; the LLM's width in Janus-Pro).
    pub head_embed: usize,
    /// The VQ's sizes (VQ-16's unless the config says otherwise).
    pub vq: Vq16Config,
}

/// A JSON object's fields with their defaults, naming the section in errors.
struct Fields<'a> {
    obj: &'a serde_json::Map<String, Value>,
    section: &'a str,
    path: &'a Path,
}

impl<'a> Fields<'a> {
    fn of(value: &'a Value, section: &'a str, path: &'a Path) -> Result<Self> {
        match value {
            Value::Object(obj) => Ok(Fields { obj, section, path }),
            _ => Err(JanusError::config(
                path,
                format!("`{section}` must be an object"),
            )),
        }
    }

    fn sub(&self, key: &'a str) -> Result<Fields<'a>> {
        match self.obj.get(key) {
            Some(v) if !v.is_null() => Fields::of(v, key, self.path),
            _ => Err(JanusError::config(
                self.path,
                format!("`{}` has no `{key}`", self.section),
            )),
        }
    }

    fn sub_or_empty(&self, key: &'a str) -> Result<Option<Fields<'a>>> {
        match self.obj.get(key) {
            Some(v) if !v.is_null() => Fields::of(v, key, self.path).map(Some),
            _ => Ok(None),
        }
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.obj.get(key).filter(|v| !v.is_null())
    }

    fn bad(&self, key: &str, want: &str) -> JanusError {
        JanusError::config(
            self.path,
            format!("`{}.{key}` must be {want}", self.section),
        )
    }

    fn usize_opt(&self, key: &str) -> Result<Option<usize>> {
        self.get(key)
            .map(|v| {
                v.as_u64()
                    .map(|n| n as usize)
                    .ok_or_else(|| self.bad(key, "a non-negative integer"))
            })
            .transpose()
    }

    fn usize_or(&self, key: &str, default: usize) -> Result<usize> {
        Ok(self.usize_opt(key)?.unwrap_or(default))
    }

    fn f64_or(&self, key: &str, default: f64) -> Result<f64> {
        self.get(key)
            .map(|v| v.as_f64().ok_or_else(|| self.bad(key, "a number")))
            .transpose()
            .map(|v| v.unwrap_or(default))
    }

    fn bool_or(&self, key: &str, default: bool) -> Result<bool> {
        self.get(key)
            .map(|v| v.as_bool().ok_or_else(|| self.bad(key, "true or false")))
            .transpose()
            .map(|v| v.unwrap_or(default))
    }

    fn str_opt(&self, key: &str) -> Result<Option<&'a str>> {
        self.get(key)
            .map(|v| v.as_str().ok_or_else(|| self.bad(key, "a string")))
            .transpose()
    }

    fn usize_list_opt(&self, key: &str) -> Result<Option<Vec<usize>>> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let list = v
            .as_array()
            .ok_or_else(|| self.bad(key, "a list of integers"))?;
        list.iter()
            .map(|x| {
                x.as_u64()
                    .map(|n| n as usize)
                    .ok_or_else(|| self.bad(key, "a list of integers"))
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    fn unsupported(&self, key: &str, what: &str) -> JanusError {
        JanusError::config(
            self.path,
            format!("`{}.{key}`: {what} is not supported", self.section),
        )
    }
}

impl LlamaConfig {
    /// A (partial) `LlamaConfig` object; missing keys take transformers' defaults.
    fn parse(f: &Fields) -> Result<Self> {
        let d = LlamaConfig::default();
        let hidden_size = f.usize_or("hidden_size", d.hidden_size)?;
        let num_attention_heads = f.usize_or("num_attention_heads", d.num_attention_heads)?;
        if num_attention_heads == 0 || !hidden_size.is_multiple_of(num_attention_heads) {
            return Err(JanusError::config(
                f.path,
                format!(
                    "`{}`: hidden_size {hidden_size} is not a multiple of num_attention_heads {num_attention_heads}",
                    f.section
                ),
            ));
        }
        let rope = f.sub_or_empty("rope_parameters")?;
        let mut rope_theta = f.f64_or("rope_theta", d.rope_theta)?;
        if let Some(rope) = &rope {
            rope_theta = rope.f64_or("rope_theta", rope_theta)?;
            if let Some(kind) = rope.str_opt("rope_type")?
                && kind != "default"
            {
                return Err(rope.unsupported("rope_type", &format!("rope type `{kind}`")));
            }
        }
        if f.get("rope_scaling").is_some() {
            return Err(f.unsupported("rope_scaling", "rope scaling"));
        }
        if let Some(act) = f.str_opt("hidden_act")?
            && act != "silu"
        {
            return Err(f.unsupported("hidden_act", &format!("activation `{act}`")));
        }
        for key in ["attention_bias", "mlp_bias"] {
            if f.bool_or(key, false)? {
                return Err(f.unsupported(key, "a bias"));
            }
        }
        Ok(LlamaConfig {
            vocab_size: f.usize_or("vocab_size", d.vocab_size)?,
            hidden_size,
            intermediate_size: f.usize_or("intermediate_size", d.intermediate_size)?,
            num_hidden_layers: f.usize_or("num_hidden_layers", d.num_hidden_layers)?,
            num_attention_heads,
            num_key_value_heads: f.usize_or("num_key_value_heads", num_attention_heads)?,
            head_dim: f.usize_or("head_dim", hidden_size / num_attention_heads)?,
            rms_norm_eps: f.f64_or("rms_norm_eps", d.rms_norm_eps)?,
            rope_theta,
            max_position_embeddings: f
                .usize_or("max_position_embeddings", d.max_position_embeddings)?,
            tie_word_embeddings: f.bool_or("tie_word_embeddings", d.tie_word_embeddings)?,
        })
    }

    fn to_json(&self) -> Value {
        json!({
            "model_type": "llama",
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "head_dim": self.head_dim,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "max_position_embeddings": self.max_position_embeddings,
            "tie_word_embeddings": self.tie_word_embeddings,
            "hidden_act": "silu",
        })
    }
}

impl JanusConfig {
    /// Read `config.json` in either layout.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read(path).map_err(|e| JanusError::io(path, e))?;
        let value: Value = serde_json::from_slice(&text)
            .map_err(|e| JanusError::config(path, format!("not JSON: {e}")))?;
        Self::from_json(&value, path)
    }

    /// Parse a config in either layout; `path` is named in errors.
    pub fn from_json(value: &Value, path: &Path) -> Result<Self> {
        let top = Fields::of(value, "config", path)?;
        let config = if top.get("language_config").is_some() {
            Self::parse_deepseek(&top)?
        } else if top.get("text_config").is_some() {
            Self::parse_transformers(&top)?
        } else {
            return Err(JanusError::config(
                path,
                "neither DeepSeek's layout (`language_config`) nor transformers' (`text_config`)",
            ));
        };
        config
            .check()
            .map_err(|message| JanusError::config(path, message))?;
        Ok(config)
    }

    fn parse_deepseek(top: &Fields) -> Result<Self> {
        let language = LlamaConfig::parse(&top.sub("language_config")?)?;
        let vision = top.sub("gen_vision_config")?.sub("params")?;
        let aligner = top.sub("gen_aligner_config")?.sub("params")?;
        let head = top.sub("gen_head_config")?.sub("params")?;
        let d = Vq16Config::default();
        let image_vocab = vision.usize_or("image_token_size", d.codebook_size as usize)?;
        let code_dim = vision.usize_or("n_embed", d.embed_dim)?;
        if let Some(kind) = top.sub("gen_aligner_config")?.str_opt("cls")?
            && kind != "MlpProjector"
        {
            return Err(top.unsupported("gen_aligner_config.cls", &format!("`{kind}`")));
        }
        if let Some(kind) = aligner.str_opt("projector_type")?
            && kind != "mlp_gelu"
        {
            return Err(aligner.unsupported("projector_type", &format!("`{kind}`")));
        }
        let consistent = [
            (
                "gen_aligner_config.params.input_dim",
                aligner.usize_opt("input_dim")?,
                code_dim,
            ),
            (
                "gen_aligner_config.params.n_embed",
                aligner.usize_opt("n_embed")?,
                language.hidden_size,
            ),
            (
                "gen_head_config.params.n_embed",
                head.usize_opt("n_embed")?,
                language.hidden_size,
            ),
            (
                "gen_head_config.params.image_token_size",
                head.usize_opt("image_token_size")?,
                image_vocab,
            ),
        ];
        for (key, found, want) in consistent {
            if let Some(found) = found
                && found != want
            {
                return Err(JanusError::config(
                    top.path,
                    format!("`{key}` is {found}, but the model's size there is {want}"),
                ));
            }
        }
        let vq = Vq16Config {
            codebook_size: image_vocab as u32,
            embed_dim: code_dim,
            ch: vision.usize_or("ch", d.ch)?,
            ch_mult: vision.usize_list_opt("ch_mult")?.unwrap_or(d.ch_mult),
            z_channels: vision.usize_or("z_channels", d.z_channels)?,
            num_res_blocks: vision.usize_or("num_res_blocks", d.num_res_blocks)?,
            resolution: vision.usize_or("resolution", d.resolution as usize)? as u32,
        };
        Ok(JanusConfig {
            aligner_depth: aligner.usize_or("depth", 2)?,
            head_embed: head.usize_or("image_token_embed", language.hidden_size)?,
            language,
            image_vocab,
            code_dim,
            vq,
        })
    }

    fn parse_transformers(top: &Fields) -> Result<Self> {
        let text = top.sub("text_config")?;
        let mut language = LlamaConfig::parse(&text)?;
        // JanusConfig ties by default; its own key wins over the text config's.
        let tie = text.bool_or("tie_word_embeddings", true)?;
        language.tie_word_embeddings = top.bool_or("tie_word_embeddings", tie)?;
        let empty = Value::Object(Default::default());
        let vq = match top.sub_or_empty("vq_config")? {
            Some(f) => f,
            None => Fields::of(&empty, "vq_config", top.path)?,
        };
        let vision = match top.sub_or_empty("vision_config")? {
            Some(f) => f,
            None => Fields::of(&empty, "vision_config", top.path)?,
        };
        let d = Vq16Config::default();
        let ch_mult = vq
            .usize_list_opt("channel_multiplier")?
            .unwrap_or(d.ch_mult);
        let image_size = vision.usize_or("image_size", 384)?;
        let patch_size = vision.usize_or("patch_size", 16)?;
        if patch_size == 0 || ch_mult.is_empty() {
            return Err(JanusError::config(
                top.path,
                "`vision_config.patch_size` and `vq_config.channel_multiplier` must be non-empty",
            ));
        }
        let side = image_size / patch_size;
        let image_vocab = vq.usize_or("num_embeddings", d.codebook_size as usize)?;
        let code_dim = vq.usize_or("embed_dim", d.embed_dim)?;
        // transformers' head: proj_out (image_token_embed_dim → projection_dim), vision_head.
        let head_in = vq.usize_or("image_token_embed_dim", language.hidden_size)?;
        if head_in != language.hidden_size {
            return Err(JanusError::config(
                top.path,
                format!(
                    "`vq_config.image_token_embed_dim` is {head_in}, but the language model is {} wide",
                    language.hidden_size
                ),
            ));
        }
        Ok(JanusConfig {
            aligner_depth: vq.usize_or("num_hidden_layers", 2)?,
            head_embed: vq.usize_or("projection_dim", language.hidden_size)?,
            image_vocab,
            code_dim,
            vq: Vq16Config {
                codebook_size: image_vocab as u32,
                embed_dim: code_dim,
                ch: vq.usize_or("base_channels", d.ch)?,
                z_channels: vq.usize_or("latent_channels", d.z_channels)?,
                num_res_blocks: vq.usize_or("num_res_blocks", d.num_res_blocks)?,
                resolution: (side << (ch_mult.len() - 1)) as u32,
                ch_mult,
            },
            language,
        })
    }

    /// Sizes that cannot build a model.
    pub fn check(&self) -> std::result::Result<(), String> {
        let l = &self.language;
        let positive = [
            ("vocab_size", l.vocab_size),
            ("hidden_size", l.hidden_size),
            ("intermediate_size", l.intermediate_size),
            ("num_hidden_layers", l.num_hidden_layers),
            ("num_key_value_heads", l.num_key_value_heads),
            ("head_dim", l.head_dim),
            ("max_position_embeddings", l.max_position_embeddings),
            ("image vocabulary", self.image_vocab),
            ("code dimension", self.code_dim),
            ("gen_aligner depth", self.aligner_depth),
            ("gen_head width", self.head_embed),
        ];
        for (name, v) in positive {
            if v == 0 {
                return Err(format!("{name} must be positive"));
            }
        }
        if !l.num_attention_heads.is_multiple_of(l.num_key_value_heads) {
            return Err(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                l.num_attention_heads, l.num_key_value_heads
            ));
        }
        if !l.head_dim.is_multiple_of(2) {
            return Err(format!("head_dim {} must be even (RoPE)", l.head_dim));
        }
        if self.vq.codebook_size as usize != self.image_vocab {
            return Err(format!(
                "the VQ has {} codes but the heads know {}",
                self.vq.codebook_size, self.image_vocab
            ));
        }
        self.vq.check()
    }

    /// `config.json` in DeepSeek's layout, every language key written out, and the VQ's
    /// sizes beside VQ-16's two keys when they are not VQ-16's.
    pub fn to_json(&self) -> Value {
        let h = self.language.hidden_size;
        let mut vision = json!({"image_token_size": self.image_vocab, "n_embed": self.code_dim});
        let vq16 = Vq16Config::default();
        if (
            self.vq.ch,
            &self.vq.ch_mult,
            self.vq.z_channels,
            self.vq.num_res_blocks,
            self.vq.resolution,
        ) != (
            vq16.ch,
            &vq16.ch_mult,
            vq16.z_channels,
            vq16.num_res_blocks,
            vq16.resolution,
        ) {
            vision["ch"] = json!(self.vq.ch);
            vision["ch_mult"] = json!(self.vq.ch_mult);
            vision["z_channels"] = json!(self.vq.z_channels);
            vision["num_res_blocks"] = json!(self.vq.num_res_blocks);
            vision["resolution"] = json!(self.vq.resolution);
        }
        json!({
            "architectures": ["MultiModalityCausalLM"],
            "model_type": "multi_modality",
            "language_config": self.language.to_json(),
            "gen_vision_config": {"cls": "VQ-16", "model_type": "gen_vision", "params": vision},
            "gen_aligner_config": {
                "cls": "MlpProjector",
                "model_type": "gen_aligner",
                "params": {"depth": self.aligner_depth, "input_dim": self.code_dim, "n_embed": h, "projector_type": "mlp_gelu"},
            },
            "gen_head_config": {
                "cls": "vision_head",
                "model_type": "gen_head",
                "params": {"n_embed": h, "image_token_embed": self.head_embed, "image_token_size": self.image_vocab},
            },
        })
    }

    /// Codes per image of the model's own VQ.
    pub fn image_tokens(&self) -> usize {
        self.vq.tokens()
    }

    /// The test preset: a 2-layer Llama 64 wide (4 heads sharing 2 key-value heads) for
    /// any text and image vocabulary; the VQ is `Vq16Config::tiny` resized to the codes.
    pub fn tiny(text_vocab: usize, image_vocab: usize) -> Self {
        Self::preset(text_vocab, image_vocab, 64, 128, 2, (4, 2))
    }

    /// A 4-layer Llama 128 wide with 4 heads: two more layers and twice the width of
    /// `tiny`, the shapes world's SFT model on two CPU cores.
    pub fn mini(text_vocab: usize, image_vocab: usize) -> Self {
        Self::preset(text_vocab, image_vocab, 128, 344, 4, (4, 4))
    }

    /// A 4-layer Llama 256 wide with 8 heads.
    pub fn small(text_vocab: usize, image_vocab: usize) -> Self {
        Self::preset(text_vocab, image_vocab, 256, 688, 4, (8, 8))
    }

    fn preset(
        text_vocab: usize,
        image_vocab: usize,
        hidden_size: usize,
        intermediate_size: usize,
        layers: usize,
        (heads, kv_heads): (usize, usize),
    ) -> Self {
        JanusConfig {
            language: LlamaConfig {
                vocab_size: text_vocab,
                hidden_size,
                intermediate_size,
                num_hidden_layers: layers,
                num_attention_heads: heads,
                num_key_value_heads: kv_heads,
                head_dim: hidden_size / heads,
                max_position_embeddings: 2048,
                ..LlamaConfig::default()
            },
            image_vocab,
            code_dim: 8,
            aligner_depth: 2,
            head_embed: hidden_size,
            vq: Vq16Config {
                codebook_size: image_vocab as u32,
                ..Vq16Config::tiny()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: Value) -> Result<JanusConfig> {
        JanusConfig::from_json(&value, Path::new("config.json"))
    }

    /// Janus-Pro-7B's released config: `language_config` has five keys.
    fn janus_pro_7b() -> Value {
        json!({
            "model_type": "multi_modality",
            "language_config": {"max_position_embeddings": 16384, "model_type": "llama",
                "num_hidden_layers": 30, "torch_dtype": "bfloat16", "vocab_size": 102400},
            "gen_vision_config": {"cls": "VQ-16", "params": {"image_token_size": 16384, "n_embed": 8}},
            "gen_aligner_config": {"cls": "MlpProjector",
                "params": {"depth": 2, "input_dim": 8, "n_embed": 4096, "projector_type": "mlp_gelu"}},
            "gen_head_config": {"cls": "vision_head",
                "params": {"image_token_embed": 4096, "image_token_size": 16384, "n_embed": 4096}},
        })
    }

    #[test]
    fn missing_language_keys_take_llama_defaults() {
        let c = parse(janus_pro_7b()).unwrap();
        let l = &c.language;
        assert_eq!(
            (l.hidden_size, l.intermediate_size, l.num_attention_heads),
            (4096, 11008, 32)
        );
        assert_eq!(
            (l.num_key_value_heads, l.head_dim, l.num_hidden_layers),
            (32, 128, 30)
        );
        assert_eq!(
            (l.rms_norm_eps, l.rope_theta, l.tie_word_embeddings),
            (1e-6, 10000.0, false)
        );
        assert_eq!((l.vocab_size, l.max_position_embeddings), (102400, 16384));
        assert_eq!(
            (c.image_vocab, c.code_dim, c.head_embed, c.aligner_depth),
            (16384, 8, 4096, 2)
        );
        assert_eq!(c.vq, Vq16Config::default());
        assert_eq!(c.image_tokens(), 576);
        assert_eq!(parse(c.to_json()).unwrap(), c);
    }

    #[test]
    fn unsupported_or_inconsistent_settings_name_the_key() {
        let mut v = janus_pro_7b();
        v["language_config"]["rope_scaling"] = json!({"type": "linear", "factor": 2.0});
        assert!(parse(v).unwrap_err().to_string().contains("rope_scaling"));
        let mut v = janus_pro_7b();
        v["language_config"]["hidden_act"] = json!("gelu");
        assert!(parse(v).unwrap_err().to_string().contains("hidden_act"));
        let mut v = janus_pro_7b();
        v["gen_head_config"]["params"]["n_embed"] = json!(2048);
        let err = parse(v).unwrap_err().to_string();
        assert!(
            err.contains("gen_head_config.params.n_embed") && err.contains("4096"),
            "{err}"
        );
        let mut v = janus_pro_7b();
        v["language_config"]["hidden_size"] = json!("wide");
        assert!(
            parse(v)
                .unwrap_err()
                .to_string()
                .contains("language_config.hidden_size")
        );
        let err = parse(json!({"model_type": "llama"}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("neither"), "{err}");
    }

    #[test]
    fn transformers_rope_parameters_are_read() {
        let v = json!({
            "model_type": "janus",
            "text_config": {"hidden_size": 64, "num_attention_heads": 4, "vocab_size": 100,
                "rope_parameters": {"rope_theta": 500000.0, "rope_type": "default"}},
            "vq_config": {"num_embeddings": 16384, "projection_dim": 64, "image_token_embed_dim": 64},
        });
        let c = parse(v).unwrap();
        assert_eq!(c.language.rope_theta, 500000.0);
        assert!(
            c.language.tie_word_embeddings,
            "JanusConfig ties by default"
        );
        assert_eq!(c.vq.resolution, 384);
    }

    #[test]
    fn presets_size_the_image_side_to_any_vocabulary() {
        let c = JanusConfig::tiny(300, 256);
        assert_eq!(
            (c.image_vocab, c.vq.codebook_size, c.image_tokens()),
            (256, 256, 256)
        );
        assert!(c.check().is_ok());
        let s = JanusConfig::small(300, 1024);
        assert_eq!((s.image_vocab, s.language.hidden_size), (1024, 256));
        assert!(s.check().is_ok());
        assert_eq!(parse(s.to_json()).unwrap(), s);
    }
}
