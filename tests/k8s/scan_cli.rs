//! `certdeck scan` with Kubernetes, through the real binary, the fixture and its kubeconfig.
#![allow(clippy::unwrap_used)]

use crate::k8s_common::leaf;
use crate::k8s_fixture::Fixture;
use serde_json::Value;

fn certdeck(fx: &Fixture) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_certdeck"));
    c.env_remove("KUBECONFIG")
        .env("HOME", fx.dir())
        .env("XDG_CONFIG_HOME", fx.dir().join("config"))
        .env("CERTDECK_CONFIG", fx.dir().join("no-config.toml"));
    c
}

fn seed(fx: &Fixture) {
    let soon = leaf(&["soon.team-a.example"], 3, None);
    fx.insert_value(crate::k8s_fixture::tls_secret(
        "team-a", "soon-tls", &soon.cert, &soon.key,
    ));
    let fine = leaf(&["fine.team-b.example"], 200, None);
    fx.insert_value(crate::k8s_fixture::tls_secret(
        "team-b", "fine-tls", &fine.cert, &fine.key,
    ));
}

#[test]
fn scan_kubeconfig_all_namespaces_prints_k8s_records_as_json() {
    let fx = Fixture::start_blocking();
    seed(&fx);
    std::fs::write(fx.dir().join("no-config.toml"), "").unwrap();
    let out = certdeck(&fx)
        .args(["scan", "--kubeconfig"])
        .arg(fx.kubeconfig_path())
        .args(["-A", "-o", "json"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a certificate expires in 3 days: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let recs: Value = serde_json::from_str(&stdout).unwrap();
    let recs = recs.as_array().unwrap();
    let soon = recs
        .iter()
        .find(|r| r["location"] == "fixture/team-a/secret/soon-tls#tls.crt")
        .unwrap();
    assert_eq!(soon["source"], "k8s");
    assert_eq!(soon["status"], "critical");
    assert_eq!(soon["k8s"]["context"], "fixture");
    assert_eq!(soon["k8s"]["namespace"], "team-a");
    assert_eq!(soon["k8s"]["kind"], "Secret");
    assert_eq!(soon["k8s"]["key"], "tls.crt");
    assert!(soon["id"].as_str().unwrap().starts_with("k8s-"));
    assert!(recs
        .iter()
        .any(|r| r["location"] == "fixture/team-b/secret/fine-tls#tls.crt"));
    assert!(!stdout.contains("PRIVATE KEY"), "keys are never printed");
}

#[test]
fn scan_reads_kubernetes_from_the_config_file_section() {
    let fx = Fixture::start_blocking();
    seed(&fx);
    let cfg = fx.dir().join("certdeck.toml");
    std::fs::write(
        &cfg,
        format!(
            "[kubernetes]\nkubeconfig = {:?}\nnamespace = \"team-b\"\ntimeout = \"3s\"\n",
            fx.kubeconfig_path().display().to_string()
        ),
    )
    .unwrap();
    let out = certdeck(&fx)
        .args(["scan", "--config"])
        .arg(&cfg)
        .args(["-o", "table", "--color", "never"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("fixture/team-b/secret/fine-tls#tls.crt"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("team-a"),
        "only the configured namespace: {stdout}"
    );
}

#[test]
fn scan_of_an_unreachable_cluster_exits_unknown_with_an_error_row() {
    let fx = Fixture::start_blocking();
    fx.add_unreachable_context("gone");
    std::fs::write(fx.dir().join("no-config.toml"), "").unwrap();
    let out = certdeck(&fx)
        .args(["scan", "--kubeconfig"])
        .arg(fx.kubeconfig_path())
        .args(["--context", "gone", "--timeout", "2s", "-o", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let recs: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(recs[0]["location"], "gone");
    assert_eq!(recs[0]["status"], "error");
    assert!(recs[0]["error"].as_str().unwrap().contains("unreachable"));
}

#[test]
fn kubeconfig_env_variable_is_honoured_like_kubectl() {
    let fx = Fixture::start_blocking();
    seed(&fx);
    std::fs::write(fx.dir().join("no-config.toml"), "").unwrap();
    let missing = fx.dir().join("missing-kubeconfig");
    let list = std::env::join_paths([missing.as_path(), fx.kubeconfig_path()]).unwrap();
    let out = certdeck(&fx)
        .env("KUBECONFIG", &list)
        .args(["scan", "--k8s", "-n", "team-b", "-o", "json"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let recs: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout} {stderr}"));
    assert!(
        recs.as_array()
            .unwrap()
            .iter()
            .any(|r| r["location"] == "fixture/team-b/secret/fine-tls#tls.crt"),
        "{stdout} {stderr}"
    );
}

#[test]
fn a_mistyped_kubernetes_config_key_names_the_file_line_and_field() {
    let fx = Fixture::start_blocking();
    let cfg = fx.dir().join("bad.toml");
    std::fs::write(
        &cfg,
        "[kubernetes]\nnamespace = \"a\"\nall_namespace = true\n",
    )
    .unwrap();
    let out = certdeck(&fx)
        .args(["scan", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr.contains("bad.toml")
            && stderr.contains("line 3")
            && stderr.contains("all_namespace"),
        "{stderr}"
    );
}
