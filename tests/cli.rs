//! The binary and the engine against real endpoints, files and misbehaving ports: `scan`,
//! its formats and exit codes, certificate files, TLS probing, an nginx fleet, PKCS#11 tokens.
#![allow(clippy::unwrap_used)]

#[path = "support/common.rs"]
mod common;
#[path = "support/nginx.rs"]
mod nginx;
#[path = "support/openbao.rs"]
mod openbao;

mod cli {
    pub mod files;
    pub mod fleet_nginx;
    pub mod garbage_input;
    pub mod keystores;
    #[cfg(feature = "pkcs11")]
    pub mod pkcs11;
    pub mod probe_tls;
    pub mod revocation;
    pub mod scan_cli;
    pub mod vault;
}
