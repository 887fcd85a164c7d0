//! The terminal: a guard that restores it on Drop, a panic hook that restores it only for a
//! panic of the UI thread, and the dashboard's event loop (one place that catches terminal
//! events, source batches, action events, ticks and signals, and runs the app's effects).

use std::io::{self, Stdout, Write};
use std::sync::Arc;
use std::time::Duration;

use crossterm::event::{DisableMouseCapture, EnableMouseCapture, Event, EventStream};
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use crossterm::{cursor, execute};
use futures::{Stream, StreamExt};
use ratatui::backend::{Backend, CrosstermBackend};
use ratatui::Terminal;
use tokio::sync::mpsc;

use crate::actions::{Session, SessionEvent};
use crate::app::{App, AppEvent, Effect};
use crate::config::theme::Theme;
use crate::sources::supervisor::Overrides;
use crate::sources::{Mode, Source, SourceEvent, Supervisor};

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

/// The thread the UI runs on (set by [`install_panic_hook`]).
static UI_THREAD: std::sync::OnceLock<std::thread::ThreadId> = std::sync::OnceLock::new();

/// A panic on the UI thread restores the terminal before the panic message is printed. A
/// panic on any other thread (a background task) is logged to the log file and nothing else:
/// the UI stays up, and the task's failure shows as an error row or a failed action.
pub fn install_panic_hook() {
    let _ = UI_THREAD.set(std::thread::current().id());
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let on_ui = UI_THREAD
            .get()
            .is_none_or(|id| *id == std::thread::current().id());
        if on_ui {
            let _ = restore();
            previous(info);
        } else {
            tracing::error!("a background task panicked (the dashboard goes on): {info}");
        }
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

/// What the loop runs effects against: the supervisor and the action session.
pub struct Runner {
    pub supervisor: Supervisor,
    pub session: Session,
    session_tx: mpsc::Sender<SessionEvent>,
}

/// What reaches the loop from the background: source events and action events.
pub struct Inbox {
    pub sources: mpsc::Receiver<SourceEvent>,
    pub session: mpsc::Receiver<SessionEvent>,
}

impl Runner {
    /// Start every source under a live supervisor.
    pub fn start(
        sources: Vec<Arc<dyn Source>>,
        overrides: &Overrides,
        session: Session,
    ) -> (Runner, Inbox) {
        let (tx, rx) = mpsc::channel::<SourceEvent>(1024);
        let (stx, srx) = mpsc::channel::<SessionEvent>(1024);
        let supervisor = Supervisor::start(sources, overrides, Mode::Live, tx);
        (
            Runner {
                supervisor,
                session,
                session_tx: stx,
            },
            Inbox {
                sources: rx,
                session: srx,
            },
        )
    }

    /// Run the app's effects. Returns true to quit.
    pub fn run(&self, app: &App, effects: Vec<Effect>) -> bool {
        let mut quit = false;
        for e in effects {
            match e {
                Effect::Quit => quit = true,
                Effect::Reobserve(ids) => {
                    let rows = ids
                        .iter()
                        .filter_map(|id| {
                            let r = app.fleet.get(id)?;
                            let src = app.fleet.origin_of(id)?;
                            Some((src.clone(), r.clone()))
                        })
                        .collect();
                    self.supervisor.reobserve(rows);
                }
                Effect::RefreshAll => {
                    self.supervisor.refresh_all();
                }
                Effect::Copy(text) => osc52(&text),
                Effect::Plan {
                    token,
                    request,
                    ids,
                } => {
                    let records: Vec<_> = ids
                        .iter()
                        .filter_map(|id| app.fleet.get(id).cloned())
                        .collect();
                    let session = self.session.clone();
                    let tx = self.session_tx.clone();
                    tokio::spawn(async move {
                        let plans = session.plan(token, &request, &records).await;
                        let _ = tx.send(SessionEvent::Planned { token, plans }).await;
                    });
                }
                Effect::Execute { token, ids } => {
                    let session = self.session.clone();
                    let tx = self.session_tx.clone();
                    tokio::spawn(async move {
                        let (atx, mut arx) = mpsc::channel(256);
                        let forward = tokio::spawn(async move {
                            while let Some(ev) = arx.recv().await {
                                if tx.send(SessionEvent::Action(ev)).await.is_err() {
                                    break;
                                }
                            }
                        });
                        session.execute(token, &ids, atx).await;
                        let _ = forward.await;
                    });
                }
                Effect::Cancel { token } => self.session.cancel(token),
            }
        }
        quit
    }
}

/// The event loop over any backend and any stream of terminal events: the real dashboard
/// uses crossterm's, tests a `TestBackend` and a channel. Returns when the app quits, the
/// events end, or `stop` resolves.
pub async fn event_loop<B, E>(
    app: &mut App,
    theme: &Theme,
    terminal: &mut Terminal<B>,
    mut events: E,
    runner: &Runner,
    inbox: Inbox,
    stop: impl std::future::Future<Output = ()>,
) -> io::Result<()>
where
    B: Backend,
    E: Stream<Item = io::Result<Event>> + Unpin,
{
    let Inbox {
        sources: mut rx,
        session: mut srx,
    } = inbox;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut dirty = true;
    let mut last_draw = std::time::Instant::now() - Duration::from_secs(1);
    let mut stop = std::pin::pin!(stop);
    loop {
        // Redraw only when something changed, and at most every ~10 ms.
        if dirty && last_draw.elapsed() >= Duration::from_millis(10) {
            terminal
                .draw(|f| crate::ui::render(app, theme, f))
                .map_err(|e| io::Error::other(e.to_string()))?;
            dirty = false;
            last_draw = std::time::Instant::now();
        }
        let redraw_in = if dirty {
            Duration::from_millis(10)
        } else {
            Duration::from_secs(3600)
        };
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
            Some(ev) = srx.recv() => match ev {
                SessionEvent::Planned { token, plans } => app.update(AppEvent::Planned { token, plans }),
                SessionEvent::Action(a) => app.update(AppEvent::Action(a)),
            },
            _ = tick.tick() => app.update(AppEvent::Tick(crate::clock::now_unix())),
            _ = &mut stop => vec![Effect::Quit],
            _ = tokio::time::sleep(redraw_in) => Vec::new(),
        };
        dirty = true;
        let quit = runner.run(app, effects) || app.should_quit;
        if quit {
            return Ok(());
        }
    }
}

/// Run the dashboard until the user quits, Ctrl-C, SIGTERM or SIGHUP. The terminal is restored on
/// every path (guard Drop; the panic hook covers a panic of this thread).
pub async fn run_dashboard(
    mut app: App,
    theme: Theme,
    sources: Vec<Arc<dyn Source>>,
    overrides: &Overrides,
    session: Session,
    mouse: bool,
) -> anyhow::Result<()> {
    let (runner, inbox) = Runner::start(sources, overrides, session);
    install_panic_hook();
    let mut guard = TerminalGuard::enter(mouse)?;
    let size = guard.terminal.size()?;
    app.ui.size = (size.width, size.height);
    // SIGTERM, and SIGHUP (the SSH session or the terminal went away): a clean exit, so the
    // terminal state is put back and temporary files (the demo's) are removed.
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    let stop = async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = hup.recv() => {}
        }
    };
    let res = event_loop(
        &mut app,
        &theme,
        &mut guard.terminal,
        EventStream::new(),
        &runner,
        inbox,
        stop,
    )
    .await;
    runner.supervisor.stop();
    drop(guard);
    res?;
    Ok(())
}
