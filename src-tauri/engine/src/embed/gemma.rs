//! EmbeddingGemma (Gemma 3 read both ways, as sentence-transformers saves it, with its pooling
//! and dense layers) run by mistral.rs's embedding pipeline on the CPU.
//!
//! Always F32: mistral.rs's CPU default, F16, gives NaN, and candle has no BF16 matrix product
//! on the CPU (BENCHMARKS.md, "EmbeddingGemma-300m through mistral.rs").
//!
//! mistral.rs is async and keeps tasks on the runtime it was built on, so the model lives on a
//! thread of its own with its own runtime; [`GemmaNetwork::vectors`] hands that thread token
//! ids and waits, which works from any caller (an async task, a blocking thread, a test). The
//! thread ends, and drops its runtime, when the network is dropped.

use std::path::Path;
use std::sync::mpsc;

use mistralrs::{EmbeddingModelBuilder, EmbeddingRequest, ModelDType};

/// Texts as token ids, and where their vectors go.
type Job = (Vec<Vec<u32>>, mpsc::Sender<Result<Vec<Vec<f32>>, String>>);

/// A loaded EmbeddingGemma.
pub(super) struct GemmaNetwork {
    jobs: mpsc::Sender<Job>,
}

impl GemmaNetwork {
    /// Loads the sentence-transformers folder `dir` (nothing is fetched: the model hub is
    /// kept offline); `Err` says what went wrong.
    pub(super) fn load(dir: &Path) -> Result<GemmaNetwork, String> {
        crate::paths::keep_model_hub_offline();
        let (jobs, inbox) = mpsc::channel::<Job>();
        let (loaded, load_result) = mpsc::channel::<Result<(), String>>();
        let model_id = dir.to_string_lossy().into_owned();
        std::thread::Builder::new()
            .name("embedding-gemma".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build() {
                    Ok(r) => r,
                    Err(e) => return drop(loaded.send(Err(format!("cannot start its runtime: {e}")))),
                };
                let builder = EmbeddingModelBuilder::new(model_id).with_force_cpu().with_dtype(ModelDType::F32);
                let model = match runtime.block_on(builder.build()) {
                    Ok(m) => m,
                    Err(e) => return drop(loaded.send(Err(format!("mistral.rs cannot load it: {e}")))),
                };
                let _ = loaded.send(Ok(()));
                while let Ok((texts, reply)) = inbox.recv() {
                    let request = EmbeddingRequest::builder().add_tokens_batch(texts);
                    let _ = reply.send(runtime.block_on(model.generate_embeddings(request)).map_err(|e| e.to_string()));
                }
            })
            .map_err(|e| format!("cannot start its thread: {e}"))?;
        match load_result.recv() {
            Ok(result) => result.map(|()| GemmaNetwork { jobs }),
            Err(_) => Err("mistral.rs stopped while loading it (see the log)".into()),
        }
    }

    /// One vector per text (token ids with the model's <bos> and <eos>), as the model's last
    /// layer gives it.
    pub(super) fn vectors(&self, texts: Vec<Vec<u32>>) -> Result<Vec<Vec<f32>>, String> {
        let (reply, answer) = mpsc::channel();
        self.jobs.send((texts, reply)).map_err(|_| "the embedding model's thread has stopped".to_string())?;
        answer.recv().map_err(|_| "the embedding model's thread stopped while embedding".to_string())?
    }
}
