//! `perimeter ask --project` with the real development model: grounded answers, the recorded
//! context, conversations that persist.

use crate::util::*;

/// The prompt stays small so the 135M model answers in seconds on two CPU threads.
const SMALL: [&str; 6] = ["--max-tokens", "24", "--context-tokens", "1024", "--excerpts", "4"];

#[test]
fn the_recorded_context_holds_the_chunk_with_the_answer_and_the_conversation_persists() {
    let sb = Sandbox::new();
    sb.import_dev_model();
    let shop = fixture_project(&sb, "shop");
    let out = sb
        .cmd()
        .args(["ask", "--json", "--project"])
        .arg(&shop)
        .args(SMALL)
        .arg("What is the sales tax rate?")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let events = json_lines(&out.stdout);
    let done = events.last().unwrap();
    assert_eq!(done["event"], "done", "{done}");
    let included = done["context"]["included"].as_array().unwrap();
    // SALES_TAX_RATE is on line 4 of shop/pricing.py: the first excerpt must hold it.
    let first = &included[0];
    assert_eq!(first["path"], "shop/pricing.py", "{done}");
    assert!(first["start_line"].as_u64().unwrap() <= 4 && first["end_line"].as_u64().unwrap() >= 4);
    assert!(first["tokens"].as_u64().unwrap() > 10);
    let prompt_tokens = done["context"]["prompt_tokens"].as_u64().unwrap();
    assert!(prompt_tokens <= 1024 && prompt_tokens == done["usage"]["prompt_tokens"].as_u64().unwrap(), "{done}");
    let id = done["conversation"].as_str().unwrap().to_string();

    // The conversation is on disk, and a follow-up continues it with the first exchange.
    let list = sb.cmd().args(["conversations", "--json", "--project"]).arg(&shop).output().unwrap();
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(list[0]["title"], "What is the sales tax rate?");
    // A window with room to repeat the first turn as it was sent: the follow-up's prompt then
    // extends the first one (whose computation a loaded model reuses).
    let out = sb
        .cmd()
        .args(["ask", "--json", "--continue", "--project"])
        .arg(&shop)
        .args(["--max-tokens", "24", "--context-tokens", "2048", "--excerpts", "4"])
        .arg("And where is it applied?")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let done = json_lines(&out.stdout).pop().unwrap();
    assert_eq!(done["conversation"], id.as_str());
    assert_eq!(done["context"]["exchanges_included"], 1, "{done}");
    assert_eq!(done["context"]["earlier_turns_verbatim"], true, "{done}");
    let shown = sb.cmd().args(["conversations", "--json", "--project"]).arg(&shop).args(["--show", &id]).output().unwrap();
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown["turns"].as_array().unwrap().len(), 2);
    let sent = shown["turns"][0]["sent"].as_str().unwrap();
    assert!(sent.contains("shop/pricing.py:") && sent.ends_with("Question: What is the sales tax rate?"), "{sent}");

    let deleted = sb.cmd().args(["conversations", "--project"]).arg(&shop).args(["--delete", &id]).output().unwrap();
    assert!(deleted.status.success());
    let list = sb.cmd().args(["conversations", "--json", "--project"]).arg(&shop).output().unwrap();
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&list.stdout).unwrap(), serde_json::json!([]));
}

#[test]
fn show_context_lists_the_excerpts_and_what_was_left_out() {
    let sb = Sandbox::new();
    sb.import_dev_model();
    let shop = fixture_project(&sb, "shop");
    // A window this small cannot hold every excerpt: the least relevant are left out, and said so.
    let out = sb
        .cmd()
        .args(["ask", "--show-context", "--project"])
        .arg(&shop)
        .args(["--max-tokens", "16", "--context-tokens", "420"])
        .arg("How does the cart compute its total with tax?")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("context: ") && stdout.contains("of 420 tokens"), "{stdout}");
    assert!(stdout.contains("shop/cart.py:"), "{stdout}");
    assert!(stdout.contains("left out: "), "{stdout}");
    assert!(stderr.contains("note: left out the"), "{stderr}");
}
