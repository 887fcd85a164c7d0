//! The SPIFFE / SPIRE source: the X.509 SVIDs a SPIFFE Workload API (a SPIRE agent's socket)
//! issues to certdeck's process, with their SPIFFE IDs and chains, and the CA certificates of
//! every trust bundle it hands out (its own trust domains' and the federated ones).
//!
//! This module owns the settings (`settings`: `--spiffe`, `--spiffe-socket`, `[[spiffe]]`),
//! the wire (`wire`: `FetchX509SVID` over the Unix socket, the private keys never decoded),
//! the rows (`rows`: pure, one answer to records), the typed errors (`error`) and the plugin
//! (`source`: rounds, and the live stream that shows a rotation as it is pushed).
//!
//! The Workload API identifies its caller by the calling process (uid, path, pod): certdeck
//! sees the identities issued to the user and host it runs as, and needs write permission on
//! the socket.

pub mod error;
pub mod rows;
pub mod settings;
pub mod source;
pub mod wire;

pub use error::SpiffeError;
pub use settings::{SpiffeArgs, SpiffeConfig, SpiffeSettings};

/// The kind of SPIFFE rows (SVIDs and trust bundle CAs).
pub const KIND: crate::model::SourceKind = crate::model::SourceKind::new("spiffe");
