//! The terminal: a guard that restores it on Drop, a chained panic hook, and the dashboard's
//! event loop (one place that catches terminal events, source batches, ticks and signals).

use std::io::{self, Stdout, Write};
use std::sync::Arc;
use std::time::Duration;

use crossterm::event::{DisableMouseCapture, EnableMouseCapture, Event, EventStream};
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use crossterm::{cursor, execute};
use futures::StreamExt;
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;
use tokio::sync::mpsc;

use crate::app::{App, AppEvent, Effect};
use crate::config::theme::Theme;
use crate::model::SourceKind;
use crate::sources::{self, file, Inventory, ProbeSettings, SourceEvent, Target};

/// Restore the terminal: leave raw mode and the alternate screen, show the cursor.
pub fn restore() -> io::Result<()> {
    let r1 = disable_raw_mode();
    let r2 = execute!(
        io::stdout(),
        DisableMouseCapture,
        LeaveAlternateScreen,
        cursor::Show
    );
    r1.and(r2)
}

/// Restore the terminal before the default panic message is printed.
pub fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let _ = restore();
        previous(info);
    }));
}

/// Owns the terminal while the UI is up; dropping it restores the terminal.
pub struct TerminalGuard {
    pub terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl TerminalGuard {
    pub fn enter(mouse: bool) -> io::Result<TerminalGuard> {
        enable_raw_mode()?;
        let mut out = io::stdout();
        if let Err(e) = execute!(out, EnterAlternateScreen, cursor::Hide) {
            let _ = restore();
            return Err(e);
        }
        if mouse {
            let _ = execute!(out, EnableMouseCapture);
        }
        match Terminal::new(CrosstermBackend::new(out)) {
            Ok(terminal) => Ok(TerminalGuard { terminal }),
            Err(e) => {
                let _ = restore();
                Err(e)
            }
        }
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        let _ = restore();
    }
}

/// Write an OSC 52 clipboard sequence (works over SSH in most terminals).
fn osc52(text: &str) {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(text);
    let mut out = io::stdout();
    let _ = write!(out, "\x1b]52;c;{b64}\x07");
    let _ = out.flush();
}

/// Observe some locations again, sending the results on `tx`.
fn reprobe(
    what: Vec<(SourceKind, String)>,
    prober: Option<Arc<sources::tls::TlsProber>>,
    k8s: Option<sources::k8s::K8sSettings>,
    tx: mpsc::Sender<SourceEvent>,
) {
    tokio::spawn(async move {
        // Kubernetes rows are re-read with one pass of the Kubernetes source (paginated lists
        // are cheaper than an object-by-object walk, and pick up linked objects too).
        if what.iter().any(|(s, _)| *s == SourceKind::K8s) {
            if let Some(settings) = k8s.clone() {
                sources::k8s::run(settings, tx.clone()).await;
            }
        }
        for (source, location) in what {
            match source {
                SourceKind::Tls => {
                    let (Some(p), Ok(t)) = (prober.as_ref(), Target::parse(&location, None)) else {
                        continue;
                    };
                    let rec = p.probe(&t).await;
                    let _ = tx.send(SourceEvent::Observed(rec)).await;
                }
                SourceKind::File => {
                    let path = match location.rsplit_once('#') {
                        Some((p, n)) if n.chars().all(|c| c.is_ascii_digit()) => p.to_owned(),
                        _ => location.clone(),
                    };
                    let entry = file::FileEntry {
                        path: path.into(),
                        explicit: true,
                    };
                    let now = crate::clock::now_unix();
                    let recs = tokio::task::spawn_blocking(move || file::read_file(&entry, now))
                        .await
                        .unwrap_or_default();
                    for r in recs {
                        let _ = tx.send(SourceEvent::Observed(r)).await;
                    }
                }
                // Kubernetes rows were re-read above; AWS rows are re-read by the next round
                // (reobserve comes with the Source trait).
                SourceKind::K8s | SourceKind::Aws => {}
            }
        }
    });
}

/// Run the dashboard until the user quits, Ctrl-C, or SIGTERM. The terminal is restored on
/// every path (guard Drop; the panic hook covers panics).
pub async fn run_dashboard(
    mut app: App,
    theme: Theme,
    inventory: Inventory,
    probe: ProbeSettings,
    mouse: bool,
    dispatcher: crate::dispatch::Dispatcher,
) -> anyhow::Result<()> {
    let (tx, mut rx) = mpsc::channel::<SourceEvent>(1024);
    // Planning answers and task progress from the dispatcher.
    let (act_tx, mut act_rx) = mpsc::channel::<AppEvent>(1024);
    let prober = sources::build_prober(&probe).ok().map(Arc::new);
    let mut scans = tokio::task::JoinSet::new();
    scans.spawn(sources::run_inventory(
        inventory.clone(),
        probe.clone(),
        tx.clone(),
    ));

    install_panic_hook();
    let mut guard = TerminalGuard::enter(mouse)?;
    let size = guard.terminal.size()?;
    app.size = (size.width, size.height);
    let mut events = EventStream::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut dirty = true;
    let mut last_draw = std::time::Instant::now() - Duration::from_secs(1);
    loop {
        // Redraw only when something changed, and at most every ~10 ms.
        if dirty && last_draw.elapsed() >= Duration::from_millis(10) {
            guard
                .terminal
                .draw(|f| crate::ui::render(&app, &theme, f))?;
            dirty = false;
            last_draw = std::time::Instant::now();
        }
        let redraw_in = if dirty {
            Duration::from_millis(10)
        } else {
            Duration::from_secs(3600)
        };
        #[cfg(unix)]
        let sigterm = term.recv();
        #[cfg(not(unix))]
        let sigterm = std::future::pending::<Option<()>>();
        let effects = tokio::select! {
            ev = events.next() => match ev {
                Some(Ok(Event::Key(k))) => app.update(AppEvent::Key(k)),
                Some(Ok(Event::Mouse(m))) => app.update(AppEvent::Mouse(m)),
                Some(Ok(Event::Resize(w, h))) => app.update(AppEvent::Resize(w, h)),
                Some(Ok(_)) => Vec::new(),
                Some(Err(e)) => {
                    tracing::error!("terminal event error: {e}");
                    vec![Effect::Quit]
                }
                None => vec![Effect::Quit],
            },
            Some(first) = rx.recv() => {
                let mut batch = vec![first];
                while batch.len() < 4096 {
                    match rx.try_recv() {
                        Ok(e) => batch.push(e),
                        Err(_) => break,
                    }
                }
                app.apply_batch(batch);
                Vec::new()
            }
            Some(ev) = act_rx.recv() => app.update(ev),
            _ = tick.tick() => app.update(AppEvent::Tick(crate::clock::now_unix())),
            _ = sigterm => vec![Effect::Quit],
            _ = tokio::time::sleep(redraw_in) => Vec::new(),
        };
        dirty = true;
        let mut quit = app.should_quit;
        for e in effects {
            match e {
                Effect::Quit => quit = true,
                Effect::Reprobe(what) => {
                    reprobe(what, prober.clone(), inventory.k8s.clone(), tx.clone())
                }
                Effect::ReprobeAll => {
                    scans.spawn(sources::run_inventory(
                        inventory.clone(),
                        probe.clone(),
                        tx.clone(),
                    ));
                }
                Effect::Copy(text) => osc52(&text),
                Effect::Propose { token, kind, ids } => {
                    let records = ids
                        .iter()
                        .filter_map(|id| app.fleet.get(id).cloned())
                        .collect();
                    dispatcher.propose(token, kind, records, act_tx.clone());
                }
                Effect::Execute { token, ids } => dispatcher.execute(token, &ids, act_tx.clone()),
                Effect::Cancel { token } => dispatcher.cancel(token),
            }
        }
        if quit {
            break;
        }
    }
    scans.abort_all();
    drop(guard);
    Ok(())
}
