//! TLS target syntax: `host:port`, `host` (443), `https://host[:port][/path]`, `[v6]:port`,
//! `addr:port@sni`.

use std::fmt;

/// One TLS endpoint to probe.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// Host name or IP literal to connect to (no brackets).
    pub host: String,
    pub port: u16,
    /// Name to send as SNI and check the certificate against, when it differs from `host`.
    pub sni: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid target '{input}': {why}")]
pub struct TargetError {
    pub input: String,
    pub why: String,
}

impl Target {
    /// Parse a target; `default_sni` applies when the target names none itself.
    pub fn parse(input: &str, default_sni: Option<&str>) -> Result<Target, TargetError> {
        let err = |why: &str| TargetError {
            input: input.to_owned(),
            why: why.to_owned(),
        };
        let mut s = input.trim();
        if s.is_empty() {
            return Err(err("empty target"));
        }
        let mut default_port = 443;
        if let Some((scheme, rest)) = s.split_once("://") {
            default_port = match scheme.to_ascii_lowercase().as_str() {
                "https" | "tls" => 443,
                "ldaps" => 636,
                "imaps" => 993,
                "smtps" => 465,
                "pop3s" => 995,
                other => {
                    return Err(err(&format!(
                        "unsupported scheme '{other}' (use https:// or host:port)"
                    )))
                }
            };
            s = rest;
            // Drop a path, query or fragment; drop user info.
            if let Some(i) = s.find(['/', '?', '#']) {
                s = &s[..i];
            }
            if let Some(i) = s.rfind('@') {
                // In a URL, '@' separates user info; SNI override is not URL syntax.
                s = &s[i + 1..];
            }
        }
        let mut sni = None;
        if let Some((addr, name)) = s.rsplit_once('@') {
            if name.is_empty() {
                return Err(err("empty name after '@'"));
            }
            sni = Some(name.to_owned());
            s = addr;
        }
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (h, after) = rest
                .split_once(']')
                .ok_or_else(|| err("missing ']' after IPv6 address"))?;
            if h.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(err("not an IPv6 address inside [...]"));
            }
            let port = match after.strip_prefix(':') {
                Some(p) => parse_port(p).ok_or_else(|| err("invalid port"))?,
                None if after.is_empty() => default_port,
                None => return Err(err("unexpected text after ']'")),
            };
            (h.to_owned(), port)
        } else if s.matches(':').count() > 1 {
            if s.parse::<std::net::Ipv6Addr>().is_ok() {
                (s.to_owned(), default_port)
            } else {
                return Err(err("IPv6 addresses with a port need brackets: [addr]:port"));
            }
        } else if let Some((h, p)) = s.split_once(':') {
            (
                h.to_owned(),
                parse_port(p).ok_or_else(|| err("invalid port"))?,
            )
        } else {
            (s.to_owned(), default_port)
        };
        if host.is_empty() {
            return Err(err("missing host"));
        }
        if host.contains(|c: char| c.is_whitespace() || c == '/') {
            return Err(err("host contains invalid characters"));
        }
        let sni = sni
            .or_else(|| default_sni.map(str::to_owned))
            .filter(|n| !n.eq_ignore_ascii_case(&host));
        Ok(Target { host, port, sni })
    }

    /// The name the certificate is checked against: the SNI override, else the host.
    pub fn server_name(&self) -> &str {
        self.sni.as_deref().unwrap_or(&self.host)
    }

    pub fn host_is_ip(&self) -> bool {
        self.host.parse::<std::net::IpAddr>().is_ok()
    }
}

fn parse_port(p: &str) -> Option<u16> {
    p.parse::<u16>().ok().filter(|&p| p != 0)
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)?;
        } else {
            write!(f, "{}:{}", self.host, self.port)?;
        }
        if let Some(sni) = &self.sni {
            write!(f, "@{sni}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Target {
        Target::parse(s, None).expect(s)
    }

    #[test]
    fn accepts_every_documented_form() {
        assert_eq!(p("127.0.0.1:20001").to_string(), "127.0.0.1:20001");
        assert_eq!(p("example.internal").to_string(), "example.internal:443");
        assert_eq!(
            p("https://api.example.test").to_string(),
            "api.example.test:443"
        );
        assert_eq!(
            p("https://api.example.test:8443/health?x=1").to_string(),
            "api.example.test:8443"
        );
        assert_eq!(p("[::1]:8443").to_string(), "[::1]:8443");
        assert_eq!(p("[::1]").to_string(), "[::1]:443");
        assert_eq!(p("::1").to_string(), "[::1]:443");
        let t = p("10.0.0.1:443@api.example.test");
        assert_eq!(t.host, "10.0.0.1");
        assert_eq!(t.server_name(), "api.example.test");
        assert_eq!(t.to_string(), "10.0.0.1:443@api.example.test");
        assert_eq!(p("ldaps://dir.example").port, 636);
    }

    #[test]
    fn default_sni_applies_only_when_none_given() {
        let t = Target::parse("127.0.0.1:1", Some("a.test")).unwrap();
        assert_eq!(t.server_name(), "a.test");
        let t = Target::parse("127.0.0.1:1@b.test", Some("a.test")).unwrap();
        assert_eq!(t.server_name(), "b.test");
    }

    #[test]
    fn rejects_bad_targets_with_a_reason() {
        for bad in [
            "",
            "host:0",
            "host:99999",
            "host:abc",
            "fe80::1::443",
            "[::1",
            "ftp://x",
            ":443",
            "a b:1",
        ] {
            let e = Target::parse(bad, None).unwrap_err();
            assert!(!e.why.is_empty(), "{bad}");
        }
    }
}
