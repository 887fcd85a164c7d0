//! The AWS plugin: its flags (`--aws`, `--aws-profile`, `--aws-region`, `--aws-all-regions`),
//! its `[[aws]]` config blocks, and one source instance per (profile, region), labelled
//! `PROFILE/REGION`. The instances of one profile share one account: credentials are resolved
//! once, and each region reads on its own with its own health.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;

use super::actions::AwsBackend;
use super::error::AwsError;
use super::read::{self, Account};
use super::settings::{AwsArgs, AwsConfig, AwsSettings, RegionChoice, ACM_REGIONS};
use crate::model::{Record, SourceKind};
use crate::sources::registry::{BuildContext, BuildError, Plugin, Purpose};
use crate::sources::{BoxFut, Problem, RoundEnd, Schedule, Sink, Source, SourceId};

pub use super::facts::KIND;

pub struct AwsPlugin;
pub static PLUGIN: AwsPlugin = AwsPlugin;

impl Plugin for AwsPlugin {
    fn kind(&self) -> SourceKind {
        KIND
    }

    fn sections(&self) -> &'static [&'static str] {
        &["aws"]
    }

    fn flags(&self, cmd: clap::Command) -> clap::Command {
        <AwsArgs as clap::Args>::augment_args(cmd)
    }

    fn named(&self, m: &clap::ArgMatches) -> bool {
        <AwsArgs as clap::FromArgMatches>::from_arg_matches(m).is_ok_and(|a| a.given())
    }

    fn build(&self, ctx: &BuildContext<'_>) -> Result<Vec<Arc<dyn Source>>, BuildError> {
        let args: AwsArgs = ctx.flags()?.unwrap_or_default();
        let blocks: Vec<AwsConfig> = ctx.config.section("aws")?.unwrap_or_default();
        let finding = matches!(ctx.purpose, Purpose::FindRows(_));
        let settings: Vec<(AwsSettings, Vec<super::settings::ReimportConfig>)> = if args.given() {
            args.resolve(&blocks, ctx.probe.timeout)
                .into_iter()
                .map(|s| {
                    // Re-import files come from the config block of the same profile.
                    let re = blocks
                        .iter()
                        .find(|b| b.profile == s.profile)
                        .map(|b| b.reimport.clone())
                        .unwrap_or_default();
                    (s, re)
                })
                .collect()
        } else if ctx.from_config || finding {
            blocks
                .iter()
                .map(|b| (b.resolve(ctx.probe.timeout), b.reimport.clone()))
                .collect()
        } else {
            return Ok(Vec::new());
        };
        let mut out: Vec<Arc<dyn Source>> = Vec::new();
        for (s, reimports) in settings {
            // `renew ID`: only the region of the ARNs given, when the ids are ARNs.
            let mut s = s;
            if let Purpose::FindRows(ids) = ctx.purpose {
                let regions: Vec<String> = ids
                    .iter()
                    .filter_map(|id| super::facts::parse_arn(id))
                    .map(|p| p.region)
                    .collect();
                if !regions.is_empty() && s.regions == RegionChoice::Default {
                    s.regions = RegionChoice::List(regions);
                }
            }
            out.extend(sources_for(s, reimports));
        }
        Ok(out)
    }
}

/// One account (profile), opened once and shared by its regions. A failure is not kept: the
/// next round tries again (credentials may have been refreshed).
pub struct AccountCell {
    settings: AwsSettings,
    account: Mutex<Option<Arc<Account>>>,
}

impl AccountCell {
    pub fn new(settings: AwsSettings) -> AccountCell {
        AccountCell {
            settings,
            account: Mutex::new(None),
        }
    }

    pub fn settings(&self) -> &AwsSettings {
        &self.settings
    }

    pub async fn get(&self) -> Result<Arc<Account>, AwsError> {
        let mut slot = self.account.lock().await;
        if let Some(a) = slot.as_ref() {
            return Ok(a.clone());
        }
        let a = Arc::new(Account::open(&self.settings).await?);
        *slot = Some(a.clone());
        Ok(a)
    }
}

/// One source per region of the block (`--aws-all-regions`: every ACM region; none named:
/// one source for the region the AWS CLI would use, resolved at its first round).
pub fn sources_for(
    settings: AwsSettings,
    reimports: Vec<super::settings::ReimportConfig>,
) -> Vec<Arc<dyn Source>> {
    let profile = settings.profile_label();
    let regions: Vec<Option<String>> = match &settings.regions {
        RegionChoice::List(v) => v.iter().cloned().map(Some).collect(),
        RegionChoice::All => ACM_REGIONS.iter().map(|r| Some((*r).to_owned())).collect(),
        RegionChoice::Default => vec![None],
    };
    let cell = Arc::new(AccountCell::new(settings));
    let reimports = Arc::new(reimports);
    regions
        .into_iter()
        .map(|region| {
            let label = match &region {
                Some(r) => format!("{profile}/{r}"),
                None => profile.clone(),
            };
            Arc::new(AwsSource {
                id: SourceId::new(KIND, label),
                cell: cell.clone(),
                region,
                reimports: reimports.clone(),
            }) as Arc<dyn Source>
        })
        .collect()
}

/// One (profile, region).
pub struct AwsSource {
    id: SourceId,
    cell: Arc<AccountCell>,
    /// None: the profile's (or AWS_REGION's) region.
    region: Option<String>,
    reimports: Arc<Vec<super::settings::ReimportConfig>>,
}

impl AwsSource {
    async fn account_and_region(&self) -> Result<(Arc<Account>, String), RoundEnd> {
        let account = self
            .cell
            .get()
            .await
            .map_err(|e| RoundEnd::failed(problem(&e)))?;
        let region = match &self.region {
            Some(r) => r.clone(),
            None => match account.regions().into_iter().next() {
                Some(r) => r,
                None => {
                    return Err(RoundEnd::failed(problem(&AwsError::NoRegion {
                        profile: account.profile.clone(),
                    })))
                }
            },
        };
        Ok((account, region))
    }
}

/// The supervisor's problem for an AWS error.
pub fn problem(e: &AwsError) -> Problem {
    Problem::new(e.class(), e.to_string())
}

impl Source for AwsSource {
    fn id(&self) -> &SourceId {
        &self.id
    }

    fn schedule(&self) -> Schedule {
        // Certificates change rarely and ACM's rate limits are low: every 15 minutes. Each
        // request is bounded by its own timeout; a round of a large account may take minutes.
        Schedule::every(Duration::from_secs(900), Duration::from_secs(1800))
    }

    fn round<'a>(&'a self, sink: &'a Sink) -> BoxFut<'a, RoundEnd> {
        Box::pin(async move {
            let (account, region) = match self.account_and_region().await {
                Ok(x) => x,
                Err(end) => return end,
            };
            match read::read_region(&account, &region, sink).await {
                Ok(o) => match o.problem {
                    Some(p) => RoundEnd::partial(problem(&p)),
                    None => RoundEnd::complete(),
                },
                Err(e) => RoundEnd::failed(problem(&e)),
            }
        })
    }

    fn reobserve<'a>(&'a self, rows: &'a [Record], sink: &'a Sink) -> BoxFut<'a, RoundEnd> {
        Box::pin(async move {
            let all_certificates = rows.iter().all(|r| {
                r.extra
                    .as_ref()
                    .is_some_and(|x| x.json["kind"] == "acm-certificate")
            });
            if !all_certificates {
                return self.round(sink).await;
            }
            let (account, region) = match self.account_and_region().await {
                Ok(x) => x,
                Err(end) => return end,
            };
            let acm = super::client::acm(&account.conf, &region);
            let mut first = None;
            for r in rows {
                let base = super::facts::AcmFacts {
                    arn: r.location.clone(),
                    account: account.identity.account.clone().unwrap_or_default(),
                    region: region.clone(),
                    profile: account.profile.clone(),
                    ..super::facts::AcmFacts::default()
                };
                let (rec, p) = read::observe_certificate(&acm, &account, base).await;
                if !sink.observed(rec).await {
                    return RoundEnd::abandoned();
                }
                if first.is_none() {
                    first = p;
                }
            }
            match first {
                Some(p) => RoundEnd::partial(problem(&p)),
                None => RoundEnd {
                    complete: false,
                    problem: None,
                },
            }
        })
    }

    fn reobserves_rows(&self) -> bool {
        true
    }

    fn actions(&self) -> Vec<Arc<dyn crate::actions::Backend>> {
        vec![Arc::new(AwsBackend {
            cell: self.cell.clone(),
            region: self.region.clone(),
            reimports: self.reimports.clone(),
        })]
    }
}
