//! Policy files, exception expiry and baselines, through the CLI.

use crate::common::*;
use crate::report::{fixture_image, scan_in, validate};
use serde_json::{Value, json};
use std::path::Path;

/// `scan` in `dir` (where `ocicert.toml` is picked up), JSON on stdout.
fn scan_with_policy(dir: &Path, reference: &str, extra: &[&str]) -> Run {
    let mut args = vec!["scan", reference, "--now", NOW, "--format", "json"];
    args.extend_from_slice(extra);
    ocicert_in(dir, &args)
}

fn write_policy(dir: &Path, text: &str) {
    fs_err::write(dir.join("ocicert.toml"), text).unwrap();
}

fn finding<'a>(report: &'a Value, rule: &str, path: &str) -> &'a Value {
    report["images"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == rule && f["location"]["path"] == path)
        .unwrap_or_else(|| panic!("no {rule} at {path}: {report:#}"))
}

fn assert_valid_report(report: &Value) {
    let errors = validate("report-v1.schema.json", report);
    assert!(errors.is_empty(), "{errors:#?}");
}

/// A one-layer image in `dir/name` with the given files; returns its reference relative to `dir`.
fn image(dir: &Path, name: &str, files: &[(&'static str, &str)]) -> String {
    let mut layout = Layout::new(&dir.join(name));
    let entries: Vec<Entry> = files
        .iter()
        .map(|(path, fixture_name)| Entry::File(path, fixture(fixture_name)))
        .collect();
    let manifest = layout.image(&[gz_layer(&entries)], json!({}), ("linux", "amd64"));
    layout.tag(manifest, "v1").write();
    format!("oci:{name}:v1")
}

#[test]
fn the_policy_in_the_working_directory_overrides_and_suppresses() {
    let dir = tempfile::tempdir().unwrap();
    let reference = fixture_image(dir.path());
    write_policy(
        dir.path(),
        r#"fail_on = "critical"

[severity]
cert-expired = "critical"

[[allow]]
rule = "private-key"
path = "/root/.ssh/*"
reason = "deleted test key, rotated in 2026-03"
"#,
    );
    let run = scan_with_policy(dir.path(), &reference, &[]);
    assert_eq!(
        run.code, 1,
        "the overridden cert-expired is critical: {}",
        run.stderr
    );
    let report = run.json();
    assert_valid_report(&report);
    assert_eq!(
        finding(&report, "cert-expired", "/app/expired.pem")["severity"],
        "critical"
    );
    assert_eq!(
        finding(&report, "private-key", "/root/.ssh/id_ed25519")["suppressed"],
        json!({"reason": "deleted test key, rotated in 2026-03", "source": "ocicert.toml:6"})
    );
    assert_eq!(report["summary"]["suppressed"], 1);
    assert_eq!(
        report["summary"]["findings"]["high"], 1,
        "only /app/tls.key"
    );

    // Suppressed findings do not count toward --fail-on, nor appear in SARIF.
    write_policy(
        dir.path(),
        r#"fail_on = "high"
[[allow]]
rule = "private-key"
reason = "test keys"
"#,
    );
    assert_eq!(scan_with_policy(dir.path(), &reference, &[]).code, 0);
    let sarif = ocicert_in(
        dir.path(),
        &["scan", &reference, "--now", NOW, "--format", "sarif"],
    )
    .json();
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert!(results.iter().all(|r| r["ruleId"] != "private-key"));
    assert_eq!(sarif["runs"][0]["properties"]["suppressed"], 2);

    // --no-policy ignores the file.
    let plain = scan_with_policy(dir.path(), &reference, &["--no-policy"]);
    assert_eq!(plain.code, 1);
    assert_eq!(plain.json()["summary"]["suppressed"], 0);
}

#[test]
fn flags_given_explicitly_win_over_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let reference = fixture_image(dir.path());
    write_policy(dir.path(), "fail_on = \"never\"\n");
    assert_eq!(scan_with_policy(dir.path(), &reference, &[]).code, 0);
    assert_eq!(
        scan_with_policy(dir.path(), &reference, &["--fail-on", "high"]).code,
        1
    );
    // `--policy PATH` names a file anywhere.
    let elsewhere = tempfile::tempdir().unwrap();
    let path = elsewhere.path().join("strict.toml");
    fs_err::write(&path, "fail_on = \"info\"\n").unwrap();
    let other = scan_with_policy(
        dir.path(),
        &reference,
        &["--policy", path.to_str().unwrap()],
    );
    assert_eq!(other.code, 1);
}

#[test]
fn an_expired_exception_stops_applying_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let reference = fixture_image(dir.path());
    let policy = |expires: &str| {
        format!(
            r#"[[allow]]
path = "/app/tls.key"
reason = "rotation ticket SEC-42"
expires = {expires}
"#
        )
    };
    write_policy(dir.path(), &policy("2026-12-31"));
    let active = scan_with_policy(dir.path(), &reference, &["--fail-on", "high"]);
    assert!(active.stderr.is_empty(), "{}", active.stderr);
    let report = active.json();
    assert_eq!(
        finding(&report, "private-key", "/app/tls.key")["suppressed"]["expires"],
        "2026-12-31"
    );

    write_policy(dir.path(), &policy("2026-01-31"));
    let expired = scan_with_policy(dir.path(), &reference, &["--fail-on", "high"]);
    assert_eq!(expired.code, 1, "{}", expired.stderr);
    assert!(
        expired.stderr.contains(
            "warning: the exception at ocicert.toml:1 (\"rotation ticket SEC-42\") expired on 2026-01-31; the 1 finding it covered counts again"
        ),
        "{}",
        expired.stderr
    );
    let report = expired.json();
    assert_valid_report(&report);
    let key = finding(&report, "private-key", "/app/tls.key");
    assert!(key.get("suppressed").is_none(), "{key}");
    assert_eq!(key["expired_exception"]["expires"], "2026-01-31");
    assert_eq!(key["expired_exception"]["source"], "ocicert.toml:1");
}

#[test]
fn every_policy_error_is_reported_before_scanning() {
    let dir = tempfile::tempdir().unwrap();
    write_policy(
        dir.path(),
        r#"fail_on = "hihg"
expiry_warn_days = -3

[severity]
no-such-rule = "low"

[[allow]]
path = "/opt/**"
expires = 2026-13-01
"#,
    );
    // The image does not exist: the policy is checked first.
    let run = scan_with_policy(dir.path(), "oci:missing:v1", &[]);
    assert_eq!(run.code, 2);
    insta::assert_snapshot!(run.stderr, @r"
    error: the policy file `ocicert.toml` has 5 problems:
      ocicert.toml:1:11: unknown severity `hihg`; expected one of critical, high, medium, low, info, never
      ocicert.toml:2:20: `expiry_warn_days` must be a number of days from 0 to 36500
      ocicert.toml:5:1: unknown rule `no-such-rule`; `ocicert rules` lists the rule ids
      ocicert.toml:7:1: this `allow` entry has no `reason`; say why the exception exists
      ocicert.toml:9:11: invalid date, expected month between 01 and 12
    ");

    let missing = scan_with_policy(dir.path(), "oci:missing:v1", &["--policy", "nope.toml"]);
    assert_eq!(missing.code, 2);
    assert!(
        missing
            .stderr
            .contains("cannot read the policy file `nope.toml`"),
        "{}",
        missing.stderr
    );
}

#[test]
fn trusted_roots_quiet_unknown_trust_anchor_by_certificate_or_key_hash() {
    let dir = tempfile::tempdir().unwrap();
    let reference = fixture_image(dir.path());
    let report = scan_in(dir.path(), &reference, &["--format", "json"]).json();
    let anchor = finding(
        &report,
        "unknown-trust-anchor",
        "/etc/ssl/certs/weak-ca.pem",
    );
    let certificate = anchor["fingerprint"].as_str().unwrap().to_string();
    let spki = report["images"][0]["inventory"]["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["fingerprint"] == certificate.as_str())
        .unwrap()["spki_sha256"]
        .as_str()
        .unwrap()
        .to_string();
    for trusted in [certificate, format!("sha256:{spki}")] {
        write_policy(dir.path(), &format!("trusted_roots = [\"{trusted}\"]\n"));
        let report = scan_with_policy(dir.path(), &reference, &[]).json();
        let rules: Vec<(String, String)> = findings(&report)
            .into_iter()
            .map(|(rule, path, _)| (rule, path))
            .collect();
        assert!(
            !rules.iter().any(|(rule, _)| rule == "unknown-trust-anchor"),
            "{rules:?}"
        );
        assert!(rules.contains(&("weak-key".into(), "/etc/ssl/certs/weak-ca.pem".into())));
    }
}

#[test]
fn keystore_passwords_and_expiry_window_come_from_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let reference = image(
        dir.path(),
        "store",
        &[
            ("app/keystore.p12", "certs/bundle-secret.p12"),
            ("app/expiring.pem", "certs/expiring.pem"),
        ],
    );
    let rules = |run: &Run| -> Vec<String> {
        findings(&run.json())
            .into_iter()
            .map(|(rule, _, _)| rule)
            .collect()
    };
    let without = rules(&scan_with_policy(dir.path(), &reference, &[]));
    assert!(
        without.contains(&"keystore-unknown-password".into()),
        "{without:?}"
    );
    assert!(without.contains(&"cert-expiring".into()), "{without:?}");

    write_policy(
        dir.path(),
        "keystore_passwords = [\"Zq8-very-unguessable\"]\nexpiry_warn_days = 7\n",
    );
    let with = rules(&scan_with_policy(dir.path(), &reference, &[]));
    assert!(with.contains(&"keystore-private-key".into()), "{with:?}");
    assert!(
        !with.contains(&"keystore-unknown-password".into()),
        "{with:?}"
    );
    assert!(!with.contains(&"cert-expiring".into()), "{with:?}");
    let flag = rules(&scan_with_policy(
        dir.path(),
        &reference,
        &["--expiry-warn", "30"],
    ));
    assert!(flag.contains(&"cert-expiring".into()), "{flag:?}");
}

#[test]
fn a_baseline_makes_only_new_findings_fail() {
    let dir = tempfile::tempdir().unwrap();
    let old = [
        ("app/tls.key", "keys/rsa-pkcs8.pem"),
        ("app/expired.pem", "certs/expired.pem"),
    ];
    let before = image(dir.path(), "before", &old);
    let mut grown = old.to_vec();
    grown.push(("app/new.key", "keys/ec-sec1.pem"));
    let after = image(dir.path(), "after", &grown);

    let baseline = scan_in(dir.path(), &before, &["--format", "json"]);
    assert_eq!(baseline.code, 1);
    fs_err::write(dir.path().join("baseline.json"), &baseline.stdout).unwrap();

    let same = scan_in(
        dir.path(),
        &before,
        &["--format", "json", "--baseline", "baseline.json"],
    );
    assert_eq!(same.code, 0, "nothing new: {}", same.stderr);
    assert_eq!(same.json()["summary"]["new"], 0);

    let run = scan_in(
        dir.path(),
        &after,
        &["--format", "json", "--baseline", "baseline.json"],
    );
    assert_eq!(run.code, 1, "the new key fails: {}", run.stderr);
    let report = run.json();
    assert_valid_report(&report);
    assert_eq!(finding(&report, "private-key", "/app/new.key")["new"], true);
    assert_eq!(
        finding(&report, "private-key", "/app/tls.key")["new"],
        false
    );
    assert_eq!(
        finding(&report, "cert-expired", "/app/expired.pem")["new"],
        false
    );
    assert_eq!(report["summary"]["new"], 1);

    let table = scan_in(dir.path(), &after, &["--baseline", "baseline.json"]);
    let new_line = table
        .stdout
        .lines()
        .find(|l| l.contains("[new]"))
        .expect("table marks new findings");
    assert!(new_line.contains("private-key"), "{}", table.stdout);

    let sarif = scan_in(
        dir.path(),
        &after,
        &["--format", "sarif", "--baseline", "baseline.json"],
    )
    .json();
    let states: Vec<&str> = sarif["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["baselineState"].as_str().unwrap())
        .collect();
    assert_eq!(
        states.iter().filter(|s| **s == "new").count(),
        1,
        "{states:?}"
    );

    let broken = scan_in(dir.path(), &after, &["--baseline", "Dockerfile.missing"]);
    assert_eq!(broken.code, 2);
    assert!(
        broken.stderr.contains("cannot read the baseline"),
        "{}",
        broken.stderr
    );
}
