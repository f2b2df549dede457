//! The network policy: the user's settings (`<data>/network.toml`) capped by any
//! administrator policy file (`/etc/perimeter/policy.toml` on Linux,
//! `/Library/Application Support/Perimeter/policy.toml` on macOS,
//! `%ProgramData%\Perimeter\policy.toml` on Windows). Both have the same form:
//!
//! ```toml
//! mode = "allowlist"            # or "offline" (the default)
//! allow = ["llm.corp.example", "artifacts.corp.example:8443", "*.models.corp.example"]
//! mirrors = ["https://artifacts.corp.example:8443/models/"]  # where model files can be downloaded
//! run_commands = false          # the agent may not run commands (default: it may, as approved)
//! ```
//!
//! A mirror is a base URL: a catalog model's file is fetched from `<mirror>/<file name>`, before
//! the catalog's own sources. Listing a mirror does not allow its host; `allow` still decides.
//!
//! The effective policy is the strictest of all files: `allowlist` only when every file says
//! so, and a host only when every file allows it. The user cannot loosen an administrator's file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{paths, Error, Result};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "lowercase")]
/// Whether any outbound connection may be opened.
pub enum Mode {
    /// No outbound connection at all.
    #[default]
    Offline,
    /// Connections to the listed hosts only.
    Allowlist,
}

/// One policy file, the user's or an administrator's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// Offline or allowlist.
    #[serde(default)]
    pub mode: Mode,
    /// Host rules the allowlist allows (`host`, `host:port`, `*.domain`).
    #[serde(default)]
    pub allow: Vec<String>,
    /// Download mirrors tried before a model's own sources.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<String>,
    /// `false` forbids the agent to run any command (an administrator's key; the user's file
    /// cannot turn it back on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_commands: Option<bool>,
}

/// A host a policy allows: `host`, `host:port`, or `*.domain` (any subdomain, not the domain itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRule {
    host: String,
    port: Option<u16>,
}

impl HostRule {
    /// Reads a host rule; an error says how to write one.
    pub fn parse(rule: &str) -> Result<HostRule> {
        let bad = |why: &str| Error::NetworkPolicy { reason: format!("`{rule}` is not a host rule: {why}") };
        let rule = rule.trim().to_ascii_lowercase();
        if rule.is_empty() || rule.contains('/') || rule.contains('@') || rule.contains(' ') {
            return Err(bad("write a host name, host:port or *.domain, without a scheme or path"));
        }
        let (host, port) = match split_port(&rule) {
            (h, Some(p)) => (h, Some(p.parse::<u16>().map_err(|_| bad("the port is not a number from 0 to 65535"))?)),
            (h, None) => (h, None),
        };
        if host.is_empty() || host == "*" || (host.contains('*') && !host.strip_prefix("*.").is_some_and(|d| !d.contains('*'))) {
            return Err(bad("a wildcard may only start a domain, as in *.corp.example"));
        }
        Ok(HostRule { host: host.trim_matches(['[', ']']).to_string(), port })
    }

    /// Whether every connection `other` allows is also allowed by this rule.
    pub fn covers(&self, other: &HostRule) -> bool {
        let port_ok = self.port.is_none() || self.port == other.port;
        let host_ok = match (self.host.strip_prefix("*."), other.host.strip_prefix("*.")) {
            (None, None) => self.host == other.host,
            (Some(mine), Some(theirs)) => theirs == mine || theirs.ends_with(&format!(".{mine}")),
            (Some(mine), None) => other.host.ends_with(&format!(".{mine}")),
            (None, Some(_)) => false,
        };
        port_ok && host_ok
    }

    /// Whether the rule allows `host:port`.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        let host = host.trim_matches(['[', ']']).to_ascii_lowercase();
        let host_ok = match self.host.strip_prefix("*.") {
            Some(domain) => host.ends_with(&format!(".{domain}")),
            None => host == self.host,
        };
        host_ok && self.port.is_none_or(|p| p == port)
    }
}

/// `host:port` → (host, Some(port)); IPv6 literals only with brackets (`[::1]:8080`).
fn split_port(s: &str) -> (&str, Option<&str>) {
    if let Some(rest) = s.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((h, tail)) => (h, tail.strip_prefix(':')),
            None => (s, None),
        };
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, Some(p)),
        _ => (s, None),
    }
}

/// Where administrators put the machine-wide policy on this OS.
pub fn system_policy_path() -> PathBuf {
    if cfg!(target_os = "windows") {
        let base = std::env::var_os("ProgramData").map_or_else(|| PathBuf::from(r"C:\ProgramData"), PathBuf::from);
        base.join("Perimeter").join("policy.toml")
    } else if cfg!(target_os = "macos") {
        PathBuf::from("/Library/Application Support/Perimeter/policy.toml")
    } else {
        PathBuf::from("/etc/perimeter/policy.toml")
    }
}

/// The user's settings and the administrator files that cap them.
#[derive(Debug, Clone)]
pub struct NetworkPolicy {
    user_path: PathBuf,
    user: PolicyFile,
    admin: Vec<(PathBuf, PolicyFile)>,
}

impl NetworkPolicy {
    /// The policy for this machine: `<data>/network.toml`, capped by the system policy file
    /// and by `PERIMETER_ADMIN_POLICY` when set (an extra administrator file: it can only
    /// make the policy stricter, which is why a variable may name it).
    pub fn default_location() -> Result<NetworkPolicy> {
        let (user, admin) = default_paths();
        NetworkPolicy::load(&user, &admin)
    }

    /// [`NetworkPolicy::change`] on the policy of [`NetworkPolicy::default_location`].
    pub fn change_default_location<T>(change: impl FnOnce(&mut NetworkPolicy) -> Result<T>) -> Result<(NetworkPolicy, T)> {
        let (user, admin) = default_paths();
        NetworkPolicy::change(&user, &admin, change)
    }

    /// Reads the policy afresh, applies `change` (e.g. [`NetworkPolicy::allow`]) and writes the
    /// user's file, holding an exclusive lock on `<user file>.lock` from the read to the write.
    /// The window's commands, the engine session and the CLI all change this file; without
    /// the lock two quick changes each read it before the other wrote it, and the second write
    /// undid the first (a removed host came back). The lock is the OS's (flock, LockFileEx), so
    /// it holds between threads, which open their own handles, and between processes alike.
    /// Nothing is written when `change` fails. Returns the policy as written.
    pub fn change<T>(
        user_path: &Path,
        admin_paths: &[PathBuf],
        change: impl FnOnce(&mut NetworkPolicy) -> Result<T>,
    ) -> Result<(NetworkPolicy, T)> {
        let _held_until_written = lock_for_changing(user_path)?;
        let mut policy = NetworkPolicy::load(user_path, admin_paths)?;
        let value = change(&mut policy)?;
        policy.save()?;
        Ok((policy, value))
    }

    /// Reads the user file (missing = offline) and every administrator file that exists.
    /// A file that cannot be read or parsed is an error, never "no policy".
    pub fn load(user_path: &Path, admin_paths: &[PathBuf]) -> Result<NetworkPolicy> {
        let user = read_file(user_path)?.unwrap_or_default();
        let mut admin = Vec::new();
        for p in admin_paths {
            if let Some(f) = read_file(p)? {
                admin.push((p.clone(), f));
            }
        }
        let policy = NetworkPolicy { user_path: user_path.to_path_buf(), user, admin };
        // Every rule must parse, so that a typo is reported, not silently ignored.
        for rule in policy.files().flat_map(|(_, f)| f.allow.iter()) {
            HostRule::parse(rule)?;
        }
        Ok(policy)
    }

    fn files(&self) -> impl Iterator<Item = (&Path, &PolicyFile)> {
        std::iter::once((self.user_path.as_path(), &self.user)).chain(self.admin.iter().map(|(p, f)| (p.as_path(), f)))
    }

    /// The user's own policy file (what the settings edit).
    pub fn user(&self) -> &PolicyFile {
        &self.user
    }

    /// Why the agent may not run commands, when a policy file forbids it.
    pub fn commands_forbidden(&self) -> Option<String> {
        self.files()
            .find(|(_, f)| f.run_commands == Some(false))
            .map(|(p, _)| format!("running commands is turned off by the policy in {}", p.display()))
    }

    /// The administrator files in force.
    pub fn admin_files(&self) -> Vec<&Path> {
        self.admin.iter().map(|(p, _)| p.as_path()).collect()
    }

    /// `allowlist` only when the user and every administrator file say so.
    pub fn mode(&self) -> Mode {
        if self.files().all(|(_, f)| f.mode == Mode::Allowlist) {
            Mode::Allowlist
        } else {
            Mode::Offline
        }
    }

    /// The user's allowed hosts that every administrator file also allows.
    pub fn allowed_hosts(&self) -> Vec<String> {
        if self.mode() == Mode::Offline {
            return Vec::new();
        }
        self.user.allow.iter().filter(|r| self.admin_allows_rule(r)).cloned().collect()
    }

    fn admin_allows_rule(&self, rule: &str) -> bool {
        let Ok(r) = HostRule::parse(rule) else { return false };
        self.admin.iter().all(|(_, f)| f.allow.iter().filter_map(|a| HostRule::parse(a).ok()).any(|a| a.covers(&r)))
    }

    /// Model mirrors, the administrators' first, then the user's (no duplicates).
    pub fn mirrors(&self) -> Vec<String> {
        let mut all: Vec<String> = Vec::new();
        for f in self.admin.iter().map(|(_, f)| f).chain(std::iter::once(&self.user)) {
            for m in &f.mirrors {
                if !all.contains(m) {
                    all.push(m.clone());
                }
            }
        }
        all
    }

    /// Ok if a connection to `host:port` for `purpose` is allowed; otherwise an error that
    /// names the file that refuses it and what to do.
    pub fn check(&self, host: &str, port: u16, purpose: &str) -> Result<()> {
        let refuse = |reason: String| Err(Error::NetworkRefused { host: format!("{host}:{port}"), purpose: purpose.to_string(), reason });
        for (path, f) in self.files() {
            let is_user = path == self.user_path;
            if f.mode == Mode::Offline {
                return refuse(if is_user {
                    format!("the network policy is offline ({}); to allow it run `perimeter network allow {host}`", path.display())
                } else {
                    format!("the administrator's policy {} keeps this machine offline", path.display())
                });
            }
            let allowed = f.allow.iter().filter_map(|r| HostRule::parse(r).ok()).any(|r| r.matches(host, port));
            if !allowed {
                return refuse(if is_user {
                    format!("{host} is not in the allowlist of {}; to allow it run `perimeter network allow {host}`", path.display())
                } else {
                    format!("{host} is not in the allowlist of the administrator's policy {}", path.display())
                });
            }
        }
        Ok(())
    }

    /// Adds `rule` to the user's allowlist and switches it to `allowlist`; refused when an
    /// administrator file would not allow it (the user cannot loosen it). In memory: inside
    /// [`NetworkPolicy::change`], which writes it.
    pub fn allow(&mut self, rule: &str) -> Result<()> {
        let parsed = HostRule::parse(rule)?;
        let rule = rule.trim().to_ascii_lowercase();
        if let Some((path, _)) = self.admin.iter().find(|(_, f)| f.mode == Mode::Offline) {
            return Err(Error::NetworkPolicy { reason: format!("the administrator's policy {} keeps this machine offline", path.display()) });
        }
        if !self.admin_allows_rule(&rule) {
            let files: Vec<String> = self.admin.iter().map(|(p, _)| p.display().to_string()).collect();
            return Err(Error::NetworkPolicy {
                reason: format!("{} is not allowed by the administrator's policy {}", parsed.host, files.join(", ")),
            });
        }
        if !self.user.allow.contains(&rule) {
            self.user.allow.push(rule);
        }
        self.user.mode = Mode::Allowlist;
        Ok(())
    }

    /// Removes a rule from the user's allowlist (in memory, as [`NetworkPolicy::allow`]);
    /// false when it was not there.
    pub fn disallow(&mut self, rule: &str) -> bool {
        let rule = rule.trim().to_ascii_lowercase();
        let before = self.user.allow.len();
        self.user.allow.retain(|r| *r != rule);
        self.user.allow.len() != before
    }

    /// Back to `offline` (in memory, as [`NetworkPolicy::allow`]); the allowlist is kept for
    /// when it is switched on again.
    pub fn go_offline(&mut self) {
        self.user.mode = Mode::Offline;
    }

    /// Only from [`NetworkPolicy::change`], which made the folder and holds the lock.
    fn save(&self) -> Result<()> {
        let text = toml::to_string(&self.user).map_err(|e| Error::NetworkPolicy { reason: e.to_string() })?;
        let header = "# Perimeter's network policy (see `perimeter network`). Administrators: /etc/perimeter/policy.toml caps it.\n";
        paths::write_atomically(&self.user_path, format!("{header}{text}").as_bytes())
    }

    /// One line for the status bar, e.g. "Offline" or "Allowlist: llm.corp.example".
    pub fn summary(&self) -> String {
        match self.mode() {
            Mode::Offline => "Offline".to_string(),
            Mode::Allowlist => match self.allowed_hosts() {
                h if h.is_empty() => "Allowlist (no host allowed)".to_string(),
                h => format!("Allowlist: {}", h.join(", ")),
            },
        }
    }
}

/// The user's file and the administrator files of [`NetworkPolicy::default_location`].
fn default_paths() -> (PathBuf, Vec<PathBuf>) {
    let mut admin = vec![system_policy_path()];
    if let Some(extra) = std::env::var_os("PERIMETER_ADMIN_POLICY") {
        admin.push(PathBuf::from(extra));
    }
    (paths::data_dir().join("network.toml"), admin)
}

/// An exclusive lock on `<user file>.lock`, released when the file is dropped. A lock file of
/// its own, because the policy file itself is replaced by a rename on every write.
fn lock_for_changing(user_path: &Path) -> Result<std::fs::File> {
    let cannot = |what: &Path, e: std::io::Error| Error::NetworkPolicy { reason: format!("{} cannot be locked for writing: {e}", what.display()) };
    if let Some(dir) = user_path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| cannot(user_path, e))?;
    }
    let name = user_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let lock_path = user_path.with_file_name(format!("{name}.lock"));
    let file = std::fs::File::options().create(true).truncate(false).write(true).open(&lock_path).map_err(|e| cannot(&lock_path, e))?;
    file.lock().map_err(|e| cannot(&lock_path, e))?;
    Ok(file)
}

fn read_file(path: &Path) -> Result<Option<PolicyFile>> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).map(Some).map_err(|e| Error::NetworkPolicy {
            reason: format!("{} is not a valid policy file: {}", path.display(), e.message()),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::NetworkPolicy { reason: format!("{} cannot be read: {e}", path.display()) }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn offline_by_default_and_every_refusal_names_the_way_out() {
        let d = tempfile::tempdir().unwrap();
        let p = NetworkPolicy::load(&d.path().join("network.toml"), &[d.path().join("none.toml")]).unwrap();
        assert_eq!(p.mode(), Mode::Offline);
        let e = p.check("llm.corp.example", 443, "the company inference server").unwrap_err().to_string();
        assert!(e.contains("llm.corp.example:443") && e.contains("offline") && e.contains("perimeter network allow"), "{e}");
    }

    #[test]
    fn allowlist_rules_match_hosts_ports_and_subdomains() {
        let r = |s| HostRule::parse(s).unwrap();
        assert!(r("LLM.corp.example").matches("llm.corp.example", 443));
        assert!(r("llm.corp.example:8443").matches("llm.corp.example", 8443));
        assert!(!r("llm.corp.example:8443").matches("llm.corp.example", 443));
        assert!(r("*.corp.example").matches("a.b.corp.example", 80));
        assert!(!r("*.corp.example").matches("corp.example", 80));
        assert!(!r("*.corp.example").matches("evilcorp.example", 80));
        assert!(r("[::1]:8080").matches("::1", 8080));
        assert!(r("127.0.0.1").matches("127.0.0.1", 1));
        for bad in ["https://x.example", "x.example/path", "*", "a.*.example", "x.example:99999", "", "user@x"] {
            assert!(HostRule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_user_allows_hosts_and_goes_offline_again() {
        let d = tempfile::tempdir().unwrap();
        let user = d.path().join("settings").join("network.toml");
        NetworkPolicy::change(&user, &[], |p| p.allow("llm.corp.example")).unwrap();
        let p2 = NetworkPolicy::load(&user, &[]).unwrap();
        assert_eq!(p2.mode(), Mode::Allowlist);
        assert!(p2.check("llm.corp.example", 443, "x").is_ok());
        let e = p2.check("example.com", 443, "x").unwrap_err().to_string();
        assert!(e.contains("not in the allowlist"), "{e}");
        let (p3, ()) = NetworkPolicy::change(&user, &[], |p| Ok(p.go_offline())).unwrap();
        assert_eq!(p3.mode(), Mode::Offline);
        assert!(NetworkPolicy::load(&user, &[]).unwrap().check("llm.corp.example", 443, "x").is_err());
        // Offline keeps the list for later; a refused change writes nothing.
        assert_eq!(p3.user().allow, ["llm.corp.example"]);
        let before = std::fs::read(&user).unwrap();
        assert!(NetworkPolicy::change(&user, &[], |p| p.allow("https://nope")).is_err());
        assert_eq!(std::fs::read(&user).unwrap(), before);
    }

    /// The window's Remove then Go offline, clicked quickly, lost the removal; here many
    /// changes at once, each in its own thread as the window's commands are: none is lost.
    #[test]
    fn concurrent_changes_are_all_kept() {
        let d = tempfile::tempdir().unwrap();
        let user = d.path().join("network.toml");
        let hosts: Vec<String> = (0..24).map(|i| format!("h{i}.corp.example")).collect();
        std::thread::scope(|s| {
            for h in &hosts {
                let user = &user;
                s.spawn(move || NetworkPolicy::change(user, &[], |p| p.allow(h)).unwrap());
            }
        });
        let mut kept = NetworkPolicy::load(&user, &[]).unwrap().user().allow.clone();
        kept.sort();
        let mut want = hosts.clone();
        want.sort();
        assert_eq!(kept, want);
        std::thread::scope(|s| {
            for h in hosts.iter().step_by(2) {
                let user = &user;
                s.spawn(move || assert!(NetworkPolicy::change(user, &[], |p| Ok(p.disallow(h))).unwrap().1));
            }
            s.spawn(|| NetworkPolicy::change(&user, &[], |p| Ok(p.go_offline())).unwrap());
        });
        let p = NetworkPolicy::load(&user, &[]).unwrap();
        assert_eq!(p.mode(), Mode::Offline);
        assert_eq!(p.user().allow.len(), hosts.len() / 2);
    }

    #[test]
    fn an_administrator_file_caps_what_the_user_can_allow() {
        let d = tempfile::tempdir().unwrap();
        let user = write(d.path(), "network.toml", "mode = \"allowlist\"\nallow = [\"llm.corp.example\", \"example.com\", \"*.corp.example\"]\n");
        let admin = write(d.path(), "policy.toml", "mode = \"allowlist\"\nallow = [\"llm.corp.example\"]\n");
        let mut p = NetworkPolicy::load(&user, &[admin.clone()]).unwrap();
        assert!(p.check("llm.corp.example", 443, "x").is_ok());
        let e = p.check("example.com", 443, "x").unwrap_err().to_string();
        assert!(e.contains("administrator") && e.contains("policy.toml"), "{e}");
        // A user wildcard does not widen a single-host administrator rule.
        assert!(p.check("other.corp.example", 443, "x").is_err());
        assert_eq!(p.allowed_hosts(), ["llm.corp.example"]);
        assert!(p.allow("github.com").unwrap_err().to_string().contains("administrator"));

        let offline = write(d.path(), "offline.toml", "mode = \"offline\"\n");
        let mut p = NetworkPolicy::load(&user, &[admin, offline]).unwrap();
        assert_eq!(p.mode(), Mode::Offline);
        assert!(p.check("llm.corp.example", 443, "x").unwrap_err().to_string().contains("keeps this machine offline"));
        assert!(p.allow("llm.corp.example").is_err());
    }

    #[test]
    fn a_broken_policy_file_is_an_error_not_no_policy() {
        let d = tempfile::tempdir().unwrap();
        let admin = write(d.path(), "policy.toml", "mode = \"wide-open\"\n");
        let e = NetworkPolicy::load(&d.path().join("network.toml"), &[admin]).unwrap_err().to_string();
        assert!(e.contains("policy.toml") && e.contains("not a valid policy file"), "{e}");
        let admin = write(d.path(), "typo.toml", "mode = \"allowlist\"\nallow = [\"https://llm.corp.example\"]\n");
        assert!(NetworkPolicy::load(&d.path().join("network.toml"), &[admin]).is_err());
    }
}
