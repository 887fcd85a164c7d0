//! SPIFFE settings: the `--spiffe` / `--spiffe-socket` flags, the `[[spiffe]]` config blocks,
//! and the resolved [`SpiffeSettings`] (one per Workload API socket) the source takes.

use std::time::Duration;

use serde::Deserialize;
use spiffe::transport::Endpoint;

/// The variable SPIFFE workloads find their Workload API socket in.
pub const ENDPOINT_ENV: &str = "SPIFFE_ENDPOINT_SOCKET";

/// SPIFFE flags of the dashboard, `scan` and `serve`.
#[derive(Debug, clap::Args, Default, Clone)]
#[command(next_help_heading = "SPIFFE / SPIRE")]
pub struct SpiffeArgs {
    /// Read the X.509 SVIDs and trust bundles of the SPIFFE Workload API named by
    /// SPIFFE_ENDPOINT_SOCKET (the SPIRE agent's socket).
    #[arg(long = "spiffe")]
    pub spiffe: bool,
    /// Read the SPIFFE Workload API on this socket (PATH or unix:///PATH; repeatable).
    #[arg(long = "spiffe-socket", value_name = "PATH|unix:///PATH")]
    pub spiffe_sockets: Vec<String>,
}

impl SpiffeArgs {
    pub fn given(&self) -> bool {
        self.spiffe || !self.spiffe_sockets.is_empty()
    }

    /// The sockets named: every `--spiffe-socket`, and SPIFFE_ENDPOINT_SOCKET for `--spiffe`
    /// (`env` is its value). Settings of a `[[spiffe]]` block naming the same socket apply.
    pub fn resolve(
        &self,
        env: Option<&str>,
        cfg: &[SpiffeConfig],
        default_timeout: Duration,
    ) -> Vec<Result<SpiffeSettings, SettingsError>> {
        let mut sockets: Vec<Option<String>> =
            self.spiffe_sockets.iter().cloned().map(Some).collect();
        if self.spiffe {
            sockets.push(None);
        }
        let mut out: Vec<Result<SpiffeSettings, SettingsError>> = Vec::new();
        for s in sockets {
            let r = SpiffeConfig {
                socket: s,
                ..SpiffeConfig::default()
            }
            .resolve(env, default_timeout)
            .map(|mut r| {
                if let Some(b) = cfg.iter().find(|b| {
                    b.socket
                        .as_deref()
                        .or(env)
                        .and_then(|s| parse_socket(s).ok())
                        .is_some_and(|e| e == r.endpoint)
                }) {
                    r.label = b.label.clone().unwrap_or(r.label);
                    r.timeout = b.timeout.unwrap_or(r.timeout);
                }
                r
            });
            let dup = out.iter().any(|o| match (o, &r) {
                (Ok(a), Ok(b)) => a.endpoint == b.endpoint,
                _ => false,
            });
            if !dup {
                out.push(r);
            }
        }
        out
    }
}

/// One `[[spiffe]]` block of the config file: a Workload API socket.
#[derive(Debug, Default, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SpiffeConfig {
    /// `unix:///PATH` or `PATH` (default: SPIFFE_ENDPOINT_SOCKET).
    pub socket: Option<String>,
    /// The name of this source instance in health lines (default: the socket path).
    pub label: Option<String>,
    /// Time limit of connecting and of the agent's first answer (default: the probe timeout).
    #[serde(default, deserialize_with = "crate::config::de_opt_duration")]
    pub timeout: Option<Duration>,
}

/// Why a socket cannot be used; the source shows it as a failing source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error(
        "SPIFFE_ENDPOINT_SOCKET is not set: name the Workload API socket with --spiffe-socket \
         PATH or `socket` in [[spiffe]]"
    )]
    NoSocket,
    #[error("invalid Workload API socket '{socket}': {reason}")]
    Invalid { socket: String, reason: String },
}

/// A socket as users write it: an absolute path, `unix:///PATH`, `unix:/PATH`, or the
/// `tcp://IP:PORT` the Workload API also allows.
pub fn parse_socket(s: &str) -> Result<Endpoint, SettingsError> {
    let s = s.trim();
    let uri = if s.starts_with('/') {
        format!("unix://{s}")
    } else {
        s.to_owned()
    };
    Endpoint::parse(&uri).map_err(|e| SettingsError::Invalid {
        socket: crate::model::text::clean(s).into_owned(),
        reason: e.to_string(),
    })
}

/// How an endpoint is shown: the socket path, or `tcp://IP:PORT`.
pub fn describe(e: &Endpoint) -> String {
    match e {
        Endpoint::Unix(p) => p.display().to_string(),
        Endpoint::Tcp { host, port } => match host {
            std::net::IpAddr::V6(h) => format!("tcp://[{h}]:{port}"),
            std::net::IpAddr::V4(h) => format!("tcp://{h}:{port}"),
        },
        // `Endpoint` is non-exhaustive.
        other => format!("{other:?}"),
    }
}

impl SpiffeConfig {
    /// `env`: the value of SPIFFE_ENDPOINT_SOCKET, used when the block names no socket.
    pub fn resolve(
        &self,
        env: Option<&str>,
        default_timeout: Duration,
    ) -> Result<SpiffeSettings, SettingsError> {
        let raw = self
            .socket
            .as_deref()
            .or(env.filter(|s| !s.trim().is_empty()))
            .ok_or(SettingsError::NoSocket)?;
        let endpoint = parse_socket(raw)?;
        Ok(SpiffeSettings {
            label: self
                .label
                .clone()
                .map(|l| crate::model::text::clean(&l).into_owned())
                .unwrap_or_else(|| describe(&endpoint)),
            socket: describe(&endpoint),
            endpoint,
            timeout: self.timeout.unwrap_or(default_timeout),
        })
    }
}

/// One Workload API to read. Holds no secret: SVID private keys are never read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpiffeSettings {
    pub endpoint: Endpoint,
    /// The socket as shown (its path).
    pub socket: String,
    /// The source instance's name (`spiffe LABEL`).
    pub label: String,
    /// Time limit of connecting and of each first answer.
    pub timeout: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(5);

    #[test]
    fn sockets_are_paths_or_unix_uris_and_the_flag_reads_the_variable() {
        let a = SpiffeArgs {
            spiffe: true,
            spiffe_sockets: vec![
                "/run/spire/agent.sock".into(),
                "unix:///run/spire/agent.sock".into(),
                "unix:///tmp/other.sock".into(),
            ],
        };
        let r = a.resolve(Some("unix:/run/env/api.sock"), &[], T);
        let r: Vec<SpiffeSettings> = r.into_iter().map(Result::unwrap).collect();
        assert_eq!(r.len(), 3, "the same socket twice is one source: {r:?}");
        assert_eq!(r[0].socket, "/run/spire/agent.sock");
        assert_eq!(r[0].label, "/run/spire/agent.sock");
        assert_eq!(r[1].socket, "/tmp/other.sock");
        assert_eq!(r[2].socket, "/run/env/api.sock");
        let r = SpiffeArgs {
            spiffe: true,
            spiffe_sockets: vec![],
        }
        .resolve(None, &[], T);
        assert_eq!(r, vec![Err(SettingsError::NoSocket)]);
        let bad = parse_socket("http://example.com/x").unwrap_err();
        assert!(bad.to_string().contains("unix: or tcp:"), "{bad}");
        assert!(parse_socket("tcp://127.0.0.1:8081").is_ok());
    }

    #[test]
    fn config_blocks_parse_and_name_their_instance() {
        let c: SpiffeConfig = toml::from_str(
            "socket = \"unix:///run/spire/sockets/agent.sock\"\nlabel = \"prod-agent\"\ntimeout = \"2s\"\n",
        )
        .unwrap();
        let s = c.resolve(None, T).unwrap();
        assert_eq!(s.label, "prod-agent");
        assert_eq!(s.socket, "/run/spire/sockets/agent.sock");
        assert_eq!(s.timeout, Duration::from_secs(2));
        assert!(toml::from_str::<SpiffeConfig>("sock = \"/x\"").is_err());
        // A flag naming the block's socket takes the block's label and timeout.
        let a = SpiffeArgs {
            spiffe: false,
            spiffe_sockets: vec!["/run/spire/sockets/agent.sock".into()],
        };
        let r = a.resolve(None, &[c], T);
        assert_eq!(r[0].as_ref().unwrap().label, "prod-agent");
        // A block without a socket uses the variable.
        let s = SpiffeConfig::default()
            .resolve(Some("/run/env.sock"), T)
            .unwrap();
        assert_eq!(s.socket, "/run/env.sock");
    }
}
