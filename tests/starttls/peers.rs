//! Real STARTTLS servers from Debian, each started on 127.0.0.1 from a temporary config in
//! its own process group and stopped by that group's id when the guard drops.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::pki::TestLeaf;

/// A running server: its process group is ended on drop.
pub struct Peer {
    pub name: &'static str,
    pub port: u16,
    /// Second port where the server has one (implicit TLS, server-to-server).
    pub port2: u16,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    /// PID of a daemon that detached itself (PostgreSQL), ended too.
    daemon_pid: Option<u32>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let mut ids = Vec::new();
        if let Some(c) = &self.child {
            ids.push(format!("-{}", c.id()));
        }
        if let Some(pid) = self.daemon_pid {
            ids.push(pid.to_string());
        }
        for id in &ids {
            let _ = Command::new("kill")
                .args(["-TERM", "--", id])
                .stderr(Stdio::null())
                .status();
        }
        if let Some(mut c) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if matches!(c.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", c.id())])
                .stderr(Stdio::null())
                .status();
            let _ = c.wait();
        }
    }
}

impl Peer {
    /// The server's log files, for a failed assertion's message.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for entry in walk(self.dir.path()) {
            if entry.extension().is_some_and(|e| e == "log") {
                if let Ok(t) = std::fs::read_to_string(&entry) {
                    let tail: Vec<&str> = t.lines().rev().take(30).collect();
                    out.push_str(&format!("== {}\n", entry.display()));
                    for l in tail.into_iter().rev() {
                        out.push_str(l);
                        out.push('\n');
                    }
                }
            }
        }
        out
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn uid_gid(user: &str) -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id").args([flag, user]).output().expect("id");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("no user {user}: run tests/run.sh to install the peers"))
    };
    (id("-u"), id("-g"))
}

fn chown(path: &Path, user: &str) {
    let (u, g) = uid_gid(user);
    std::os::unix::fs::chown(path, Some(u), Some(g)).expect("chown");
}

fn tempdir() -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    // Daemons that drop privileges must reach their files inside.
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    d
}

/// Write the leaf's certificate and key into `dir` (key 0600, owned by `owner`).
fn write_pair(dir: &Path, leaf: &TestLeaf, owner: Option<&str>) -> (PathBuf, PathBuf) {
    let cert = dir.join("server.crt");
    let key = dir.join("server.key");
    std::fs::write(&cert, &leaf.cert_pem).expect("write cert");
    std::fs::write(&key, &leaf.key_pem).expect("write key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod key");
    if let Some(o) = owner {
        chown(&cert, o);
        chown(&key, o);
    }
    (cert, key)
}

fn spawn(mut cmd: Command, dir: &Path) -> Child {
    let out = std::fs::File::create(dir.join("stdout.log")).expect("log");
    let err = out.try_clone().expect("log");
    cmd.stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0);
    cmd.spawn()
        .unwrap_or_else(|e| panic!("start {cmd:?}: {e} (tests/run.sh installs the peers)"))
}

/// Wait until every port accepts a connection (the server is up), or panic with its logs.
fn wait_ready(peer: &mut Peer, ports: &[u16]) {
    let deadline = Instant::now() + Duration::from_secs(40);
    for &port in ports {
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            if let Some(c) = peer.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    panic!(
                        "{} exited ({status}) before listening:\n{}",
                        peer.name,
                        peer.logs()
                    );
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "{} is not listening on {port} after 40 s:\n{}",
                    peer.name,
                    peer.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn peer(name: &'static str, dir: tempfile::TempDir, port: u16, port2: u16) -> Peer {
    Peer {
        name,
        port,
        port2,
        dir,
        child: None,
        daemon_pid: None,
    }
}

/// exim4 as a foreground daemon: STARTTLS on `port` (unless `tls` is false), and implicit TLS
/// (`tls_on_connect_ports`) on `port2`.
pub fn exim(leaf: &TestLeaf, tls: bool) -> Peer {
    let dir = tempdir();
    let d = dir.path().to_owned();
    let (cert, key) = write_pair(&d, leaf, Some("Debian-exim"));
    for sub in ["spool", "log"] {
        std::fs::create_dir_all(d.join(sub)).expect("mkdir");
        chown(&d.join(sub), "Debian-exim");
    }
    let (port, port2) = (free_port(), free_port());
    let tls_lines = if tls {
        format!(
            "tls_advertise_hosts = *\ntls_certificate = {}\ntls_privatekey = {}\n\
             tls_on_connect_ports = {port2}\ndaemon_smtp_ports = {port} : {port2}\n",
            cert.display(),
            key.display()
        )
    } else {
        format!("tls_advertise_hosts =\ndaemon_smtp_ports = {port}\n")
    };
    let conf = format!(
        "primary_hostname = mail.example.test\nexim_path = /usr/sbin/exim4\n\
         keep_environment =\nspool_directory = {d}/spool\nlog_file_path = {d}/log/%s.log\n\
         pid_file_path = {d}/exim.pid\nlocal_interfaces = 127.0.0.1\n\
         smtp_accept_max = 0\nsmtp_connect_backlog = 512\n{tls_lines}\
         begin acl\nbegin routers\nbegin transports\n",
        d = d.display()
    );
    let conf_path = d.join("exim.conf");
    std::fs::write(&conf_path, conf).expect("write exim.conf");
    let mut cmd = Command::new("exim4");
    cmd.arg("-C").arg(&conf_path).arg("-bdf");
    let mut p = peer("exim4", dir, port, if tls { port2 } else { 0 });
    p.child = Some(spawn(cmd, &d));
    wait_ready(&mut p, &[port]);
    p
}

/// dovecot: IMAP STARTTLS on `port`, POP3 STLS on `port2`, IMAPS (implicit) on the third port
/// returned.
pub fn dovecot(leaf: &TestLeaf) -> (Peer, u16) {
    let dir = tempdir();
    let d = dir.path().to_owned();
    let (cert, key) = write_pair(&d, leaf, None);
    for sub in ["base", "state", "home"] {
        std::fs::create_dir_all(d.join(sub)).expect("mkdir");
    }
    let (imap, pop3, imaps) = (free_port(), free_port(), free_port());
    let conf = format!(
        "protocols = imap pop3\nlisten = 127.0.0.1\nbase_dir = {d}/base\nstate_dir = {d}/state\n\
         log_path = {d}/dovecot.log\nssl = yes\nssl_cert = <{cert}\nssl_key = <{key}\n\
         default_internal_user = dovecot\ndefault_internal_group = dovecot\n\
         default_login_user = dovenull\nmail_location = mbox:{d}/home/mail\n\
         passdb {{\n  driver = static\n  args = password=unused\n}}\n\
         userdb {{\n  driver = static\n  args = uid=dovecot gid=dovecot home={d}/home\n}}\n\
         service imap-login {{\n  inet_listener imap {{\n    port = {imap}\n  }}\n\
           inet_listener imaps {{\n    port = {imaps}\n  }}\n}}\n\
         service pop3-login {{\n  inet_listener pop3 {{\n    port = {pop3}\n  }}\n\
           inet_listener pop3s {{\n    port = 0\n  }}\n}}\n",
        d = d.display(),
        cert = cert.display(),
        key = key.display()
    );
    let conf_path = d.join("dovecot.conf");
    std::fs::write(&conf_path, conf).expect("write dovecot.conf");
    let mut cmd = Command::new("dovecot");
    cmd.arg("-F").arg("-c").arg(&conf_path);
    let mut p = peer("dovecot", dir, imap, pop3);
    p.child = Some(spawn(cmd, &d));
    wait_ready(&mut p, &[imap, pop3, imaps]);
    (p, imaps)
}

/// vsftpd in the foreground: AUTH TLS on `port`.
pub fn vsftpd(leaf: &TestLeaf) -> Peer {
    let dir = tempdir();
    let d = dir.path().to_owned();
    let (cert, key) = write_pair(&d, leaf, None);
    std::fs::create_dir_all("/var/run/vsftpd/empty").expect("secure_chroot_dir");
    let port = free_port();
    let conf = format!(
        "listen=YES\nlisten_ipv6=NO\nlisten_address=127.0.0.1\nlisten_port={port}\n\
         background=NO\nssl_enable=YES\nrsa_cert_file={}\nrsa_private_key_file={}\n\
         secure_chroot_dir=/var/run/vsftpd/empty\nanonymous_enable=NO\nlocal_enable=YES\n\
         vsftpd_log_file={}/vsftpd.log\n",
        cert.display(),
        key.display(),
        d.display()
    );
    let conf_path = d.join("vsftpd.conf");
    std::fs::write(&conf_path, conf).expect("write vsftpd.conf");
    let mut cmd = Command::new("vsftpd");
    cmd.arg(&conf_path);
    let mut p = peer("vsftpd", dir, port, 0);
    p.child = Some(spawn(cmd, &d));
    wait_ready(&mut p, &[port]);
    p
}

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// PostgreSQL 15 (`ssl = on` unless `ssl` is false), started with pg_ctl as the postgres user.
pub fn postgres(leaf: &TestLeaf, ssl: bool) -> Peer {
    let dir = tempdir();
    let d = dir.path().to_owned();
    let (cert, key) = write_pair(&d, leaf, Some("postgres"));
    let data = d.join("data");
    let sock = d.join("sock");
    for sub in [&data, &sock] {
        std::fs::create_dir_all(sub).expect("mkdir");
        chown(sub, "postgres");
    }
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(format!("{PG_BIN}/initdb"))
        .arg("-D")
        .arg(&data)
        .args(["-A", "trust", "-U", "postgres"])
        .output()
        .expect("initdb");
    assert!(
        out.status.success(),
        "initdb failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port = free_port();
    let ssl_opts = if ssl {
        format!(
            "-c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
            cert.display(),
            key.display()
        )
    } else {
        "-c ssl=off".to_owned()
    };
    let opts = format!(
        "-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={} {ssl_opts} \
         -c fsync=off -c max_connections=300",
        sock.display()
    );
    let log = d.join("postgres.log");
    std::fs::write(&log, "").expect("log");
    chown(&log, "postgres");
    let st = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(format!("{PG_BIN}/pg_ctl"))
        .arg("-D")
        .arg(&data)
        .arg("-w")
        .arg("-l")
        .arg(&log)
        .arg("-o")
        .arg(opts)
        .arg("start")
        .stdout(Stdio::null())
        .status()
        .expect("pg_ctl");
    let mut p = peer("postgres", dir, port, 0);
    let pid = std::fs::read_to_string(data.join("postmaster.pid"))
        .ok()
        .and_then(|t| t.lines().next().and_then(|l| l.trim().parse().ok()));
    p.daemon_pid = pid;
    assert!(st.success(), "pg_ctl start failed:\n{}", p.logs());
    wait_ready(&mut p, &[port]);
    p
}

/// MariaDB with `--ssl-cert`/`--ssl-key`, in the foreground.
pub fn mariadb(leaf: &TestLeaf) -> Peer {
    let dir = tempdir();
    let d = dir.path().to_owned();
    let (cert, key) = write_pair(&d, leaf, None);
    let data = d.join("data");
    let st = Command::new("mariadb-install-db")
        .arg("--user=root")
        .arg(format!("--datadir={}", data.display()))
        .arg("--auth-root-authentication-method=normal")
        .arg("--skip-test-db")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("mariadb-install-db");
    assert!(st.success(), "mariadb-install-db failed");
    let port = free_port();
    let mut cmd = Command::new("mariadbd");
    cmd.arg("--no-defaults")
        .arg("--user=root")
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--socket={}/s.sock", d.display()))
        .arg(format!("--port={port}"))
        .arg("--bind-address=127.0.0.1")
        .arg(format!("--ssl-cert={}", cert.display()))
        .arg(format!("--ssl-key={}", key.display()))
        .arg("--skip-log-bin")
        .arg(format!("--pid-file={}/mariadb.pid", d.display()))
        .arg(format!("--log-error={}/mariadb.log", d.display()));
    let mut p = peer("mariadbd", dir, port, 0);
    p.child = Some(spawn(cmd, &d));
    wait_ready(&mut p, &[port]);
    p
}

/// slapd with an old-style slapd.conf (TLS configured unless `tls` is false).
pub fn slapd(leaf: &TestLeaf, tls: bool) -> Peer {
    let dir = tempdir();
    let d = dir.path().to_owned();
    let (cert, key) = write_pair(&d, leaf, None);
    std::fs::create_dir_all(d.join("db")).expect("mkdir");
    let tls_lines = if tls {
        format!(
            "TLSCertificateFile {}\nTLSCertificateKeyFile {}\n",
            cert.display(),
            key.display()
        )
    } else {
        String::new()
    };
    let conf = format!(
        "include /etc/ldap/schema/core.schema\npidfile {d}/slapd.pid\nargsfile {d}/slapd.args\n\
         modulepath /usr/lib/ldap\nmoduleload back_mdb\n{tls_lines}\
         database mdb\nsuffix \"dc=example,dc=test\"\ndirectory {d}/db\n",
        d = d.display()
    );
    let conf_path = d.join("slapd.conf");
    std::fs::write(&conf_path, conf).expect("write slapd.conf");
    let port = free_port();
    let mut cmd = Command::new("slapd");
    cmd.arg("-f")
        .arg(&conf_path)
        .arg("-h")
        .arg(format!("ldap://127.0.0.1:{port}/"))
        .args(["-d", "0"]);
    let mut p = peer("slapd", dir, port, 0);
    p.child = Some(spawn(cmd, &d));
    wait_ready(&mut p, &[port]);
    p
}

/// prosody for the domain `example.test`: client streams on `port`, server streams on `port2`.
pub fn prosody(leaf: &TestLeaf) -> Peer {
    let dir = tempdir();
    let d = dir.path().to_owned();
    let (cert, key) = write_pair(&d, leaf, None);
    std::fs::create_dir_all(d.join("data")).expect("mkdir");
    let (c2s, s2s) = (free_port(), free_port());
    let conf = format!(
        "run_as_root = true\ndaemonize = false\npidfile = \"{d}/prosody.pid\"\n\
         data_path = \"{d}/data\"\ninterfaces = {{ \"127.0.0.1\" }}\n\
         c2s_ports = {{ {c2s} }}\ns2s_ports = {{ {s2s} }}\nc2s_direct_tls_ports = {{}}\n\
         modules_disabled = {{ \"http\" }}\n\
         modules_enabled = {{ \"tls\"; \"saslauth\"; \"dialback\"; \"disco\" }}\n\
         log = {{ info = \"{d}/prosody.log\" }}\nauthentication = \"internal_plain\"\n\
         VirtualHost \"example.test\"\n  ssl = {{ certificate = \"{cert}\"; key = \"{key}\" }}\n",
        d = d.display(),
        cert = cert.display(),
        key = key.display()
    );
    let conf_path = d.join("prosody.cfg.lua");
    std::fs::write(&conf_path, conf).expect("write prosody config");
    let mut cmd = Command::new("prosody");
    cmd.arg("--config").arg(&conf_path).arg("-F");
    let mut p = peer("prosody", dir, c2s, s2s);
    p.child = Some(spawn(cmd, &d));
    wait_ready(&mut p, &[c2s, s2s]);
    p
}
