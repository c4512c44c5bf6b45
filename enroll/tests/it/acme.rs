//! ACME against Debian's pebble: templated SANs, badNonce retries (rejection left on), reuse on a
//! second start, External Account Binding, real http-01 validation with pebble-challtestsrv as
//! DNS, and the one-line failure causes.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;

use ocicert_enroll_config::{AcmeOptions, Ca, EnrollConfig};

use crate::support::*;

fn acme_config(pebble: &Pebble, out: &std::path::Path, sans: &[&str]) -> EnrollConfig {
    let mut config = EnrollConfig::new(Ca::Acme(AcmeOptions::new(&pebble.directory_url())));
    config.tls_ca_file = Some(pebble.pki.ca_cert.clone());
    config.sans = sans.iter().map(|san| (*san).to_owned()).collect();
    config.output_dir = out.to_owned();
    config
}

#[test]
fn issues_for_templated_sans_through_nonce_rejection_then_reuses() {
    let scratch = tempfile::tempdir().unwrap();
    // 30% of good nonces rejected (pebble's default is 5%): every enrollment meets badNonce.
    let options = PebbleOptions {
        always_valid: true,
        nonce_reject: Some(30),
        ..Default::default()
    };
    let pebble = Pebble::start(&scratch.path().join("pebble"), &options);
    let out = scratch.path().join("out");
    let config = acme_config(
        &pebble,
        &out,
        &[
            "${POD_NAME}.web.svc.example",
            "${HOSTNAME}",
            "app.example.test",
        ],
    );
    let config_path = write_config(scratch.path(), &config);
    let env = [("POD_NAME", "web-0"), ("HOSTNAME", "Web-7F9C")];

    let first = run_stub(&config_path, &env);
    assert_app_ran(&first, &out);
    let stderr = text(&first.stderr);
    assert_eq!(stderr.lines().count(), 1, "one log line: {stderr}");
    assert!(stderr.contains("enrolled with acme"), "{stderr}");
    let cert = out.join("cert.pem");
    let sans = openssl_x509(&cert, &["-ext", "subjectAltName"]);
    for name in [
        "DNS:web-0.web.svc.example",
        "DNS:web-7f9c",
        "DNS:app.example.test",
    ] {
        assert!(sans.contains(name), "{sans}");
    }
    assert!(openssl_x509(&cert, &["-subject"]).contains("web-0.web.svc.example"));
    // The chain pebble returned leads to the root from its management port.
    let root = pebble.root_pem();
    let verify = openssl_verify(&root, Some(&out.join("chain.pem")), &cert);
    assert!(verify.status.success(), "{}", text(&verify.stderr));
    assert_eq!(
        std::fs::metadata(out.join("key.pem"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert!(!stderr.contains("PRIVATE KEY") && !text(&first.stdout).contains("PRIVATE KEY"));

    // Second start: same cert, no CA contact, even with the CA gone.
    let before = std::fs::read(&cert).unwrap();
    drop(pebble);
    let second = run_stub(&config_path, &env);
    assert_app_ran(&second, &out);
    assert!(
        text(&second.stderr).contains("reusing the certificate"),
        "{}",
        text(&second.stderr)
    );
    assert_eq!(std::fs::read(&cert).unwrap(), before);

    // A new SAN in the config is not covered by the stored cert: the stub enrolls (and, with
    // the CA down and enrollment required, fails).
    let mut more = config.clone();
    more.sans.push("extra.example.test".into());
    let more_path = write_config(scratch.path(), &more);
    let third = run_stub(&more_path, &env);
    assert_eq!(third.status.code(), Some(70), "{}", text(&third.stderr));
}

#[test]
fn external_account_binding() {
    let scratch = tempfile::tempdir().unwrap();
    let hmac = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W";
    let options = PebbleOptions {
        always_valid: true,
        nonce_reject: Some(0),
        eab: BTreeMap::from([("kid-1".to_owned(), hmac.to_owned())]),
        ..Default::default()
    };
    let pebble = Pebble::start(&scratch.path().join("pebble"), &options);
    let out = scratch.path().join("out");
    let config_path = write_config(
        scratch.path(),
        &acme_config(&pebble, &out, &["eab.example.test"]),
    );

    let missing = run_stub(&config_path, &[]);
    assert_eq!(missing.status.code(), Some(70));
    let line = text(&missing.stderr);
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(
        line.contains("(auth:") && line.contains("externalAccountRequired"),
        "{line}"
    );

    let wrong = run_stub(
        &config_path,
        &[
            ("OCICERT_ACME_EAB_KID", "kid-1"),
            ("OCICERT_ACME_EAB_HMAC", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        ],
    );
    assert_eq!(wrong.status.code(), Some(70));
    assert!(
        text(&wrong.stderr).contains("(auth:"),
        "{}",
        text(&wrong.stderr)
    );

    // The HMAC from a mounted secret file (`<NAME>_FILE`), the key id from the env.
    let secret = scratch.path().join("eab-hmac");
    std::fs::write(&secret, format!("{hmac}\n")).unwrap();
    let secret_text = secret.to_string_lossy().into_owned();
    let good = run_stub(
        &config_path,
        &[
            ("OCICERT_ACME_EAB_KID", "kid-1"),
            ("OCICERT_ACME_EAB_HMAC_FILE", &secret_text),
        ],
    );
    assert_app_ran(&good, &out);
    assert!(!text(&good.stderr).contains(hmac));
}

#[test]
fn real_http01_validation_with_challtestsrv_dns() {
    let scratch = tempfile::tempdir().unwrap();
    let (_dns, dns_port) = challtestsrv(scratch.path());
    let options = PebbleOptions {
        always_valid: false,
        nonce_reject: Some(0),
        dns_port: Some(dns_port),
        ..Default::default()
    };
    let pebble = Pebble::start(&scratch.path().join("pebble"), &options);
    let out = scratch.path().join("out");
    let mut config = acme_config(&pebble, &out, &["real.example.test"]);
    let Ca::Acme(acme) = &mut config.ca else {
        unreachable!()
    };
    acme.http01_port = pebble.http_port;
    acme.http01_bind = "127.0.0.1".into();
    let config_path = write_config(scratch.path(), &config);
    let output = run_stub(&config_path, &[]);
    assert_app_ran(&output, &out);
    let log = pebble.daemon.log_text();
    assert!(
        log.contains(&format!(
            "http://real.example.test:{}/.well-known/acme-challenge/",
            pebble.http_port
        )),
        "pebble did not validate over http-01: {log}"
    );
    let verify = openssl_verify(
        &pebble.root_pem(),
        Some(&out.join("chain.pem")),
        &out.join("cert.pem"),
    );
    assert!(verify.status.success(), "{}", text(&verify.stderr));
}

#[test]
fn failure_causes_and_optional_mode() {
    let scratch = tempfile::tempdir().unwrap();
    let pebble = Pebble::start(
        &scratch.path().join("pebble"),
        &PebbleOptions {
            always_valid: true,
            nonce_reject: Some(0),
            ..Default::default()
        },
    );
    let out = scratch.path().join("out");
    let base = acme_config(&pebble, &out, &["down.example.test"]);

    // Nothing listens: required -> exit 70 and one line; optional -> the app starts without env.
    let mut down = base.clone();
    down.ca = Ca::Acme(AcmeOptions::new(&format!(
        "https://127.0.0.1:{}/dir",
        free_port()
    )));
    let path = write_config(scratch.path(), &down);
    let required = run_stub(&path, &[]);
    assert_eq!(required.status.code(), Some(70));
    let line = text(&required.stderr);
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(
        line.starts_with("ocicert-enroll: enrollment failed (connection: GET https://127.0.0.1:"),
        "{line}"
    );
    assert!(text(&required.stdout).is_empty(), "the app must not run");

    down.required = false;
    let path = write_config(scratch.path(), &down);
    let optional = run_stub(&path, &[]);
    assert!(optional.status.success());
    assert!(
        text(&optional.stdout).contains("cert= key= ca= chain= args=first arg second"),
        "{}",
        text(&optional.stdout)
    );
    assert!(text(&optional.stderr).contains("starting the program without a certificate"));

    // The CA's TLS certificate does not chain to the configured bundle.
    let other = Pki::new(&scratch.path().join("other"), "other");
    let mut untrusted = base.clone();
    untrusted.tls_ca_file = Some(other.ca_cert.clone());
    let line = text(&run_stub(&write_config(scratch.path(), &untrusted), &[]).stderr);
    assert!(
        line.contains("(TLS trust: GET https://127.0.0.1:") && line.contains("UnknownIssuer"),
        "{line}"
    );

    // The host name does not resolve.
    let mut dns = base.clone();
    dns.ca = Ca::Acme(AcmeOptions::new("https://acme.nonexistent.invalid/dir"));
    let line = text(&run_stub(&write_config(scratch.path(), &dns), &[]).stderr);
    assert!(
        line.contains("(DNS: GET https://acme.nonexistent.invalid/dir"),
        "{line}"
    );

    // A SAN template naming an unset variable.
    let mut template = base.clone();
    template.sans = vec!["${POD_NAME}.svc".into()];
    let line = text(&run_stub(&write_config(scratch.path(), &template), &[]).stderr);
    assert!(
        line.contains("(config: SAN template `${POD_NAME}.svc` uses `POD_NAME`, which is not set)"),
        "{line}"
    );

    // A wildcard needs dns-01, which a stub cannot answer.
    let mut wildcard = base;
    wildcard.sans = vec!["*.wild.example.test".into()];
    let output = run_stub(&write_config(scratch.path(), &wildcard), &[]);
    assert_eq!(output.status.code(), Some(70));
    let line = text(&output.stderr);
    assert!(
        line.contains("(protocol: ACME offers no http-01 challenge for"),
        "{line}"
    );
}
