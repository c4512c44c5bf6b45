//! A registry that misbehaves on purpose (`tests/support/hostile_registry.py`): a manifest over
//! the cap, a layer that does not match its digest, answers that stall or trickle for ever, a
//! token realm on a third host, and HTML where JSON belongs. Each one ends in a clear error that
//! names the registry, within a time and memory bound, and leaks no credentials. (A blob
//! redirect to another host is `registry::a_cross_host_blob_redirect_does_not_carry_the_credentials`.)

use crate::common::*;
use crate::support::{HostileRegistry, PASS, USER};
use serde_json::json;
use std::path::Path;
use std::time::Duration;

/// Writes a one-layer image with a private key where `HostileRegistry` serves it from; returns
/// the layer digest.
pub(crate) fn served_image(dir: &Path) -> String {
    let layout_dir = dir.join("layout");
    let layout = Layout::new(&layout_dir);
    let layer = gz_layer(&[Entry::File("etc/app.key", fixture("keys/ec-sec1.pem"))]);
    let layer_digest = digest(&layer.bytes);
    let descriptor = layout.image(&[layer], json!({}), ("linux", "amd64"));
    let served = dir.join("served");
    fs_err::create_dir_all(served.join("manifests")).unwrap();
    fs_err::create_dir_all(served.join("blobs")).unwrap();
    for entry in fs_err::read_dir(layout_dir.join("blobs/sha256")).unwrap() {
        let entry = entry.unwrap();
        let name = format!("sha256:{}", entry.file_name().to_string_lossy());
        fs_err::copy(entry.path(), served.join("blobs").join(name)).unwrap();
    }
    let manifest = descriptor["digest"].as_str().unwrap();
    fs_err::copy(
        layout_dir.join("blobs/sha256").join(&manifest[7..]),
        served.join("manifests/v1"),
    )
    .unwrap();
    fs_err::write(
        served.join("manifests/v1.type"),
        descriptor["mediaType"].as_str().unwrap(),
    )
    .unwrap();
    fs_err::write(served.join("first-layer"), &layer_digest).unwrap();
    layer_digest
}

fn start() -> (tempfile::TempDir, HostileRegistry, String) {
    let dir = tempfile::tempdir().unwrap();
    let layer = served_image(dir.path());
    let registry = HostileRegistry::start(&dir.path().join("served"));
    (dir, registry, layer)
}

/// `scan HOST/MODE/app:v1 --insecure` plus extra arguments, measured.
fn scan_mode(
    registry: &HostileRegistry,
    mode: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Measured {
    let reference = format!("{}/{mode}/app:v1", registry.host());
    let mut args = vec![
        "scan",
        reference.as_str(),
        "--format",
        "json",
        "--now",
        NOW,
        "--insecure",
    ];
    args.extend_from_slice(extra);
    ocicert_measured(&args, env, Duration::from_secs(180))
}

#[test]
fn the_faithful_mode_scans_so_every_failure_below_is_the_misbehaviour() {
    let (_dir, registry, _) = start();
    let measured = scan_mode(&registry, "ok", &[], &[]);
    measured.assert_bounded(60, 300);
    assert_eq!(measured.run.code, 1, "{}", measured.run.stderr);
    let places: Vec<String> = findings(&measured.run.json())
        .into_iter()
        .map(|(_, place, _)| place)
        .collect();
    assert_eq!(places, ["/etc/app.key"]);
}

#[test]
fn a_manifest_over_the_cap_is_refused_without_being_read_whole() {
    let (_dir, registry, _) = start();
    // `huge` declares its length; `endless` streams chunks for ever, so only the cap stops it.
    for mode in ["huge", "endless"] {
        let measured = scan_mode(&registry, mode, &[], &[]);
        measured.assert_bounded(60, 200);
        assert_clean_error(
            &measured.run,
            &[
                &format!("manifest `{mode}/app:v1`"),
                &registry.host(),
                "larger than the 4194304 byte limit",
            ],
        );
    }
    // The endless answer was cut off by the client, not read to some later limit.
    let started = std::time::Instant::now();
    let sent = loop {
        let line = registry.requests().into_iter().find_map(|l| {
            l.strip_prefix("registry endless stopped after ")
                .map(str::to_string)
        });
        if let Some(line) = line {
            break line.trim_end_matches(" bytes").parse::<u64>().unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the server never saw the client hang up: {:?}",
            registry.requests()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        sent < 64 * 1024 * 1024,
        "the client read {sent} bytes of an endless manifest"
    );
}

#[test]
fn a_layer_that_does_not_match_its_digest_fails_naming_it() {
    let (_dir, registry, layer) = start();
    let measured = scan_mode(&registry, "baddigest", &[], &[]);
    measured.assert_bounded(60, 300);
    assert_clean_error(
        &measured.run,
        &[&layer, "does not match its digest", "baddigest/app:v1"],
    );
}

#[test]
fn answers_that_stall_or_trickle_hit_the_timeout() {
    let (_dir, registry, layer) = start();
    let help = ocicert(&["scan", "--help"]);
    assert!(
        help.stdout.contains("--timeout <SECONDS>")
            && help.stdout.contains("OCICERT_HTTP_TIMEOUT")
            && help.stdout.contains("[default: 60]"),
        "{}",
        help.stdout
    );
    // Headers then silence; one byte every 0.3 s (never idle for a whole second, so only a
    // deadline for the whole manifest ends it); half a layer then silence; a layer one byte
    // every 0.3 s (only the floor of 1 KiB per timeout window ends it).
    for (mode, what) in [
        ("stall", "manifest `stall/app:v1`".to_string()),
        ("trickle", "manifest `trickle/app:v1`".to_string()),
        ("stallblob", format!("blob `{layer}`")),
        ("trickleblob", format!("blob `{layer}`")),
    ] {
        let measured = scan_mode(&registry, mode, &["--timeout", "1"], &[]);
        measured.assert_bounded(20, 300);
        assert_clean_error(
            &measured.run,
            &[&registry.host(), &what, "within the 1 s timeout"],
        );
        assert!(
            measured.wall >= Duration::from_secs(1),
            "{mode} ended before the timeout: {:?}",
            measured.wall
        );
    }
    // No status line at all: each attempt times out, the retries are bounded too. The timeout
    // also comes from the environment.
    let measured = scan_mode(&registry, "silent", &[], &[("OCICERT_HTTP_TIMEOUT", "1")]);
    measured.assert_bounded(45, 300);
    assert_clean_error(
        &measured.run,
        &[
            &registry.host(),
            "/v2/silent/app/manifests/v1",
            "within the 1 s timeout",
        ],
    );
    let bad = scan_mode(&registry, "ok", &["--timeout", "0"], &[]);
    assert_eq!(
        bad.run.code, 2,
        "a zero timeout is refused: {}",
        bad.run.stderr
    );
}

#[test]
fn a_token_realm_on_a_third_host_gets_no_credentials() {
    let (_dir, registry, _) = start();
    let creds = format!("{USER}:{PASS}");
    let third = |mode: &str| -> Vec<String> {
        registry
            .requests()
            .into_iter()
            .filter(|l| l.starts_with("third ") && l.contains(&format!("repository%3A{mode}%2F")))
            .collect()
    };

    // A plain-HTTP realm on another host name: refused before any request leaves.
    let refused = scan_mode(&registry, "realmother", &["--creds", &creds], &[]);
    refused.assert_bounded(60, 300);
    assert_clean_error(
        &refused.run,
        &[
            &format!("http://localhost:{}/token", registry.third_port),
            &registry.host(),
            "not sent",
        ],
    );
    assert!(!refused.run.stderr.contains(PASS), "{}", refused.run.stderr);
    assert_eq!(third("realmother"), Vec::<String>::new());

    // Anonymous: the token request goes there, with nothing to leak, and the scan works.
    let anonymous = scan_mode(&registry, "realmother", &[], &[]);
    anonymous.assert_bounded(60, 300);
    assert_eq!(anonymous.run.code, 1, "{}", anonymous.run.stderr);
    let seen = third("realmother");
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].ends_with("authorization=absent"), "{seen:?}");
    assert!(!seen[0].contains("account="), "{seen:?}");

    // The same host name as the registry (another port): the credentials go, as with a token
    // server next to the registry. This is what the refusal above would look like if it leaked.
    let same = scan_mode(&registry, "realmsame", &["--creds", &creds], &[]);
    same.assert_bounded(60, 300);
    assert_eq!(same.run.code, 1, "{}", same.run.stderr);
    let seen = third("realmsame");
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        seen[0].ends_with(&format!("authorization=basic user={USER}")),
        "{seen:?}"
    );
}

#[test]
fn html_where_json_belongs_gives_the_status_and_a_short_clean_excerpt() {
    let (_dir, registry, _) = start();
    for (mode, needles) in [
        // 500 is retried with backoff, then reported.
        ("html500", vec!["HTTP 500", "502 Upstream Trouble"]),
        (
            "html404",
            vec!["was not found", "HTTP 404", "404 Not Trouble"],
        ),
        // A 200 answer that is a proxy's or captive portal's page.
        (
            "htmlok",
            vec![
                "`text/html; charset=utf-8`",
                "not a manifest",
                "502 Upstream",
            ],
        ),
    ] {
        let measured = scan_mode(&registry, mode, &[], &[]);
        measured.assert_bounded(60, 300);
        let mut all = vec![registry.host(), format!("{mode}/app:v1")];
        all.extend(needles.iter().map(|n| n.to_string()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        assert_clean_error(&measured.run, &all);
        let stderr = &measured.run.stderr;
        for bad in ["<", "\u{1b}", "color: red", "JSON", "expected value"] {
            assert!(!stderr.contains(bad), "{mode}: `{bad}` in {stderr}");
        }
        assert!(
            stderr.len() < 1500,
            "{mode}: the excerpt is short, not the page: {} bytes",
            stderr.len()
        );
    }
}
