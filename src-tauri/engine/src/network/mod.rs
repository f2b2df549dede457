//! The one place that decides whether Perimeter may open a network connection, and the local
//! record of every connection it did open.
//!
//! The default is `offline`: no outbound connection at all. A user may switch to `allowlist`
//! (named hosts only), e.g. for the company's inference server or model mirror; an
//! administrator's machine-wide policy file caps what the user can allow (see [`policy`]).
//! Every feature that could touch the network calls [`NetworkPolicy::check`] first and logs
//! what it did in the [`ConnectionLog`].

pub mod keychain;
pub mod log;
pub mod policy;

pub use log::{ConnectionLog, ConnectionRecord};
pub use policy::{HostRule, Mode, NetworkPolicy, PolicyFile};
