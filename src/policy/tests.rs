//! The policy file end to end: parsing, validation messages, and applying it to findings.

use super::*;

const FINGERPRINT: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

#[test]
fn parses_a_complete_policy() {
    let policy = parse(
        "ocicert.toml",
        &format!(
            r#"
fail_on = "medium"
expiry_warn_days = 45
keystore_passwords = ["corp-pass"]
trusted_roots = ["{}"]

[severity]
cert-expiring = "medium"

[[allow]]
rule = "private-key"
path = "opt/test/**"
reason = "test fixture"
expires = 2026-12-31

[[allow]]
fingerprint = "{FINGERPRINT}"
reason = "known"
expires = "2027-01-31"
"#,
            FINGERPRINT.to_uppercase().replace("SHA256:", "")
        ),
    )
    .unwrap();
    assert_eq!(policy.fail_on, Some(FailOn::Medium));
    assert_eq!(policy.expiry_warn_days, Some(45));
    assert_eq!(policy.keystore_passwords, ["corp-pass"]);
    assert_eq!(policy.trusted_roots, [FINGERPRINT]);
    assert_eq!(
        policy.severity.get(&Rule::CertExpiring),
        Some(&Severity::Medium)
    );
    assert_eq!(policy.allow.len(), 2);
    assert_eq!(policy.allow[0].line, 10);
    assert_eq!(
        policy.allow[1].expires.map(date_text).as_deref(),
        Some("2027-01-31")
    );
    let finding = |rule: Rule, path: Option<&str>, field: Option<&str>| {
        Finding::new(
            rule,
            String::new(),
            crate::finding::Location {
                path: path.map(str::to_string),
                config_field: field.map(str::to_string),
                in_final_image: true,
                ..crate::finding::Location::default()
            },
            FINGERPRINT.to_string(),
        )
    };
    let allow = &policy.allow[0];
    assert!(allow.matches(&finding(Rule::PrivateKey, Some("/opt/test/a/b.key"), None)));
    assert!(!allow.matches(&finding(Rule::PrivateKey, Some("/opt/other/b.key"), None)));
    assert!(!allow.matches(&finding(Rule::CaPrivateKey, Some("/opt/test/b.key"), None)));
    // Only the fingerprint matters for the second entry.
    assert!(policy.allow[1].matches(&finding(Rule::CertExpired, Some("/x"), None)));
    let config = parse(
            "p.toml",
            "[[allow]]\npath = \"config.Env*\"\nreason = \"r\"\n[[allow]]\npath = \"/app/*.jar!/**\"\nreason = \"r\"\n",
        )
        .unwrap();
    assert!(config.allow[0].matches(&finding(Rule::PrivateKey, None, Some("config.Env[1]"))));
    let mut nested = finding(Rule::PrivateKey, Some("/app/app.jar"), None);
    nested.location.archive_path = Some("META-INF/x.key".into());
    assert!(config.allow[1].matches(&nested));
}

#[test]
fn reports_every_problem_with_line_and_column() {
    let text = r#"fail_on = "hgh"
expiry_warn_days = "soon"
colour = "blue"
trusted_roots = ["sha256:nothex"]

[severity]
private-kye = "low"
cert-expired = "urgent"

[[allow]]
rule = "private-key"
path = "/opt/[z-a]"
expires = 2026-02-30

[[allow]]
reason = "matches everything"
"#;
    let Err(Error::Invalid { problems, .. }) = parse("ocicert.toml", text) else {
        panic!("invalid policy accepted");
    };
    let found: Vec<(usize, usize, &str)> = problems
        .iter()
        .map(|p| (p.line, p.column, p.message.as_str()))
        .collect();
    let lines: Vec<usize> = found.iter().map(|(line, _, _)| *line).collect();
    assert_eq!(lines, [1, 2, 3, 4, 7, 8, 10, 12, 13, 15], "{found:#?}");
    assert_eq!(found[0].1, 11);
    assert!(found[0].2.contains("unknown severity `hgh`"));
    assert!(found[2].2.contains("unknown key `colour`"));
    assert!(found[4].2.contains("unknown rule `private-kye`"));
    assert!(found[6].2.contains("no `reason`"), "{found:#?}");
    assert!(found[7].2.contains("not a valid glob"));
    assert!(found[8].2.contains("date"), "{found:#?}");
    assert!(found[9].2.contains("matches everything"));
    let message = Error::Invalid {
        path: "ocicert.toml".into(),
        problems,
    }
    .to_string();
    assert!(message.starts_with("the policy file `ocicert.toml` has 10 problems:"));
    assert!(message.contains("\n  ocicert.toml:1:11: unknown severity `hgh`"));
}

#[test]
fn syntax_errors_have_positions_too() {
    let Err(Error::Invalid { problems, .. }) = parse("p.toml", "fail_on = \"high\"\nbad = [\n")
    else {
        panic!("accepted broken TOML");
    };
    assert_eq!(problems[0].line, 2, "{problems:?}");
}

#[test]
fn fingerprints_normalise() {
    let colons = "AB:".repeat(31) + "AB";
    assert_eq!(
        normalize_fingerprint(&colons),
        Some(format!("sha256:{}", "ab".repeat(32)))
    );
    assert_eq!(normalize_fingerprint("sha256:abc"), None);
}

#[test]
fn owners_and_public_origins_select_package_findings() {
    let policy = parse(
        "ocicert.toml",
        r#"
public_origins = ["acme.example"]

[severity]
package-key = "info"

[[allow]]
owner = "dpkg:libgnutls*"
owner_integrity = "verified"
reason = "GnuTLS self-test keys"
"#,
    )
    .unwrap();
    assert_eq!(policy.public_origins, ["acme.example"]);
    assert_eq!(
        policy.severity.get(&Rule::PackageKey),
        Some(&Severity::Info)
    );
    let finding = |name: &str, integrity| {
        let owner = crate::packages::Owner {
            ecosystem: crate::packages::Ecosystem::Dpkg,
            name: name.into(),
            version: "1".into(),
            origin: None,
            integrity,
            compiled_from: None,
        };
        Finding::new(
            Rule::PrivateKey,
            String::new(),
            crate::finding::Location {
                path: Some("/usr/lib/x".into()),
                in_final_image: true,
                owner: Some(owner),
                ..crate::finding::Location::default()
            },
            FINGERPRINT.to_string(),
        )
    };
    use crate::packages::Integrity::{Modified, Verified};
    assert!(policy.allow[0].matches(&finding("libgnutls30", Verified)));
    assert!(!policy.allow[0].matches(&finding("libgnutls30", Modified)));
    assert!(!policy.allow[0].matches(&finding("openssl", Verified)));
    let mut unowned = finding("libgnutls30", Verified);
    unowned.location.owner = None;
    assert!(!policy.allow[0].matches(&unowned), "no owner, no match");

    let error = parse(
        "ocicert.toml",
        "[[allow]]\nowner_integrity = \"pristine\"\nreason = \"x\"\n",
    )
    .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("expected verified, modified or unrecorded"),
        "{error}"
    );
}

#[test]
fn only_a_path_allows_a_known_public_key() {
    let policy = parse(
        "ocicert.toml",
        &format!(
            r#"
[[allow]]
fingerprint = "{FINGERPRINT}"
reason = "tornado's test key"

[[allow]]
rule = "known-public-key"
fingerprint = "{FINGERPRINT}"
reason = "still by fingerprint"

[[allow]]
path = "/srv/demo/**"
reason = "the demo server uses the published key on purpose"
"#
        ),
    )
    .unwrap();
    let finding = |rule, path: &str| {
        Finding::new(
            rule,
            String::new(),
            crate::finding::Location {
                path: Some(path.into()),
                in_final_image: true,
                ..crate::finding::Location::default()
            },
            FINGERPRINT.to_string(),
        )
    };
    let copy = finding(Rule::KnownPublicKey, "/app/config/tls.key");
    assert!(!policy.allow[0].matches(&copy));
    assert!(!policy.allow[1].matches(&copy));
    assert!(!policy.allow[2].matches(&copy));
    assert!(policy.allow[0].matches(&finding(Rule::PackageKey, "/app/config/tls.key")));
    assert!(policy.allow[2].matches(&finding(Rule::KnownPublicKey, "/srv/demo/tls.key")));
}
