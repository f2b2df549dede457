//! Which project file an edit means, and whether Perimeter may write it.
//!
//! Models write paths loosely (`./src/a.rs`, `a/src/a.rs`, `project/src/a.rs`, `SRC/A.rs`,
//! just `a.rs`); [`resolve`] finds the one file meant, or calls it a new file. [`checked_target`]
//! then refuses anything that would leave the project: absolute paths, `..`, symlinks that
//! lead out, and the `.git` folder.

use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};

/// What a written path resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// An existing project file (project-relative, `/`-separated).
    Existing(String),
    /// No such file: a new one at this project-relative path.
    New(String),
}

/// Matches `written` against the project's files (`known`, project-relative).
pub fn resolve(written: &str, root: &Path, known: &[String]) -> Result<Resolved> {
    let mut p = written.trim().replace('\\', "/");
    if let Some(rel) = Path::new(&p).strip_prefix(root).ok().map(|r| r.to_string_lossy().replace('\\', "/")) {
        p = rel;
    }
    while let Some(rest) = p.strip_prefix("./") {
        p = rest.to_string();
    }
    if Path::new(&p).is_absolute() {
        lexically_inside(&p)?;
    }
    let exact = |q: &str| known.iter().find(|k| *k == q).cloned();
    if let Some(k) = exact(&p) {
        return Ok(Resolved::Existing(k));
    }
    // `a/…` and `b/…` as in a git diff; the project's own folder name in front.
    let root_name = root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    for prefix in ["a/", "b/", &format!("{root_name}/")] {
        if let Some(k) = p.strip_prefix(prefix).and_then(exact) {
            return Ok(Resolved::Existing(k));
        }
    }
    let unique = |matches: Vec<&String>| (matches.len() == 1).then(|| matches[0].clone());
    if let Some(k) = unique(known.iter().filter(|k| k.eq_ignore_ascii_case(&p)).collect()) {
        return Ok(Resolved::Existing(k));
    }
    // The tail of a real path (`lib.rs` for `src/lib.rs`), or a real path of at least two
    // parts behind extra folders (`proj/src/lib.rs`; but `new/c.txt` is not `c.txt`).
    let behind = |k: &String| k.contains('/') && p.ends_with(&format!("/{k}"));
    if let Some(k) = unique(known.iter().filter(|k| k.ends_with(&format!("/{p}")) || behind(k)).collect()) {
        return Ok(Resolved::Existing(k));
    }
    lexically_inside(&p)?;
    Ok(Resolved::New(p))
}

/// Refuses paths that are absolute, climb out with `..`, or touch `.git`.
fn lexically_inside(rel: &str) -> Result<()> {
    let unsafe_path = |reason: &str| Err(Error::UnsafePath { path: rel.to_string(), reason: reason.to_string() });
    if rel.is_empty() {
        return unsafe_path("the path is empty");
    }
    for c in Path::new(rel).components() {
        match c {
            Component::Prefix(_) | Component::RootDir => return unsafe_path("it is an absolute path outside the project"),
            Component::ParentDir => return unsafe_path("it climbs out of the project with `..`"),
            Component::Normal(n) if n == ".git" => return unsafe_path("Perimeter never writes inside .git"),
            _ => {}
        }
    }
    Ok(())
}

/// The absolute path Perimeter may write for project-relative `rel`: inside `root` once
/// symlinks are followed, not a symlink itself, not in `.git`. Folders that do not exist yet
/// are fine (a new file's folders are created on apply).
pub fn checked_target(root: &Path, rel: &str) -> Result<PathBuf> {
    lexically_inside(rel)?;
    let root = root.canonicalize().map_err(|e| Error::io(root, e))?;
    let full = root.join(rel);
    let unsafe_path = |reason: &str| Error::UnsafePath { path: rel.to_string(), reason: reason.to_string() };
    if full.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(unsafe_path("it is a symbolic link; edit the file it points to instead"));
    }
    // The deepest folder that exists, with symlinks resolved, must still be in the project.
    let mut existing = full.parent().unwrap_or(&root).to_path_buf();
    while !existing.exists() {
        existing = existing.parent().unwrap_or(&root).to_path_buf();
    }
    let real = existing.canonicalize().map_err(|e| Error::io(&existing, e))?;
    if !real.starts_with(&root) {
        return Err(unsafe_path("a symbolic link in its path leads outside the project"));
    }
    if real.strip_prefix(&root).is_ok_and(|r| r.components().any(|c| c.as_os_str() == ".git")) {
        return Err(unsafe_path("Perimeter never writes inside .git"));
    }
    Ok(full)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> Vec<String> {
        ["src/lib.rs", "src/main.rs", "tests/main.rs", "README.md"].iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn loose_paths_resolve_to_the_real_file() {
        let root = Path::new("/home/u/myproj");
        for w in ["src/lib.rs", "./src/lib.rs", "a/src/lib.rs", "myproj/src/lib.rs", "SRC/LIB.RS", "lib.rs", "/home/u/myproj/src/lib.rs", "src\\lib.rs", "x/y/src/lib.rs"] {
            assert_eq!(resolve(w, root, &known()).unwrap(), Resolved::Existing("src/lib.rs".into()), "{w}");
        }
        // Ambiguous tails are not guessed.
        assert_eq!(resolve("main.rs", root, &known()).unwrap(), Resolved::New("main.rs".into()));
        assert_eq!(resolve("src/new.rs", root, &known()).unwrap(), Resolved::New("src/new.rs".into()));
        assert_eq!(resolve("docs/README.md", root, &known()).unwrap(), Resolved::New("docs/README.md".into()));
    }

    #[test]
    fn escapes_are_refused() {
        let root = Path::new("/home/u/myproj");
        for w in ["../x.rs", "src/../../x.rs", "/etc/passwd", "/etc/README.md", ".git/config", "src/.git/hooks/pre-commit"] {
            let e = resolve(w, root, &known()).unwrap_err();
            assert!(matches!(e, Error::UnsafePath { .. }), "{w}: {e}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_out_of_the_project_are_refused() {
        let outside = tempfile::tempdir().unwrap();
        let project = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), project.path().join("out")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("f"), project.path().join("link.txt")).unwrap();
        std::fs::create_dir(project.path().join("src")).unwrap();
        assert!(checked_target(project.path(), "out/new.txt").unwrap_err().to_string().contains("outside the project"));
        assert!(checked_target(project.path(), "out/deep/er/new.txt").is_err());
        assert!(checked_target(project.path(), "link.txt").unwrap_err().to_string().contains("symbolic link"));
        assert!(checked_target(project.path(), "src/new/file.rs").is_ok());
    }
}
