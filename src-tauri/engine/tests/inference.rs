//! The real dev model, loaded in-process: streamed generation, usage, cancellation, and the
//! clear errors for files that are not a model we can run. Needs `scripts/fetch-models.sh --all`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use perimeter_engine::inference::{
    CancellationToken, ChatMessage, GenerationParams, LoadOptions, LocalModel, StopReason,
};
use perimeter_engine::Error;

fn model_file(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/local").join(name);
    assert!(path.is_file(), "{} is missing: run scripts/fetch-models.sh --all", path.display());
    path
}

fn dev_model() -> PathBuf {
    model_file("SmolLM2-135M-Instruct.Q4_1.gguf")
}

async fn load(path: &Path) -> Result<LocalModel, Error> {
    LocalModel::load(path, &LoadOptions::default()).await
}

fn question() -> Vec<ChatMessage> {
    vec![ChatMessage::user("Write a Python function that adds two numbers.")]
}

#[tokio::test(flavor = "multi_thread")]
async fn streams_an_answer_with_usage() {
    let model = load(&dev_model()).await.expect("dev model loads");
    assert_eq!(model.info.architecture, "llama");
    assert!(model.context_length() >= 2048, "context {}", model.context_length());
    // Where the layers went, as read back from mistral.rs's device map: on a CPU load all of
    // them on the CPU, with no note (CI and this machine have no GPU).
    assert_eq!(model.layers.of as u64, model.info.block_count.unwrap(), "{:?}", model.layers);
    if !model.backend.starts_with("CPU") {
        panic!("loaded on {}: this test expects a machine without a usable GPU", model.backend);
    }
    assert_eq!((model.layers.on_gpu, &model.placement_note), (0, &None));

    let mut pieces = Vec::new();
    let mut sink = |t: &str| {
        pieces.push(t.to_string());
        true
    };
    let params = GenerationParams { max_tokens: 48, temperature: None, json_schema: None };
    let g = model.generate(&question(), &params, &mut sink, &CancellationToken::new()).await.unwrap();

    assert!(!g.text.trim().is_empty(), "empty answer");
    assert!(pieces.len() > 1, "the answer arrived in one piece, not streamed: {pieces:?}");
    assert_eq!(pieces.concat(), g.text);
    assert_ne!(g.stop, StopReason::Cancelled);
    let u = &g.usage;
    assert!(u.prompt_tokens.unwrap() > 10, "{u:?}");
    assert!(u.completion_tokens > 1 && u.completion_tokens <= 48, "{u:?}");
    assert!(u.decode_tokens_per_s.unwrap() > 0.0 && u.prompt_tokens_per_s.unwrap() > 0.0, "{u:?}");
    assert!(u.time_to_first_token_ms.unwrap() > 0.0 && u.total_ms >= u.time_to_first_token_ms.unwrap());

    // The tokenizer agrees with the engine on the prompt's length.
    assert_eq!(model.count_prompt_tokens(&question()).await.unwrap(), u.prompt_tokens.unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn greedy_decoding_is_deterministic() {
    let model = load(&dev_model()).await.unwrap();
    let params = GenerationParams { max_tokens: 24, temperature: None, json_schema: None };
    let cancel = CancellationToken::new();
    let a = model.generate(&question(), &params, &mut |_: &str| true, &cancel).await.unwrap();
    let b = model.generate(&question(), &params, &mut |_: &str| true, &cancel).await.unwrap();
    assert_eq!(a.text, b.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sink_returning_false_stops_generation() {
    let model = load(&dev_model()).await.unwrap();
    let mut seen = 0;
    let mut sink = |_: &str| {
        seen += 1;
        seen < 3
    };
    // Ignore end-of-text so that only the sink can stop it short of max_tokens.
    let params = GenerationParams { max_tokens: 400, temperature: None, json_schema: None };
    let g = model.generate(&question(), &params, &mut sink, &CancellationToken::new()).await.unwrap();
    assert_eq!(g.stop, StopReason::Cancelled);
    assert_eq!(g.usage.completion_tokens, 3);
    // The engine is free again: the next request is served.
    let next = model.generate(&question(), &GenerationParams { max_tokens: 4, temperature: None, json_schema: None }, &mut |_: &str| true, &CancellationToken::new()).await.unwrap();
    assert!(!next.text.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn cancellation_from_another_task_stops_early() {
    let path = dev_model();
    let options = LoadOptions { ignore_eos: true, ..LoadOptions::default() };
    let model = LocalModel::load(&path, &options).await.unwrap();
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    let mut count = 0;
    let mut sink = |_: &str| {
        count += 1;
        if count == 5 {
            // As a Stop button would: from elsewhere, while tokens keep coming.
            let t = trigger.clone();
            tokio::spawn(async move { t.cancel() });
        }
        true
    };
    let started = Instant::now();
    let params = GenerationParams { max_tokens: 2000, temperature: None, json_schema: None };
    let g = model.generate(&question(), &params, &mut sink, &cancel).await.unwrap();
    assert_eq!(g.stop, StopReason::Cancelled);
    assert!(g.usage.completion_tokens < 100, "kept going: {} tokens", g.usage.completion_tokens);
    assert!(started.elapsed().as_secs() < 60);
}

fn temp_file(bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".gguf").tempfile().unwrap();
    f.write_all(bytes).unwrap();
    f
}

async fn load_err(path: &Path) -> Error {
    match load(path).await {
        Ok(_) => panic!("{} loaded", path.display()),
        Err(e) => e,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_files_get_clear_errors_and_the_process_stays_up() {
    let missing = load_err(Path::new("/nonexistent/dir/model.gguf")).await;
    assert!(matches!(missing, Error::ModelNotFound { .. }), "{missing}");
    assert!(missing.to_string().contains("does not exist"), "{missing}");
    // A bare name that is not a file is not looked up on a model hub either.
    let bare = load_err(Path::new("HuggingFaceTB/SmolLM2-135M-Instruct")).await;
    assert!(matches!(bare, Error::ModelNotFound { .. }), "{bare}");

    let empty = temp_file(b"");
    let e = load_err(empty.path()).await;
    assert!(matches!(e, Error::EmptyModelFile { .. }) && e.to_string().contains("empty"), "{e}");

    let text = temp_file(b"fn main() { println!(\"not a model\"); }\n");
    let e = load_err(text.path()).await;
    assert!(matches!(e, Error::NotGguf { .. }) && e.to_string().contains("not a GGUF"), "{e}");

    let real = std::fs::read(dev_model()).unwrap();
    let truncated = temp_file(&real[..real.len() / 2]);
    let e = load_err(truncated.path()).await;
    assert!(matches!(e, Error::CorruptGguf { .. }) && e.to_string().contains("cut short"), "{e}");

    let mut garbled = real[..4096].to_vec();
    garbled[24..32].copy_from_slice(&u64::MAX.to_le_bytes()); // first key's length
    let garbled = temp_file(&garbled);
    let e = load_err(garbled.path()).await;
    assert!(matches!(e, Error::CorruptGguf { .. }), "{e}");

    let gemma = load_err(&model_file("gemma-3-270m-q4_k_m.gguf")).await;
    let msg = gemma.to_string();
    assert!(matches!(gemma, Error::UnsupportedArchitecture { .. }), "{msg}");
    assert!(msg.contains("`gemma3`") && msg.contains("llama") && msg.contains("qwen2"), "{msg}");

    // After all that, the real model still loads and answers in this same process.
    let model = load(&dev_model()).await.unwrap();
    let g = model.generate(&question(), &GenerationParams { max_tokens: 8, temperature: None, json_schema: None }, &mut |_: &str| true, &CancellationToken::new()).await.unwrap();
    assert!(!g.text.is_empty());
}
