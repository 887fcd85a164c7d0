//! User-defined actions, as k9s plugins are: a key, a description, the sources they apply to,
//! a command with placeholders, `confirm` and `dangerous` flags.
//!
//! Placeholder values never become shell text. Each row's values are passed to the command as
//! environment variables (`CERTDECK_HOST`, `CERTDECK_SUBJECT`...), and each `{name}` in the
//! template is replaced by a quoted reference to its variable, chosen for the quoting context
//! it stands in: `"${CERTDECK_NAME}"` bare, `${CERTDECK_NAME}` inside double quotes, and
//! `'"${CERTDECK_NAME}"'` inside single quotes. A parameter expansion's result is never parsed
//! again, so a certificate whose subject is `$(rm -rf ~)` is just text to the command, however
//! the template quotes it.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::command::{self, Command};
use super::{ActionError, Backend, Offer, Outcome, Plan, Prepared, Risk, Step};
use crate::model::{Record, SourceKind};
use crate::sources::{BoxFut, Target};

/// `[[action]]` in the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserAction {
    /// Key in the dashboard (e.g. `c`, `ctrl-e`).
    pub key: String,
    pub description: String,
    /// The name `certdeck action NAME ID...` runs it by (default: the description,
    /// lower-case, words joined by `-`).
    #[serde(default)]
    pub name: Option<String>,
    /// Sources it applies to (`tls`, `file`, `k8s`); empty or absent means all.
    #[serde(default)]
    pub sources: Vec<String>,
    /// Shell command with placeholders: {id} {source} {location} {host} {port} {sni} {path}
    /// {namespace} {name} {context} {kind} {sans} {subject} {not_after} {sha256} {serial}.
    pub command: String,
    /// Ask before running (default true).
    #[serde(default = "yes")]
    pub confirm: bool,
    /// Changes something: flagged in the preview, always confirmed (default false).
    #[serde(default)]
    pub dangerous: bool,
    /// Time limit (default 5m).
    #[serde(default, deserialize_with = "crate::config::de_opt_duration")]
    pub timeout: Option<Duration>,
}

fn yes() -> bool {
    true
}

impl UserAction {
    /// The name it is run by.
    pub fn name(&self) -> String {
        match &self.name {
            Some(n) => n.clone(),
            None => {
                let mut out = String::new();
                for w in self
                    .description
                    .split(|c: char| !c.is_ascii_alphanumeric())
                    .filter(|w| !w.is_empty())
                {
                    if !out.is_empty() {
                        out.push('-');
                    }
                    out.push_str(&w.to_ascii_lowercase());
                }
                out
            }
        }
    }

    /// True when it applies to rows of this source.
    pub fn applies_to(&self, r: &Record) -> bool {
        self.sources.is_empty() || self.sources.iter().any(|s| s == r.source.as_str())
    }
}

/// The placeholder values of a record, by placeholder name (unquoted, as they are).
pub fn placeholders(r: &Record) -> Vec<(&'static str, String)> {
    let mut v = vec![
        ("id", r.id.clone()),
        ("source", r.source.as_str().to_owned()),
        ("location", r.location.clone()),
    ];
    if r.source == SourceKind::TLS {
        if let Ok(t) = Target::parse(&r.location, None) {
            v.push(("host", t.host.clone()));
            v.push(("port", t.port.to_string()));
            v.push(("sni", t.server_name().to_owned()));
        }
    }
    if r.source == SourceKind::FILE {
        v.push((
            "path",
            crate::sources::file::source::file_of(&r.location).to_owned(),
        ));
    }
    if let Some(k) = &r.k8s {
        v.push(("namespace", k.namespace.clone()));
        v.push(("name", k.name.clone()));
        v.push(("context", k.context.clone()));
        v.push(("kind", k.kind.clone()));
    }
    if let Some(c) = r.cert.as_deref() {
        v.push((
            "sans",
            c.sans
                .iter()
                .map(|s| s.value().to_owned())
                .collect::<Vec<_>>()
                .join(" "),
        ));
        v.push(("subject", c.subject.clone()));
        v.push(("not_after", crate::clock::rfc3339(c.not_after)));
        v.push(("sha256", c.sha256.clone()));
        v.push(("serial", c.serial.clone()));
    }
    v
}

/// Every placeholder name a template may use.
pub const PLACEHOLDERS: &[&str] = &[
    "id",
    "source",
    "location",
    "host",
    "port",
    "sni",
    "path",
    "namespace",
    "name",
    "context",
    "kind",
    "sans",
    "subject",
    "not_after",
    "sha256",
    "serial",
];

/// The environment variable holding a placeholder's value.
pub fn env_name(placeholder: &str) -> String {
    format!("CERTDECK_{}", placeholder.to_ascii_uppercase())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quote {
    /// Unquoted, at the top level.
    Bare,
    /// Unquoted, inside `$(...)` or `(...)`.
    Sub,
    /// Unquoted, inside backticks.
    Tick,
    Single,
    Double,
}

/// `{name}` at `i`: the name, when it is a placeholder-shaped word.
fn placeholder_at(chars: &[char], i: usize) -> Option<String> {
    if chars.get(i) != Some(&'{') {
        return None;
    }
    let close = chars[i + 1..].iter().position(|&x| x == '}')?;
    let name: String = chars[i + 1..i + 1 + close].iter().collect();
    (!name.is_empty() && name.chars().all(|x| x.is_ascii_lowercase() || x == '_')).then_some(name)
}

/// Turn a template into the script to run: every `{name}` becomes a reference to its
/// environment variable, quoted for where it stands. Returns the script and the placeholder
/// names used (in order, unique). `${VAR}`, brace groups and `{a,b}` are left alone; an
/// unknown `{word}` is an error, except inside single quotes (an awk program, say).
pub fn translate(template: &str) -> Result<(String, Vec<&'static str>), String> {
    let chars: Vec<char> = template.chars().collect();
    let mut out = String::with_capacity(template.len() + 32);
    let mut used: Vec<&'static str> = Vec::new();
    let mut stack = vec![Quote::Bare];
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let top = *stack.last().unwrap_or(&Quote::Bare);
        let next = chars.get(i + 1).copied();
        if let Some(name) = placeholder_at(&chars, i) {
            match PLACEHOLDERS.iter().find(|p| **p == name) {
                Some(known) => {
                    if !used.contains(known) {
                        used.push(known);
                    }
                    let var = env_name(known);
                    match top {
                        Quote::Double => out.push_str(&format!("${{{var}}}")),
                        Quote::Single => out.push_str(&format!("'\"${{{var}}}\"'")),
                        _ => out.push_str(&format!("\"${{{var}}}\"")),
                    }
                    i += name.chars().count() + 2;
                    continue;
                }
                None if top != Quote::Single => {
                    return Err(format!(
                        "unknown placeholder {{{name}}} (known: {})",
                        PLACEHOLDERS.join(" ")
                    ));
                }
                None => {}
            }
        }
        match (top, c) {
            (Quote::Single, '\'') => {
                stack.pop();
                out.push(c);
            }
            (Quote::Single, _) => out.push(c),
            (_, '\\') => {
                out.push(c);
                if let Some(n) = next {
                    out.push(n);
                    i += 1;
                }
            }
            (Quote::Double, '"') => {
                stack.pop();
                out.push(c);
            }
            (_, '$') if next == Some('(') => {
                stack.push(Quote::Sub);
                out.push_str("$(");
                i += 1;
            }
            (_, '$') if next == Some('{') => {
                // A shell parameter expansion: copied through its closing brace.
                let end = chars[i..]
                    .iter()
                    .position(|&x| x == '}')
                    .map(|p| i + p)
                    .ok_or_else(|| format!("unclosed '${{' in command: {template}"))?;
                out.extend(&chars[i..=end]);
                i = end;
            }
            (Quote::Tick, '`') => {
                stack.pop();
                out.push(c);
            }
            (_, '`') => {
                stack.push(Quote::Tick);
                out.push(c);
            }
            (Quote::Double, _) => out.push(c),
            (_, '\'') => {
                stack.push(Quote::Single);
                out.push(c);
            }
            (_, '"') => {
                stack.push(Quote::Double);
                out.push(c);
            }
            (_, '(') => {
                stack.push(Quote::Sub);
                out.push(c);
            }
            (Quote::Sub, ')') => {
                stack.pop();
                out.push(c);
            }
            _ => out.push(c),
        }
        i += 1;
    }
    Ok((out, used))
}

/// The script and the environment for a row: every placeholder the template uses must have a
/// value for this row.
pub fn prepare(template: &str, r: &Record) -> Result<(String, Vec<(String, String)>), String> {
    let (script, used) = translate(template)?;
    let values = placeholders(r);
    let mut env = Vec::new();
    for name in used {
        match values.iter().find(|(k, _)| *k == name) {
            Some((_, v)) => env.push((env_name(name), v.clone())),
            None => {
                return Err(format!(
                    "placeholder {{{name}}} is not available for a {} row",
                    r.source.as_str()
                ))
            }
        }
    }
    // Every value the row has is in the environment too, for scripts that read it there.
    for (k, v) in &values {
        let var = env_name(k);
        if !env.iter().any(|(e, _)| *e == var) {
            env.push((var, v.clone()));
        }
    }
    Ok((script, env))
}

/// Runs user-defined actions.
pub struct HookBackend {
    pub actions: Vec<UserAction>,
}

impl Backend for HookBackend {
    fn offers(&self, record: &Record) -> Vec<Offer> {
        self.actions
            .iter()
            .filter(|a| a.applies_to(record))
            .map(|a| Offer {
                verb: a.name(),
                title: a.description.clone(),
                builtin: false,
            })
            .collect()
    }

    fn plan<'a>(
        &'a self,
        verb: &'a str,
        record: &'a Record,
        _opts: &'a super::ActionOptions,
    ) -> BoxFut<'a, Result<Prepared, ActionError>> {
        Box::pin(async move {
            let Some(a) = self.actions.iter().find(|a| a.name() == verb) else {
                return Err(ActionError::not_applicable(format!(
                    "no user action named '{verb}'"
                )));
            };
            if !a.applies_to(record) {
                return Err(ActionError::not_applicable(format!(
                    "'{}' applies only to {} rows",
                    a.description,
                    a.sources.join(", ")
                )));
            }
            let (script, env) = prepare(&a.command, record).map_err(ActionError::not_applicable)?;
            let timeout = a.timeout.unwrap_or(Duration::from_secs(300));
            let mut plan = Plan::for_record(
                &format!("hook: {}", a.description),
                verb,
                &a.description,
                record,
                &a.command,
            );
            plan.old_not_after = None;
            plan.steps_label = "command".to_owned();
            plan.steps = vec![format!("sh -c {}", crate::model::text::clean(&script))];
            let shown: Vec<String> = env
                .iter()
                .filter(|(k, _)| script.contains(k.as_str()))
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            if !shown.is_empty() {
                plan.details.push(("values".to_owned(), shown.join("  ")));
            }
            plan.details.push((
                "limit".to_owned(),
                humantime::format_duration(timeout).to_string(),
            ));
            if a.dangerous {
                plan.warnings
                    .push("marked dangerous in the config".to_owned());
            }
            plan.risk = if a.dangerous {
                Risk::Destructive
            } else {
                Risk::Inspect
            };
            plan.confirm = a.confirm || a.dangerous;
            let mut cmd = Command::shell(&script, &[], timeout, Step::Run);
            for (k, v) in &env {
                cmd = cmd.env(k, v);
            }
            let cmd = Arc::new(cmd);
            Ok(Prepared {
                plan,
                job: Box::new(move |rep| {
                    Box::pin(async move {
                        rep.step(
                            Step::Run,
                            format!("$ {}", cmd.args.get(1).cloned().unwrap_or_default()),
                        )
                        .await;
                        match command::run(&cmd, &rep).await {
                            Ok(r) => Ok(Outcome {
                                message: format!("exit 0 ({} output line(s))", r.lines),
                                ..Outcome::default()
                            }),
                            Err(e) => Err(ActionError::at(Step::Run, e)),
                        }
                    })
                }),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_quoted_variable_references_for_each_context() {
        let t = |s: &str| translate(s).unwrap().0;
        assert_eq!(t("echo {host}"), "echo \"${CERTDECK_HOST}\"");
        assert_eq!(t("echo \"{subject}\""), "echo \"${CERTDECK_SUBJECT}\"");
        assert_eq!(t("echo '{subject}'"), "echo ''\"${CERTDECK_SUBJECT}\"''");
        assert_eq!(
            t("echo \"a $(dirname {path}) b\""),
            "echo \"a $(dirname \"${CERTDECK_PATH}\") b\""
        );
        assert_eq!(t("echo ${HOME} {a,b}"), "echo ${HOME} {a,b}");
        assert!(translate("echo {nope}").unwrap_err().contains("{nope}"));
    }

    #[test]
    fn unavailable_placeholders_are_refused() {
        let r = Record::new(SourceKind::TLS, "api.example.com:8443".into(), 0);
        assert!(prepare("echo {path}", &r).unwrap_err().contains("{path}"));
        let (script, env) = prepare("echo {host} {port}", &r).unwrap();
        assert_eq!(script, "echo \"${CERTDECK_HOST}\" \"${CERTDECK_PORT}\"");
        assert!(env.contains(&("CERTDECK_HOST".into(), "api.example.com".into())));
        let f = Record::new(SourceKind::FILE, "/etc/ssl/a b.pem#2".into(), 0);
        let (_, env) = prepare("ls {path}", &f).unwrap();
        assert!(env.contains(&("CERTDECK_PATH".into(), "/etc/ssl/a b.pem".into())));
    }
}
