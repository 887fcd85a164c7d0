//! Notifications of `certdeck scan --notify NAME` (`[[notify]]` in the config file): a JSON
//! webhook, a Slack-compatible incoming webhook, or Alertmanager's API v2. Sent on state
//! changes only: each notifier keeps the statuses it last delivered in
//! `STATE_DIR/notify-NAME.json`, and that file is written only after a delivery succeeded, so
//! a failed delivery is retried (three tries per run, then again on the next run) and never
//! lost silently.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::rfc3339;
use crate::model::text::clean;
use crate::model::{Status, Thresholds};

/// Config-file section.
pub const SECTION: &str = "notify";

/// `[[notify]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    pub name: String,
    /// `webhook`, `slack` or `alertmanager`.
    pub kind: Kind,
    /// The webhook URL, or Alertmanager's base URL (`http://alertmanager:9093`).
    pub url: String,
    /// Alertmanager: how long a firing alert lives without being sent again (default 24h);
    /// firing alerts are sent again after half of it even when nothing changed.
    #[serde(default, deserialize_with = "crate::config::de_opt_duration")]
    pub alert_ttl: Option<Duration>,
    /// Per request (default 10s).
    #[serde(default, deserialize_with = "crate::config::de_opt_duration")]
    pub timeout: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Webhook,
    Slack,
    Alertmanager,
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("no [[notify]] named '{0}' in the config file")]
    Unknown(String),
    #[error("notify '{name}': delivery failed after {tries} tries: {why}; the changes will be sent on the next run")]
    Delivery {
        name: String,
        tries: u32,
        why: String,
    },
    #[error("notify '{name}': cannot keep its state in {path}: {why}")]
    State {
        name: String,
        path: PathBuf,
        why: String,
    },
}

/// What a notifier last delivered about one row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    pub status: String,
    pub location: String,
    pub source: String,
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub not_after: Option<i64>,
    /// When the row's current (non-ok) status began, unix seconds.
    pub since: i64,
}

/// A notifier's state file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    /// Rows that are not ok, by row id.
    pub problems: BTreeMap<String, Seen>,
    /// When firing alerts were last sent (Alertmanager), unix seconds.
    #[serde(default)]
    pub last_sent: Option<i64>,
}

/// One change, as the JSON webhook payload carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// `new` (was ok or unseen), `changed` (another problem status) or `resolved`.
    pub change: &'static str,
    pub id: String,
    pub source: String,
    pub location: String,
    pub subject: Option<String>,
    pub not_after: Option<String>,
    pub status: String,
    pub previous_status: Option<String>,
}

/// The statuses that are problems (everything but ok).
fn is_problem(s: Status) -> bool {
    s != Status::Ok
}

/// The current problems of a scan.
pub fn problems(
    records: &[crate::model::Record],
    now: i64,
    t: Thresholds,
    before: &State,
) -> BTreeMap<String, Seen> {
    let mut out = BTreeMap::new();
    for r in records {
        let a = crate::model::assess(r, now, t);
        if !is_problem(a.status) {
            continue;
        }
        let status = a.status.as_str().to_owned();
        let since = before
            .problems
            .get(&r.id)
            .filter(|s| s.status == status)
            .map(|s| s.since)
            .unwrap_or(now);
        out.insert(
            r.id.clone(),
            Seen {
                status,
                location: clean(&r.location).into_owned(),
                source: r.source.as_str().to_owned(),
                subject: r.cert.as_ref().map(|c| clean(&c.subject).into_owned()),
                not_after: a.effective_not_after,
                since,
            },
        );
    }
    out
}

/// What changed between what was delivered and now.
pub fn changes(before: &BTreeMap<String, Seen>, now: &BTreeMap<String, Seen>) -> Vec<Change> {
    let mk = |change, id: &str, s: &Seen, status: &str, prev: Option<&str>| Change {
        change,
        id: id.to_owned(),
        source: s.source.clone(),
        location: s.location.clone(),
        subject: s.subject.clone(),
        not_after: s.not_after.map(rfc3339),
        status: status.to_owned(),
        previous_status: prev.map(str::to_owned),
    };
    let mut out = Vec::new();
    for (id, s) in now {
        match before.get(id) {
            None => out.push(mk("new", id, s, &s.status, None)),
            Some(b) if b.status != s.status => {
                out.push(mk("changed", id, s, &s.status, Some(&b.status)))
            }
            Some(_) => {}
        }
    }
    for (id, b) in before {
        if !now.contains_key(id) {
            out.push(mk("resolved", id, b, "ok", Some(&b.status)));
        }
    }
    out
}

/// `2 new problems, 1 resolved`.
pub fn summary(changes: &[Change]) -> String {
    let n = |k: &str| changes.iter().filter(|c| c.change == k).count();
    let mut parts = Vec::new();
    for (k, word) in [
        ("new", "new"),
        ("changed", "changed"),
        ("resolved", "resolved"),
    ] {
        let c = n(k);
        if c > 0 {
            parts.push(format!("{c} {word}"));
        }
    }
    format!("certdeck: {}", parts.join(", "))
}

/// The JSON webhook payload (documented in the README).
pub fn webhook_payload(changes: &[Change], now: i64) -> serde_json::Value {
    serde_json::json!({
        "version": 1,
        "generator": "certdeck",
        "generated_at": rfc3339(now),
        "summary": summary(changes),
        "changes": changes,
    })
}

/// A Slack incoming-webhook payload (`text`, mrkdwn).
pub fn slack_payload(changes: &[Change]) -> serde_json::Value {
    let mut text = summary(changes);
    for c in changes {
        let what = match c.change {
            "resolved" => format!(
                "resolved (was {})",
                c.previous_status.as_deref().unwrap_or("?")
            ),
            _ => c.status.to_uppercase(),
        };
        text.push_str(&format!(
            "\n• *{what}* `{}` {} ({}){}",
            c.location.replace('`', "'"),
            c.subject.as_deref().unwrap_or("-"),
            c.source,
            c.not_after
                .as_ref()
                .map(|t| format!(", expires {t}"))
                .unwrap_or_default()
        ));
    }
    serde_json::json!({ "text": text })
}

fn severity(status: &str) -> &'static str {
    match status {
        "expired" | "revoked" | "critical" | "not_yet_valid" => "critical",
        "warning" => "warning",
        _ => "info",
    }
}

/// Alertmanager API v2 alerts: every current problem firing (`endsAt` = now + ttl), and every
/// resolved one with `endsAt` = now.
pub fn alertmanager_payload(
    current: &BTreeMap<String, Seen>,
    resolved: &[(&String, &Seen)],
    now: i64,
    ttl: Duration,
) -> serde_json::Value {
    let alert = |id: &str, s: &Seen, ends: i64| {
        let mut labels = serde_json::Map::new();
        labels.insert("alertname".into(), "CertdeckCertificate".into());
        labels.insert("id".into(), id.into());
        labels.insert("source".into(), s.source.clone().into());
        labels.insert("location".into(), s.location.clone().into());
        labels.insert("severity".into(), severity(&s.status).into());
        if let Some(cn) = s
            .subject
            .as_deref()
            .map(crate::model::cert::short_cn)
            .filter(|c| !c.is_empty())
        {
            labels.insert("subject_CN".into(), cn.into());
        }
        serde_json::json!({
            "labels": labels,
            "annotations": {
                "status": s.status,
                "summary": format!("{} {}: {}", s.source, s.location, s.status),
                "not_after": s.not_after.map(rfc3339),
            },
            "startsAt": rfc3339(s.since),
            "endsAt": rfc3339(ends),
        })
    };
    let mut out: Vec<serde_json::Value> = current
        .iter()
        .map(|(id, s)| alert(id, s, now + ttl.as_secs() as i64))
        .collect();
    out.extend(resolved.iter().map(|(id, s)| alert(id, s, now)));
    serde_json::Value::Array(out)
}

fn state_path(name: &str) -> Option<PathBuf> {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    crate::config::state_dir().map(|d| d.join(format!("notify-{safe}.json")))
}

/// POST `body` with retries (3 tries, 0.5 s then 1 s apart).
async fn post(
    http: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
    name: &str,
) -> Result<(), NotifyError> {
    const TRIES: u32 = 3;
    let mut why = String::new();
    for i in 0..TRIES {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(500 << (i - 1))).await;
        }
        match http.post(url).json(body).send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => why = format!("HTTP {}", r.status()),
            Err(e) => {
                why = clean(&e.without_url().to_string()).into_owned();
            }
        }
        tracing::warn!("notify {name}: try {} failed: {why}", i + 1);
    }
    Err(NotifyError::Delivery {
        name: name.to_owned(),
        tries: TRIES,
        why,
    })
}

/// Send one notifier's changes after a scan; returns a line saying what was sent (or
/// `None` when nothing changed).
pub async fn run(
    cfg: &NotifyConfig,
    records: &[crate::model::Record],
    t: Thresholds,
    now: i64,
) -> Result<Option<String>, NotifyError> {
    let path = state_path(&cfg.name).ok_or_else(|| NotifyError::State {
        name: cfg.name.clone(),
        path: PathBuf::from("?"),
        why: "no state directory".into(),
    })?;
    let state_err = |why: String| NotifyError::State {
        name: cfg.name.clone(),
        path: path.clone(),
        why,
    };
    let before: State = match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| state_err(e.to_string()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
        Err(e) => return Err(state_err(e.to_string())),
    };
    let current = problems(records, now, t, &before);
    let ch = changes(&before.problems, &current);
    let ttl = cfg.alert_ttl.unwrap_or(Duration::from_secs(86_400));
    let refresh = cfg.kind == Kind::Alertmanager
        && !current.is_empty()
        && before
            .last_sent
            .is_none_or(|t| now - t >= (ttl.as_secs() / 2) as i64);
    if ch.is_empty() && !refresh {
        return Ok(None);
    }
    crate::sources::tls::install_crypto_provider();
    let http = reqwest::Client::builder()
        .tls_backend_rustls()
        .timeout(cfg.timeout.unwrap_or(Duration::from_secs(10)))
        .build()
        .map_err(|e| NotifyError::Delivery {
            name: cfg.name.clone(),
            tries: 0,
            why: e.to_string(),
        })?;
    match cfg.kind {
        Kind::Webhook => post(&http, &cfg.url, &webhook_payload(&ch, now), &cfg.name).await?,
        Kind::Slack => post(&http, &cfg.url, &slack_payload(&ch), &cfg.name).await?,
        Kind::Alertmanager => {
            let resolved: Vec<(&String, &Seen)> = before
                .problems
                .iter()
                .filter(|(id, _)| !current.contains_key(*id))
                .collect();
            let url = format!("{}/api/v2/alerts", cfg.url.trim_end_matches('/'));
            let body = alertmanager_payload(&current, &resolved, now, ttl);
            post(&http, &url, &body, &cfg.name).await?;
        }
    }
    let state = State {
        problems: current,
        last_sent: Some(now),
    };
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(|e| state_err(e.to_string()))?;
    }
    let text = serde_json::to_vec_pretty(&state).map_err(|e| state_err(e.to_string()))?;
    crate::fsx::write_private(&path, &text).map_err(|e| state_err(e.to_string()))?;
    Ok(Some(if ch.is_empty() {
        format!("notify '{}': firing alerts sent again", cfg.name)
    } else {
        format!("notify '{}': {}", cfg.name, summary(&ch))
    }))
}

/// The notifiers named on the command line, from the config file.
pub fn select(
    doc: &crate::config::Document,
    names: &[String],
) -> Result<Vec<NotifyConfig>, crate::settings::SettingsError> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let all: Vec<NotifyConfig> = doc.section(SECTION)?.unwrap_or_default();
    names
        .iter()
        .map(|n| {
            all.iter().find(|c| c.name == *n).cloned().ok_or_else(|| {
                crate::settings::SettingsError::Build(NotifyError::Unknown(n.clone()).to_string())
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(status: &str) -> Seen {
        Seen {
            status: status.into(),
            location: "a:443".into(),
            source: "tls".into(),
            subject: Some("CN=a".into()),
            not_after: Some(100),
            since: 5,
        }
    }

    #[test]
    fn changes_are_new_changed_and_resolved_and_nothing_else() {
        let mut before = BTreeMap::new();
        before.insert("x".to_owned(), seen("warning"));
        before.insert("y".to_owned(), seen("expired"));
        before.insert("z".to_owned(), seen("error"));
        let mut now = BTreeMap::new();
        now.insert("x".to_owned(), seen("critical"));
        now.insert("y".to_owned(), seen("expired"));
        now.insert("w".to_owned(), seen("warning"));
        let c = changes(&before, &now);
        let kinds: Vec<(&str, &str)> = c.iter().map(|c| (c.change, c.id.as_str())).collect();
        assert_eq!(kinds, [("new", "w"), ("changed", "x"), ("resolved", "z")]);
        assert_eq!(summary(&c), "certdeck: 1 new, 1 changed, 1 resolved");
        assert!(changes(&now, &now).is_empty(), "no change, no notification");
    }
}
