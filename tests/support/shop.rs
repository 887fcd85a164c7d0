//! A small shop namespace for dashboard tests: two cert-manager Certificates with their
//! Secrets, a plain TLS Secret, and a simulated cert-manager that answers a manual trigger.
#![allow(dead_code, clippy::unwrap_used)]

use std::time::Duration;

use crate::k8s_common::{facts, leaf};
use crate::k8s_fixture::{self, Fixture};

/// Two cert-manager Certificates with their Secrets, and a plain TLS Secret.
pub fn seed(fx: &Fixture) {
    for name in ["web", "api"] {
        let host = format!("{name}.shop.example");
        let p = leaf(&[&host], 5, None);
        fx.insert_value(k8s_fixture::tls_secret(
            "shop",
            &format!("{name}-tls"),
            &p.cert,
            &p.key,
        ));
        fx.insert_value(k8s_fixture::certificate(
            "shop",
            name,
            &format!("{name}-tls"),
            "ca-issuer",
            &[&host],
        ));
        fx.set_certificate_ready(
            "shop",
            name,
            &certdeck::clock::rfc3339(facts(&p.cert).not_after),
            1,
        );
    }
    let p = leaf(&["legacy.shop.example"], 20, None);
    fx.insert_value(k8s_fixture::tls_secret(
        "shop",
        "legacy-tls",
        &p.cert,
        &p.key,
    ));
    // cert-manager, simulated: a manual trigger gets a fresh certificate and Ready, revision + 1.
    fx.on_write("certificates", Duration::from_millis(200), |w| {
        let issuing = w.subresource.as_deref() == Some("status")
            && w.object["status"]["conditions"]
                .as_array()
                .is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Issuing" && c["status"] == "True")
                });
        if !issuing {
            return None;
        }
        let host = w.object["spec"]["dnsNames"][0].as_str().unwrap().to_owned();
        let p = leaf(&[&host], 90, None);
        Some(k8s_fixture::tls_secret(
            &w.namespace,
            w.object["spec"]["secretName"].as_str().unwrap(),
            &p.cert,
            &p.key,
        ))
    });
    fx.on_write("certificates", Duration::from_millis(400), |w| {
        if w.subresource.as_deref() != Some("status") {
            return None;
        }
        let mut c = w.object.clone();
        if !c["status"]["conditions"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["type"] == "Issuing"))
        {
            return None;
        }
        let rev = c["status"]["revision"].as_i64().unwrap_or(0) + 1;
        k8s_fixture::set_ready_status(&mut c, "2027-03-01T00:00:00Z", rev);
        Some(c)
    });
}
