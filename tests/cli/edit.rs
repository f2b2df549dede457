//! `perimeter edit`, `apply`, `undo`, `history`: with the real development model (which must
//! end in a proposal or a clear "no usable edit", never a crash) and with recorded answers.

use std::process::Output;

use crate::util::*;

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_follow_up_shows_the_model_the_earlier_request_and_answer() {
    let sb = Sandbox::new();
    sb.import_dev_model();
    let shop = fixture_project(&sb, "shop");
    let edit = |extra: &[&str], instruction: &str| {
        let out = sb
            .cmd()
            .args(["edit", "--json", "--project"])
            .arg(&shop)
            .args(["--max-tokens", "40", "--context-tokens", "1024", "--files", "1"])
            .args(extra)
            .arg(instruction)
            .output()
            .unwrap();
        json_lines(&out.stdout).pop().unwrap_or_else(|| panic!("{}", String::from_utf8_lossy(&out.stderr)))
    };
    let refused = edit(&["--follow-up"], "The tests still fail.");
    assert_eq!(refused["event"], "error", "nothing to follow up on yet: {refused}");
    assert!(refused["message"].as_str().unwrap().contains("there is no proposal in this project yet"), "{refused}");

    let first = edit(&[], "In shop/pricing.py, change SALES_TAX_RATE to 0.09");
    assert_eq!(first["proposal"]["context"]["exchanges_included"], 0, "{first}");
    let second = edit(&["--follow-up"], "The tests still fail: the rate in shop/pricing.py must be 0.09.");
    assert_eq!(second["proposal"]["context"]["exchanges_included"], 1, "the first request and answer went in: {second}");
}

#[test]
fn the_dev_model_gives_a_proposal_or_a_clear_no_usable_edit() {
    let sb = Sandbox::new();
    sb.import_dev_model();
    let shop = fixture_project(&sb, "shop");
    let before = std::fs::read_to_string(shop.join("shop/pricing.py")).unwrap();
    let out = sb
        .cmd()
        .args(["edit", "--json", "--project"])
        .arg(&shop)
        .args(["--max-tokens", "120", "--context-tokens", "1024", "--files", "1"])
        .arg("In shop/pricing.py, change SALES_TAX_RATE to 0.09")
        .output()
        .unwrap();
    let events = json_lines(&out.stdout);
    let last = events.last().unwrap();
    assert_eq!(last["event"], "proposal", "{last}");
    let proposal = &last["proposal"];
    // The file the instruction names is what the model was shown.
    assert_eq!(proposal["context"]["included"][0]["path"], "shop/pricing.py", "{proposal}");
    let held = |p: &serde_json::Value| p["files"].as_array().unwrap().iter().any(|f| !f["hold"].is_null());
    match out.status.code() {
        Some(0) => assert!(!proposal["files"].as_array().unwrap().is_empty() && !held(proposal)),
        Some(3) => assert!(proposal["files"].as_array().unwrap().is_empty()),
        Some(5) => assert!(held(proposal)),
        other => panic!("exit {other:?}: {}", String::from_utf8_lossy(&out.stderr)),
    }
    assert_eq!(std::fs::read_to_string(shop.join("shop/pricing.py")).unwrap(), before, "edit without --apply writes nothing");

    let text = sb
        .cmd()
        .args(["edit", "--project"])
        .arg(&shop)
        .args(["--max-tokens", "60", "--context-tokens", "1024", "--files", "1"])
        .arg("Rename Cart.remove to Cart.discard in shop/cart.py")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&text.stderr);
    assert!(matches!(text.status.code(), Some(0 | 3 | 5)), "{stderr}");
    if text.status.code() == Some(3) {
        assert!(stderr.contains("the model's answer contained no usable edit"), "{stderr}");
    }
}

#[test]
fn recorded_answer_diff_partial_apply_history_and_undo() {
    let sb = Sandbox::new();
    let shop = fixture_project(&sb, "shop");
    let original = std::fs::read(shop.join("shop/pricing.py")).unwrap();
    let out = sb
        .cmd()
        .args(["edit", "--project"])
        .arg(&shop)
        .arg("--answer-file")
        .arg(edit_fixture("whole-file-well-formed.txt"))
        .args(["--apply-hunks", "1,3", "change the tax rate"])
        .output()
        .unwrap();
    let stdout = ok(&out);
    assert!(stdout.contains("--- a/shop/pricing.py\n+++ b/shop/pricing.py\n"), "{stdout}");
    assert!(stdout.contains("[hunk 1]") && stdout.contains("[hunk 3]"), "{stdout}");
    assert!(stdout.contains("-SALES_TAX_RATE = 0.0825\n+SALES_TAX_RATE = 0.09"), "{stdout}");
    let pricing = std::fs::read_to_string(shop.join("shop/pricing.py")).unwrap();
    assert!(pricing.contains("SALES_TAX_RATE = 0.09"));
    assert!(!pricing.contains("round(subtotal * (100 - percent) / 100, 2)"), "hunk 2 was not chosen");
    assert!(std::fs::read_to_string(shop.join("tests/test_cart.py")).unwrap().contains("2.18"));

    let history = ok(&sb.cmd().args(["history", "--json", "--project"]).arg(&shop).output().unwrap());
    let history: serde_json::Value = serde_json::from_str(&history).unwrap();
    assert_eq!(history[0]["files"].as_array().unwrap().len(), 2);
    assert_eq!(history[0]["instruction"], "change the tax rate");

    let undo = ok(&sb.cmd().args(["undo", "--project"]).arg(&shop).output().unwrap());
    assert!(undo.contains("restored shop/pricing.py"), "{undo}");
    assert_eq!(std::fs::read(shop.join("shop/pricing.py")).unwrap(), original);
    let again = sb.cmd().args(["undo", "--project"]).arg(&shop).output().unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("no applied change to undo"));
}

#[test]
fn a_go_file_gets_the_import_its_code_uses_with_a_note() {
    let sb = Sandbox::new();
    let shop = fixture_project(&sb, "shop");
    let out = sb
        .cmd()
        .args(["edit", "--apply", "--project"])
        .arg(&shop)
        .arg("--answer-file")
        .arg(edit_fixture("go-missing-import.txt"))
        .arg("Add tools/receipt/main.go, a Go tool that prints the receipt total")
        .output()
        .unwrap();
    let stdout = ok(&out);
    assert!(stdout.contains("note: Go imports: added the import of \"fmt\""), "{stdout}");
    assert!(stdout.contains("+import \"fmt\""), "{stdout}");
    let written = std::fs::read_to_string(shop.join("tools/receipt/main.go")).unwrap();
    assert!(written.starts_with("package main\n\nimport \"fmt\"\n\nfunc main() {"), "{written}");
}

#[test]
fn apply_later_refuses_a_file_changed_since() {
    let sb = Sandbox::new();
    let shop = fixture_project(&sb, "shop");
    let out = sb
        .cmd()
        .args(["edit", "--json", "--format", "search-replace", "--project"])
        .arg(&shop)
        .arg("--answer-file")
        .arg(edit_fixture("search-replace-well-formed.txt"))
        .arg("make remove strict, raising errors from a new file shop/errors.py")
        .output()
        .unwrap();
    let proposal = &json_lines(&ok(&out).into_bytes())[0]["proposal"];
    let id = proposal["id"].as_str().unwrap();
    std::fs::write(shop.join("shop/cart.py"), "# rewritten meanwhile\n").unwrap();
    let apply = sb.cmd().args(["apply", "--project"]).arg(&shop).arg(id).output().unwrap();
    assert!(!apply.status.success());
    assert!(String::from_utf8_lossy(&apply.stderr).contains("nothing was written: shop/cart.py changed on disk"));
    assert!(!shop.join("shop/errors.py").exists());
    // The new file alone still applies.
    ok(&sb.cmd().args(["apply", "--project"]).arg(&shop).args([id, "--files", "shop/errors.py"]).output().unwrap());
    assert!(shop.join("shop/errors.py").exists());
}

#[test]
fn unusable_answer_exits_3_with_the_reason_and_the_closest_lines() {
    let sb = Sandbox::new();
    let shop = fixture_project(&sb, "shop");
    let out = sb
        .cmd()
        .args(["edit", "--format", "search-replace", "--project"])
        .arg(&shop)
        .arg("--answer-file")
        .arg(edit_fixture("search-replace-drift.txt"))
        .arg("x")
        .output()
        .unwrap();
    // One block of the two is usable, so this is a proposal; its problem is still shown.
    let stdout = ok(&out);
    assert!(stdout.contains("block 2 (shop/pricing.py): the block's SEARCH text (1 line) is not in shop/pricing.py"), "{stdout}");
    assert!(stdout.contains("closest lines, from line 4:\n  | SALES_TAX_RATE = 0.0825"), "{stdout}");

    let out = sb
        .cmd()
        .args(["edit", "--project"])
        .arg(&shop)
        .arg("--answer-file")
        .arg(edit_fixture("smollm2-135m-whole-file-no-path.txt"))
        .arg("x")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the model's answer contained no usable edit"));
}

/// The case a real model produced (Qwen2.5-Coder-0.5B): asked to fix a file, it deleted it.
/// The deletion is held: not applied, exit 5, the reason in words; `--confirm` applies it.
#[test]
fn a_deletion_the_instruction_did_not_ask_for_is_held_until_confirmed() {
    let sb = Sandbox::new();
    let project = fixture_project(&sb, "square-root");
    let before = std::fs::read(project.join("square_root.py")).unwrap();
    let instruction = "The tests are correct. Fix the code in square_root.py to resolve the errors.";
    let out = sb
        .cmd()
        .args(["edit", "--apply", "--project"])
        .arg(&project)
        .arg("--answer-file")
        .arg(edit_fixture("qwen2.5-coder-0.5b-delete-instead-of-fix.txt"))
        .arg(instruction)
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(5), "{stdout}\n{stderr}");
    assert!(stdout.contains("HELD: this deletes square_root.py, and the instruction does not ask for that file to be deleted"), "{stdout}");
    assert!(stderr.contains("square_root.py is held for your confirmation") && stderr.contains("was not applied"), "{stderr}");
    assert_eq!(std::fs::read(project.join("square_root.py")).unwrap(), before, "nothing deleted");
    let history = sb.cmd().args(["history", "--json", "--project"]).arg(&project).output().unwrap();
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&history.stdout).unwrap(), serde_json::json!([]));

    // `apply` alone refuses too; with --confirm the user's explicit choice is carried out.
    let apply = sb.cmd().args(["apply", "--json", "--project"]).arg(&project).output().unwrap();
    assert_eq!(apply.status.code(), Some(5));
    let v: serde_json::Value = serde_json::from_slice(&apply.stdout).unwrap();
    assert_eq!((v["applied"].is_null(), &v["held"]), (true, &serde_json::json!(["square_root.py"])));
    assert!(project.join("square_root.py").exists());
    ok(&sb.cmd().args(["apply", "--confirm", "--project"]).arg(&project).output().unwrap());
    assert!(!project.join("square_root.py").exists());
    ok(&sb.cmd().args(["undo", "--project"]).arg(&project).output().unwrap());
    assert_eq!(std::fs::read(project.join("square_root.py")).unwrap(), before);
}
