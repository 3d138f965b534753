//! CTranslate2's Whisper `model.bin` (what faster-whisper ships, and the only Whisper weights installable here)
//! rewritten as safetensors under Hugging Face's Whisper names, which `candle_transformers::models::whisper`
//! loads. The layout of the file is described in ../shared/MODELS.md.
//!
//! CTranslate2 fuses projections that Whisper keeps apart: self-attention query, key and value are one matrix,
//! and so are cross-attention key and value. They are split here, in that order. Whisper's key projection has
//! no bias; CTranslate2 stores zeros for it, which are checked and dropped. Weights become f32: candle's CPU
//! matmul is much faster in f32 than in f16, and tiny.en is small enough for it.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_transformers::models::whisper::Config;

/// What a conversion produces, next to `model.bin`.
pub const WEIGHTS_FILE: &str = "model.candle.safetensors";
pub const CONFIG_FILE: &str = "model.candle.json";

#[derive(Debug, thiserror::Error)]
pub enum Ct2Error {
    #[error("could not {action} {}: {source}", path.display())]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("not a CTranslate2 model file: {0}")]
    Format(String),
    #[error("the CTranslate2 file has no variable {0}")]
    Missing(String),
    #[error("the CTranslate2 variable {name} has shape {shape:?}, expected {expected}")]
    Shape { name: String, shape: Vec<usize>, expected: String },
    #[error("this CTranslate2 model is not supported: {0}")]
    Unsupported(String),
    #[error("converting the weights failed: {0}")]
    Tensor(#[from] candle_core::Error),
}

/// The element types CTranslate2 writes, by their code in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ct2Dtype {
    F32,
    I8,
    I16,
    I32,
    F16,
    Bf16,
}

impl Ct2Dtype {
    fn from_code(code: u8) -> Result<Self, Ct2Error> {
        Ok(match code {
            0 => Self::F32,
            1 => Self::I8,
            2 => Self::I16,
            3 => Self::I32,
            4 => Self::F16,
            5 => Self::Bf16,
            other => return Err(Ct2Error::Format(format!("unknown element type code {other}"))),
        })
    }

    fn size(self) -> usize {
        match self {
            Self::I8 => 1,
            Self::I16 | Self::F16 | Self::Bf16 => 2,
            Self::F32 | Self::I32 => 4,
        }
    }
}

/// One variable of the file, borrowing its bytes.
#[derive(Debug, Clone)]
pub struct Variable<'a> {
    pub shape: Vec<usize>,
    pub dtype: Ct2Dtype,
    pub data: &'a [u8],
}

/// A parsed `model.bin`: the spec's name and every variable, aliases resolved.
#[derive(Debug)]
pub struct Ct2File<'a> {
    pub spec: String,
    pub variables: BTreeMap<String, Variable<'a>>,
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Ct2Error> {
        let end = self.at.checked_add(n).filter(|&end| end <= self.bytes.len()).ok_or_else(|| {
            Ct2Error::Format(format!("the file ends early (wanted {n} bytes at offset {}, it has {})", self.at, self.bytes.len()))
        })?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn u8(&mut self) -> Result<u8, Ct2Error> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, Ct2Error> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, Ct2Error> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn string(&mut self) -> Result<String, Ct2Error> {
        let len = usize::from(self.u16()?);
        let raw = self.take(len)?;
        let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
        String::from_utf8(raw.to_vec()).map_err(|_| Ct2Error::Format("a name is not UTF-8".into()))
    }
}

/// Parses the file's structure; tensors are not copied.
pub fn parse(bytes: &[u8]) -> Result<Ct2File<'_>, Ct2Error> {
    let mut reader = Reader { bytes, at: 0 };
    let version = reader.u32()?;
    // Version 1 had no spec name; every faster-whisper model in circulation is newer.
    if !(2..=6).contains(&version) {
        return Err(Ct2Error::Format(format!("binary version {version} (this reader knows 2 to 6)")));
    }
    let spec = reader.string()?;
    let _revision = reader.u32()?;
    let count = reader.u32()?;
    let mut variables = BTreeMap::new();
    for _ in 0..count {
        let name = reader.string()?;
        let rank = reader.u8()?;
        let shape = (0..rank).map(|_| reader.u32().map(|d| d as usize)).collect::<Result<Vec<_>, _>>()?;
        let dtype = Ct2Dtype::from_code(reader.u8()?)?;
        let byte_count = reader.u32()? as usize;
        let expected = shape.iter().product::<usize>() * dtype.size();
        if byte_count != expected {
            return Err(Ct2Error::Format(format!("{name} holds {byte_count} bytes, its shape {shape:?} needs {expected}")));
        }
        let data = reader.take(byte_count)?;
        variables.insert(name, Variable { shape, dtype, data });
    }
    let aliases = reader.u32()?;
    for _ in 0..aliases {
        let alias = reader.string()?;
        let target = reader.string()?;
        let variable = variables.get(&target).cloned().ok_or_else(|| Ct2Error::Format(format!("alias {alias} names {target}, absent")))?;
        variables.entry(alias).or_insert(variable);
    }
    Ok(Ct2File { spec, variables })
}

impl Ct2File<'_> {
    fn variable(&self, name: &str) -> Result<&Variable<'_>, Ct2Error> {
        self.variables.get(name).ok_or_else(|| Ct2Error::Missing(name.to_owned()))
    }

    /// A weight as an f32 tensor.
    fn tensor(&self, name: &str) -> Result<Tensor, Ct2Error> {
        let variable = self.variable(name)?;
        let dtype = match variable.dtype {
            Ct2Dtype::F32 => DType::F32,
            Ct2Dtype::F16 => DType::F16,
            Ct2Dtype::Bf16 => DType::BF16,
            other => {
                return Err(Ct2Error::Unsupported(format!("{name} is {other:?}; quantized models cannot be converted, use a float16 one")));
            }
        };
        Ok(Tensor::from_raw_buffer(variable.data, dtype, &variable.shape, &Device::Cpu)?.to_dtype(DType::F32)?)
    }

    /// A scalar setting such as `encoder/num_heads`.
    fn integer(&self, name: &str) -> Result<usize, Ct2Error> {
        let variable = self.variable(name)?;
        let d = variable.data;
        let value: i64 = match (variable.dtype, d.len()) {
            (Ct2Dtype::I8, 1) => i64::from(d[0] as i8),
            (Ct2Dtype::I16, 2) => i64::from(i16::from_le_bytes([d[0], d[1]])),
            (Ct2Dtype::I32, 4) => i64::from(i32::from_le_bytes([d[0], d[1], d[2], d[3]])),
            _ => {
                return Err(Ct2Error::Shape { name: name.to_owned(), shape: variable.shape.clone(), expected: "an integer scalar".into() });
            }
        };
        usize::try_from(value).map_err(|_| Ct2Error::Format(format!("{name} is {value}")))
    }

    fn dims(&self, name: &str, rank: usize) -> Result<Vec<usize>, Ct2Error> {
        let variable = self.variable(name)?;
        if variable.shape.len() != rank {
            return Err(Ct2Error::Shape { name: name.to_owned(), shape: variable.shape.clone(), expected: format!("rank {rank}") });
        }
        Ok(variable.shape.clone())
    }

    fn layer_count(&self, side: &str) -> usize {
        (0..).take_while(|i| self.variables.keys().any(|name| name.starts_with(&format!("{side}/layer_{i}/")))).count()
    }

    /// Candle's model configuration, read off the weights' shapes and the stored head counts.
    pub fn whisper_config(&self) -> Result<Config, Ct2Error> {
        if self.spec != "WhisperSpec" {
            return Err(Ct2Error::Unsupported(format!("the file holds a {} model, not Whisper", self.spec)));
        }
        let conv1 = self.dims("encoder/conv1/weight", 3)?;
        let audio_positions = self.dims("encoder/position_encodings/encodings", 2)?;
        let embeddings = self.dims("decoder/embeddings/weight", 2)?;
        let text_positions = self.dims("decoder/position_encodings/encodings", 2)?;
        Ok(Config {
            num_mel_bins: conv1[1],
            max_source_positions: audio_positions[0],
            d_model: conv1[0],
            encoder_attention_heads: self.integer("encoder/num_heads")?,
            encoder_layers: self.layer_count("encoder"),
            vocab_size: embeddings[0],
            max_target_positions: text_positions[0],
            decoder_attention_heads: self.integer("decoder/num_heads")?,
            decoder_layers: self.layer_count("decoder"),
            suppress_tokens: Vec::new(),
        })
    }

    /// Every weight candle's Whisper needs, under its Hugging Face name.
    pub fn whisper_tensors(&self) -> Result<HashMap<String, Tensor>, Ct2Error> {
        let config = self.whisper_config()?;
        let mut out = HashMap::new();
        let mut copy = |from: &str, to: &str| -> Result<(), Ct2Error> {
            out.insert(to.to_owned(), self.tensor(from)?);
            Ok(())
        };
        copy("encoder/conv1/weight", "model.encoder.conv1.weight")?;
        copy("encoder/conv1/bias", "model.encoder.conv1.bias")?;
        copy("encoder/conv2/weight", "model.encoder.conv2.weight")?;
        copy("encoder/conv2/bias", "model.encoder.conv2.bias")?;
        copy("encoder/position_encodings/encodings", "model.encoder.embed_positions.weight")?;
        copy("decoder/embeddings/weight", "model.decoder.embed_tokens.weight")?;
        copy("decoder/position_encodings/encodings", "model.decoder.embed_positions.weight")?;
        self.norm("encoder/layer_norm", "model.encoder.layer_norm", &mut out)?;
        self.norm("decoder/layer_norm", "model.decoder.layer_norm", &mut out)?;

        for (side, layers) in [("encoder", config.encoder_layers), ("decoder", config.decoder_layers)] {
            for i in 0..layers {
                let from = format!("{side}/layer_{i}");
                let to = format!("model.{side}.layers.{i}");
                self.norm(&format!("{from}/self_attention/layer_norm"), &format!("{to}.self_attn_layer_norm"), &mut out)?;
                self.split(
                    &format!("{from}/self_attention/linear_0"),
                    &[
                        (format!("{to}.self_attn.q_proj"), true),
                        (format!("{to}.self_attn.k_proj"), false),
                        (format!("{to}.self_attn.v_proj"), true),
                    ],
                    &mut out,
                )?;
                self.linear(&format!("{from}/self_attention/linear_1"), &format!("{to}.self_attn.out_proj"), &mut out)?;
                self.norm(&format!("{from}/ffn/layer_norm"), &format!("{to}.final_layer_norm"), &mut out)?;
                self.linear(&format!("{from}/ffn/linear_0"), &format!("{to}.fc1"), &mut out)?;
                self.linear(&format!("{from}/ffn/linear_1"), &format!("{to}.fc2"), &mut out)?;
                if side == "decoder" {
                    self.norm(&format!("{from}/attention/layer_norm"), &format!("{to}.encoder_attn_layer_norm"), &mut out)?;
                    self.linear(&format!("{from}/attention/linear_0"), &format!("{to}.encoder_attn.q_proj"), &mut out)?;
                    self.split(
                        &format!("{from}/attention/linear_1"),
                        &[(format!("{to}.encoder_attn.k_proj"), false), (format!("{to}.encoder_attn.v_proj"), true)],
                        &mut out,
                    )?;
                    self.linear(&format!("{from}/attention/linear_2"), &format!("{to}.encoder_attn.out_proj"), &mut out)?;
                }
            }
        }
        Ok(out)
    }

    fn norm(&self, from: &str, to: &str, out: &mut HashMap<String, Tensor>) -> Result<(), Ct2Error> {
        out.insert(format!("{to}.weight"), self.tensor(&format!("{from}/gamma"))?);
        out.insert(format!("{to}.bias"), self.tensor(&format!("{from}/beta"))?);
        Ok(())
    }

    fn linear(&self, from: &str, to: &str, out: &mut HashMap<String, Tensor>) -> Result<(), Ct2Error> {
        out.insert(format!("{to}.weight"), self.tensor(&format!("{from}/weight"))?);
        out.insert(format!("{to}.bias"), self.tensor(&format!("{from}/bias"))?);
        Ok(())
    }

    /// Splits a fused projection into equal parts along the output rows; a part whose flag is false has no
    /// bias in Whisper, so its (zero) bias is dropped.
    fn split(&self, from: &str, parts: &[(String, bool)], out: &mut HashMap<String, Tensor>) -> Result<(), Ct2Error> {
        let weight_name = format!("{from}/weight");
        let weight = self.tensor(&weight_name)?;
        let bias = self.tensor(&format!("{from}/bias"))?;
        let rows = weight.dim(0)?;
        if rows % parts.len() != 0 || bias.dim(0)? != rows {
            return Err(Ct2Error::Shape {
                name: weight_name,
                shape: weight.dims().to_vec(),
                expected: format!("{} equal fused parts with a bias per row", parts.len()),
            });
        }
        let size = rows / parts.len();
        for (index, (to, has_bias)) in parts.iter().enumerate() {
            out.insert(format!("{to}.weight"), weight.narrow(0, index * size, size)?.contiguous()?);
            let part_bias = bias.narrow(0, index * size, size)?.contiguous()?;
            if *has_bias {
                out.insert(format!("{to}.bias"), part_bias);
            } else {
                let largest = part_bias.abs()?.max(0)?.to_scalar::<f32>()?;
                if largest != 0.0 {
                    return Err(Ct2Error::Unsupported(format!("{from} has a key bias ({largest}), which Whisper's key projection lacks")));
                }
            }
        }
        Ok(())
    }
}

/// Candle's `Config` only deserializes, so its JSON is written field by field.
fn config_json(config: &Config) -> serde_json::Value {
    serde_json::json!({
        "num_mel_bins": config.num_mel_bins,
        "max_source_positions": config.max_source_positions,
        "d_model": config.d_model,
        "encoder_attention_heads": config.encoder_attention_heads,
        "encoder_layers": config.encoder_layers,
        "vocab_size": config.vocab_size,
        "max_target_positions": config.max_target_positions,
        "decoder_attention_heads": config.decoder_attention_heads,
        "decoder_layers": config.decoder_layers,
    })
}

/// Converts `model.bin` in `dir` unless a conversion at least as new as it is already there, and returns the
/// paths of the converted weights and configuration. Files appear atomically (written aside, then renamed),
/// so a crash or a concurrent start never leaves a half-written model behind.
pub fn ensure_converted(dir: &Path) -> Result<(PathBuf, PathBuf), Ct2Error> {
    let source = dir.join("model.bin");
    let weights = dir.join(WEIGHTS_FILE);
    let config = dir.join(CONFIG_FILE);
    if is_fresh(&weights, &source) && is_fresh(&config, &source) {
        return Ok((weights, config));
    }
    let started = Instant::now();
    tracing::info!(source = %source.display(), "converting the CTranslate2 Whisper model for candle (once)");
    let bytes =
        std::fs::read(&source).map_err(|source_error| Ct2Error::Io { action: "read", path: source.clone(), source: source_error })?;
    let file = parse(&bytes)?;
    let whisper_config = file.whisper_config()?;
    let tensors = file.whisper_tensors()?;

    let config_text = serde_json::to_vec_pretty(&config_json(&whisper_config)).map_err(|e| Ct2Error::Format(e.to_string()))?;
    write_atomically(&config, |path| {
        std::fs::File::create(path).and_then(|mut f| f.write_all(&config_text)).map_err(|e| Ct2Error::Io {
            action: "write",
            path: path.to_owned(),
            source: e,
        })
    })?;
    // The weights last: their presence means the conversion finished.
    write_atomically(&weights, |path| Ok(candle_core::safetensors::save(&tensors, path)?))?;
    tracing::info!(
        weights = %weights.display(),
        tensors = tensors.len(),
        convert_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "converted the Whisper model"
    );
    Ok((weights, config))
}

/// A converted file counts only if it is not older than the model it came from (a reinstall replaces that).
fn is_fresh(converted: &Path, source: &Path) -> bool {
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    matches!((modified(converted), modified(source)), (Some(converted), Some(source)) if converted >= source)
}

fn write_atomically(target: &Path, write: impl FnOnce(&Path) -> Result<(), Ct2Error>) -> Result<(), Ct2Error> {
    let file_name = target.file_name().and_then(|n| n.to_str()).unwrap_or("converted");
    let temporary = target.with_file_name(format!(".{file_name}.{}.partial", std::process::id()));
    let result = write(&temporary).and_then(|()| {
        std::fs::rename(&temporary, target).map_err(|source| Ct2Error::Io { action: "rename into place", path: target.to_owned(), source })
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result
}

#[cfg(test)]
mod tests {
    use candle_nn::VarBuilder;
    use candle_transformers::models::whisper::model::Whisper;

    use super::*;

    /// Writes a CTranslate2 file the way the real writer does: every variable, then the aliases.
    struct Ct2Writer {
        variables: Vec<(String, Vec<u32>, u8, Vec<u8>)>,
        aliases: Vec<(String, String)>,
    }

    const F32: u8 = 0;
    const I16: u8 = 2;
    const F16: u8 = 4;

    impl Ct2Writer {
        fn new() -> Self {
            Self { variables: Vec::new(), aliases: Vec::new() }
        }

        /// A float tensor whose element i is `base + i`, stored as f16 or f32.
        fn tensor(&mut self, name: &str, shape: &[u32], base: f32, dtype: u8) -> &mut Self {
            let count: u32 = shape.iter().product();
            let values = (0..count).map(|i| base + i as f32);
            let data = match dtype {
                F16 => values.flat_map(|v| half::f16::from_f32(v).to_le_bytes()).collect(),
                _ => values.flat_map(f32::to_le_bytes).collect(),
            };
            self.variables.push((name.to_owned(), shape.to_vec(), dtype, data));
            self
        }

        fn scalar(&mut self, name: &str, value: i16) -> &mut Self {
            self.variables.push((name.to_owned(), vec![], I16, value.to_le_bytes().to_vec()));
            self
        }

        fn alias(&mut self, alias: &str, target: &str) -> &mut Self {
            self.aliases.push((alias.to_owned(), target.to_owned()));
            self
        }

        fn bytes(&self) -> Vec<u8> {
            fn string(out: &mut Vec<u8>, s: &str) {
                out.extend_from_slice(&(s.len() as u16 + 1).to_le_bytes());
                out.extend_from_slice(s.as_bytes());
                out.push(0);
            }
            let mut out = 6u32.to_le_bytes().to_vec();
            string(&mut out, "WhisperSpec");
            out.extend_from_slice(&3u32.to_le_bytes());
            out.extend_from_slice(&(self.variables.len() as u32).to_le_bytes());
            for (name, shape, dtype, data) in &self.variables {
                string(&mut out, name);
                out.push(shape.len() as u8);
                shape.iter().for_each(|d| out.extend_from_slice(&d.to_le_bytes()));
                out.push(*dtype);
                out.extend_from_slice(&(data.len() as u32).to_le_bytes());
                out.extend_from_slice(data);
            }
            out.extend_from_slice(&(self.aliases.len() as u32).to_le_bytes());
            for (alias, target) in &self.aliases {
                string(&mut out, alias);
                string(&mut out, target);
            }
            out
        }
    }

    const D: u32 = 8; // d_model
    const MELS: u32 = 4;
    const FFN: u32 = 4 * D; // candle derives the MLP width as 4 × d_model
    const VOCAB: u32 = 10;

    /// A tiny Whisper: one encoder and one decoder layer, two heads; every value identifies its position.
    /// The token embeddings are stored under the projection's name and reached through an alias, the reverse
    /// of what faster-whisper writes, so the test proves aliases are resolved.
    fn tiny_whisper() -> Ct2Writer {
        let mut w = Ct2Writer::new();
        w.tensor("encoder/conv1/weight", &[D, MELS, 3], 0.0, F16)
            .tensor("encoder/conv1/bias", &[D], 0.0, F32)
            .tensor("encoder/conv2/weight", &[D, D, 3], 0.0, F16)
            .tensor("encoder/conv2/bias", &[D], 0.0, F16)
            .tensor("encoder/position_encodings/encodings", &[6, D], 0.0, F16)
            .tensor("encoder/layer_norm/gamma", &[D], 1.0, F16)
            .tensor("encoder/layer_norm/beta", &[D], 100.0, F16)
            .scalar("encoder/num_heads", 2)
            .tensor("decoder/projection/weight", &[VOCAB, D], 0.0, F16)
            .alias("decoder/embeddings/weight", "decoder/projection/weight")
            .tensor("decoder/position_encodings/encodings", &[12, D], 0.0, F16)
            .tensor("decoder/layer_norm/gamma", &[D], 1.0, F16)
            .tensor("decoder/layer_norm/beta", &[D], 0.0, F16)
            .scalar("decoder/num_heads", 2);
        for side in ["encoder", "decoder"] {
            let l = format!("{side}/layer_0");
            w.tensor(&format!("{l}/self_attention/layer_norm/gamma"), &[D], 1.0, F16)
                .tensor(&format!("{l}/self_attention/layer_norm/beta"), &[D], 0.0, F16)
                .tensor(&format!("{l}/self_attention/linear_0/weight"), &[3 * D, D], 0.0, F16)
                .tensor(&format!("{l}/self_attention/linear_1/weight"), &[D, D], 0.0, F16)
                .tensor(&format!("{l}/self_attention/linear_1/bias"), &[D], 0.0, F16)
                .tensor(&format!("{l}/ffn/layer_norm/gamma"), &[D], 1.0, F16)
                .tensor(&format!("{l}/ffn/layer_norm/beta"), &[D], 0.0, F16)
                .tensor(&format!("{l}/ffn/linear_0/weight"), &[FFN, D], 0.0, F16)
                .tensor(&format!("{l}/ffn/linear_0/bias"), &[FFN], 0.0, F16)
                .tensor(&format!("{l}/ffn/linear_1/weight"), &[D, FFN], 0.0, F16)
                .tensor(&format!("{l}/ffn/linear_1/bias"), &[D], 0.0, F16);
            // Query bias 0..8, key bias zeros, value bias 1000..1008.
            let mut fused_bias: Vec<u8> = (0..D).flat_map(|i| half::f16::from_f32(i as f32).to_le_bytes()).collect();
            fused_bias.extend(std::iter::repeat_n(0u8, D as usize * 2));
            fused_bias.extend((0..D).flat_map(|i| half::f16::from_f32(1000.0 + i as f32).to_le_bytes()));
            w.variables.push((format!("{l}/self_attention/linear_0/bias"), vec![3 * D], F16, fused_bias));
        }
        let l = "decoder/layer_0/attention";
        w.tensor(&format!("{l}/layer_norm/gamma"), &[D], 1.0, F16)
            .tensor(&format!("{l}/layer_norm/beta"), &[D], 0.0, F16)
            .tensor(&format!("{l}/linear_0/weight"), &[D, D], 0.0, F16)
            .tensor(&format!("{l}/linear_0/bias"), &[D], 0.0, F16)
            .tensor(&format!("{l}/linear_1/weight"), &[2 * D, D], 0.0, F16)
            .tensor(&format!("{l}/linear_2/weight"), &[D, D], 0.0, F16)
            .tensor(&format!("{l}/linear_2/bias"), &[D], 0.0, F16);
        // Cross-attention key bias zeros, value bias 500..508.
        let mut kv_bias: Vec<u8> = vec![0; D as usize * 2];
        kv_bias.extend((0..D).flat_map(|i| half::f16::from_f32(500.0 + i as f32).to_le_bytes()));
        w.variables.push((format!("{l}/linear_1/bias"), vec![2 * D], F16, kv_bias));
        w
    }

    fn first_row(tensors: &HashMap<String, Tensor>, name: &str) -> Vec<f32> {
        let tensor = tensors.get(name).unwrap_or_else(|| panic!("{name} missing"));
        tensor.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    }

    #[test]
    fn fused_projections_are_split_in_order_and_names_follow_hugging_face() {
        let bytes = tiny_whisper().bytes();
        let file = parse(&bytes).unwrap();
        let config = file.whisper_config().unwrap();
        assert_eq!((config.d_model, config.num_mel_bins, config.vocab_size), (8, 4, 10));
        assert_eq!((config.encoder_layers, config.decoder_layers), (1, 1));
        assert_eq!((config.encoder_attention_heads, config.decoder_attention_heads), (2, 2));
        assert_eq!((config.max_source_positions, config.max_target_positions), (6, 12));

        let tensors = file.whisper_tensors().unwrap();
        let row = (D * D) as f32; // elements per split part of a fused [3D, D] or [2D, D] weight
        let attn = "model.encoder.layers.0.self_attn";
        assert_eq!(tensors[&format!("{attn}.q_proj.weight")].dims(), [8, 8]);
        assert_eq!(first_row(&tensors, &format!("{attn}.q_proj.weight"))[0], 0.0);
        assert_eq!(first_row(&tensors, &format!("{attn}.k_proj.weight"))[0], row);
        assert_eq!(first_row(&tensors, &format!("{attn}.v_proj.weight"))[0], 2.0 * row);
        assert_eq!(first_row(&tensors, &format!("{attn}.q_proj.bias"))[..3], [0.0, 1.0, 2.0]);
        assert_eq!(first_row(&tensors, &format!("{attn}.v_proj.bias"))[..2], [1000.0, 1001.0]);
        assert!(!tensors.contains_key(&format!("{attn}.k_proj.bias")), "Whisper's key projection has no bias");

        let cross = "model.decoder.layers.0.encoder_attn";
        assert_eq!(first_row(&tensors, &format!("{cross}.k_proj.weight"))[0], 0.0);
        assert_eq!(first_row(&tensors, &format!("{cross}.v_proj.weight"))[0], row);
        assert_eq!(first_row(&tensors, &format!("{cross}.v_proj.bias"))[0], 500.0);
        assert!(!tensors.contains_key(&format!("{cross}.k_proj.bias")));

        // Layer norms: gamma -> weight, beta -> bias.
        assert_eq!(first_row(&tensors, "model.encoder.layer_norm.weight")[..2], [1.0, 2.0]);
        assert_eq!(first_row(&tensors, "model.encoder.layer_norm.bias")[0], 100.0);
        // The embeddings came through the alias; f16 became f32.
        assert_eq!(tensors["model.decoder.embed_tokens.weight"].dims(), [10, 8]);
        assert_eq!(tensors["model.decoder.embed_tokens.weight"].dtype(), DType::F32);
        assert_eq!(first_row(&tensors, "model.decoder.embed_tokens.weight")[79], 79.0);
    }

    #[test]
    fn the_converted_files_load_in_candles_whisper() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("model.bin"), tiny_whisper().bytes()).unwrap();
        let (weights, config_path) = ensure_converted(dir.path()).unwrap();
        let config: Config = serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
        let vb = VarBuilder::from_tensors(candle_core::safetensors::load(&weights, &Device::Cpu).unwrap(), DType::F32, &Device::Cpu);
        Whisper::load(&vb, config).expect("every tensor candle asks for is there, with the right shape");
        // No temporary files are left behind.
        let mut names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names, ["model.bin", CONFIG_FILE, WEIGHTS_FILE]);

        // A second call finds the conversion fresh and leaves it alone.
        let modified = std::fs::metadata(&weights).unwrap().modified().unwrap();
        ensure_converted(dir.path()).unwrap();
        assert_eq!(std::fs::metadata(&weights).unwrap().modified().unwrap(), modified);
    }

    #[test]
    fn damaged_or_unsupported_files_are_refused_with_a_reason() {
        let bytes = tiny_whisper().bytes();
        let truncated = parse(&bytes[..bytes.len() / 2]).unwrap_err();
        assert!(truncated.to_string().contains("ends early"), "{truncated}");
        assert!(matches!(parse(b"\x01\x00\x00\x00"), Err(Ct2Error::Format(_))));

        let mut writer = tiny_whisper();
        let key_bias = writer.variables.iter_mut().find(|v| v.0 == "encoder/layer_0/self_attention/linear_0/bias").unwrap();
        key_bias.3[D as usize * 2..][..2].copy_from_slice(&half::f16::from_f32(0.5).to_le_bytes());
        let bytes = writer.bytes();
        let error = parse(&bytes).unwrap().whisper_tensors().unwrap_err();
        assert!(error.to_string().contains("key bias"), "{error}");
    }
}
