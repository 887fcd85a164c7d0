//! The Prometheus source against a real Prometheus scraping a real blackbox_exporter that
//! probes the test's nginx fleet, and a static exporter text in the x509-certificate-exporter
//! format: `certdeck scan --prometheus URL` rows match the fleet's certificates.

use super::peers::{self, query_until, Proc};
use crate::nginx::Fleet;

fn http_reply(status: &str, content_type: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn scan_json(out: &str) -> Vec<serde_json::Value> {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("json: {e}: {out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_from_blackbox_and_x509_exporter_series_match_the_fleet() {
    let dir = tempfile::tempdir().expect("dir");
    let fleet = Fleet::start(&dir.path().join("fleet"), 6);
    // blackbox_exporter probing TLS, as its docs configure it.
    let bb_port = peers::free_port();
    let bb_conf = dir.path().join("blackbox.yml");
    std::fs::write(
        &bb_conf,
        "modules:\n  tls_connect:\n    prober: tcp\n    timeout: 5s\n    tcp:\n      tls: true\n      tls_config:\n        insecure_skip_verify: true\n",
    )
    .expect("write");
    let bb = Proc::start(
        dir.path(),
        "blackbox",
        "prometheus-blackbox-exporter",
        &[
            format!("--config.file={}", bb_conf.display()),
            format!("--web.listen-address=127.0.0.1:{bb_port}"),
        ],
        bb_port,
    );
    // An x509-certificate-exporter's text, served over HTTP.
    let now = certdeck::clock::now_unix();
    let k8s_after = now + 40 * 86_400 + 13;
    let k8s_before = now - 20 * 86_400 + 7;
    let labels = r#"issuer_CN="Kube CA",secret_key="tls.crt",secret_name="web-tls",secret_namespace="shop",serial_number="4d2",subject_CN="web.shop.svc""#;
    let text = format!(
        "# HELP x509_cert_not_after\n# TYPE x509_cert_not_after gauge\nx509_cert_not_after{{{labels}}} {k8s_after}\n\
         # HELP x509_cert_not_before\n# TYPE x509_cert_not_before gauge\nx509_cert_not_before{{{labels}}} {k8s_before}\n\
         # HELP x509_read_errors\n# TYPE x509_read_errors gauge\nx509_read_errors 0\n"
    );
    let (x509_port, _x509) =
        crate::common::reply_server(http_reply("200 OK", "text/plain; version=0.0.4", &text)).await;
    let targets: Vec<String> = fleet
        .endpoints
        .iter()
        .map(|e| format!("'127.0.0.1:{}'", e.port))
        .collect();
    let prom = peers::prometheus(
        dir.path(),
        &format!(
            "  - job_name: blackbox\n    metrics_path: /probe\n    params:\n      module: [tls_connect]\n\
             \x20   static_configs:\n      - targets: [{}]\n    relabel_configs:\n\
             \x20     - source_labels: [__address__]\n        target_label: __param_target\n\
             \x20     - source_labels: [__param_target]\n        target_label: instance\n\
             \x20     - target_label: __address__\n        replacement: 127.0.0.1:{bb_port}\n\
             \x20 - job_name: x509\n    static_configs:\n      - targets: ['127.0.0.1:{x509_port}']\n        labels:\n          cluster: prod\n",
            targets.join(", ")
        ),
        &[],
    );
    query_until(
        &prom,
        "probe_ssl_earliest_cert_expiry",
        "every endpoint probed",
        |r| r.len() == fleet.endpoints.len(),
    )
    .await;
    query_until(&prom, "x509_cert_not_before", "the x509 exporter", |r| {
        r.len() == 1
    })
    .await;

    let (code, out, err) =
        crate::common::run_bin(&["scan", "--prometheus", &prom.url(), "-o", "json"]).await;
    let rows = scan_json(&out);
    assert_eq!(rows.len(), fleet.endpoints.len() + 1, "{out}\n{err}");
    assert_eq!(code, 2, "an expired endpoint is CRITICAL: {err}");
    for e in &fleet.endpoints {
        let loc = format!("127.0.0.1:{}", e.port);
        let row = rows
            .iter()
            .find(|r| r["location"] == loc.as_str())
            .unwrap_or_else(|| panic!("{loc} missing: {out}"));
        assert_eq!(row["source"], "prometheus");
        assert_eq!(
            row["not_after"],
            certdeck::clock::rfc3339(e.not_after).as_str(),
            "{loc}: expiry to the second"
        );
        assert_eq!(row["status"], e.status, "{loc}");
        assert_eq!(row["prometheus"]["exporter"], "blackbox_exporter");
        assert_eq!(row["prometheus"]["labels"]["job"], "blackbox");
        // blackbox 0.23's chain info names the leaf.
        assert!(
            row["subject"].as_str().unwrap_or_default().contains(&e.cn),
            "{loc}: {row}"
        );
    }
    let k8s = rows
        .iter()
        .find(|r| r["location"] == "prod/shop/secret/web-tls#tls.crt")
        .unwrap_or_else(|| panic!("the Secret row: {out}"));
    assert_eq!(
        k8s["not_after"],
        certdeck::clock::rfc3339(k8s_after).as_str()
    );
    assert_eq!(
        k8s["not_before"],
        certdeck::clock::rfc3339(k8s_before).as_str()
    );
    assert_eq!(k8s["serial"], "4d2");
    assert_eq!(k8s["issuer"], "CN=Kube CA");
    assert_eq!(k8s["status"], "ok");
    assert_eq!(k8s["prometheus"]["exporter"], "x509-certificate-exporter");

    // Read directly as well: the endpoint is one row, the direct one.
    let first = format!("127.0.0.1:{}", fleet.endpoints[0].port);
    let (_, out, err) = crate::common::run_bin(&[
        "scan",
        "--prometheus",
        &prom.url(),
        "-t",
        &first,
        "--no-revocation",
        "-o",
        "json",
    ])
    .await;
    let rows = scan_json(&out);
    let here: Vec<&serde_json::Value> = rows
        .iter()
        .filter(|r| r["location"] == first.as_str())
        .collect();
    assert_eq!(here.len(), 1, "{out}\n{err}");
    assert_eq!(here[0]["source"], "tls");
    assert_eq!(rows.len(), fleet.endpoints.len() + 1);
    drop(prom);
    drop(bb);
}

#[tokio::test]
async fn an_unreachable_prometheus_an_error_and_an_empty_answer_are_health_messages() {
    let closed = crate::common::closed_port();
    let (code, _, err) = crate::common::run_bin(&[
        "scan",
        "--prometheus",
        &format!("http://127.0.0.1:{closed}"),
    ])
    .await;
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains(&format!("prometheus 127.0.0.1:{closed}: ")) && err.contains("unreachable"),
        "{err}"
    );

    let (port, _h) = crate::common::reply_server(http_reply(
        "400 Bad Request",
        "application/json",
        r#"{"status":"error","errorType":"bad_data","error":"parse error at char 3"}"#,
    ))
    .await;
    let (code, _, err) =
        crate::common::run_bin(&["scan", "--prometheus", &format!("http://127.0.0.1:{port}")])
            .await;
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("query failed: bad_data: parse error at char 3"),
        "{err}"
    );

    let (port, _h) = crate::common::reply_server(http_reply(
        "200 OK",
        "application/json",
        r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#,
    ))
    .await;
    let (code, out, err) =
        crate::common::run_bin(&["scan", "--prometheus", &format!("http://127.0.0.1:{port}")])
            .await;
    assert_eq!(code, 3, "{out}{err}");
    assert!(
        err.contains(&format!("no certificate series in 127.0.0.1:{port}")),
        "{err}"
    );

    let (port, _h) = crate::common::reply_server(http_reply(
        "401 Unauthorized",
        "text/plain",
        "unauthorized\n",
    ))
    .await;
    let tok = tempfile::NamedTempFile::new().expect("tmp");
    std::fs::write(tok.path(), "s3cret-token\n").expect("write");
    let (code, _, err) = crate::common::run_bin(&[
        "scan",
        "--prometheus",
        &format!("http://127.0.0.1:{port}"),
        "--prometheus-token-file",
        &tok.path().display().to_string(),
    ])
    .await;
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("401 Unauthorized"), "{err}");
    assert!(!err.contains("s3cret"), "no secret in messages: {err}");
}

/// A Prometheus HTTP API stand-in that answers by path (and, for instant queries, by whether
/// the query asks for chain info): `(values, chain_info_query, series)`, each a full reply.
async fn api_server(
    values: Vec<u8>,
    chain_query: Vec<u8>,
    series: Vec<u8>,
) -> (u16, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = l.local_addr().expect("addr").port();
    let h = tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let (values, chain_query, series) =
                (values.clone(), chain_query.clone(), series.clone());
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&req)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_owned();
                let target = line.split(' ').nth(1).unwrap_or("");
                let reply = if target.starts_with("/api/v1/series?") {
                    series
                } else if target.starts_with("/api/v1/query?")
                    && target.contains("query=probe_ssl_last_chain_info")
                {
                    chain_query
                } else {
                    values
                };
                let _ = s.write_all(&reply).await;
                let _ = s.shutdown().await;
            });
        }
    });
    (port, h)
}

#[tokio::test]
async fn chain_details_come_from_the_series_api_and_without_it_from_a_query_with_a_health_message()
{
    let json = |body: &str| http_reply("200 OK", "application/json", body);
    let values = json(
        r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"probe_ssl_earliest_cert_expiry","instance":"edge.test:443","job":"blackbox"},"value":[1800000000,"1900000000"]}]}}"#,
    );
    let info = |subject: &str| {
        format!(
            r#"{{"__name__":"probe_ssl_last_chain_info","instance":"edge.test:443","job":"blackbox","subject":"{subject}","issuer":"CN=Edge CA","fingerprint_sha256":"{}"}}"#,
            "cd".repeat(32)
        )
    };
    let chain_query = json(&format!(
        r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{},"value":[1800000000,"1"]}}]}}}}"#,
        info("CN=edge.test,O=From Query")
    ));
    let subject_of = |out: &str| -> String {
        let rows = scan_json(out);
        assert_eq!(rows.len(), 1, "{out}");
        assert_eq!(rows[0]["location"], "edge.test:443");
        rows[0]["subject"].as_str().unwrap_or_default().to_owned()
    };

    // The series API answers: its label set is joined, no query for chain info, no problem.
    let series = json(&format!(
        r#"{{"status":"success","data":[{}]}}"#,
        info("CN=edge.test,O=From Series")
    ));
    let (port, _h) = api_server(values.clone(), json("{}"), series).await;
    let url = format!("http://127.0.0.1:{port}");
    let (code, out, err) =
        crate::common::run_bin(&["scan", "--prometheus", &url, "-o", "json"]).await;
    assert_eq!(subject_of(&out), "CN=edge.test,O=From Series", "{err}");
    assert_eq!(code, 0, "healthy: {err}");

    // The chain changed within the window (two label sets for one probe): the instant query
    // says which one is current.
    let series = json(&format!(
        r#"{{"status":"success","data":[{},{}]}}"#,
        info("CN=edge.test,O=Old"),
        info("CN=edge.test,O=From Query")
    ));
    let (port, _h) = api_server(values.clone(), chain_query.clone(), series).await;
    let url = format!("http://127.0.0.1:{port}");
    let (code, out, err) =
        crate::common::run_bin(&["scan", "--prometheus", &url, "-o", "json"]).await;
    assert_eq!(subject_of(&out), "CN=edge.test,O=From Query", "{err}");
    assert_eq!(code, 0, "{err}");

    // No /api/v1/series (404): the rows are whole, read with a query, and the health says so.
    let (port, _h) = api_server(
        values.clone(),
        chain_query.clone(),
        http_reply("404 Not Found", "text/plain", "404 page not found\n"),
    )
    .await;
    let url = format!("http://127.0.0.1:{port}");
    let (code, out, err) =
        crate::common::run_bin(&["scan", "--prometheus", &url, "-o", "json"]).await;
    assert_eq!(subject_of(&out), "CN=edge.test,O=From Query", "{err}");
    assert!(
        err.contains(&format!(
            "127.0.0.1:{port} has no /api/v1/series (HTTP 404 Not Found): chain details read with /api/v1/query instead"
        )),
        "{err}"
    );
    assert_eq!(code, 3, "a source with a problem: {err}");

    // The series API fails otherwise: rows without chain details, and the reason.
    let (port, _h) = api_server(
        values,
        chain_query,
        http_reply(
            "422 Unprocessable Entity",
            "application/json",
            r#"{"status":"error","errorType":"execution","error":"too many series"}"#,
        ),
    )
    .await;
    let url = format!("http://127.0.0.1:{port}");
    let (_, out, err) = crate::common::run_bin(&["scan", "--prometheus", &url, "-o", "json"]).await;
    assert_eq!(subject_of(&out), "unknown subject", "{err}");
    assert!(
        err.contains("blackbox chain details (subject, issuer, SHA-256) not read: /api/v1/series failed: execution: too many series"),
        "{err}"
    );
}
