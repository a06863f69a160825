//! A sentence-transformers BERT directory (`config.json`, `tokenizer.json`,
//! `model.safetensors`) written as the GGUF file llama.cpp's BERT reads: the same weights
//! under llama.cpp's tensor names, the hyper-parameters and WordPiece vocabulary as
//! metadata. Made once next to the weights (atomically: a temporary file renamed into
//! place), so the embedder runs on llama.cpp's CPU kernels.

use std::{
    collections::HashMap,
    io::{BufWriter, Write},
    path::{Path, PathBuf},
};

use safetensors::{Dtype, SafeTensors};

/// How the matrices are stored (vectors, biases and norms stay F32: llama.cpp's CPU
/// kernels add and multiply those only in F32).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    F32,
    F16,
}

impl Precision {
    fn ggml_type(self) -> u32 {
        match self {
            Precision::F32 => 0,
            Precision::F16 => 1,
        }
    }

    /// The file's name: the writer's version in it, so a fixed writer makes a new file.
    fn file_name(self) -> &'static str {
        match self {
            Precision::F32 => "stoa-embedding-v1.f32.gguf",
            Precision::F16 => "stoa-embedding-v1.f16.gguf",
        }
    }
}

const ALIGNMENT: usize = 32;

/// The BERT hyper-parameters the GGUF carries, from `config.json`.
#[derive(serde::Deserialize)]
struct BertConfig {
    vocab_size: usize,
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    max_position_embeddings: usize,
    #[serde(default = "default_eps")]
    layer_norm_eps: f64,
    #[serde(default = "default_types")]
    type_vocab_size: usize,
}

fn default_eps() -> f64 {
    1e-12
}

fn default_types() -> usize {
    2
}

/// Metadata values.
enum Value {
    U32(u32),
    F32(f32),
    Bool(bool),
    Str(String),
    Strs(Vec<String>),
    I32s(Vec<i32>),
}

/// The GGUF for `dir` at `precision`, made first when it is not there yet (or older than
/// the weights): next to the weights, or in `spare` when `dir` cannot be written.
pub fn ensure(dir: &Path, precision: Precision, spare: &Path) -> Result<PathBuf, String> {
    let source = dir.join("model.safetensors");
    let fresh = |t: &Path| {
        let modified = |p: &Path| {
            std::fs::metadata(p)
                .ok()
                .filter(|m| m.is_file())
                .and_then(|m| m.modified().ok())
        };
        matches!((modified(t), modified(&source)), (Some(t), Some(s)) if t >= s)
    };
    let beside = dir.join(precision.file_name());
    let name = dir
        .file_name()
        .map_or("model".into(), |n| n.to_string_lossy().into_owned());
    let elsewhere = spare.join(format!("{name}.{}", precision.file_name()));
    if let Some(found) = [&beside, &elsewhere].into_iter().find(|t| fresh(t)) {
        return Ok(found.clone());
    }
    match make(dir, precision, &beside) {
        Ok(()) => Ok(beside),
        Err(first) => {
            tracing::info!(error = %first, spare = %spare.display(), "the embedding GGUF goes to the data directory");
            std::fs::create_dir_all(spare).map_err(|e| format!("{}: {e}", spare.display()))?;
            make(dir, precision, &elsewhere).map(|()| elsewhere)
        }
    }
}

/// Writes the GGUF to a temporary name beside `target`, then renames it into place.
fn make(dir: &Path, precision: Precision, target: &Path) -> Result<(), String> {
    let mut temporary = target.as_os_str().to_owned();
    temporary.push(format!(".partial-{}", std::process::id()));
    let temporary = PathBuf::from(temporary);
    let written = write(dir, precision, &temporary)
        .and_then(|()| std::fs::rename(&temporary, target).map_err(|e| format!("{}: {e}", target.display())));
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// The vocabulary as llama.cpp's WordPiece expects it (a word-start piece marked with
/// "▁", a continuation without its "##"), and each token's type (3: control).
struct Vocabulary {
    tokens: Vec<String>,
    types: Vec<i32>,
    ids: HashMap<String, u32>,
}

fn vocabulary(dir: &Path, size: usize) -> Result<Vocabulary, String> {
    let tokenizer: serde_json::Value = read_json(&dir.join("tokenizer.json"))?;
    let vocab = tokenizer["model"]["vocab"]
        .as_object()
        .ok_or("tokenizer.json has no WordPiece vocabulary")?;
    let mut tokens = vec![String::new(); size];
    let mut ids = HashMap::new();
    for (token, id) in vocab {
        let id = id.as_u64().ok_or("a token id is not a number")? as usize;
        if id < size {
            tokens[id] = token.clone();
            ids.insert(token.clone(), id as u32);
        }
    }
    let special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
    let mut types = Vec::with_capacity(size);
    for (id, token) in tokens.iter_mut().enumerate() {
        if token.is_empty() {
            *token = format!("[unknown{id}]");
        }
        if special.contains(&token.as_str()) {
            types.push(3);
        } else {
            types.push(1);
            *token = match token.strip_prefix("##") {
                Some(rest) if !rest.is_empty() => rest.to_owned(),
                _ => format!("\u{2581}{token}"),
            };
        }
    }
    Ok(Vocabulary { tokens, types, ids })
}

/// llama.cpp's names for the sentence-transformers BERT tensors (the pooler is not used).
fn tensor_names(layers: usize) -> Vec<(String, String)> {
    let mut names = vec![
        ("embeddings.word_embeddings.weight", "token_embd.weight"),
        ("embeddings.position_embeddings.weight", "position_embd.weight"),
        ("embeddings.token_type_embeddings.weight", "token_types.weight"),
        ("embeddings.LayerNorm.weight", "token_embd_norm.weight"),
        ("embeddings.LayerNorm.bias", "token_embd_norm.bias"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_owned(), b.to_owned()))
    .collect::<Vec<_>>();
    for n in 0..layers {
        for (hf, gguf) in [
            ("attention.self.query", "attn_q"),
            ("attention.self.key", "attn_k"),
            ("attention.self.value", "attn_v"),
            ("attention.output.dense", "attn_output"),
            ("attention.output.LayerNorm", "attn_output_norm"),
            ("intermediate.dense", "ffn_up"),
            ("output.dense", "ffn_down"),
            ("output.LayerNorm", "layer_output_norm"),
        ] {
            for part in ["weight", "bias"] {
                names.push((
                    format!("encoder.layer.{n}.{hf}.{part}"),
                    format!("blk.{n}.{gguf}.{part}"),
                ));
            }
        }
    }
    names
}

fn write(dir: &Path, precision: Precision, out: &Path) -> Result<(), String> {
    let config: BertConfig = read_json(&dir.join("config.json"))?;
    let Vocabulary { tokens, types, ids } = vocabulary(dir, config.vocab_size)?;
    let id = |t: &str| {
        ids.get(t)
            .copied()
            .ok_or_else(|| format!("the vocabulary has no {t}"))
    };
    let weights_path = dir.join("model.safetensors");
    let file = std::fs::read(&weights_path).map_err(|e| format!("{}: {e}", weights_path.display()))?;
    let weights = SafeTensors::deserialize(&file).map_err(|e| format!("{}: {e}", weights_path.display()))?;
    let mut metadata: Vec<(&str, Value)> = vec![
        ("general.architecture", Value::Str("bert".into())),
        (
            "general.name",
            Value::Str(
                dir.file_name()
                    .map_or("bert".into(), |n| n.to_string_lossy().into_owned()),
            ),
        ),
        ("general.alignment", Value::U32(ALIGNMENT as u32)),
        ("general.file_type", Value::U32(precision.ggml_type())),
        (
            "bert.context_length",
            Value::U32(config.max_position_embeddings as u32),
        ),
        ("bert.embedding_length", Value::U32(config.hidden_size as u32)),
        (
            "bert.feed_forward_length",
            Value::U32(config.intermediate_size as u32),
        ),
        ("bert.block_count", Value::U32(config.num_hidden_layers as u32)),
        (
            "bert.attention.head_count",
            Value::U32(config.num_attention_heads as u32),
        ),
        (
            "bert.attention.layer_norm_epsilon",
            Value::F32(config.layer_norm_eps as f32),
        ),
        ("bert.attention.causal", Value::Bool(false)),
        ("bert.pooling_type", Value::U32(1)), // mean
        ("tokenizer.ggml.model", Value::Str("bert".into())),
        (
            "tokenizer.ggml.token_type_count",
            Value::U32(config.type_vocab_size as u32),
        ),
        ("tokenizer.ggml.unknown_token_id", Value::U32(id("[UNK]")?)),
        ("tokenizer.ggml.seperator_token_id", Value::U32(id("[SEP]")?)),
        ("tokenizer.ggml.padding_token_id", Value::U32(id("[PAD]")?)),
        ("tokenizer.ggml.mask_token_id", Value::U32(id("[MASK]")?)),
        ("tokenizer.ggml.bos_token_id", Value::U32(id("[CLS]")?)),
    ];
    metadata.push(("tokenizer.ggml.tokens", Value::Strs(tokens)));
    metadata.push(("tokenizer.ggml.token_type", Value::I32s(types)));

    // Each tensor: its name, its dimensions innermost first (safetensors' shape reversed,
    // over the same row-major bytes), its type and its bytes.
    let mut tensors: Vec<(String, Vec<u64>, u32, Vec<u8>)> = Vec::new();
    for (hf, gguf) in tensor_names(config.num_hidden_layers) {
        let tensor = weights
            .tensor(&hf)
            .map_err(|_| format!("model.safetensors has no {hf}"))?;
        let dims: Vec<u64> = tensor.shape().iter().rev().map(|&d| d as u64).collect();
        let matrix = dims.len() == 2 && gguf != "token_types.weight";
        let as_f16 = matrix && precision == Precision::F16;
        let values = floats(tensor.dtype(), tensor.data()).map_err(|e| format!("{hf}: {e}"))?;
        let bytes: Vec<u8> = if as_f16 {
            values
                .flat_map(|v| half::f16::from_f32(v).to_le_bytes())
                .collect()
        } else {
            values.flat_map(f32::to_le_bytes).collect()
        };
        let ty = if as_f16 { Precision::F16 } else { Precision::F32 }.ggml_type();
        tensors.push((gguf, dims, ty, bytes));
    }

    let file = std::fs::File::create(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut w = BufWriter::new(file);
    let io = |e: std::io::Error| format!("{}: {e}", out.display());
    let mut header = Vec::new();
    header.extend(b"GGUF");
    header.extend(3u32.to_le_bytes());
    header.extend((tensors.len() as u64).to_le_bytes());
    header.extend((metadata.len() as u64).to_le_bytes());
    for (key, value) in &metadata {
        string(&mut header, key);
        match value {
            Value::U32(v) => {
                header.extend(4u32.to_le_bytes());
                header.extend(v.to_le_bytes());
            }
            Value::F32(v) => {
                header.extend(6u32.to_le_bytes());
                header.extend(v.to_le_bytes());
            }
            Value::Bool(v) => {
                header.extend(7u32.to_le_bytes());
                header.push(u8::from(*v));
            }
            Value::Str(v) => {
                header.extend(8u32.to_le_bytes());
                string(&mut header, v);
            }
            Value::Strs(items) => {
                header.extend(9u32.to_le_bytes());
                header.extend(8u32.to_le_bytes());
                header.extend((items.len() as u64).to_le_bytes());
                for item in items {
                    string(&mut header, item);
                }
            }
            Value::I32s(items) => {
                header.extend(9u32.to_le_bytes());
                header.extend(5u32.to_le_bytes());
                header.extend((items.len() as u64).to_le_bytes());
                for item in items {
                    header.extend(item.to_le_bytes());
                }
            }
        }
    }
    let mut offset = 0u64;
    for (name, dims, ty, bytes) in &tensors {
        string(&mut header, name);
        header.extend((dims.len() as u32).to_le_bytes());
        for d in dims {
            header.extend(d.to_le_bytes());
        }
        header.extend(ty.to_le_bytes());
        header.extend(offset.to_le_bytes());
        offset += padded(bytes.len()) as u64;
    }
    header.resize(padded(header.len()), 0);
    w.write_all(&header).map_err(io)?;
    for (_, _, _, bytes) in &tensors {
        w.write_all(bytes).map_err(io)?;
        w.write_all(&vec![0; padded(bytes.len()) - bytes.len()])
            .map_err(io)?;
    }
    w.into_inner()
        .map_err(|e| io(e.into_error()))?
        .sync_all()
        .map_err(io)
}

/// A tensor's little-endian values as `f32`.
fn floats(dtype: Dtype, data: &[u8]) -> Result<Box<dyn Iterator<Item = f32> + '_>, String> {
    Ok(match dtype {
        Dtype::F32 => Box::new(
            data.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        ),
        Dtype::F16 => Box::new(
            data.chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()),
        ),
        Dtype::BF16 => Box::new(
            data.chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()),
        ),
        other => {
            return Err(format!(
                "weights of type {other:?} are not supported (F32, F16 or BF16)"
            ));
        }
    })
}

fn padded(n: usize) -> usize {
    n.div_ceil(ALIGNMENT) * ALIGNMENT
}

fn string(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}
