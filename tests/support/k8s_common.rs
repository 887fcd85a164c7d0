//! Helpers shared by the Kubernetes tests: rcgen certificates, a scan of the fixture through
//! its real kubeconfig, and record lookups.
#![allow(dead_code, clippy::unwrap_used)]

use std::time::Duration;

use certdeck::model::Record;
use certdeck::sources::k8s::K8sSettings;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

use crate::k8s_fixture::Fixture;

/// A certificate and its key, as PEM.
pub struct Pem {
    pub cert: String,
    pub key: String,
}

/// A CA that can sign leaves.
pub struct Ca {
    pub pem: Pem,
    params: CertificateParams,
    key: KeyPair,
}

fn at(days: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc() + time::Duration::days(days)
}

pub fn ca(name: &str) -> Ca {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.not_before = at(-1);
    p.not_after = at(3650);
    let key = KeyPair::generate().unwrap();
    let cert = p.self_signed(&key).unwrap();
    Ca {
        pem: Pem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        },
        params: p,
        key,
    }
}

/// A leaf for `hosts` valid until `days` from now (P-256), signed by `ca` or self-signed.
pub fn leaf(hosts: &[&str], days: i64, ca: Option<&Ca>) -> Pem {
    let mut p =
        CertificateParams::new(hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>()).unwrap();
    p.distinguished_name.push(DnType::CommonName, hosts[0]);
    p.not_before = at(-10);
    p.not_after = at(days);
    let key = KeyPair::generate().unwrap();
    let cert = match ca {
        Some(ca) => p
            .signed_by(&key, &Issuer::from_params(&ca.params, &ca.key))
            .unwrap(),
        None => p.self_signed(&key).unwrap(),
    };
    Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}

/// Settings that read the fixture through its kubeconfig (1 s request timeout).
pub fn settings(fx: &Fixture) -> K8sSettings {
    K8sSettings {
        kubeconfig: Some(fx.kubeconfig_path().to_path_buf()),
        timeout: Duration::from_secs(2),
        ..K8sSettings::default()
    }
}

/// Run the Kubernetes source to completion; returns records and source-level problems.
pub async fn scan(settings: K8sSettings) -> (Vec<Record>, Vec<String>) {
    certdeck::sources::tls::install_crypto_provider();
    let r = certdeck::sources::scan(certdeck::sources::k8s::source::sources_for(settings)).await;
    let problems = r.problems();
    (r.records, problems)
}

/// The record at `location`, or a panic listing what there is.
pub fn at_location<'a>(records: &'a [Record], location: &str) -> &'a Record {
    records
        .iter()
        .find(|r| r.location == location)
        .unwrap_or_else(|| {
            let all: Vec<&str> = records.iter().map(|r| r.location.as_str()).collect();
            panic!("no record at {location}; have {all:#?}")
        })
}

/// Kubernetes actions against the fixture: the engine's context (quick polling, backups in
/// the fixture's directory) and a session that runs plans as the product does (audit log in
/// the fixture's directory, read-only switch).
pub struct Acts {
    pub ctx: certdeck::actions::k8s::ActionContext,
    pub audit: certdeck::actions::AuditLog,
    pub read_only: bool,
}

impl Acts {
    fn session(&self) -> certdeck::actions::Session {
        certdeck::actions::Session::new(Vec::new(), self.read_only, Some(self.audit.clone()))
    }

    /// Plan `kind` (`renew`, `rotate`) for a row. Writes nothing.
    pub async fn plan(
        &self,
        kind: &str,
        rec: &Record,
    ) -> Result<certdeck::actions::k8s::K8sPlan, certdeck::actions::ActionError> {
        certdeck::actions::k8s::plan(&self.ctx, kind, rec).await
    }

    fn prepared(&self, plan: &certdeck::actions::k8s::K8sPlan) -> certdeck::actions::Prepared {
        let (ctx, p) = (self.ctx.clone(), plan.clone());
        certdeck::actions::Prepared {
            plan: plan.to_plan(self.ctx.access.context_user(&plan.context)),
            job: Box::new(move |rep| {
                Box::pin(async move { certdeck::actions::k8s::execute(&ctx, &p, &rep).await })
            }),
        }
    }

    /// Run a plan as the product does: its steps on `tx`, then its audit record and `Finished`.
    pub async fn execute(
        &self,
        plan: &certdeck::actions::k8s::K8sPlan,
        tx: &tokio::sync::mpsc::Sender<certdeck::actions::ActionEvent>,
    ) -> Result<certdeck::actions::Outcome, certdeck::actions::ActionError> {
        self.session()
            .run_prepared(self.prepared(plan), tx.clone())
            .await
            .result
    }

    /// Run several plans, `concurrency` at once; results in the order of `plans`.
    pub async fn run_bulk(
        &self,
        plans: Vec<certdeck::actions::k8s::K8sPlan>,
        concurrency: usize,
        tx: tokio::sync::mpsc::Sender<certdeck::actions::ActionEvent>,
    ) -> Vec<(
        String,
        Result<certdeck::actions::Outcome, certdeck::actions::ActionError>,
    )> {
        use futures::StreamExt as _;
        let session = self.session();
        let mut out: Vec<(usize, String, _)> =
            futures::stream::iter(plans.iter().enumerate().map(|(i, p)| {
                let (session, tx, prepared) = (session.clone(), tx.clone(), self.prepared(p));
                async move {
                    let f = session.run_prepared(prepared, tx).await;
                    (i, f.record_id, f.result)
                }
            }))
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        out.sort_by_key(|(i, _, _)| *i);
        out.into_iter().map(|(_, id, r)| (id, r)).collect()
    }
}

/// Actions against the fixture, with the audit log and backups in the fixture's directory.
pub fn acts(fx: &Fixture) -> Acts {
    certdeck::sources::tls::install_crypto_provider();
    let access = certdeck::sources::k8s::KubeAccess::load(Some(fx.kubeconfig_path())).unwrap();
    let mut ctx = certdeck::actions::k8s::ActionContext::new(std::sync::Arc::new(access));
    ctx.timeout = Duration::from_secs(3);
    ctx.wait = Duration::from_secs(10);
    ctx.poll = Duration::from_millis(100);
    ctx.backups.dir = fx.dir().join("data/backups");
    Acts {
        ctx,
        audit: certdeck::actions::AuditLog::new(fx.dir().join("data/audit.jsonl")),
        read_only: false,
    }
}

/// The record at `location` after reading namespace `ns`.
pub async fn row(fx: &Fixture, ns: &str, location: &str) -> Record {
    let mut st = settings(fx);
    st.namespace = Some(ns.into());
    let (records, _) = scan(st).await;
    at_location(&records, location).clone()
}

/// The DER facts of a PEM certificate.
pub fn facts(pem: &str) -> certdeck::model::CertFacts {
    let recs = certdeck::sources::file::records_from_bytes("x.pem", pem.as_bytes(), true, 0);
    (*recs[0].cert.clone().unwrap()).clone()
}
