//! certdeck in a Prometheus stack, against the real peers from Debian: `certdeck serve`
//! scraped by Prometheus; the shipped alerting rules checked by promtool.
#![allow(clippy::unwrap_used)]

#[path = "support/common.rs"]
mod common;
#[path = "support/nginx.rs"]
mod nginx;

mod prom {
    pub mod notify;
    pub mod peers;
    pub mod serve;
    pub mod source;
}
