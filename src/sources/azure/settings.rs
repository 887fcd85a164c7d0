//! Azure settings: the `--azure-vault` scan flag, the `[[azure]]` config blocks, and the
//! resolved `AzureSettings` (one per vault) the reader takes.

use std::time::Duration;

use serde::Deserialize;

/// Requests in flight per vault by default. Key Vault allows 2,000 GET requests per 10 s per
/// vault for certificates; a small number keeps well clear of it.
pub const DEFAULT_CONCURRENCY: usize = 8;
/// Retries of a throttled (429) or failed (5xx) request, with Retry-After honoured.
pub const DEFAULT_MAX_RETRIES: u32 = 4;
/// The Key Vault REST API version certdeck speaks (every cloud has it).
pub const API_VERSION: &str = "7.5";

/// Azure flags of `certdeck scan`.
#[derive(Debug, clap::Args, Default, Clone)]
#[command(next_help_heading = "Azure Key Vault")]
pub struct AzureArgs {
    /// Read the certificates of a Key Vault, by name (`NAME.vault.azure.net`) or URL
    /// (repeatable). Credentials as the Azure CLI finds them.
    #[arg(long = "azure-vault", value_name = "NAME|URL")]
    pub azure_vaults: Vec<String>,
}

impl AzureArgs {
    pub fn given(&self) -> bool {
        !self.azure_vaults.is_empty()
    }

    /// One `AzureSettings` per vault named. Tuning comes from the `[[azure]]` block of the same
    /// vault, else the first block.
    pub fn resolve(
        &self,
        cfg: &[AzureConfig],
        default_timeout: Duration,
    ) -> Result<Vec<AzureSettings>, String> {
        let mut out: Vec<AzureSettings> = Vec::new();
        for v in &self.azure_vaults {
            let url = vault_url(v)?;
            if out.iter().any(|s| s.vault_url == url) {
                continue;
            }
            let block = cfg
                .iter()
                .find(|b| vault_url(&b.vault).ok().as_deref() == Some(url.as_str()))
                .or_else(|| cfg.first())
                .cloned()
                .unwrap_or_default();
            out.push(
                AzureConfig {
                    vault: url,
                    ..block
                }
                .resolve(default_timeout)?,
            );
        }
        Ok(out)
    }
}

/// One `[[azure]]` block of the config file: a vault.
#[derive(Debug, Default, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AzureConfig {
    /// The vault: a name (`myvault` means `https://myvault.vault.azure.net/`) or its URL
    /// (sovereign clouds: `https://NAME.vault.usgovcloudapi.net/`...).
    pub vault: String,
    /// Which credential: `auto` (the SDK chain: service principal, workload identity, managed
    /// identity, Azure CLI), `client-secret`, `workload-identity`, `managed-identity`,
    /// `azure-cli`.
    pub credential: Option<String>,
    /// Client id of a user-assigned managed identity.
    pub managed_identity_client_id: Option<String>,
    /// Time limit of each API request (default: the probe timeout).
    #[serde(default, deserialize_with = "crate::config::de_opt_duration")]
    pub timeout: Option<Duration>,
    /// Requests in flight (default 8).
    pub concurrency: Option<usize>,
    /// Retries of throttled or failed requests (default 4).
    pub max_retries: Option<u32>,
    /// Read every version of each certificate (default true); false reads the current ones.
    pub versions: Option<bool>,
    /// Check that the 401 challenge's resource belongs to the vault's domain (default true).
    /// Turn off only for a vault behind a private name that is not `*.vault.azure.net`.
    pub verify_challenge_resource: Option<bool>,
}

impl AzureConfig {
    pub fn resolve(&self, default_timeout: Duration) -> Result<AzureSettings, String> {
        let credential = match self.credential.as_deref() {
            None | Some("auto") => CredentialChoice::Auto,
            Some("client-secret") => CredentialChoice::ClientSecret,
            Some("workload-identity") => CredentialChoice::WorkloadIdentity,
            Some("managed-identity") => CredentialChoice::ManagedIdentity,
            Some("azure-cli") => CredentialChoice::AzureCli,
            Some(other) => {
                return Err(format!(
                    "[[azure]] credential = \"{}\": expected auto, client-secret, workload-identity, managed-identity or azure-cli",
                    super::clean(other, 60)
                ))
            }
        };
        Ok(AzureSettings {
            vault_url: vault_url(&self.vault)?,
            credential,
            managed_identity_client_id: self.managed_identity_client_id.clone(),
            timeout: self.timeout.unwrap_or(default_timeout),
            concurrency: self.concurrency.unwrap_or(DEFAULT_CONCURRENCY).max(1),
            max_retries: self.max_retries.unwrap_or(DEFAULT_MAX_RETRIES),
            versions: self.versions.unwrap_or(true),
            verify_challenge_resource: self.verify_challenge_resource.unwrap_or(true),
        })
    }
}

/// Which credential a vault is read with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialChoice {
    Auto,
    ClientSecret,
    WorkloadIdentity,
    ManagedIdentity,
    AzureCli,
}

/// One vault to read. Holds no secret: credentials stay with the SDK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureSettings {
    /// `https://NAME.vault.azure.net/` (always with the trailing slash).
    pub vault_url: String,
    pub credential: CredentialChoice,
    pub managed_identity_client_id: Option<String>,
    pub timeout: Duration,
    pub concurrency: usize,
    pub max_retries: u32,
    pub versions: bool,
    pub verify_challenge_resource: bool,
}

impl AzureSettings {
    /// The vault as shown in the health line: its name (the URL's first label), or the host.
    pub fn label(&self) -> String {
        vault_label(&self.vault_url)
    }
}

/// `myvault` -> `https://myvault.vault.azure.net/`; a URL is kept (with a trailing slash).
/// Only https is accepted: the SDK refuses anything else.
pub fn vault_url(v: &str) -> Result<String, String> {
    let v = v.trim();
    if v.is_empty() {
        return Err("an Azure vault needs a name or URL".to_owned());
    }
    if let Some(rest) = v.strip_prefix("https://") {
        let host = rest.split('/').next().unwrap_or_default();
        if host.is_empty() {
            return Err(format!("{} has no host", super::clean(v, 200)));
        }
        return Ok(format!("https://{host}/"));
    }
    if v.contains("://") {
        return Err(format!(
            "{}: Key Vault is reached over https only",
            super::clean(v, 200)
        ));
    }
    let valid =
        v.len() >= 3 && v.len() <= 24 && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !valid {
        return Err(format!(
            "{} is not a vault name (3-24 letters, digits and dashes) or an https URL",
            super::clean(v, 200)
        ));
    }
    Ok(format!("https://{v}.vault.azure.net/"))
}

/// The vault's name for labels: `https://shop.vault.azure.net/` -> `shop`, a loopback URL ->
/// `127.0.0.1:8443`.
pub fn vault_label(url: &str) -> String {
    let host = url
        .trim_start_matches("https://")
        .split('/')
        .next()
        .unwrap_or_default();
    match host.split_once(".vault.") {
        Some((name, _)) => name.to_owned(),
        None => host.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vault_names_and_urls_resolve_to_https_urls() {
        assert_eq!(vault_url("shop").unwrap(), "https://shop.vault.azure.net/");
        assert_eq!(
            vault_url("https://shop.vault.usgovcloudapi.net").unwrap(),
            "https://shop.vault.usgovcloudapi.net/"
        );
        assert!(vault_url("http://127.0.0.1:1/").is_err());
        assert!(vault_url("a b").is_err());
        assert_eq!(vault_label("https://shop.vault.azure.net/"), "shop");
        assert_eq!(vault_label("https://127.0.0.1:8443/"), "127.0.0.1:8443");
    }

    #[test]
    fn flags_take_tuning_from_the_block_of_the_same_vault() {
        let args = AzureArgs {
            azure_vaults: vec!["a-vault".into(), "https://a-vault.vault.azure.net/".into()],
        };
        let cfg = vec![AzureConfig {
            vault: "a-vault".into(),
            concurrency: Some(3),
            ..AzureConfig::default()
        }];
        let s = args.resolve(&cfg, Duration::from_secs(4)).unwrap();
        assert_eq!(s.len(), 1, "the same vault twice is one source");
        assert_eq!(s[0].concurrency, 3);
        assert_eq!(s[0].timeout, Duration::from_secs(4));
        assert!(s[0].verify_challenge_resource);
    }

    #[test]
    fn config_block_rejects_unknown_fields_and_credentials() {
        assert!(toml::from_str::<AzureConfig>("vault = \"v1\"\nclient_secret = \"x\"").is_err());
        let c: AzureConfig = toml::from_str("vault = \"v1x\"\ncredential = \"magic\"").unwrap();
        assert!(c.resolve(Duration::from_secs(1)).is_err());
    }
}
