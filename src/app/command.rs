//! The `:` command line: parsing a line into a [`Command`] (pure), and the help text of what
//! exists.

use super::ui_state::Horizon;
use crate::model::view::{QuickFilter, SortColumn};

/// What a `:` line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Quit,
    Help,
    Table,
    Timeline,
    /// The key audit view.
    Keys,
    /// Every source's health.
    Sources,
    Filter(String),
    Sort {
        column: SortColumn,
        descending: bool,
    },
    Only(Option<QuickFilter>),
    Horizon(Horizon),
    Redact(bool),
    /// Nothing (an empty line).
    Nothing,
}

/// The commands, for the help and error messages.
pub const USAGE: &str = ":sort days desc, :filter TEXT, :only expired, :horizon 1y, :timeline, :keys, :table, :sources, :redact on, :q";

/// Parse a `:` line; `Err` says what is wrong.
pub fn parse(line: &str) -> Result<Command, String> {
    let mut words = line.split_whitespace();
    let cmd = words.next().unwrap_or_default();
    let arg: Vec<&str> = words.collect();
    Ok(match (cmd, arg.as_slice()) {
        ("q" | "quit", []) => Command::Quit,
        ("help", []) => Command::Help,
        ("table", []) => Command::Table,
        ("timeline", []) => Command::Timeline,
        ("keys" | "findings", []) => Command::Keys,
        ("sources" | "health", []) => Command::Sources,
        ("filter", rest) => Command::Filter(rest.join(" ")),
        ("sort", [col, rest @ ..]) => match SortColumn::ALL.iter().find(|c| c.label() == *col) {
            Some(c) => Command::Sort {
                column: *c,
                descending: rest.first() == Some(&"desc"),
            },
            None => {
                return Err(format!(
                    "unknown column '{col}' (status, days, name, location, source, issuer, key)"
                ))
            }
        },
        ("only", [what]) => Command::Only(match *what {
            "all" | "none" => None,
            other => match QuickFilter::ALL.iter().find(|q| q.label() == other) {
                Some(q) => Some(*q),
                None => {
                    return Err(format!(
                        "unknown filter '{other}' (expired, critical, warning, errors, keys, all)"
                    ))
                }
            },
        }),
        ("horizon", [h]) => match Horizon::parse(h) {
            Some(h) => Command::Horizon(h),
            None => return Err("horizon takes 1h, 24h, 7d, 30d, 90d or 1y".to_owned()),
        },
        ("redact", [onoff]) => Command::Redact(*onoff == "on"),
        ("", []) => Command::Nothing,
        _ => {
            return Err(format!(
                "unknown command ':{}' (try {USAGE})",
                crate::model::text::clean(line)
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_and_mistakes_say_what_exists() {
        assert_eq!(parse("q"), Ok(Command::Quit));
        assert_eq!(
            parse("sort days desc"),
            Ok(Command::Sort {
                column: SortColumn::Days,
                descending: true
            })
        );
        assert_eq!(parse("filter a b"), Ok(Command::Filter("a b".into())));
        assert_eq!(parse("only all"), Ok(Command::Only(None)));
        assert_eq!(
            parse("only keys"),
            Ok(Command::Only(Some(QuickFilter::Keys)))
        );
        assert_eq!(parse("keys"), Ok(Command::Keys));
        assert!(parse("only nothing").unwrap_err().contains("keys"));
        assert_eq!(parse("horizon 1y"), Ok(Command::Horizon(Horizon::Year)));
        assert!(parse("sort colour").unwrap_err().contains("status, days"));
        assert!(parse("frobnicate").unwrap_err().contains(":sort days desc"));
        assert_eq!(parse(""), Ok(Command::Nothing));
    }
}
