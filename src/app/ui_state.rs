//! Widget state: the view shown, the selection and scrolling, popups, the input line, the
//! message, the terminal size. Owned by the app; read by the renderer.

use crate::model::status::DAY;

/// Smallest usable terminal.
pub const MIN_WIDTH: u16 = 80;
pub const MIN_HEIGHT: u16 = 24;
/// Rows the title, the table header and the hint bar take.
pub const CHROME_ROWS: u16 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Table,
    Timeline,
    /// The key audit: rows with key findings, worst first, with where each key lives.
    Keys,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Popup {
    Details,
    Help,
    Confirm,
    Tasks,
    /// Every source's health.
    Sources,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    None,
    Filter(String),
    Command(String),
}

/// Timeline horizons (+/-).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Horizon {
    /// One hour: short-lived workload certificates (SPIFFE SVIDs, mesh leaves).
    Hour,
    /// One day.
    Day,
    Week,
    Month,
    Quarter,
    Year,
}

impl Horizon {
    pub fn secs(self) -> i64 {
        match self {
            Horizon::Hour => 3600,
            Horizon::Day => DAY,
            Horizon::Week => 7 * DAY,
            Horizon::Month => 30 * DAY,
            Horizon::Quarter => 90 * DAY,
            Horizon::Year => 365 * DAY,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Horizon::Hour => "1 hour",
            Horizon::Day => "24 hours",
            Horizon::Week => "7 days",
            Horizon::Month => "30 days",
            Horizon::Quarter => "90 days",
            Horizon::Year => "1 year",
        }
    }

    pub fn shorter(self) -> Horizon {
        match self {
            Horizon::Year => Horizon::Quarter,
            Horizon::Quarter => Horizon::Month,
            Horizon::Month => Horizon::Week,
            Horizon::Week => Horizon::Day,
            _ => Horizon::Hour,
        }
    }

    pub fn longer(self) -> Horizon {
        match self {
            Horizon::Hour => Horizon::Day,
            Horizon::Day => Horizon::Week,
            Horizon::Week => Horizon::Month,
            Horizon::Month => Horizon::Quarter,
            _ => Horizon::Year,
        }
    }

    pub fn parse(s: &str) -> Option<Horizon> {
        match s {
            "1h" | "hour" => Some(Horizon::Hour),
            "24h" | "1d" | "day" => Some(Horizon::Day),
            "7d" | "week" => Some(Horizon::Week),
            "30d" | "month" => Some(Horizon::Month),
            "90d" | "quarter" => Some(Horizon::Quarter),
            "1y" | "365d" | "year" => Some(Horizon::Year),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Source,
    Issuer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Error,
}

/// What is on screen and where the user is in it.
#[derive(Debug, Clone)]
pub struct UiState {
    pub view: View,
    pub popup: Option<Popup>,
    /// Position of the selection in the visible rows.
    pub selected: usize,
    /// The selected record's id (the selection follows it as rows move).
    pub selected_id: Option<String>,
    /// The user has moved the selection: from then on it follows its certificate as rows
    /// move; before that it stays on the top (worst) row while results stream in.
    pub user_moved: bool,
    /// First visible row.
    pub offset: usize,
    /// Scroll of the open popup.
    pub scroll: u16,
    pub input: Input,
    pub horizon: Horizon,
    pub group_by: GroupBy,
    pub redact: bool,
    pub message: Option<(String, Level)>,
    pub size: (u16, u16),
}

impl Default for UiState {
    fn default() -> Self {
        UiState {
            view: View::Table,
            popup: None,
            selected: 0,
            selected_id: None,
            user_moved: false,
            offset: 0,
            scroll: 0,
            input: Input::None,
            horizon: Horizon::Quarter,
            group_by: GroupBy::Source,
            redact: false,
            message: None,
            size: (MIN_WIDTH, MIN_HEIGHT),
        }
    }
}

impl UiState {
    /// Rows of the table body that fit on screen.
    pub fn viewport(&self) -> usize {
        usize::from(self.size.1.saturating_sub(CHROME_ROWS)).max(1)
    }

    /// Keep the selection on screen, and the offset within the rows.
    pub fn scroll_into_view(&mut self, rows: usize) {
        let vp = self.viewport();
        if self.selected < self.offset {
            self.offset = self.selected;
        } else if self.selected >= self.offset + vp {
            self.offset = self.selected + 1 - vp;
        }
        self.offset = self.offset.min(rows.saturating_sub(vp));
    }

    pub fn say(&mut self, text: impl Into<String>, level: Level) {
        self.message = Some((text.into(), level));
    }

    /// Open a popup, or close it when it is open already.
    pub fn toggle(&mut self, p: Popup) {
        self.popup = if self.popup == Some(p) { None } else { Some(p) };
        self.scroll = 0;
    }
}
