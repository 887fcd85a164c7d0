//! cert-manager `Certificate` resources (cert-manager.io/v1): what they say, and whether the
//! Secret they manage agrees.

use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::Value;

use crate::model::{CertFacts, CertManagerInfo, K8sCondition, San};

/// The API resource of cert-manager Certificates.
pub fn certificate_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("cert-manager.io", "v1", "Certificate"),
        "certificates",
    )
}

/// The API resource of cert-manager CertificateRequests.
pub fn certificate_request_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("cert-manager.io", "v1", "CertificateRequest"),
        "certificaterequests",
    )
}

fn s(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

/// A named condition of a status object.
pub fn condition(status: &Value, kind: &str) -> Option<K8sCondition> {
    status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
        .map(|c| K8sCondition {
            status: s(&c["status"]).unwrap_or_else(|| "Unknown".to_owned()),
            reason: s(&c["reason"]),
            message: s(&c["message"]),
            last_transition_time: s(&c["lastTransitionTime"]),
            observed_generation: c["observedGeneration"].as_i64(),
        })
}

/// What a Certificate says.
pub fn info(obj: &DynamicObject) -> CertManagerInfo {
    let spec = &obj.data["spec"];
    let status = &obj.data["status"];
    let iref = &spec["issuerRef"];
    let kind = s(&iref["kind"]).unwrap_or_else(|| "Issuer".to_owned());
    let mut issuer_ref = format!("{kind}/{}", s(&iref["name"]).unwrap_or_default());
    if let Some(g) = s(&iref["group"]).filter(|g| !g.is_empty() && g != "cert-manager.io") {
        issuer_ref = format!("{issuer_ref}.{g}");
    }
    CertManagerInfo {
        name: obj.metadata.name.clone().unwrap_or_default(),
        secret_name: s(&spec["secretName"]).unwrap_or_default(),
        dns_names: spec["dnsNames"]
            .as_array()
            .map(|a| a.iter().filter_map(s).collect())
            .unwrap_or_default(),
        issuer_ref,
        not_after: s(&status["notAfter"]),
        renewal_time: s(&status["renewalTime"]),
        revision: status["revision"].as_i64(),
        generation: obj.metadata.generation,
        ready: condition(status, "Ready"),
        issuing: condition(status, "Issuing"),
    }
}

/// Parse an RFC 3339 time to unix seconds.
pub fn parse_time(t: &str) -> Option<i64> {
    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

/// How the stored certificate differs from what its Certificate says, if it does.
pub fn drift(cm: &CertManagerInfo, leaf: &CertFacts) -> Option<String> {
    let mut out = Vec::new();
    if let Some(na) = cm.not_after.as_deref().and_then(parse_time) {
        if (na - leaf.not_after).abs() > 1 {
            out.push(format!(
                "Secret holds a certificate expiring {} but Certificate {} says {}",
                crate::clock::rfc3339(leaf.not_after),
                cm.name,
                crate::clock::rfc3339(na)
            ));
        }
    }
    let dns: Vec<&str> = leaf
        .sans
        .iter()
        .filter_map(|s| match s {
            San::Dns(d) => Some(d.as_str()),
            _ => None,
        })
        .collect();
    let missing: Vec<&str> = cm
        .dns_names
        .iter()
        .map(String::as_str)
        .filter(|d| !dns.contains(d))
        .collect();
    if !missing.is_empty() {
        out.push(format!(
            "Certificate {} asks for {} not in the stored certificate",
            cm.name,
            missing.join(", ")
        ));
    }
    (!out.is_empty()).then(|| out.join("; "))
}

/// One line about a Certificate's state: `Ready`, `Issuing: reason`, `not Ready: reason: message`.
pub fn state_line(cm: &CertManagerInfo) -> String {
    if let Some(i) = cm.issuing.as_ref().filter(|c| c.status == "True") {
        return format!("issuing ({})", i.reason.as_deref().unwrap_or("in progress"));
    }
    match &cm.ready {
        Some(r) if r.status == "True" => "Ready".to_owned(),
        Some(r) => format!(
            "not Ready: {}{}",
            r.reason.as_deref().unwrap_or("unknown"),
            r.message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        ),
        None => "no Ready condition yet".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cert(status: serde_json::Value) -> DynamicObject {
        let mut o = DynamicObject::new("web", &certificate_resource()).within("shop");
        o.data = json!({
            "spec": {"secretName": "web-tls", "dnsNames": ["a.example"],
                "issuerRef": {"name": "vault", "kind": "ClusterIssuer", "group": "example.io"}},
            "status": status,
        });
        o
    }

    #[test]
    fn info_reads_issuer_conditions_and_revision() {
        let i = info(&cert(
            json!({"revision": 4, "notAfter": "2027-01-01T00:00:00Z",
            "conditions": [{"type": "Ready", "status": "False", "reason": "Expired", "message": "gone"},
                           {"type": "Issuing", "status": "True", "reason": "ManuallyTriggered"}]}),
        ));
        assert_eq!(i.issuer_ref, "ClusterIssuer/vault.example.io");
        assert_eq!(i.revision, Some(4));
        assert_eq!(i.ready.as_ref().map(|r| r.status.as_str()), Some("False"));
        assert_eq!(state_line(&i), "issuing (ManuallyTriggered)");
        let i = info(&cert(
            json!({"conditions": [{"type": "Ready", "status": "False", "reason": "Expired", "message": "gone"}]}),
        ));
        assert_eq!(state_line(&i), "not Ready: Expired: gone");
        assert_eq!(
            state_line(&info(&cert(json!({})))),
            "no Ready condition yet"
        );
    }

    #[test]
    fn times_parse_as_rfc3339() {
        assert_eq!(parse_time("1970-01-01T00:01:00Z"), Some(60));
        assert_eq!(parse_time("yesterday"), None);
    }
}
