//! Process behaviour: running as a non-root user, an unwritable output dir, exact argv and exec
//! (the app replaces the stub), and `--renew` (signal forwarding, zombie reaping, renewal at the
//! threshold with SIGHUP to the app) against the Vault test server's short-lived certificates.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::os::unix::process::CommandExt as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ocicert_enroll_config::{Ca, EnrollConfig, VaultOptions};
use serde_json::json;

use crate::support::*;

const NOBODY: u32 = 65534;

fn vault(dir: &std::path::Path) -> Mock {
    Mock::start(
        dir,
        "vault",
        &json!({"token": "hvs.t", "mount": "pki", "role": "web"}),
    )
}

fn config(mock: &Mock, out: &std::path::Path, ttl: &str) -> EnrollConfig {
    let mut options = VaultOptions::new(&mock.url(), "web");
    options.ttl = Some(ttl.into());
    let mut config = EnrollConfig::new(Ca::Vault(options));
    config.tls_ca_file = Some(mock.pki.ca_cert.clone());
    config.sans = vec!["app.example.test".into()];
    config.output_dir = out.to_owned();
    config
}

#[test]
fn runs_as_non_root_and_explains_an_unwritable_dir() {
    let scratch = tempfile::tempdir().unwrap();
    std::fs::set_permissions(scratch.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mock = vault(scratch.path());
    let out = scratch.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::os::unix::fs::chown(&out, Some(NOBODY), Some(NOBODY)).unwrap();
    let path = write_config(scratch.path(), &config(&mock, &out, "1h"));
    // The build's binary may sit under a directory nobody cannot enter (a checkout in a
    // `mktemp -d` directory is 0700), so the app's user runs it through a link in the scratch
    // dir. A hard link, not a copy where it can be helped: a file this process just wrote can
    // be "busy" for exec while another test thread forks.
    let stub = scratch.path().join("ocicert-enroll");
    if std::fs::hard_link(stub_binary(), &stub).is_err() {
        std::fs::copy(stub_binary(), &stub).unwrap();
    }
    let run_as_nobody = |path: &std::path::Path| {
        Command::new(&stub)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("VAULT_TOKEN", "hvs.t")
            .uid(NOBODY)
            .gid(NOBODY)
            .arg("--config")
            .arg(path)
            .args([
                "--",
                "/bin/sh",
                "-c",
                &format!("id -u; {SHOW_ENV}"),
                "app",
                "first arg",
                "second",
            ])
            .output()
            .unwrap()
    };
    let output = run_as_nobody(&path);
    assert_app_ran(&output, &out);
    assert!(text(&output.stdout).starts_with("65534\n"));
    let key = std::fs::metadata(out.join("key.pem")).unwrap();
    assert_eq!((key.uid(), key.mode() & 0o777), (NOBODY, 0o600));

    // A root-owned output dir is not writable for the app's user.
    let locked = scratch.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    let path = write_config(scratch.path(), &config(&mock, &locked, "1h"));
    let output = run_as_nobody(&path);
    assert_eq!(output.status.code(), Some(70));
    let line = text(&output.stderr);
    assert!(
        line.contains("(output dir: cannot write `")
            && line.contains("permission denied: the output dir must be writable"),
        "{line}"
    );
}

#[test]
fn execs_the_program_in_place() {
    let scratch = tempfile::tempdir().unwrap();
    let mock = vault(scratch.path());
    let out = scratch.path().join("out");
    let path = write_config(scratch.path(), &config(&mock, &out, "1h"));
    // `$$` of the app is the stub's pid: exec, not a child.
    let child = Command::new(stub_binary())
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("VAULT_TOKEN", "hvs.t")
        .arg("--config")
        .arg(&path)
        .args([
            "--",
            "/bin/sh",
            "-c",
            "echo $$; printf '<%s>' \"$@\"",
            "sh",
            "",
            "a b",
            "*",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let output = child.wait_with_output().unwrap();
    assert_eq!(text(&output.stdout), format!("{pid}\n<><a b><*>"));

    let missing = Command::new(stub_binary())
        .env_clear()
        .env("VAULT_TOKEN", "hvs.t")
        .arg("--config")
        .arg(&path)
        .args(["--", "/nonexistent/app"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(127));
    assert!(text(&missing.stderr).contains("cannot exec `/nonexistent/app`"));
}

const RENEW_APP: &str = r#"
trap 'echo "reloaded $(md5sum < "$OCICERT_CERT_FILE" | cut -c1-12)"' HUP
trap 'echo terminating; exit 3' TERM
(sleep 3 &)
echo "started $(md5sum < "$OCICERT_CERT_FILE" | cut -c1-12)"
while :; do sleep 0.1; done
"#;

#[test]
fn renew_mode_renews_signals_reaps_and_forwards() {
    let scratch = tempfile::tempdir().unwrap();
    let mock = vault(scratch.path());
    let out = scratch.path().join("out");
    // 6 s certificates (the mock backdates notBefore by 5 s): due at 2/3 of the 11 s lifetime.
    let path = write_config(scratch.path(), &config(&mock, &out, "6s"));
    let log = scratch.path().join("app.log");
    let stub = Command::new(stub_binary())
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("VAULT_TOKEN", "hvs.t")
        .arg("--config")
        .arg(&path)
        .args(["--renew", "--", "/bin/sh", "-c", RENEW_APP])
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stub_pid = stub.id();

    // The orphaned `sleep 3` is re-parented to the stub (child subreaper)…
    std::thread::sleep(Duration::from_millis(1500));
    let children = children_of(stub_pid);
    assert!(
        children.iter().any(|(_, _, name)| name == "sleep"),
        "no re-parented orphan: {children:?}"
    );
    // …and reaped when it exits: no zombie stays behind.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(14) {
        let output = std::fs::read_to_string(&log).unwrap_or_default();
        if output.matches("reloaded").count() >= 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let zombies: Vec<_> = children_of(stub_pid)
        .into_iter()
        .filter(|(_, state, _)| state == "Z")
        .collect();
    assert!(zombies.is_empty(), "zombies: {zombies:?}");

    // SIGTERM to the init reaches the app, whose exit status becomes the init's.
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(stub_pid as i32).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let output = stub.wait_with_output().unwrap();
    let app = std::fs::read_to_string(&log).unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "app: {app}\nstub: {stderr}");
    let hashes: Vec<&str> = app
        .lines()
        .filter_map(|line| {
            line.strip_prefix("started ")
                .or_else(|| line.strip_prefix("reloaded "))
        })
        .collect();
    assert!(
        hashes.len() >= 3,
        "expected a start and two renewals: {app}\n{stderr}"
    );
    let mut unique = hashes.clone();
    unique.dedup();
    assert_eq!(
        unique.len(),
        hashes.len(),
        "each SIGHUP follows a new certificate: {app}"
    );
    assert!(app.trim_end().ends_with("terminating"), "{app}");
    assert!(
        stderr.matches("renewed the certificate").count() >= 2,
        "{stderr}"
    );
}

/// (pid, state, comm) of every process whose parent is `parent`.
fn children_of(parent: u32) -> Vec<(u32, String, String)> {
    let mut children = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid …
        let Some((head, tail)) = stat.rsplit_once(") ") else {
            continue;
        };
        let name = head
            .split_once(" (")
            .map(|(_, name)| name.to_owned())
            .unwrap_or_default();
        let mut fields = tail.split(' ');
        let state = fields.next().unwrap_or_default().to_owned();
        if fields.next().and_then(|ppid| ppid.parse::<u32>().ok()) == Some(parent) {
            children.push((pid, state, name));
        }
    }
    children
}

#[test]
fn renew_mode_uses_est_simplereenroll_with_the_current_certificate() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let mock = Mock::start(
        dir,
        "est",
        &json!({"users": ["u:p"], "client_ca": dir.join("est-ca.pem"), "validity_seconds": 4}),
    );
    let out = dir.join("out");
    let mut config =
        EnrollConfig::new(Ca::Est(ocicert_enroll_config::EstOptions::new(&mock.url())));
    config.tls_ca_file = Some(mock.pki.ca_cert.clone());
    config.sans = vec!["reenroll.example.test".into()];
    config.output_dir = out.clone();
    config.renew.enabled = true;
    config.renew.signal = "SIGUSR1".into();
    let path = write_config(dir, &config);
    let log = dir.join("app.log");
    let stub = Command::new(stub_binary())
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("OCICERT_EST_USERNAME", "u")
        .env("OCICERT_EST_PASSWORD", "p")
        .arg("--config")
        .arg(&path)
        .args([
            "--",
            "/bin/sh",
            "-c",
            "trap 'echo usr1' USR1; trap 'exit 0' TERM; while :; do sleep 0.1; done",
        ])
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(15)
        && !std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("usr1")
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(stub.id() as i32).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let output = stub.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(
        std::fs::read_to_string(&log).unwrap().contains("usr1"),
        "{}",
        text(&output.stderr)
    );
    let requests = mock.requests();
    let reenroll = requests
        .iter()
        .find(|request| request["path"] == "/.well-known/est/simplereenroll")
        .unwrap_or_else(|| panic!("no simplereenroll: {requests:?}"));
    assert_eq!(reenroll["client_cert"], "CN=reenroll.example.test");
}

#[test]
fn enrollment_secrets_do_not_reach_the_app_unless_the_config_says_so() {
    let scratch = tempfile::tempdir().unwrap();
    let mock = vault(scratch.path());
    let out = scratch.path().join("out");
    let mut settings = config(&mock, &out, "1h");
    let run = |path: &std::path::Path, renew: bool| {
        let mut command = Command::new(stub_binary());
        command
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("VAULT_TOKEN", "hvs.t")
            .arg("--config")
            .arg(path);
        if renew {
            command.arg("--renew");
        }
        let output = command
            .args([
                "--",
                "/bin/sh",
                "-c",
                "echo \"token=${VAULT_TOKEN:-removed} cert=${OCICERT_CERT_FILE:+set}\"",
            ])
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", text(&output.stderr));
        text(&output.stdout)
    };
    let path = write_config(scratch.path(), &settings);
    assert_eq!(run(&path, false), "token=removed cert=set\n", "exec'd app");
    assert_eq!(
        run(&path, true),
        "token=removed cert=set\n",
        "app under --renew"
    );
    settings.keep_secret_env = true;
    let path = write_config(scratch.path(), &settings);
    assert_eq!(run(&path, false), "token=hvs.t cert=set\n");
}
