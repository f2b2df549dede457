//! The product's path with a real coding model, Qwen2.5-Coder-0.5B-Instruct Q4_K_M
//! (`scripts/fetch-models.sh --real`), decoding greedily: a grounded answer that cites the
//! right file, and a usable whole-file edit. The development model cannot do either.

use crate::util::*;

/// Imports the real model (linked, not copied) into the sandbox.
fn import_qwen(sb: &Sandbox) {
    let out = sb.cmd().args(["models", "import", "--link"]).arg(qwen_05b()).output().unwrap();
    assert!(out.status.success(), "import failed: {}", String::from_utf8_lossy(&out.stderr));
    let list = sb.cmd().args(["models", "list", "--json"]).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(list.contains("qwen2.5-coder-0.5b-instruct-q4_k_m"), "recognised as the catalog model: {list}");
}

#[test]
fn qwen_answers_a_grounded_question_and_cites_the_right_file() {
    let sb = Sandbox::new();
    import_qwen(&sb);
    let shop = fixture_project(&sb, "shop");
    let out = sb
        .cmd()
        .args(["ask", "--json", "--project"])
        .arg(&shop)
        .args(["--max-tokens", "96", "--context-tokens", "2048", "--excerpts", "3"])
        .arg("What is the sales tax rate, and which file defines it? Cite the file.")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let events = json_lines(&out.stdout);
    let answer: String = events.iter().filter(|e| e["event"] == "token").map(|e| e["text"].as_str().unwrap()).collect();
    let done = events.last().unwrap();
    assert_eq!(done["event"], "done", "{done}");
    assert!(answer.contains("0.0825") || answer.contains("8.25"), "the rate is in the answer: {answer}");
    let citations = done["citations"].as_array().unwrap();
    assert!(
        citations.iter().any(|c| c["path"] == "shop/pricing.py" && c["valid"] == true),
        "cites shop/pricing.py: {answer}\n{citations:?}"
    );
}

#[test]
fn qwen_writes_a_usable_whole_file_edit() {
    let sb = Sandbox::new();
    import_qwen(&sb);
    let shop = fixture_project(&sb, "shop");
    let original = std::fs::read_to_string(shop.join("shop/pricing.py")).unwrap();
    let out = sb
        .cmd()
        .args(["edit", "--json", "--apply", "--format", "whole-file", "--files", "1", "--project"])
        .arg(&shop)
        .arg("In shop/pricing.py, change SALES_TAX_RATE to 0.09")
        .output()
        .unwrap();
    let last = json_lines(&out.stdout).pop().unwrap();
    assert_eq!(out.status.code(), Some(0), "{last}\n{}", String::from_utf8_lossy(&out.stderr));
    let files = last["proposal"]["files"].as_array().unwrap();
    assert_eq!(files.len(), 1, "{last}");
    assert_eq!(files[0]["path"], "shop/pricing.py");
    assert!(files[0]["hold"].is_null(), "{last}");
    let edited = std::fs::read_to_string(shop.join("shop/pricing.py")).unwrap();
    assert!(edited.contains("SALES_TAX_RATE = 0.09"), "{edited}");
    // The rest of the file is still there: every function survived the rewrite.
    for def in ["def price_with_tax(subtotal):", "def apply_discount(subtotal, percent):"] {
        assert!(edited.contains(def), "{def} is gone:\n{edited}");
    }
    let undo = sb.cmd().args(["undo", "--project"]).arg(&shop).output().unwrap();
    assert!(undo.status.success());
    assert_eq!(std::fs::read_to_string(shop.join("shop/pricing.py")).unwrap(), original);
}
