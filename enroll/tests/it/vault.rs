//! Vault PKI against the test server that speaks Vault's documented JSON: token auth, Kubernetes
//! login with a service-account JWT file, and the auth / CA-refusal failure lines.

use ocicert_enroll_config::{Ca, EnrollConfig, VaultAuth, VaultOptions};
use serde_json::json;

use crate::support::*;

fn vault_config(mock: &Mock, out: &std::path::Path, role: &str) -> EnrollConfig {
    let mut options = VaultOptions::new(&mock.url(), role);
    options.ttl = Some("1h".into());
    let mut config = EnrollConfig::new(Ca::Vault(options));
    config.tls_ca_file = Some(mock.pki.ca_cert.clone());
    config.sans = vec![
        "${HOSTNAME}.vault.example.test".into(),
        "uri:spiffe://example.test/ns/default/sa/app".into(),
    ];
    config.output_dir = out.to_owned();
    config
}

fn mock(dir: &std::path::Path) -> Mock {
    Mock::start(
        dir,
        "vault",
        &json!({"token": "hvs.roottoken", "mount": "pki", "role": "web", "kube_role": "app", "kube_jwt": "eyJhbGciOiJSUzI1NiJ9.test.jwt"}),
    )
}

#[test]
fn token_auth_signs_the_csr() {
    let scratch = tempfile::tempdir().unwrap();
    let mock = mock(scratch.path());
    let out = scratch.path().join("out");
    let path = write_config(scratch.path(), &vault_config(&mock, &out, "web"));
    let output = run_stub(
        &path,
        &[("HOSTNAME", "api-1"), ("VAULT_TOKEN", "hvs.roottoken")],
    );
    assert_app_ran(&output, &out);
    let cert = out.join("cert.pem");
    assert!(openssl_x509(&cert, &["-subject"]).contains("CN = api-1.vault.example.test"));
    let sans = openssl_x509(&cert, &["-ext", "subjectAltName"]);
    assert!(
        sans.contains("URI:spiffe://example.test/ns/default/sa/app"),
        "{sans}"
    );
    let verify = openssl_verify(&out.join("ca.pem"), None, &cert);
    assert!(verify.status.success(), "{}", text(&verify.stderr));
    // A one-hour cert: notAfter - notBefore is the requested TTL (plus the mock's 5 s backdating).
    let end = openssl_x509(&cert, &["-checkend", "3500"]);
    assert!(end.contains("will not expire"), "{end}");
    let requests = mock.requests();
    let sign = requests.last().unwrap();
    assert_eq!(sign["path"], "/v1/pki/sign/web");
    assert_eq!(sign["content_type"], "application/json");
    assert_eq!(sign["has_token"], true);
    assert_eq!(
        sign["keys"],
        json!([
            "alt_names",
            "common_name",
            "csr",
            "format",
            "ip_sans",
            "ttl",
            "uri_sans"
        ])
    );

    // Wrong token: 403 permission denied -> auth. Unknown role: 400 -> CA refusal.
    let fresh = scratch.path().join("fresh");
    let path = write_config(scratch.path(), &vault_config(&mock, &fresh, "web"));
    let line = text(
        &run_stub(
            &path,
            &[("HOSTNAME", "api-1"), ("VAULT_TOKEN", "hvs.wrong")],
        )
        .stderr,
    );
    assert!(
        line.contains("(auth: Vault sign was refused: HTTP 403: permission denied)"),
        "{line}"
    );
    assert!(!line.contains("hvs.wrong"));
    let path = write_config(scratch.path(), &vault_config(&mock, &fresh, "nope"));
    let line = text(
        &run_stub(
            &path,
            &[("HOSTNAME", "api-1"), ("VAULT_TOKEN", "hvs.roottoken")],
        )
        .stderr,
    );
    assert!(
        line.contains("(CA refusal: Vault sign failed: HTTP 400: unknown role: nope)"),
        "{line}"
    );
    let line = text(&run_stub(&path, &[("HOSTNAME", "api-1")]).stderr);
    assert!(
        line.contains("(secret: no Vault token: set `VAULT_TOKEN` (or `VAULT_TOKEN_FILE`))"),
        "{line}"
    );
}

#[test]
fn kubernetes_login() {
    let scratch = tempfile::tempdir().unwrap();
    let mock = mock(scratch.path());
    let out = scratch.path().join("out");
    let jwt = scratch.path().join("token");
    std::fs::write(&jwt, "eyJhbGciOiJSUzI1NiJ9.test.jwt\n").unwrap();
    let mut config = vault_config(&mock, &out, "web");
    let Ca::Vault(vault) = &mut config.ca else {
        unreachable!()
    };
    vault.auth = VaultAuth::Kubernetes;
    vault.kubernetes_role = Some("app".into());
    vault.jwt_file = jwt.clone();
    let path = write_config(scratch.path(), &config);
    let output = run_stub(&path, &[("HOSTNAME", "api-2")]);
    assert_app_ran(&output, &out);
    let requests = mock.requests();
    assert_eq!(requests[0]["path"], "/v1/auth/kubernetes/login");
    assert_eq!(requests[0]["keys"], json!(["jwt", "role"]));
    assert_eq!(requests[0]["has_token"], false);
    assert_eq!(requests[1]["has_token"], true);

    std::fs::write(&jwt, "forged").unwrap();
    let Ca::Vault(vault) = &mut config.ca else {
        unreachable!()
    };
    vault.jwt_file = jwt;
    config.output_dir = scratch.path().join("fresh");
    let line = text(
        &run_stub(
            &write_config(scratch.path(), &config),
            &[("HOSTNAME", "api-2")],
        )
        .stderr,
    );
    assert!(
        line.contains("(auth: Vault login was refused: HTTP 403: permission denied)"),
        "{line}"
    );
}
