//! The dashboard: TestBackend + insta snapshots of every view, and the real binary in tmux.
#![allow(clippy::unwrap_used)]

#[path = "support/common.rs"]
mod common;
#[path = "support/k8s_common.rs"]
mod k8s_common;
#[path = "support/k8s_fixture/mod.rs"]
mod k8s_fixture;
#[path = "support/openbao.rs"]
mod openbao;
#[path = "support/shop.rs"]
mod shop;

mod ui {
    pub mod e2e_tmux;
    pub mod views;
}
