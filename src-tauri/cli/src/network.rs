//! `perimeter network`: the network policy (offline by default, or an allowlist) and the log
//! of every connection Perimeter made.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Subcommand;
use perimeter_engine::inference::remote::server_id;
use perimeter_engine::network::{keychain, ConnectionLog, NetworkPolicy};
use serde_json::json;

#[derive(Subcommand)]
pub enum NetworkCommand {
    /// The policy in force, who sets it, and what has left this machine (the default).
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Allow connections to HOST (host, host:port or *.domain) and switch to the allowlist.
    Allow { host: String },
    /// Remove HOST from the allowlist.
    Disallow { host: String },
    /// Back to offline: no connection at all (the allowlist is kept for later).
    Offline,
    /// Store the API key for a company server (read from stdin) in the OS keychain.
    Key { server: String },
    /// Remove a company server's API key from the OS keychain.
    ForgetKey { server: String },
    /// Every connection Perimeter made: when, where, what for, bytes.
    Log {
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: Option<NetworkCommand>) -> anyhow::Result<ExitCode> {
    let log = ConnectionLog::default_location();
    match cmd.unwrap_or(NetworkCommand::Status { json: false }) {
        NetworkCommand::Status { json } => {
            let policy = NetworkPolicy::default_location()?;
            let admin: Vec<String> = policy.admin_files().iter().map(|p| p.display().to_string()).collect();
            if json {
                let status = json!({
                    "mode": policy.mode(),
                    "allowed_hosts": policy.allowed_hosts(),
                    "admin_files": admin,
                    "log": log.path(),
                    "connections": log.read()?.len(),
                });
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                println!("{} · {}", policy.summary(), log.summary()?);
                if !admin.is_empty() {
                    println!("capped by the administrator's policy: {}", admin.join(", "));
                }
                println!("connection log: {}", log.path().display());
            }
        }
        NetworkCommand::Allow { host } => {
            let (policy, ()) = NetworkPolicy::change_default_location(|p| p.allow(&host))?;
            println!("{}", policy.summary());
        }
        NetworkCommand::Disallow { host } => {
            let (policy, was_there) = NetworkPolicy::change_default_location(|p| Ok(p.disallow(&host)))?;
            if !was_there {
                eprintln!("{host} was not in the allowlist");
            }
            println!("{}", policy.summary());
        }
        NetworkCommand::Offline => {
            let (policy, ()) = NetworkPolicy::change_default_location(|p| Ok(p.go_offline()))?;
            println!("{}", policy.summary());
        }
        NetworkCommand::Key { server } => {
            let id = server_id(&server)?;
            if std::io::stdin().is_terminal() {
                eprintln!("API key for {id} (input is read up to the end of the line):");
            }
            let mut key = String::new();
            std::io::stdin().read_line(&mut key)?;
            let key = key.trim();
            if key.is_empty() {
                anyhow::bail!("no key given on stdin");
            }
            keychain::set_api_key(&id, key)?;
            println!("the key for {id} is in the OS keychain");
        }
        NetworkCommand::ForgetKey { server } => {
            let id = server_id(&server)?;
            let removed = keychain::delete_api_key(&id)?;
            println!("{}", if removed { format!("removed the key for {id}") } else { format!("no key was stored for {id}") });
        }
        NetworkCommand::Log { json } => {
            let all = log.read()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else if all.is_empty() {
                println!("No connection has been made: nothing has left this machine.");
            } else {
                for r in all {
                    println!("{}  {}:{}  {}  sent {} B, received {} B  {}", r.at, r.host, r.port, r.purpose, r.bytes_sent, r.bytes_received, r.outcome);
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
