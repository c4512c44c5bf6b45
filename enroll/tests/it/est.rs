//! EST (RFC 7030) against the protocol-exact test server: HTTP Basic, TLS client-cert auth, a
//! CA label with a 202 + Retry-After, every key type, and the auth failure line.

use ocicert_enroll_config::{Ca, EnrollConfig, EstOptions, KeyType};
use serde_json::json;

use crate::support::*;

fn est_config(mock: &Mock, out: &std::path::Path) -> EnrollConfig {
    let mut config = EnrollConfig::new(Ca::Est(EstOptions::new(&mock.url())));
    config.tls_ca_file = Some(mock.pki.ca_cert.clone());
    config.sans = vec!["${POD_NAME}.est.example.test".into(), "10.9.8.7".into()];
    config.output_dir = out.to_owned();
    config
}

const BASIC: [(&str, &str); 3] = [
    ("POD_NAME", "web-0"),
    ("OCICERT_EST_USERNAME", "estuser"),
    ("OCICERT_EST_PASSWORD", "estpass"),
];

#[test]
fn basic_auth_enrollment_follows_rfc7030() {
    let scratch = tempfile::tempdir().unwrap();
    let mock = Mock::start(
        scratch.path(),
        "est",
        &json!({"users": ["estuser:estpass"]}),
    );
    let out = scratch.path().join("out");
    let config_path = write_config(scratch.path(), &est_config(&mock, &out));
    let output = run_stub(&config_path, &BASIC);
    assert_app_ran(&output, &out);
    let sans = openssl_x509(&out.join("cert.pem"), &["-ext", "subjectAltName"]);
    assert!(
        sans.contains("DNS:web-0.est.example.test") && sans.contains("IP Address:10.9.8.7"),
        "{sans}"
    );
    // ca.pem is what /cacerts returned, and the cert chains to it.
    let verify = openssl_verify(&out.join("ca.pem"), None, &out.join("cert.pem"));
    assert!(verify.status.success(), "{}", text(&verify.stderr));
    let requests = mock.requests();
    assert_eq!(requests[0]["path"], "/.well-known/est/cacerts");
    assert_eq!(requests[0]["accept"], "application/pkcs7-mime");
    let enroll = &requests[1];
    assert_eq!(enroll["path"], "/.well-known/est/simpleenroll");
    assert_eq!(enroll["content_type"], "application/pkcs10");
    assert_eq!(enroll["cte"], "base64");
    assert_eq!(enroll["basic"], true);
    assert!(!text(&output.stderr).contains("estpass"));

    let fresh = est_config(&mock, &scratch.path().join("out2"));
    let wrong = run_stub(
        &write_config(scratch.path(), &fresh),
        &[
            ("POD_NAME", "web-0"),
            ("OCICERT_EST_USERNAME", "estuser"),
            ("OCICERT_EST_PASSWORD", "nope"),
        ],
    );
    assert_eq!(wrong.status.code(), Some(70));
    let line = text(&wrong.stderr);
    assert_eq!(line.lines().count(), 1);
    assert!(
        line.contains("(auth: EST simpleenroll was refused: HTTP 401"),
        "{line}"
    );
    assert!(!line.contains("nope"));
}

#[test]
fn client_certificate_auth_label_and_pending() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    // The client CA is the EST CA itself, so the bootstrap identity is issued by it.
    let mock = Mock::start(
        dir,
        "est",
        &json!({"users": [], "client_ca": dir.join("est-ca.pem"), "label": "workloads", "pending_once": true}),
    );
    let (cert_path, key_path) = (dir.join("client.pem"), dir.join("client.key"));
    openssl(
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=bootstrap-device",
        ],
        &[("-keyout", &key_path), ("-out", &dir.join("client.csr"))],
    );
    let extensions = dir.join("client.ext");
    std::fs::write(
        &extensions,
        "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    // A v1 certificate (no extensions) must be refused with a message, not a panic.
    openssl(
        &["x509", "-req", "-days", "1", "-CAcreateserial"],
        &[
            ("-in", &dir.join("client.csr")),
            ("-CA", &mock.pki.ca_cert),
            ("-CAkey", &mock.pki.ca_key),
            ("-out", &dir.join("client-v1.pem")),
        ],
    );
    openssl(
        &["x509", "-req", "-days", "1", "-CAcreateserial"],
        &[
            ("-extfile", &extensions),
            ("-in", &dir.join("client.csr")),
            ("-CA", &mock.pki.ca_cert),
            ("-CAkey", &mock.pki.ca_key),
            ("-out", &cert_path),
        ],
    );

    let out = dir.join("out");
    let mut config = est_config(&mock, &out);
    let Ca::Est(est) = &mut config.ca else {
        unreachable!()
    };
    est.label = Some("workloads".into());
    let config_path = write_config(dir, &config);
    let (cert_text, key_text) = (cert_path.to_string_lossy(), key_path.to_string_lossy());
    let v1_text = dir.join("client-v1.pem").to_string_lossy().into_owned();
    let v1 = run_stub(
        &config_path,
        &[
            ("POD_NAME", "web-1"),
            ("OCICERT_EST_CLIENT_CERT", &v1_text),
            ("OCICERT_EST_CLIENT_KEY", &key_text),
        ],
    );
    assert_eq!(v1.status.code(), Some(70));
    assert!(
        text(&v1.stderr).contains("(secret: cannot use the EST client certificate"),
        "{}",
        text(&v1.stderr)
    );
    assert!(
        text(&v1.stderr).contains("not an X.509 v3 certificate"),
        "{}",
        text(&v1.stderr)
    );
    let output = run_stub(
        &config_path,
        &[
            ("POD_NAME", "web-1"),
            ("OCICERT_EST_CLIENT_CERT", &cert_text),
            ("OCICERT_EST_CLIENT_KEY", &key_text),
        ],
    );
    assert_app_ran(&output, &out);
    let requests = mock.requests();
    let enrolls: Vec<_> = requests.iter().filter(|r| r["method"] == "POST").collect();
    assert_eq!(enrolls.len(), 2, "202 then 200: {requests:?}");
    for request in enrolls {
        assert_eq!(request["path"], "/.well-known/est/workloads/simpleenroll");
        assert_eq!(request["basic"], false);
        assert_eq!(request["client_cert"], "CN=bootstrap-device");
    }

    // Without the client identity (and no password) the server says 401.
    let mut fresh = config.clone();
    fresh.output_dir = dir.join("out2");
    let output = run_stub(&write_config(dir, &fresh), &[("POD_NAME", "web-1")]);
    assert!(
        text(&output.stderr).contains("(auth: EST simpleenroll was refused: HTTP 401"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn every_key_type() {
    let scratch = tempfile::tempdir().unwrap();
    let mock = Mock::start(
        scratch.path(),
        "est",
        &json!({"users": ["estuser:estpass"]}),
    );
    for (key_type, expected) in [
        (KeyType::EcdsaP256, "prime256v1"),
        (KeyType::EcdsaP384, "secp384r1"),
        (KeyType::Ed25519, "ED25519"),
        (KeyType::Rsa2048, "(2048 bit)"),
        (KeyType::Rsa3072, "(3072 bit)"),
    ] {
        let out = scratch.path().join(format!("{key_type:?}"));
        let mut config = est_config(&mock, &out);
        config.key_type = key_type;
        let output = run_stub(&write_config(scratch.path(), &config), &BASIC);
        assert_app_ran(&output, &out);
        let details = openssl_x509(&out.join("cert.pem"), &["-text"]);
        assert!(details.contains(expected), "{key_type:?}: {details}");
        let key = std::process::Command::new("openssl")
            .arg("pkey")
            .arg("-in")
            .arg(out.join("key.pem"))
            .arg("-noout")
            .status()
            .unwrap();
        assert!(
            key.success(),
            "{key_type:?} key file is not readable PKCS#8"
        );
    }
}

fn openssl(args: &[&str], paths: &[(&str, &std::path::Path)]) {
    let mut command = std::process::Command::new("openssl");
    command.args(args);
    for (flag, path) in paths {
        command.arg(flag).arg(path);
    }
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        text(&output.stderr)
    );
}
