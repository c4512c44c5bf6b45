//! Test support: builds OCI layouts from in-memory layers, and runs the `ocicert` binary.

#![allow(dead_code, unreachable_pub)]

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const NOW: &str = "2026-06-01T00:00:00Z";

pub fn fixture(name: &str) -> Vec<u8> {
    fs_err::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(name),
    )
    .expect("fixture")
}

/// One tar entry of a layer.
pub enum Entry {
    File(&'static str, Vec<u8>),
    /// A file with mode 0755.
    Executable(&'static str, Vec<u8>),
    Dir(&'static str),
    Symlink(&'static str, &'static str),
    Hardlink(&'static str, &'static str),
}

pub fn tar(entries: &[Entry]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        match entry {
            Entry::File(path, data) | Entry::Executable(path, data) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(if matches!(entry, Entry::Executable(..)) {
                    0o755
                } else {
                    0o644
                });
                header.set_size(data.len() as u64);
                builder
                    .append_data(&mut header, path, &data[..])
                    .expect("append");
            }
            Entry::Dir(path) => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                builder
                    .append_data(&mut header, path, &[][..])
                    .expect("append");
            }
            Entry::Symlink(path, target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                builder
                    .append_link(&mut header, path, target)
                    .expect("append");
            }
            Entry::Hardlink(path, target) => {
                header.set_entry_type(tar::EntryType::Link);
                header.set_size(0);
                builder
                    .append_link(&mut header, path, target)
                    .expect("append");
            }
        }
    }
    builder.into_inner().expect("tar")
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).expect("gzip");
    encoder.finish().expect("gzip")
}

pub fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).expect("zstd")
}

/// The uncompressed bytes of a layer blob (the blob itself when it is not compressed or broken).
pub fn uncompressed(blob: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    let ok = if blob.starts_with(&[0x1f, 0x8b]) {
        flate2::read::MultiGzDecoder::new(blob)
            .read_to_end(&mut out)
            .is_ok()
    } else if blob.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        zstd::stream::read::Decoder::new(blob)
            .and_then(|mut d| d.read_to_end(&mut out))
            .is_ok()
    } else {
        false
    };
    if ok { out } else { blob.to_vec() }
}

pub fn digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// A layer blob and its media type.
pub struct Blob {
    pub bytes: Vec<u8>,
    pub media_type: &'static str,
}

pub fn gz_layer(entries: &[Entry]) -> Blob {
    Blob {
        bytes: gzip(&tar(entries)),
        media_type: "application/vnd.oci.image.layer.v1.tar+gzip",
    }
}

/// An OCI layout directory under construction.
pub struct Layout {
    pub dir: PathBuf,
    index: Vec<Value>,
}

impl Layout {
    pub fn new(dir: &Path) -> Self {
        fs_err::create_dir_all(dir.join("blobs/sha256")).expect("mkdir");
        fs_err::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).expect("write");
        Self {
            dir: dir.to_path_buf(),
            index: Vec::new(),
        }
    }

    pub fn blob(&self, bytes: &[u8]) -> String {
        let digest = digest(bytes);
        fs_err::write(self.dir.join("blobs/sha256").join(&digest[7..]), bytes).expect("write blob");
        digest
    }

    /// Writes an image and returns its manifest descriptor.
    pub fn image(&self, layers: &[Blob], config_extra: Value, platform: (&str, &str)) -> Value {
        let diff_ids: Vec<String> = layers
            .iter()
            .map(|l| digest(&uncompressed(&l.bytes)))
            .collect();
        let history: Vec<Value> = (0..layers.len())
            .map(|i| json!({"created_by": format!("COPY layer{i} / # buildkit")}))
            .collect();
        let mut config = json!({
            "architecture": platform.1, "os": platform.0,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "config": {"Env": ["PATH=/usr/bin"]},
            "history": history,
        });
        merge(&mut config, config_extra);
        let config_bytes = serde_json::to_vec(&config).expect("json");
        let layer_descriptors: Vec<Value> = layers
            .iter()
            .map(|l| json!({"mediaType": l.media_type, "digest": self.blob(&l.bytes), "size": l.bytes.len()}))
            .collect();
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": self.blob(&config_bytes), "size": config_bytes.len()},
            "layers": layer_descriptors,
        });
        let bytes = serde_json::to_vec(&manifest).expect("json");
        json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": self.blob(&bytes), "size": bytes.len(),
               "platform": {"os": platform.0, "architecture": platform.1}})
    }

    pub fn index_of(&self, manifests: &[Value]) -> Value {
        let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests});
        let bytes = serde_json::to_vec(&index).expect("json");
        json!({"mediaType": "application/vnd.oci.image.index.v1+json", "digest": self.blob(&bytes), "size": bytes.len()})
    }

    pub fn tag(&mut self, mut descriptor: Value, tag: &str) -> &mut Self {
        descriptor["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
        self.index.push(descriptor);
        self
    }

    pub fn write(&self) {
        let index = json!({"schemaVersion": 2, "manifests": self.index});
        fs_err::write(
            self.dir.join("index.json"),
            serde_json::to_vec(&index).expect("json"),
        )
        .expect("write");
    }

    /// Overwrites a blob in place (to simulate tampering).
    pub fn overwrite(&self, digest: &str, bytes: &[u8]) {
        fs_err::write(self.dir.join("blobs/sha256").join(&digest[7..]), bytes).expect("write");
    }
}

fn merge(target: &mut Value, extra: Value) {
    if let (Value::Object(target), Value::Object(extra)) = (target, extra) {
        for (key, value) in extra {
            match target.get_mut(&key) {
                Some(existing @ Value::Object(_)) if value.is_object() => merge(existing, value),
                _ => {
                    target.insert(key, value);
                }
            }
        }
    }
}

/// The output of one `ocicert` run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}): {}\nstderr: {}",
                self.stdout, self.stderr
            )
        })
    }
}

pub fn ocicert(args: &[&str]) -> Run {
    ocicert_in(Path::new(env!("CARGO_MANIFEST_DIR")), args)
}

/// Runs `ocicert` with `dir` as the working directory (where `ocicert.toml` is looked up).
pub fn ocicert_in(dir: &Path, args: &[&str]) -> Run {
    let output = command_in(dir, args).output().expect("run ocicert");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The `ocicert` command the runners start, in `dir`, with the test environment.
fn command_in(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ocicert"));
    configure(&mut command, dir, args);
    command
}

/// Adds `args` and the test environment (stub dir, no cache) to a command running ocicert.
fn configure(command: &mut Command, dir: &Path, args: &[&str]) {
    command
        .args(args)
        .current_dir(dir)
        .env_remove("OCICERT_KEYSTORE_PASSWORD");
    if std::env::var_os("OCICERT_STUB_DIR").is_none() {
        // Where scripts/build-stubs.sh puts the enrollment stubs, whatever CARGO_TARGET_DIR is.
        command.env(
            "OCICERT_STUB_DIR",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("target/stubs"),
        );
    }
    if !args.contains(&"--cache-dir") {
        // Keep tests away from the user's cache; cache tests name their own directory.
        command.env("OCICERT_NO_CACHE", "1");
    }
}

/// One `ocicert` run with its wall time and peak resident memory.
pub struct Measured {
    pub run: Run,
    pub wall: std::time::Duration,
    /// Peak resident set size (GNU time's `%M`), in MiB, rounded up.
    pub peak_mib: u64,
}

impl Measured {
    /// Asserts no panic, at most `seconds` of wall time and `mib` MiB of peak RSS.
    pub fn assert_bounded(&self, seconds: u64, mib: u64) -> &Self {
        let run = &self.run;
        assert!(
            !run.stderr.contains("panicked"),
            "ocicert panicked: {}",
            run.stderr
        );
        assert!(
            self.wall < std::time::Duration::from_secs(seconds),
            "took {:?}, over the {seconds} s bound; stderr: {}",
            self.wall,
            run.stderr
        );
        assert!(self.peak_mib > 0, "the memory of the run was never sampled");
        assert!(
            self.peak_mib < mib,
            "peak RSS {} MiB, over the {mib} MiB bound; stderr: {}",
            self.peak_mib,
            run.stderr
        );
        self
    }
}

/// Runs `ocicert` under GNU time (`%M`: the peak resident set size the kernel accounted to it,
/// however short the run), with extra environment. A run still going after `deadline` is killed
/// with its process group, so a hang fails the test instead of the suite.
pub fn ocicert_measured(
    args: &[&str],
    env: &[(&str, &str)],
    deadline: std::time::Duration,
) -> Measured {
    use std::io::Read as _;
    use std::os::unix::process::CommandExt as _;
    use std::process::Stdio;
    require("/usr/bin/time", "time");
    let rss = tempfile::NamedTempFile::new().expect("temp file");
    let mut command = Command::new("/usr/bin/time");
    command
        .args(["-f", "%M", "-o"])
        .arg(rss.path())
        .arg(env!("CARGO_BIN_EXE_ocicert"));
    configure(&mut command, Path::new(env!("CARGO_MANIFEST_DIR")), args);
    command
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let started = std::time::Instant::now();
    let mut child = command.spawn().expect("run ocicert");
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > deadline {
            // time and ocicert share the process group the child leads.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
            panic!(
                "ocicert {args:?} still running after {deadline:?}: killed; stderr: {}",
                stderr.join().unwrap_or_default()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    let wall = started.elapsed();
    let peak_kib = fs_err::read_to_string(rss.path())
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.trim().parse::<u64>().ok())
        .next_back()
        .unwrap_or(0);
    Measured {
        run: Run {
            code: status.code().unwrap_or(-1),
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
        },
        wall,
        peak_mib: peak_kib.div_ceil(1024),
    }
}

/// `scan REFERENCE --format json --now NOW` plus extra arguments.
pub fn scan_json(reference: &str, extra: &[&str]) -> Run {
    let mut args = vec!["scan", reference, "--format", "json", "--now", NOW];
    args.extend_from_slice(extra);
    ocicert(&args)
}

/// Findings of the first image as (rule, path-ish, in_final_image).
pub fn findings(report: &Value) -> Vec<(String, String, bool)> {
    report["images"][0]["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            let location = &f["location"];
            let place = location["path"]
                .as_str()
                .or(location["config_field"].as_str())
                .unwrap_or_default()
                .to_string();
            (
                f["rule"].as_str().unwrap_or_default().to_string(),
                place,
                location["in_final_image"].as_bool().unwrap_or(false),
            )
        })
        .collect()
}

/// Fails with the package to install when a required program is missing.
pub fn require(program: &str, package: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "`{program}` is missing: install the Debian package `{package}` (scripts/test does this)"
    );
}

/// A run that failed cleanly: exit 2, nothing on stdout (no partial report), no panic, and
/// every needle in the error message.
pub fn assert_clean_error(run: &Run, needles: &[&str]) {
    assert_eq!(
        run.code, 2,
        "stdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    assert!(run.stdout.is_empty(), "no partial report: {}", run.stdout);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    for needle in needles {
        assert!(
            run.stderr.contains(needle),
            "stderr lacks `{needle}`: {}",
            run.stderr
        );
    }
}

/// `scan REFERENCE --format json --now NOW` plus extra arguments, which must end within
/// `seconds` and `mib` MiB of peak RSS, without a panic.
pub fn bounded_scan(reference: &str, extra: &[&str], seconds: u64, mib: u64) -> Run {
    let mut args = vec!["scan", reference, "--format", "json", "--now", NOW];
    args.extend_from_slice(extra);
    let measured = ocicert_measured(&args, &[], std::time::Duration::from_secs(seconds * 3));
    measured.assert_bounded(seconds, mib);
    measured.run
}
