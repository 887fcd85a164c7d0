//! The action framework: the dashboard's action flow, user-defined actions, ACME renewal
//! against pebble and nginx, file safety.
#![allow(clippy::unwrap_used)]

#[path = "support/common.rs"]
mod common;
#[path = "support/headless.rs"]
mod headless;
#[path = "support/nginx.rs"]
mod nginx;
#[path = "support/openbao.rs"]
mod openbao;

mod actions {
    pub mod acme_pebble;
    pub mod flow;
    pub mod vault;
}
