//! `ocicert serve` against real software: Debian's `docker-registry` sending notifications,
//! skopeo pushing, the spawned service (SQLite, or PostgreSQL shared by two processes),
//! kill -9 mid-scan, and the web pages in headless Chromium.

use crate::common::*;
use crate::support::{HookSink, Postgres, Registry, Service, Setup, free_port, http};
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

const SECRET: &str = "test-webhook-secret";

/// A one-platform image with a private key and an expired certificate; `marker` makes each
/// image distinct. Returns the `oci:` reference.
fn image(dir: &Path, marker: &str) -> String {
    let mut layout = Layout::new(dir);
    let manifest = layout.image(
        &[
            gz_layer(&[Entry::File("etc/base.key", fixture("keys/ec-sec1.pem"))]),
            gz_layer(&[
                Entry::File("app/server.pem", fixture("certs/expired.pem")),
                Entry::File("app/marker.txt", marker.as_bytes().to_vec()),
            ]),
        ],
        json!({}),
        ("linux", "amd64"),
    );
    layout.tag(manifest, "v1").write();
    format!("oci:{}:v1", dir.display())
}

/// Writes the service configuration into `dir` and returns its path.
fn config(
    dir: &Path,
    registry: &Registry,
    sink: Option<&HookSink>,
    extra: &str,
) -> std::path::PathBuf {
    let mut text = format!(
        "workers = 2\nlease_seconds = 2\nretry_backoff_seconds = 1\nshutdown_grace_seconds = 1\n\
         public_url = \"http://ocicert.test\"\n{extra}\n\
         [hooks.distribution]\nsecret_env = \"OCICERT_HOOK_SECRET\"\n\
         [[registry]]\nhost = \"{}\"\nrepositories = [\"team/*\"]\ninsecure = true\n",
        registry.host()
    );
    if let Some(sink) = sink {
        text.push_str(&format!(
            "[notify]\nurl = \"{}\"\nthreshold = \"high\"\n",
            sink.url()
        ));
    }
    let path = dir.join("serve.toml");
    fs_err::write(&path, text).expect("write config");
    path
}

/// A plain registry that sends its push notifications to a service on `port`.
fn notifying(port: u16) -> Registry {
    Registry::start_notifying(
        Setup::Plain,
        &[format!("http://127.0.0.1:{port}/hooks/distribution")],
        SECRET,
    )
}

fn digest_of(registry: &Registry, repository: &str) -> String {
    registry.skopeo_inspect(repository)["Digest"]
        .as_str()
        .expect("digest")
        .to_string()
}

/// Polls `GET url` until it answers 200 (bounded), returning the JSON body.
fn wait_for(url: &str, seconds: u64, service: &Service) -> Value {
    let start = Instant::now();
    loop {
        let (status, body) = http("GET", url, &[], None);
        if status == 200 {
            return serde_json::from_str(&body).expect("json");
        }
        assert!(
            start.elapsed() < Duration::from_secs(seconds),
            "{url} still answers {status} after {seconds} s: {body}\n{}",
            service.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn get_json(url: &str) -> Value {
    let (status, body) = http("GET", url, &[], None);
    assert_eq!(status, 200, "{url}: {body}");
    serde_json::from_str(&body).expect("json")
}

fn rules_and_paths(report: &Value) -> Vec<(String, String)> {
    let mut list: Vec<(String, String)> = report["images"][0]["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap_or_default().to_string(),
                f["location"]["path"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    list.sort();
    list
}

fn wait_until(what: &str, seconds: u64, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(seconds),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A push to a repository outside the allowlist, then one inside it, through a real
/// registry's notifications: the first is answered 200 (distribution would retry anything else
/// for ever, holding every later event behind it), and the second is scanned as usual.
#[test]
fn an_event_outside_the_allowlist_does_not_stall_the_next_one() {
    let port = free_port();
    let registry = notifying(port);
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &registry, None, "");
    let service = Service::start(&config, &dir.path().join("data"), port, &[], &[]);
    let local = image(&dir.path().join("a"), "a");
    registry.push(&local, "other/app:v1");
    registry.push(&local, "team/app:v1");
    let digest = digest_of(&registry, "team/app:v1");
    wait_for(&service.url(&format!("/api/images/{digest}")), 60, &service);
    // Every report is on disk: only the service's user reads it.
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |path: &Path| fs_err::metadata(path).unwrap().permissions().mode() & 0o777;
    let data = dir.path().join("data");
    assert_eq!(mode(&data), 0o700);
    let mut files = vec![data.join("ocicert.db"), data.join("ocicert.db-wal")];
    for entry in fs_err::read_dir(data.join("cache/layers")).unwrap() {
        files.push(entry.unwrap().path());
    }
    assert!(files.len() > 2, "the scan cached its layers");
    for file in files {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
    let metrics = http("GET", &service.url("/metrics"), &[], None).1;
    assert!(
        metrics.lines().any(|l| l.starts_with(
            "ocicert_webhook_images_outside_allowlist_total{source=\"distribution\"}"
        )),
        "{metrics}"
    );
}

/// A runaway scan (a layer of one 2 GiB file of zeros, which compresses to a few MiB) stops at
/// the job's one-second budget and fails for good; with one worker, the next image is still
/// scanned.
#[test]
fn a_runaway_scan_stops_at_its_budget_and_the_queue_moves_on() {
    let port = free_port();
    let registry = notifying(port);
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &registry, None, "job_timeout_seconds = 1");
    let text = fs_err::read_to_string(&config)
        .unwrap()
        .replace("workers = 2", "workers = 1");
    fs_err::write(&config, text).unwrap();
    let service = Service::start(&config, &dir.path().join("data"), port, &[], &[]);

    let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut builder = tar::Builder::new(encoder);
    let mut header = tar::Header::new_gnu();
    let size = 2u64 << 30;
    header.set_size(size);
    header.set_mode(0o644);
    header.set_cksum();
    builder
        .append_data(
            &mut header,
            "big.bin",
            std::io::Read::take(std::io::repeat(0), size),
        )
        .unwrap();
    let layer = builder.into_inner().unwrap().finish().unwrap();
    let mut layout = Layout::new(&dir.path().join("zeros"));
    let blob = Blob {
        bytes: layer,
        media_type: "application/vnd.oci.image.layer.v1.tar+gzip",
    };
    let manifest = layout.image(&[blob], json!({}), ("linux", "amd64"));
    layout.tag(manifest, "v1").write();
    let started = Instant::now();
    registry.push(
        &format!("oci:{}:v1", dir.path().join("zeros").display()),
        "team/zeros:v1",
    );
    let zeros = digest_of(&registry, "team/zeros:v1");
    let jobs = service.url(&format!("/api/jobs?digest={zeros}"));
    wait_until("the runaway job to fail", 30, || {
        get_json(&jobs)[0]["state"] == "failed"
    });
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    let job = &get_json(&jobs)[0];
    assert_eq!(job["attempts"], 1, "not retried: {job}");
    assert!(
        job["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("1 s job budget")),
        "{job}"
    );
    registry.push(&image(&dir.path().join("a"), "a"), "team/app:v1");
    let digest = digest_of(&registry, "team/app:v1");
    wait_for(&service.url(&format!("/api/images/{digest}")), 60, &service);
}

/// A scan past the job's memory budget (here 1 MiB, less than any process has) stops at its
/// first read and fails for good, naming the budget.
#[test]
fn a_scan_over_its_memory_budget_fails_for_good_and_names_it() {
    let port = free_port();
    let registry = notifying(port);
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &registry, None, "job_memory_mib = 1");
    let service = Service::start(&config, &dir.path().join("data"), port, &[], &[]);
    registry.push(&image(&dir.path().join("a"), "a"), "team/app:v1");
    let digest = digest_of(&registry, "team/app:v1");
    let jobs = service.url(&format!("/api/jobs?digest={digest}"));
    wait_until("the job to fail", 30, || {
        get_json(&jobs)[0]["state"] == "failed"
    });
    let job = &get_json(&jobs)[0];
    assert_eq!(job["attempts"], 1, "not retried: {job}");
    assert!(
        job["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("1 MiB memory budget (`job_memory_mib`)")),
        "{job}"
    );
}

#[test]
fn pushes_are_scanned_and_served() {
    let port = free_port();
    let registry = notifying(port);
    let sink = HookSink::start();
    let dir = tempfile::tempdir().unwrap();
    // Docker Hub and GitHub deliveries are pointed at the local registry (a mirror).
    let hub = format!(
        "[hooks.dockerhub]\nsecret = \"hub-secret\"\nregistry = \"{0}\"\n\
         [hooks.github]\nsecret = \"gh-secret\"\nregistry = \"{0}\"\n",
        registry.host()
    );
    let config = config(dir.path(), &registry, Some(&sink), &hub);
    let service = Service::start(&config, &dir.path().join("data"), port, &[], &[]);

    let local = image(&dir.path().join("a"), "a");
    registry.push(&local, "team/app:v1");
    let digest = digest_of(&registry, "team/app:v1");
    let report = wait_for(&service.url(&format!("/api/images/{digest}")), 60, &service);

    // The same JSON as `ocicert scan --format json` of the same image.
    let reference = format!("{}/team/app@{digest}", registry.host());
    assert_eq!(report["reference"], reference.as_str());
    let cli = scan_json(&reference, &["--insecure"]).json();
    assert_eq!(rules_and_paths(&report), rules_and_paths(&cli));
    assert_eq!(report["schema_version"], cli["schema_version"]);
    assert!(rules_and_paths(&report).contains(&("private-key".into(), "/etc/base.key".into())));

    // A redelivery and a second tag for the same digest scan nothing again.
    registry.push(&local, "team/app:v2");
    let envelope = fs_err::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/webhooks/registry-notification.json"),
    )
    .unwrap();
    let envelope = String::from_utf8(envelope)
        .unwrap()
        .replace("127.0.0.1:5001", &registry.host())
        .replace("test/notify", "team/app")
        .replace("\"tag\": \"v1\"", "\"tag\": \"v2\"")
        .replace(
            "sha256:4039eae5bb01d163c6c571327860b577082a5682aefc27a47aacca4a2df42c9a",
            &digest,
        );
    let auth = format!("Authorization: Bearer {SECRET}");
    let hook = service.url("/hooks/distribution");
    let (status, body) = http("POST", &hook, &[&auth], Some(envelope.as_bytes()));
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["duplicates"],
        1
    );
    wait_until("the v2 tag to be recorded", 20, || {
        get_json(&service.url("/api/images"))[0]["tag"] == "v2"
    });
    let jobs = get_json(&service.url(&format!("/api/jobs?digest={digest}")));
    let scans: Vec<&Value> = jobs
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["kind"] == "scan")
        .collect();
    assert_eq!(scans.len(), 1, "{jobs}");
    assert_eq!(
        (scans[0]["state"].as_str(), scans[0]["attempts"].as_u64()),
        (Some("done"), Some(1))
    );

    // Docker Hub: the tag is resolved with HEAD on the (mirror) registry; same digest, no new job.
    let hub_payload = String::from_utf8(
        fs_err::read(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/webhooks/dockerhub.json"),
        )
        .unwrap(),
    )
    .unwrap()
    .replace("exampleorg/webapp", "team/app")
    .replace("1.4.2", "v1");
    let (status, body) = http(
        "POST",
        &service.url("/hooks/dockerhub/hub-secret"),
        &[],
        Some(hub_payload.as_bytes()),
    );
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["duplicates"],
        1,
        "{body}"
    );
    let (status, _) = http(
        "POST",
        &service.url("/hooks/dockerhub/wrong"),
        &[],
        Some(hub_payload.as_bytes()),
    );
    assert_eq!(status, 401);
    // GitHub: HMAC-signed `package` event naming the digest.
    let gh_payload = String::from_utf8(
        fs_err::read(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/webhooks/github-package.json"),
        )
        .unwrap(),
    )
    .unwrap()
    .replace("\"ExampleOrg\"", "\"team\"")
    .replace("\"webapp\"", "\"app\"")
    .replace(
        "sha256:4039eae5bb01d163c6c571327860b577082a5682aefc27a47aacca4a2df42c9a",
        &digest,
    );
    let signature = format!(
        "X-Hub-Signature-256: {}",
        ocicert::serve::hooks::sign(b"gh-secret", gh_payload.as_bytes())
    );
    let github = service.url("/hooks/github");
    let (status, body) = http(
        "POST",
        &github,
        &["X-GitHub-Event: package", &signature],
        Some(gh_payload.as_bytes()),
    );
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["duplicates"],
        1,
        "{body}"
    );
    let (status, _) = http(
        "POST",
        &github,
        &["X-GitHub-Event: package", "X-Hub-Signature-256: sha256=00"],
        Some(gh_payload.as_bytes()),
    );
    assert_eq!(status, 401);

    // Wrong secret: 401. A registry or repository outside the allowlist: 200 and ignored (a
    // registry retries anything else for ever), never contacted.
    let (status, _) = http(
        "POST",
        &hook,
        &["Authorization: Bearer nope"],
        Some(envelope.as_bytes()),
    );
    assert_eq!(status, 401);
    let trap = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    trap.set_nonblocking(true).unwrap();
    let trap_host = format!("127.0.0.1:{}", trap.local_addr().unwrap().port());
    for forged in [
        envelope.replace(&registry.host(), &trap_host),
        envelope.replace("team/app", "other/app"),
    ] {
        let (status, body) = http("POST", &hook, &[&auth], Some(forged.as_bytes()));
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("not in the registry allowlist"), "{body}");
    }
    let (status, _) = http("POST", &hook, &[&auth], Some(&vec![b'x'; 2 * 1024 * 1024]));
    assert_eq!(status, 413, "bodies over 1 MiB are refused");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        trap.accept().is_err(),
        "the service contacted a host outside the allowlist"
    );

    // Queries across images.
    let findings = get_json(&service.url("/api/findings?severity=high&repository=team/app"));
    assert!(
        findings
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["severity"] == "high" || f["severity"] == "critical")
    );
    assert!(
        findings
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["path"] == "/etc/base.key")
    );
    let expiring = get_json(&service.url("/api/certificates?expiring_within=30d"));
    let entry = &expiring[0];
    assert_eq!(entry["images"][0]["digest"], digest.as_str());
    assert_eq!(entry["images"][0]["paths"][0], "/app/server.pem");
    assert_eq!(
        get_json(&service.url("/api/certificates?expiring_within=-36500d")),
        json!([])
    );
    // A window that would overflow is refused, not wrapped round into an empty answer.
    for huge in ["106751991167300d", "36501d", "-9223372036854775807"] {
        let (status, body) = http(
            "GET",
            &service.url(&format!("/api/certificates?expiring_within={huge}")),
            &[],
            None,
        );
        assert_eq!(status, 400, "{huge}: {body}");
    }

    // One notification, Slack-compatible, for the image with findings at or above `high`.
    wait_until("the notification", 30, || !sink.bodies().is_empty());
    let bodies = sink.bodies();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert!(bodies[0]["text"].as_str().unwrap().contains("team/app"));
    assert_eq!(bodies[0]["ocicert"]["digest"], digest.as_str());

    let metrics = http("GET", &service.url("/metrics"), &[], None).1;
    for line in [
        "ocicert_jobs{kind=\"scan\",state=\"done\"} 1",
        "ocicert_jobs{kind=\"notify\",state=\"done\"} 1",
        "ocicert_scan_duration_seconds_count 1",
        "ocicert_webhook_deliveries_total{source=\"distribution\",outcome=\"outside_allowlist\"} 2",
        "ocicert_webhook_images_outside_allowlist_total{source=\"distribution\"} 2",
        "ocicert_webhook_deliveries_total{source=\"distribution\",outcome=\"unauthorized\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
    assert!(
        !service.log().contains(SECRET),
        "the secret is never logged"
    );
}

#[test]
fn kill_9_mid_scan_loses_nothing_and_scans_once() {
    let port = free_port();
    let registry = notifying(port);
    let sink = HookSink::start();
    let dir = tempfile::tempdir().unwrap();
    // A long lease: the restart must not wait for it to run out.
    let config = config(dir.path(), &registry, Some(&sink), "");
    let text = fs_err::read_to_string(&config)
        .unwrap()
        .replace("lease_seconds = 2", "lease_seconds = 60");
    fs_err::write(&config, text).unwrap();
    let data = dir.path().join("data");
    let mut first = Service::start(
        &config,
        &data,
        port,
        &[],
        &[("OCICERT_TEST_SCAN_DELAY_MS", "60000")],
    );
    registry.push(&image(&dir.path().join("a"), "a"), "team/app:v1");
    let digest = digest_of(&registry, "team/app:v1");
    let jobs = first.url(&format!("/api/jobs?digest={digest}"));
    wait_until("the scan to start", 30, || {
        get_json(&jobs)[0]["state"] == "running"
    });
    first.kill9();

    let restarted = Instant::now();
    let second = Service::start(&config, &data, port, &[], &[]);
    let report = wait_for(&second.url(&format!("/api/images/{digest}")), 60, &second);
    assert!(
        restarted.elapsed() < Duration::from_secs(10),
        "scanned again {:?} after the restart, not after the 60 s lease",
        restarted.elapsed()
    );
    assert!(rules_and_paths(&report).contains(&("private-key".into(), "/etc/base.key".into())));
    wait_until("the notification", 30, || !sink.bodies().is_empty());
    std::thread::sleep(Duration::from_secs(2));
    let jobs = get_json(&second.url(&format!("/api/jobs?digest={digest}")));
    let scan = jobs
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["kind"] == "scan")
        .unwrap();
    assert_eq!(
        (scan["state"].as_str(), scan["attempts"].as_u64()),
        (Some("done"), Some(2)),
        "{jobs}"
    );
    assert_eq!(
        sink.bodies().len(),
        1,
        "one completed scan, one notification"
    );
    assert_eq!(
        get_json(&second.url("/api/images"))
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let metrics = http("GET", &second.url("/metrics"), &[], None).1;
    assert!(
        metrics.contains("ocicert_scan_duration_seconds_count 1"),
        "{metrics}"
    );
}

/// A replica killed mid-scan: with the default lease, another replica on the same PostgreSQL
/// queue takes the job over within 15 s and scans it once.
#[test]
fn a_replica_killed_mid_scan_hands_its_job_over_within_15_s() {
    let postgres = Postgres::start();
    let (port_a, port_b) = (free_port(), free_port());
    let registry = notifying(port_a);
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &registry, None, "");
    let text = fs_err::read_to_string(&config)
        .unwrap()
        .replace("lease_seconds = 2\n", "");
    fs_err::write(&config, text).unwrap();
    let database = ["--database", &postgres.url()].map(str::to_string);
    let database: Vec<&str> = database.iter().map(String::as_str).collect();
    let mut a = Service::start(
        &config,
        &dir.path().join("a"),
        port_a,
        &database,
        &[("OCICERT_TEST_SCAN_DELAY_MS", "120000")],
    );
    registry.push(&image(&dir.path().join("one"), "one"), "team/one:v1");
    let digest = digest_of(&registry, "team/one:v1");
    let jobs = a.url(&format!("/api/jobs?digest={digest}"));
    wait_until("the scan to start", 30, || {
        get_json(&jobs)[0]["state"] == "running"
    });
    let b = Service::start(&config, &dir.path().join("b"), port_b, &database, &[]);
    let killed = Instant::now();
    a.kill9();
    wait_for(&b.url(&format!("/api/images/{digest}")), 40, &b);
    // The lease (15 s) plus the scan itself, with room for a loaded CI machine.
    assert!(
        killed.elapsed() < Duration::from_secs(30),
        "taken over after {:?}",
        killed.elapsed()
    );
    let jobs = get_json(&b.url(&format!("/api/jobs?digest={digest}")));
    assert_eq!(jobs[0]["attempts"], 2, "{jobs}");
}

#[test]
fn two_processes_share_one_postgres_queue() {
    let postgres = Postgres::start();
    let (port_a, port_b) = (free_port(), free_port());
    // The registry notifies both processes: every push arrives twice.
    let registry = Registry::start_notifying(
        Setup::Plain,
        &[
            format!("http://127.0.0.1:{port_a}/hooks/distribution"),
            format!("http://127.0.0.1:{port_b}/hooks/distribution"),
        ],
        SECRET,
    );
    let sink = HookSink::start();
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &registry, Some(&sink), "");
    let database = ["--database", &postgres.url()].map(str::to_string);
    let database: Vec<&str> = database.iter().map(String::as_str).collect();
    let delay = [("OCICERT_TEST_SCAN_DELAY_MS", "1500")];
    let a = Service::start(&config, &dir.path().join("a"), port_a, &database, &delay);
    let b = Service::start(&config, &dir.path().join("b"), port_b, &database, &delay);
    let mut digests = Vec::new();
    for name in ["one", "two", "three", "four"] {
        registry.push(
            &image(&dir.path().join(name), name),
            &format!("team/{name}:v1"),
        );
        digests.push(digest_of(&registry, &format!("team/{name}:v1")));
    }
    for (index, digest) in digests.iter().enumerate() {
        let service = if index % 2 == 0 { &a } else { &b };
        wait_for(&service.url(&format!("/api/images/{digest}")), 90, service);
    }
    wait_until("four notifications", 30, || sink.bodies().len() >= 4);
    std::thread::sleep(Duration::from_secs(2));
    for digest in &digests {
        let jobs = get_json(&b.url(&format!("/api/jobs?digest={digest}")));
        let scans: Vec<&Value> = jobs
            .as_array()
            .unwrap()
            .iter()
            .filter(|j| j["kind"] == "scan")
            .collect();
        assert_eq!(scans.len(), 1, "{jobs}");
        assert_eq!(
            (scans[0]["state"].as_str(), scans[0]["attempts"].as_u64()),
            (Some("done"), Some(1))
        );
    }
    assert_eq!(sink.bodies().len(), 4, "each image notified once");
    let scanned = |service: &Service| {
        let metrics = http("GET", &service.url("/metrics"), &[], None).1;
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("ocicert_scan_duration_seconds_count "))
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    assert_eq!(
        scanned(&a) + scanned(&b),
        4,
        "each image scanned exactly once in all"
    );
    assert_eq!(get_json(&a.url("/api/images")).as_array().unwrap().len(), 4);
}

#[test]
fn web_pages_render_search_and_open_details_in_chromium() {
    require("chromium", "chromium");
    require("/usr/bin/python3", "python3");
    let port = free_port();
    let registry = notifying(port);
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &registry, None, "");
    let service = Service::start(&config, &dir.path().join("data"), port, &[], &[]);
    for name in ["alpha", "beta"] {
        registry.push(
            &image(&dir.path().join(name), name),
            &format!("team/{name}:v1"),
        );
        let digest = digest_of(&registry, &format!("team/{name}:v1"));
        wait_for(&service.url(&format!("/api/images/{digest}")), 60, &service);
    }
    let profile = tempfile::tempdir().unwrap();
    let output = std::process::Command::new("/usr/bin/python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/browse.py"))
        .arg(service.url("/"))
        .arg(profile.path())
        .output()
        .expect("browse.py");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "browse.py failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: Value = serde_json::from_str(stdout.trim()).expect("browse.py prints JSON");
    assert_eq!(result["rows_before"], 2, "{result}");
    assert_eq!(result["rows_after_search"], 1, "{result}");
    assert!(
        result["search_text"]
            .as_str()
            .unwrap()
            .contains("team/beta"),
        "{result}"
    );
    assert!(
        result["detail_path"]
            .as_str()
            .unwrap()
            .starts_with("/images/sha256:"),
        "{result}"
    );
    assert!(result["detail_findings"].as_u64().unwrap() >= 2, "{result}");
    assert!(
        result["detail_title"]
            .as_str()
            .unwrap()
            .contains("team/beta"),
        "{result}"
    );
    assert!(
        result["certificates_expired"].as_u64().unwrap() >= 1,
        "{result}"
    );
}

#[test]
fn with_a_read_token_results_are_shown_only_to_its_holders() {
    let port = free_port();
    let registry = notifying(port);
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        &registry,
        None,
        "[read]\nsecret_env = \"OCICERT_READ_TOKEN\"",
    );
    let token = "read-token-7f3a";
    let service = Service::start(
        &config,
        &dir.path().join("data"),
        port,
        &[],
        &[("OCICERT_READ_TOKEN", token)],
    );
    // The registry's webhook still gets in (it has its own secret): the push is scanned.
    registry.push(&image(&dir.path().join("img"), "read"), "team/read:v1");
    let digest = digest_of(&registry, "team/read:v1");
    let report_url = service.url(&format!("/api/images/{digest}"));
    let bearer = format!("Authorization: Bearer {token}");
    wait_until("the pushed image's report", 60, || {
        http("GET", &report_url, &[&bearer], None).0 == 200
    });
    let (_, body) = http("GET", &report_url, &[&bearer], None);
    assert!(body.contains("private-key"), "{body}");

    // Without the token, or with a wrong one, nothing is read: API, pages and metrics.
    for path in [
        format!("/api/images/{digest}"),
        "/api/images".to_string(),
        "/api/findings".to_string(),
        "/api/certificates".to_string(),
        "/api/jobs".to_string(),
        "/metrics".to_string(),
        "/".to_string(),
        format!("/images/{digest}"),
        "/certificates".to_string(),
    ] {
        let url = service.url(&path);
        for headers in [vec![], vec!["Authorization: Bearer wrong-token"]] {
            let (status, body) = http("GET", &url, &headers, None);
            assert_eq!(status, 401, "{path} {headers:?}: {body}");
            assert!(!body.contains("team/read"), "{path} leaked: {body}");
        }
    }
    // A browser gets the Basic challenge, then sends the token as the password.
    let challenge = std::process::Command::new("curl")
        .args(["-s", "-i", "--max-time", "10", &service.url("/")])
        .output()
        .expect("curl");
    let challenge = String::from_utf8_lossy(&challenge.stdout).to_ascii_lowercase();
    assert!(
        challenge.contains("www-authenticate: basic realm=\"ocicert\""),
        "{challenge}"
    );
    let basic = std::process::Command::new("curl")
        .args(["-s", "--max-time", "10", "-u", &format!("alice:{token}")])
        .arg(service.url("/"))
        .output()
        .expect("curl");
    assert!(
        String::from_utf8_lossy(&basic.stdout).contains("team/read"),
        "the index page with the Basic password lists the image"
    );
    let (status, metrics) = http("GET", &service.url("/metrics"), &[&bearer], None);
    assert_eq!(status, 200, "{metrics}");
    // Probes stay open.
    assert_eq!(http("GET", &service.url("/healthz"), &[], None).0, 200);
    assert_eq!(http("GET", &service.url("/readyz"), &[], None).0, 200);
}
