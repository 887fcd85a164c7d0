//! Test helper for tests/ui/e2e_tmux.rs: the real dashboard over a source whose round panics
//! on a background thread. The UI must stay up and show the source as failing; nothing is
//! printed over it; `q` quits and restores the terminal.

use std::sync::Arc;
use std::time::Duration;

use certdeck::model::SourceKind;
use certdeck::sources::{BoxFut, RoundEnd, Schedule, Sink, Source, SourceId};

struct Boom(SourceId);

impl Source for Boom {
    fn id(&self) -> &SourceId {
        &self.0
    }
    fn schedule(&self) -> Schedule {
        Schedule::every(Duration::from_secs(3600), Duration::from_secs(10))
    }
    fn round<'a>(&'a self, _sink: &'a Sink) -> BoxFut<'a, RoundEnd> {
        Box::pin(async move { panic!("deliberate panic in a background source") })
    }
}

fn main() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let app = certdeck::app::App::new(
            certdeck::clock::now_unix(),
            certdeck::model::Thresholds::default(),
            certdeck::config::keymap::Keymap::default(),
        );
        let theme = certdeck::config::theme::Theme::default_dark();
        let boom: Arc<dyn Source> = Arc::new(Boom(SourceId::new(SourceKind::new("boom"), "")));
        let session = certdeck::actions::Session::new(Vec::new(), true, None);
        certdeck::tui::run_dashboard(app, theme, vec![boom], &Default::default(), session, false)
            .await
            .expect("dashboard");
    });
}
