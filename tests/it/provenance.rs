//! Owners from real package databases: a debootstrap Debian 12 image (its dpkg database written
//! by dpkg itself), with layers on top that plant keys where a package would not.

use crate::common::*;
use crate::rootfs::debian_rootfs_tar;
use serde_json::{Value, json};

/// The stock image of issue 31: minbase plus what a typical service image installs.
const STOCK: [&str; 4] = ["ca-certificates", "curl", "openssl", "python3-certifi"];

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
    for location in gnutls {
        assert_eq!(
            owner_of(location),
            Some(("dpkg".into(), "libgnutls30".into(), "verified".into())),
            "{location}"
        );
        let version = location["owner"]["version"].as_str().unwrap();
        assert!(version.starts_with("3.7.9-2+deb12u"), "{version}");
    }
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
    let reference = debian_image(&STOCK, &[planted], dir.path());
    let report = scan_json(&reference, &[]).json();
    let owners: Vec<(String, Option<OwnerKey>)> = report["images"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["location"]["layer_index"] == 1)
        .map(|f| {
            let path = f["location"]["path"].as_str().unwrap().to_string();
            (path, owner_of(&f["location"]))
        })
        .collect();
    let owner = |path: &str| {
        owners
            .iter()
            .find(|(p, _)| p == path)
            .unwrap_or_else(|| panic!("no finding at {path}: {owners:?}"))
            .1
            .clone()
    };
    assert_eq!(
        owner("/usr/lib/ssl/misc/tsget.pl"),
        Some(("dpkg".into(), "openssl".into(), "modified".into()))
    );
    assert_eq!(owner("/usr/lib/ssl/misc/extra.pem"), None);
    assert_eq!(owner("/app/tls/server.key"), None);
}
