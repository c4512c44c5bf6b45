//! Real Debian root filesystems for the tests that run programs inside injected images:
//! `debootstrap` once per package list, kept as a tar in the test cache so a run after the first
//! (on a developer's machine or a CI machine handed back) does not pay for it again; plus running
//! a program in such a root (chroot with its own /proc). It does not build images: callers put the
//! tar into a layout themselves.

#![allow(dead_code, unreachable_pub)]

use crate::common::require;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;

/// The suite a rootfs is built from; part of the cache key.
const SUITE: &str = "bookworm";

/// One debootstrap at a time in this process: two at once only compete for the same disk and
/// network, and the second test would wait anyway.
static BUILDING: Mutex<()> = Mutex::new(());

/// Where cached root filesystems live: `$OCICERT_TEST_CACHE`, else `$XDG_CACHE_HOME/ocicert-tests`,
/// else `~/.cache/ocicert-tests`. Outside target/, so `cargo clean` and a fresh clone keep it.
fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("OCICERT_TEST_CACHE") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("ocicert-tests")
}

/// A tar (numeric owners, uncompressed) of a minbase Debian rootfs with `packages` installed,
/// built by debootstrap on first use and cached under a key made of the suite and the sorted
/// package list.
pub fn debian_rootfs_tar(packages: &[&str]) -> PathBuf {
    let mut sorted: Vec<&str> = packages.to_vec();
    sorted.sort_unstable();
    let key = format!("{SUITE} minbase {}", sorted.join(","));
    let hash = hex::encode(&Sha256::digest(key.as_bytes())[..8]);
    let dir = cache_dir();
    let tar = dir.join(format!("debian-{SUITE}-{hash}.tar"));
    let _guard = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
    if tar.exists() {
        return tar;
    }
    require("debootstrap", "debootstrap");
    fs_err::create_dir_all(&dir).unwrap();
    // A build a killed run left behind is thrown away; the finished tar only appears by rename.
    let building = dir.join(format!("building-{hash}-{}", std::process::id()));
    let _ = fs_err::remove_dir_all(&building);
    let output = Command::new("debootstrap")
        .arg("--variant=minbase")
        .arg(format!("--include={}", sorted.join(",")))
        .arg(SUITE)
        .arg(&building)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "debootstrap {key}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let partial = dir.join(format!("debian-{SUITE}-{hash}.tar.{}", std::process::id()));
    let packed = Command::new("tar")
        .arg("-C")
        .arg(&building)
        .args(["--numeric-owner", "--sort=name", "-cf"])
        .arg(&partial)
        .arg(".")
        .status()
        .unwrap();
    assert!(packed.success(), "tar of the {key} rootfs failed");
    fs_err::rename(&partial, &tar).unwrap();
    let _ = fs_err::remove_dir_all(&building);
    tar
}

/// Unpacks a cached rootfs tar into `into`, keeping owners and modes.
pub fn unpack(tar: &Path, into: &Path) {
    fs_err::create_dir_all(into).unwrap();
    let status = Command::new("tar")
        .arg("-C")
        .arg(into)
        .args(["--numeric-owner", "-xpf"])
        .arg(tar)
        .status()
        .unwrap();
    assert!(status.success(), "unpacking {} failed", tar.display());
}

/// Runs `args` inside `root` as its own little container: chroot, with a private mount and PID
/// namespace and /proc mounted (the JVM needs it), sharing the host's network so that it reaches
/// test servers on 127.0.0.1. The /proc mount goes away with the namespace.
pub fn in_root(root: &Path, args: &[&str]) -> Output {
    require("unshare", "util-linux");
    Command::new("unshare")
        .args(["--mount", "--pid", "--fork"])
        .arg(format!("--mount-proc={}", root.join("proc").display()))
        .arg("chroot")
        .arg(root)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// stdout and stderr of a run that must have succeeded.
pub fn succeeded(what: &str, output: &Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{what}: {text}");
    text
}
