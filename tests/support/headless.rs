//! The dashboard without a terminal: the real app and the real runner (a live supervisor of
//! the sources, the action session), driven the way the terminal loop drives them.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use certdeck::actions::{Session, SessionEvent};
use certdeck::app::{App, AppEvent};
use certdeck::config::keymap::Keymap;
use certdeck::model::Thresholds;
use certdeck::sources::{Source, SourceEvent};
use certdeck::tui::Runner;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use tokio::sync::mpsc;

pub fn key(c: char) -> AppEvent {
    AppEvent::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE))
}

pub struct Headless {
    pub app: App,
    pub runner: Runner,
    rx: mpsc::Receiver<SourceEvent>,
    srx: mpsc::Receiver<SessionEvent>,
}

impl Headless {
    /// An app judging at `now`, sized 120x40, over `sources` and `session`.
    pub fn start_at(now: i64, sources: Vec<Arc<dyn Source>>, session: Session) -> Headless {
        certdeck::sources::tls::install_crypto_provider();
        let (runner, inbox) = Runner::start(sources, &Default::default(), session);
        let (rx, srx) = (inbox.sources, inbox.session);
        let mut app = App::new(now, Thresholds::default(), Keymap::default());
        app.update(AppEvent::Resize(120, 40));
        Headless {
            app,
            runner,
            rx,
            srx,
        }
    }

    pub fn start(sources: Vec<Arc<dyn Source>>, session: Session) -> Headless {
        Headless::start_at(certdeck::clock::now_unix(), sources, session)
    }

    /// Press a key (or any event), running its effects.
    pub fn press(&mut self, ev: AppEvent) -> Vec<certdeck::app::Effect> {
        let effects = self.app.update(ev);
        self.runner.run(&self.app, effects.clone());
        effects
    }

    /// Run the loop (source and action events) until `done` holds; panics after `secs`.
    pub async fn until(&mut self, secs: u64, what: &str, done: impl Fn(&App) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        while !done(&self.app) {
            let effects = tokio::select! {
                Some(ev) = self.rx.recv() => {
                    let mut batch = vec![ev];
                    while let Ok(e) = self.rx.try_recv() {
                        batch.push(e);
                    }
                    self.app.apply_batch(batch);
                    Vec::new()
                }
                Some(ev) = self.srx.recv() => match ev {
                    SessionEvent::Planned { token, plans } => self.app.update(AppEvent::Planned { token, plans }),
                    SessionEvent::Action(a) => self.app.update(AppEvent::Action(a)),
                },
                _ = tokio::time::sleep_until(deadline) => panic!("not within {secs} s: {what}"),
            };
            self.runner.run(&self.app, effects);
        }
    }

    /// Run the loop for `ms` milliseconds whatever happens.
    pub async fn settle(&mut self, ms: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(ms);
        loop {
            let effects = tokio::select! {
                Some(ev) = self.rx.recv() => { self.app.apply_batch(vec![ev]); Vec::new() }
                Some(ev) = self.srx.recv() => match ev {
                    SessionEvent::Planned { token, plans } => self.app.update(AppEvent::Planned { token, plans }),
                    SessionEvent::Action(a) => self.app.update(AppEvent::Action(a)),
                },
                _ = tokio::time::sleep_until(deadline) => return,
            };
            self.runner.run(&self.app, effects);
        }
    }

    pub fn row(&self, location: &str) -> Option<&certdeck::model::Record> {
        self.app
            .fleet
            .records()
            .iter()
            .find(|r| r.location == location)
    }
}
