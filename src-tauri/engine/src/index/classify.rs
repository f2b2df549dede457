//! What a file is: its language, and whether it is source, test, documentation or
//! generated. Retrieval ranks by this (source first for "what should change" questions);
//! nothing is excluded for it.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
/// What kind of file it is, for ranking (source ranks above its docs and generated code).
pub enum FileClass {
    /// Code.
    Source,
    /// Tests of the code.
    Test,
    /// Prose: README, docs folders, text formats.
    Docs,
    /// Made by a tool (lock files, minified or vendored code).
    Generated,
}

impl FileClass {
    /// The name kept in the index and shown in results.
    pub fn as_str(self) -> &'static str {
        match self {
            FileClass::Source => "source",
            FileClass::Test => "test",
            FileClass::Docs => "docs",
            FileClass::Generated => "generated",
        }
    }

    /// Reads a name [`FileClass::as_str`] wrote; anything else counts as source.
    pub fn parse(s: &str) -> FileClass {
        match s {
            "test" => FileClass::Test,
            "docs" => FileClass::Docs,
            "generated" => FileClass::Generated,
            _ => FileClass::Source,
        }
    }
}

/// The language of a file, from its extension or name ("text" when unknown).
pub fn language(path: &str) -> &'static str {
    let name = path.rsplit('/').next().unwrap_or(path);
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "rs" => "rust",
        "py" | "pyi" => "python",
        "go" => "go",
        "js" | "mjs" | "cjs" | "jsx" => "javascript",
        "ts" | "mts" | "cts" | "tsx" => "typescript",
        "java" => "java",
        "kt" | "kts" => "kotlin",
        "c" | "h" => "c",
        "cc" | "cpp" | "cxx" | "hpp" | "hh" | "hxx" => "cpp",
        "cs" => "csharp",
        "rb" => "ruby",
        "php" => "php",
        "swift" => "swift",
        "scala" => "scala",
        "sh" | "bash" | "zsh" => "shell",
        "vue" => "vue",
        "svelte" => "svelte",
        "html" | "htm" => "html",
        "css" | "scss" | "less" => "css",
        "md" | "markdown" => "markdown",
        "rst" => "rst",
        "toml" => "toml",
        "yaml" | "yml" => "yaml",
        "json" => "json",
        "sql" => "sql",
        "lua" => "lua",
        "zig" => "zig",
        "dart" => "dart",
        "ex" | "exs" => "elixir",
        "hs" => "haskell",
        _ => match name {
            "Makefile" | "makefile" => "make",
            "Dockerfile" => "docker",
            _ => "text",
        },
    }
}

/// Extensions never worth reading: binary formats, archives, media, model weights.
pub fn is_binary_extension(path: &str) -> bool {
    let ext = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    matches!(
        ext.as_str(),
        "png" | "jpg" | "jpeg" | "gif" | "bmp" | "ico" | "icns" | "webp" | "tiff" | "psd" | "pdf" | "zip" | "gz"
            | "tgz" | "bz2" | "xz" | "zst" | "7z" | "rar" | "tar" | "jar" | "war" | "class" | "so" | "dylib" | "dll"
            | "exe" | "o" | "a" | "lib" | "obj" | "bin" | "wasm" | "woff" | "woff2" | "ttf" | "otf" | "eot" | "mp3"
            | "mp4" | "mov" | "avi" | "wav" | "flac" | "ogg" | "gguf" | "safetensors" | "onnx" | "pt" | "pth" | "pyc"
            | "db" | "sqlite" | "parquet" | "npy" | "npz" | "pkl"
    )
}

/// Lock files: generated, long, and never what a question is about.
pub fn is_lock_file(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    matches!(
        name,
        "Cargo.lock" | "package-lock.json" | "yarn.lock" | "pnpm-lock.yaml" | "poetry.lock" | "Pipfile.lock"
            | "composer.lock" | "Gemfile.lock" | "go.sum" | "bun.lockb" | "uv.lock" | "flake.lock"
    ) || name.ends_with(".lock")
}

/// Folders of vendored dependencies and build output, skipped even when not git-ignored.
pub fn is_vendor_or_build_dir(name: &str) -> bool {
    matches!(
        name,
        "node_modules" | "target" | "vendor" | "dist" | "build" | "__pycache__" | ".venv" | "venv" | ".tox"
            | ".mypy_cache" | ".pytest_cache" | ".gradle" | ".next" | ".nuxt" | "bower_components" | ".git"
    )
}

/// Test, documentation, generated or source, from the path alone.
pub fn classify(path: &str) -> FileClass {
    let lower = path.to_ascii_lowercase();
    let name = lower.rsplit('/').next().unwrap_or(&lower);
    let dirs: Vec<&str> = lower.split('/').collect();
    let dirs = &dirs[..dirs.len().saturating_sub(1)];
    if name.contains(".min.") || name.ends_with(".pb.go") || name.ends_with("_pb2.py") || name.contains(".generated.") {
        return FileClass::Generated;
    }
    let test_dir = dirs.iter().any(|d| {
        matches!(*d, "test" | "tests" | "__tests__" | "testdata" | "fixtures" | "spec" | "specs" | "benches" | "e2e" | "playground")
    });
    let stem = name.rsplit_once('.').map_or(name, |(s, _)| s);
    let test_name = stem.starts_with("test_")
        || stem.ends_with("_test")
        || stem.ends_with("_tests")
        || stem.ends_with(".test")
        || stem.ends_with(".spec")
        || stem.ends_with("_spec")
        || stem == "tests"
        || stem == "conftest";
    if test_dir || test_name {
        return FileClass::Test;
    }
    let docs_dir = dirs.iter().any(|d| matches!(*d, "docs" | "doc" | "documentation" | "examples" | "example"));
    let docs_file = matches!(language(name), "markdown" | "rst" | "text")
        || stem.starts_with("changelog")
        || stem.starts_with("changes")
        || stem.starts_with("license")
        || stem.starts_with("readme");
    if docs_dir || docs_file {
        return FileClass::Docs;
    }
    FileClass::Source
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        for (path, class) in [
            ("src/printer.rs", FileClass::Source),
            ("tests/integration.rs", FileClass::Test),
            ("gin/context_test.go", FileClass::Test),
            ("src/test_parser.py", FileClass::Test),
            ("packages/vite/src/node/__tests__/build.spec.ts", FileClass::Test),
            ("ui/button.test.tsx", FileClass::Test),
            ("README.md", FileClass::Docs),
            ("CHANGELOG.md", FileClass::Docs),
            ("docs/guide/api.ts", FileClass::Docs),
            ("assets/app.min.js", FileClass::Generated),
            ("contest/main.rs", FileClass::Source),
        ] {
            assert_eq!(classify(path), class, "{path}");
        }
    }

    #[test]
    fn languages() {
        assert_eq!(language("a/b.rs"), "rust");
        assert_eq!(language("x.TSX"), "typescript");
        assert_eq!(language("Makefile"), "make");
        assert_eq!(language("notes"), "text");
    }
}
