//! PuTTY private key files (`.ppk`, versions 2 and 3).
//!
//! The public blob is stored in clear, so a `.ppk` gets the same key-derived fingerprint as the
//! OpenSSH form of the same key. The `Encryption:` header tells whether it is protected. The
//! private lines are never decoded.

use super::Artifact;
use crate::keys::KeyFormat;
use base64::Engine as _;

/// Detects a PuTTY key file at the start of `data`.
pub fn detect(data: &[u8]) -> Option<Artifact> {
    let head = data.strip_prefix(b"\xef\xbb\xbf").unwrap_or(data);
    if !head.starts_with(b"PuTTY-User-Key-File-") {
        return None;
    }
    let text = String::from_utf8_lossy(&head[..head.len().min(64 * 1024)]);
    let mut lines = text.lines();
    let mut encrypted = true;
    let mut public = String::new();
    while let Some(line) = lines.next() {
        if let Some(value) = line.strip_prefix("Encryption:") {
            encrypted = value.trim() != "none";
        } else if let Some(count) = line.strip_prefix("Public-Lines:") {
            let count: usize = count.trim().parse().unwrap_or(0).min(1000);
            for _ in 0..count {
                public.push_str(lines.next().unwrap_or_default().trim());
            }
        }
    }
    let blob = base64::engine::general_purpose::STANDARD.decode(public.as_bytes());
    let key = blob
        .ok()
        .and_then(|blob| ssh_key::PublicKey::from_bytes(&blob).ok());
    Some(match key {
        Some(key) => {
            let mut info = super::openssh::from_public(key.key_data(), KeyFormat::Putty);
            info.encrypted = encrypted;
            Artifact::Key {
                info,
                keystore: None,
            }
        }
        None => Artifact::Unparseable {
            what: "PuTTY private key".into(),
            reason: "the public key lines do not decode".into(),
            kind: super::UnparseableKind::Pem,
        },
    })
}

pub const DETECTOR: super::Detector = super::Detector {
    name: "putty",
    detect: |input| detect(input.data).into_iter().collect(),
    examples: &[EXAMPLES],
};

pub const EXAMPLES: super::Examples = super::Examples {
    module: "putty",
    positive: &[("keys/putty.ppk", &["key:PuTTY:ssh-ed25519"])],
    // The public key as PuTTYgen saves it (RFC 4716): not a secret.
    negative: &[("negative/putty-public.pub", &[])],
};
