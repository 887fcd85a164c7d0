//! Kubernetes through the fixture API server (checked against kubectl) and a real kubeconfig:
//! reading, the live watch, renew and rotate, the binary's commands, the dashboard.
#![allow(clippy::unwrap_used)]

#[path = "support/common.rs"]
mod common;
#[path = "support/headless.rs"]
mod headless;
#[path = "support/k8s_common.rs"]
mod k8s_common;
#[path = "support/k8s_fixture/mod.rs"]
mod k8s_fixture;
#[path = "support/shop.rs"]
mod shop;

mod k8s {
    pub mod actions_cli;
    pub mod dashboard;
    pub mod fixture_api;
    pub mod keystores;
    pub mod mesh;
    pub mod mesh_proxies;
    pub mod read;
    pub mod renew;
    pub mod rotate;
    pub mod scan_cli;
    pub mod watch;
}
