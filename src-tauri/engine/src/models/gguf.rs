//! Reads a GGUF file's header: metadata and tensor table, never the weights.
//!
//! Checked before a model is handed to the inference backend, so that an empty, foreign,
//! truncated or corrupt file, or an architecture we cannot run, gets a clear error instead of
//! a panic deep inside a loader. Every length read from the file is checked against the file's
//! size before anything is allocated, so a corrupt header cannot exhaust memory.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};

const MAGIC: &[u8; 4] = b"GGUF";
const DEFAULT_ALIGNMENT: u64 = 32;
/// No real key or string value comes near this; larger means the header is corrupt.
const MAX_STRING_LEN: u64 = 16 << 20;

/// GGUF architectures the inference backend (mistral.rs 0.8.1's GGUF loader) can run; a file
/// of another is refused at import and at load with this list.
pub const SUPPORTED_ARCHITECTURES: &[&str] =
    &["llama", "mistral3", "phi2", "phi3", "starcoder2", "qwen2", "qwen3", "qwen3moe"];

/// What Perimeter needs to know about a model file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct GgufInfo {
    /// `general.architecture`, e.g. `llama`, `qwen2`, `gemma3`.
    pub architecture: String,
    /// `general.name`, when the file has one.
    pub name: Option<String>,
    /// Quantization, e.g. `Q4_K_M`: from `general.file_type`, else the commonest tensor type.
    pub quantization: String,
    /// Trained context length in tokens (`<arch>.context_length`).
    pub context_length: Option<u64>,
    /// Total parameters, counted from the tensor table.
    pub parameter_count: u64,
    /// Transformer layers.
    pub block_count: Option<u64>,
    /// Width of the hidden state.
    pub embedding_length: Option<u64>,
    /// Attention (query) heads.
    pub head_count: Option<u64>,
    /// Key/value heads (fewer than query heads with grouped-query attention).
    pub head_count_kv: Option<u64>,
    /// The file carries a chat template (a model without one cannot chat).
    pub has_chat_template: bool,
    /// Tensors in the file.
    pub tensor_count: u64,
    /// Bytes.
    pub file_size: u64,
}

impl GgufInfo {
    /// Bytes of KV cache per token of context at 16-bit precision, when the header says enough.
    pub fn kv_bytes_per_token(&self) -> Option<u64> {
        let layers = self.block_count?;
        let heads = self.head_count?;
        let kv_heads = self.head_count_kv.unwrap_or(heads);
        let head_dim = self.embedding_length? / heads.max(1);
        Some(2 * layers * kv_heads * head_dim * 2)
    }
}

/// One metadata value; arrays are summarised by length (the tokenizer's are tens of thousands long).
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Uint(u64),
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    Array(u64),
}

impl Value {
    fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::Uint(v) => Some(v),
            Value::Int(v) if v >= 0 => Some(v as u64),
            _ => None,
        }
    }
}

/// Reads the header of the GGUF file at `path`.
pub fn read_info(path: &Path) -> Result<GgufInfo> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::ModelNotFound { path: path.to_path_buf() })
        }
        Err(e) => return Err(Error::io(path, e)),
    };
    if meta.is_dir() {
        return Err(Error::NotGguf { path: path.to_path_buf() });
    }
    if meta.len() == 0 {
        return Err(Error::EmptyModelFile { path: path.to_path_buf() });
    }
    let file = File::open(path).at(path)?;
    let mut r = HeaderReader { inner: BufReader::new(file), pos: 0, size: meta.len(), path: path.to_path_buf() };
    r.parse()
}

struct HeaderReader {
    inner: BufReader<File>,
    pos: u64,
    size: u64,
    path: PathBuf,
}

impl HeaderReader {
    fn corrupt(&self, reason: impl Into<String>) -> Error {
        Error::CorruptGguf { path: self.path.clone(), reason: reason.into() }
    }

    fn bytes(&mut self, n: u64) -> Result<Vec<u8>> {
        if self.pos + n > self.size {
            return Err(self.corrupt(format!(
                "the header ends early: {} bytes needed at offset {}, the file has {}",
                n, self.pos, self.size
            )));
        }
        let mut buf = vec![0u8; n as usize];
        self.inner.read_exact(&mut buf).map_err(|e| self.corrupt(format!("read failed: {e}")))?;
        self.pos += n;
        Ok(buf)
    }

    fn skip(&mut self, n: u64) -> Result<()> {
        if self.pos + n > self.size {
            return Err(self.corrupt(format!("the header ends early at offset {}", self.pos)));
        }
        std::io::copy(&mut (&mut self.inner).take(n), &mut std::io::sink())
            .map_err(|e| self.corrupt(format!("read failed: {e}")))?;
        self.pos += n;
        Ok(())
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let v = self.bytes(N as u64)?;
        let mut a = [0u8; N];
        a.copy_from_slice(&v);
        Ok(a)
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn string(&mut self) -> Result<String> {
        let len = self.u64()?;
        if len > MAX_STRING_LEN {
            return Err(self.corrupt(format!("a string of {len} bytes at offset {}", self.pos)));
        }
        let b = self.bytes(len)?;
        String::from_utf8(b).map_err(|_| self.corrupt("a metadata string is not UTF-8"))
    }

    fn skip_string(&mut self) -> Result<()> {
        let len = self.u64()?;
        self.skip(len)
    }

    /// Size in bytes of a fixed-size value type, `None` for strings and arrays.
    fn scalar_size(&self, ty: u32) -> Result<Option<u64>> {
        Ok(match ty {
            0 | 1 | 7 => Some(1),
            2 | 3 => Some(2),
            4..=6 => Some(4),
            10..=12 => Some(8),
            8 | 9 => None,
            other => return Err(self.corrupt(format!("unknown metadata value type {other}"))),
        })
    }

    fn value(&mut self, ty: u32) -> Result<Value> {
        Ok(match ty {
            0 => Value::Uint(self.array::<1>()?[0] as u64),
            1 => Value::Int(self.array::<1>()?[0] as i8 as i64),
            2 => Value::Uint(u16::from_le_bytes(self.array()?) as u64),
            3 => Value::Int(i16::from_le_bytes(self.array()?) as i64),
            4 => Value::Uint(self.u32()? as u64),
            5 => Value::Int(i32::from_le_bytes(self.array()?) as i64),
            6 => Value::Float(f32::from_le_bytes(self.array()?) as f64),
            7 => Value::Bool(self.array::<1>()?[0] != 0),
            8 => Value::Str(self.string()?),
            9 => {
                let item_ty = self.u32()?;
                let len = self.u64()?;
                if len > self.size {
                    return Err(self.corrupt(format!("an array of {len} items in a {}-byte file", self.size)));
                }
                match self.scalar_size(item_ty)? {
                    Some(sz) => self.skip(len * sz)?,
                    None if item_ty == 8 => (0..len).try_for_each(|_| self.skip_string())?,
                    // Nested arrays do not occur in real models; read them item by item.
                    None => (0..len).try_for_each(|_| self.value(item_ty).map(|_| ()))?,
                }
                Value::Array(len)
            }
            10 => Value::Uint(self.u64()?),
            11 => Value::Int(i64::from_le_bytes(self.array()?)),
            12 => Value::Float(f64::from_le_bytes(self.array()?)),
            other => return Err(self.corrupt(format!("unknown metadata value type {other}"))),
        })
    }

    fn parse(&mut self) -> Result<GgufInfo> {
        let magic = if self.size >= 4 { self.array::<4>()? } else { [0; 4] };
        if &magic != MAGIC {
            return Err(Error::NotGguf { path: self.path.clone() });
        }
        let version = self.u32()?;
        if !(2..=3).contains(&version) {
            return Err(self.corrupt(format!("GGUF version {version}; versions 2 and 3 are supported")));
        }
        let tensor_count = self.u64()?;
        let kv_count = self.u64()?;
        // Each entry takes at least 12 bytes: bounds the loops before they start.
        if tensor_count > self.size / 12 || kv_count > self.size / 12 {
            return Err(self.corrupt(format!("{tensor_count} tensors and {kv_count} metadata entries")));
        }

        let mut kv = BTreeMap::new();
        for _ in 0..kv_count {
            let key = self.string()?;
            let ty = self.u32()?;
            let value = self.value(ty)?;
            kv.insert(key, value);
        }

        let mut parameter_count = 0u64;
        let mut data_end = 0u64;
        let mut type_counts: BTreeMap<u32, u64> = BTreeMap::new();
        for _ in 0..tensor_count {
            let name = self.string()?;
            let n_dims = self.u32()?;
            if n_dims > 8 {
                return Err(self.corrupt(format!("tensor `{name}` has {n_dims} dimensions")));
            }
            let mut elements = 1u64;
            for _ in 0..n_dims {
                elements = elements
                    .checked_mul(self.u64()?)
                    .ok_or_else(|| self.corrupt(format!("tensor `{name}` is impossibly large")))?;
            }
            let ty = self.u32()?;
            let offset = self.u64()?;
            parameter_count = parameter_count.saturating_add(elements);
            *type_counts.entry(ty).or_default() += elements;
            let bytes = ggml_type_bytes(ty, elements).unwrap_or(0);
            data_end = data_end.max(offset.saturating_add(bytes));
        }

        let alignment = kv.get("general.alignment").and_then(Value::as_u64).unwrap_or(DEFAULT_ALIGNMENT).max(1);
        let data_start = self.pos.div_ceil(alignment) * alignment;
        let needed = data_start.saturating_add(data_end);
        if needed > self.size {
            return Err(self.corrupt(format!(
                "the tensors need {needed} bytes but the file has {}: it was cut short",
                self.size
            )));
        }

        let architecture = match kv.get("general.architecture") {
            Some(Value::Str(a)) => a.clone(),
            _ => return Err(self.corrupt("no `general.architecture` entry")),
        };
        let arch_u64 = |k: &str| kv.get(&format!("{architecture}.{k}")).and_then(Value::as_u64);
        let quantization = kv
            .get("general.file_type")
            .and_then(Value::as_u64)
            .and_then(file_type_name)
            .map(str::to_string)
            .or_else(|| {
                // Norms stay F32 in quantized files: prefer the commonest quantized type.
                let commonest = |quantized_only: bool| {
                    type_counts.iter().filter(|(t, _)| !quantized_only || **t > 1).max_by_key(|(_, n)| **n)
                };
                commonest(true).or_else(|| commonest(false)).and_then(|(t, _)| ggml_type_name(*t)).map(str::to_string)
            })
            .unwrap_or_else(|| "unknown".to_string());

        Ok(GgufInfo {
            name: match kv.get("general.name") {
                Some(Value::Str(s)) => Some(s.clone()),
                _ => None,
            },
            quantization,
            context_length: arch_u64("context_length"),
            parameter_count,
            block_count: arch_u64("block_count"),
            embedding_length: arch_u64("embedding_length"),
            head_count: arch_u64("attention.head_count"),
            head_count_kv: arch_u64("attention.head_count_kv"),
            has_chat_template: matches!(kv.get("tokenizer.chat_template"), Some(Value::Str(_))),
            tensor_count,
            file_size: self.size,
            architecture,
        })
    }
}

/// Bytes taken by `elements` values of a ggml tensor type, for the types real models use.
fn ggml_type_bytes(ty: u32, elements: u64) -> Option<u64> {
    let (block, bytes) = match ty {
        0 => (1, 4),     // F32
        1 => (1, 2),     // F16
        2 => (32, 18),   // Q4_0
        3 => (32, 20),   // Q4_1
        6 => (32, 22),   // Q5_0
        7 => (32, 24),   // Q5_1
        8 => (32, 34),   // Q8_0
        9 => (32, 36),   // Q8_1
        10 => (256, 84), // Q2_K
        11 => (256, 110),
        12 => (256, 144),
        13 => (256, 176),
        14 => (256, 210),
        15 => (256, 292),
        30 => (1, 2), // BF16
        _ => return None,
    };
    Some(elements.div_ceil(block) * bytes)
}

fn ggml_type_name(ty: u32) -> Option<&'static str> {
    Some(match ty {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        6 => "Q5_0",
        7 => "Q5_1",
        8 => "Q8_0",
        10 => "Q2_K",
        11 => "Q3_K",
        12 => "Q4_K",
        13 => "Q5_K",
        14 => "Q6_K",
        30 => "BF16",
        _ => return None,
    })
}

/// llama.cpp's `general.file_type` codes.
fn file_type_name(code: u64) -> Option<&'static str> {
    Some(match code {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        32 => "BF16",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A minimal well-formed GGUF: one metadata entry per `kv`, one F32 tensor of 4 values.
    fn tiny_gguf(kv: &[(&str, &str)], tensor_bytes: usize) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(b"GGUF");
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&1u64.to_le_bytes());
        b.extend_from_slice(&(kv.len() as u64).to_le_bytes());
        let s = |b: &mut Vec<u8>, s: &str| {
            b.extend_from_slice(&(s.len() as u64).to_le_bytes());
            b.extend_from_slice(s.as_bytes());
        };
        for (k, v) in kv {
            s(&mut b, k);
            b.extend_from_slice(&8u32.to_le_bytes());
            s(&mut b, v);
        }
        s(&mut b, "w");
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&4u64.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes());
        while b.len() % 32 != 0 {
            b.push(0);
        }
        b.extend(std::iter::repeat_n(0u8, tensor_bytes));
        b
    }

    fn write(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        f
    }

    #[test]
    fn reads_a_well_formed_header() {
        let f = write(&tiny_gguf(&[("general.architecture", "llama"), ("general.name", "t")], 16));
        let info = read_info(f.path()).unwrap();
        assert_eq!(info.architecture, "llama");
        assert_eq!(info.name.as_deref(), Some("t"));
        assert_eq!(info.parameter_count, 4);
        assert_eq!(info.quantization, "F32");
    }

    #[test]
    fn truncated_tensor_data_is_corrupt() {
        let f = write(&tiny_gguf(&[("general.architecture", "llama")], 8));
        assert!(matches!(read_info(f.path()), Err(Error::CorruptGguf { .. })), "{:?}", read_info(f.path()));
    }

    #[test]
    fn truncated_header_is_corrupt() {
        let full = tiny_gguf(&[("general.architecture", "llama")], 16);
        for cut in [6, 20, 30, 45] {
            let f = write(&full[..cut]);
            assert!(matches!(read_info(f.path()), Err(Error::CorruptGguf { .. })), "cut at {cut}");
        }
    }

    #[test]
    fn empty_foreign_and_missing_files_are_told_apart() {
        let f = write(b"");
        assert!(matches!(read_info(f.path()), Err(Error::EmptyModelFile { .. })));
        let f = write(b"PK\x03\x04 this is a zip file, not a model");
        assert!(matches!(read_info(f.path()), Err(Error::NotGguf { .. })));
        let f = write(b"GG");
        assert!(matches!(read_info(f.path()), Err(Error::NotGguf { .. })));
        assert!(matches!(read_info(Path::new("/no/such/model.gguf")), Err(Error::ModelNotFound { .. })));
    }

    #[test]
    fn absurd_lengths_do_not_allocate() {
        let mut b = b"GGUF".to_vec();
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes());
        b.extend_from_slice(&1u64.to_le_bytes());
        b.extend_from_slice(&u64::MAX.to_le_bytes()); // key length
        let f = write(&b);
        assert!(matches!(read_info(f.path()), Err(Error::CorruptGguf { .. })));
    }
}
