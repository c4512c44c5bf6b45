//! PKCS#7 / CMS certificate bundles (`.p7b`, `.p7c`, `BEGIN PKCS7`) and JAR signature blocks
//! (`META-INF/*.RSA`, `*.EC`, `*.DSA`): the certificates of a `SignedData`, each analysed on its
//! own. It does not verify signatures, and reads neither the signed content nor the CRLs.
//!
//! The SignedData is walked by hand rather than decoded with the cms crate: cms 0.3 decodes
//! every certificate strictly (x509-cert) and fails the whole bundle on one it does not accept,
//! where ocicert wants each certificate's bytes to judge them one at a time.

use super::{Artifact, CertEncoding};

/// `1.2.840.113549.1.7.2`, signedData, as DER content bytes.
const SIGNED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];

/// One DER element: (tag, whole element, content, rest).
type Element<'a> = (u8, &'a [u8], &'a [u8], &'a [u8]);

fn element(input: &[u8]) -> Option<Element<'_>> {
    let tag = *input.first()?;
    let first = *input.get(1)?;
    let (length, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let bytes = input.get(2..2 + count)?;
        (
            bytes.iter().fold(0usize, |n, b| (n << 8) | usize::from(*b)),
            2 + count,
        )
    };
    let end = header.checked_add(length)?;
    let whole = input.get(..end)?;
    Some((tag, whole, &whole[header..], &input[end..]))
}

/// The DER certificates of a ContentInfo holding a SignedData; `None` when `der` is not one.
pub fn certificates(der: &[u8]) -> Option<Vec<&[u8]>> {
    let (0x30, _, content_info, _) = element(der)? else {
        return None;
    };
    let (0x06, _, oid, rest) = element(content_info)? else {
        return None;
    };
    if oid != SIGNED_DATA {
        return None;
    }
    let (0xa0, _, explicit, _) = element(rest)? else {
        return None;
    };
    let (0x30, _, signed_data, _) = element(explicit)? else {
        return None;
    };
    // version, digestAlgorithms, encapContentInfo, then [0] IMPLICIT certificates if present.
    let (0x02, _, _, rest) = element(signed_data)? else {
        return None;
    };
    let (0x31, _, _, rest) = element(rest)? else {
        return None;
    };
    let (0x30, _, _, rest) = element(rest)? else {
        return None;
    };
    let mut out = Vec::new();
    if let Some((0xa0, _, mut certificates, _)) = element(rest) {
        while let Some((tag, whole, _, next)) = element(certificates) {
            if tag == 0x30 {
                out.push(whole);
            }
            certificates = next;
        }
    }
    Some(out)
}

/// Whether `der` is a SignedData ContentInfo (the `der` detector leaves it to this one).
pub fn looks_like(der: &[u8]) -> bool {
    certificates(der).is_some()
}

/// Whether a file name is a JAR signature block.
fn jar_signature(lower_name: &str) -> bool {
    lower_name.contains("meta-inf/")
        && [".rsa", ".ec", ".dsa"]
            .iter()
            .any(|suffix| lower_name.ends_with(suffix))
}

/// The certificates of a SignedData as artifacts, code-signing ones for a JAR signature.
pub fn artifacts(der: &[u8], lower_name: &str) -> Vec<Artifact> {
    let encoding = if jar_signature(lower_name) {
        CertEncoding::JarSignature
    } else {
        CertEncoding::Pkcs7
    };
    certificates(der)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|cert| crate::x509::analyze(cert).ok())
        .map(|info| Artifact::Certificate {
            info: Box::new(info),
            encoding,
        })
        .collect()
}

/// DER SignedData files, by content.
pub const DETECTOR: super::Detector = super::Detector {
    name: "pkcs7",
    detect: |input| {
        if input.data.first() != Some(&0x30) {
            return Vec::new();
        }
        match super::der::span(input.data) {
            super::der::Span::Whole(der) => artifacts(der, input.lower_name),
            _ => Vec::new(),
        }
    },
    examples: &[EXAMPLES],
};

pub const EXAMPLES: super::Examples = super::Examples {
    module: "pkcs7",
    positive: &[
        (
            "certs/bundle.p7b",
            &[
                "cert:Pkcs7:CN=app.example.test",
                "cert:Pkcs7:CN=ocicert Test Intermediate",
            ],
        ),
        (
            "certs/bundle-p7.pem",
            &[
                "cert:Pkcs7:CN=app.example.test",
                "cert:Pkcs7:CN=ocicert Test Intermediate",
            ],
        ),
        (
            "archives/signed.jar",
            &[
                "cert:JarSignature:CN=app.example.test",
                "cert:JarSignature:CN=ocicert Test Intermediate",
            ],
        ),
    ],
    // A signedData OID in a file that is not one, and a SignedData with no certificates.
    negative: &[
        ("negative/p7-no-certs.p7b", &[]),
        ("negative/random.bin", &[]),
    ],
};
