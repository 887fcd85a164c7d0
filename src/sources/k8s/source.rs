//! The Kubernetes source (`k8s`): its flags (as kubectl spells them), its `[kubernetes]`
//! config section, and one source instance per context, each with a live watch of Secrets and
//! cert-manager Certificates after its first round.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::Notify;

use super::read::{read_context, WatchStart};
use super::{K8sSettings, KubeAccess, DEFAULT_PAGE_SIZE};
use crate::model::SourceKind;
use crate::sources::registry::{BuildContext, BuildError, Plugin, Purpose};
use crate::sources::{
    BoxFut, Problem, ProblemKind, RoundEnd, Schedule, Sink, Source, SourceId, Unusable,
};

/// Kubernetes flags, as kubectl spells them.
#[derive(Debug, Args, Default, Clone)]
#[command(next_help_heading = "Kubernetes")]
pub struct K8sArgs {
    /// Read Kubernetes with the kubeconfig's current context (implied by any flag below).
    #[arg(long)]
    pub k8s: bool,
    /// Kubeconfig file (default: KUBECONFIG, else ~/.kube/config).
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to read (repeatable; default: the current context).
    #[arg(long = "context", value_name = "NAME")]
    pub contexts: Vec<String>,
    /// Read every context of the kubeconfig.
    #[arg(long)]
    pub all_contexts: bool,
    /// Namespace to read (default: the context's namespace).
    #[arg(
        short = 'n',
        long,
        value_name = "NAMESPACE",
        conflicts_with = "all_namespaces"
    )]
    pub namespace: Option<String>,
    /// Read every namespace, plus webhook and APIService caBundles.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Probe each Ingress TLS host and flag one that serves another certificate than its Secret.
    #[arg(long)]
    pub check_ingress: bool,
    #[command(flatten)]
    pub mesh: super::mesh::MeshArgs,
}

use clap::Args;

/// The `[kubernetes]` section: the same settings as the flags.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesConfig {
    /// Kubeconfig path (default: `KUBECONFIG`, else `~/.kube/config`).
    pub kubeconfig: Option<PathBuf>,
    /// Contexts to read (default: the current context).
    #[serde(default)]
    pub contexts: Vec<String>,
    #[serde(default)]
    pub all_contexts: bool,
    /// One namespace (default: the context's namespace).
    pub namespace: Option<String>,
    #[serde(default)]
    pub all_namespaces: bool,
    /// Time limit of each API request (default: the probe timeout).
    #[serde(default, deserialize_with = "crate::config::de_opt_duration")]
    pub timeout: Option<Duration>,
    /// `limit` of each list page (default 500).
    pub page_size: Option<u32>,
    /// Refuse every action (read by the settings: certdeck as a whole is read-only).
    #[serde(default)]
    pub read_only: bool,
    /// Probe each Ingress TLS host and compare what it serves with its Secret.
    #[serde(default)]
    pub check_ingresses: bool,
    /// `[kubernetes.mesh]`: service-mesh control-plane namespaces.
    pub mesh: Option<super::mesh::MeshConfig>,
}

impl K8sArgs {
    /// True when any Kubernetes flag was given.
    pub fn given(&self) -> bool {
        self.k8s
            || self.kubeconfig.is_some()
            || !self.contexts.is_empty()
            || self.all_contexts
            || self.namespace.is_some()
            || self.all_namespaces
            || self.check_ingress
            || self.mesh.given()
    }

    /// Kubernetes settings from these flags over the `[kubernetes]` config section.
    pub fn resolve(
        &self,
        cfg: Option<&KubernetesConfig>,
        default_timeout: Duration,
    ) -> K8sSettings {
        let d = KubernetesConfig::default();
        let c = cfg.unwrap_or(&d);
        let flags_scope = self.namespace.is_some() || self.all_namespaces;
        let flags_contexts = !self.contexts.is_empty() || self.all_contexts;
        K8sSettings {
            kubeconfig: self.kubeconfig.clone().or_else(|| c.kubeconfig.clone()),
            contexts: if flags_contexts {
                self.contexts.clone()
            } else {
                c.contexts.clone()
            },
            all_contexts: if flags_contexts {
                self.all_contexts
            } else {
                c.all_contexts
            },
            namespace: if flags_scope {
                self.namespace.clone()
            } else {
                c.namespace.clone()
            },
            all_namespaces: if flags_scope {
                self.all_namespaces
            } else {
                c.all_namespaces
            },
            timeout: c.timeout.unwrap_or(default_timeout),
            page_size: c.page_size.unwrap_or(DEFAULT_PAGE_SIZE),
            check_ingresses: self.check_ingress || c.check_ingresses,
            mesh: self.mesh.resolve(c.mesh.as_ref()),
            ..K8sSettings::default()
        }
    }
}

pub struct K8sPlugin;
pub static PLUGIN: K8sPlugin = K8sPlugin;

impl Plugin for K8sPlugin {
    fn kind(&self) -> SourceKind {
        SourceKind::K8S
    }

    fn sections(&self) -> &'static [&'static str] {
        &["kubernetes"]
    }

    fn flags(&self, cmd: clap::Command) -> clap::Command {
        <K8sArgs as clap::Args>::augment_args(cmd)
    }

    fn named(&self, m: &clap::ArgMatches) -> bool {
        <K8sArgs as clap::FromArgMatches>::from_arg_matches(m).is_ok_and(|a| a.given())
    }

    fn build(&self, ctx: &BuildContext<'_>) -> Result<Vec<Arc<dyn Source>>, BuildError> {
        let args: K8sArgs = ctx.flags()?.unwrap_or_default();
        let section: Option<KubernetesConfig> = ctx.config.section("kubernetes")?;
        let finding = matches!(ctx.purpose, Purpose::FindRows(_));
        let mut settings = if args.given() {
            args.resolve(section.as_ref(), ctx.probe.timeout)
        } else if (ctx.from_config || finding) && section.is_some() {
            K8sArgs::default().resolve(section.as_ref(), ctx.probe.timeout)
        } else if finding && super::kubeconfig::default_kubeconfig_exists() {
            // `renew ID` with no Kubernetes flag and no section: the current context, when
            // kubectl would find one (a machine without a cluster gets no Kubernetes error).
            K8sArgs::default().resolve(None, ctx.probe.timeout)
        } else {
            return Ok(Vec::new());
        };
        if let Purpose::FindRows(ids) = ctx.purpose {
            // Ids are looked up in every namespace unless a scope was given; a location
            // names its context.
            if settings.namespace.is_none() {
                settings.all_namespaces = true;
            }
            if settings.contexts.is_empty() && !settings.all_contexts {
                for id in ids {
                    if let Some((c, rest)) = id.split_once('/') {
                        if !rest.is_empty() && !settings.contexts.iter().any(|x| x == c) {
                            settings.contexts.push(c.to_owned());
                        }
                    }
                }
            }
        }
        Ok(sources_for(settings))
    }
}

/// One source per selected context; a kubeconfig that cannot be loaded, or an unknown
/// context, is a source that fails with that message.
pub fn sources_for(settings: K8sSettings) -> Vec<Arc<dyn Source>> {
    let unusable = |instance: &str, e: &super::K8sError| -> Vec<Arc<dyn Source>> {
        vec![Arc::new(Unusable {
            id: SourceId::new(SourceKind::K8S, instance),
            problem: Problem::new(ProblemKind::Config, e.to_string()),
        })]
    };
    let access = match KubeAccess::load(settings.kubeconfig.as_deref()) {
        Ok(a) => Arc::new(a),
        Err(e) => return unusable("", &e),
    };
    let contexts = match access.select(&settings.contexts, settings.all_contexts) {
        Ok(c) => c,
        Err(e) => return unusable("", &e),
    };
    let settings = Arc::new(settings);
    contexts
        .into_iter()
        .map(|c| Arc::new(K8sSource::new(access.clone(), c, settings.clone())) as Arc<dyn Source>)
        .collect()
}

/// One context.
pub struct K8sSource {
    id: SourceId,
    access: Arc<KubeAccess>,
    context: String,
    settings: Arc<K8sSettings>,
    /// Where the next live watch starts (set by each round).
    start: Mutex<Option<WatchStart>>,
    fresh: Notify,
}

impl K8sSource {
    pub fn new(access: Arc<KubeAccess>, context: String, settings: Arc<K8sSettings>) -> K8sSource {
        K8sSource {
            id: SourceId::new(SourceKind::K8S, context.clone()),
            access,
            context,
            settings,
            start: Mutex::new(None),
            fresh: Notify::new(),
        }
    }

    pub fn context(&self) -> &str {
        &self.context
    }

    pub fn access(&self) -> &Arc<KubeAccess> {
        &self.access
    }

    /// The watch start of the latest round, waiting for a round to provide one.
    async fn next_start(&self) -> Option<WatchStart> {
        loop {
            let notified = self.fresh.notified();
            if let Some(s) = self.start.lock().ok().and_then(|mut s| s.take()) {
                return Some(s);
            }
            notified.await;
        }
    }
}

impl Source for K8sSource {
    fn id(&self) -> &SourceId {
        &self.id
    }

    fn schedule(&self) -> Schedule {
        // The watch keeps Secrets and Certificates live; rounds catch the rest.
        Schedule::every(Duration::from_secs(600), Duration::from_secs(300))
    }

    fn round<'a>(&'a self, sink: &'a Sink) -> BoxFut<'a, RoundEnd> {
        Box::pin(async move {
            let read = read_context(&self.access, &self.context, &self.settings, sink).await;
            if let Some(w) = read.watch {
                if let Ok(mut s) = self.start.lock() {
                    *s = Some(w);
                }
                self.fresh.notify_waiters();
            }
            read.end
        })
    }

    fn live<'a>(&'a self, sink: &'a Sink) -> Option<BoxFut<'a, ()>> {
        Some(Box::pin(async move {
            super::watch::run(&self.access, &self.context, &self.settings, sink, || {
                self.next_start()
            })
            .await;
        }))
    }

    fn actions(&self) -> Vec<Arc<dyn crate::actions::Backend>> {
        vec![Arc::new(crate::actions::k8s::K8sBackend::new(
            self.access.clone(),
            self.context.clone(),
            self.settings.timeout,
        ))]
    }
}
