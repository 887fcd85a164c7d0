//! certdeck: one expiry timeline for certificate fleets.
//!
//! The library holds everything; `main.rs` only wires the CLI, logging and the runtime.

pub mod acme;
pub mod actions;
pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod demo;
pub mod fsx;
pub mod model;
pub mod notify;
pub mod report;
pub mod run;
pub mod serve;
pub mod settings;
pub mod sources;
pub mod testing;
pub mod tui;
pub mod ui;
