//! [perimeter patch] The token embedding of the GGUF models, kept in the file's quantization on
//! the CPU.
//!
//! Upstream dequantized the whole `token_embd` table to f32 at load: 151,936 × 1,536 values for
//! Qwen2.5-Coder-1.5B, 933 MB of memory (its Q4_K table is 131 MB) and a second or more of the
//! load, for a lookup that reads one row per token. On the CPU the table now stays quantized
//! and only the rows a batch looks up are dequantized, with candle's own dequantizer, so the
//! values are the same. On other devices the dense table is kept (a lookup there would copy the
//! quantized table back to the host).

use std::borrow::Cow;
use std::sync::Arc;

use candle_core::quantized::{QStorage, QTensor};
use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::Embedding;

pub enum TokenEmbedding {
    /// The table dequantized (not on the CPU, or from a GGML file).
    Dense(Embedding),
    /// The table as stored, `(vocabulary, hidden)`; rows dequantized on lookup.
    Quantized { table: Arc<QTensor>, vocab: usize, hidden: usize, row_bytes: usize },
}

impl TokenEmbedding {
    pub fn dense(table: Tensor, hidden: usize) -> Self {
        Self::Dense(Embedding::new(table, hidden))
    }

    /// The quantized table on `device`: kept quantized on the CPU when its rows are whole
    /// blocks, dequantized otherwise. `hidden` is the model's embedding length, which the
    /// table's rows must have.
    pub fn new(table: Arc<QTensor>, hidden: usize, device: &Device) -> Result<Self> {
        let (vocab, row_len) = table.shape().dims2()?;
        if row_len != hidden {
            candle_core::bail!("the token embedding's rows have {row_len} values, the model's embedding length is {hidden}");
        }
        let dtype = table.dtype();
        if !device.is_cpu() || hidden % dtype.block_size() != 0 {
            return Ok(Self::dense(table.dequantize(device)?, hidden));
        }
        let row_bytes = hidden / dtype.block_size() * dtype.type_size();
        Ok(Self::Quantized { table, vocab, hidden, row_bytes })
    }

    /// The rows of `ids` (any shape of u32 token ids), as f32 with a trailing `hidden` dim.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let (table, vocab, hidden, row_bytes) = match self {
            Self::Dense(embedding) => return embedding.forward(ids),
            Self::Quantized { table, vocab, hidden, row_bytes } => (table, *vocab, *hidden, *row_bytes),
        };
        let ids_flat = ids.flatten_all()?.to_dtype(DType::U32)?.to_vec1::<u32>()?;
        let data = table.data()?;
        let mut rows = Vec::with_capacity(ids_flat.len() * row_bytes);
        for &id in &ids_flat {
            let id = id as usize;
            if id >= vocab {
                candle_core::bail!("token id {id} is outside the embedding table of {vocab} tokens");
            }
            rows.extend_from_slice(&data[id * row_bytes..(id + 1) * row_bytes]);
        }
        // Borrowed, not owned: candle's `from_data` reads a `Cow::Owned` buffer after dropping it.
        let storage = QStorage::from_data(Cow::Borrowed(&rows), &Device::Cpu, table.dtype())?;
        let looked_up = QTensor::new(storage, (ids_flat.len(), hidden))?.dequantize(&Device::Cpu)?;
        let mut dims = ids.dims().to_vec();
        dims.push(hidden);
        looked_up.reshape(dims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::GgmlDType;

    #[test]
    fn quantized_lookup_gives_the_dequantized_table_rows() -> Result<()> {
        let (vocab, hidden) = (37, 512);
        let values: Vec<f32> = (0..vocab * hidden).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
        let dense = Tensor::from_vec(values, (vocab, hidden), &Device::Cpu)?;
        for dtype in [GgmlDType::Q4K, GgmlDType::Q6K, GgmlDType::Q5_0, GgmlDType::Q8_0] {
            let table = Arc::new(QTensor::quantize(&dense, dtype)?);
            let quantized = TokenEmbedding::new(table.clone(), hidden, &Device::Cpu)?;
            assert!(TokenEmbedding::new(table.clone(), hidden + 1, &Device::Cpu).is_err());
            assert!(matches!(quantized, TokenEmbedding::Quantized { .. }));
            let reference = TokenEmbedding::dense(table.dequantize(&Device::Cpu)?, hidden);
            let ids = Tensor::new(&[[0u32, 36, 5], [5, 1, 0]], &Device::Cpu)?;
            let got = quantized.forward(&ids)?;
            assert_eq!(got.dims(), &[2, 3, hidden]);
            let want = reference.forward(&ids)?;
            let diff = (got - want)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert_eq!(diff, 0.0, "{dtype:?}");
            assert!(quantized.forward(&Tensor::new(&[37u32], &Device::Cpu)?).is_err());
        }
        Ok(())
    }
}
