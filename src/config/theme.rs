//! Themes: roles that name meanings (Expired, Warning, Muted...) mapped to styles.
//!
//! Built-in themes (`themes/*.toml`) are compiled in; a user file
//! `<config dir>/themes/NAME.toml` overlays the built-in of the same name (or the one it
//! `inherits`). `NO_COLOR` selects monochrome. Every role has a fallback, so an old or partial
//! theme still renders.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;

use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;

/// What a style means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Expired,
    Critical,
    Warning,
    Healthy,
    Unknown,
    NotYetValid,
    Muted,
    Title,
    Selection,
    Marked,
    Changed,
    Header,
    Border,
    Guidance,
    BandCritical,
    BandWarning,
}

impl Role {
    const ALL: [Role; 16] = [
        Role::Expired,
        Role::Critical,
        Role::Warning,
        Role::Healthy,
        Role::Unknown,
        Role::NotYetValid,
        Role::Muted,
        Role::Title,
        Role::Selection,
        Role::Marked,
        Role::Changed,
        Role::Header,
        Role::Border,
        Role::Guidance,
        Role::BandCritical,
        Role::BandWarning,
    ];

    fn key(self) -> &'static str {
        match self {
            Role::Expired => "expired",
            Role::Critical => "critical",
            Role::Warning => "warning",
            Role::Healthy => "healthy",
            Role::Unknown => "unknown",
            Role::NotYetValid => "not_yet_valid",
            Role::Muted => "muted",
            Role::Title => "title",
            Role::Selection => "selection",
            Role::Marked => "marked",
            Role::Changed => "changed",
            Role::Header => "header",
            Role::Border => "border",
            Role::Guidance => "guidance",
            Role::BandCritical => "band_critical",
            Role::BandWarning => "band_warning",
        }
    }

    /// The role used when a theme does not define this one.
    fn fallback(self) -> Option<Role> {
        match self {
            Role::NotYetValid => Some(Role::Critical),
            Role::Expired => Some(Role::Critical),
            Role::Marked | Role::Changed => Some(Role::Title),
            Role::Header => Some(Role::Title),
            Role::Guidance => Some(Role::Muted),
            Role::BandCritical | Role::BandWarning | Role::Border => Some(Role::Muted),
            _ => None,
        }
    }
}

pub const BUILTIN: &[(&str, &str)] = &[
    ("dark", include_str!("../../themes/dark.toml")),
    ("light", include_str!("../../themes/light.toml")),
    (
        "high-contrast",
        include_str!("../../themes/high-contrast.toml"),
    ),
    ("monochrome", include_str!("../../themes/monochrome.toml")),
];

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ThemeFile {
    inherits: Option<String>,
    #[serde(default)]
    roles: HashMap<String, StyleSpec>,
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct StyleSpec {
    fg: Option<String>,
    bg: Option<String>,
    #[serde(default)]
    modifiers: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ThemeError {
    #[error(
        "unknown theme '{0}' (built-in: dark, light, high-contrast, monochrome; or a file in {1})"
    )]
    Unknown(String, String),
    #[error("invalid theme file {file}: {message}")]
    Invalid { file: String, message: String },
}

/// A resolved theme.
#[derive(Debug, Clone)]
pub struct Theme {
    pub name: String,
    styles: HashMap<Role, Style>,
    /// No colours at all (monochrome / NO_COLOR): glyphs and text carry the meaning.
    pub monochrome: bool,
}

fn parse_file(name: &str, text: &str) -> Result<ThemeFile, ThemeError> {
    toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| 1 + text[..s.start.min(text.len())].matches('\n').count());
        let message = match line {
            Some(l) => format!("line {l}: {}", e.message().trim()),
            None => e.message().trim().to_owned(),
        };
        ThemeError::Invalid {
            file: name.to_owned(),
            message,
        }
    })
}

fn to_style(file: &str, role: &str, spec: &StyleSpec) -> Result<Style, ThemeError> {
    let bad = |what: &str| ThemeError::Invalid {
        file: file.to_owned(),
        message: format!("roles.{role}: {what}"),
    };
    let mut st = Style::default();
    if let Some(fg) = &spec.fg {
        st = st.fg(Color::from_str(fg).map_err(|_| bad(&format!("unknown colour '{fg}'")))?);
    }
    if let Some(bg) = &spec.bg {
        st = st.bg(Color::from_str(bg).map_err(|_| bad(&format!("unknown colour '{bg}'")))?);
    }
    for m in &spec.modifiers {
        st = st.add_modifier(match m.as_str() {
            "bold" => Modifier::BOLD,
            "dim" => Modifier::DIM,
            "italic" => Modifier::ITALIC,
            "underlined" => Modifier::UNDERLINED,
            "reversed" => Modifier::REVERSED,
            "crossed_out" => Modifier::CROSSED_OUT,
            other => return Err(bad(&format!("unknown modifier '{other}'"))),
        });
    }
    Ok(st)
}

impl Theme {
    /// Resolve a theme by name, with user overlays from `user_dir` (the config directory's
    /// `themes/`). `no_color` forces monochrome.
    pub fn load(name: &str, user_dir: Option<&Path>, no_color: bool) -> Result<Theme, ThemeError> {
        let name = if no_color { "monochrome" } else { name };
        let mut specs: HashMap<String, StyleSpec> = HashMap::new();
        let mut chain = Vec::new();
        let mut current = Some(name.to_owned());
        // Follow `inherits` (user files) down to a built-in; at most a few levels.
        while let Some(n) = current.take() {
            if chain.len() > 4 || chain.iter().any(|(c, _): &(String, ThemeFile)| c == &n) {
                break;
            }
            let user = user_dir
                .map(|d| d.join(format!("{n}.toml")))
                .filter(|p| p.exists());
            let builtin = BUILTIN.iter().find(|(b, _)| *b == n).map(|(_, t)| *t);
            let mut files = Vec::new();
            if let Some(t) = builtin {
                files.push((format!("built-in theme {n}"), t.to_owned()));
            }
            if let Some(p) = &user {
                let text = crate::fsx::read_to_string_bounded(p, crate::config::MAX_CONFIG_BYTES)
                    .map_err(|e| ThemeError::Invalid {
                    file: p.display().to_string(),
                    message: e.to_string(),
                })?;
                files.push((p.display().to_string(), text));
            }
            if files.is_empty() {
                let dir = user_dir
                    .map(|d| d.display().to_string())
                    .unwrap_or_else(|| "the config directory".into());
                return Err(ThemeError::Unknown(n, dir));
            }
            for (file, text) in files.into_iter().rev() {
                let tf = parse_file(&file, &text)?;
                if builtin.is_none() {
                    current = Some(tf.inherits.clone().unwrap_or_else(|| "dark".to_owned()));
                }
                chain.push((file, tf));
            }
        }
        // Apply base first, overlays last.
        for (file, tf) in chain.iter().rev() {
            for (role, spec) in &tf.roles {
                if !Role::ALL.iter().any(|r| r.key() == role) {
                    return Err(ThemeError::Invalid {
                        file: file.clone(),
                        message: format!("unknown role '{role}'"),
                    });
                }
                specs.insert(role.clone(), spec.clone());
            }
        }
        let mut styles = HashMap::new();
        for (role, spec) in &specs {
            styles.insert(
                *Role::ALL
                    .iter()
                    .find(|r| r.key() == role)
                    .unwrap_or(&Role::Muted),
                to_style(name, role, spec)?,
            );
        }
        let monochrome = name == "monochrome";
        Ok(Theme {
            name: name.to_owned(),
            styles,
            monochrome,
        })
    }

    /// The style of a role, following fallbacks.
    pub fn style(&self, role: Role) -> Style {
        let mut r = Some(role);
        while let Some(x) = r {
            if let Some(s) = self.styles.get(&x) {
                return *s;
            }
            r = x.fallback();
        }
        Style::default()
    }

    /// Built-in dark theme (cannot fail: it is compiled in and tested).
    pub fn default_dark() -> Theme {
        Theme::load("dark", None, false).unwrap_or(Theme {
            name: "dark".into(),
            styles: HashMap::new(),
            monochrome: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_theme_loads_and_defines_every_role() {
        for (name, _) in BUILTIN {
            let t = Theme::load(name, None, false).unwrap();
            for r in Role::ALL {
                assert!(t.styles.contains_key(&r), "{name} lacks {}", r.key());
            }
        }
    }

    #[test]
    fn no_color_forces_monochrome_without_colours() {
        let t = Theme::load("dark", None, true).unwrap();
        assert!(t.monochrome);
        for r in Role::ALL {
            let s = t.style(r);
            assert!(s.fg.is_none() && s.bg.is_none(), "{:?}", r);
        }
    }

    #[test]
    fn user_overlay_changes_only_what_it_names_and_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("dark.toml"),
            "[roles]\nwarning = { fg = \"#ff8800\" }\n",
        )
        .unwrap();
        let t = Theme::load("dark", Some(dir.path()), false).unwrap();
        assert_eq!(t.style(Role::Warning).fg, Some(Color::Rgb(0xff, 0x88, 0)));
        assert_eq!(t.style(Role::Healthy).fg, Some(Color::Green));
        std::fs::write(
            dir.path().join("mine.toml"),
            "inherits = \"light\"\n[roles]\nhealthy = { fg = \"nope\" }\n",
        )
        .unwrap();
        let e = Theme::load("mine", Some(dir.path()), false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("healthy") && e.contains("nope"), "{e}");
        std::fs::write(
            dir.path().join("typo.toml"),
            "[roles]\nhealthy = { fgg = \"red\" }\n",
        )
        .unwrap();
        let e = Theme::load("typo", Some(dir.path()), false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("typo.toml") && e.contains("line 2"), "{e}");
        assert!(Theme::load("absent", Some(dir.path()), false).is_err());
    }
}
