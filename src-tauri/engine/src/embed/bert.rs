//! The BERT family (all-MiniLM-L6-v2 and kin) on candle: token ids in, one pooled vector per
//! text out.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::Encoding;

/// How a text's token vectors are pooled into one (`1_Pooling/config.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pooling {
    Mean,
    Cls,
}

/// A loaded BERT model. Its work runs on the calling thread (candle spreads a batch's matrix
/// products over its own threads); [`super::Embedder`] runs parts of a batch side by side.
pub(super) struct BertNetwork {
    model: BertModel,
    pooling: Pooling,
}

impl BertNetwork {
    /// Loads `model.safetensors` of `dir` as `config` describes it; `Err` says what is wrong.
    pub(super) fn load(dir: &Path, config: &Config) -> Result<BertNetwork, String> {
        let pooling = match super::model::optional_json(&dir.join("1_Pooling/config.json")) {
            Some(v) if v["pooling_mode_cls_token"].as_bool() == Some(true) => Pooling::Cls,
            _ => Pooling::Mean,
        };
        let weights = std::fs::read(dir.join("model.safetensors")).map_err(|e| format!("model.safetensors: {e}"))?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu)
            .map_err(|e| format!("model.safetensors is corrupt or truncated: {e}"))?;
        let model = BertModel::load(vb, config).map_err(|e| format!("model.safetensors does not fit config.json: {e}"))?;
        Ok(BertNetwork { model, pooling })
    }

    /// One pooled (not yet normalized) vector per encoding; the encodings are padded to one
    /// length, their attention masks saying which tokens are real.
    pub(super) fn vectors(&self, encodings: &[Encoding]) -> candle_core::Result<Vec<Vec<f32>>> {
        let rows = encodings.len();
        let len = encodings[0].get_ids().len();
        let tensor = |f: &dyn Fn(&Encoding) -> &[u32]| -> candle_core::Result<Tensor> {
            let flat: Vec<u32> = encodings.iter().flat_map(|e| f(e).iter().copied()).collect();
            Tensor::from_vec(flat, (rows, len), &Device::Cpu)
        };
        let ids = tensor(&|e| e.get_ids())?;
        let type_ids = tensor(&|e| e.get_type_ids())?;
        let mask = tensor(&|e| e.get_attention_mask())?;
        let hidden = self.model.forward(&ids, &type_ids, Some(&mask))?; // (rows, len, dims)
        let pooled = match self.pooling {
            Pooling::Cls => hidden.narrow(1, 0, 1)?.squeeze(1)?,
            Pooling::Mean => {
                // Padding must not count: average over the real tokens only.
                let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
                let sum = hidden.broadcast_mul(&m)?.sum(1)?;
                sum.broadcast_div(&m.sum(1)?)?
            }
        };
        pooled.to_vec2::<f32>()
    }
}
