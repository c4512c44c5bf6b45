//! The PKCS#12 work budget on stores built here (secret bags and key bags with ruinous key
//! derivations, MACs checked with many passwords) and on the OpenSSL-made fixtures.

use super::*;
use crate::pbe::PBES2;
use crate::truststore::der_length;
use std::time::{Duration, Instant};

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend(der_length(content.len()));
    out.extend_from_slice(content);
    out
}

fn oid(oid: ObjectIdentifier) -> Vec<u8> {
    oid.to_der().unwrap()
}

/// An EncryptedPrivateKeyInfo under PBES2 with `kdf`, over 32 bytes of junk: the cost is read
/// before any decryption, so the junk is never reached when the derivation is refused.
fn shrouded(kdf: &pkcs5::pbes2::Parameters) -> Vec<u8> {
    let algorithm = [oid(PBES2), kdf.to_der().unwrap()].concat();
    let info = [tlv(0x30, &algorithm), tlv(0x04, &[0x5a; 32])].concat();
    tlv(0x30, &info)
}

fn scrypt_bomb() -> pkcs5::pbes2::Parameters {
    // N=2^23, r=1, p=16: 1 GiB and about 80 s per derivation.
    let params = pkcs5::scrypt::Params::new(23, 1, 16).unwrap();
    pkcs5::pbes2::Parameters::generate_scrypt_aes256cbc(params, b"saltsalt", [7; 16]).unwrap()
}

fn pbkdf2(iterations: u32) -> pkcs5::pbes2::Parameters {
    pkcs5::pbes2::Parameters::generate_pbkdf2_sha256_aes256cbc(iterations, b"saltsalt", [7; 16])
        .unwrap()
}

/// SafeBag { bagId, [0] EXPLICIT bagValue }.
fn bag(id: ObjectIdentifier, value: &[u8]) -> Vec<u8> {
    tlv(0x30, &[oid(id), tlv(0xa0, value)].concat())
}

/// A secret bag holding a shrouded key, as keytool's `-importpass` writes one.
fn secret_bag(kdf: &pkcs5::pbes2::Parameters) -> Vec<u8> {
    let inner = [
        oid(pkcs12::PKCS_12_PKCS8_KEY_BAG_OID),
        tlv(0xa0, &tlv(0x04, &shrouded(kdf))),
    ]
    .concat();
    bag(pkcs12::PKCS_12_SECRET_BAG_OID, &tlv(0x30, &inner))
}

fn cert_bag(cert: &[u8]) -> Vec<u8> {
    let x509 = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.22.1");
    let value = [oid(x509), tlv(0xa0, &tlv(0x04, cert))].concat();
    bag(pkcs12::PKCS_12_CERT_BAG_OID, &tlv(0x30, &value))
}

/// A PFX of one plain content list holding `bags`, with a SHA-256 MAC of `iterations` under
/// `password` when given.
fn store(bags: &[Vec<u8>], mac: Option<(&str, i32)>) -> Vec<u8> {
    let safe = sequence(&[data_info(&sequence(bags).unwrap()).unwrap()]).unwrap();
    let mut pfx = [tlv(0x02, &[3]), data_info(&safe).unwrap()].concat();
    if let Some((password, iterations)) = mac {
        let salt = [9u8; 16];
        let digest = mac_digest(SHA256, password, &salt, iterations, &safe).unwrap();
        let digest_info = tlv(
            0x30,
            &[
                tlv(0x30, &[oid(SHA256), vec![5, 0]].concat()),
                tlv(0x04, &digest),
            ]
            .concat(),
        );
        let mac_data = [digest_info, tlv(0x04, &salt), iterations.to_der().unwrap()].concat();
        pfx.extend(tlv(0x30, &mac_data));
    }
    tlv(0x30, &pfx)
}

fn fixture(name: &str) -> Vec<u8> {
    fs_err::read(format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn leaf() -> Vec<u8> {
    fixture("certs/leaf.der")
}

fn opened(outcome: Outcome) -> Opened {
    match outcome {
        Outcome::Opened(opened) => opened,
        other => panic!("not opened: {other:?}"),
    }
}

fn quick<T>(what: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = what();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
    out
}

#[test]
fn secret_bags_are_counted_never_derived() {
    let bags: Vec<Vec<u8>> = (0..200).map(|_| secret_bag(&scrypt_bomb())).collect();
    let bytes = store(&[bags, vec![cert_bag(&leaf())]].concat(), None);
    let opened = quick(|| opened(open(&bytes, &["", "changeit"])));
    assert_eq!(opened.secret_bags, 200);
    assert!(opened.skipped.is_empty(), "{:?}", opened.skipped);
    let archive = p12_keystore::Pkcs12Archive::from_pkcs12(&opened.store, "").unwrap();
    assert_eq!(
        archive.certs.len(),
        1,
        "the certificate beside them is still read"
    );
}

#[test]
fn a_key_bag_over_the_memory_limit_is_skipped_and_named_and_the_rest_is_read() {
    let bytes = store(
        &[
            bag(pkcs12::PKCS_12_PKCS8_KEY_BAG_OID, &shrouded(&scrypt_bomb())),
            cert_bag(&leaf()),
        ],
        Some(("changeit", 2048)),
    );
    let opened = quick(|| opened(open(&bytes, &["", "changeit"])));
    assert_eq!(opened.password, 1);
    assert_eq!(opened.skipped.len(), 1);
    assert!(
        opened.skipped[0].contains("1024 MiB, over the 64 MiB limit"),
        "{:?}",
        opened.skipped
    );
    let archive = p12_keystore::Pkcs12Archive::from_pkcs12(&opened.store, "changeit").unwrap();
    assert_eq!((archive.certs.len(), archive.keys.len()), (1, 0));
}

#[test]
fn key_bags_stop_at_the_budget_summed_over_bags() {
    // Each at p12-keystore's own cap (10^6 iterations, 0.47 s): five fit the budget, not twelve.
    let bags: Vec<Vec<u8>> = (0..12)
        .map(|_| {
            bag(
                pkcs12::PKCS_12_PKCS8_KEY_BAG_OID,
                &shrouded(&pbkdf2(1_000_000)),
            )
        })
        .collect();
    let bytes = store(&bags, Some(("changeit", 1000)));
    let opened = opened(open_within(&bytes, &["changeit"], 5_000_000));
    // Four fit (the MAC took 1,000); their junk does not decrypt; the other eight are not tried.
    let over = |s: &&String| s.contains("over what is left of the PKCS#12 work budget");
    assert_eq!(
        opened.skipped.iter().filter(over).count(),
        8,
        "{:?}",
        opened.skipped
    );
    assert_eq!(
        opened
            .skipped
            .iter()
            .filter(|s| s.contains("which the store's password does not open"))
            .count(),
        4
    );
}

#[test]
fn mac_checks_stop_at_the_budget_and_say_how_many_passwords_were_tried() {
    let bytes = store(&[cert_bag(&leaf())], Some(("secret", 1000)));
    let candidates = ["", "changeit", "changeme", "password", "a", "b", "c"];
    match open_within(&bytes, &candidates, 3500) {
        Outcome::UnknownPassword { limit: Some(limit) } => {
            assert!(limit.contains("3 were tried"), "{limit}");
        }
        other => panic!("{other:?}"),
    }
    match open_within(&bytes, &candidates, 1_000_000) {
        Outcome::UnknownPassword { limit: None } => {}
        other => panic!("{other:?}"),
    }
    let found = opened(open_within(&bytes, &["", "secret"], 2000));
    assert_eq!(found.password, 1);
}

#[test]
fn without_a_mac_the_cheapest_encrypted_item_finds_the_password() {
    // The bomb comes first; the password is found on the affordable bag after it.
    let key =
        pkcs5::pbes2::Parameters::generate_pbkdf2_sha256_aes256cbc(2048, b"saltsalt", [7; 16])
            .unwrap();
    let pkcs8 = fixture("keys/leaf.key.der");
    let encrypted = key.encrypt("changeme", &pkcs8).unwrap();
    let algorithm = [oid(PBES2), key.to_der().unwrap()].concat();
    let info = tlv(
        0x30,
        &[tlv(0x30, &algorithm), tlv(0x04, &encrypted)].concat(),
    );
    let bytes = store(
        &[
            bag(pkcs12::PKCS_12_PKCS8_KEY_BAG_OID, &shrouded(&scrypt_bomb())),
            bag(pkcs12::PKCS_12_PKCS8_KEY_BAG_OID, &info),
        ],
        None,
    );
    let opened = quick(|| opened(open(&bytes, &["", "changeit", "changeme"])));
    assert_eq!(opened.password, 2);
    assert_eq!(opened.skipped.len(), 1);
    let archive = p12_keystore::Pkcs12Archive::from_pkcs12(&opened.store, "changeme").unwrap();
    assert_eq!(archive.keys.len(), 1);
}

#[test]
fn openssl_stores_open_as_p12_keystore_opens_them() {
    for (name, password) in [
        ("certs/bundle.p12", "changeit"),
        ("certs/bundle-legacy.p12", "changeit"),
        ("certs/bundle-nopass.p12", ""),
    ] {
        let bytes = fixture(name);
        let direct = p12_keystore::Pkcs12Archive::from_pkcs12(&bytes, password).unwrap();
        let opened = opened(open(&bytes, &["", "changeit"]));
        let through = p12_keystore::Pkcs12Archive::from_pkcs12(&opened.store, password).unwrap();
        assert_eq!(
            (through.certs, through.keys.len()),
            (direct.certs, direct.keys.len()),
            "{name}"
        );
        assert!(opened.skipped.is_empty(), "{name}: {:?}", opened.skipped);
    }
}
