//! Dashboard cost with many certificates: building the view (sort + filter) and rendering
//! one frame, over synthetic records at a fixed clock.
//!
//! usage: ui_100k [N=100000] [ROUNDS=15]   (cargo run --release --example ui_100k)

use std::time::Instant;

use certdeck::app::{App, AppEvent};
use certdeck::config::keymap::Keymap;
use certdeck::config::theme::Theme;
use certdeck::model::view::{SortColumn, TextFilter};
use certdeck::model::Thresholds;
use ratatui::backend::TestBackend;
use ratatui::Terminal;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).map(|l| {
                l.split_whitespace()
                    .nth(1)
                    .unwrap_or("0")
                    .parse()
                    .unwrap_or(0)
            })
        })
        .unwrap_or(0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .map(|s| s.parse().expect("N"))
        .unwrap_or(100_000);
    let rounds: usize = args
        .next()
        .map(|s| s.parse().expect("rounds"))
        .unwrap_or(15);

    let recs = certdeck::testing::synthetic_records(n);
    // Memory: the certificate data (DER, strings) is measured by building the records alone;
    // the dashboard's own cost is what loading them into the app adds on top.
    let cert_bytes: usize = recs
        .iter()
        .filter_map(|r| r.cert.as_deref())
        .map(|c| {
            c.der.len()
                + c.subject.len()
                + c.issuer.len()
                + c.serial.len()
                + c.sha256.len()
                + c.sans.iter().map(|s| s.value().len()).sum::<usize>()
        })
        .sum();
    let before = rss_kib();
    let mut app = App::new(
        certdeck::testing::NOW,
        Thresholds::default(),
        Keymap::default(),
    );
    app.update(AppEvent::Resize(120, 40));
    let t = Instant::now();
    app.load_records(recs);
    let load = t.elapsed().as_secs_f64();
    let after = rss_kib();
    let per_record = (after.saturating_sub(before) * 1024) as f64 / n as f64;

    let theme = Theme::default_dark();
    let mut term = Terminal::new(TestBackend::new(120, 40)).expect("terminal");
    let mut frame = Vec::new();
    let mut resort = Vec::new();
    let mut filter = Vec::new();
    let sorts = [
        SortColumn::Name,
        SortColumn::Days,
        SortColumn::Issuer,
        SortColumn::Status,
    ];
    let filters = [
        "svc-0123",
        "prod",
        "!internal mesh",
        "let's.*r11",
        "10\\.1\\.2",
    ];
    for i in 0..rounds {
        let t = Instant::now();
        term.draw(|f| certdeck::ui::render(&app, &theme, f))
            .expect("draw");
        frame.push(t.elapsed().as_secs_f64() * 1e3);

        app.fleet.spec.sort = sorts[i % sorts.len()];
        let t = Instant::now();
        app.rebuild();
        resort.push(t.elapsed().as_secs_f64() * 1e3);

        app.fleet.spec.text = TextFilter::new(filters[i % filters.len()]);
        let t = Instant::now();
        app.rebuild();
        filter.push(t.elapsed().as_secs_f64() * 1e3);
        app.fleet.spec.text = TextFilter::new("");
        app.rebuild();
    }
    // Each column on its own (the full fleet, no filter).
    let mut per_column = Vec::new();
    for col in SortColumn::ALL {
        app.fleet.spec.sort = col;
        let mut v = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            app.rebuild();
            v.push(t.elapsed().as_secs_f64() * 1e3);
        }
        per_column.push(format!("{}={:.1}", col.label(), median(v)));
    }
    println!("records\t{n}");
    println!("load_into_app_s\t{load:.3}");
    println!("frame_ms_median\t{:.2}", median(frame));
    println!("resort_ms_median\t{:.2}", median(resort));
    println!("filter_keystroke_ms_median\t{:.2}", median(filter));
    println!("resort_ms_by_column\t{}", per_column.join(" "));
    println!("app_bytes_per_record\t{per_record:.0}");
    println!(
        "cert_data_bytes_per_record\t{:.0}",
        cert_bytes as f64 / n as f64
    );
}
