//! TLS target syntax: `host:port`, `host` (443), `https://host[:port][/path]`, `[v6]:port`,
//! `addr:port@sni`, and the STARTTLS forms: `smtp://`, `imap://`, `pop3://`, `ftp://`,
//! `postgres://` (`?sslnegotiation=direct`), `mysql://`, `ldap://`, `xmpp://` (`?domain=D`),
//! `xmpp-server://`; well-known ports select their protocol for plain `host:port` targets.
//!
//! A target's `Display` form parses back to the same target, whatever the parse options were:
//! that string is the record's location (and its id), and re-probes parse it again.

use std::fmt;

use super::starttls::{Protocol, StarttlsMode};

/// One TLS endpoint to probe.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// Host name or IP literal to connect to (no brackets).
    pub host: String,
    pub port: u16,
    /// Name to send as SNI and check the certificate against, when it differs from `host`.
    /// For XMPP it is also the stream's domain (`to`).
    pub sni: Option<String>,
    /// The plain-text dialogue before the TLS handshake, if any.
    pub starttls: Option<Protocol>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid target '{input}': {why}")]
pub struct TargetError {
    pub input: String,
    pub why: String,
}

impl Target {
    /// Parse a target; `default_sni` applies when the target names none itself. Well-known
    /// ports select their STARTTLS protocol (`StarttlsMode::Auto`).
    pub fn parse(input: &str, default_sni: Option<&str>) -> Result<Target, TargetError> {
        Target::parse_with(input, default_sni, StarttlsMode::Auto)
    }

    /// Parse a target; `mode` decides the protocol of plain `host[:port]` targets (a scheme
    /// always decides for itself).
    pub fn parse_with(
        input: &str,
        default_sni: Option<&str>,
        mode: StarttlsMode,
    ) -> Result<Target, TargetError> {
        let err = |why: &str| TargetError {
            input: input.to_owned(),
            why: why.to_owned(),
        };
        let mut s = input.trim();
        if s.is_empty() {
            return Err(err("empty target"));
        }
        let mut default_port = 443;
        // None: a plain target (the mode decides); Some(x): the scheme decided x.
        let mut scheme_proto: Option<Option<Protocol>> = None;
        let mut url_sni = None;
        if let Some((scheme, rest)) = s.split_once("://") {
            let scheme = scheme.to_ascii_lowercase();
            let mut proto = None;
            default_port = match scheme.as_str() {
                "https" | "tls" => 443,
                "ldaps" => 636,
                "imaps" => 993,
                "smtps" => 465,
                "pop3s" => 995,
                "ftps" => 990,
                "xmpps" => 5223,
                other => match Protocol::from_scheme(other) {
                    Some(p) => {
                        proto = Some(p);
                        p.default_port()
                    }
                    None => {
                        return Err(err(&format!(
                            "unsupported scheme '{other}' (use https://, host:port, or one of \
                             smtp imap pop3 ftp postgres mysql ldap xmpp xmpp-server)"
                        )))
                    }
                },
            };
            s = rest;
            // Drop a fragment; read the query (sni=, domain=, sslnegotiation=); drop a path.
            if let Some(i) = s.find('#') {
                s = &s[..i];
            }
            if let Some((before, query)) = s.split_once('?') {
                s = before;
                for (k, v) in query.split('&').filter_map(|kv| kv.split_once('=')) {
                    match k {
                        "sni" => url_sni = Some(v.to_owned()),
                        "domain"
                            if matches!(proto, Some(Protocol::Xmpp | Protocol::XmppServer)) =>
                        {
                            url_sni = Some(v.to_owned())
                        }
                        "domain" => return Err(err("?domain= is for xmpp:// targets")),
                        "sslnegotiation" if proto == Some(Protocol::Postgres) => match v {
                            "direct" => proto = Some(Protocol::PostgresDirect),
                            "postgres" => {}
                            _ => {
                                return Err(err(
                                    "sslnegotiation is 'postgres' (SSLRequest) or 'direct'",
                                ))
                            }
                        },
                        "sslnegotiation" => {
                            return Err(err("?sslnegotiation= is for postgres:// targets"))
                        }
                        _ => {}
                    }
                }
            }
            if let Some(i) = s.find('/') {
                s = &s[..i];
            }
            if let Some(i) = s.rfind('@') {
                // In a URL, '@' separates user info; the SNI override is `?sni=NAME`.
                s = &s[i + 1..];
            }
            if url_sni.as_deref() == Some("") {
                return Err(err("empty name in ?sni= or ?domain="));
            }
            scheme_proto = Some(proto);
        } else if let StarttlsMode::Force(p) = mode {
            default_port = p.default_port();
        }
        let mut sni = url_sni;
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
        if sni.as_deref().is_some_and(|n| {
            // These would not survive the `?sni=` of the location's URL form.
            n.contains(|c: char| c.is_control() || "?#&".contains(c))
        }) {
            return Err(err("the name to verify contains invalid characters"));
        }
        let sni = sni
            .or_else(|| default_sni.map(str::to_owned))
            .filter(|n| !n.eq_ignore_ascii_case(&host));
        let starttls = match (scheme_proto, mode) {
            (Some(p), _) => p,
            (None, StarttlsMode::Auto) => Protocol::for_port(port),
            (None, StarttlsMode::Off) => None,
            (None, StarttlsMode::Force(p)) => Some(p),
        };
        Ok(Target {
            host,
            port,
            sni,
            starttls,
        })
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
        // A URL form for STARTTLS targets, and for TLS on a port that selects a protocol, so
        // the string parses back to this very target.
        let scheme = match self.starttls {
            Some(p) => Some(p.scheme()),
            None if Protocol::for_port(self.port).is_some() => Some("tls"),
            None => None,
        };
        if let Some(scheme) = scheme {
            write!(f, "{scheme}://")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)?;
        } else {
            write!(f, "{}:{}", self.host, self.port)?;
        }
        let mut sep = '?';
        if self.starttls == Some(Protocol::PostgresDirect) {
            f.write_str("?sslnegotiation=direct")?;
            sep = '&';
        }
        match (&self.sni, scheme) {
            (Some(sni), None) => write!(f, "@{sni}")?,
            (Some(sni), Some(_))
                if matches!(self.starttls, Some(Protocol::Xmpp | Protocol::XmppServer)) =>
            {
                write!(f, "{sep}domain={sni}")?
            }
            (Some(sni), Some(_)) => write!(f, "{sep}sni={sni}")?,
            (None, _) => {}
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
    fn starttls_schemes_and_well_known_ports_select_their_protocol() {
        use crate::sources::starttls::Protocol as P;
        let cases: &[(&str, &str, u16, Option<P>)] = &[
            ("smtp://mail.example", "mail.example", 25, Some(P::Smtp)),
            (
                "smtp://mail.example:587",
                "mail.example",
                587,
                Some(P::Smtp),
            ),
            ("imap://mx.example", "mx.example", 143, Some(P::Imap)),
            ("pop3://mx.example", "mx.example", 110, Some(P::Pop3)),
            ("ftp://files.example", "files.example", 21, Some(P::Ftp)),
            (
                "postgres://db.example",
                "db.example",
                5432,
                Some(P::Postgres),
            ),
            (
                "postgresql://u:pw@db.example:6432/app?sslmode=require",
                "db.example",
                6432,
                Some(P::Postgres),
            ),
            (
                "postgres://db.example?sslnegotiation=direct",
                "db.example",
                5432,
                Some(P::PostgresDirect),
            ),
            ("mysql://db.example", "db.example", 3306, Some(P::Mysql)),
            ("ldap://dir.example", "dir.example", 389, Some(P::Ldap)),
            ("xmpp://chat.example", "chat.example", 5222, Some(P::Xmpp)),
            (
                "xmpp-server://chat.example",
                "chat.example",
                5269,
                Some(P::XmppServer),
            ),
            ("mail.example:25", "mail.example", 25, Some(P::Smtp)),
            ("mail.example:587", "mail.example", 587, Some(P::Smtp)),
            ("10.0.0.1:389", "10.0.0.1", 389, Some(P::Ldap)),
            (
                "chat.example:5269",
                "chat.example",
                5269,
                Some(P::XmppServer),
            ),
            // Implicit TLS keeps working as before.
            ("smtps://mail.example", "mail.example", 465, None),
            ("mail.example:465", "mail.example", 465, None),
            ("mail.example:993", "mail.example", 993, None),
            ("ldaps://dir.example", "dir.example", 636, None),
            ("chat.example:5223", "chat.example", 5223, None),
            ("tls://mail.example:25", "mail.example", 25, None),
        ];
        for (input, host, port, proto) in cases {
            let t = p(input);
            assert_eq!(
                (&t.host[..], t.port, t.starttls),
                (*host, *port, *proto),
                "{input}"
            );
        }
        let x = p("xmpp://127.0.0.1?domain=example.test");
        assert_eq!((x.port, x.server_name()), (5222, "example.test"));
        let s = p("smtp://10.0.0.1:2525?sni=mx.example");
        assert_eq!(s.server_name(), "mx.example");
    }

    #[test]
    fn the_starttls_mode_decides_for_plain_targets_only() {
        use crate::sources::starttls::{Protocol as P, StarttlsMode as M};
        let w = |s: &str, m: M| Target::parse_with(s, None, m).expect(s);
        assert_eq!(w("mail:25", M::Off).starttls, None);
        assert_eq!(w("smtp://mail:25", M::Off).starttls, Some(P::Smtp));
        assert_eq!(
            w("db:15432", M::Force(P::Postgres)).starttls,
            Some(P::Postgres)
        );
        assert_eq!(w("https://web:443", M::Force(P::Smtp)).starttls, None);
        let bare = w("mail.example", M::Force(P::Smtp));
        assert_eq!((bare.port, bare.starttls), (25, Some(P::Smtp)));
        assert_eq!(w("mail.example", M::Auto).port, 443);
    }

    #[test]
    fn the_location_parses_back_to_the_same_target() {
        use crate::sources::starttls::{Protocol as P, StarttlsMode as M};
        let mut inputs: Vec<(String, M)> = [
            "127.0.0.1:20001",
            "example.internal",
            "10.0.0.1:443@api.example.test",
            "[::1]:8443",
            "smtp://127.0.0.1:2525",
            "smtp://10.0.0.1:25?sni=mx.example",
            "postgres://db:5433?sslnegotiation=direct&sni=db.example",
            "xmpp://127.0.0.1:5222?domain=example.test",
            "xmpp-server://[::1]:5269?domain=example.test",
            "mail:25",
            "tls://mail:25",
            "tls://10.0.0.1:389?sni=dir.example",
        ]
        .iter()
        .map(|s| (s.to_string(), M::Auto))
        .collect();
        inputs.push(("mail:25".into(), M::Off));
        inputs.push(("10.0.0.1:389@dir.example".into(), M::Off));
        inputs.push(("db:7000".into(), M::Force(P::Mysql)));
        inputs.push(("h:8443@x.example".into(), M::Force(P::Imap)));
        for proto in P::ALL {
            inputs.push((
                format!("127.0.0.1:{}@n.example", proto.default_port()),
                M::Force(proto),
            ));
        }
        for (input, mode) in inputs {
            let t = Target::parse_with(&input, None, mode).expect(&input);
            let shown = t.to_string();
            assert_eq!(
                Target::parse(&shown, None).as_ref(),
                Ok(&t),
                "{input} -> {shown}"
            );
        }
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
            "gopher://x",
            ":443",
            "xmpp://h?domain=",
            "smtp://h?domain=x.example",
            "imap://h?sslnegotiation=direct",
            "postgres://h?sslnegotiation=maybe",
            "h:443@a?b",
            "a b:1",
        ] {
            let e = Target::parse(bad, None).unwrap_err();
            assert!(!e.why.is_empty(), "{bad}");
        }
    }
}
