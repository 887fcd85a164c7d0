//! The Prometheus source (`prometheus`): certificates that exporters already collect, read
//! through a Prometheus server's HTTP API (`/api/v1/query`) with no credentials to the places
//! they came from. Each series of x509-certificate-exporter (`x509_cert_not_after`),
//! ssl_exporter (`ssl_cert_not_after`, `ssl_file_cert_not_after`,
//! `ssl_kubernetes_cert_not_after`, `ssl_kubeconfig_cert_not_after`), blackbox_exporter
//! (`probe_ssl_earliest_cert_expiry`, with `probe_ssl_last_chain_info`) and certdeck's own
//! exporter becomes a row whose location is built from its labels.
//!
//! Values come from one instant query (`/api/v1/query`); the label sets of
//! `probe_ssl_last_chain_info`, whose value says nothing, come from `/api/v1/series`.
//!
//! This module is pure: the queries, and turning their answers into rows. `source` does the
//! HTTP.

pub mod source;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::model::text::clean;
use crate::model::{CertFacts, Extra, Record, SourceKind};

pub const KIND: SourceKind = SourceKind::new("prometheus");

/// The one instant query that fetches the value of every certificate series certdeck knows
/// of.
pub const QUERY: &str = r#"{__name__=~"x509_cert_not_after|x509_cert_not_before|ssl_cert_not_after|ssl_cert_not_before|ssl_file_cert_not_after|ssl_file_cert_not_before|ssl_kubernetes_cert_not_after|ssl_kubernetes_cert_not_before|ssl_kubeconfig_cert_not_after|ssl_kubeconfig_cert_not_before|probe_ssl_earliest_cert_expiry"}"#;

/// blackbox_exporter's chain details: only its labels matter (its value is always 1), so
/// they are read from `/api/v1/series`.
pub const CHAIN_INFO: &str = "probe_ssl_last_chain_info";

/// The `/api/v1/series` answer.
#[derive(Debug, serde::Deserialize)]
pub struct SeriesAnswer {
    pub status: String,
    #[serde(default)]
    pub data: Option<Vec<BTreeMap<String, String>>>,
    #[serde(default, rename = "errorType")]
    pub error_type: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
}

/// Chain-info label sets from `/api/v1/series` as series of value 1, or `None` when one
/// probe (job, instance) has several label sets in the window (its chain changed, e.g. a
/// renewal): the series API cannot tell the current one, an instant query can.
pub fn chain_info_from_label_sets(sets: Vec<BTreeMap<String, String>>) -> Option<Vec<Series>> {
    let mut per_probe: HashMap<JobInstance<'_>, usize> = HashMap::new();
    for l in &sets {
        *per_probe
            .entry((label(l, "job"), label(l, "instance")))
            .or_insert(0) += 1;
    }
    if per_probe.values().any(|&n| n > 1) {
        return None;
    }
    Some(
        sets.into_iter()
            .filter(|l| l.get("__name__").map(String::as_str) == Some(CHAIN_INFO))
            .map(|metric| Series {
                metric,
                value: (0.0, "1".to_owned()),
            })
            .collect(),
    )
}

/// One series of an instant-query answer.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Series {
    pub metric: BTreeMap<String, String>,
    /// `[time, "value"]`.
    pub value: (f64, String),
}

/// The `/api/v1/query` answer.
#[derive(Debug, serde::Deserialize)]
pub struct Answer {
    pub status: String,
    #[serde(default)]
    pub data: Option<AnswerData>,
    #[serde(default, rename = "errorType")]
    pub error_type: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
pub struct AnswerData {
    #[serde(rename = "resultType")]
    pub result_type: String,
    #[serde(default)]
    pub result: Vec<Series>,
}

/// Which exporter a series comes from.
fn exporter(name: &str, labels: &BTreeMap<String, String>) -> &'static str {
    if name.starts_with("probe_ssl") {
        "blackbox_exporter"
    } else if name.starts_with("ssl_") {
        "ssl_exporter"
    } else if labels.contains_key("location") && labels.contains_key("source") {
        // certdeck serve exports x509_cert_* with its own `location` and `source` labels.
        "certdeck"
    } else {
        "x509-certificate-exporter"
    }
}

fn label<'a>(l: &'a BTreeMap<String, String>, k: &str) -> Option<&'a str> {
    l.get(k).map(String::as_str).filter(|v| !v.is_empty())
}

/// Where a series says its certificate is, from its labels.
pub fn location_of(name: &str, l: &BTreeMap<String, String>) -> String {
    let cluster = label(l, "cluster")
        .map(|c| format!("{c}/"))
        .unwrap_or_default();
    if exporter(name, l) == "certdeck" {
        if let Some(loc) = label(l, "location") {
            return loc.to_owned();
        }
    }
    if let (Some(ns), Some(s)) = (label(l, "secret_namespace"), label(l, "secret_name")) {
        let key = label(l, "secret_key").unwrap_or("tls.crt");
        return format!("{cluster}{ns}/secret/{s}#{key}");
    }
    if let (Some(ns), Some(s)) = (label(l, "configmap_namespace"), label(l, "configmap_name")) {
        let key = label(l, "configmap_key").unwrap_or("ca.crt");
        return format!("{cluster}{ns}/configmap/{s}#{key}");
    }
    // ssl_exporter's kubernetes series: namespace + secret + key.
    if let (Some(ns), Some(s)) = (label(l, "namespace"), label(l, "secret")) {
        let key = label(l, "key").unwrap_or("tls.crt");
        return format!("{cluster}{ns}/secret/{s}#{key}");
    }
    if let Some(f) = label(l, "filepath").or_else(|| label(l, "file")) {
        return format!("{cluster}{f}");
    }
    if let Some(k) = label(l, "kubeconfig") {
        return format!("{cluster}{k}");
    }
    match (label(l, "instance"), label(l, "job")) {
        (Some(i), _) => format!("{cluster}{i}"),
        (None, Some(j)) => format!("{cluster}{j}"),
        (None, None) => format!("{cluster}{name}"),
    }
}

/// The labels that make two series of one certificate (`not_after` and `not_before`) the same.
fn join_key(l: &BTreeMap<String, String>) -> BTreeMap<&str, &str> {
    l.iter()
        .filter(|(k, _)| k.as_str() != "__name__")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

fn unix(v: &str) -> Option<i64> {
    let f: f64 = v.parse().ok()?;
    f.is_finite().then(|| f.round() as i64)
}

/// A blackbox probe's `(job, instance)`.
type JobInstance<'a> = (Option<&'a str>, Option<&'a str>);

/// Turn an answer's series into rows, one per certificate series (not_before and chain info
/// joined in). `base` is the Prometheus server (`prometheus 127.0.0.1:9090`), part of each
/// row's details; `now` stamps the rows.
pub fn rows(series: &[Series], base: &str, now: i64) -> Vec<Record> {
    let mut not_before: HashMap<BTreeMap<&str, &str>, i64> = HashMap::new();
    // blackbox: chain info by (job, instance).
    let mut chain_info: HashMap<JobInstance<'_>, &BTreeMap<String, String>> = HashMap::new();
    for s in series {
        let name = s.metric.get("__name__").map(String::as_str).unwrap_or("");
        if name.ends_with("_not_before") {
            if let Some(v) = unix(&s.value.1) {
                not_before.insert(join_key(&s.metric), v);
            }
        } else if name == "probe_ssl_last_chain_info" && s.value.1 != "0" {
            chain_info.insert(
                (label(&s.metric, "job"), label(&s.metric, "instance")),
                &s.metric,
            );
        }
    }
    let mut out: Vec<Record> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    // Rows per place (row id), to tell apart several certificates at one place.
    let mut places: HashMap<String, usize> = HashMap::new();
    for s in series {
        let name = s.metric.get("__name__").map(String::as_str).unwrap_or("");
        if !(name.ends_with("_not_after") || name == "probe_ssl_earliest_cert_expiry") {
            continue;
        }
        let Some(not_after) = unix(&s.value.1) else {
            continue;
        };
        let l = &s.metric;
        let exp = exporter(name, l);
        let location = clean(&location_of(name, l)).into_owned();
        let info = (name == "probe_ssl_earliest_cert_expiry")
            .then(|| {
                chain_info
                    .get(&(label(l, "job"), label(l, "instance")))
                    .copied()
            })
            .flatten();
        let pick = |keys: &[&str]| {
            keys.iter()
                .find_map(|k| label(l, k).or_else(|| info.and_then(|i| label(i, k))))
                .map(|v| clean(v).into_owned())
        };
        let cn = pick(&["subject_CN", "cn"]);
        let subject = pick(&["subject"]).unwrap_or_else(|| {
            cn.as_ref()
                .map(|c| format!("CN={c}"))
                .unwrap_or_else(|| "unknown subject".to_owned())
        });
        let issuer = pick(&["issuer"]).unwrap_or_else(|| {
            pick(&["issuer_CN"])
                .map(|c| format!("CN={c}"))
                .unwrap_or_else(|| "unknown issuer".to_owned())
        });
        let serial = pick(&["serial_number", "serial", "serialnumber"])
            .unwrap_or_default()
            .to_ascii_lowercase();
        let sha = pick(&["fingerprint_sha256"]).unwrap_or_else(|| {
            // No fingerprint in the series: an identity from what it does say, so one
            // certificate seen through two exporters is one certificate.
            crate::model::cert::sha256_hex(
                format!("prometheus|{subject}|{issuer}|{serial}|{not_after}").as_bytes(),
            )
        });
        let nb = not_before.get(&join_key(l)).copied().unwrap_or(i64::MIN);
        let facts = CertFacts {
            der: Arc::from(Vec::new()),
            sha256: sha,
            common_name: cn.or_else(|| {
                crate::model::cert::short_cn(&subject)
                    .ne(&subject)
                    .then(|| crate::model::cert::short_cn(&subject).to_owned())
            }),
            subject,
            issuer,
            serial,
            not_before: if nb == i64::MIN {
                not_after.min(now)
            } else {
                nb
            },
            not_after,
            sans: Vec::new(),
            key: String::new(),
            signature_algorithm: String::new(),
            is_ca: false,
            self_issued: false,
            subject_key_id: None,
            authority_key_id: None,
            spki_sha256: None,
        };
        let labels: serde_json::Map<String, serde_json::Value> = l
            .iter()
            .map(|(k, v)| (clean(k).into_owned(), clean(v).into_owned().into()))
            .collect();
        let mut details = vec![
            ("Prometheus".to_owned(), base.to_owned()),
            ("Series".to_owned(), clean(name).into_owned()),
            ("Exporter".to_owned(), exp.to_owned()),
        ];
        if nb == i64::MIN {
            details.push(("Not before".to_owned(), "not exported".to_owned()));
        }
        for (k, v) in l.iter().filter(|(k, _)| k.as_str() != "__name__") {
            details.push((clean(k).into_owned(), clean(v).into_owned()));
        }
        let extra = Extra {
            key: "prometheus",
            json: serde_json::json!({
                "server": base,
                "series": name,
                "exporter": exp,
                "labels": labels,
                // No `*_not_before` series: the lifetime is unknown, so the row is judged by
                // days left, never as a short-lived certificate.
                "not_before_unknown": nb == i64::MIN,
            }),
            details,
            note: Some(format!("via {exp} in {base}")),
        };
        let mut r = Record::new(KIND, location, now).with_cert(Arc::new(facts));
        r.extra = Some(Arc::new(extra));
        // Several exporters (or Prometheus replicas) may report one certificate at one place:
        // keep one row, the first.
        let key = format!(
            "{}|{}",
            r.id,
            r.cert.as_ref().map(|c| c.sha256.as_str()).unwrap_or("")
        );
        if seen.contains_key(&key) {
            continue;
        }
        let at_place = places.entry(r.id.clone()).or_insert(0);
        *at_place += 1;
        if *at_place > 1 {
            // Same place, another certificate (a bundle): tell them apart.
            let n = *at_place;
            r = Record {
                id: crate::model::record::location_id(KIND, &format!("{}@{n}", r.location)),
                location: format!("{} ({n})", r.location),
                ..r
            };
        }
        seen.insert(key, out.len());
        out.push(r);
    }
    out
}

/// A direct read's location in the form a series' location takes (for de-duplication):
/// `host:port` targets as they are, files as paths, Secrets as `ns/secret/name#key`.
pub fn direct_key(r: &Record) -> Option<String> {
    if let Some(k) = &r.k8s {
        if k.kind == "Secret" {
            return Some(format!(
                "{}/secret/{}#{}",
                k.namespace,
                k.name,
                k.key.as_deref().unwrap_or("tls.crt")
            ));
        }
    }
    Some(match r.location.rsplit_once('#') {
        Some((p, n)) if r.source == SourceKind::FILE && n.chars().all(|c| c.is_ascii_digit()) => {
            p.to_owned()
        }
        _ => r.location.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(name: &str, labels: &[(&str, &str)], v: &str) -> Series {
        let mut metric: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        metric.insert("__name__".into(), name.into());
        Series {
            metric,
            value: (0.0, v.into()),
        }
    }

    #[test]
    fn series_of_each_exporter_become_rows_located_by_their_labels() {
        let series = vec![
            s(
                "x509_cert_not_after",
                &[
                    ("secret_namespace", "shop"),
                    ("secret_name", "web-tls"),
                    ("secret_key", "tls.crt"),
                    ("subject_CN", "web.shop"),
                    ("issuer_CN", "Shop CA"),
                    ("serial_number", "0A1B"),
                    ("cluster", "prod"),
                ],
                "1800000000",
            ),
            s(
                "x509_cert_not_before",
                &[
                    ("secret_namespace", "shop"),
                    ("secret_name", "web-tls"),
                    ("secret_key", "tls.crt"),
                    ("subject_CN", "web.shop"),
                    ("issuer_CN", "Shop CA"),
                    ("serial_number", "0A1B"),
                    ("cluster", "prod"),
                ],
                "1700000000",
            ),
            s(
                "probe_ssl_earliest_cert_expiry",
                &[("instance", "127.0.0.1:8443"), ("job", "blackbox")],
                "1.8e+09",
            ),
            s(
                "probe_ssl_last_chain_info",
                &[
                    ("instance", "127.0.0.1:8443"),
                    ("job", "blackbox"),
                    ("subject", "CN=edge.test,O=Edge"),
                    ("issuer", "CN=Edge CA"),
                    ("fingerprint_sha256", "ab".repeat(32).as_str()),
                ],
                "1",
            ),
            s(
                "ssl_file_cert_not_after",
                &[("file", "/etc/ssl/a.pem"), ("cn", "a\u{1b}[2J")],
                "1800000001",
            ),
        ];
        let rows = rows(&series, "prometheus 127.0.0.1:9090", 1_750_000_000);
        assert_eq!(rows.len(), 3);
        let k8s = &rows[0];
        assert_eq!(k8s.location, "prod/shop/secret/web-tls#tls.crt");
        let c = k8s.cert.as_ref().expect("cert");
        assert_eq!((c.not_before, c.not_after), (1_700_000_000, 1_800_000_000));
        assert_eq!(c.serial, "0a1b");
        assert_eq!(c.issuer, "CN=Shop CA");
        let bb = &rows[1];
        assert_eq!(bb.location, "127.0.0.1:8443");
        let c = bb.cert.as_ref().expect("cert");
        assert_eq!(c.subject, "CN=edge.test,O=Edge");
        assert_eq!(c.sha256, "ab".repeat(32));
        assert_eq!(c.not_after, 1_800_000_000);
        let f = &rows[2];
        assert_eq!(f.location, "/etc/ssl/a.pem");
        assert!(!f.cert.as_ref().expect("cert").subject.contains('\u{1b}'));
        assert!(
            f.extra.as_ref().expect("extra").note.as_deref()
                == Some("via ssl_exporter in prometheus 127.0.0.1:9090")
        );
    }

    #[test]
    fn chain_info_label_sets_join_unless_one_probe_has_several() {
        let set = |inst: &str, subject: &str| -> BTreeMap<String, String> {
            [
                ("__name__", CHAIN_INFO),
                ("job", "bb"),
                ("instance", inst),
                ("subject", subject),
            ]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
        };
        let info = chain_info_from_label_sets(vec![set("a:443", "CN=a"), set("b:443", "CN=b")])
            .expect("one per probe");
        let mut series = vec![s(
            "probe_ssl_earliest_cert_expiry",
            &[("instance", "b:443"), ("job", "bb")],
            "1800000000",
        )];
        series.extend(info);
        let r = rows(&series, "p", 0);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].cert.as_ref().expect("cert").subject, "CN=b");
        assert!(
            chain_info_from_label_sets(vec![set("a:443", "CN=old"), set("a:443", "CN=new")])
                .is_none(),
            "a renewal in the window: ask for values"
        );
    }

    #[test]
    fn one_certificate_reported_twice_at_one_place_is_one_row() {
        let a = s(
            "x509_cert_not_after",
            &[
                ("filepath", "/a.pem"),
                ("serial_number", "01"),
                ("instance", "x"),
            ],
            "100",
        );
        let mut b = a.clone();
        b.metric.insert("instance".into(), "y".into());
        assert_eq!(rows(&[a, b], "p", 0).len(), 1);
    }
}
