//! In-process inference with mistral.rs on a local GGUF file.
//!
//! mistral.rs is reached through its lower-level loader (`load_model_from_path`) with paths we
//! build ourselves, so it never consults a model hub: its high-level builder treats a missing
//! path as a Hugging Face repo id and would try to fetch it. The file is checked by our own
//! GGUF reader first, so bad files and unsupported architectures are errors, not panics.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mistralrs::core::{
    AdapterPaths, AutoDeviceMapParams, DeviceMapSetting, GGUFLoaderBuilder, GGUFSpecificConfig, LocalModelPaths,
    MistralRsBuilder, ModelPaths,
};
use mistralrs::{
    DefaultSchedulerMethod, ModelDType, RequestBuilder, Response, SchedulerConfig, TextMessageRole,
};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::device::{describe_load, LayerSplit, Placement};
use super::{ms, rate, ChatMessage, Generation, GenerationParams, Role, StopReason, TokenSink, Usage};
use crate::error::{Error, Result};
use crate::models::fit::RUN_CONTEXT_TOKENS;
use crate::models::gguf::{self, GgufInfo, SUPPORTED_ARCHITECTURES};

/// Computed prompts kept for reuse (one per conversation: a follow-up's entry replaces its
/// previous turn's). Each holds a whole KV cache in memory, so the number is small.
const PREFIX_CACHES_KEPT: usize = 4;

/// Precision of activations and the KV cache (weights stay quantized).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum ComputeDtype {
    /// mistral.rs's choice for the device (F16 on CPU in 0.8.1).
    #[default]
    Auto,
    /// 32-bit floats: slowest, for checking the others.
    F32,
    /// 16-bit floats.
    F16,
    /// bfloat16.
    Bf16,
}

impl ComputeDtype {
    fn to_model_dtype(self) -> ModelDType {
        match self {
            ComputeDtype::Auto => ModelDType::Auto,
            ComputeDtype::F32 => ModelDType::F32,
            ComputeDtype::F16 => ModelDType::F16,
            ComputeDtype::Bf16 => ModelDType::BF16,
        }
    }
}

impl std::str::FromStr for ComputeDtype {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(ComputeDtype::Auto),
            "f32" => Ok(ComputeDtype::F32),
            "f16" => Ok(ComputeDtype::F16),
            "bf16" => Ok(ComputeDtype::Bf16),
            other => Err(format!("unknown compute dtype `{other}` (auto, f32, f16, bf16)")),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
/// How to load a local model.
pub struct LoadOptions {
    /// The precision activations are computed in (the weights stay quantized).
    pub dtype: ComputeDtype,
    /// Run on the CPU even where a GPU backend was compiled in and a GPU is present.
    pub force_cpu: bool,
    /// Keep decoding past the end-of-text token (benchmarks that need a fixed token count).
    pub ignore_eos: bool,
    /// Do not reuse KV cache across requests (benchmarks that must recompute every prompt).
    pub no_prefix_cache: bool,
}

/// A model loaded in this process, ready to generate.
pub struct LocalModel {
    model: mistralrs::Model,
    /// What the GGUF file says about the model.
    pub info: GgufInfo,
    /// The GGUF file.
    pub path: PathBuf,
    /// How long the load took.
    pub load_time: Duration,
    /// Where it runs, in words: "CPU", the CPU and why not the GPU, or the GPU with the
    /// number of layers on it.
    pub backend: String,
    /// Layers on the GPU, of all the model's layers (none on the CPU).
    pub layers: LayerSplit,
    /// For the user when the model did not fit on the GPU: part or all of it runs on the CPU.
    pub placement_note: Option<String>,
}

impl LocalModel {
    /// Loads the GGUF file at `path`. Tokenizer and chat template come from the file itself.
    pub async fn load(path: &Path, options: &LoadOptions) -> Result<LocalModel> {
        let started = Instant::now();
        let info = gguf::read_info(path)?;
        if !SUPPORTED_ARCHITECTURES.contains(&info.architecture.as_str()) {
            return Err(Error::UnsupportedArchitecture {
                path: path.to_path_buf(),
                architecture: info.architecture.clone(),
                supported: SUPPORTED_ARCHITECTURES.join(", "),
            });
        }
        crate::paths::keep_model_hub_offline();
        let path = path.canonicalize().map_err(|e| Error::io(path, e))?;
        let load_error = |reason: String| Error::ModelLoad { path: path.clone(), reason };

        let placement = Placement::choose(options.force_cpu);
        let device = placement.device.clone();
        // mistral.rs maps as many layers to the GPU as fit beside a KV cache this long: the
        // context the fit counted when it said the model fits the GPU, so pick and load agree
        // (mistral.rs's default is 4,096 tokens). The CPU keeps the default: nothing is split.
        let device_map = if placement.is_gpu() {
            let window = RUN_CONTEXT_TOKENS.min(info.context_length.unwrap_or(RUN_CONTEXT_TOKENS));
            AutoDeviceMapParams::Text { max_seq_len: window as usize, max_batch_size: 1 }
        } else {
            AutoDeviceMapParams::default_text()
        };
        let dtype = options.dtype.to_model_dtype();
        let file = path.clone();
        // The loader is synchronous and heavy; a panic inside it must not take the app down.
        let pipeline = tokio::task::spawn_blocking(move || {
            let loader = GGUFLoaderBuilder::new(
                None,
                None,
                file.parent().unwrap_or(Path::new(".")).display().to_string(),
                vec![file.file_name().unwrap_or_default().to_string_lossy().into_owned()],
                GGUFSpecificConfig { topology: None },
                false,
                None,
            )
            .build();
            let paths: Box<dyn ModelPaths> = Box::new(LocalModelPaths {
                tokenizer_filename: PathBuf::new(),
                config_filename: PathBuf::new(),
                template_filename: None,
                filenames: vec![file.clone()],
                adapter_paths: AdapterPaths::None,
                gen_conf: None,
                preprocessor_config: None,
                processor_config: None,
                chat_template_json_filename: None,
            });
            let pipeline = loader.load_model_from_path(
                &paths,
                &dtype,
                &device,
                true,
                DeviceMapSetting::Auto(device_map),
                None,
                None,
            )?;
            let layers = layers_on_gpu(&*pipeline.blocking_lock());
            anyhow::Ok((pipeline, layers))
        })
        .await
        .map_err(|e| load_error(panic_message(e)))?
        .map_err(|e| load_error(format!("{e:#}")))?;
        let (pipeline, layers) = pipeline;
        let (backend, placement_note) = describe_load(&placement.description, placement.is_gpu(), layers);

        let scheduler = SchedulerConfig::DefaultScheduler {
            method: DefaultSchedulerMethod::Fixed(1.try_into().expect("1 is non-zero")),
        };
        let runner = MistralRsBuilder::new(pipeline, scheduler, false, None)
            .with_disable_eos_stop(options.ignore_eos)
            .with_no_prefix_cache(options.no_prefix_cache)
            .with_prefix_cache_n(PREFIX_CACHES_KEPT)
            .build()
            .await;
        Ok(LocalModel {
            model: mistralrs::Model::new(runner),
            info,
            path: path.clone(),
            load_time: started.elapsed(),
            backend,
            layers,
            placement_note,
        })
    }

    /// The context window the model runs with, in tokens.
    pub fn context_length(&self) -> usize {
        self.model
            .max_sequence_length()
            .ok()
            .flatten()
            .or(self.info.context_length.map(|c| c as usize))
            .unwrap_or(2048)
    }

    /// Number of tokens `messages` take once the model's chat template is applied.
    pub async fn count_prompt_tokens(&self, messages: &[ChatMessage]) -> Result<usize> {
        self.model
            .tokenize(either::Either::Left(text_messages(messages)), None, true, true, None)
            .await
            .map(|t| t.len())
            .map_err(|e| Error::Generation(e.to_string()))
    }

    /// Number of tokens `text` takes on its own, without a chat template or special tokens.
    pub async fn count_text_tokens(&self, text: &str) -> Result<usize> {
        self.model
            .tokenize(either::Either::Right(text.to_string()), None, false, false, None)
            .await
            .map(|t| t.len())
            .map_err(|e| Error::Generation(e.to_string()))
    }

    /// A short name for records and messages: the file's `general.name`, else its file name.
    pub fn name(&self) -> String {
        self.info.name.clone().unwrap_or_else(|| {
            self.path.file_stem().map_or_else(|| "model".to_string(), |s| s.to_string_lossy().into_owned())
        })
    }

    /// The exact text the model sees for `messages`: the chat template applied, special
    /// tokens written out. Lets a peer engine be benchmarked on the same token sequence.
    pub async fn render_prompt(&self, messages: &[ChatMessage]) -> Result<String> {
        let tokens = self.model.tokenize(either::Either::Left(text_messages(messages)), None, true, true, None).await;
        let tokens = tokens.map_err(|e| Error::Generation(e.to_string()))?;
        self.model.detokenize(tokens, false).await.map_err(|e| Error::Generation(e.to_string()))
    }

    /// Generates a reply to `messages`, streaming text into `sink` as it is decoded, until the
    /// model stops, `params.max_tokens` is reached, the sink returns `false` or `cancel` fires.
    pub async fn generate(
        &self,
        messages: &[ChatMessage],
        params: &GenerationParams,
        sink: &mut (dyn TokenSink + Send),
        cancel: &CancellationToken,
    ) -> Result<Generation> {
        let mut request = RequestBuilder::new();
        for m in messages {
            request = request.add_message(role(m.role), &m.content);
        }
        // The deterministic preset replaces every sampling parameter, so it goes first.
        request = match params.temperature {
            Some(t) => request.set_sampler_temperature(t),
            None => request.set_deterministic_sampler(),
        };
        request = request.set_sampler_max_len(params.max_tokens.max(1));
        if let Some(schema) = &params.json_schema {
            request = request.set_constraint(mistralrs::Constraint::JsonSchema(schema.clone()));
        }

        let started = Instant::now();
        let mut stream =
            self.model.stream_chat_request(request).await.map_err(|e| Error::Generation(e.to_string()))?;
        let mut text = String::new();
        let mut first_token: Option<Duration> = None;
        let mut chunks = 0usize;
        let mut stop = StopReason::EndOfText;
        let mut reported = None;
        'receive: loop {
            let response = tokio::select! {
                biased;
                _ = cancel.cancelled() => { stop = StopReason::Cancelled; break 'receive; }
                r = stream.next() => r,
            };
            match response {
                None => break,
                Some(Response::Chunk(chunk)) => {
                    if chunk.usage.is_some() {
                        reported = chunk.usage;
                    }
                    for choice in chunk.choices {
                        if let Some(piece) = choice.delta.content.filter(|p| !p.is_empty()) {
                            first_token.get_or_insert_with(|| started.elapsed());
                            chunks += 1;
                            text.push_str(&piece);
                            if !sink.token(&piece) {
                                stop = StopReason::Cancelled;
                                break 'receive;
                            }
                        }
                        if let Some(reason) = choice.finish_reason {
                            stop = if reason == "length" { StopReason::Length } else { StopReason::EndOfText };
                            if reported.is_some() {
                                break 'receive;
                            }
                        }
                    }
                }
                Some(Response::Done(done)) => {
                    reported = Some(done.usage);
                    break;
                }
                Some(Response::ModelError(msg, _)) => return Err(Error::Generation(msg)),
                Some(Response::InternalError(e)) | Some(Response::ValidationError(e)) => {
                    return Err(Error::Generation(e.to_string()))
                }
                Some(_) => {}
            }
        }
        // Dropping the stream tells the engine to stop this sequence at its next step.
        drop(stream);

        let total = started.elapsed();
        let usage = match reported {
            Some(u) => Usage {
                prompt_tokens: Some(u.prompt_tokens),
                completion_tokens: u.completion_tokens,
                time_to_first_token_ms: first_token.map(ms),
                prompt_tokens_per_s: rate(u.prompt_tokens, u.total_prompt_time_sec as f64),
                decode_tokens_per_s: rate(u.completion_tokens, u.total_completion_time_sec as f64),
                total_ms: ms(total),
            },
            None => Usage {
                prompt_tokens: None,
                completion_tokens: chunks,
                time_to_first_token_ms: first_token.map(ms),
                prompt_tokens_per_s: None,
                decode_tokens_per_s: first_token
                    .and_then(|f| rate(chunks.saturating_sub(1), (total - f).as_secs_f64())),
                total_ms: ms(total),
            },
        };
        Ok(Generation { text, stop, usage })
    }
}

/// The layers the loader's device map put on a GPU, read back from the loaded pipeline.
fn layers_on_gpu(pipeline: &(dyn mistralrs::core::Pipeline + Send + Sync)) -> LayerSplit {
    let Some(mapper) = pipeline.device_mapper() else {
        return LayerSplit { on_gpu: 0, of: 0 };
    };
    let of = mapper.num_device_mapping_layers();
    let on_gpu = (0..of).filter(|&layer| mapper.device_for(layer, false).is_some_and(|d| !d.is_cpu())).count();
    LayerSplit { on_gpu, of }
}

fn text_messages(messages: &[ChatMessage]) -> mistralrs::TextMessages {
    messages.iter().fold(mistralrs::TextMessages::new(), |m, msg| m.add_message(role(msg.role), &msg.content))
}

fn role(r: Role) -> TextMessageRole {
    match r {
        Role::System => TextMessageRole::System,
        Role::User => TextMessageRole::User,
        Role::Assistant => TextMessageRole::Assistant,
    }
}

fn panic_message(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".to_string());
            format!("the model loader crashed: {msg}")
        }
        Err(e) => format!("the model loader was interrupted: {e}"),
    }
}

