//! Registry I/O against a real CNCF distribution registry: every auth mode, copy round trips
//! checked by skopeo, tampered storage, wrong credentials, 429 retries, platforms, and the cache.

use crate::common::*;
use crate::support::{FlakyProxy, PASS, Registry, Setup, USER};
use serde_json::json;

/// A two-platform image with a shared base layer; returns the `oci:` reference.
fn two_platforms(dir: &std::path::Path) -> String {
    let mut layout = Layout::new(dir);
    let base = || gz_layer(&[Entry::File("etc/base.key", fixture("keys/ec-sec1.pem"))]);
    let amd = layout.image(
        &[
            base(),
            gz_layer(&[Entry::File("amd/server.pem", fixture("certs/expired.pem"))]),
        ],
        json!({}),
        ("linux", "amd64"),
    );
    let arm = layout.image(
        &[
            base(),
            gz_layer(&[Entry::File("arm/server.key", fixture("keys/rsa-pkcs1.pem"))]),
        ],
        json!({}),
        ("linux", "arm64"),
    );
    let index = layout.index_of(&[amd, arm]);
    layout.tag(index, "multi").write();
    format!("oci:{}:multi", dir.display())
}

fn args<'a>(registry: &'a [String], extra: &[&'a str]) -> Vec<&'a str> {
    let mut all: Vec<&str> = registry.iter().map(String::as_str).collect();
    all.extend_from_slice(extra);
    all
}

fn places(report: &serde_json::Value, image: usize) -> Vec<String> {
    let mut list: Vec<String> = report["images"][image]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{} {}",
                f["rule"].as_str().unwrap(),
                f["location"]["path"].as_str().unwrap_or_default()
            )
        })
        .collect();
    list.sort();
    list
}

fn scan_registry(registry: &Registry, reference: &str, extra: &[&str]) -> Run {
    let flags = registry.flags();
    scan_json(reference, &args(&flags, &[&["--no-cache"], extra].concat()))
}

#[test]
fn plain_registry_scans_by_tag_digest_and_platform() {
    let registry = Registry::start(Setup::Plain);
    let dir = tempfile::tempdir().unwrap();
    let local = two_platforms(dir.path());
    registry.push(&local, "team/app:v1");
    let by_tag = format!("{}/team/app:v1", registry.host());

    let amd = scan_registry(&registry, &by_tag, &["--platform", "linux/amd64"]);
    assert_eq!(amd.code, 1, "{}", amd.stderr);
    let report = amd.json();
    assert_eq!(
        places(&report, 0),
        ["cert-expired /amd/server.pem", "private-key /etc/base.key"]
    );
    let local_report = scan_json(&local, &["--platform", "linux/amd64"]).json();
    assert_eq!(
        places(&report, 0),
        places(&local_report, 0),
        "registry and layout scans agree"
    );

    let all = scan_registry(
        &registry,
        &format!("docker://{by_tag}"),
        &["--all-platforms"],
    )
    .json();
    assert_eq!(all["images"].as_array().unwrap().len(), 2);
    assert_eq!(
        places(&all, 1),
        ["private-key /arm/server.key", "private-key /etc/base.key"]
    );
    // The report names the index the tag resolves to: the digest to pin a deployment to.
    let raw = std::process::Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{by_tag}"))
        .output()
        .unwrap();
    assert!(raw.status.success());
    let index_digest = crate::common::digest(&raw.stdout);
    assert_eq!(all["digest"], index_digest.as_str());
    assert_ne!(all["images"][0]["manifest_digest"], index_digest.as_str());

    let digest = registry.skopeo_inspect("team/app:v1")["Digest"]
        .as_str()
        .unwrap()
        .to_string();
    let by_digest = scan_registry(
        &registry,
        &format!("{}/team/app@{digest}", registry.host()),
        &["--platform", "linux/arm64"],
    );
    assert_eq!(by_digest.code, 1, "{}", by_digest.stderr);
    assert_eq!(by_digest.json()["images"][0]["platform"], "linux/arm64");

    let without_insecure = scan_json(&by_tag, &["--no-cache"]);
    assert_eq!(without_insecure.code, 2, "plain HTTP needs --insecure");
    assert!(
        without_insecure.stderr.contains(&registry.host()),
        "{}",
        without_insecure.stderr
    );
}

#[test]
fn copy_round_trips_through_registries_and_local_layouts() {
    let registry = Registry::start(Setup::Plain);
    let dir = tempfile::tempdir().unwrap();
    let local = two_platforms(dir.path());
    registry.push(&local, "team/app:v1");
    let source = format!("{}/team/app:v1", registry.host());
    let source_digest = registry.skopeo_inspect("team/app:v1")["Digest"]
        .as_str()
        .unwrap()
        .to_string();

    // Registry to registry (a cross-repository mount), all platforms, same index digest.
    let digest_file = dir.path().join("digest.txt");
    let copy = ocicert(&[
        "copy",
        &source,
        &format!("{}/other/app:v2", registry.host()),
        "--insecure",
        "--digest-file",
        digest_file.to_str().unwrap(),
    ]);
    assert_eq!(copy.code, 0, "{}", copy.stderr);
    assert_eq!(
        copy.stdout.trim(),
        source_digest,
        "raw manifests are pushed unchanged"
    );
    assert_eq!(
        fs_err::read_to_string(&digest_file).unwrap().trim(),
        source_digest
    );
    assert_eq!(
        registry.skopeo_inspect("other/app:v2")["Digest"],
        source_digest
    );

    // A local two-platform layout gets a re-assembled index in the registry.
    let pushed = ocicert(&[
        "copy",
        &local,
        &format!("{}/local/app:multi", registry.host()),
        "--insecure",
    ]);
    assert_eq!(pushed.code, 0, "{}", pushed.stderr);
    let raw = std::process::Command::new("skopeo")
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{}/local/app:multi", registry.host()),
        ])
        .output()
        .unwrap();
    let index: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    let platforms: Vec<_> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(platforms, ["amd64", "arm64"]);
    assert_eq!(crate::common::digest(&raw.stdout), pushed.stdout.trim());

    // One platform to an OCI layout and to a docker-archive, then back to the registry.
    let layout = dir.path().join("copied");
    let to_layout = ocicert(&[
        "copy",
        &source,
        &format!("oci:{}:arm", layout.display()),
        "--insecure",
        "--platform",
        "linux/arm64",
    ]);
    assert_eq!(to_layout.code, 0, "{}", to_layout.stderr);
    let archive = dir.path().join("docker.tar");
    let to_archive = ocicert(&[
        "copy",
        &format!("oci:{}:arm", layout.display()),
        &format!("docker-archive:{}:example/app:arm", archive.display()),
    ]);
    assert_eq!(to_archive.code, 0, "{}", to_archive.stderr);
    let skopeo = std::process::Command::new("skopeo")
        .args(["inspect", &format!("docker-archive:{}", archive.display())])
        .output()
        .unwrap();
    assert!(
        skopeo.status.success(),
        "skopeo reads our docker-archive: {}",
        String::from_utf8_lossy(&skopeo.stderr)
    );
    // Chunked uploads: a tiny chunk size forces PATCH uploads for every layer.
    let back = {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_ocicert"))
            .args([
                "copy",
                &format!("docker-archive:{}", archive.display()),
                &format!("{}/from/archive:v1", registry.host()),
                "--insecure",
            ])
            .env("OCICERT_UPLOAD_CHUNK_BYTES", "700")
            .output()
            .unwrap();
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into(),
            stderr: String::from_utf8_lossy(&output.stderr).into(),
        }
    };
    assert_eq!(back.code, 0, "{}", back.stderr);
    let pulled = std::process::Command::new("skopeo")
        .args([
            "--insecure-policy",
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            &format!("docker://{}/from/archive:v1", registry.host()),
            &format!("oci:{}:pulled", dir.path().join("pulled").display()),
        ])
        .output()
        .unwrap();
    assert!(
        pulled.status.success(),
        "skopeo copies what we pushed: {}",
        String::from_utf8_lossy(&pulled.stderr)
    );
    let rescanned = scan_registry(
        &registry,
        &format!("{}/from/archive:v1", registry.host()),
        &[],
    )
    .json();
    assert_eq!(
        places(&rescanned, 0),
        ["private-key /arm/server.key", "private-key /etc/base.key"]
    );
}

#[test]
fn tls_with_htpasswd_accepts_flags_docker_config_and_auth_json() {
    let registry = Registry::start(Setup::TlsHtpasswd);
    let dir = tempfile::tempdir().unwrap();
    let local = two_platforms(dir.path());
    registry.push(&local, "secure/app:v1");
    let reference = format!("{}/secure/app:v1", registry.host());
    let ca = registry.ca.clone().unwrap().display().to_string();

    let ok = scan_registry(&registry, &reference, &["--platform", "linux/amd64"]);
    assert_eq!(ok.code, 1, "{}", ok.stderr);

    let wrong = scan_json(
        &reference,
        &["--no-cache", "--ca-file", &ca, "--creds", "testuser:wrong"],
    );
    assert_eq!(wrong.code, 2);
    assert!(wrong.stderr.contains("unauthorized"), "{}", wrong.stderr);
    assert!(
        !wrong.stderr.contains("wrong"),
        "the password must not be printed: {}",
        wrong.stderr
    );

    let untrusted = scan_json(
        &reference,
        &["--no-cache", "--creds", &format!("{USER}:{PASS}")],
    );
    assert_eq!(untrusted.code, 2, "a private CA needs --ca-file");

    // Runs a scan that finds its login only through the environment given.
    let scan_with_env = |envs: &[(&str, std::ffi::OsString)]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_ocicert"));
        command.args([
            "scan",
            &reference,
            "--no-cache",
            "--ca-file",
            &ca,
            "--fail-on",
            "never",
        ]);
        for (name, value) in envs {
            command.env(name, value);
        }
        command.output().unwrap()
    };

    // Stored logins: Docker's config.json, then podman's auth.json.
    let encoded = base64_encode(&format!("{USER}:{PASS}"));
    let docker_dir = dir.path().join("docker");
    fs_err::create_dir_all(&docker_dir).unwrap();
    fs_err::write(
        docker_dir.join("config.json"),
        json!({"auths": {registry.host(): {"auth": encoded}}}).to_string(),
    )
    .unwrap();
    let with_docker_config = scan_with_env(&[
        ("DOCKER_CONFIG", docker_dir.clone().into()),
        ("REGISTRY_AUTH_FILE", dir.path().join("missing.json").into()),
    ]);
    assert!(
        with_docker_config.status.success(),
        "{}",
        String::from_utf8_lossy(&with_docker_config.stderr)
    );
    let auth_json = dir.path().join("auth.json");
    fs_err::write(
        &auth_json,
        json!({"auths": {registry.host(): {"auth": encoded}}}).to_string(),
    )
    .unwrap();
    let with_auth_json = scan_with_env(&[
        ("REGISTRY_AUTH_FILE", auth_json.clone().into()),
        ("DOCKER_CONFIG", dir.path().join("nowhere").into()),
    ]);
    assert!(
        with_auth_json.status.success(),
        "{}",
        String::from_utf8_lossy(&with_auth_json.stderr)
    );

    // A credential helper named by credHelpers, as `docker-credential-*` on PATH.
    let bin = dir.path().join("bin");
    fs_err::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-ocicerttest");
    fs_err::write(&helper, format!("#!/bin/sh\nread server\nprintf '{{\"ServerURL\":\"%s\",\"Username\":\"{USER}\",\"Secret\":\"{PASS}\"}}' \"$server\"\n")).unwrap();
    std::process::Command::new("chmod")
        .args(["+x", helper.to_str().unwrap()])
        .status()
        .unwrap();
    let helper_dir = dir.path().join("docker-helper");
    fs_err::create_dir_all(&helper_dir).unwrap();
    fs_err::write(
        helper_dir.join("config.json"),
        json!({"credHelpers": {registry.host(): "ocicerttest"}}).to_string(),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let with_helper = scan_with_env(&[
        ("DOCKER_CONFIG", helper_dir.clone().into()),
        ("REGISTRY_AUTH_FILE", dir.path().join("missing.json").into()),
        ("PATH", path.into()),
    ]);
    assert!(
        with_helper.status.success(),
        "{}",
        String::from_utf8_lossy(&with_helper.stderr)
    );
}

fn base64_encode(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[test]
fn token_auth_pulls_and_pushes_with_scoped_tokens() {
    let registry = Registry::start(Setup::Token);
    let dir = tempfile::tempdir().unwrap();
    let local = two_platforms(dir.path());
    registry.push(&local, "tok/app:v1");
    let reference = format!("{}/tok/app:v1", registry.host());
    let scanned = scan_registry(&registry, &reference, &["--platform", "linux/arm64"]);
    assert_eq!(scanned.code, 1, "{}", scanned.stderr);
    let copied = ocicert(&[
        "copy",
        &reference,
        &format!("{}/tok/copy:v1", registry.host()),
        "--insecure",
        "--creds",
        &format!("{USER}:{PASS}"),
    ]);
    assert_eq!(copied.code, 0, "{}", copied.stderr);
    assert_eq!(
        registry.skopeo_inspect("tok/copy:v1")["Digest"],
        registry.skopeo_inspect("tok/app:v1")["Digest"]
    );
    let log = registry.log("token.log");
    assert!(log.contains("repository:tok/app:pull"), "{log}");
    assert!(log.contains("repository:tok/copy:pull,push"), "{log}");

    let refused = scan_json(
        &reference,
        &["--no-cache", "--insecure", "--creds", "testuser:nope"],
    );
    assert_eq!(refused.code, 2);
    assert!(
        refused.stderr.contains("unauthorized"),
        "{}",
        refused.stderr
    );
    let anonymous = scan_json(&reference, &["--no-cache", "--insecure"]);
    assert_eq!(anonymous.code, 2);
}

#[test]
fn a_layer_tampered_in_storage_fails_with_its_digest_and_the_cache_avoids_downloads() {
    let registry = Registry::start(Setup::Plain);
    let dir = tempfile::tempdir().unwrap();
    let local = two_platforms(dir.path());
    registry.push(&local, "team/app:v1");
    let reference = format!("{}/team/app:v1", registry.host());
    let cache = dir.path().join("cache");
    let cached = |extra: &[&str]| {
        let mut all = vec![
            "--insecure",
            "--cache-dir",
            cache.to_str().unwrap(),
            "--platform",
            "linux/amd64",
        ];
        all.extend_from_slice(extra);
        let mut args = vec!["scan", reference.as_str(), "--format", "json", "--now", NOW];
        args.extend(all);
        ocicert(&args)
    };
    // Two processes sharing one cache at once both succeed with the same output.
    let fresh = dir.path().join("cache2");
    let spawn = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_ocicert"))
            .args([
                "scan",
                &reference,
                "--format",
                "json",
                "--now",
                NOW,
                "--insecure",
                "--cache-dir",
                fresh.to_str().unwrap(),
                "--platform",
                "linux/arm64",
            ])
            .output()
            .unwrap()
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(spawn);
        let b = s.spawn(spawn);
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!(a.stdout, b.stdout);
    assert_eq!(a.status.code(), Some(1));

    let first = cached(&[]);
    assert_eq!(first.code, 1, "{}", first.stderr);

    // Tamper the shared base layer inside the registry's storage.
    let report = first.json();
    let base = report["images"][0]["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let blob = registry.blob_path(&base);
    let mut bytes = fs_err::read(&blob).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    fs_err::write(&blob, bytes).unwrap();

    let uncached = scan_registry(&registry, &reference, &["--platform", "linux/amd64"]);
    assert_eq!(uncached.code, 2, "{}", uncached.stdout);
    assert!(
        uncached.stderr.contains(&base),
        "the error names the layer: {}",
        uncached.stderr
    );
    assert!(
        uncached.stdout.is_empty(),
        "no findings from a layer that failed verification"
    );

    // The warm cache never downloads the layer again, and gives the identical report.
    let second = cached(&[]);
    assert_eq!(second.code, 1, "{}", second.stderr);
    assert_eq!(second.stdout, first.stdout);

    // Another platform shares that base layer: only its own layer is downloaded.
    let arm = ocicert(&[
        "scan",
        &reference,
        "--format",
        "json",
        "--now",
        NOW,
        "--insecure",
        "--cache-dir",
        cache.to_str().unwrap(),
        "--platform",
        "linux/arm64",
    ]);
    assert_eq!(arm.code, 1, "{}", arm.stderr);
}

#[test]
fn a_429_is_retried_after_retry_after() {
    let registry = Registry::start(Setup::Plain);
    let dir = tempfile::tempdir().unwrap();
    registry.push(&two_platforms(dir.path()), "team/app:v1");
    let proxy = FlakyProxy::start(&registry.host(), 2);
    let started = std::time::Instant::now();
    let run = scan_json(
        &format!("127.0.0.1:{}/team/app:v1", proxy.port),
        &["--no-cache", "--insecure", "--platform", "linux/amd64"],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let log = fs_err::read_to_string(&proxy.log).unwrap();
    assert_eq!(
        log.lines().filter(|l| l.starts_with("429")).count(),
        2,
        "{log}"
    );
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(2),
        "Retry-After: 1 was honoured twice"
    );
}

#[test]
fn a_cross_host_blob_redirect_does_not_carry_the_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let layout_dir = dir.path().join("layout");
    let layout = Layout::new(&layout_dir);
    let descriptor = layout.image(
        &[gz_layer(&[Entry::File(
            "k.pem",
            fixture("keys/ec-sec1.pem"),
        )])],
        json!({}),
        ("linux", "amd64"),
    );
    let manifest_hex = &descriptor["digest"].as_str().unwrap()[7..];
    let served = dir.path().join("served");
    fs_err::create_dir_all(served.join("manifests")).unwrap();
    fs_err::create_dir_all(served.join("blobs")).unwrap();
    for entry in fs_err::read_dir(layout_dir.join("blobs/sha256")).unwrap() {
        let entry = entry.unwrap();
        let name = format!("sha256:{}", entry.file_name().to_string_lossy());
        fs_err::copy(entry.path(), served.join("blobs").join(name)).unwrap();
    }
    fs_err::copy(
        layout_dir.join("blobs/sha256").join(manifest_hex),
        served.join("manifests/v1"),
    )
    .unwrap();
    fs_err::write(
        served.join("manifests/v1.type"),
        "application/vnd.oci.image.manifest.v1+json",
    )
    .unwrap();

    let (port, storage_port) = (crate::support::free_port(), crate::support::free_port());
    let log = dir.path().join("requests.log");
    let mut server = std::process::Command::new("/usr/bin/python3")
        .arg(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/support/redirect_registry.py"),
        )
        .args([
            &port.to_string(),
            &storage_port.to_string(),
            served.to_str().unwrap(),
            &format!("{USER}:{PASS}"),
            log.to_str().unwrap(),
        ])
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
        || std::net::TcpStream::connect(("127.0.0.1", storage_port)).is_err()
    {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "server did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let run = scan_json(
        &format!("127.0.0.1:{port}/team/app:v1"),
        &["--insecure", "--creds", &format!("{USER}:{PASS}")],
    );
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(findings(&run.json()).len(), 1);
    let requests = fs_err::read_to_string(&log).unwrap();
    assert!(requests.contains("registry auth=basic"), "{requests}");
    assert!(
        requests.contains("storage authorization=absent"),
        "{requests}"
    );
    assert!(
        !requests.contains("storage authorization=present"),
        "credentials leaked to blob storage: {requests}"
    );
}
