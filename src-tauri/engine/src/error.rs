//! The engine's one error type. Every message names the file, model or path at fault and
//! says what to do next: the CLI prints it as is, the app shows it to the user.

use std::path::{Path, PathBuf};

/// The engine's results: its [`Error`] unless said otherwise.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the engine. Each variant's `#[error]` message is its
/// documentation: what went wrong, naming the file or model from its fields, and what to do.
/// [`Error::kind`] is the stable name hosts match on.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs)]
pub enum Error {
    #[error("cannot run the command confined: {reason}")]
    Sandbox { reason: String },
    #[error(
        "model file {} does not exist; give the path of a .gguf file, or a name from `perimeter models list`",
        path.display()
    )]
    ModelNotFound { path: PathBuf },

    #[error("{} is empty (0 bytes), so it is not a model; download or import it again", path.display())]
    EmptyModelFile { path: PathBuf },

    #[error(
        "{} is not a GGUF model file (it does not start with the GGUF signature); Perimeter runs quantized models in GGUF format",
        path.display()
    )]
    NotGguf { path: PathBuf },

    #[error("{} is a corrupt or truncated GGUF file ({reason}); download or import it again", path.display())]
    CorruptGguf { path: PathBuf, reason: String },

    #[error(
        "{} is a `{architecture}` model, which this version of Perimeter cannot run; supported architectures: {supported}",
        path.display()
    )]
    UnsupportedArchitecture { path: PathBuf, architecture: String, supported: String },

    #[error("loading {} failed: {reason}", path.display())]
    ModelLoad { path: PathBuf, reason: String },

    #[error("{purpose} needs a connection to {host}, which the network policy refuses: {reason}")]
    NetworkRefused { host: String, purpose: String, reason: String },

    #[error("downloading {model} failed: {reason}")]
    Download { model: String, reason: String },

    #[error("{model} is already being downloaded by another Perimeter window or command; wait for it to finish")]
    DownloadBusy { model: String },

    #[error(
        "the download of {model} was cancelled; {} MiB are kept in {} to resume later (`perimeter models rm {model}` deletes them)",
        kept >> 20, part.display()
    )]
    DownloadCancelled { model: String, kept: u64, part: PathBuf },

    #[error(
        "not enough free space in {}: {} MiB are needed, {} MiB are free; free some space and try again (nothing was lost)",
        path.display(), needed.div_ceil(1 << 20), available >> 20
    )]
    DiskFull { path: PathBuf, needed: u64, available: u64 },

    #[error("the company inference server at {url}: {reason}")]
    Remote { url: String, reason: String },

    #[error("{reason}")]
    Keychain { reason: String },

    #[error("the settings file {} is not valid ({reason}); fix it or delete it to start from the defaults", path.display())]
    Settings { path: PathBuf, reason: String },

    #[error("{} is not one of your projects; add it first", path.display())]
    NotAProject { path: PathBuf },

    #[error("network policy: {reason}")]
    NetworkPolicy { reason: String },

    #[error("generation failed: {0}")]
    Generation(String),

    #[error(
        "this CPU lacks {missing}, which this build of Perimeter needs (it is built for x86-64-v3: AVX2, FMA, F16C, BMI2); \
         use a build made for older CPUs, or a machine from 2015 or later"
    )]
    CpuUnsupported { missing: String },

    #[error("model catalog {}: {reason}", path.display())]
    Catalog { path: PathBuf, reason: String },

    #[error("no model named `{name}`; `perimeter models list` shows the names you can use")]
    UnknownModel { name: String },

    #[error(
        "`{name}` is in the catalog but not installed; download it with `perimeter models pull {name}`, \
         or import its file with `perimeter models import FILE`"
    )]
    ModelNotInstalled { name: String },

    #[error(
        "no model is installed; download the one `perimeter hw` recommends with `perimeter models pull NAME`, \
         import a .gguf file you have with `perimeter models import FILE`, or run scripts/fetch-models.sh for the development model"
    )]
    NoModelInstalled,

    #[error(
        "the embedding model in {} cannot be used ({reason}); search stays lexical until it is fixed \
         (`scripts/fetch-models.sh --embed` installs the default one)",
        path.display()
    )]
    EmbeddingModel { path: PathBuf, reason: String },

    #[error("`{id}` is not an embedding model Perimeter knows; choose one of: {known}")]
    UnknownEmbedder { id: String, known: String },

    #[error("embedding failed: {reason}; search stays lexical")]
    Embedding { reason: String },

    #[error("{} is not a folder; add a project by its folder", path.display())]
    NotAProjectFolder { path: PathBuf },

    #[error(
        "another Perimeter window or command is indexing {} right now; close it, or wait for it to finish",
        project.display()
    )]
    IndexLocked { project: PathBuf },

    #[error("the index in {} failed: {reason}", path.display())]
    Index { path: PathBuf, reason: String },

    #[error(
        "the question and instructions alone need {needed} tokens but the model's context window leaves {available}; \
         ask a shorter question or load a model with a larger context"
    )]
    PromptTooLong { needed: usize, available: usize },

    #[error("{path} is not UTF-8 text, so Perimeter will not edit it (it would not round-trip); edit it by hand")]
    NotUtf8 { path: String },

    #[error("refusing to write {path}: {reason}")]
    UnsafePath { path: String, reason: String },

    #[error(
        "nothing was written: {} changed on disk since the proposal was made; ask for the edit again",
        paths.join(", ")
    )]
    EditConflict { paths: Vec<String> },

    #[error(
        "cannot undo change {id}: {} changed since it was applied; undo by hand or with your version control",
        paths.join(", ")
    )]
    UndoConflict { id: String, paths: Vec<String> },

    #[error("change {id} was already undone")]
    AlreadyUndone { id: String },

    #[error("there is no applied change to undo in this project")]
    NothingToUndo,

    #[error("there is no proposal in this project yet; ask for a change first (`perimeter edit --project DIR \"…\"`)")]
    NoProposal,

    #[error("request {job} is already running; wait for it to finish or stop it")]
    JobRunning { job: String },

    #[error("no {kind} `{id}` in this project; `perimeter history --project DIR` lists them")]
    UnknownRecord { kind: &'static str, id: String },

    #[error("the selection matches no change in the proposal ({0}); `perimeter edit` numbers the hunks it shows")]
    EmptySelection(String),

    #[error(
        "nothing was written: {} waits for your explicit confirmation ({}); confirm it to apply it anyway, or apply the other changes only",
        paths.join(", "),
        reasons.join("; ")
    )]
    HeldChange { paths: Vec<String>, reasons: Vec<String> },

    #[error("{}: {reason}; move it aside and Perimeter will start a fresh one", path.display())]
    CorruptRecord { path: PathBuf, reason: String },

    // Not a `source`: the message already holds it, and error chains would print it twice.
    #[error("{}: {error}", path.display())]
    Io { path: PathBuf, error: std::io::Error },
}

impl Error {
    /// A stable name for what went wrong (`model_not_found`, `download_cancelled`…): hosts
    /// decide by it, never by the message's words, and the app's UI receives it with the
    /// message.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::ModelNotFound { .. } => "model_not_found",
            Error::EmptyModelFile { .. } => "empty_model_file",
            Error::NotGguf { .. } => "not_gguf",
            Error::CorruptGguf { .. } => "corrupt_gguf",
            Error::UnsupportedArchitecture { .. } => "unsupported_architecture",
            Error::ModelLoad { .. } => "model_load",
            Error::NetworkRefused { .. } => "network_refused",
            Error::Download { .. } => "download",
            Error::DownloadBusy { .. } => "download_busy",
            Error::DownloadCancelled { .. } => "download_cancelled",
            Error::DiskFull { .. } => "disk_full",
            Error::Remote { .. } => "remote",
            Error::Keychain { .. } => "keychain",
            Error::Settings { .. } => "settings",
            Error::NotAProject { .. } => "not_a_project",
            Error::NetworkPolicy { .. } => "network_policy",
            Error::Generation(_) => "generation",
            Error::CpuUnsupported { .. } => "cpu_unsupported",
            Error::Catalog { .. } => "catalog",
            Error::UnknownModel { .. } => "unknown_model",
            Error::ModelNotInstalled { .. } => "model_not_installed",
            Error::NoModelInstalled => "no_model_installed",
            Error::EmbeddingModel { .. } => "embedding_model",
            Error::UnknownEmbedder { .. } => "unknown_embedder",
            Error::Embedding { .. } => "embedding",
            Error::NotAProjectFolder { .. } => "not_a_project_folder",
            Error::IndexLocked { .. } => "index_locked",
            Error::Index { .. } => "index",
            Error::PromptTooLong { .. } => "prompt_too_long",
            Error::NotUtf8 { .. } => "not_utf8",
            Error::UnsafePath { .. } => "unsafe_path",
            Error::EditConflict { .. } => "edit_conflict",
            Error::UndoConflict { .. } => "undo_conflict",
            Error::AlreadyUndone { .. } => "already_undone",
            Error::NothingToUndo => "nothing_to_undo",
            Error::NoProposal => "no_proposal",
            Error::JobRunning { .. } => "job_running",
            Error::UnknownRecord { .. } => "unknown_record",
            Error::EmptySelection(_) => "empty_selection",
            Error::HeldChange { .. } => "held_change",
            Error::CorruptRecord { .. } => "corrupt_record",
            Error::Io { .. } => "io",
            Error::Sandbox { .. } => "sandbox",
        }
    }

    /// The message as `host` should show it. The `Display` text is the terminal's: its
    /// remedies name `perimeter` commands. The window's names its own views and buttons
    /// instead, since its users may never have opened a terminal.
    pub fn message_for(&self, host: Host) -> String {
        if host == Host::Terminal {
            return self.to_string();
        }
        match self {
            Error::ModelNotFound { path } => {
                format!("model file {} does not exist; choose an installed model in Models, or import the file again", path.display())
            }
            Error::DownloadCancelled { model, kept, .. } => format!(
                "the download of {model} was cancelled; {} MiB are kept to resume later (Discard in Models deletes them)",
                kept >> 20
            ),
            Error::UnknownModel { name } => format!("no model named `{name}`; Models lists the installed ones"),
            Error::ModelNotInstalled { name } => {
                format!("`{name}` is in the catalog but not installed; download it, or import its file, in Models")
            }
            Error::NoModelInstalled => "no model is installed; in Models, download the recommended one or import a .gguf file \
                you have (Import .gguf…, or drop it on the window)"
                .to_string(),
            Error::NoProposal => "there is no proposal in this project yet; ask for a change in Changes first".to_string(),
            Error::UnknownRecord { kind, id } => format!("no {kind} `{id}` in this project; Changes lists them"),
            Error::EmptySelection(detail) => format!("the selection matches no change in the proposal ({detail}); tick at least one hunk"),
            // Their reasons are written where the refusal is found, with the terminal's remedy.
            Error::NetworkRefused { .. } | Error::Download { .. } => window_remedies(&self.to_string()),
            _ => self.to_string(),
        }
    }

    /// Wraps a tantivy error; a full disk gets its own advice.
    pub fn index(path: impl AsRef<Path>, e: tantivy::TantivyError) -> Self {
        let text = e.to_string();
        let reason = if text.contains("No space left") || text.contains("os error 28") {
            "the disk is full; free some space and index again (the index keeps what it had)".to_string()
        } else {
            text
        };
        Error::Index { path: path.as_ref().to_path_buf(), reason }
    }

    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io { path: path.as_ref().to_path_buf(), error: source }
    }
}

/// Who shows an error to the user, so the remedy names what they can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    /// The CLI: remedies name `perimeter` commands.
    Terminal,
    /// The app: remedies name what to click.
    Window,
}

/// The terminal's network remedies in a refusal's reason, said as the window offers them.
fn window_remedies(text: &str) -> String {
    let mut out = text.replace("`perimeter network allow HOST`", "Allow in the network panel (bottom left)");
    while let Some(start) = out.find("run `perimeter network allow ") {
        let rest = &out[start + "run `perimeter network allow ".len()..];
        let Some(end) = rest.find('`') else { break };
        let host = rest[..end].to_string();
        out = format!("{}allow {host} in the network panel (bottom left){}", &out[..start], &rest[end + 1..]);
    }
    out.replace("run `perimeter models import FILE`", "import it in Models")
}

/// Adds the path to an `io::Result`, as ripgrep's `WithPath` does.
pub trait IoContext<T> {
    /// The error, if any, as [`Error::Io`] at `path`.
    fn at(self, path: impl AsRef<Path>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl AsRef<Path>) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_the_variant_names_in_snake_case() {
        assert_eq!(Error::NoModelInstalled.kind(), "no_model_installed");
        assert_eq!(Error::Generation("x".into()).kind(), "generation");
        let cancelled = Error::DownloadCancelled { model: "m".into(), kept: 0, part: PathBuf::from("m.part") };
        assert_eq!(cancelled.kind(), "download_cancelled");
        assert_eq!(Error::io("f", std::io::Error::other("x")).kind(), "io");
    }

    #[test]
    fn the_window_is_never_told_to_run_a_command() {
        let refused = Error::NetworkRefused {
            host: "huggingface.co:443".into(),
            purpose: "downloading a model".into(),
            reason: "the network policy is offline (/p); to allow it run `perimeter network allow huggingface.co`".into(),
        };
        let no_source = Error::Download {
            model: "m".into(),
            reason: "no source is allowed. Allow the host with `perimeter network allow HOST`, or copy the file from elsewhere \
                     and run `perimeter models import FILE`"
                .into(),
        };
        let all = [
            refused,
            no_source,
            Error::NoModelInstalled,
            Error::UnknownModel { name: "x".into() },
            Error::ModelNotInstalled { name: "x".into() },
            Error::ModelNotFound { path: "m.gguf".into() },
            Error::DownloadCancelled { model: "m".into(), kept: 3 << 20, part: "m.part".into() },
            Error::UnknownRecord { kind: "change", id: "1".into() },
            Error::EmptySelection("hunk 9".into()),
            Error::NoProposal,
        ];
        for e in &all {
            let window = e.message_for(Host::Window);
            assert!(!window.contains("`perimeter"), "{window}");
        }
        let text = all[0].message_for(Host::Window);
        assert!(text.contains("allow huggingface.co in the network panel"), "{text}");
        assert!(all[0].message_for(Host::Terminal).contains("run `perimeter network allow huggingface.co`"));
    }
}
