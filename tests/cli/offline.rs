//! The privacy promise, proven on the whole CLI flow: index a project, search it, ask the real
//! model about it, propose (model and recorded answer), apply and undo an edit —
//! 1. inside an empty network namespace (`unshare -rn`: no interface but a downed loopback),
//!    where any attempt to reach the network fails, and the flow must still pass; and
//! 2. under `strace -f -e trace=network`, which must show no AF_INET/AF_INET6 socket at all
//!    and no connect/sendto to a non-local address.

use std::path::Path;
use std::process::{Command, Output};

use crate::util::*;

/// `cmd` run through `prefix` (e.g. `unshare -rn`), with the same arguments and environment.
fn wrapped(cmd: &Command, prefix: &[&str]) -> Command {
    let mut w = Command::new(prefix[0]);
    w.args(&prefix[1..]).arg(cmd.get_program()).args(cmd.get_args());
    copy_env(cmd, &mut w);
    w
}

fn check(out: &Output, what: &str, codes: &[i32]) {
    assert!(
        out.status.code().is_some_and(|c| codes.contains(&c)),
        "{what}: exit {:?}\n{}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs the whole flow, each command through `prefix`; `each` sees every command's name
/// after it ran (for the strace check).
fn whole_flow(prefix: &[&str], mut each: impl FnMut(&str)) {
    let sb = Sandbox::new();
    let shop = fixture_project(&sb, "shop");
    let shop_s = shop.to_str().unwrap();
    let model = dev_model();
    let answer = edit_fixture("whole-file-well-formed.txt");
    let steps: Vec<(&str, Vec<&str>, &[i32])> = vec![
        ("hw", vec!["hw"], &[0]),
        ("import", vec!["models", "import", "--link", model.to_str().unwrap()], &[0]),
        ("add", vec!["projects", "add", shop_s], &[0]),
        ("index", vec!["index", shop_s], &[0]),
        ("search", vec!["search", shop_s, "sales tax"], &[0]),
        ("ask", vec!["ask", "--project", shop_s, "--max-tokens", "24", "What is the sales tax rate?"], &[0]),
        ("edit", vec!["edit", "--project", shop_s, "--max-tokens", "48", "--files", "1", "Set SALES_TAX_RATE to 0.09"], &[0, 3]),
        ("edit-recorded", vec!["edit", "--project", shop_s, "--answer-file", answer.to_str().unwrap(), "Raise the tax rate to 9%"], &[0]),
        ("apply", vec!["apply", "--project", shop_s, "--hunks", "1"], &[0]),
        ("undo", vec!["undo", "--project", shop_s], &[0]),
    ];
    let original = std::fs::read(shop.join("shop/pricing.py")).unwrap();
    for (name, args, codes) in steps {
        let mut c = sb.cmd();
        c.args(&args);
        let out = wrapped(&c, prefix).output().unwrap();
        check(&out, name, codes);
        if name == "apply" {
            let now = std::fs::read_to_string(shop.join("shop/pricing.py")).unwrap();
            assert!(now.contains("SALES_TAX_RATE = 0.09"), "apply did not write: {now}");
        }
        each(name);
    }
    assert_eq!(std::fs::read(shop.join("shop/pricing.py")).unwrap(), original, "undo restores the file");
    let status = sb.cmd().args(["network", "status"]).output().unwrap();
    check(&status, "network status", &[0]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.starts_with("Offline · nothing has left this machine"), "{text}");
}

#[test]
fn the_network_policy_is_offline_by_default_and_capped_by_the_administrator() {
    let sb = Sandbox::new();
    let run = |args: &[&str], admin: Option<&Path>| {
        let mut c = sb.cmd();
        c.arg("network").args(args);
        if let Some(a) = admin {
            c.env("PERIMETER_ADMIN_POLICY", a);
        }
        c.output().unwrap()
    };
    let status = run(&["status", "--json"], None);
    check(&status, "status", &[0]);
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(v["mode"], "offline");
    assert_eq!(v["connections"], 0);

    check(&run(&["allow", "llm.corp.example"], None), "allow", &[0]);
    let v: serde_json::Value = serde_json::from_slice(&run(&["status", "--json"], None).stdout).unwrap();
    assert_eq!(v["mode"], "allowlist");
    assert_eq!(v["allowed_hosts"][0], "llm.corp.example");

    // An administrator file keeps the machine offline whatever the user set, and says so.
    let admin = sb.dir.path().join("policy.toml");
    std::fs::write(&admin, "mode = \"offline\"\n").unwrap();
    let text = String::from_utf8_lossy(&run(&["status"], Some(&admin)).stdout).into_owned();
    assert!(text.starts_with("Offline") && text.contains("policy.toml"), "{text}");
    let refused = run(&["allow", "other.example"], Some(&admin));
    check(&refused, "allow under an offline administrator policy", &[1]);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("keeps this machine offline"));

    // A broken administrator file is an error, never "no policy".
    std::fs::write(&admin, "mode = \"open\"\n").unwrap();
    let broken = run(&["status"], Some(&admin));
    check(&broken, "status with a broken administrator file", &[1]);
    assert!(String::from_utf8_lossy(&broken.stderr).contains("not a valid policy file"));

    check(&run(&["offline"], None), "offline", &[0]);
    let log = run(&["log"], None);
    assert!(String::from_utf8_lossy(&log.stdout).contains("nothing has left this machine"));
}

#[test]
fn the_whole_flow_works_with_no_network_at_all() {
    // The namespace really has no way out: this is what the flow runs in.
    let probe = Command::new("unshare").args(["-rn", "cat", "/proc/net/dev"]).output().unwrap();
    check(&probe, "unshare -rn (util-linux; needs user namespaces)", &[0]);
    let interfaces: Vec<String> = String::from_utf8_lossy(&probe.stdout)
        .lines()
        .skip(2)
        .map(|l| l.split(':').next().unwrap().trim().to_string())
        .collect();
    assert_eq!(interfaces, ["lo"], "the namespace should hold only a (downed) loopback");
    whole_flow(&["unshare", "-rn"], |_| {});
}

/// The network system calls in an strace log that break the offline promise.
fn violations(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| {
            // "socket(AF_INET" also matches AF_INET6.
            let inet_socket = l.contains("socket(AF_INET");
            let remote = (l.contains("connect(") || l.contains("sendto(") || l.contains("sendmsg("))
                && (l.contains("sa_family=AF_INET") && !l.contains("127.0.0.1")
                    || l.contains("sa_family=AF_INET6") && !l.contains("\"::1\""));
            inet_socket || remote
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn the_whole_flow_opens_no_internet_socket() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("strace.log");
    let log_s = log.to_str().unwrap().to_string();
    let mut seen = Vec::new();
    whole_flow(&["strace", "-f", "-qq", "-e", "trace=network", "-o", &log_s], |step| {
        let text = std::fs::read_to_string(Path::new(&log_s)).unwrap_or_default();
        let bad = violations(&text);
        assert!(bad.is_empty(), "`{step}` made network calls in offline mode:\n{}", bad.join("\n"));
        seen.push(step.to_string());
    });
    assert_eq!(seen.len(), 10);
}

#[test]
fn the_strace_check_catches_an_internet_socket() {
    // The check above is only worth something if it fails on a real connection attempt.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("strace.log");
    let out = Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=network", "-o"])
        .arg(&log)
        .args(["python3", "-c", "import socket; s = socket.socket(); s.settimeout(0.2)\ntry: s.connect(('192.0.2.1', 9))\nexcept OSError: pass"])
        .output()
        .unwrap();
    check(&out, "strace python3", &[0]);
    let bad = violations(&std::fs::read_to_string(&log).unwrap());
    assert!(bad.iter().any(|l| l.contains("socket(AF_INET")), "{bad:?}");
    assert!(bad.iter().any(|l| l.contains("connect(") && l.contains("192.0.2.1")), "{bad:?}");
}
