//! The binary and the engine against real endpoints, files and misbehaving ports: `scan`,
//! its formats and exit codes, certificate files, TLS probing, an nginx fleet.
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
    pub mod probe_tls;
    pub mod revocation;
    pub mod scan_cli;
    pub mod vault;
}
