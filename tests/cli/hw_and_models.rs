use crate::util::*;

#[test]
fn hw_reports_the_machine_every_catalog_model_and_a_pick() {
    let sb = Sandbox::new();
    let out = sb.cmd().args(["hw", "--json"]).output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let hw = &v["hardware"];
    assert!(hw["ram_total_bytes"].as_u64().unwrap() > 0);
    assert!(hw["cpu"]["logical_cores"].as_u64().unwrap() >= 1);
    assert_eq!(hw["cpu"]["simd_level"].as_str().unwrap().starts_with("x86-64-v"), cfg!(target_arch = "x86_64"));
    let models = v["assessment"]["models"].as_array().unwrap();
    assert!(models.len() >= 9);
    for m in models {
        assert!(["fits_gpu", "fits_cpu", "too_large"].contains(&m["class"].as_str().unwrap()), "{m}");
    }
    // This machine (24 GiB, no GPU) gets a CPU pick, chosen by its expected speed.
    let pick = &v["assessment"]["pick"];
    assert!(pick["id"].as_str().unwrap().starts_with("qwen2.5-coder"));
    assert_eq!(pick["placement"], "fits_cpu");
    assert!(pick["reason"].as_str().unwrap().contains("tokens/s expected"), "{pick}");
    // A CPU-only build promises no GPU, whatever card is present.
    assert!(models.iter().all(|m| m["class"] != "fits_gpu"));
    for m in models.iter().filter(|m| m["class"] == "fits_cpu") {
        assert!(m["cpu_tokens_per_s"].as_f64().unwrap() > 0.0, "{m}");
    }
    // The memory bandwidth was measured and cached in the data folder.
    let bandwidth = hw["memory_read_bytes_per_s"].as_u64().unwrap();
    assert!(bandwidth > 100_000_000, "{bandwidth}");
    assert!(sb.data().join("memory-bandwidth.json").is_file());

    let table = sb.cmd().arg("hw").output().unwrap();
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("Recommended:") && text.contains("← recommended"), "{text}");
    assert!(text.contains("tok/s") && text.contains("GB/s"), "{text}");
}

#[test]
fn import_list_and_verify_a_model() {
    let sb = Sandbox::new();
    let out = sb.cmd().args(["models", "import", "--json"]).arg(dev_model()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(m["id"], "smollm2-135m-instruct-q4_1", "recognised as the catalog model by name and sha256");
    assert_eq!(m["info"]["architecture"], "llama");
    assert_eq!(m["info"]["quantization"], "Q4_1");
    assert_eq!(m["info"]["context_length"], 8192);
    let copied = sb.data().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert_eq!(std::fs::metadata(&copied).unwrap().len(), std::fs::metadata(dev_model()).unwrap().len());
    assert!(!sb.data().join("models/SmolLM2-135M-Instruct.Q4_1.gguf.part").exists());

    let list = sb.cmd().args(["models", "list", "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(v["installed"].as_array().unwrap().len(), 1);

    let verify = sb.cmd().args(["models", "verify"]).output().unwrap();
    assert!(verify.status.success());
    assert!(String::from_utf8_lossy(&verify.stdout).contains("ok      smollm2-135m-instruct-q4_1"));

    // A changed file fails verification with a reason.
    std::fs::write(&copied, b"GGUF").unwrap();
    let verify = sb.cmd().args(["models", "verify"]).output().unwrap();
    assert!(!verify.status.success());
    assert!(String::from_utf8_lossy(&verify.stdout).contains("FAILED"));
}

#[test]
fn import_refuses_unsupported_and_broken_files_and_installs_nothing() {
    let sb = Sandbox::new();
    let out = sb.cmd().args(["models", "import"]).arg(model_file("gemma-3-270m-q4_k_m.gguf")).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`gemma3`") && err.contains("supported architectures"), "{err}");

    let junk = sb.dir.path().join("notes.gguf");
    std::fs::write(&junk, "just text").unwrap();
    let out = sb.cmd().args(["models", "import"]).arg(&junk).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a GGUF model file"));

    let list = sb.cmd().args(["models", "list", "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert!(v["installed"].as_array().unwrap().is_empty());
    assert!(std::fs::read_dir(sb.data().join("models")).map_or(true, |d| d.count() == 0));
}

#[test]
fn removing_a_model_deletes_a_copy_but_never_a_linked_file() {
    let sb = Sandbox::new();
    // A copy of the dev model outside the store, imported twice: by link, then (as another
    // file name) by copy.
    let mine = sb.dir.path().join("mine.gguf");
    std::fs::copy(dev_model(), &mine).unwrap();
    let run = |args: &[&str]| sb.cmd().args(args).output().unwrap();
    assert!(run(&["models", "import", "--link", mine.to_str().unwrap()]).status.success());
    // The file is the catalog's dev model (recognised by its sha256), so it goes by that id.
    let id = "smollm2-135m-instruct-q4_1";
    let out = run(&["models", "rm", id]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("its file stays at"));
    assert!(mine.is_file(), "a linked file is the user's");

    assert!(run(&["models", "import", mine.to_str().unwrap()]).status.success());
    let copy = sb.data().join("models/mine.gguf");
    assert!(copy.is_file());
    let out = run(&["models", "rm", id]);
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("deleted"));
    assert!(!copy.exists() && mine.is_file(), "the copy goes, the original stays");
    let list: serde_json::Value = serde_json::from_slice(&run(&["models", "list", "--json"]).stdout).unwrap();
    assert_eq!(list["installed"], serde_json::json!([]), "{list}");

    let unknown = run(&["models", "rm", id]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no model named"));
}

#[test]
fn a_moved_import_takes_the_file_and_a_refused_one_gives_it_back() {
    let sb = Sandbox::new();
    let elsewhere = sb.dir.path().join("downloads");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let name = dev_model().file_name().unwrap().to_owned();

    // A copy whose bytes differ from the catalog's sha256: refused, and the file is where it was.
    let mut bytes = std::fs::read(dev_model()).unwrap();
    let broken = elsewhere.join(&name);
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&broken, &bytes).unwrap();
    let out = sb.cmd().args(["models", "import", "--move"]).arg(&broken).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("the catalog expects"), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(&broken).unwrap(), bytes, "the refused file was not given back intact");
    assert!(!sb.data().join("models").join(&name).exists());

    // The real file: moved into the model folder.
    std::fs::copy(dev_model(), &broken).unwrap();
    let out = sb.cmd().args(["models", "import", "--move"]).arg(&broken).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!broken.exists(), "the moved file is still at its old place");
    assert!(sb.data().join("models").join(&name).is_file());
    assert!(sb.cmd().args(["models", "verify"]).output().unwrap().status.success());
}

#[test]
fn the_model_chosen_with_models_use_answers_until_changed_and_a_flag_wins_for_one_run() {
    let sb = Sandbox::new();
    sb.import_dev_model();
    let run = |args: &[&str]| sb.cmd().args(args).output().unwrap();
    let out = run(&["models", "import", "--link", qwen_05b().to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let project = fixture_project(&sb, "shop");
    // The model that answered, from `ask --json`'s done event.
    let answered_by = |extra: &[&str]| -> String {
        let mut c = sb.cmd();
        c.args(["ask", "--project", project.to_str().unwrap(), "--json", "--max-tokens", "1", "--excerpts", "1"]);
        let out = c.args(extra).arg("Where is SALES_TAX_RATE?").output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let done = json_lines(&out.stdout).pop().unwrap();
        done["model"].as_str().unwrap().to_lowercase()
    };
    assert!(answered_by(&[]).contains("qwen"), "no choice: the largest installed");

    let out = run(&["models", "use", "smollm2-135m-instruct-q4_1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("SmolLM2-135M-Instruct.Q4_1.gguf"));
    let list = String::from_utf8_lossy(&run(&["models", "list"]).stdout).into_owned();
    let marked: Vec<&str> = list.lines().filter(|l| l.contains("in use")).collect();
    assert!(marked.len() == 1 && marked[0].contains("smollm2-135m-instruct-q4_1"), "{list}");
    assert!(answered_by(&[]).contains("smollm2"), "the choice is kept for the next command");
    assert!(answered_by(&["--model", qwen_05b().to_str().unwrap()]).contains("qwen"), "--model wins for its run");
    assert!(answered_by(&[]).contains("smollm2"), "and only for its run");

    let refused = run(&["models", "use", "no-such-model"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(answered_by(&[]).contains("smollm2"), "a refused choice changes nothing");
    assert!(run(&["models", "use", "--largest"]).status.success());
    assert!(answered_by(&[]).contains("qwen"));
}
