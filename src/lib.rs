//! certdeck: one expiry timeline for certificate fleets.
//!
//! The library holds everything; `main.rs` only wires logging, the CLI and the runtime.

pub mod acme;
pub mod actions;
pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod demo;
pub mod dispatch;
pub mod hooks;
pub mod model;
pub mod report;
pub mod run;
pub mod sources;
pub mod testing;
pub mod tui;
pub mod ui;
