//! Owners from real package databases: a debootstrap Debian 12 image (its dpkg database written
//! by dpkg itself), with layers on top that plant keys where a package would not.

use crate::common::*;
use crate::rootfs::debian_rootfs_tar;
use serde_json::{Value, json};

/// The stock image of issue 31: minbase plus what a typical service image installs.
const STOCK: [&str; 4] = ["ca-certificates", "curl", "openssl", "python3-certifi"];

/// The rules a private key can raise.
const KEY_RULES: [&str; 9] = [
    "ca-private-key",
    "identity-key-pair",
    "private-key",
    "private-key-encrypted",
    "keystore-private-key",
    "build-generated-key",
    "package-key",
    "package-default-key",
    "known-public-key",
];

/// An OCI layout with the debootstrap rootfs as its base layer and `extra` layers on top.
fn debian_image(packages: &[&str], extra: &[Vec<Entry>], dir: &std::path::Path) -> String {
    let rootfs = debian_rootfs_tar(packages);
    let mut blobs = vec![Blob {
        bytes: fs_err::read(&rootfs).unwrap(),
        media_type: "application/vnd.oci.image.layer.v1.tar",
    }];
    blobs.extend(extra.iter().map(|entries| gz_layer(entries)));
    let mut layout = Layout::new(&dir.join("layout"));
    let descriptor = layout.image(
        &blobs,
        json!({"config": {"Cmd": ["/bin/bash"]}}),
        ("linux", "amd64"),
    );
    layout.tag(descriptor, "stock").write();
    format!("oci:{}:stock", dir.join("layout").display())
}

/// (ecosystem, name, integrity)
type OwnerKey = (String, String, String);

fn owner_of(location: &Value) -> Option<OwnerKey> {
    let owner = location.get("owner")?;
    Some((
        owner["ecosystem"].as_str()?.to_string(),
        owner["name"].as_str()?.to_string(),
        owner["integrity"].as_str()?.to_string(),
    ))
}

#[test]
fn every_gnutls_self_test_key_is_owned_by_libgnutls30_and_verified() {
    let dir = tempfile::tempdir().unwrap();
    let reference = debian_image(&STOCK, &[], dir.path());
    let run = scan_json(&reference, &[]);
    let report = run.json();
    let image = &report["images"][0];
    let gnutls: Vec<&Value> = image["inventory"]["keys"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|key| key["locations"].as_array().unwrap())
        .filter(|l| {
            l["path"]
                .as_str()
                .is_some_and(|p| p.contains("/libgnutls.so.30"))
        })
        .collect();
    assert_eq!(gnutls.len(), 10, "{}", run.stderr);
    // The default gate (high) passes: GnuTLS's self-test keys are public package material.
    assert_eq!(run.code, 0, "{}", run.stderr);
    let all = image["findings"].as_array().unwrap();
    let above_low: Vec<&Value> = all
        .iter()
        .filter(|f| !["low", "info"].contains(&f["severity"].as_str().unwrap()))
        .collect();
    assert!(above_low.is_empty(), "nothing above low: {above_low:?}");
    // Removed roots: one finding per store, each naming its count.
    let removed: Vec<&str> = all
        .iter()
        .filter(|f| f["rule"] == "removed-trust-anchor")
        .map(|f| f["location"]["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        removed,
        [
            "/etc/ssl/certs/ca-certificates.crt",
            "/usr/lib/python3/dist-packages/certifi/cacert.pem",
            "/usr/share/ca-certificates/mozilla"
        ]
    );
    let gnutls_findings: Vec<&Value> = image["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| {
            f["location"]["path"]
                .as_str()
                .is_some_and(|p| p.contains("/libgnutls.so.30"))
        })
        .collect();
    assert_eq!(gnutls_findings.len(), 10);
    for finding in gnutls_findings {
        assert_eq!(finding["rule"], "package-key", "{finding}");
        assert_eq!(finding["severity"], "low", "{finding}");
        let message = finding["message"].as_str().unwrap();
        assert!(
            message.contains("ships unchanged in dpkg package libgnutls30 3.7.9-2+deb12u"),
            "{message}"
        );
    }
    for location in gnutls {
        assert_eq!(
            owner_of(location),
            Some(("dpkg".into(), "libgnutls30".into(), "verified".into())),
            "{location}"
        );
        let version = location["owner"]["version"].as_str().unwrap();
        assert!(version.starts_with("3.7.9-2+deb12u"), "{version}");
    }
    // The table groups repeats: the stock image fits on one screen; --show-all lists each.
    let table = ocicert(&["scan", &reference, "--now", NOW]);
    let lines = table.stdout.lines().count();
    assert!(lines <= 40, "{lines} lines:\n{}", table.stdout);
    assert!(
        table.stdout.contains("(and 9 more like it)"),
        "{}",
        table.stdout
    );
    let all = ocicert(&["scan", &reference, "--now", NOW, "--show-all"]);
    assert_eq!(
        all.stdout
            .matches("ships unchanged in dpkg package libgnutls30")
            .count(),
        10,
        "{}",
        all.stdout
    );
    // Every output names the owner: SARIF result properties, CBOM properties and occurrences,
    // Markdown's table.
    let sarif = ocicert(&["scan", &reference, "--now", NOW, "--format", "sarif"]).json();
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert!(
        results
            .iter()
            .any(|r| r["properties"]["owner"]["name"] == "libgnutls30"),
        "{results:?}"
    );
    let cbom = ocicert(&["scan", &reference, "--now", NOW, "--format", "cyclonedx"]);
    assert!(
        cbom.stdout.contains("\"ocicert:owner\"")
            && cbom
                .stdout
                .contains("owned by dpkg:libgnutls30 3.7.9-2+deb12u"),
        "{}",
        cbom.stdout
    );
    let markdown = ocicert(&["scan", &reference, "--now", NOW, "--format", "markdown"]);
    assert!(
        markdown
            .stdout
            .contains("owner `dpkg:libgnutls30 3.7.9-2+deb12u"),
        "{}",
        markdown.stdout
    );
    // The bundle update-ca-certificates generated is in no package's file list.
    let bundle = image["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["location"]["path"] == "/etc/ssl/certs/ca-certificates.crt")
        .expect("a finding in the generated bundle");
    assert_eq!(owner_of(&bundle["location"]), None);
}

#[test]
fn keys_planted_on_top_of_packages_are_not_the_packages() {
    let dir = tempfile::tempdir().unwrap();
    let key = fixture("keys/ec-sec1.pem");
    let planted = vec![
        // Overwrites a file openssl's package lists and checksums.
        Entry::File("usr/lib/ssl/misc/tsget.pl", key.clone()),
        // In a directory of a package, but in no file list.
        Entry::File("usr/lib/ssl/misc/extra.pem", key.clone()),
        Entry::File("app/tls/server.key", key),
    ];
    let local_deb = local_deb_layer(dir.path());
    let reference = debian_image(&STOCK, &[planted, local_deb], dir.path());
    let run = scan_json(&reference, &[]);
    assert_eq!(
        run.code, 1,
        "the planted keys fail the gate: {}",
        run.stderr
    );
    let report = run.json();
    let planted: Vec<(String, &Value)> = report["images"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["location"]["layer_index"].as_u64() >= Some(1))
        .map(|f| (f["location"]["path"].as_str().unwrap().to_string(), f))
        .collect();
    let finding = |path: &str| {
        planted
            .iter()
            .find(|(p, _)| p == path)
            .unwrap_or_else(|| panic!("no finding at {path}: {planted:?}"))
            .1
    };
    let check = |path: &str, owner: Option<OwnerKey>, reason: &str| {
        let found = finding(path);
        assert_eq!(owner_of(&found["location"]), owner, "{found}");
        assert_eq!(
            (found["rule"].as_str(), found["severity"].as_str()),
            (Some("private-key"), Some("high")),
            "{found}"
        );
        let message = found["message"].as_str().unwrap();
        assert!(message.contains(reason), "{path}: {message}");
    };
    check(
        "/usr/lib/ssl/misc/tsget.pl",
        Some(("dpkg".into(), "openssl".into(), "modified".into())),
        "the file differs from what dpkg package openssl",
    );
    check(
        "/usr/lib/ssl/misc/extra.pem",
        None,
        "in the directory of package openssl",
    );
    check("/app/tls/server.key", None, "private key");
    check(
        "/opt/acme/agent.key",
        Some(("dpkg".into(), "acme-agent".into(), "verified".into())),
        "comes from ACME Platform <platform@acme.example>, not a public distribution",
    );

    // A team that runs its own archive says so, and then its packages' keys are public too: a
    // key file outside tests and code is a default its service may load.
    let policy = dir.path().join("ocicert.toml");
    fs_err::write(&policy, "public_origins = [\"acme.example\"]\n").unwrap();
    let run = scan_json(&reference, &["--policy", policy.to_str().unwrap()]);
    let report = run.json();
    let agent = report["images"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["location"]["path"] == "/opt/acme/agent.key")
        .unwrap();
    assert_eq!(agent["rule"], "package-default-key", "{agent}");
}

/// A layer as `dpkg -i` of a locally built package leaves it: the package's file, and dpkg's
/// database with the package added (dpkg itself writes it, into a copy of the base's).
fn local_deb_layer(dir: &std::path::Path) -> Vec<Entry> {
    require("dpkg-deb", "dpkg");
    let package = dir.join("acme-agent");
    fs_err::create_dir_all(package.join("DEBIAN")).unwrap();
    fs_err::create_dir_all(package.join("opt/acme")).unwrap();
    fs_err::write(
        package.join("DEBIAN/control"),
        "Package: acme-agent\nVersion: 1.0\nArchitecture: all\n\
         Maintainer: ACME Platform <platform@acme.example>\nDescription: internal agent\n",
    )
    .unwrap();
    let key = fixture("keys/ec-sec1.pem");
    fs_err::write(package.join("opt/acme/agent.key"), &key).unwrap();
    let md5 = format!(
        "{}  opt/acme/agent.key\n",
        ocicert::packages::FileDigests::of(&key).md5
    );
    fs_err::write(package.join("DEBIAN/md5sums"), md5).unwrap();
    let deb = dir.join("acme-agent.deb");
    let built = std::process::Command::new("dpkg-deb")
        .args(["--build", "--root-owner-group"])
        .arg(&package)
        .arg(&deb)
        .output()
        .unwrap();
    assert!(built.status.success(), "{built:?}");
    let root = dir.join("dpkg-root");
    fs_err::create_dir_all(&root).unwrap();
    let rootfs = debian_rootfs_tar(&STOCK);
    let unpacked = std::process::Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-xf")
        .arg(&rootfs)
        .arg("./var/lib/dpkg")
        .status()
        .unwrap();
    assert!(unpacked.success());
    let installed = std::process::Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .args([
            "--force-not-root",
            "--force-bad-path",
            "--log=/dev/null",
            "-i",
        ])
        .arg(&deb)
        .output()
        .unwrap();
    assert!(installed.status.success(), "{installed:?}");
    let read = |path: &str| fs_err::read(root.join(path)).unwrap();
    vec![
        Entry::File("var/lib/dpkg/status", read("var/lib/dpkg/status")),
        Entry::File(
            "var/lib/dpkg/info/acme-agent.list",
            read("var/lib/dpkg/info/acme-agent.list"),
        ),
        Entry::File(
            "var/lib/dpkg/info/acme-agent.md5sums",
            read("var/lib/dpkg/info/acme-agent.md5sums"),
        ),
        Entry::File("opt/acme/agent.key", read("opt/acme/agent.key")),
    ]
}

/// Stock plus openssh-server, whose install script made three host keys, and python3-twisted,
/// which ships test keys and certificates.
#[test]
fn ssh_host_keys_are_build_generated_and_packaged_test_keys_are_low() {
    let dir = tempfile::tempdir().unwrap();
    let mut packages = STOCK.to_vec();
    // debootstrap does not resolve virtual packages: python3-bcrypt needs the cffi backend named.
    packages.extend(["openssh-server", "python3-cffi-backend", "python3-twisted"]);
    let reference = debian_image(&packages, &[], dir.path());
    let run = scan_json(&reference, &[]);
    let report = run.json();
    let findings = report["images"][0]["findings"].as_array().unwrap();
    let high: Vec<(&str, &str)> = findings
        .iter()
        .filter(|f| f["severity"] == "high" || f["severity"] == "critical")
        .map(|f| {
            (
                f["rule"].as_str().unwrap(),
                f["location"]["path"].as_str().unwrap(),
            )
        })
        .collect();
    let mut host_keys: Vec<&str> = high.iter().map(|(_, path)| *path).collect();
    host_keys.sort_unstable();
    assert_eq!(
        host_keys,
        [
            "/etc/ssh/ssh_host_ecdsa_key",
            "/etc/ssh/ssh_host_ed25519_key",
            "/etc/ssh/ssh_host_rsa_key"
        ],
        "{high:?}"
    );
    assert!(high.iter().all(|(rule, _)| *rule == "build-generated-key"));
    let twisted: Vec<&Value> = findings
        .iter()
        .filter(|f| {
            f["location"]["path"]
                .as_str()
                .is_some_and(|p| p.contains("/twisted/"))
                && f["rule"].as_str().is_some_and(|r| KEY_RULES.contains(&r))
        })
        .collect();
    assert!(!twisted.is_empty(), "python3-twisted ships test keys");
    // Byte code py3compile made at install time is in no list: owned through its source.
    assert!(
        twisted
            .iter()
            .any(|f| f["location"]["owner"]["compiled_from"]
                .as_str()
                .is_some_and(|s| s.ends_with("/keydata.py"))),
        "{twisted:?}"
    );
    for finding in twisted {
        assert_eq!(
            (finding["rule"].as_str(), finding["severity"].as_str()),
            (Some("package-key"), Some("low")),
            "{finding}"
        );
        assert_eq!(
            owner_of(&finding["location"]).map(|o| o.1),
            Some("python3-twisted".to_string())
        );
    }
}

/// Debian's jetty9 installs a demo keystore that its `ssl` module loads: a working default that
/// every installation shares, not test material.
#[test]
fn jettys_demo_keystore_is_a_package_default_key() {
    let dir = tempfile::tempdir().unwrap();
    let reference = debian_image(&["jetty9"], &[], dir.path());
    let run = scan_json(&reference, &["--fail-on", "never"]);
    let report = run.json();
    let keystore: Vec<&Value> = report["images"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| {
            f["location"]["path"] == "/usr/share/jetty9/modules/ssl/keystore"
                && f["rule"].as_str().is_some_and(|r| KEY_RULES.contains(&r))
        })
        .collect();
    assert_eq!(keystore.len(), 2, "its two demo keys: {keystore:?}");
    for finding in keystore {
        assert_eq!(finding["rule"], "package-default-key", "{finding}");
        assert_eq!(finding["severity"], "medium", "{finding}");
        assert_eq!(
            owner_of(&finding["location"]),
            Some(("dpkg".into(), "jetty9".into(), "verified".into())),
            "{finding}"
        );
        assert!(
            finding["message"]
                .as_str()
                .unwrap()
                .contains("make sure no service uses it"),
            "{finding}"
        );
    }
}

/// Tornado's test key, taken from the wheel on PyPI and copied into an image that does not
/// install tornado: the curated list (`src/known-public-keys.txt`) still names where it is
/// published.
#[test]
fn a_listed_published_key_is_known_without_its_package_in_the_image() {
    require("python3", "python3");
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("python3")
        .args(["-m", "pip", "download", "--quiet", "--no-deps"])
        .args(["--disable-pip-version-check", "tornado==6.4.2", "-d"])
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let wheel = fs_err::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .unwrap();
    let key = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read('tornado/test/test.key'))",
        ])
        .arg(&wheel)
        .output()
        .unwrap();
    assert!(key.status.success());
    let mut layout = Layout::new(&dir.path().join("layout"));
    let descriptor = layout.image(
        &[gz_layer(&[Entry::File("srv/tls/server.key", key.stdout)])],
        json!({}),
        ("linux", "amd64"),
    );
    layout.tag(descriptor, "app").write();
    let reference = format!("oci:{}:app", dir.path().join("layout").display());
    let report = scan_json(&reference, &[]).json();
    let finding = &report["images"][0]["findings"][0];
    assert_eq!(
        (finding["rule"].as_str(), finding["severity"].as_str()),
        (Some("known-public-key"), Some("critical")),
        "{finding}"
    );
    let message = finding["message"].as_str().unwrap();
    assert!(
        message.contains("tornado") && message.contains("/tornado/test/test.key"),
        "{message}"
    );
}

/// A venv with a wheel pip installed from PyPI (Twisted, which ships test keys) and a wheel
/// built here and installed from its file (pip records that in direct_url.json); on top, a
/// copy of Twisted's test key in /app and in the configuration's environment.
#[test]
fn pip_installed_wheels_are_owned_and_only_the_index_ones_are_public() {
    require("python3", "python3");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("venv-layer");
    let venv = root.join("opt/venv");
    let run = |program: &std::path::Path, args: &[&str]| {
        let output = std::process::Command::new(program)
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{} {args:?}: {}{}",
            program.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    };
    run(
        std::path::Path::new("python3"),
        &["-m", "venv", venv.to_str().unwrap()],
    );
    let pip = venv.join("bin/pip");
    run(
        &pip,
        &[
            "install",
            "--no-deps",
            "--disable-pip-version-check",
            "twisted==24.11.0",
        ],
    );
    // A company's own wheel: a zip with the key, its metadata and RECORD.
    let wheel = dir.path().join("acme_agent-0.1-py3-none-any.whl");
    let key = String::from_utf8(fixture("keys/ec-sec1.pem")).unwrap();
    let script = r#"
import base64, hashlib, sys, zipfile
files = {
    "acme_agent/__init__.py": "",
    "acme_agent/agent.key": sys.argv[2],
    "acme_agent-0.1.dist-info/METADATA": "Metadata-Version: 2.1\nName: acme-agent\nVersion: 0.1\n",
    "acme_agent-0.1.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
record = ""
for name, text in files.items():
    digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
    record += f"{name},sha256={digest},{len(text.encode())}\n"
record += "acme_agent-0.1.dist-info/RECORD,,\n"
with zipfile.ZipFile(sys.argv[1], "w") as z:
    for name, text in files.items():
        z.writestr(name, text)
    z.writestr("acme_agent-0.1.dist-info/RECORD", record)
"#;
    run(
        std::path::Path::new("python3"),
        &["-c", script, wheel.to_str().unwrap(), &key],
    );
    run(
        &pip,
        &[
            "install",
            "--no-deps",
            "--disable-pip-version-check",
            wheel.to_str().unwrap(),
        ],
    );
    let layer = dir.path().join("venv.tar");
    let packed = std::process::Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&layer)
        .arg("opt")
        .status()
        .unwrap();
    assert!(packed.success());

    // Twisted's test key and certificate, copied to get TLS going: to /app and into the
    // configuration's environment.
    let site = fs_err::read_dir(venv.join("lib"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
        .join("site-packages");
    let published = fs_err::read(site.join("twisted/test/server.pem")).unwrap();
    let copy = gz_layer(&[Entry::File("app/config/tls.key", published.clone())]);
    let env = format!("TLS_KEY={}", String::from_utf8(published).unwrap());

    let rootfs = debian_rootfs_tar(&STOCK);
    let mut blobs: Vec<Blob> = [&rootfs, &layer]
        .map(|path| Blob {
            bytes: fs_err::read(path).unwrap(),
            media_type: "application/vnd.oci.image.layer.v1.tar",
        })
        .into();
    blobs.push(copy);
    let mut layout = Layout::new(&dir.path().join("layout"));
    let descriptor = layout.image(
        &blobs,
        json!({"config": {"Env": [env]}}),
        ("linux", "amd64"),
    );
    layout.tag(descriptor, "venv").write();
    let reference = format!("oci:{}:venv", dir.path().join("layout").display());
    let run = scan_json(&reference, &[]);
    let report = run.json();
    let findings = report["images"][0]["findings"].as_array().unwrap();
    let keys: Vec<&Value> = findings
        .iter()
        .filter(|f| {
            f["location"]["path"]
                .as_str()
                .is_some_and(|p| p.starts_with("/opt/venv/"))
                && f["rule"].as_str().is_some_and(|r| KEY_RULES.contains(&r))
        })
        .collect();
    let (agent, twisted): (Vec<&Value>, Vec<&Value>) = keys.into_iter().partition(|f| {
        f["location"]["path"]
            .as_str()
            .unwrap()
            .contains("acme_agent")
    });
    assert!(twisted.len() >= 3, "Twisted's test keys: {twisted:?}");
    for finding in &twisted {
        assert_eq!(finding["rule"], "package-key", "{finding}");
        assert_eq!(
            owner_of(&finding["location"]),
            Some(("pypi".into(), "twisted".into(), "verified".into())),
            "{finding}"
        );
    }
    // The copies of the published key are critical, wherever they are.
    let known: Vec<&Value> = findings
        .iter()
        .filter(|f| f["rule"] == "known-public-key")
        .collect();
    let places: Vec<String> = known
        .iter()
        .map(|f| {
            f["location"]["path"]
                .as_str()
                .or(f["location"]["config_field"].as_str())
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(
        places.contains(&"/app/config/tls.key".to_string()),
        "{places:?}"
    );
    assert!(
        places.iter().any(|p| p.starts_with("config.Env")),
        "{places:?}"
    );
    for finding in &known {
        assert_eq!(finding["severity"], "critical", "{finding}");
        let message = finding["message"].as_str().unwrap();
        assert!(
            message.contains("is published in pypi package twisted 24.11.0")
                && message.contains("/site-packages/twisted/test/")
                && message.contains("anyone can impersonate whatever uses it"),
            "{message}"
        );
    }
    // A fingerprint exception written for the fixture silences the package's copy, not these.
    let fingerprint = known[0]["fingerprint"].as_str().unwrap();
    let policy = dir.path().join("ocicert.toml");
    fs_err::write(
        &policy,
        format!("[[allow]]\nfingerprint = \"{fingerprint}\"\nreason = \"Twisted's test key\"\n"),
    )
    .unwrap();
    let gated = scan_json(
        &reference,
        &[
            "--policy",
            policy.to_str().unwrap(),
            "--fail-on",
            "critical",
        ],
    );
    assert_eq!(gated.code, 1, "{}", gated.stderr);
    let gated = gated.json();
    for finding in gated["images"][0]["findings"].as_array().unwrap() {
        if finding["fingerprint"] != fingerprint {
            continue;
        }
        let suppressed = finding.get("suppressed").is_some_and(|s| !s.is_null());
        assert_eq!(
            suppressed,
            finding["rule"] != "known-public-key",
            "{finding}"
        );
    }

    assert_eq!(agent.len(), 1, "{agent:?}");
    assert_eq!(agent[0]["rule"], "private-key");
    assert_eq!(agent[0]["severity"], "high");
    let message = agent[0]["message"].as_str().unwrap();
    assert!(
        message.contains("comes from direct URL file://")
            && message.contains("not a public distribution"),
        "{message}"
    );
}

/// An rpm database that rpm itself wrote: rpmbuild makes a tiny package, `rpm --root`
/// installs it with the SQLite backend, and the database and the file become a layer.
#[test]
fn rpm_sqlite_databases_own_their_files() {
    require("rpmbuild", "rpm");
    let dir = tempfile::tempdir().unwrap();
    let top = dir.path().join("rpmbuild");
    fs_err::create_dir_all(top.join("SPECS")).unwrap();
    fs_err::write(top.join("agent.key"), fixture("keys/ec-sec1.pem")).unwrap();
    fs_err::write(
        top.join("SPECS/acme.spec"),
        "Name: acme-agent\nVersion: 1.0\nRelease: 1\nSummary: test\nLicense: MIT\n\
         Vendor: ACME Corp\nBuildArch: noarch\n%description\ntest\n%install\n\
         mkdir -p %{buildroot}/opt/acme\ncp %{_sourcedir}/agent.key %{buildroot}/opt/acme/\n\
         %files\n/opt/acme/agent.key\n",
    )
    .unwrap();
    let topdir = format!("_topdir {}", top.display());
    let sourcedir = format!("_sourcedir {}", top.display());
    let built = std::process::Command::new("rpmbuild")
        .args(["--define", &topdir, "--define", &sourcedir, "-bb"])
        .arg(top.join("SPECS/acme.spec"))
        .output()
        .unwrap();
    assert!(built.status.success(), "{built:?}");
    let package = top.join("RPMS/noarch/acme-agent-1.0-1.noarch.rpm");
    let root = dir.path().join("root");
    let installed = std::process::Command::new("rpm")
        .arg("--root")
        .arg(&root)
        .args(["--dbpath", "/var/lib/rpm", "--define", "_db_backend sqlite"])
        .args(["-i", "--nodeps", "--noscripts"])
        .arg(&package)
        .output()
        .unwrap();
    assert!(installed.status.success(), "{installed:?}");
    let read = |path: &str| fs_err::read(root.join(path)).unwrap();
    let layer = gz_layer(&[
        Entry::File("var/lib/rpm/rpmdb.sqlite", read("var/lib/rpm/rpmdb.sqlite")),
        Entry::File("opt/acme/agent.key", read("opt/acme/agent.key")),
    ]);
    let mut layout = Layout::new(&dir.path().join("layout"));
    let descriptor = layout.image(&[layer], json!({}), ("linux", "amd64"));
    layout.tag(descriptor, "rpm").write();
    let reference = format!("oci:{}:rpm", dir.path().join("layout").display());
    let report = scan_json(&reference, &[]).json();
    let finding = &report["images"][0]["findings"][0];
    assert_eq!(finding["location"]["path"], "/opt/acme/agent.key");
    assert_eq!(
        owner_of(&finding["location"]),
        Some(("rpm".into(), "acme-agent".into(), "verified".into())),
        "{finding}"
    );
    assert_eq!(finding["location"]["owner"]["version"], "1.0-1");
    assert_eq!(finding["rule"], "private-key");
    let message = finding["message"].as_str().unwrap();
    assert!(
        message.contains("comes from ACME Corp, not a public distribution"),
        "{message}"
    );
}

/// A key inside a jar that says which Maven artifact it is belongs to that artifact.
#[test]
fn a_key_in_a_jar_belongs_to_its_maven_artifact() {
    use std::io::Write as _;
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    writer
        .start_file("META-INF/maven/org.acme/tls-test/pom.properties", options)
        .unwrap();
    writer
        .write_all(b"groupId=org.acme\nartifactId=tls-test\nversion=2.1.0\n")
        .unwrap();
    writer.start_file("test/server.key", options).unwrap();
    writer.write_all(&fixture("keys/ec-sec1.pem")).unwrap();
    let jar = writer.finish().unwrap().into_inner();
    let dir = tempfile::tempdir().unwrap();
    let mut layout = Layout::new(&dir.path().join("layout"));
    let layer = gz_layer(&[Entry::File("app/lib/tls-test-2.1.0.jar", jar)]);
    let descriptor = layout.image(&[layer], json!({}), ("linux", "amd64"));
    layout.tag(descriptor, "jar").write();
    let reference = format!("oci:{}:jar", dir.path().join("layout").display());
    let report = scan_json(&reference, &[]).json();
    let finding = &report["images"][0]["findings"][0];
    assert_eq!(finding["location"]["archive_path"], "test/server.key");
    assert_eq!(
        owner_of(&finding["location"]),
        Some((
            "maven".into(),
            "org.acme:tls-test".into(),
            "unrecorded".into()
        )),
        "{finding}"
    );
    // Nothing records a jar's bytes: the key keeps its rule, and the message says why.
    assert_eq!(finding["rule"], "private-key");
    assert!(
        finding["message"]
            .as_str()
            .unwrap()
            .contains("records no checksum"),
        "{finding}"
    );
}

/// An rpm database ocicert cannot read (Berkeley DB, from rpm < 4.16) is said so, rather than
/// leaving its packages' files to look unowned.
#[test]
fn an_unreadable_rpm_database_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut layout = Layout::new(&dir.path().join("layout"));
    let layer = gz_layer(&[
        Entry::File(
            "var/lib/rpm/Packages",
            b"\0\x06\x15\x61 Berkeley DB".to_vec(),
        ),
        Entry::File("opt/key.pem", fixture("keys/ec-sec1.pem")),
    ]);
    let descriptor = layout.image(&[layer], json!({}), ("linux", "amd64"));
    layout.tag(descriptor, "bdb").write();
    let reference = format!("oci:{}:bdb", dir.path().join("layout").display());
    let report = scan_json(&reference, &[]).json();
    let findings = report["images"][0]["findings"].as_array().unwrap();
    let note = findings
        .iter()
        .find(|f| f["location"]["path"] == "/var/lib/rpm/Packages")
        .unwrap_or_else(|| panic!("{findings:?}"));
    assert_eq!(note["rule"], "scan-incomplete");
    assert!(
        note["message"]
            .as_str()
            .unwrap()
            .contains("rpm database not readable"),
        "{note}"
    );
}
