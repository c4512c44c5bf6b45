//! The service's own requests stay inside the allowlist (issue 32): a scripted registry
//! (`tests/support/hostile_registry.py`) that redirects blob downloads, or sends its token
//! realm, to another port of the same host. Without `redirect_hosts` the job fails naming the
//! refused host and no request reaches the outside listener; listed, the same image is scanned.

use crate::common::digest;
use crate::hostile_registry::served_image;
use crate::hostile_serve::{SECRET, envelope, jobs};
use crate::support::{HostileRegistry, Service, free_port, http};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

/// A service allowing `*/app` on the scripted registry, with `redirect_hosts` when given.
fn service(dir: &Path, registry: &HostileRegistry, redirect_hosts: Option<&str>) -> Service {
    let mut text = format!(
        "workers = 1\nlease_seconds = 5\nretry_backoff_seconds = 60\nmax_attempts = 1\n\
         [hooks.distribution]\nsecret_env = \"OCICERT_HOOK_SECRET\"\n\
         [[registry]]\nhost = \"{}\"\nrepositories = [\"*/app\"]\ninsecure = true\n",
        registry.host()
    );
    if let Some(hosts) = redirect_hosts {
        text.push_str(&format!("redirect_hosts = [\"{hosts}\"]\n"));
    }
    fs_err::create_dir_all(dir).unwrap();
    let config = dir.join("serve.toml");
    fs_err::write(&config, text).unwrap();
    Service::start(&config, &dir.join("data"), free_port(), &[], &[])
}

/// Delivers a push of `mode/app@digest` and waits for its job to end; returns the job.
fn scan(service: &Service, registry: &HostileRegistry, mode: &str, manifest: &str) -> Value {
    let repository = format!("{mode}/app");
    let body = envelope(&[(&registry.host(), &repository, manifest)]);
    let (status, answer) = http(
        "POST",
        &service.url("/hooks/distribution"),
        &[
            &format!("Authorization: Bearer {SECRET}"),
            "Content-Type: application/json",
        ],
        Some(&body),
    );
    assert_eq!(status, 202, "{answer}");
    let started = Instant::now();
    loop {
        let job = jobs(service)
            .into_iter()
            .find(|job| job["repository"] == repository.as_str());
        if let Some(job) = job.filter(|job| job["state"] == "done" || job["state"] == "failed") {
            return job;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{mode}: the job did not end: {:?}",
            jobs(service)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn third_requests(registry: &HostileRegistry) -> Vec<String> {
    registry
        .requests()
        .into_iter()
        .filter(|line| line.starts_with("third "))
        .collect()
}

#[test]
fn redirects_and_token_realms_outside_the_allowlist_are_never_contacted() {
    let dir = tempfile::tempdir().unwrap();
    served_image(dir.path());
    let manifest = digest(&fs_err::read(dir.path().join("served/manifests/v1")).unwrap());
    let registry = HostileRegistry::start(&dir.path().join("served"));
    let outside = format!("127.0.0.1:{}", registry.third_port);

    let strict = service(&dir.path().join("strict"), &registry, None);
    for mode in ["redirectblob", "realmsame"] {
        let job = scan(&strict, &registry, mode, &manifest);
        assert_eq!(job["state"], "failed", "{job}");
        let error = job["last_error"].as_str().unwrap_or_default();
        assert!(
            error.contains(&outside) && error.contains("outside the allowlist"),
            "{mode}: {job}"
        );
    }
    assert_eq!(
        third_requests(&registry),
        Vec::<String>::new(),
        "a request reached the host outside the allowlist"
    );
    drop(strict);

    // Listed in `redirect_hosts`, the same registry's redirects and realm are followed.
    let listed = service(&dir.path().join("listed"), &registry, Some(&outside));
    for mode in ["redirectblob", "realmsame"] {
        let job = scan(&listed, &registry, mode, &manifest);
        assert_eq!(job["state"], "done", "{mode}: {job}");
    }
    let third = third_requests(&registry);
    assert!(third.iter().any(|l| l.contains("GET /blob/")), "{third:?}");
    assert!(third.iter().any(|l| l.contains("GET /token")), "{third:?}");
}
