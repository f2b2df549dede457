//! Semantic retrieval with the real small embedding model (all-MiniLM-L6-v2): vectors that
//! follow meaning, search that finds a file described without its words, embedding only what
//! changed, stopping and going on, and the clear error for a model that cannot be used; and
//! the same search with EmbeddingGemma-300m, the other family (run by mistral.rs).
//! Needs `scripts/fetch-models.sh --embed --embed-gemma`.

use std::path::{Path, PathBuf};

use perimeter_engine::embed::{Embedder, VectorStore};
use perimeter_engine::index::{ProjectIndex, SearchMode, SearchOptions};
use perimeter_engine::{CancellationToken, Error};

fn model_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/local/all-minilm-l6-v2");
    assert!(dir.join("model.safetensors").is_file(), "{} is missing: run scripts/fetch-models.sh --embed", dir.display());
    dir
}

fn gemma_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/local/embeddinggemma-300m");
    assert!(dir.join("model.safetensors").is_file(), "{} is missing: run scripts/fetch-models.sh --embed-gemma", dir.display());
    dir
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Three files; the question about retries names none of `backoff.rs`'s words.
const FILES: &[(&str, &str)] = &[
    (
        "src/backoff.rs",
        "/// Delay before the next attempt: doubles each time, capped at a minute.\n\
         pub fn next_delay(attempt: u32) -> std::time::Duration {\n\
         \x20   let secs = 1u64 << attempt.min(6);\n\
         \x20   std::time::Duration::from_secs(secs.min(60))\n}\n",
    ),
    (
        "src/render.rs",
        "/// Draws the table of results as HTML rows.\n\
         pub fn render_rows(rows: &[Vec<String>]) -> String {\n\
         \x20   rows.iter().map(|r| format!(\"<tr><td>{}</td></tr>\", r.join(\"</td><td>\"))).collect()\n}\n",
    ),
    (
        "src/config.rs",
        "/// Reads the settings file from the user's home folder.\n\
         pub fn load_settings(path: &std::path::Path) -> std::io::Result<String> {\n\
         \x20   std::fs::read_to_string(path)\n}\n",
    ),
];
const QUESTION: &str = "wait longer and longer between retries when the server keeps failing";

struct Project {
    dir: tempfile::TempDir,
    data: tempfile::TempDir,
}

impl Project {
    fn new() -> Project {
        let p = Project { dir: tempfile::tempdir().unwrap(), data: tempfile::tempdir().unwrap() };
        for (path, text) in FILES {
            p.write(path, text);
        }
        p
    }
    fn write(&self, rel: &str, text: &str) {
        let path = self.dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    fn index(&self) -> ProjectIndex {
        let index = ProjectIndex::open(self.dir.path(), &self.data.path().join("index")).unwrap();
        index.update(&mut |_| {}, &CancellationToken::new()).unwrap();
        index
    }
}

#[test]
fn vectors_follow_meaning_and_are_unit_length() {
    let e = Embedder::load(&model_dir()).unwrap();
    assert_eq!(e.dims(), 384);
    let v = e
        .embed_documents(&["retry the request after a growing delay", "exponential backoff between attempts", "render an HTML table"])
        .unwrap();
    assert_eq!(v.len(), 3);
    for x in &v {
        assert!((cosine(x, x) - 1.0).abs() < 1e-4, "not unit length");
    }
    let (near, far) = (cosine(&v[0], &v[1]), cosine(&v[0], &v[2]));
    assert!(near > far + 0.2, "related {near} vs unrelated {far}");
    // Batching and padding change nothing: a text alone gets the vector it got in the batch.
    let alone = e.embed_documents(&["render an HTML table"]).unwrap().remove(0);
    assert!(cosine(&alone, &v[2]) > 0.9999, "padding leaked into the mean: {}", cosine(&alone, &v[2]));
}

#[test]
fn semantic_and_hybrid_search_find_the_file_the_words_miss() {
    let p = Project::new();
    let index = p.index();
    let e = Embedder::load(&model_dir()).unwrap();
    let mut store = VectorStore::open(&index.vectors_dir(), &e.id(), e.dims()).unwrap();
    let s = index.embed_chunks(&e, &mut store, &mut |_| {}, &CancellationToken::new()).unwrap();
    assert_eq!((s.chunks_embedded, s.chunks_reused, s.cancelled), (3, 0, false));
    let table = index.semantic_table(&store).unwrap();
    assert_eq!(table.coverage(), (3, 3));
    let q = e.embed_query(QUESTION).unwrap();
    let options = SearchOptions::default();

    let lexical = index.search_by(QUESTION, &options, SearchMode::Lexical, Some((&table, &q))).unwrap();
    assert!(lexical.files.iter().all(|f| f.path != "src/backoff.rs"), "the words alone should miss it: {:?}", lexical.files);
    for mode in [SearchMode::Semantic, SearchMode::Hybrid] {
        let found = index.search_by(QUESTION, &options, mode, Some((&table, &q))).unwrap();
        assert_eq!(found.files[0].path, "src/backoff.rs", "{mode:?}: {:?}", found.files);
        assert_eq!(found.chunks[0].path, "src/backoff.rs");
        assert!(found.chunks[0].text.contains("fn next_delay"), "the chunk's text is filled in");
    }
}

#[test]
fn only_changed_chunks_are_embedded_again_and_a_stop_keeps_what_was_done() {
    let p = Project::new();
    let index = p.index();
    let e = Embedder::load(&model_dir()).unwrap();
    let mut store = VectorStore::open(&index.vectors_dir(), &e.id(), e.dims()).unwrap();

    let stopped = CancellationToken::new();
    stopped.cancel();
    let s = index.embed_chunks(&e, &mut store, &mut |_| {}, &stopped).unwrap();
    assert!(s.cancelled);
    assert_eq!(s.chunks_embedded, 0);
    assert_eq!(index.unembedded_keys(&store).unwrap().len(), 3);
    let s = index.embed_chunks(&e, &mut store, &mut |_| {}, &CancellationToken::new()).unwrap();
    assert_eq!(s.chunks_embedded, 3);
    assert!(index.unembedded_keys(&store).unwrap().is_empty());

    // One file changes, one test file appears (tests are left to the lexical ranking).
    p.write("src/render.rs", "/// Draws the results as a Markdown table.\npub fn render_rows() {}\n");
    p.write("tests/render_test.rs", "#[test]\nfn renders() { assert!(true) }\n");
    index.update(&mut |_| {}, &CancellationToken::new()).unwrap();
    // Reopened, as the next start of the app would: the vectors come from the file.
    let mut store = VectorStore::open(&index.vectors_dir(), &e.id(), e.dims()).unwrap();
    assert_eq!(index.unembedded_keys(&store).unwrap().len(), 1, "only the changed chunk is left to embed");
    let mut seen = Vec::new();
    let s = index.embed_chunks(&e, &mut store, &mut |p| seen.push(p.clone()), &CancellationToken::new()).unwrap();
    assert_eq!((s.chunks_embedded, s.chunks_reused), (1, 2));
    assert_eq!(seen.last().map(|p| (p.chunks_done, p.chunks_total)), Some((1, 1)));
    assert_eq!(index.semantic_table(&store).unwrap().coverage(), (3, 3));
}

#[test]
fn the_search_table_after_a_save_has_the_new_chunks_and_not_the_old_ones() {
    // The table is built again from the rows of the index segments read before plus the new
    // one, and the attached one keeps its old segments' parts: either way a changed file's old
    // chunk and a deleted file's chunk must not come back.
    let p = Project::new();
    let index = p.index();
    let e = std::sync::Arc::new(Embedder::load(&model_dir()).unwrap());
    let mut store = VectorStore::open(&index.vectors_dir(), &e.id(), e.dims()).unwrap();
    index.embed_chunks(&e, &mut store, &mut |_| {}, &CancellationToken::new()).unwrap();
    assert_eq!(index.semantic_table(&store).unwrap().coverage(), (3, 3));
    index.attach_embedder(e.clone()).unwrap();
    assert!(index.warm_semantic_table().unwrap());
    let question = "draw the results as a table";
    let options = SearchOptions::default();
    let before = index.retrieve_by(question, &options, SearchMode::Semantic).unwrap();
    assert!(before.chunks.iter().any(|c| c.text.contains("HTML")), "{:?}", before.chunks);

    p.write("src/render.rs", "/// Draws the results as a Markdown table.\npub fn render_rows() {}\n");
    std::fs::remove_file(p.dir.path().join("src/config.rs")).unwrap();
    index.update(&mut |_| {}, &CancellationToken::new()).unwrap();
    index.embed_chunks(&e, &mut store, &mut |_| {}, &CancellationToken::new()).unwrap();
    let table = index.semantic_table(&store).unwrap();
    assert_eq!(table.coverage(), (2, 2));
    let q = e.embed_query(question).unwrap();
    let fresh = index.search_by(question, &options, SearchMode::Semantic, Some((&table, &q))).unwrap();
    index.embed_pending(&mut |_| {}, &CancellationToken::new()).unwrap();
    assert!(index.warm_semantic_table().unwrap(), "the index changed: built again");
    let kept = index.retrieve_by(question, &options, SearchMode::Semantic).unwrap();
    for found in [fresh, kept] {
        let paths: Vec<&str> = found.chunks.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths.iter().filter(|p| **p == "src/render.rs").count(), 1, "{paths:?}");
        assert!(!paths.contains(&"src/config.rs"), "{paths:?}");
        assert!(found.chunks.iter().any(|c| c.text.contains("Markdown")));
        assert!(!found.chunks.iter().any(|c| c.text.contains("HTML")), "the old chunk is gone: {:?}", found.chunks);
    }
}

#[test]
fn a_saved_files_new_vector_is_searched_at_once_without_waiting_for_a_bigger_batch() {
    // Twelve files embedded; a save adds one chunk, less than a tenth more vectors, which once
    // waited half a minute for the table. Only the small new segment's part is built again.
    let p = Project::new();
    for i in 0..9 {
        p.write(&format!("src/extra{i}.rs"), &format!("/// Helper number {i} for the report pages.\npub fn helper_{i}() {{}}\n"));
    }
    let index = p.index();
    index.attach_embedder(std::sync::Arc::new(Embedder::load(&model_dir()).unwrap())).unwrap();
    assert_eq!(index.embed_pending(&mut |_| {}, &CancellationToken::new()).unwrap().unwrap().chunks_embedded, 12);
    assert!(index.warm_semantic_table().unwrap());

    p.write("src/dates.rs", "/// Reads `2024-03-01` into a calendar day.\npub fn parse_day(s: &str) -> Option<(i32, u32, u32)> { None }\n");
    index.update(&mut |_| {}, &CancellationToken::new()).unwrap();
    assert!(index.warm_semantic_table().unwrap(), "the index changed: built again");
    assert_eq!(index.embed_pending(&mut |_| {}, &CancellationToken::new()).unwrap().unwrap().chunks_embedded, 1);
    assert!(index.warm_semantic_table().unwrap(), "the saved file's vector: built again at once");
    let question = "turn a written date into year month and day numbers";
    let found = index.retrieve_by(question, &SearchOptions::default(), SearchMode::Semantic).unwrap();
    assert_eq!(found.files[0].path, "src/dates.rs", "{:?}", found.files);
}

#[test]
fn a_model_that_cannot_be_used_is_a_clear_error_that_says_search_stays_lexical() {
    let missing = Embedder::load(Path::new("/nonexistent/embedder")).unwrap_err();
    assert!(matches!(missing, Error::EmbeddingModel { .. }), "{missing:?}");

    let broken = tempfile::tempdir().unwrap();
    for f in ["config.json", "tokenizer.json", "sentence_bert_config.json"] {
        std::fs::copy(model_dir().join(f), broken.path().join(f)).unwrap();
    }
    let weights = std::fs::read(model_dir().join("model.safetensors")).unwrap();
    std::fs::write(broken.path().join("model.safetensors"), &weights[..weights.len() / 3]).unwrap();
    let e = Embedder::load(broken.path()).unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, Error::EmbeddingModel { .. }), "{e:?}");
    assert!(text.contains("model.safetensors") && text.contains("search stays lexical"), "{text}");
}

#[test]
fn a_session_with_the_default_embedder_retrieves_by_meaning_and_one_without_it_by_words() {
    use perimeter_engine::session::{Overrides, Session};
    let p = Project::new();
    let data = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(data.path().join("models")).unwrap();
    std::os::unix::fs::symlink(model_dir(), data.path().join("models/all-minilm-l6-v2")).unwrap();
    let session = Session::at(data.path(), Overrides::default()).unwrap();
    let (_, index) = session.add_project(p.dir.path()).unwrap();
    session.index_project(p.dir.path(), &mut |_| {}).unwrap();
    // Before any vector exists, retrieval is the lexical one.
    assert!(index.has_embedder());
    assert!(index.retrieve(QUESTION, &SearchOptions::default()).unwrap().files.is_empty());
    assert!(!session.warm_search(p.dir.path()).unwrap(), "no vector, no table");
    let s = session.embed_project(p.dir.path(), &mut |_| {}).unwrap().expect("an embedder is attached");
    assert_eq!(s.chunks_embedded, 3);
    // The app builds the search table after embedding, so the first question need not.
    assert!(session.warm_search(p.dir.path()).unwrap());
    assert!(!session.warm_search(p.dir.path()).unwrap(), "fresh: not built again");
    // What ask, edit and the agent use.
    assert_eq!(index.retrieve(QUESTION, &SearchOptions::default()).unwrap().files[0].path, "src/backoff.rs");
    let lexical = session.search_project(p.dir.path(), QUESTION, &SearchOptions::default(), SearchMode::Lexical).unwrap();
    assert!(lexical.files.is_empty());
    assert!(!index.warm_semantic_table().unwrap(), "searching leaves the table fresh");
    // A file added later is found by meaning once it is indexed and embedded (the search
    // table is rebuilt for the new index generation).
    p.write("src/dates.rs", "/// Reads `2024-03-01` into a calendar day.\npub fn parse_day(s: &str) -> Option<(i32, u32, u32)> { None }\n");
    session.index_project(p.dir.path(), &mut |_| {}).unwrap();
    assert!(index.warm_semantic_table().unwrap(), "the index changed: built again");
    assert_eq!(session.embed_project(p.dir.path(), &mut |_| {}).unwrap().unwrap().chunks_embedded, 1);
    assert!(index.warm_semantic_table().unwrap(), "a vector was added: built again");
    let found = index.retrieve("turn a written date into year month and day numbers", &SearchOptions::default()).unwrap();
    assert_eq!(found.files[0].path, "src/dates.rs", "{:?}", found.files);

    let bare_data = tempfile::tempdir().unwrap();
    let bare = Session::at(bare_data.path(), Overrides::default()).unwrap();
    let why = bare.embedder().unwrap_err();
    assert!(why.contains("lexical"), "{why}");
    let q = Project::new();
    bare.add_project(q.dir.path()).unwrap();
    assert!(bare.embed_project(q.dir.path(), &mut |_| {}).unwrap().is_none());
}

#[test]
fn embeddinggemma_reads_queries_and_code_with_its_own_prompts_and_finds_the_file_the_words_miss() {
    let e = Embedder::load(&gemma_dir()).unwrap();
    assert_eq!((e.dims(), e.id().as_str()), (768, "embeddinggemma-300m-768d-128t"));
    let docs = e.embed_documents(&[FILES[0].1, FILES[1].1, FILES[2].1]).unwrap();
    for v in &docs {
        assert!((cosine(v, v) - 1.0).abs() < 1e-4, "not unit length");
    }
    // A text alone gets the vector it got among others (mistral.rs batches the requests).
    let alone = e.embed_documents(&[FILES[1].1]).unwrap().remove(0);
    assert!(cosine(&alone, &docs[1]) > 0.999, "{}", cosine(&alone, &docs[1]));
    let q = e.embed_query(QUESTION).unwrap();
    let scores: Vec<f32> = docs.iter().map(|d| cosine(&q, d)).collect();
    assert!(scores[0] > scores[1] + 0.05 && scores[0] > scores[2] + 0.05, "backoff, render, config: {scores:?}");
    // The query prompt is read: the same words embedded as a document are another vector.
    let as_document = e.embed_documents(&[QUESTION]).unwrap().remove(0);
    assert!(cosine(&q, &as_document) < 0.99, "{}", cosine(&q, &as_document));

    let p = Project::new();
    let index = p.index();
    let mut store = VectorStore::open(&index.vectors_dir(), &e.id(), e.dims()).unwrap();
    let s = index.embed_chunks(&e, &mut store, &mut |_| {}, &CancellationToken::new()).unwrap();
    assert_eq!(s.chunks_embedded, 3);
    let table = index.semantic_table(&store).unwrap();
    let found = index.search_by(QUESTION, &SearchOptions::default(), SearchMode::Semantic, Some((&table, &q))).unwrap();
    assert_eq!(found.files[0].path, "src/backoff.rs", "{:?}", found.files);
}

#[test]
fn an_embeddinggemma_folder_with_broken_weights_is_a_clear_error() {
    let broken = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(gemma_dir()).unwrap().flatten() {
        let name = entry.file_name();
        if entry.path().is_file() && name != "model.safetensors" {
            std::fs::copy(entry.path(), broken.path().join(&name)).unwrap();
        } else if entry.path().is_dir() {
            std::os::unix::fs::symlink(entry.path(), broken.path().join(&name)).unwrap();
        }
    }
    let mut weights = std::fs::File::open(gemma_dir().join("model.safetensors")).unwrap();
    let mut head = vec![0u8; 64 << 20];
    std::io::Read::read_exact(&mut weights, &mut head).unwrap();
    std::fs::write(broken.path().join("model.safetensors"), &head).unwrap();
    let e = Embedder::load(broken.path()).unwrap_err();
    assert!(matches!(e, Error::EmbeddingModel { .. }), "{e:?}");
    assert!(e.to_string().contains("search stays lexical"), "{e}");

    // A model family embedding does not run.
    std::fs::write(broken.path().join("config.json"), r#"{"model_type": "t5", "max_position_embeddings": 512}"#).unwrap();
    let e = Embedder::load(broken.path()).unwrap_err();
    assert!(e.to_string().contains("it is a t5 model"), "{e}");
}

#[test]
fn choosing_the_other_embedder_is_kept_and_a_run_in_flight_goes_on_with_it() {
    use perimeter_engine::session::{Overrides, Session};
    let p = Project::new();
    // More chunks than one batch, so the choice can change between batches.
    for i in 0..12 {
        p.write(&format!("src/part{i}.rs"), &format!("/// Part {i} of the report.\npub fn part_{i}() -> u32 {{ {i} }}\n"));
    }
    let data = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(data.path().join("models")).unwrap();
    std::os::unix::fs::symlink(model_dir(), data.path().join("models/all-minilm-l6-v2")).unwrap();
    let session = Session::at(data.path(), Overrides::default()).unwrap();
    let choices = session.embedders();
    let ids: Vec<(&str, bool, bool)> = choices.iter().map(|e| (e.id.as_str(), e.installed, e.selected)).collect();
    assert_eq!(ids, [("all-minilm-l6-v2", true, true), ("embeddinggemma-300m", false, false)]);
    // Not installed, or not a model Perimeter knows: a clear error, the choice unchanged.
    let e = session.choose_embedder("embeddinggemma-300m").unwrap_err();
    assert!(matches!(e, Error::EmbeddingModel { .. }), "{e:?}");
    let e = session.choose_embedder("bge-small").unwrap_err();
    assert!(e.to_string().contains("all-minilm-l6-v2, embeddinggemma-300m"), "{e}");
    assert!(session.embedders()[0].selected);

    std::os::unix::fs::symlink(gemma_dir(), data.path().join("models/embeddinggemma-300m")).unwrap();
    let (_, index) = session.add_project(p.dir.path()).unwrap();
    session.index_project(p.dir.path(), &mut |_| {}).unwrap();
    // The user switches models while the first batch of MiniLM vectors is being stored.
    let mut switched = false;
    let s = session
        .embed_project(p.dir.path(), &mut |progress| {
            if progress.chunks_done > 0 && !switched {
                switched = true;
                session.choose_embedder("embeddinggemma-300m").unwrap();
            }
        })
        .unwrap()
        .unwrap();
    assert!(switched && !s.cancelled);
    assert!(session.embedders()[1].selected);
    let vectors = |model: &str, dims: usize| VectorStore::open(&index.vectors_dir(), model, dims).unwrap().len();
    assert_eq!(vectors("embeddinggemma-300m-768d-128t", 768), 15, "every chunk embedded by the new model");
    assert_eq!(vectors("all-minilm-l6-v2-384d-128t", 384), 8, "only the first batch by the old one");
    assert_eq!(index.retrieve(QUESTION, &SearchOptions::default()).unwrap().files[0].path, "src/backoff.rs");

    // The next start uses the chosen one.
    let again = Session::at(data.path(), Overrides::default()).unwrap();
    assert_eq!(again.embedder().unwrap().id(), "embeddinggemma-300m-768d-128t");
}
