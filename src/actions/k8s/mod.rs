//! Kubernetes actions: cert-manager renew (as `cmctl renew` does it) for rows a Certificate
//! manages, and rotate for plain `kubernetes.io/tls` Secrets. One backend per context, offered
//! by that context's source.

pub mod renew;
pub mod rotate;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::{ActionError, Backend, Offer, Plan, Prepared, Reporter, Risk, Step};
use crate::model::Record;
use crate::sources::k8s::{K8sError, KubeAccess};
use crate::sources::BoxFut;

/// Where the CA that signs a rotated certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaSource {
    /// A Secret (`tls.crt` + `tls.key`) in the same context: `namespace/name`.
    Secret { namespace: String, name: String },
    /// PEM files.
    Files { cert: PathBuf, key: PathBuf },
}

/// Everything a Kubernetes action needs: cluster access, limits, where backups go.
#[derive(Clone)]
pub struct ActionContext {
    pub access: Arc<KubeAccess>,
    /// Time limit of each API request.
    pub timeout: Duration,
    /// How long a renew waits for cert-manager to finish.
    pub wait: Duration,
    /// Interval between reads while waiting.
    pub poll: Duration,
    /// Backups of Secrets (files 0600 in a 0700 directory), with their retention.
    pub backups: crate::fsx::Backups,
    /// CA for rotating CA-signed Secrets.
    pub ca: Option<CaSource>,
}

impl std::fmt::Debug for ActionContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActionContext")
            .field("access", &self.access)
            .field("timeout", &self.timeout)
            .field("wait", &self.wait)
            .field("backups", &self.backups.dir)
            .field("ca", &self.ca)
            .finish()
    }
}

impl ActionContext {
    /// A context with defaults: 10 s requests, 5 min wait, 1 s poll, backups in the data
    /// directory.
    pub fn new(access: Arc<KubeAccess>) -> ActionContext {
        ActionContext {
            access,
            timeout: Duration::from_secs(10),
            wait: Duration::from_secs(300),
            poll: Duration::from_secs(1),
            backups: crate::fsx::Backups::in_data_dir(),
            ca: None,
        }
    }

    async fn client(&self, context: &str, step: Step) -> Result<kube::Client, ActionError> {
        self.access
            .client(context, self.timeout)
            .await
            .map_err(k8s_error(step))
    }
}

/// An action error for a Kubernetes error at `step` (a time limit is a timeout).
pub fn k8s_error(step: Step) -> impl FnOnce(K8sError) -> ActionError {
    move |e| match e {
        K8sError::Timeout { .. } => ActionError::timeout(step, e.to_string()),
        e => ActionError::at(step, e.to_string()),
    }
}

/// Which Kubernetes action a row offers: renew for a row managed by cert-manager, rotate for a
/// plain `kubernetes.io/tls` Secret's `tls.crt`, none otherwise.
pub fn offered(record: &Record) -> Option<&'static str> {
    let k = record.k8s.as_ref()?;
    if k.managed_by.is_some() {
        return Some("renew");
    }
    (k.kind == "Secret"
        && k.key.as_deref() == Some("tls.crt")
        && k.secret_type.as_deref() == Some(crate::sources::k8s::read::TLS_SECRET_TYPE))
    .then_some("rotate")
}

/// The exact change a Kubernetes action will make, read from the cluster at plan time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct K8sPlan {
    /// `renew` or `rotate`.
    pub kind: &'static str,
    pub record_id: String,
    pub location: String,
    pub context: String,
    pub namespace: String,
    /// The object written: `Certificate team-a/web` or `Secret team-a/web-tls`.
    pub object: String,
    /// Certificate name (renew).
    pub certificate: Option<String>,
    /// The Secret holding the certificate.
    pub secret: String,
    /// resourceVersion read at plan time (the write's precondition for rotate).
    pub resource_version: Option<String>,
    pub old_not_after: Option<i64>,
    /// Expected new expiry (rotate: exact; renew: decided by the issuer, so None).
    pub new_not_after: Option<i64>,
    /// Who signs the new certificate.
    pub issuer: String,
    pub sans: Vec<String>,
    pub key_type: Option<String>,
    pub before_sha256: Option<String>,
    /// Certificate revision at plan time (renew).
    pub revision: Option<i64>,
    /// The API calls, in order, as `METHOD path (what)`.
    pub api_calls: Vec<String>,
    /// Anything the user should read before confirming.
    pub warnings: Vec<String>,
    /// The file the current Secret is saved to before the write (rotate).
    pub backup: Option<PathBuf>,
}

impl K8sPlan {
    pub fn title(&self) -> &'static str {
        match self.kind {
            "renew" => "Renew (cert-manager re-issue)",
            _ => "Rotate (new key and certificate)",
        }
    }

    /// The framework's view of this plan (what the preview shows and the audit records).
    pub fn to_plan(&self, identity: Option<String>) -> Plan {
        let mut details = Vec::new();
        if let Some(c) = &self.certificate {
            details.push((
                "Certificate".to_owned(),
                format!("{c} -> Secret {}", self.secret),
            ));
        }
        if let Some(r) = self.revision {
            details.push(("revision".to_owned(), format!("{r} -> {}", r + 1)));
        }
        Plan {
            action: self.kind.to_owned(),
            verb: self.kind.to_owned(),
            title: self.title().to_owned(),
            record_id: self.record_id.clone(),
            location: self.location.clone(),
            object: self.object.clone(),
            context: Some(self.context.clone()),
            identity,
            old_not_after: self.old_not_after,
            new_not_after: self.new_not_after,
            new_expiry_note: Some("as the issuer decides".to_owned()),
            issuer: Some(self.issuer.clone()),
            names: self.sans.clone(),
            key_type: self.key_type.clone(),
            before_sha256: self.before_sha256.clone(),
            details,
            files: Vec::new(),
            backup: self.backup.clone(),
            steps_label: "API calls".to_owned(),
            steps: self.api_calls.clone(),
            warnings: self.warnings.clone(),
            risk: Risk::Destructive,
            confirm: true,
        }
    }
}

/// Plan a Kubernetes action for a row. Does not write anything.
pub async fn plan(
    ctx: &ActionContext,
    kind: &str,
    record: &Record,
) -> Result<K8sPlan, ActionError> {
    match kind {
        "renew" => renew::plan(ctx, record).await,
        "rotate" => rotate::plan(ctx, record).await,
        other => Err(ActionError::not_applicable(format!(
            "no Kubernetes action '{other}'"
        ))),
    }
}

/// Run a confirmed plan, reporting each step.
pub async fn execute(
    ctx: &ActionContext,
    plan: &K8sPlan,
    rep: &Reporter,
) -> Result<super::Outcome, ActionError> {
    match plan.kind {
        "renew" => renew::execute(ctx, plan, rep).await,
        _ => rotate::execute(ctx, plan, rep).await,
    }
}

fn k8s_of(record: &Record) -> Result<&crate::model::K8sInfo, ActionError> {
    record.k8s.as_ref().ok_or_else(|| {
        ActionError::not_applicable(format!(
            "{} is not a Kubernetes row: renew and rotate act on Kubernetes objects",
            record.location
        ))
    })
}

/// The Kubernetes actions of one context.
pub struct K8sBackend {
    access: Arc<KubeAccess>,
    context: String,
    timeout: Duration,
}

impl K8sBackend {
    pub fn new(access: Arc<KubeAccess>, context: String, timeout: Duration) -> K8sBackend {
        K8sBackend {
            access,
            context,
            timeout,
        }
    }
}

impl Backend for K8sBackend {
    fn offers(&self, record: &Record) -> Vec<Offer> {
        let mine = record
            .k8s
            .as_ref()
            .is_some_and(|k| k.context == self.context);
        match offered(record).filter(|_| mine) {
            Some(verb) => vec![Offer {
                verb: verb.to_owned(),
                title: if verb == "renew" {
                    "Renew (cert-manager re-issue)"
                } else {
                    "Rotate (new key and certificate)"
                }
                .to_owned(),
                builtin: true,
            }],
            None => Vec::new(),
        }
    }

    fn plan<'a>(
        &'a self,
        verb: &'a str,
        record: &'a Record,
        opts: &'a super::ActionOptions,
    ) -> BoxFut<'a, Result<Prepared, ActionError>> {
        Box::pin(async move {
            let ctx = ActionContext {
                access: self.access.clone(),
                timeout: opts
                    .request_timeout
                    .unwrap_or(self.timeout.max(Duration::from_secs(10))),
                wait: opts.wait,
                poll: Duration::from_millis(500).min(opts.wait),
                backups: opts.backups.clone(),
                ca: opts.ca.clone(),
            };
            let k8s_plan = plan(&ctx, verb, record).await?;
            let identity = self.access.context_user(&self.context);
            let plan = k8s_plan.to_plan(identity);
            Ok(Prepared {
                plan,
                job: Box::new(move |rep| {
                    Box::pin(async move { execute(&ctx, &k8s_plan, &rep).await })
                }),
            })
        })
    }
}
