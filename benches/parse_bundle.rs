//! Certificate-file parsing throughput: read a PEM bundle into records, in process.
//!
//! usage: parse_bundle BUNDLE.pem [ROUNDS]   prints certs, median seconds, certs/second

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .expect("usage: parse_bundle BUNDLE.pem [ROUNDS]");
    let rounds: usize = args.next().map(|r| r.parse().expect("rounds")).unwrap_or(7);
    let data = std::fs::read(&path).expect("read bundle");
    let mut times = Vec::new();
    let mut n = 0;
    for _ in 0..rounds {
        let t = std::time::Instant::now();
        let recs = certdeck::sources::file::records_from_bytes(&path, &data, true, 0);
        times.push(t.elapsed().as_secs_f64());
        n = recs.iter().filter(|r| r.cert.is_some()).count();
    }
    times.sort_by(f64::total_cmp);
    let med = times[times.len() / 2];
    println!("{n}\t{med:.4}\t{:.0}", n as f64 / med);
}
