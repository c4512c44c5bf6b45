//! Real components for the stub's protocol tests: Debian `pebble` (ACME) and
//! `pebble-challtestsrv` (as DNS), the EST and Vault test servers (`tests/support/pkimock.py`),
//! a test PKI made with rcgen, and a builder for running the stub. Every daemon listens on a free
//! 127.0.0.1 port and is killed and reaped on drop.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ocicert_enroll_config::EnrollConfig;

/// Fails (not skips) with the package to install: a skipped test would hide a broken install.
pub fn require(program: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    assert!(
        found,
        "`{program}` is missing: install the Debian package `{package}` (scripts/test does)"
    );
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

pub fn support_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/support")
        .join(name)
}

/// A child process killed and reaped on drop.
pub struct Daemon {
    pub name: &'static str,
    child: Child,
    pub log: PathBuf,
}

impl Daemon {
    pub fn spawn(name: &'static str, command: &mut Command, log: PathBuf) -> Self {
        let file = std::fs::File::create(&log).unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {name}: {error}"));
        Self { name, child, log }
    }

    /// Waits until `port` accepts connections.
    pub fn wait_port(&mut self, port: u16) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited early ({status}): {}", self.name, self.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "{} did not listen on {port}: {}",
            self.name,
            self.log_text()
        );
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A test CA and a server certificate for `localhost` / `127.0.0.1`, as PEM files.
pub struct Pki {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

impl Pki {
    pub fn new(dir: &Path, name: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("{name} test CA"));
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
        let server_key = rcgen::KeyPair::generate().unwrap();
        let mut server_params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .unwrap();
        server_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "localhost");
        server_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();
        let pki = Self {
            ca_cert: dir.join(format!("{name}-ca.pem")),
            ca_key: dir.join(format!("{name}-ca.key")),
            server_cert: dir.join(format!("{name}-server.pem")),
            server_key: dir.join(format!("{name}-server.key")),
        };
        std::fs::write(&pki.ca_cert, ca_cert.pem()).unwrap();
        std::fs::write(&pki.ca_key, ca_key.serialize_pem()).unwrap();
        std::fs::write(&pki.server_cert, server_cert.pem()).unwrap();
        std::fs::write(&pki.server_key, server_key.serialize_pem()).unwrap();
        pki
    }
}

/// pebble's knobs.
#[derive(Clone, Default)]
pub struct PebbleOptions {
    /// `PEBBLE_VA_ALWAYS_VALID=1` (skip real validation).
    pub always_valid: bool,
    /// `PEBBLE_WFE_NONCEREJECT`: `None` keeps pebble's default (5% of good nonces rejected).
    pub nonce_reject: Option<u8>,
    /// EAB keys: kid → base64url HMAC; non-empty makes EAB required.
    pub eab: BTreeMap<String, String>,
    /// `-dnsserver 127.0.0.1:PORT`.
    pub dns_port: Option<u16>,
}

pub struct Pebble {
    pub daemon: Daemon,
    pub port: u16,
    pub management_port: u16,
    /// The port pebble's validator connects to for http-01.
    pub http_port: u16,
    pub pki: Pki,
    pub dir: PathBuf,
}

impl Pebble {
    pub fn start(dir: &Path, options: &PebbleOptions) -> Self {
        require("pebble", "pebble");
        std::fs::create_dir_all(dir).unwrap();
        let pki = Pki::new(dir, "pebble");
        let (port, management_port, http_port, tls_port) =
            (free_port(), free_port(), free_port(), free_port());
        let mut pebble = serde_json::json!({
            "listenAddress": format!("127.0.0.1:{port}"),
            "managementListenAddress": format!("127.0.0.1:{management_port}"),
            "certificate": pki.server_cert, "privateKey": pki.server_key,
            "httpPort": http_port, "tlsPort": tls_port, "ocspResponderURL": "",
            "externalAccountBindingRequired": !options.eab.is_empty(),
        });
        if !options.eab.is_empty() {
            pebble["externalAccountMACKeys"] = serde_json::json!(options.eab);
        }
        let config = dir.join("pebble.json");
        std::fs::write(&config, serde_json::json!({ "pebble": pebble }).to_string()).unwrap();
        let mut command = Command::new("pebble");
        command
            .arg("-config")
            .arg(&config)
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_AUTHZREUSE", "0");
        if options.always_valid {
            command.env("PEBBLE_VA_ALWAYS_VALID", "1");
        }
        if let Some(percent) = options.nonce_reject {
            command.env("PEBBLE_WFE_NONCEREJECT", percent.to_string());
        }
        if let Some(dns) = options.dns_port {
            command.arg("-dnsserver").arg(format!("127.0.0.1:{dns}"));
        }
        let mut daemon = Daemon::spawn("pebble", &mut command, dir.join("pebble.log"));
        daemon.wait_port(port);
        daemon.wait_port(management_port);
        Self {
            daemon,
            port,
            management_port,
            http_port,
            pki,
            dir: dir.to_owned(),
        }
    }

    pub fn directory_url(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.port)
    }

    /// pebble's issuing root (regenerated at every start), from the management port.
    pub fn root_pem(&self) -> PathBuf {
        let path = self.dir.join("pebble-root.pem");
        let output = Command::new("curl")
            .args(["-sf", "--cacert"])
            .arg(&self.pki.ca_cert)
            .arg(format!(
                "https://127.0.0.1:{}/roots/0",
                self.management_port
            ))
            .output()
            .unwrap();
        assert!(output.status.success(), "cannot fetch pebble's root");
        std::fs::write(&path, &output.stdout).unwrap();
        path
    }
}

/// `pebble-challtestsrv` as a DNS server answering 127.0.0.1 for every name.
pub fn challtestsrv(dir: &Path) -> (Daemon, u16) {
    require("pebble-challtestsrv", "pebble");
    let (dns, management) = (free_port(), free_port());
    let mut command = Command::new("pebble-challtestsrv");
    command.args([
        "-defaultIPv4",
        "127.0.0.1",
        "-defaultIPv6",
        "",
        "-http01",
        "",
        "-https01",
        "",
        "-tlsalpn01",
        "",
    ]);
    command.arg("-dns01").arg(format!("127.0.0.1:{dns}"));
    command
        .arg("-management")
        .arg(format!("127.0.0.1:{management}"));
    let mut daemon = Daemon::spawn(
        "pebble-challtestsrv",
        &mut command,
        dir.join("challtestsrv.log"),
    );
    daemon.wait_port(management);
    (daemon, dns)
}

/// The EST or Vault test server (`tests/support/pkimock.py`).
pub struct Mock {
    pub daemon: Daemon,
    pub port: u16,
    pub pki: Pki,
    pub requests: PathBuf,
}

impl Mock {
    /// `settings` is merged into the server's config (see the script's docstring).
    pub fn start(dir: &Path, mode: &str, settings: &serde_json::Value) -> Self {
        require("/usr/bin/python3", "python3-cryptography");
        std::fs::create_dir_all(dir).unwrap();
        let pki = Pki::new(dir, mode);
        let port = free_port();
        let requests = dir.join(format!("{mode}-requests.jsonl"));
        let mut config = serde_json::json!({
            "mode": mode, "port": port,
            "tls_cert": pki.server_cert, "tls_key": pki.server_key,
            "ca_cert": pki.ca_cert, "ca_key": pki.ca_key, "log": requests,
        });
        if let (Some(config), Some(settings)) = (config.as_object_mut(), settings.as_object()) {
            config.extend(settings.clone());
        }
        let config_path = dir.join(format!("{mode}-mock.json"));
        std::fs::write(&config_path, config.to_string()).unwrap();
        let mut command = Command::new("/usr/bin/python3");
        command.arg(support_file("pkimock.py")).arg(&config_path);
        let mut daemon = Daemon::spawn(
            "pkimock.py",
            &mut command,
            dir.join(format!("{mode}-mock.log")),
        );
        daemon.wait_port(port);
        Self {
            daemon,
            port,
            pki,
            requests,
        }
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// Every request the server logged.
    pub fn requests(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.requests)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }
}

/// The stub built by cargo for this test run (host target).
pub fn stub_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ocicert-enroll"))
}

/// Writes `config` to `dir/enroll.json`.
pub fn write_config(dir: &Path, config: &EnrollConfig) -> PathBuf {
    let path = dir.join("enroll.json");
    std::fs::write(&path, config.to_json()).unwrap();
    path
}

/// The program the tests wrap: prints what the app sees.
pub const SHOW_ENV: &str = r#"echo "cert=$OCICERT_CERT_FILE key=$OCICERT_KEY_FILE ca=$OCICERT_CA_FILE chain=$OCICERT_CHAIN_FILE args=$*"; test -z "$OCICERT_CERT_FILE" || head -1 "$OCICERT_CERT_FILE""#;

/// Runs the stub with a clean environment (`PATH` plus `env`), wrapping `sh -c SHOW_ENV app a b`.
pub fn run_stub(config: &Path, env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(stub_binary());
    command
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .envs(env.iter().copied())
        .arg("--config")
        .arg(config)
        .args([
            "--",
            "/bin/sh",
            "-c",
            SHOW_ENV,
            "app",
            "first arg",
            "second",
        ]);
    command.output().unwrap()
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `openssl x509 -noout -ext subjectAltName` etc. of the first certificate of `pem`.
pub fn openssl_x509(pem: &Path, args: &[&str]) -> String {
    let output = Command::new("openssl")
        .args(["x509", "-noout", "-in"])
        .arg(pem)
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "openssl x509 failed: {}",
        text(&output.stderr)
    );
    text(&output.stdout)
}

/// `openssl verify -CAfile root -untrusted chain cert`.
pub fn openssl_verify(root: &Path, chain: Option<&Path>, cert: &Path) -> Output {
    let mut command = Command::new("openssl");
    command.arg("verify").arg("-CAfile").arg(root);
    if let Some(chain) = chain {
        command.arg("-untrusted").arg(chain);
    }
    command.arg(cert).output().unwrap()
}

/// Asserts the stub succeeded and the app saw the four env vars.
pub fn assert_app_ran(output: &Output, out_dir: &Path) {
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    assert!(
        output.status.success(),
        "stub failed: {stderr}\nstdout: {stdout}"
    );
    let expected = format!(
        "cert={0}/cert.pem key={0}/key.pem ca={0}/ca.pem chain={0}/chain.pem args=first arg second",
        out_dir.display()
    );
    assert!(
        stdout.contains(&expected),
        "app output: {stdout}\nstderr: {stderr}"
    );
    assert!(stdout.contains("-----BEGIN CERTIFICATE-----"), "{stdout}");
}
