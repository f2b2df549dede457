//! The project index: walking rules, incremental updates (directly and through the watcher),
//! the single-writer lock, and search finding the right file.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use perimeter_engine::index::{ProjectIndex, SearchOptions};
use perimeter_engine::Error;

struct Project {
    dir: tempfile::TempDir,
    data: tempfile::TempDir,
}

impl Project {
    fn new(files: &[(&str, &str)]) -> Project {
        let p = Project { dir: tempfile::tempdir().unwrap(), data: tempfile::tempdir().unwrap() };
        for (path, text) in files {
            p.write(path, text);
        }
        p
    }
    fn root(&self) -> &Path {
        self.dir.path()
    }
    fn write(&self, rel: &str, text: &str) {
        let path = self.root().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    fn open(&self) -> Result<ProjectIndex, Error> {
        ProjectIndex::open(self.root(), &self.data.path().join("index"))
    }
}

fn update(index: &ProjectIndex) -> perimeter_engine::index::IndexSummary {
    index.update(&mut |_| {}, &perimeter_engine::inference::CancellationToken::new()).unwrap()
}

fn top_file(index: &ProjectIndex, query: &str) -> Option<String> {
    index.search(query, &SearchOptions::default()).unwrap().files.first().map(|f| f.path.clone())
}

const PRINTER: &str = "/// Prints a highlighted line.\npub fn print_line(line: &str, theme: &Theme) {\n    let styled = theme.highlight(line);\n    println!(\"{styled}\");\n}\n";
const CONFIG: &str = "pub struct Config {\n    pub tab_width: usize,\n    pub wrap_mode: WrapMode,\n}\n\nimpl Config {\n    pub fn from_args(args: &Args) -> Config {\n        Config { tab_width: args.tabs, wrap_mode: WrapMode::Never }\n    }\n}\n";

#[test]
fn walking_rules_skip_and_count() {
    let p = Project::new(&[
        ("src/printer.rs", PRINTER),
        ("src/config.rs", CONFIG),
        (".gitignore", "secret/\n*.log\n"),
        ("secret/keys.rs", "pub fn key() {}"),
        ("debug.log", "log line"),
        (".hidden/x.rs", "pub fn hidden() {}"),
        ("node_modules/dep/index.js", "module.exports = 1;"),
        ("target/release/build.rs", "fn main() {}"),
        ("Cargo.lock", "# lock"),
        ("assets/app.min.js", &format!("var a={};", "x".repeat(20_000))),
    ]);
    std::fs::write(p.root().join("logo.png"), [0x89, b'P', b'N', b'G', 0, 0, 1, 2]).unwrap();
    std::fs::write(p.root().join("data.bin.txt"), b"text\0with a NUL byte").unwrap();
    std::fs::write(p.root().join("latin1.rs"), b"// caf\xe9\n").unwrap();
    std::fs::write(p.root().join("huge.rs"), vec![b'a'; 2 << 20]).unwrap();
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(p.root(), p.root().join("src/loop")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", p.root().join("outside.rs")).unwrap();
    }
    let index = p.open().unwrap();
    let s = update(&index);
    assert_eq!(s.files_indexed, 2, "{s:#?}");
    let skipped = &s.skipped.0;
    for (reason, n) in [("symlink", 2), ("binary", 2), ("too_large", 1), ("not_utf8", 1), ("lock_file", 1), ("minified_or_generated", 1), ("vendor_or_build_dir", 2)] {
        assert_eq!(skipped.get(reason), Some(&n), "{reason}: {skipped:?}");
    }
    let paths: BTreeSet<String> = index.search("pub fn", &SearchOptions { limit: 50, ..Default::default() }).unwrap().files.into_iter().map(|f| f.path).collect();
    assert_eq!(paths, BTreeSet::from(["src/config.rs".to_string(), "src/printer.rs".to_string()]));
}

#[test]
fn search_finds_the_right_file_and_chunk() {
    let p = Project::new(&[
        ("src/printer.rs", PRINTER),
        ("src/config.rs", CONFIG),
        ("tests/printer_test.rs", "#[test]\nfn prints_a_line() { print_line(\"x\", &Theme::default()); print_line(\"y\", &t); }\n"),
        ("README.md", "# Printer\nThe printer prints highlighted lines with a theme.\n"),
    ]);
    let index = p.open().unwrap();
    update(&index);
    assert_eq!(top_file(&index, "highlighted line printing uses the wrong theme").as_deref(), Some("src/printer.rs"));
    assert_eq!(top_file(&index, "tab width is ignored in wrapMode").as_deref(), Some("src/config.rs"));
    assert_eq!(top_file(&index, "Config::from_args").as_deref(), Some("src/config.rs"));
    let r = index.search("print_line", &SearchOptions::default()).unwrap();
    // The source file outranks the test that calls it more often.
    assert_eq!(r.files[0].path, "src/printer.rs", "{:?}", r.files);
    let c = &r.chunks[0];
    assert_eq!((c.path.as_str(), c.start_line), ("src/printer.rs", 1));
    assert!(c.text.contains("pub fn print_line"));
    // Filters.
    let only_tests = index.search("print_line", &SearchOptions { path_prefix: Some("tests/".into()), ..Default::default() }).unwrap();
    assert!(only_tests.files.iter().all(|f| f.path.starts_with("tests/")) && !only_tests.files.is_empty());
    let md = index.search("printer", &SearchOptions { language: Some("markdown".into()), ..Default::default() }).unwrap();
    assert_eq!(md.files.len(), 1);
    assert!(index.search("the of and", &SearchOptions::default()).unwrap().files.is_empty());
}

#[test]
fn updates_are_incremental_and_survive_reopening() {
    let p = Project::new(&[("src/printer.rs", PRINTER), ("src/config.rs", CONFIG)]);
    {
        let index = p.open().unwrap();
        assert_eq!(update(&index).files_indexed, 2);
        // Nothing changed: nothing is read again.
        let again = update(&index);
        assert_eq!((again.files_indexed, again.files_unchanged), (0, 2));
    }
    // Reopened later (an app restart), with one file changed, one added, one removed.
    p.write("src/config.rs", &CONFIG.replace("tab_width", "indent_columns"));
    p.write("src/pager.rs", "pub fn spawn_pager(command: &str) {}\n");
    std::fs::remove_file(p.root().join("src/printer.rs")).unwrap();
    let index = p.open().unwrap();
    let s = update(&index);
    assert_eq!((s.files_indexed, s.files_unchanged, s.files_removed), (2, 0, 1), "{s:#?}");
    assert_eq!(index.file_count().unwrap(), 2);
    assert_eq!(top_file(&index, "indent columns").as_deref(), Some("src/config.rs"));
    let stale = index.search("tab_width", &SearchOptions::default()).unwrap();
    assert!(stale.files.is_empty(), "{stale:#?}");
    assert_eq!(top_file(&index, "pager").as_deref(), Some("src/pager.rs"));
    assert!(index.search("print_line", &SearchOptions::default()).unwrap().files.is_empty());
}

#[test]
fn a_second_writer_on_the_same_project_gets_a_clear_error() {
    let p = Project::new(&[("a.rs", "fn a() {}")]);
    let _first = p.open().unwrap();
    match p.open() {
        Err(e @ Error::IndexLocked { .. }) => assert!(e.to_string().contains("another Perimeter")),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("two writers opened the same index"),
    }
}

/// Waits for the watcher to report a batch that satisfies `done`, or fails after 10 s.
fn wait_for(rx: &mpsc::Receiver<BTreeSet<String>>, index: &ProjectIndex, done: impl Fn(&ProjectIndex) -> bool) -> Duration {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        let _ = rx.recv_timeout(Duration::from_millis(100));
        if done(index) {
            return started.elapsed();
        }
    }
    panic!("the watcher did not bring the change into the index within 10 s");
}

#[test]
fn the_watcher_reflects_saves_creates_deletes_renames_and_big_batches() {
    let p = Project::new(&[("src/printer.rs", PRINTER), ("src/config.rs", CONFIG)]);
    let index = Arc::new(p.open().unwrap());
    update(&index);
    let (tx, rx) = mpsc::channel();
    let _watcher = perimeter_engine::index::watch::watch(index.clone(), move |r, paths| {
        r.expect("watch update");
        let _ = tx.send(paths.clone());
    })
    .unwrap();
    let has = |q: &'static str, path: &'static str| move |i: &ProjectIndex| top_file(i, q).as_deref() == Some(path);

    p.write("src/config.rs", &CONFIG.replace("tab_width", "gutter_width"));
    let saved = wait_for(&rx, &index, has("gutter_width", "src/config.rs"));
    assert!(saved < Duration::from_secs(1), "a save took {saved:?} to be searchable");

    p.write("src/pager.rs", "pub fn spawn_pager() {}\n");
    wait_for(&rx, &index, has("spawn_pager", "src/pager.rs"));

    std::fs::remove_file(p.root().join("src/printer.rs")).unwrap();
    wait_for(&rx, &index, |i| i.search("print_line", &SearchOptions::default()).unwrap().files.is_empty());

    std::fs::rename(p.root().join("src/pager.rs"), p.root().join("src/less.rs")).unwrap();
    wait_for(&rx, &index, has("spawn_pager", "src/less.rs"));
    assert_eq!(index.file_count().unwrap(), 2);

    // A branch switch: thousands of files at once, handled in a few batches.
    for i in 0..2000 {
        p.write(&format!("gen/m{i}.rs"), &format!("pub fn generated_{i}() {{}}\n"));
    }
    wait_for(&rx, &index, |i| i.file_count().unwrap() == 2002);
    assert_eq!(top_file(&index, "generated_1999").as_deref(), Some("gen/m1999.rs"));
    std::fs::remove_dir_all(p.root().join("gen")).unwrap();
    wait_for(&rx, &index, |i| i.file_count().unwrap() == 2);
}
