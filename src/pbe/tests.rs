//! PBE schemes by name and cost; decryption is shown on what openssl wrote with each scheme
//! (`fixtures/keys/pkcs8-schemes`, in `detect::examples` and `tests/it/detection_depth.rs`).

use super::*;

fn algorithm(oid: &str, parameters: Option<&[u8]>) -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid: ObjectIdentifier::new(oid).unwrap(),
        parameters: parameters.map(|p| pkcs5::der::Any::from_der(p).unwrap()),
    }
}

/// SEQUENCE { salt OCTET STRING (8 bytes), iterations INTEGER 2048 }
const PBE_PARAMS: &[u8] = &[
    0x30, 0x0e, 0x04, 0x08, 1, 2, 3, 4, 5, 6, 7, 8, 0x02, 0x02, 0x08, 0x00,
];

#[test]
fn schemes_are_named_and_weak_ones_said_to_be() {
    assert_eq!(
        describe(&algorithm("1.2.840.113549.1.5.3", Some(PBE_PARAMS))),
        ("PBES1 MD5-DES".to_string(), true)
    );
    assert_eq!(
        describe(&algorithm("1.2.840.113549.1.12.1.3", Some(PBE_PARAMS))),
        ("PKCS#12 PBE SHA1-3DES".to_string(), false)
    );
    assert_eq!(
        describe(&algorithm("1.2.840.113549.1.12.1.1", Some(PBE_PARAMS))),
        ("PKCS#12 PBE SHA1-RC4-128".to_string(), true)
    );
    assert_eq!(
        describe(&algorithm("1.2.3.4", None)).0,
        "an unknown scheme (1.2.3.4)"
    );
}

#[test]
fn costs_are_counted_and_undecryptable_schemes_say_so() {
    // 2,048 iterations, for the key and the IV.
    assert_eq!(
        cost(&algorithm("1.2.840.113549.1.12.1.3", Some(PBE_PARAMS))),
        Ok(6144)
    );
    assert_eq!(
        cost(&algorithm("1.2.840.113549.1.5.10", Some(PBE_PARAMS))),
        Ok(6144)
    );
    let rc4 = cost(&algorithm("1.2.840.113549.1.12.1.1", Some(PBE_PARAMS))).unwrap_err();
    assert!(
        rc4.contains("PKCS#12 PBE SHA1-RC4-128, which ocicert does not decrypt"),
        "{rc4}"
    );
    let md2 = cost(&algorithm("1.2.840.113549.1.5.1", Some(PBE_PARAMS))).unwrap_err();
    assert!(md2.contains("PBES1 MD2-DES"), "{md2}");
    assert!(cost(&algorithm("1.2.840.113549.1.5.3", None)).is_err());
}
