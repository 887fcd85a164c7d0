//! STARTTLS and protocol-specific TLS: the plain-text dialogue a service needs before its TLS
//! handshake, for SMTP, IMAP, POP3, FTP, PostgreSQL, MySQL/MariaDB, LDAP and XMPP.
//!
//! One function per protocol, each over any `AsyncRead + AsyncWrite`: it speaks until the
//! server agrees to start TLS and leaves the stream at the first byte of the handshake. It
//! owns no timer: the probe's one timeout covers the whole exchange, and [`Stage`] says where
//! the dialogue was when it ran out. Every read is bounded (one line, one packet, the whole
//! dialogue), and bytes the server sends after agreeing to start TLS are refused rather than
//! handed to the TLS layer. Server text quoted in errors is hostile: [`shown`] strips control
//! characters and cuts it short.

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// A protocol that starts in plain text (or, for `postgres-direct`, negotiates by ALPN).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// EHLO, then STARTTLS (RFC 3207).
    Smtp,
    /// CAPABILITY, then STARTTLS (RFC 3501).
    Imap,
    /// CAPA, then STLS (RFC 2595).
    Pop3,
    /// AUTH TLS (RFC 4217).
    Ftp,
    /// SSLRequest, answered `S` (the frontend/backend protocol).
    Postgres,
    /// TLS from the first byte with ALPN `postgresql` (PostgreSQL 17+, `sslnegotiation=direct`).
    PostgresDirect,
    /// The server greeting, then an SSLRequest packet (MySQL and MariaDB).
    Mysql,
    /// The StartTLS extended operation, OID 1.3.6.1.4.1.1466.20037 (RFC 4511).
    Ldap,
    /// A `jabber:client` stream, then `<starttls/>` (RFC 6120).
    Xmpp,
    /// A `jabber:server` stream (server-to-server), then `<starttls/>`.
    XmppServer,
}

impl Protocol {
    pub const ALL: [Protocol; 10] = [
        Protocol::Smtp,
        Protocol::Imap,
        Protocol::Pop3,
        Protocol::Ftp,
        Protocol::Postgres,
        Protocol::PostgresDirect,
        Protocol::Mysql,
        Protocol::Ldap,
        Protocol::Xmpp,
        Protocol::XmppServer,
    ];

    /// The name used by `--starttls`, the config and the record's `starttls` field.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Smtp => "smtp",
            Protocol::Imap => "imap",
            Protocol::Pop3 => "pop3",
            Protocol::Ftp => "ftp",
            Protocol::Postgres => "postgres",
            Protocol::PostgresDirect => "postgres-direct",
            Protocol::Mysql => "mysql",
            Protocol::Ldap => "ldap",
            Protocol::Xmpp => "xmpp",
            Protocol::XmppServer => "xmpp-server",
        }
    }

    /// The protocol's name in messages.
    pub fn title(self) -> &'static str {
        match self {
            Protocol::Smtp => "SMTP",
            Protocol::Imap => "IMAP",
            Protocol::Pop3 => "POP3",
            Protocol::Ftp => "FTP",
            Protocol::Postgres | Protocol::PostgresDirect => "PostgreSQL",
            Protocol::Mysql => "MySQL",
            Protocol::Ldap => "LDAP",
            Protocol::Xmpp | Protocol::XmppServer => "XMPP",
        }
    }

    fn a_server(self) -> &'static str {
        match self {
            Protocol::Smtp => "an SMTP server",
            Protocol::Imap => "an IMAP server",
            Protocol::Pop3 => "a POP3 server",
            Protocol::Ftp => "an FTP server",
            Protocol::Postgres | Protocol::PostgresDirect => "a PostgreSQL server",
            Protocol::Mysql => "a MySQL server",
            Protocol::Ldap => "an LDAP server",
            Protocol::Xmpp | Protocol::XmppServer => "an XMPP server",
        }
    }

    /// What the client asks for to start TLS.
    fn verb(self) -> &'static str {
        match self {
            Protocol::Smtp | Protocol::Imap | Protocol::Xmpp | Protocol::XmppServer => "STARTTLS",
            Protocol::Pop3 => "STLS",
            Protocol::Ftp => "AUTH TLS",
            Protocol::Postgres | Protocol::PostgresDirect => "SSL",
            Protocol::Mysql => "TLS",
            Protocol::Ldap => "the StartTLS extended operation",
        }
    }

    /// The port a target of this protocol gets when it names none.
    pub fn default_port(self) -> u16 {
        match self {
            Protocol::Smtp => 25,
            Protocol::Imap => 143,
            Protocol::Pop3 => 110,
            Protocol::Ftp => 21,
            Protocol::Postgres | Protocol::PostgresDirect => 5432,
            Protocol::Mysql => 3306,
            Protocol::Ldap => 389,
            Protocol::Xmpp => 5222,
            Protocol::XmppServer => 5269,
        }
    }

    /// The protocol a well-known port selects for a plain `host:port` target.
    pub fn for_port(port: u16) -> Option<Protocol> {
        Some(match port {
            25 | 587 => Protocol::Smtp,
            143 => Protocol::Imap,
            110 => Protocol::Pop3,
            21 => Protocol::Ftp,
            5432 => Protocol::Postgres,
            3306 => Protocol::Mysql,
            389 => Protocol::Ldap,
            5222 => Protocol::Xmpp,
            5269 => Protocol::XmppServer,
            _ => return None,
        })
    }

    /// The protocol of a URL scheme (`smtp`, `postgresql`, `xmpp-server`...).
    pub fn from_scheme(scheme: &str) -> Option<Protocol> {
        Some(match scheme {
            "smtp" | "submission" => Protocol::Smtp,
            "imap" => Protocol::Imap,
            "pop3" | "pop" => Protocol::Pop3,
            "ftp" => Protocol::Ftp,
            "postgres" | "postgresql" => Protocol::Postgres,
            "mysql" | "mariadb" => Protocol::Mysql,
            "ldap" => Protocol::Ldap,
            "xmpp" => Protocol::Xmpp,
            "xmpp-server" => Protocol::XmppServer,
            _ => return None,
        })
    }

    /// The URL scheme a target of this protocol is written with.
    pub fn scheme(self) -> &'static str {
        match self {
            Protocol::PostgresDirect => "postgres",
            other => other.name(),
        }
    }

    /// ALPN protocols the TLS handshake offers.
    pub fn alpn(self) -> Option<&'static [u8]> {
        match self {
            Protocol::PostgresDirect => Some(b"postgresql"),
            _ => None,
        }
    }

    /// A hint for a TLS handshake that fails after this protocol's dialogue.
    pub fn handshake_hint(self) -> Option<&'static str> {
        match self {
            Protocol::PostgresDirect => Some(
                "direct TLS needs PostgreSQL 17 or newer; without ?sslnegotiation=direct \
                 the SSLRequest works with every version",
            ),
            _ => None,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

fn names() -> String {
    Protocol::ALL.map(Protocol::name).join(", ")
}

impl FromStr for Protocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Protocol, String> {
        let s = s.trim().to_ascii_lowercase();
        Protocol::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .or(match s.as_str() {
                "postgresql" => Some(Protocol::Postgres),
                "mariadb" => Some(Protocol::Mysql),
                _ => None,
            })
            .ok_or_else(|| format!("unknown STARTTLS protocol '{s}' (one of: {})", names()))
    }
}

/// How plain `host:port` targets choose their protocol: `--starttls` and `[probe] starttls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StarttlsMode {
    /// Well-known ports select their protocol (25 and 587 SMTP, 143 IMAP...); others are TLS.
    #[default]
    Auto,
    /// Every plain target is TLS from the first byte.
    Off,
    /// Every plain target speaks this protocol (a target without a port gets its default port).
    Force(Protocol),
}

impl FromStr for StarttlsMode {
    type Err = String;
    fn from_str(s: &str) -> Result<StarttlsMode, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(StarttlsMode::Auto),
            "none" | "off" | "tls" => Ok(StarttlsMode::Off),
            other => other.parse().map(StarttlsMode::Force).map_err(|_| {
                format!(
                    "unknown STARTTLS protocol '{other}' (auto, none, or one of: {})",
                    names()
                )
            }),
        }
    }
}

impl fmt::Display for StarttlsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StarttlsMode::Auto => f.write_str("auto"),
            StarttlsMode::Off => f.write_str("none"),
            StarttlsMode::Force(p) => f.write_str(p.name()),
        }
    }
}

impl<'de> serde::Deserialize<'de> for StarttlsMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<StarttlsMode, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Where the dialogue is, for a timeout message ("waiting for the EHLO reply").
#[derive(Debug)]
pub struct Stage(Mutex<&'static str>);

impl Default for Stage {
    fn default() -> Self {
        Stage(Mutex::new("starting"))
    }
}

impl Stage {
    pub fn set(&self, what: &'static str) {
        if let Ok(mut s) = self.0.lock() {
            *s = what;
        }
    }
    pub fn get(&self) -> &'static str {
        self.0.lock().map(|s| *s).unwrap_or("starting")
    }
}

/// Why the dialogue before TLS failed. Quoted server text is already made safe.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StarttlsError {
    #[error("{}: the server does not offer {} ({detail})", .proto.title(), .proto.verb())]
    NotOffered { proto: Protocol, detail: String },
    #[error("{}: the server refused {what}: {reply}", .proto.title())]
    Refused {
        proto: Protocol,
        what: String,
        reply: String,
    },
    #[error("{}: not {}: it answers in {other}{}", .proto.title(), .proto.a_server(), wrong_tail(.other, .got))]
    WrongProtocol {
        proto: Protocol,
        other: &'static str,
        got: String,
    },
    #[error("{}: unexpected {what} from the server: \"{got}\"", .proto.title())]
    Garbage {
        proto: Protocol,
        what: &'static str,
        got: String,
    },
    #[error("{}: the server sent a line longer than {limit} bytes while {stage}", .proto.title())]
    LineTooLong {
        proto: Protocol,
        limit: usize,
        stage: &'static str,
    },
    #[error("{}: the server sent more than {limit} bytes before TLS, while {stage}", .proto.title())]
    TooMuch {
        proto: Protocol,
        limit: usize,
        stage: &'static str,
    },
    #[error("{}: the server closed the connection while {stage}", .proto.title())]
    Closed {
        proto: Protocol,
        stage: &'static str,
    },
    #[error("{}: {message} while {stage}", .proto.title())]
    Io {
        proto: Protocol,
        stage: &'static str,
        message: String,
    },
    #[error("{}: the server sent {extra} more bytes after agreeing to start TLS; refused, as they would be taken for the TLS handshake (STARTTLS injection)", .proto.title())]
    Injected { proto: Protocol, extra: usize },
}

fn wrong_tail(other: &str, got: &str) -> String {
    if other == "TLS" {
        "; this port speaks TLS from the first byte: scan it as tls://host:port".to_owned()
    } else {
        format!(" (\"{got}\")")
    }
}

/// Longest line (or packet) accepted from the server before TLS.
pub const MAX_LINE: usize = 4096;
/// Most bytes accepted from the server in the whole dialogue before TLS.
pub const MAX_DIALOGUE: usize = 64 * 1024;
/// Longest piece of server text quoted in an error.
const SHOWN: usize = 100;

/// Server bytes made safe to show: printable ASCII only (others as `.`), cut to 100 bytes.
pub fn shown(b: &[u8]) -> String {
    let mut s: String = b
        .iter()
        .take(SHOWN)
        .map(|&c| {
            if c.is_ascii_graphic() || c == b' ' {
                c as char
            } else {
                '.'
            }
        })
        .collect();
    if b.len() > SHOWN {
        s.push('…');
    }
    s
}

/// Which other protocol these first bytes look like, if any.
fn guess_other(b: &[u8]) -> Option<&'static str> {
    let starts = |p: &[u8]| b.len() >= p.len() && b[..p.len()].eq_ignore_ascii_case(p);
    let has = |p: &[u8]| b.windows(p.len()).any(|w| w.eq_ignore_ascii_case(p));
    if b.len() >= 2 && matches!(b[0], 0x15 | 0x16) && b[1] == 0x03 {
        return Some("TLS");
    }
    if starts(b"HTTP/") {
        return Some("HTTP");
    }
    if starts(b"SSH-") {
        return Some("SSH");
    }
    if starts(b"* OK") || starts(b"* PREAUTH") || starts(b"* BYE") {
        return Some("IMAP");
    }
    if starts(b"+OK") || starts(b"-ERR") {
        return Some("POP3");
    }
    if starts(b"<?xml") || starts(b"<stream") {
        return Some("XMPP");
    }
    if b.len() >= 4 && b[..3].iter().all(u8::is_ascii_digit) && matches!(b[3], b' ' | b'-') {
        let line = b.split(|&c| c == b'\n').next().unwrap_or(b);
        let line_has = |p: &[u8]| line.windows(p.len()).any(|w| w.eq_ignore_ascii_case(p));
        if line_has(b"FTP") {
            return Some("FTP");
        }
        if line_has(b"SMTP") || line_has(b"Postfix") || line_has(b"Exim") {
            return Some("SMTP");
        }
        return None;
    }
    if b.len() >= 5 && b[3] == 0 && b[4] == 10 {
        return Some("MySQL");
    }
    if has(b"mysql_native_password") || has(b"MariaDB") {
        return Some("MySQL");
    }
    None
}

/// The bytes were not what `proto` expects: another protocol, or garbage.
fn unexpected(proto: Protocol, what: &'static str, got: &[u8]) -> StarttlsError {
    match guess_other(got) {
        Some(other) if other != proto.title() => StarttlsError::WrongProtocol {
            proto,
            other,
            got: shown(got),
        },
        _ => StarttlsError::Garbage {
            proto,
            what,
            got: shown(got),
        },
    }
}

/// The plain-text side of a connection: bounded reads, with everything received kept (the
/// dialogue is small) so errors can quote it.
struct Wire<'a, S> {
    io: &'a mut S,
    proto: Protocol,
    stage: &'a Stage,
    at: &'static str,
    buf: Vec<u8>,
    pos: usize,
}

impl<'a, S: AsyncRead + AsyncWrite + Unpin> Wire<'a, S> {
    fn new(io: &'a mut S, proto: Protocol, stage: &'a Stage) -> Self {
        Wire {
            io,
            proto,
            stage,
            at: "starting",
            buf: Vec::new(),
            pos: 0,
        }
    }

    fn at(&mut self, what: &'static str) {
        self.at = what;
        self.stage.set(what);
    }

    /// Read more bytes (at least one) into the buffer, within the dialogue's budget.
    async fn fill(&mut self) -> Result<(), StarttlsError> {
        let room = MAX_DIALOGUE.saturating_sub(self.buf.len());
        if room == 0 {
            return Err(StarttlsError::TooMuch {
                proto: self.proto,
                limit: MAX_DIALOGUE,
                stage: self.at,
            });
        }
        let mut chunk = [0u8; 4096];
        let want = room.min(chunk.len());
        let n = self
            .io
            .read(&mut chunk[..want])
            .await
            .map_err(|e| self.io_error(&e))?;
        if n == 0 {
            return Err(StarttlsError::Closed {
                proto: self.proto,
                stage: self.at,
            });
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    fn io_error(&self, e: &std::io::Error) -> StarttlsError {
        let message = match e.kind() {
            std::io::ErrorKind::ConnectionReset => "connection reset".to_owned(),
            std::io::ErrorKind::BrokenPipe => "connection closed by the server".to_owned(),
            _ => {
                let s = e.to_string();
                s.split(" (os error").next().unwrap_or_default().to_owned()
            }
        };
        StarttlsError::Io {
            proto: self.proto,
            stage: self.at,
            message,
        }
    }

    /// One line, without its CR LF; at most `MAX_LINE` bytes.
    async fn line(&mut self) -> Result<Vec<u8>, StarttlsError> {
        loop {
            let rest = &self.buf[self.pos..];
            if let Some(i) = rest.iter().position(|&b| b == b'\n') {
                if i > MAX_LINE {
                    break;
                }
                let mut line = rest[..i].to_vec();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                self.pos += i + 1;
                return Ok(line);
            }
            if rest.len() > MAX_LINE {
                break;
            }
            self.fill().await?;
        }
        Err(StarttlsError::LineTooLong {
            proto: self.proto,
            limit: MAX_LINE,
            stage: self.at,
        })
    }

    /// Exactly `n` bytes (`n` at most `MAX_LINE`, checked by the callers).
    async fn exact(&mut self, n: usize) -> Result<Vec<u8>, StarttlsError> {
        while self.buf.len() - self.pos < n {
            self.fill().await?;
        }
        let out = self.buf[self.pos..self.pos + n].to_vec();
        self.pos += n;
        Ok(out)
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), StarttlsError> {
        let res = async {
            self.io.write_all(bytes).await?;
            self.io.flush().await
        }
        .await;
        res.map_err(|e| self.io_error(&e))
    }

    /// Everything received so far.
    fn received(&self) -> &[u8] {
        &self.buf
    }

    /// The server agreed to start TLS: nothing may follow its answer.
    fn finish(self) -> Result<(), StarttlsError> {
        let extra = self.buf.len() - self.pos;
        if extra > 0 {
            return Err(StarttlsError::Injected {
                proto: self.proto,
                extra,
            });
        }
        self.stage.set("done");
        Ok(())
    }
}

/// Speak `proto` until the server agrees to start TLS. `domain` is the name the certificate is
/// checked against (the XMPP stream's `to`).
pub async fn negotiate<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    proto: Protocol,
    domain: &str,
    stage: &Stage,
) -> Result<(), StarttlsError> {
    match proto {
        Protocol::Smtp => smtp(io, stage).await,
        Protocol::Imap => imap(io, stage).await,
        Protocol::Pop3 => pop3(io, stage).await,
        Protocol::Ftp => ftp(io, stage).await,
        Protocol::Postgres => postgres(io, stage).await,
        Protocol::PostgresDirect => Ok(()),
        Protocol::Mysql => mysql(io, stage).await,
        Protocol::Ldap => ldap(io, stage).await,
        Protocol::Xmpp => xmpp(io, domain, false, stage).await,
        Protocol::XmppServer => xmpp(io, domain, true, stage).await,
    }
}

// ---------------------------------------------------------------------------------------------
// SMTP and FTP: numbered replies.

/// A numbered reply (SMTP, FTP): its code and the text of each line.
struct Reply {
    code: u16,
    lines: Vec<Vec<u8>>,
}

impl Reply {
    fn text(&self) -> String {
        let joined: Vec<u8> = self.lines.join(&b" | "[..]);
        format!("{} {}", self.code, shown(&joined))
    }
}

fn reply_code(line: &[u8]) -> Option<(u16, bool)> {
    if line.len() < 3 || !line[..3].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let code = line[..3]
        .iter()
        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    match line.get(3) {
        None | Some(b' ') => Some((code, false)),
        Some(b'-') => Some((code, true)),
        Some(_) => None,
    }
}

/// Read one numbered reply. SMTP continues with `ddd-` on every line; FTP (`ftp_style`) lets
/// the lines between `ddd-` and the final `ddd ` hold any text.
async fn numbered_reply<S: AsyncRead + AsyncWrite + Unpin>(
    w: &mut Wire<'_, S>,
    what: &'static str,
    ftp_style: bool,
) -> Result<Reply, StarttlsError> {
    let first = w.line().await?;
    let Some((code, mut more)) = reply_code(&first) else {
        return Err(unexpected(w.proto, what, &first));
    };
    let mut lines = vec![first.get(4..).unwrap_or_default().to_vec()];
    while more {
        let line = w.line().await?;
        match reply_code(&line) {
            Some((c, m)) if c == code => {
                more = m;
                lines.push(line.get(4..).unwrap_or_default().to_vec());
            }
            _ if ftp_style => lines.push(line),
            _ => return Err(unexpected(w.proto, what, &line)),
        }
    }
    Ok(Reply { code, lines })
}

/// SMTP: greeting 220, EHLO (STARTTLS among the extensions), STARTTLS answered 220.
pub async fn smtp<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    stage: &Stage,
) -> Result<(), StarttlsError> {
    let proto = Protocol::Smtp;
    let mut w = Wire::new(io, proto, stage);
    w.at("waiting for the greeting");
    let greeting = numbered_reply(&mut w, "greeting", false).await?;
    if greeting.code != 220 {
        return Err(refused(proto, "the session", greeting.text()));
    }
    if guess_other(w.received()) == Some("FTP") {
        return Err(unexpected(proto, "greeting", w.received()));
    }
    w.send(b"EHLO certdeck.invalid\r\n").await?;
    w.at("waiting for the EHLO reply");
    let ehlo = numbered_reply(&mut w, "EHLO reply", false).await?;
    if ehlo.code != 250 {
        return Err(StarttlsError::NotOffered {
            proto,
            detail: format!("EHLO refused: {}", ehlo.text()),
        });
    }
    let extensions: Vec<String> = ehlo
        .lines
        .iter()
        .skip(1)
        .map(|l| first_word(l).to_ascii_uppercase())
        .collect();
    if !extensions.iter().any(|e| e == "STARTTLS") {
        return Err(not_offered_list(proto, "extensions", &extensions));
    }
    w.send(b"STARTTLS\r\n").await?;
    w.at("waiting for the reply to STARTTLS");
    let go = numbered_reply(&mut w, "reply to STARTTLS", false).await?;
    if go.code != 220 {
        return Err(refused(proto, "STARTTLS", go.text()));
    }
    w.finish()
}

/// FTP: greeting 220 (after any 120), AUTH TLS answered 234.
pub async fn ftp<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    stage: &Stage,
) -> Result<(), StarttlsError> {
    let proto = Protocol::Ftp;
    let mut w = Wire::new(io, proto, stage);
    w.at("waiting for the greeting");
    let mut greeting = numbered_reply(&mut w, "greeting", true).await?;
    if greeting.code == 120 {
        greeting = numbered_reply(&mut w, "greeting", true).await?;
    }
    if greeting.code != 220 {
        return Err(refused(proto, "the session", greeting.text()));
    }
    if guess_other(w.received()) == Some("SMTP") {
        return Err(unexpected(proto, "greeting", w.received()));
    }
    w.send(b"AUTH TLS\r\n").await?;
    w.at("waiting for the reply to AUTH TLS");
    let go = numbered_reply(&mut w, "reply to AUTH TLS", true).await?;
    match go.code {
        234 => w.finish(),
        500 | 502 | 504 => Err(StarttlsError::NotOffered {
            proto,
            detail: format!("AUTH TLS answered {}", go.text()),
        }),
        _ => Err(refused(proto, "AUTH TLS", go.text())),
    }
}

fn refused(proto: Protocol, what: &str, reply: String) -> StarttlsError {
    StarttlsError::Refused {
        proto,
        what: what.to_owned(),
        reply,
    }
}

fn first_word(line: &[u8]) -> String {
    let w = line
        .split(|&b| b == b' ' || b == b'=')
        .next()
        .unwrap_or_default();
    shown(w)
}

fn not_offered_list(proto: Protocol, what: &str, items: &[String]) -> StarttlsError {
    let detail = if items.is_empty() {
        format!("no {what} listed")
    } else {
        let mut s = items.join(", ");
        if s.len() > SHOWN {
            let mut cut = SHOWN;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            s.truncate(cut);
            s.push('…');
        }
        format!("{what}: {s}")
    };
    StarttlsError::NotOffered { proto, detail }
}

// ---------------------------------------------------------------------------------------------
// IMAP and POP3.

fn starts_ci(line: &[u8], prefix: &[u8]) -> bool {
    line.len() >= prefix.len() && line[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// The capability atoms of a `CAPABILITY ...` text (untagged response or response code).
fn imap_caps(text: &[u8]) -> Vec<String> {
    text.split(|&b| b == b' ' || b == b']')
        .filter(|a| !a.is_empty())
        .map(|a| shown(a).to_ascii_uppercase())
        .collect()
}

/// Read untagged lines until the tagged completion of `tag`; returns (untagged, completion).
async fn imap_tagged<S: AsyncRead + AsyncWrite + Unpin>(
    w: &mut Wire<'_, S>,
    tag: &[u8],
    what: &'static str,
) -> Result<(Vec<Vec<u8>>, Vec<u8>), StarttlsError> {
    let mut untagged = Vec::new();
    loop {
        let line = w.line().await?;
        if line.starts_with(tag) && line.get(tag.len()) == Some(&b' ') {
            return Ok((untagged, line[tag.len() + 1..].to_vec()));
        }
        if line.starts_with(b"* ") || line.starts_with(b"+ ") {
            untagged.push(line);
            continue;
        }
        return Err(unexpected(w.proto, what, &line));
    }
}

/// IMAP: greeting `* OK`, CAPABILITY (unless the greeting lists them) with STARTTLS, then
/// `STARTTLS` answered `OK`.
pub async fn imap<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    stage: &Stage,
) -> Result<(), StarttlsError> {
    let proto = Protocol::Imap;
    let mut w = Wire::new(io, proto, stage);
    w.at("waiting for the greeting");
    let greeting = w.line().await?;
    if starts_ci(&greeting, b"* BYE") {
        return Err(refused(proto, "the session", shown(&greeting)));
    }
    if starts_ci(&greeting, b"* PREAUTH") {
        return Err(StarttlsError::NotOffered {
            proto,
            detail: "the session is pre-authenticated (PREAUTH), where STARTTLS is not allowed"
                .to_owned(),
        });
    }
    if !starts_ci(&greeting, b"* OK") {
        return Err(unexpected(proto, "greeting", &greeting));
    }
    let mut caps = Vec::new();
    let code = b"[CAPABILITY ";
    if let Some(i) = greeting
        .windows(code.len())
        .position(|w| w.eq_ignore_ascii_case(code))
    {
        let rest = &greeting[i + code.len()..];
        let end = rest.iter().position(|&b| b == b']').unwrap_or(rest.len());
        caps = imap_caps(&rest[..end]);
    }
    if caps.is_empty() {
        w.send(b"a1 CAPABILITY\r\n").await?;
        w.at("waiting for the CAPABILITY reply");
        let (untagged, done) = imap_tagged(&mut w, b"a1", "CAPABILITY reply").await?;
        if !starts_ci(&done, b"OK") {
            return Err(StarttlsError::NotOffered {
                proto,
                detail: format!("CAPABILITY failed: {}", shown(&done)),
            });
        }
        for l in untagged {
            if let Some(rest) = l.get(2..).filter(|r| starts_ci(r, b"CAPABILITY ")) {
                caps.extend(imap_caps(&rest[11..]));
            }
        }
    }
    if !caps.iter().any(|c| c == "STARTTLS") {
        return Err(not_offered_list(proto, "capabilities", &caps));
    }
    w.send(b"a2 STARTTLS\r\n").await?;
    w.at("waiting for the reply to STARTTLS");
    let (_, done) = imap_tagged(&mut w, b"a2", "reply to STARTTLS").await?;
    if !starts_ci(&done, b"OK") {
        return Err(refused(proto, "STARTTLS", shown(&done)));
    }
    w.finish()
}

/// POP3: greeting `+OK`, CAPA (STLS listed; a server without CAPA is asked anyway), then
/// `STLS` answered `+OK`.
pub async fn pop3<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    stage: &Stage,
) -> Result<(), StarttlsError> {
    let proto = Protocol::Pop3;
    let mut w = Wire::new(io, proto, stage);
    w.at("waiting for the greeting");
    let greeting = w.line().await?;
    if starts_ci(&greeting, b"-ERR") {
        return Err(refused(proto, "the session", shown(&greeting)));
    }
    if !starts_ci(&greeting, b"+OK") {
        return Err(unexpected(proto, "greeting", &greeting));
    }
    w.send(b"CAPA\r\n").await?;
    w.at("waiting for the CAPA reply");
    let capa = w.line().await?;
    if starts_ci(&capa, b"+OK") {
        let mut caps = Vec::new();
        loop {
            let line = w.line().await?;
            if line == b"." {
                break;
            }
            caps.push(first_word(&line).to_ascii_uppercase());
        }
        if !caps.iter().any(|c| c == "STLS") {
            return Err(not_offered_list(proto, "capabilities", &caps));
        }
    } else if !starts_ci(&capa, b"-ERR") {
        return Err(unexpected(proto, "CAPA reply", &capa));
    }
    w.send(b"STLS\r\n").await?;
    w.at("waiting for the reply to STLS");
    let go = w.line().await?;
    if starts_ci(&go, b"+OK") {
        return w.finish();
    }
    if starts_ci(&go, b"-ERR") {
        return Err(refused(proto, "STLS", shown(&go)));
    }
    Err(unexpected(proto, "reply to STLS", &go))
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL and MySQL: binary packets.

/// The SSLRequest: length 8, code 80877103.
const PG_SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// PostgreSQL: SSLRequest answered `S` (`N`: SSL is off; `E`: an error message).
pub async fn postgres<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    stage: &Stage,
) -> Result<(), StarttlsError> {
    let proto = Protocol::Postgres;
    let mut w = Wire::new(io, proto, stage);
    w.send(&PG_SSL_REQUEST).await?;
    w.at("waiting for the reply to SSLRequest");
    let answer = w.exact(1).await?;
    match answer[0] {
        b'S' => w.finish(),
        b'N' => Err(StarttlsError::NotOffered {
            proto,
            detail: "it answered the SSLRequest with N: ssl is off".to_owned(),
        }),
        b'E' => {
            w.at("reading the error response to SSLRequest");
            let len = w.exact(4).await?;
            let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
            if !(4..=MAX_LINE).contains(&len) {
                return Err(unexpected(proto, "error response", w.received()));
            }
            let body = w.exact(len - 4).await?;
            let message = body
                .split(|&b| b == 0)
                .find(|f| f.first() == Some(&b'M'))
                .map(|f| shown(&f[1..]))
                .unwrap_or_else(|| shown(&body));
            Err(refused(proto, "the SSLRequest", message))
        }
        _ => Err(unexpected(proto, "reply to SSLRequest", w.received())),
    }
}

const MYSQL_CLIENT_LONG_PASSWORD: u32 = 0x0001;
const MYSQL_CLIENT_PROTOCOL_41: u32 = 0x0200;
const MYSQL_CLIENT_SSL: u32 = 0x0800;
const MYSQL_CLIENT_SECURE_CONNECTION: u32 = 0x8000;

/// Read one MySQL packet: (sequence id, payload).
async fn mysql_packet<S: AsyncRead + AsyncWrite + Unpin>(
    w: &mut Wire<'_, S>,
    what: &'static str,
) -> Result<(u8, Vec<u8>), StarttlsError> {
    let head = w.exact(4).await?;
    if let Some(other) = guess_other(w.received()).filter(|o| *o != "MySQL") {
        return Err(StarttlsError::WrongProtocol {
            proto: w.proto,
            other,
            got: shown(w.received()),
        });
    }
    let len = usize::from(head[0]) | usize::from(head[1]) << 8 | usize::from(head[2]) << 16;
    if len == 0 || len > MAX_LINE {
        return Err(unexpected(w.proto, what, w.received()));
    }
    let payload = w.exact(len).await?;
    Ok((head[3], payload))
}

/// MySQL and MariaDB: the server greeting (protocol 10, CLIENT_SSL among its capabilities),
/// then an SSLRequest packet; the server answers with the TLS handshake itself.
pub async fn mysql<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    stage: &Stage,
) -> Result<(), StarttlsError> {
    let proto = Protocol::Mysql;
    let mut w = Wire::new(io, proto, stage);
    w.at("waiting for the server greeting");
    let (seq, p) = mysql_packet(&mut w, "greeting").await?;
    if p[0] == 0xff {
        // ERR packet: code (2 bytes), then the message (after an optional #SQLSTATE).
        let code = p.get(1..3).map(|c| u16::from_le_bytes([c[0], c[1]]));
        let mut msg = p.get(3..).unwrap_or_default();
        if msg.first() == Some(&b'#') {
            msg = msg.get(6..).unwrap_or_default();
        }
        let code = code.map(|c| format!("error {c}: ")).unwrap_or_default();
        return Err(refused(
            proto,
            "the connection",
            format!("{code}{}", shown(msg)),
        ));
    }
    if p[0] != 10 {
        return Err(unexpected(proto, "greeting", w.received()));
    }
    let Some(nul) = p[1..].iter().position(|&b| b == 0) else {
        return Err(unexpected(proto, "greeting", w.received()));
    };
    let version = shown(&p[1..1 + nul]);
    // After the version: connection id (4), auth data (8), filler (1), capabilities (2).
    let caps_at = 1 + nul + 1 + 4 + 8 + 1;
    let Some(caps) = p.get(caps_at..caps_at + 2) else {
        return Err(unexpected(proto, "greeting", w.received()));
    };
    let caps = u32::from(u16::from_le_bytes([caps[0], caps[1]]));
    if caps & MYSQL_CLIENT_SSL == 0 {
        return Err(StarttlsError::NotOffered {
            proto,
            detail: format!("server {version} has no CLIENT_SSL capability: TLS is not set up"),
        });
    }
    let flags = MYSQL_CLIENT_LONG_PASSWORD
        | MYSQL_CLIENT_PROTOCOL_41
        | MYSQL_CLIENT_SSL
        | MYSQL_CLIENT_SECURE_CONNECTION;
    let mut req = Vec::with_capacity(36);
    req.extend_from_slice(&[32, 0, 0, seq.wrapping_add(1)]);
    req.extend_from_slice(&flags.to_le_bytes());
    req.extend_from_slice(&(16u32 << 20).to_le_bytes());
    req.push(45); // utf8mb4_general_ci
    req.extend_from_slice(&[0u8; 23]);
    w.send(&req).await?;
    w.at("waiting for the TLS handshake after the SSLRequest");
    w.finish()
}

// ---------------------------------------------------------------------------------------------
// LDAP: one BER-encoded extended operation.

/// LDAPMessage { messageID 1, ExtendedRequest { requestName 1.3.6.1.4.1.1466.20037 } }.
const LDAP_STARTTLS: &[u8] = b"\x30\x1d\x02\x01\x01\x77\x18\x80\x161.3.6.1.4.1.1466.20037";

/// A minimal reader of definite-length BER.
struct Ber<'a>(&'a [u8]);

impl<'a> Ber<'a> {
    /// Next (tag, content), or None when malformed.
    fn tlv(&mut self) -> Option<(u8, &'a [u8])> {
        let (&tag, rest) = self.0.split_first()?;
        let (len, rest) = ber_len(rest)?;
        if rest.len() < len {
            return None;
        }
        let (content, rest) = rest.split_at(len);
        self.0 = rest;
        Some((tag, content))
    }
}

/// A BER length (short form, or long form of up to 4 bytes): (length, rest).
fn ber_len(b: &[u8]) -> Option<(usize, &[u8])> {
    let (&first, rest) = b.split_first()?;
    if first < 0x80 {
        return Some((usize::from(first), rest));
    }
    let n = usize::from(first & 0x7f);
    if n == 0 || n > 4 || rest.len() < n {
        return None;
    }
    let len = rest[..n]
        .iter()
        .fold(0usize, |l, &b| (l << 8) | usize::from(b));
    Some((len, &rest[n..]))
}

fn ldap_result_name(code: u32) -> &'static str {
    match code {
        1 => "operationsError",
        2 => "protocolError",
        3 => "timeLimitExceeded",
        7 => "authMethodNotSupported",
        8 => "strongerAuthRequired",
        12 => "unavailableCriticalExtension",
        13 => "confidentialityRequired",
        50 => "insufficientAccessRights",
        51 => "busy",
        52 => "unavailable",
        53 => "unwillingToPerform",
        80 => "other",
        _ => "result",
    }
}

/// LDAP: the StartTLS extended request, answered by an ExtendedResponse with success.
pub async fn ldap<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    stage: &Stage,
) -> Result<(), StarttlsError> {
    let proto = Protocol::Ldap;
    let mut w = Wire::new(io, proto, stage);
    w.send(LDAP_STARTTLS).await?;
    w.at("waiting for the StartTLS response");
    let head = w.exact(2).await?;
    if head[0] != 0x30 {
        return Err(unexpected(proto, "response", w.received()));
    }
    let len = if head[1] < 0x80 {
        usize::from(head[1])
    } else {
        let n = usize::from(head[1] & 0x7f);
        if n == 0 || n > 4 {
            return Err(unexpected(proto, "response", w.received()));
        }
        let more = w.exact(n).await?;
        more.iter().fold(0usize, |l, &b| (l << 8) | usize::from(b))
    };
    if len > MAX_LINE {
        return Err(unexpected(proto, "response", w.received()));
    }
    let body = w.exact(len).await?;
    let garbage = || unexpected(proto, "response", &body);
    let mut msg = Ber(&body);
    let (tag, id) = msg.tlv().ok_or_else(garbage)?;
    if tag != 0x02 {
        return Err(garbage());
    }
    let (op, content) = msg.tlv().ok_or_else(garbage)?;
    if op != 0x78 {
        return Err(garbage());
    }
    let mut resp = Ber(content);
    let (t, rc) = resp.tlv().ok_or_else(garbage)?;
    if t != 0x0a || rc.is_empty() || rc.len() > 4 {
        return Err(garbage());
    }
    let code = rc.iter().fold(0u32, |n, &b| (n << 8) | u32::from(b));
    let _matched = resp.tlv();
    let diagnostic = resp
        .tlv()
        .filter(|(t, _)| *t == 0x04)
        .map(|(_, d)| shown(d))
        .unwrap_or_default();
    let reply = if diagnostic.is_empty() {
        format!("{} ({code})", ldap_result_name(code))
    } else {
        format!("{} ({code}): {diagnostic}", ldap_result_name(code))
    };
    if id == [0] {
        // A Notice of Disconnection (messageID 0).
        return Err(refused(proto, "the connection", reply));
    }
    match code {
        0 => w.finish(),
        2 => Err(StarttlsError::NotOffered {
            proto,
            detail: reply,
        }),
        _ => Err(refused(proto, "StartTLS", reply)),
    }
}

// ---------------------------------------------------------------------------------------------
// XMPP: an XML stream, read with quick-xml over the bytes received so far.

const NS_STREAMS: &str = "http://etherx.jabber.org/streams";
const NS_TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
const NS_STREAM_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-streams";

/// A complete child element of the stream.
#[derive(Debug, Default)]
struct Stanza {
    ns: String,
    local: String,
    /// Its children: (namespace, local name).
    children: Vec<(String, String)>,
    /// `<required/>` inside a `<starttls/>` child.
    tls_required: bool,
    /// Text of a `<text>` child (stream errors).
    text: String,
    /// Byte offset just after the element.
    end: usize,
}

/// What the bytes so far hold: the stream opened, its complete children, whether it closed.
#[derive(Debug, Default)]
struct StreamScan {
    opened: bool,
    stanzas: Vec<Stanza>,
    closed: bool,
}

/// Scan the stream from its first byte. An element cut off at the end is left for more data;
/// text before the stream or malformed XML is an error.
fn scan_stream(bytes: &[u8]) -> Result<StreamScan, String> {
    use quick_xml::events::Event;
    use quick_xml::name::ResolveResult;

    // A character cut in two at the end waits for the rest, like any cut-off element.
    let complete = match std::str::from_utf8(bytes) {
        Err(e) if e.error_len().is_none() => e.valid_up_to(),
        _ => bytes.len(),
    };
    let mut r = quick_xml::NsReader::from_reader(&bytes[..complete]);
    let mut scan = StreamScan::default();
    let mut depth = 0usize;
    let mut cur: Option<Stanza> = None;
    let mut in_starttls = false;
    let mut in_text = false;
    let ns_of = |res: &ResolveResult<'_>| match res {
        ResolveResult::Bound(ns) => ns.0.to_owned(),
        _ => String::new(),
    };
    loop {
        let (res, ev) = match r.read_resolved_event() {
            Ok(x) => x,
            Err(quick_xml::Error::Syntax(_)) => return Ok(scan),
            Err(quick_xml::Error::IllFormed(quick_xml::errors::IllFormedError::MissingEndTag(
                _,
            ))) => return Ok(scan),
            Err(e) => return Err(e.to_string()),
        };
        let ns = ns_of(&res);
        match ev {
            Event::Eof => return Ok(scan),
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {}
            Event::DocType(_) => return Err("a DOCTYPE (not allowed in XMPP)".to_owned()),
            Event::Text(t) => {
                if depth == 0 && t.chars().any(|c| !c.is_whitespace()) {
                    return Err("text before the stream".to_owned());
                }
                if in_text {
                    if let Some(s) = cur.as_mut() {
                        s.text.push_str(&shown(t.as_bytes()));
                    }
                }
            }
            Event::CData(_) | Event::GeneralRef(_) => {}
            Event::Start(e) => {
                let local = e.local_name().as_ref().to_owned();
                depth += 1;
                match depth {
                    1 => {
                        if ns != NS_STREAMS || local != "stream" {
                            return Err(format!(
                                "<{}> instead of a stream",
                                shown(local.as_bytes())
                            ));
                        }
                        scan.opened = true;
                    }
                    2 => {
                        cur = Some(Stanza {
                            ns,
                            local,
                            ..Stanza::default()
                        })
                    }
                    3 => {
                        in_starttls = ns == NS_TLS && local == "starttls";
                        in_text = local == "text";
                        if let Some(s) = cur.as_mut() {
                            s.children.push((ns, local));
                        }
                    }
                    4 if in_starttls && local == "required" => {
                        if let Some(s) = cur.as_mut() {
                            s.tls_required = true;
                        }
                    }
                    _ => {}
                }
            }
            Event::Empty(e) => {
                let local = e.local_name().as_ref().to_owned();
                match depth {
                    0 => {
                        return Err(format!(
                            "<{}/> instead of a stream",
                            shown(local.as_bytes())
                        ))
                    }
                    1 => scan.stanzas.push(Stanza {
                        ns,
                        local,
                        end: r.buffer_position() as usize,
                        ..Stanza::default()
                    }),
                    2 => {
                        if let Some(s) = cur.as_mut() {
                            s.children.push((ns, local));
                        }
                    }
                    3 if in_starttls && local == "required" => {
                        if let Some(s) = cur.as_mut() {
                            s.tls_required = true;
                        }
                    }
                    _ => {}
                }
            }
            Event::End(_) => {
                match depth {
                    0 => return Err("an end tag before the stream".to_owned()),
                    1 => {
                        scan.closed = true;
                        return Ok(scan);
                    }
                    2 => {
                        if let Some(mut s) = cur.take() {
                            s.end = r.buffer_position() as usize;
                            scan.stanzas.push(s);
                        }
                    }
                    3 => {
                        in_starttls = false;
                        in_text = false;
                    }
                    _ => {}
                }
                depth -= 1;
            }
        }
    }
}

/// Read until the stream holds `n` complete children (or closes).
async fn xmpp_stanzas<S: AsyncRead + AsyncWrite + Unpin>(
    w: &mut Wire<'_, S>,
    n: usize,
) -> Result<StreamScan, StarttlsError> {
    loop {
        let scan = scan_stream(w.received()).map_err(|why| StarttlsError::Garbage {
            proto: w.proto,
            what: match guess_other(w.received()) {
                Some(_) => "reply",
                None => "XML",
            },
            got: format!("{why}: {}", shown(w.received())),
        })?;
        if scan.stanzas.len() >= n || scan.closed {
            return Ok(scan);
        }
        if let Err(e) = w.fill().await {
            // A server that answered in another protocol and hung up says so.
            if !scan.opened && !w.received().is_empty() {
                return Err(unexpected(w.proto, "reply", w.received()));
            }
            return Err(e);
        }
        if !scan.opened {
            if let Some(other) = guess_other(w.received()).filter(|o| *o != "XMPP") {
                return Err(StarttlsError::WrongProtocol {
                    proto: w.proto,
                    other,
                    got: shown(w.received()),
                });
            }
        }
    }
}

fn stream_error(proto: Protocol, s: &Stanza) -> StarttlsError {
    let condition = s
        .children
        .iter()
        .find(|(ns, l)| ns == NS_STREAM_ERRORS && l != "text")
        .map(|(_, l)| shown(l.as_bytes()))
        .unwrap_or_else(|| "undefined-condition".to_owned());
    let mut reply = condition.clone();
    if !s.text.is_empty() {
        reply.push_str(&format!(" ({})", s.text));
    }
    if condition == "host-unknown" {
        reply.push_str("; give the XMPP domain: xmpp://host:port?domain=DOMAIN");
    }
    StarttlsError::Refused {
        proto,
        what: "the stream".to_owned(),
        reply,
    }
}

/// XMPP: open a stream to `domain` (`jabber:client`, or `jabber:server` for server-to-server),
/// read its features (`<starttls/>` among them), send `<starttls/>`, expect `<proceed/>`.
pub async fn xmpp<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    domain: &str,
    server: bool,
    stage: &Stage,
) -> Result<(), StarttlsError> {
    let proto = if server {
        Protocol::XmppServer
    } else {
        Protocol::Xmpp
    };
    let mut w = Wire::new(io, proto, stage);
    let ns = if server {
        "jabber:server"
    } else {
        "jabber:client"
    };
    let open = format!(
        "<?xml version='1.0'?><stream:stream xmlns='{ns}' \
         xmlns:stream='http://etherx.jabber.org/streams' to='{}' version='1.0'>",
        quick_xml::escape::escape(domain)
    );
    w.send(open.as_bytes()).await?;
    w.at("waiting for the stream features");
    let scan = xmpp_stanzas(&mut w, 1).await?;
    let Some(first) = scan.stanzas.first() else {
        return Err(StarttlsError::Closed {
            proto,
            stage: "waiting for the stream features (the server closed the stream)",
        });
    };
    if first.ns == NS_STREAMS && first.local == "error" {
        return Err(stream_error(proto, first));
    }
    if first.ns != NS_STREAMS || first.local != "features" {
        return Err(StarttlsError::Garbage {
            proto,
            what: "element instead of the stream features",
            got: shown(first.local.as_bytes()),
        });
    }
    if !first
        .children
        .iter()
        .any(|(ns, l)| ns == NS_TLS && l == "starttls")
    {
        let names: Vec<String> = first
            .children
            .iter()
            .map(|(_, l)| shown(l.as_bytes()))
            .collect();
        return Err(not_offered_list(proto, "features", &names));
    }
    w.pos = first.end;
    w.send(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        .await?;
    w.at("waiting for the reply to STARTTLS");
    let scan = xmpp_stanzas(&mut w, 2).await?;
    let Some(answer) = scan.stanzas.get(1) else {
        return Err(StarttlsError::Closed {
            proto,
            stage: "waiting for the reply to STARTTLS (the server closed the stream)",
        });
    };
    if answer.ns == NS_TLS && answer.local == "proceed" {
        w.pos = answer.end;
        return w.finish();
    }
    if answer.ns == NS_STREAMS && answer.local == "error" {
        return Err(stream_error(proto, answer));
    }
    if answer.ns == NS_TLS && answer.local == "failure" {
        return Err(refused(proto, "STARTTLS", "<failure/>".to_owned()));
    }
    Err(StarttlsError::Garbage {
        proto,
        what: "reply to STARTTLS",
        got: format!("<{}>", shown(answer.local.as_bytes())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{duplex, AsyncBufReadExt, BufReader};

    /// Run `dialogue` against a peer that answers each client line (or write, for binary
    /// protocols) with the next reply, writing it `chunk` bytes at a time.
    async fn against<F, Fut>(
        replies: Vec<Vec<u8>>,
        chunk: usize,
        lines: bool,
        dialogue: F,
    ) -> Result<(), StarttlsError>
    where
        F: FnOnce(tokio::io::DuplexStream) -> Fut,
        Fut: std::future::Future<Output = Result<(), StarttlsError>>,
    {
        let (client, server) = duplex(1 << 20);
        let peer = tokio::spawn(async move {
            let mut server = BufReader::new(server);
            for (i, r) in replies.into_iter().enumerate() {
                // Greetings (the first reply of a line protocol) come unasked.
                if !(lines && i == 0) {
                    let mut got = Vec::new();
                    if lines {
                        let _ = server.read_until(b'\n', &mut got).await;
                    } else {
                        let mut buf = [0u8; 512];
                        let _ = server.read(&mut buf).await;
                    }
                }
                for piece in r.chunks(chunk.max(1)) {
                    if server.get_mut().write_all(piece).await.is_err() {
                        return;
                    }
                    tokio::task::yield_now().await;
                }
            }
            let mut rest = Vec::new();
            let _ = server.read_to_end(&mut rest).await;
        });
        let out = dialogue(client).await;
        peer.abort();
        out
    }

    fn b(s: &str) -> Vec<u8> {
        s.as_bytes().to_vec()
    }

    #[tokio::test]
    async fn xmpp_features_arriving_a_byte_at_a_time_are_read_whole() {
        let stream = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
            xmlns:stream='http://etherx.jabber.org/streams' id='x' from='example.test' \
            version='1.0'><stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'>\
            <required/></starttls></stream:features>";
        let replies = vec![
            b(stream),
            b("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"),
        ];
        let stage = Stage::default();
        let r = against(replies, 1, false, |mut c| async move {
            xmpp(&mut c, "example.test", false, &stage).await
        })
        .await;
        assert_eq!(r, Ok(()));
    }

    #[test]
    fn a_character_cut_at_the_end_of_the_buffer_waits_for_the_rest() {
        let open = "<stream:stream xmlns='jabber:client' \
            xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>\
            <stream:features><x xmlns='urn:x'>é</x></stream:features>";
        let bytes = open.as_bytes();
        let cut = open.find('é').expect("é") + 1;
        let scan = scan_stream(&bytes[..cut]).expect("half a character is not garbage");
        assert!(scan.opened && scan.stanzas.is_empty());
        let scan = scan_stream(bytes).expect("whole");
        assert_eq!(scan.stanzas[0].local, "features");
        assert!(scan_stream(b"220 mail ESMTP\r\n").is_err());
    }

    #[tokio::test]
    async fn xmpp_failure_and_stream_errors_are_rows() {
        let open = "<stream:stream xmlns='jabber:client' \
            xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>";
        let features = "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\
            </stream:features>";
        let stage = Stage::default();
        let r = against(
            vec![
                b(&format!("{open}{features}")),
                b("<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"),
            ],
            7,
            false,
            |mut c| async move { xmpp(&mut c, "example.test", false, &stage).await },
        )
        .await;
        assert_eq!(
            r.map_err(|e| e.to_string()),
            Err("XMPP: the server refused STARTTLS: <failure/>".to_owned())
        );
        let stage = Stage::default();
        let err = "<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
            <text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>go \u{1b}[31maway</text>\
            </stream:error></stream:stream>";
        let r = against(
            vec![b(&format!("{open}{err}"))],
            64,
            false,
            |mut c| async move { xmpp(&mut c, "example.test", false, &stage).await },
        )
        .await;
        assert_eq!(
            r.map_err(|e| e.to_string()),
            Err("XMPP: the server refused the stream: policy-violation (go .[31maway)".to_owned())
        );
    }

    #[tokio::test]
    async fn smtp_multiline_replies_split_anywhere_are_joined() {
        let replies = vec![
            b("220-mx.test ESMTP\r\n220 hello\r\n"),
            b("250-mx.test\r\n250-SIZE 10\r\n250-starttls\r\n250 HELP\r\n"),
            b("220 2.0.0 go ahead\r\n"),
        ];
        let stage = Stage::default();
        let r = against(replies, 3, true, |mut c| async move {
            smtp(&mut c, &stage).await
        })
        .await;
        assert_eq!(r, Ok(()));
    }

    #[tokio::test]
    async fn smtp_reply_lines_with_another_code_are_refused() {
        let replies = vec![b("220 mx.test\r\n"), b("250-mx.test\r\n251 STARTTLS\r\n")];
        let stage = Stage::default();
        let r = against(replies, 64, true, |mut c| async move {
            smtp(&mut c, &stage).await
        })
        .await;
        assert_eq!(
            r.map_err(|e| e.to_string()),
            Err("SMTP: unexpected EHLO reply from the server: \"251 STARTTLS\"".to_owned())
        );
    }

    #[tokio::test]
    async fn ldap_long_form_lengths_are_read() {
        // A success response padded with a 200-byte diagnostic message (long-form lengths).
        let diag = vec![b'x'; 200];
        let mut op = vec![0x0a, 1, 0, 0x04, 0, 0x04, 0x81, 200];
        op.extend_from_slice(&diag);
        let mut msg = vec![0x02, 1, 1, 0x78, 0x81, op.len() as u8];
        msg.extend(op);
        let mut resp = vec![0x30, 0x82, 0, msg.len() as u8];
        resp.extend(msg);
        let stage = Stage::default();
        let r = against(vec![resp], 5, false, |mut c| async move {
            ldap(&mut c, &stage).await
        })
        .await;
        assert_eq!(r, Ok(()));
    }

    #[tokio::test]
    async fn a_postgres_error_response_is_quoted() {
        let mut body = b"SFATAL\0C53300\0Msorry, too many clients already\0\0".to_vec();
        let mut resp = vec![b'E'];
        resp.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        resp.append(&mut body);
        let stage = Stage::default();
        let r = against(vec![resp], 4, false, |mut c| async move {
            postgres(&mut c, &stage).await
        })
        .await;
        assert_eq!(
            r.map_err(|e| e.to_string()),
            Err(
                "PostgreSQL: the server refused the SSLRequest: sorry, too many clients already"
                    .to_owned()
            )
        );
    }

    #[tokio::test]
    async fn the_stage_follows_the_dialogue() {
        let stage = Stage::default();
        let (mut c, _server) = duplex(64);
        let run = smtp(&mut c, &stage);
        let timed = tokio::time::timeout(std::time::Duration::from_millis(50), run).await;
        assert!(timed.is_err());
        assert_eq!(stage.get(), "waiting for the greeting");
    }

    #[test]
    fn server_text_is_made_safe_and_short() {
        assert_eq!(shown(b"ok \x1b[2J\x07\r\n\xff"), "ok .[2J....");
        let long = shown(&[b'a'; 500]);
        assert_eq!(long.chars().count(), SHOWN + 1);
        assert!(long.ends_with('…'));
    }

    #[test]
    fn modes_and_protocols_parse_from_their_names() {
        for p in Protocol::ALL {
            assert_eq!(p.name().parse::<Protocol>(), Ok(p));
            assert_eq!(p.name().parse::<StarttlsMode>(), Ok(StarttlsMode::Force(p)));
            assert_eq!(
                Protocol::for_port(p.default_port()).map(|q| q.title()),
                Some(p.title())
            );
        }
        assert_eq!("postgresql".parse(), Ok(Protocol::Postgres));
        assert_eq!("NONE".parse(), Ok(StarttlsMode::Off));
        assert_eq!("auto".parse(), Ok(StarttlsMode::Auto));
        assert!("smtpx"
            .parse::<StarttlsMode>()
            .is_err_and(|e| e.contains("xmpp-server")));
        assert_eq!(Protocol::for_port(465), None);
        assert_eq!(Protocol::for_port(993), None);
    }
}
