//! Hostile webhook deliveries to `ocicert serve`: forged secrets and HMACs, bodies over the
//! 1 MiB limit (declared, streamed, or lied about), registries outside the allowlist, and a
//! flood of duplicate deliveries. Forged and refused deliveries queue nothing and make the
//! service contact no one; a thousand copies of one push scan the image once.
//! (`serve::pushes_are_scanned_and_served` covers the happy path and one of each refusal.)

use crate::common::*;
use crate::support::{Registry, Service, Setup, free_port, http};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

pub(crate) const SECRET: &str = "test-webhook-secret";
const GITHUB_SECRET: &str = "gh-secret";
const HUB_SECRET: &str = "hub-secret";
const MAX_BODY: usize = 1024 * 1024;

/// A service configuration with all three hooks and one allowed registry (`team/*`).
fn config(
    dir: &Path,
    workers: usize,
    allowed: &str,
    hub_registry: Option<&str>,
) -> std::path::PathBuf {
    let mut text = format!(
        "workers = {workers}\nlease_seconds = 5\nretry_backoff_seconds = 1\nshutdown_grace_seconds = 1\n\
         [hooks.distribution]\nsecret_env = \"OCICERT_HOOK_SECRET\"\n\
         [hooks.github]\nsecret = \"{GITHUB_SECRET}\"\n\
         [hooks.dockerhub]\nsecret = \"{HUB_SECRET}\"\n"
    );
    if let Some(registry) = hub_registry {
        text.push_str(&format!("registry = \"{registry}\"\n"));
    }
    text.push_str(&format!(
        "[[registry]]\nhost = \"{allowed}\"\nrepositories = [\"team/*\"]\ninsecure = true\n"
    ));
    let path = dir.join("serve.toml");
    fs_err::write(&path, text).unwrap();
    path
}

/// A distribution notification envelope: one manifest push per (host, repository, digest).
pub(crate) fn envelope(pushes: &[(&str, &str, &str)]) -> Vec<u8> {
    let events: Vec<Value> = pushes
        .iter()
        .map(|(host, repository, digest)| {
            json!({
                "action": "push",
                "target": {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": digest,
                    "repository": repository,
                    "url": format!("http://{host}/v2/{repository}/manifests/{digest}"),
                    "tag": "v1",
                },
                "request": {"host": host, "method": "PUT"},
            })
        })
        .collect();
    serde_json::to_vec(&json!({ "events": events })).unwrap()
}

/// A GitHub `package` event for a container in `registry_url`, with a digest or only a tag.
fn github_event(registry_url: &str, namespace: &str, digest: Option<&str>) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "action": "published",
        "package": {
            "name": "app",
            "namespace": namespace,
            "package_type": "CONTAINER",
            "registry": {"url": registry_url},
            "package_version": {"container_metadata": {"tag": {"name": "v1", "digest": digest.unwrap_or("")}}},
        },
    }))
    .unwrap()
}

fn fake_digest(seed: u8) -> String {
    format!("sha256:{}", hex::encode([seed; 32]))
}

fn signature(secret: &str, body: &[u8]) -> String {
    format!(
        "X-Hub-Signature-256: {}",
        ocicert::serve::hooks::sign(secret.as_bytes(), body)
    )
}

fn get_json(url: &str) -> Value {
    let (status, body) = http("GET", url, &[], None);
    assert_eq!(status, 200, "{url}: {body}");
    serde_json::from_str(&body).unwrap()
}

fn metric(service: &Service, line_start: &str) -> u64 {
    let metrics = http("GET", &service.url("/metrics"), &[], None).1;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(line_start))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// A listening socket nobody should connect to.
struct Trap(TcpListener);

impl Trap {
    fn new() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        Self(listener)
    }
    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.0.local_addr().unwrap().port())
    }
    /// Connections made to it so far (completed handshakes wait in the backlog).
    fn connections(&self) -> usize {
        std::iter::from_fn(|| self.0.accept().ok()).count()
    }
}

/// One keep-alive HTTP/1.1 connection, for many requests without a process each.
struct Connection {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Connection {
    fn open(port: u16) -> Self {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        Self {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        }
    }

    /// Sends the request head as given (it must end with the blank line) and `body`.
    fn raw(&mut self, head: &str, body: &[u8]) -> (u16, String) {
        self.writer.write_all(head.as_bytes()).unwrap();
        // The server may answer (413) and close before reading a body it refuses.
        let _ = self.writer.write_all(body);
        self.response()
    }

    fn post(&mut self, path: &str, headers: &[&str], body: &[u8]) -> (u16, String) {
        let mut head = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
        for header in headers {
            head.push_str(header);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        self.raw(&head, body)
    }

    fn response(&mut self) -> (u16, String) {
        let mut status = String::new();
        self.reader.read_line(&mut status).unwrap();
        let code = status
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no status line: {status:?}"));
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).unwrap();
        (code, String::from_utf8_lossy(&body).into_owned())
    }
}

pub(crate) fn jobs(service: &Service) -> Vec<Value> {
    get_json(&service.url("/api/jobs"))
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn forged_and_oversized_deliveries_queue_nothing() {
    let trap = Trap::new();
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), 0, &trap.host(), Some(&trap.host()));
    let service = Service::start(&config, &dir.path().join("data"), free_port(), &[], &[]);
    let distribution = service.url("/hooks/distribution");
    let github = service.url("/hooks/github");
    let body = envelope(&[(&trap.host(), "team/app", &fake_digest(1))]);

    // Wrong, truncated, extended, mis-schemed and missing secrets.
    let wrong_bearers = [
        None,
        Some("Authorization: Bearer nope".to_string()),
        Some(format!(
            "Authorization: Bearer {}",
            &SECRET[..SECRET.len() - 1]
        )),
        Some(format!("Authorization: Bearer {SECRET}x")),
        Some(format!("Authorization: Basic {SECRET}")),
        Some(format!("Authorization: {SECRET}")),
    ];
    for header in &wrong_bearers {
        let headers: Vec<&str> = header.iter().map(String::as_str).collect();
        let (status, answer) = http("POST", &distribution, &headers, Some(&body));
        assert_eq!(status, 401, "{header:?}: {answer}");
    }
    // HMACs: none, another key, another body, truncated, another algorithm's name.
    let event = github_event(
        &format!("http://{}/team", trap.host()),
        "team",
        Some(&fake_digest(2)),
    );
    let good = ocicert::serve::hooks::sign(GITHUB_SECRET.as_bytes(), &event);
    let wrong_signatures = [
        None,
        Some(signature("not-the-secret", &event)),
        Some(signature(GITHUB_SECRET, b"{}")),
        Some(format!("X-Hub-Signature-256: {}", &good[..good.len() - 2])),
        Some(format!(
            "X-Hub-Signature-256: {}",
            good.replace("sha256=", "sha1=")
        )),
        Some(format!("X-Hub-Signature: {good}")),
    ];
    for header in &wrong_signatures {
        let mut headers = vec!["X-GitHub-Event: package"];
        headers.extend(header.iter().map(String::as_str));
        let (status, answer) = http("POST", &github, &headers, Some(&event));
        assert_eq!(status, 401, "{header:?}: {answer}");
    }
    let hub = br#"{"push_data":{"tag":"v1"},"repository":{"repo_name":"team/app"}}"#;
    for secret in ["wrong", "hub-secre", "hub-secretx", "HUB-SECRET"] {
        let (status, _) = http(
            "POST",
            &service.url(&format!("/hooks/dockerhub/{secret}")),
            &[],
            Some(hub),
        );
        assert_eq!(status, 401, "{secret}");
    }

    // Over the limit, with valid credentials: a real envelope padded with whitespace.
    let padded = |size: usize| {
        let mut bytes = envelope(&[(&trap.host(), "team/app", &fake_digest(3))]);
        bytes.resize(size, b' ');
        bytes
    };
    let over = padded(MAX_BODY + 1);
    let auth = format!("Authorization: Bearer {SECRET}");
    assert_eq!(http("POST", &distribution, &[&auth], Some(&over)).0, 413);
    let signed = signature(GITHUB_SECRET, &over);
    assert_eq!(
        http(
            "POST",
            &github,
            &["X-GitHub-Event: package", &signed],
            Some(&over)
        )
        .0,
        413
    );
    assert_eq!(
        http(
            "POST",
            &service.url(&format!("/hooks/dockerhub/{HUB_SECRET}")),
            &[],
            Some(&over)
        )
        .0,
        413
    );
    // A Content-Length of 10 GiB is refused from the header, without waiting for the body.
    let started = Instant::now();
    let (status, _) = Connection::open(service.port).raw(
        &format!(
            "POST /hooks/distribution HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}\r\nContent-Length: 10737418240\r\n\r\n"
        ),
        &[],
    );
    assert_eq!(status, 413);
    assert!(started.elapsed() < Duration::from_secs(10));
    // A chunked body that never says how long it is: cut off at the limit.
    let chunk = vec![b' '; 256 * 1024];
    let mut chunked = Vec::new();
    for _ in 0..6 {
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(&chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let (status, _) = Connection::open(service.port).raw(
        &format!(
            "POST /hooks/distribution HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}\r\nTransfer-Encoding: chunked\r\n\r\n"
        ),
        &chunked,
    );
    assert_eq!(status, 413);

    assert_eq!(jobs(&service), Vec::<Value>::new(), "nothing was queued");
    for (source, count) in [
        ("distribution", wrong_bearers.len()),
        ("github", wrong_signatures.len()),
        ("dockerhub", 4),
    ] {
        assert_eq!(
            metric(
                &service,
                &format!(
                    "ocicert_webhook_deliveries_total{{source=\"{source}\",outcome=\"unauthorized\"}} "
                )
            ),
            count as u64,
            "{source}"
        );
    }

    // The limit is the limit: exactly 1 MiB with the right secret is accepted and queued.
    let (status, answer) = http("POST", &distribution, &[&auth], Some(&padded(MAX_BODY)));
    assert_eq!(status, 202, "{answer}");
    let queued = jobs(&service);
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(queued[0]["digest"], fake_digest(3).as_str());
    assert_eq!(trap.connections(), 0, "webhook-only: nothing is scanned");
}

#[test]
fn deliveries_naming_registries_outside_the_allowlist_contact_no_one() {
    let (allowed, outside) = (Trap::new(), Trap::new());
    let dir = tempfile::tempdir().unwrap();
    // Workers run, so anything queued would be scanned (and would connect to a trap).
    let config = config(dir.path(), 2, &allowed.host(), Some(&allowed.host()));
    let service = Service::start(&config, &dir.path().join("data"), free_port(), &[], &[]);
    let auth = format!("Authorization: Bearer {SECRET}");
    let (a, o) = (allowed.host(), outside.host());

    let mut no_host =
        serde_json::from_slice::<Value>(&envelope(&[(&o, "team/app", &fake_digest(4))])).unwrap();
    no_host["events"][0]["request"]
        .as_object_mut()
        .unwrap()
        .remove("host");
    let distribution = [
        envelope(&[(&o, "team/app", &fake_digest(1))]),
        envelope(&[(&a, "other/app", &fake_digest(2))]),
        // No request.host: the host comes from target.url.
        serde_json::to_vec(&no_host).unwrap(),
    ];
    // Answered 200 and ignored: distribution retries any other answer for ever, holding every
    // later event of that registry behind it.
    for body in &distribution {
        let (status, answer) = http(
            "POST",
            &service.url("/hooks/distribution"),
            &[&auth],
            Some(body),
        );
        assert_eq!(status, 200, "{answer}");
        assert!(answer.contains("allowlist"), "{answer}");
    }
    // GitHub names its registry: a tag-only event would need a HEAD to resolve it.
    for event in [
        github_event(&format!("http://{o}/team"), "team", None),
        github_event(&format!("http://{o}/team"), "team", Some(&fake_digest(5))),
        github_event(&format!("http://{a}/other"), "other", None),
    ] {
        let signed = signature(GITHUB_SECRET, &event);
        let (status, answer) = http(
            "POST",
            &service.url("/hooks/github"),
            &["X-GitHub-Event: package", &signed],
            Some(&event),
        );
        assert_eq!(status, 200, "{answer}");
    }
    // Docker Hub (pointed at the allowed host) for a repository outside it, with a callback
    // URL aimed at the outside host.
    let hub = json!({
        "callback_url": format!("http://{o}/callback"),
        "push_data": {"tag": "v1"},
        "repository": {"repo_name": "other/app"},
    });
    let (status, answer) = http(
        "POST",
        &service.url(&format!("/hooks/dockerhub/{HUB_SECRET}")),
        &[],
        Some(hub.to_string().as_bytes()),
    );
    assert_eq!(status, 200, "{answer}");

    // Give the workers time to pick up anything that had been queued.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(jobs(&service), Vec::<Value>::new());
    assert_eq!(
        outside.connections(),
        0,
        "a request left for the outside host"
    );
    assert_eq!(allowed.connections(), 0, "nothing was queued to scan");
    for (source, count) in [("distribution", 3), ("github", 3), ("dockerhub", 1)] {
        assert_eq!(
            metric(
                &service,
                &format!(
                    "ocicert_webhook_deliveries_total{{source=\"{source}\",outcome=\"outside_allowlist\"}} "
                )
            ),
            count,
            "{source}"
        );
    }
    // A delivery naming an allowed image and an outside one queues the allowed one only.
    let mixed = envelope(&[
        (&a, "team/app", &fake_digest(3)),
        (&o, "team/app", &fake_digest(3)),
    ]);
    let (status, answer) = http(
        "POST",
        &service.url("/hooks/distribution"),
        &[&auth],
        Some(&mixed),
    );
    assert_eq!(status, 202, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["queued"], json!([fake_digest(3)]));
    assert_eq!(answer["ignored"], json!([format!("{o}/team/app")]));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        outside.connections(),
        0,
        "the outside host is never contacted"
    );
}

#[test]
fn a_thousand_duplicate_deliveries_scan_once() {
    const DELIVERIES: usize = 1000;
    const CONNECTIONS: usize = 8;
    let registry = Registry::start(Setup::Plain);
    let dir = tempfile::tempdir().unwrap();
    let mut layout = Layout::new(&dir.path().join("image"));
    let manifest = layout.image(
        &[gz_layer(&[Entry::File(
            "etc/app.key",
            fixture("keys/ec-sec1.pem"),
        )])],
        json!({}),
        ("linux", "amd64"),
    );
    layout.tag(manifest, "v1").write();
    registry.push(
        &format!("oci:{}:v1", dir.path().join("image").display()),
        "team/app:v1",
    );
    let digest = registry.skopeo_inspect("team/app:v1")["Digest"]
        .as_str()
        .unwrap()
        .to_string();
    let config = config(dir.path(), 2, &registry.host(), None);
    // The scan takes a while, so deliveries keep arriving while it runs.
    let service = Service::start(
        &config,
        &dir.path().join("data"),
        free_port(),
        &[],
        &[("OCICERT_TEST_SCAN_DELAY_MS", "1500")],
    );
    let body = envelope(&[(&registry.host(), "team/app", &digest)]);
    let auth = format!("Authorization: Bearer {SECRET}");
    let answers: Vec<(u16, String)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..CONNECTIONS)
            .map(|_| {
                scope.spawn(|| {
                    let mut connection = Connection::open(service.port);
                    (0..DELIVERIES / CONNECTIONS)
                        .map(|_| connection.post("/hooks/distribution", &[&auth], &body))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    assert_eq!(answers.len(), DELIVERIES);
    let (mut queued, mut duplicates) = (0, 0);
    for (status, answer) in &answers {
        assert_eq!(*status, 202, "{answer}");
        let answer: Value = serde_json::from_str(answer).unwrap();
        queued += answer["queued"].as_array().unwrap().len();
        duplicates += answer["duplicates"].as_u64().unwrap();
    }
    assert_eq!((queued, duplicates), (1, DELIVERIES as u64 - 1));

    let report_url = service.url(&format!("/api/images/{digest}"));
    let started = Instant::now();
    while http("GET", &report_url, &[], None).0 != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "no report: {}",
            service.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(1));
    let all = jobs(&service);
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(
        (
            all[0]["kind"].as_str(),
            all[0]["state"].as_str(),
            all[0]["attempts"].as_u64()
        ),
        (Some("scan"), Some("done"), Some(1)),
        "{all:?}"
    );
    assert_eq!(metric(&service, "ocicert_scan_duration_seconds_count "), 1);
    assert_eq!(
        metric(
            &service,
            "ocicert_webhook_deliveries_total{source=\"distribution\",outcome=\"duplicate\"} "
        ),
        DELIVERIES as u64 - 1
    );
}

#[test]
fn a_body_that_never_arrives_gets_408_and_a_stranger_body_is_never_read() {
    let trap = Trap::new();
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), 0, &trap.host(), None);
    let service = Service::start(&config, &dir.path().join("data"), free_port(), &[], &[]);
    let auth = format!("Authorization: Bearer {SECRET}");
    let head = |auth: &str| {
        format!(
            "POST /hooks/distribution HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}\r\nContent-Length: 500\r\n\r\n"
        )
    };

    // The right secret, 500 bytes announced, 10 sent, then silence: 408 after the body timeout.
    let started = Instant::now();
    let (status, answer) = Connection::open(service.port).raw(&head(&auth), b"{\"events\":");
    let waited = started.elapsed();
    assert_eq!(status, 408, "{answer}");
    assert!(answer.contains("did not arrive"), "{answer}");
    assert!(
        waited >= Duration::from_secs(9) && waited < Duration::from_secs(20),
        "{waited:?}"
    );

    // A wrong secret is refused at once: the body it announces is never waited for.
    let started = Instant::now();
    let (status, _) = Connection::open(service.port).raw(&head("Authorization: Bearer wrong"), b"");
    assert_eq!(status, 401);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(jobs(&service), Vec::<Value>::new(), "nothing was queued");
}
