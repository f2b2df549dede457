//! API keys for company servers, kept in the OS keychain (the Secret Service on Linux — GNOME
//! Keyring, KWallet —, the macOS Keychain, the Windows Credential Manager), never in a file.
//! One entry per server, `perimeter` / `host:port`.

use crate::{Error, Result};

const SERVICE: &str = "perimeter";

fn entry(server: &str) -> Result<keyring::Entry> {
    keyring::Entry::new(SERVICE, server).map_err(|e| unavailable(server, e))
}

fn unavailable(server: &str, e: keyring::Error) -> Error {
    Error::Keychain {
        reason: format!(
            "the OS keychain cannot hold the key for {server}: {e}. On Linux it needs a running Secret Service \
             (GNOME Keyring or KWallet, unlocked); PERIMETER_API_KEY works without one"
        ),
    }
}

/// Keeps `key` for `server` in the system keychain.
pub fn set_api_key(server: &str, key: &str) -> Result<()> {
    entry(server)?.set_password(key).map_err(|e| unavailable(server, e))
}

/// The key stored for `server`; `None` when there is none.
pub fn api_key(server: &str) -> Result<Option<String>> {
    match entry(server)?.get_password() {
        Ok(k) => Ok(Some(k)),
        Err(keyring::Error::NoEntry) => Ok(None),
        Err(e) => Err(unavailable(server, e)),
    }
}

/// Removes the key for `server`; `false` when there was none.
pub fn delete_api_key(server: &str) -> Result<bool> {
    match entry(server)?.delete_credential() {
        Ok(()) => Ok(true),
        Err(keyring::Error::NoEntry) => Ok(false),
        Err(e) => Err(unavailable(server, e)),
    }
}
