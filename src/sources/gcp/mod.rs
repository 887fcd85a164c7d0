//! The Google Cloud source: Certificate Manager certificates of one or several projects, in
//! `global` and the regional locations named (or every location the project has).
//!
//! This module owns the settings (the `--gcp-*` flags and the `[[gcp]]` config blocks), the
//! facts of a row (`facts`: managed state, provisioning issue, per-domain authorization, the
//! renewal sentence), the REST reader (`api`, plain reqwest over the v1 REST surface), the
//! plugin (`source`) and the actions (`actions`: upload a renewed certificate and key into a
//! self-managed certificate; for Google-managed ones, say what blocks the renewal).
//!
//! Credentials are found exactly as gcloud and Google's client libraries find them, by
//! Google's own `google-cloud-auth`: Application Default Credentials
//! (`GOOGLE_APPLICATION_CREDENTIALS` with a service-account, authorized-user or external
//! account / workload identity federation JSON, else gcloud's ADC file), else the metadata
//! server. certdeck never reads or stores a credential itself.
//!
//! Each (project, location) is its own source instance: missing or denied credentials are
//! one source-level problem naming what is missing (`certificatemanager.certs.list denied
//! on projects/P/locations/L`), and every other instance still loads.

pub mod facts;
pub mod settings;

#[cfg(feature = "gcp")]
pub mod actions;
#[cfg(feature = "gcp")]
pub mod api;
#[cfg(feature = "gcp")]
pub mod source;

pub use facts::{renewal_overdue, renewal_sentence, GcpFacts};
pub use settings::{GcpArgs, GcpConfig, GcpSettings, UploadConfig};

/// Text from outside (API messages, names, labels) with control characters removed, long
/// base64-like runs (tokens, keys) redacted and its length bounded, so it is safe to show in a
/// terminal, a log line or the audit log.
pub fn clean(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max + 8));
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= 40 && run.chars().any(|c| c.is_ascii_digit()) {
            out.push_str("[redacted]");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '+' | '_' | '=' | '-' | '.') {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(if c.is_control() { ' ' } else { c });
        }
    }
    flush(&mut run, &mut out);
    let mut cut: String = out.chars().take(max).collect();
    if out.chars().count() > max {
        cut.push('…');
    }
    cut.trim().to_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn clean_strips_control_characters_and_redacts_tokens() {
        let s = super::clean(
            "bad \x1b[2Jtoken ya29.a0AfH6SMBx1234567890abcdefghijklmnopqrstuvwxyzABCDEF here",
            200,
        );
        assert!(!s.contains('\x1b'), "{s}");
        assert!(!s.contains("ya29"), "{s}");
        assert!(s.contains("[redacted]"), "{s}");
        let s = super::clean(
            "projects/my-project-123/locations/global/certificates/web",
            200,
        );
        assert_eq!(
            s,
            "projects/my-project-123/locations/global/certificates/web"
        );
    }
}
