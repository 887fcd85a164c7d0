//! Benchmark helper: read every ACM certificate of one profile in the given regions through
//! the AWS sources' rounds (one per region, as the supervisor runs them), dropping each record
//! as it arrives, and
//! print the count, the wall time and the process's peak RSS. Memory here is the reader's
//! own: it must stay flat as the certificate count grows.
//!
//! `cargo run --release --example aws_read -- PROFILE REGION...` (AWS_CONFIG_FILE etc. from
//! the environment). Driven by `benches/aws_read.sh`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use std::sync::Arc;

use certdeck::sources::aws::{source::sources_for, AwsSettings, RegionChoice};
use certdeck::sources::{Sink, SourceEvent};

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
    let mut rounds = tokio::task::JoinSet::new();
    for src in sources_for(settings, Vec::new()) {
        let sink = Sink::new(Arc::new(src.id().clone()), tx.clone());
        rounds.spawn(async move { (src.id().to_string(), src.round(&sink).await) });
    }
    drop(tx);
    let (mut n, mut with_cert, mut problems) = (0usize, 0usize, 0usize);
    while let Some(ev) = rx.recv().await {
        if let SourceEvent::Observed { record, .. } = ev {
            n += 1;
            with_cert += usize::from(record.cert.is_some());
        }
    }
    while let Some(r) = rounds.join_next().await {
        let (id, end) = r.unwrap();
        if let Some(p) = end.problem {
            problems += 1;
            eprintln!("{id}: {p}");
        }
    }
    println!(
        "records {n} with_certificate {with_cert} problems {problems} seconds {:.3} peak_rss_kib {}",
        t.elapsed().as_secs_f64(),
        peak_rss_kib()
    );
}
