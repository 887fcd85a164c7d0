//! ACME renewal as a backend of the action framework: offered on the row of a
//! `[[certificate]]` file and on the row of the endpoint that serves it.

use std::path::PathBuf;

use crate::actions::{ActionError, ActionOptions, Backend, Offer, Prepared};
use crate::model::{Record, SourceKind};
use crate::sources::{BoxFut, Target};

use super::{AcmeIssuer, ManagedFile};

/// Renews `[[certificate]]` files through their `[[acme]]` issuers.
pub struct AcmeBackend {
    pub issuers: Vec<AcmeIssuer>,
    pub files: Vec<ManagedFile>,
    /// Where account keys live (created 0600 on first use).
    pub account_dir: PathBuf,
}

impl AcmeBackend {
    /// The managed file a row stands for: the leaf of the certificate file (`path` or
    /// `path#1`), or the endpoint that serves it.
    pub fn file_for(&self, record: &Record) -> Option<&ManagedFile> {
        self.files.iter().find(|f| {
            if record.source == SourceKind::FILE {
                let cert = f.cert.display().to_string();
                record.location == cert || record.location == format!("{cert}#1")
            } else if record.source == SourceKind::TLS {
                f.endpoint.as_deref().is_some_and(|e| {
                    Target::parse(e, None).is_ok_and(|t| t.to_string() == record.location)
                })
            } else {
                false
            }
        })
    }
}

impl Backend for AcmeBackend {
    fn offers(&self, record: &Record) -> Vec<Offer> {
        match self.file_for(record) {
            Some(f) => vec![Offer {
                verb: "renew".to_owned(),
                title: format!("Renew (ACME, issuer '{}')", f.issuer),
                builtin: true,
            }],
            None => Vec::new(),
        }
    }

    fn plan<'a>(
        &'a self,
        verb: &'a str,
        record: &'a Record,
        opts: &'a ActionOptions,
    ) -> BoxFut<'a, Result<Prepared, ActionError>> {
        Box::pin(async move {
            if verb != "renew" {
                return Err(ActionError::not_applicable(format!(
                    "ACME files can be renewed, not '{verb}'"
                )));
            }
            let file = self
                .file_for(record)
                .ok_or_else(|| ActionError::not_applicable("not a [[certificate]] row"))?
                .clone();
            let issuer = super::config::find_issuer(&self.issuers, &file)?.clone();
            let mut acme = super::plan(&issuer, &file, crate::clock::now_unix())
                .await?
                .with_account_dir(&self.account_dir);
            acme.backups = opts.backups.clone();
            let plan = acme.to_plan(&record.id, &record.location);
            Ok(Prepared {
                plan,
                job: Box::new(move |rep| {
                    Box::pin(async move { super::execute(&acme, &rep).await })
                }),
            })
        })
    }
}
