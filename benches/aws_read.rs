//! Benchmark helper: read every ACM certificate of one profile in the given regions through
//! the library reader (`certdeck::sources::aws::run`), dropping each record as it arrives, and
//! print the count, the wall time and the process's peak RSS. Memory here is the reader's
//! own: it must stay flat as the certificate count grows.
//!
//! `cargo run --release --example aws_read -- PROFILE REGION...` (AWS_CONFIG_FILE etc. from
//! the environment). Driven by `benches/aws_read.sh`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use certdeck::sources::aws::{AwsSettings, RegionChoice};
use certdeck::sources::SourceEvent;

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let profile = args.first().cloned().expect("PROFILE REGION...");
    let regions: Vec<String> = args[1..].to_vec();
    let settings = AwsSettings {
        profile: Some(profile),
        regions: RegionChoice::List(regions),
        private_cas: false,
        ..AwsSettings::default()
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel(256);
    let t = Instant::now();
    let run = tokio::spawn(certdeck::sources::aws::run(vec![settings], tx));
    let (mut n, mut with_cert, mut problems) = (0usize, 0usize, 0usize);
    while let Some(ev) = rx.recv().await {
        match ev {
            SourceEvent::Observed(r) => {
                n += 1;
                with_cert += usize::from(r.cert.is_some());
            }
            SourceEvent::Failed { error, .. } => {
                problems += 1;
                eprintln!("problem: {error}");
            }
            _ => {}
        }
    }
    run.await.unwrap();
    println!(
        "records {n} with_certificate {with_cert} problems {problems} seconds {:.3} peak_rss_kib {}",
        t.elapsed().as_secs_f64(),
        peak_rss_kib()
    );
}
