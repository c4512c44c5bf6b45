//! Real components for the registry tests: Debian's `docker-registry` (CNCF distribution) in
//! plain, TLS + htpasswd and token-auth setups (optionally sending notifications), a token
//! server, a 429-injecting proxy, a scripted hostile registry, a webhook sink, PostgreSQL and
//! `ocicert serve` itself, each on a free 127.0.0.1 port, killed and reaped on drop.

#![allow(dead_code, unreachable_pub)]

use crate::common::require;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const USER: &str = "testuser";
pub const PASS: &str = "testpass";

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn support(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/support")
        .join(name)
}

fn run(program: &str, args: &[&str]) {
    let status = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect(program);
    assert!(status.success(), "{program} {args:?} failed");
}

/// Polls `url` with curl until it answers at all.
fn wait_ready(url: &str, children: &mut [Child]) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        let ok = Command::new("curl")
            .args(["-s", "-k", "-o", "/dev/null", "--max-time", "1", url])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok {
            return;
        }
        for child in children.iter_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("a test server exited early ({status}) while waiting for {url}");
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{url} did not come up");
}

/// A test PKI made with openssl: an EC P-256 CA (`ca.pem`, `ca.key`) and a server certificate
/// for `localhost` and 127.0.0.1 signed by it (`server.pem`, `server.key`).
pub struct Pki {
    pub dir: PathBuf,
}

impl Pki {
    pub fn create(dir: &Path, ca_subject: &str) -> Self {
        require("openssl", "openssl");
        fs_err::create_dir_all(dir).expect("mkdir");
        let pki = Self {
            dir: dir.to_path_buf(),
        };
        let p = |name: &str| pki.path(name);
        run(
            "openssl",
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &p("ca.key"),
                "-out",
                &p("ca.pem"),
                "-days",
                "30",
                "-subj",
                ca_subject,
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        run(
            "openssl",
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &p("server.key"),
                "-out",
                &p("server.csr"),
                "-subj",
                "/CN=localhost",
            ],
        );
        fs_err::write(dir.join("ext.cnf"), "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n").expect("write");
        run(
            "openssl",
            &[
                "x509",
                "-req",
                "-in",
                &p("server.csr"),
                "-CA",
                &p("ca.pem"),
                "-CAkey",
                &p("ca.key"),
                "-CAcreateserial",
                "-out",
                &p("server.pem"),
                "-days",
                "30",
                "-extfile",
                &p("ext.cnf"),
            ],
        );
        pki
    }

    pub fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

/// How the registry authenticates.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    Plain,
    TlsHtpasswd,
    Token,
}

pub struct Registry {
    children: Vec<Child>,
    pub port: u16,
    pub dir: tempfile::TempDir,
    /// The CA that signed the TLS certificate (TLS setup only).
    pub ca: Option<PathBuf>,
    pub setup: Setup,
}

impl Registry {
    pub fn start(setup: Setup) -> Self {
        Self::start_notifying(setup, &[], "")
    }

    /// A registry that sends its notifications to each of `endpoints` with
    /// `Authorization: Bearer <token>`.
    pub fn start_notifying(setup: Setup, endpoints: &[String], token: &str) -> Self {
        require("docker-registry", "docker-registry");
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let root = dir.path();
        let mut config = format!(
            "version: 0.1\nlog: {{level: warn}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\n  delete: {{enabled: true}}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            root.join("data").display()
        );
        let mut children = Vec::new();
        let mut ca = None;
        match setup {
            Setup::Plain => {}
            Setup::TlsHtpasswd => {
                require("htpasswd", "apache2-utils");
                require("openssl", "openssl");
                let pki = Pki::create(&root.join("pki"), "/CN=ocicert-test-ca");
                let htpasswd = Command::new("htpasswd")
                    .args(["-Bbn", USER, PASS])
                    .output()
                    .expect("htpasswd");
                fs_err::write(root.join("htpasswd"), htpasswd.stdout).expect("write");
                config.push_str(&format!(
                    "  tls: {{certificate: {}, key: {}}}\nauth:\n  htpasswd: {{realm: test-realm, path: {}}}\n",
                    pki.path("server.pem"),
                    pki.path("server.key"),
                    root.join("htpasswd").display()
                ));
                ca = Some(pki.dir.join("ca.pem"));
            }
            Setup::Token => {
                require("/usr/bin/python3", "python3-cryptography");
                let token_port = free_port();
                let key = root.join("token.key").display().to_string();
                let cert = root.join("token.crt").display().to_string();
                run(
                    "openssl",
                    &[
                        "req",
                        "-x509",
                        "-newkey",
                        "ec",
                        "-pkeyopt",
                        "ec_paramgen_curve:P-256",
                        "-nodes",
                        "-keyout",
                        &key,
                        "-out",
                        &cert,
                        "-days",
                        "30",
                        "-subj",
                        "/CN=token-signer",
                    ],
                );
                let server = Command::new("/usr/bin/python3")
                    .arg(support("tokenserver.py"))
                    .args([
                        &token_port.to_string(),
                        &key,
                        &cert,
                        "test-issuer",
                        &format!("{USER}:{PASS}"),
                    ])
                    .stdout(Stdio::null())
                    .stderr(Stdio::from(
                        fs_err::File::create(root.join("token.log"))
                            .expect("log")
                            .into_file(),
                    ))
                    .spawn()
                    .expect("token server");
                children.push(server);
                wait_ready(
                    &format!("http://127.0.0.1:{token_port}/token"),
                    &mut children,
                );
                config.push_str(&format!(
                    "auth:\n  token:\n    realm: http://127.0.0.1:{token_port}/token\n    service: test-registry\n    issuer: test-issuer\n    rootcertbundle: {cert}\n"
                ));
            }
        }
        if !endpoints.is_empty() {
            config.push_str("notifications:\n  events: {includereferences: true}\n  endpoints:\n");
            for (index, url) in endpoints.iter().enumerate() {
                config.push_str(&format!(
                    "    - name: scanner{index}\n      url: {url}\n      headers: {{Authorization: [Bearer {token}]}}\n      timeout: 2s\n      threshold: 5\n      backoff: 1s\n"
                ));
            }
        }
        fs_err::write(root.join("config.yml"), config).expect("write config");
        let registry = Command::new("docker-registry")
            .arg("serve")
            .arg(root.join("config.yml"))
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                fs_err::File::create(root.join("registry.log"))
                    .expect("log")
                    .into_file(),
            ))
            .spawn()
            .expect("docker-registry");
        children.push(registry);
        let scheme = if setup == Setup::TlsHtpasswd {
            "https"
        } else {
            "http"
        };
        wait_ready(&format!("{scheme}://127.0.0.1:{port}/v2/"), &mut children);
        Self {
            children,
            port,
            dir,
            ca,
            setup,
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// skopeo flags that make it trust and log in to this registry as a destination/source.
    fn skopeo_flags(&self, side: &str) -> Vec<String> {
        let mut flags = Vec::new();
        match self.setup {
            Setup::TlsHtpasswd => {
                let certs = self.dir.path().join("skopeo-certs");
                fs_err::create_dir_all(&certs).expect("mkdir");
                fs_err::copy(self.ca.as_ref().expect("ca"), certs.join("ca.crt")).expect("copy ca");
                flags.push(format!("--{side}-cert-dir={}", certs.display()));
            }
            _ => flags.push(format!("--{side}-tls-verify=false")),
        }
        if self.setup != Setup::Plain {
            flags.push(format!("--{side}-creds={USER}:{PASS}"));
        }
        flags
    }

    /// Pushes a local image with skopeo (`--all` platforms).
    pub fn push(&self, source: &str, repository: &str) -> String {
        let destination = format!("docker://{}/{repository}", self.host());
        let mut args = vec![
            "--insecure-policy".to_string(),
            "copy".into(),
            "--quiet".into(),
            "--all".into(),
        ];
        args.extend(self.skopeo_flags("dest"));
        args.push(source.into());
        args.push(destination.clone());
        let output = Command::new("skopeo").args(&args).output().expect("skopeo");
        assert!(
            output.status.success(),
            "skopeo push failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        destination
    }

    /// `skopeo inspect --raw`-free check that skopeo can read an image back; returns its digest.
    pub fn skopeo_inspect(&self, repository: &str) -> serde_json::Value {
        let mut args = vec!["inspect".to_string()];
        args.extend(
            self.skopeo_flags("src")
                .into_iter()
                .map(|f| f.replace("--src-", "--")),
        );
        args.push(format!("docker://{}/{repository}", self.host()));
        let output = Command::new("skopeo").args(&args).output().expect("skopeo");
        assert!(
            output.status.success(),
            "skopeo inspect failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("json")
    }

    /// The file that holds a blob in the registry's filesystem storage.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = &digest[7..];
        self.dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// ocicert flags to reach this registry.
    pub fn flags(&self) -> Vec<String> {
        match self.setup {
            Setup::Plain => vec!["--insecure".into()],
            Setup::TlsHtpasswd => vec![
                "--ca-file".into(),
                self.ca.as_ref().expect("ca").display().to_string(),
                "--creds".into(),
                format!("{USER}:{PASS}"),
            ],
            Setup::Token => vec![
                "--insecure".into(),
                "--creds".into(),
                format!("{USER}:{PASS}"),
            ],
        }
    }

    pub fn log(&self, name: &str) -> String {
        fs_err::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The 429-injecting proxy in front of an upstream.
pub struct FlakyProxy {
    child: Child,
    pub port: u16,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl FlakyProxy {
    pub fn start(upstream: &str, failures: u32) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let log = dir.path().join("proxy.log");
        let mut child = Command::new("/usr/bin/python3")
            .arg(support("flaky_proxy.py"))
            .args([&port.to_string(), upstream, &failures.to_string()])
            .stderr(Stdio::from(
                fs_err::File::create(&log).expect("log").into_file(),
            ))
            .spawn()
            .expect("proxy");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "proxy did not start"
            );
            assert!(child.try_wait().ok().flatten().is_none(), "proxy exited");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            port,
            log,
            _dir: dir,
        }
    }
}

impl Drop for FlakyProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `tests/support/hostile_registry.py`: a registry that misbehaves on purpose (the repository's
/// first component picks how), plus a token service on another port; both log every request.
pub struct HostileRegistry {
    child: Child,
    pub port: u16,
    /// The token service that the `realm*` modes send clients to.
    pub third_port: u16,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl HostileRegistry {
    /// Serves the image in `served` (`manifests/v1`, `manifests/v1.type`, `blobs/<digest>`,
    /// `first-layer`).
    pub fn start(served: &Path) -> Self {
        require("/usr/bin/python3", "python3");
        let dir = tempfile::tempdir().expect("tempdir");
        let (port, third_port) = (free_port(), free_port());
        let log = dir.path().join("requests.log");
        fs_err::write(&log, "").expect("log");
        let mut child = Command::new("/usr/bin/python3")
            .arg(support("hostile_registry.py"))
            .args([&port.to_string(), &third_port.to_string()])
            .arg(served)
            .arg(&log)
            .stderr(Stdio::from(
                fs_err::File::create(dir.path().join("stderr.log"))
                    .expect("log")
                    .into_file(),
            ))
            .spawn()
            .expect("hostile registry");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
            || std::net::TcpStream::connect(("127.0.0.1", third_port)).is_err()
        {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "hostile registry did not start"
            );
            assert!(
                child.try_wait().ok().flatten().is_none(),
                "hostile registry exited"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            port,
            third_port,
            log,
            _dir: dir,
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The requests logged so far, one per line.
    pub fn requests(&self) -> Vec<String> {
        fs_err::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for HostileRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `tests/support/hooksink.py`: stores every POST body it receives.
pub struct HookSink {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl HookSink {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let child = Command::new("/usr/bin/python3")
            .arg(support("hooksink.py"))
            .args([&port.to_string(), &dir.path().display().to_string()])
            .stderr(Stdio::null())
            .spawn()
            .expect("hooksink");
        let mut sink = Self { child, port, dir };
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "hooksink did not start"
            );
            assert!(
                sink.child.try_wait().ok().flatten().is_none(),
                "hooksink exited"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        sink
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/notify", self.port)
    }

    /// Every body received so far, in order.
    pub fn bodies(&self) -> Vec<serde_json::Value> {
        let mut files: Vec<PathBuf> = fs_err::read_dir(self.dir.path())
            .expect("read sink dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        files
            .iter()
            .filter_map(|p| serde_json::from_slice(&fs_err::read(p).ok()?).ok())
            .collect()
    }
}

impl Drop for HookSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A throwaway PostgreSQL 15 cluster (Debian `postgresql`), run as the `postgres` user.
pub struct Postgres {
    pub port: u16,
    dir: tempfile::TempDir,
}

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

impl Postgres {
    pub fn start() -> Self {
        require(&format!("{PG_BIN}/initdb"), "postgresql");
        require("runuser", "util-linux");
        require("pg_isready", "postgresql-client");
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().display().to_string();
        run("chown", &["postgres:", &root]);
        let port = free_port();
        let as_postgres = |args: &[&str]| {
            let output = Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .args(args)
                .output()
                .expect("runuser");
            assert!(
                output.status.success(),
                "{args:?} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        };
        as_postgres(&[
            &format!("{PG_BIN}/initdb"),
            "-D",
            &format!("{root}/pg"),
            "-A",
            "trust",
            "-U",
            "postgres",
        ]);
        as_postgres(&[
            &format!("{PG_BIN}/pg_ctl"),
            "-D",
            &format!("{root}/pg"),
            "-o",
            &format!("-p {port} -k {root} -c listen_addresses=127.0.0.1"),
            "-l",
            &format!("{root}/pg.log"),
            "-w",
            "start",
        ]);
        let start = Instant::now();
        while !Command::new("pg_isready")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "postgres did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Self { port, dir }
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let root = self.dir.path().display().to_string();
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--", &format!("{PG_BIN}/pg_ctl")])
            .args(["-D", &format!("{root}/pg"), "-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// `ocicert serve` started from the test binary on a free port, killed on drop.
pub struct Service {
    child: Option<Child>,
    pub port: u16,
    pub log: PathBuf,
}

impl Service {
    /// Starts `ocicert serve --config CONFIG --data-dir DATA` with extra arguments and env.
    pub fn start(
        config: &Path,
        data: &Path,
        port: u16,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let log = data.with_extension(format!("{port}.log"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_ocicert"));
        command
            .args(["-v", "serve", "--config"])
            .arg(config)
            .arg("--data-dir")
            .arg(data)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(extra)
            .env_remove("OCICERT_DATABASE")
            .env("OCICERT_HOOK_SECRET", "test-webhook-secret")
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                fs_err::File::create(&log).expect("log").into_file(),
            ));
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("ocicert serve");
        let start = Instant::now();
        loop {
            if http("GET", &format!("http://127.0.0.1:{port}/readyz"), &[], None).0 == 200 {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "ocicert serve exited ({status}): {}",
                    fs_err::read_to_string(&log).unwrap_or_default()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "ocicert serve did not come up"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Self {
            child: Some(child),
            port,
            log,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn log(&self) -> String {
        fs_err::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// One HTTP request with curl: (status, body).
pub fn http(method: &str, url: &str, headers: &[&str], body: Option<&[u8]>) -> (u16, String) {
    let mut command = Command::new("curl");
    command.args([
        "-s",
        "-o",
        "-",
        "-w",
        "\n%{http_code}",
        "--max-time",
        "10",
        "-X",
        method,
    ]);
    for header in headers {
        command.args(["-H", header]);
    }
    if body.is_some() {
        command.args(["--data-binary", "@-"]);
    }
    command
        .arg(url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut child = command.spawn().expect("curl");
    if let Some(body) = body {
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(body)
            .expect("write body");
    } else {
        drop(child.stdin.take());
    }
    let output = child.wait_with_output().expect("curl");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}
