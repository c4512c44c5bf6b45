//! OpenSSH certificates (`*-cert.pub`, `ssh-keygen -s` output): who they are for, who signed
//! them and when they are valid, for the inventory. It does not verify the CA's signature.

use super::Artifact;
use serde::{Deserialize, Serialize};

/// What an OpenSSH certificate says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshCertificate {
    /// `user` or `host`.
    pub kind: String,
    pub key_id: String,
    pub principals: Vec<String>,
    /// Unix seconds; `valid_before` is `u64::MAX` for "forever".
    pub valid_after: u64,
    pub valid_before: u64,
    /// `SHA256:…` of the certified key and of the CA key that signed it, as ssh-keygen shows
    /// them.
    pub key_fingerprint: String,
    pub ca_fingerprint: String,
}

/// Line starts of OpenSSH certificates: the key type ends in `-cert-v01@openssh.com`.
fn is_certificate_line(line: &str) -> bool {
    line.split_once(' ')
        .is_some_and(|(kind, _)| kind.ends_with("-cert-v01@openssh.com"))
}

/// Every OpenSSH certificate line of a text file.
pub fn detect(data: &[u8]) -> Vec<Artifact> {
    let Ok(text) = std::str::from_utf8(data) else {
        return Vec::new();
    };
    text.lines()
        .map(str::trim)
        .filter(|line| is_certificate_line(line))
        .take(super::MAX_DETECTIONS_PER_FILE)
        .map(|line| match ssh_key::Certificate::from_openssh(line) {
            Ok(cert) => Artifact::SshCertificate {
                certificate: Box::new(SshCertificate {
                    kind: if cert.cert_type().is_host() {
                        "host"
                    } else {
                        "user"
                    }
                    .into(),
                    key_id: cert.key_id().to_string(),
                    principals: cert.valid_principals().to_vec(),
                    valid_after: cert.valid_after(),
                    valid_before: cert.valid_before(),
                    key_fingerprint: cert
                        .public_key()
                        .fingerprint(ssh_key::HashAlg::Sha256)
                        .to_string(),
                    ca_fingerprint: cert
                        .signature_key()
                        .fingerprint(ssh_key::HashAlg::Sha256)
                        .to_string(),
                }),
            },
            Err(e) => Artifact::Unparseable {
                what: "OpenSSH certificate".into(),
                reason: e.to_string(),
                kind: super::UnparseableKind::Pem,
            },
        })
        .collect()
}

/// Text files with OpenSSH certificate lines.
pub const DETECTOR: super::Detector = super::Detector {
    name: "sshcert",
    detect: |input| {
        if memchr::memmem::find(input.data, b"-cert-v01@openssh.com ").is_none() {
            return Vec::new();
        }
        detect(input.data)
    },
    examples: &[EXAMPLES],
};

pub const EXAMPLES: super::Examples = super::Examples {
    module: "sshcert",
    positive: &[
        ("certs/ssh-user-cert.pub", &["ssh-cert:user:deploy@ci"]),
        ("certs/ssh-host-cert.pub", &["ssh-cert:host:build-host"]),
    ],
    negative: &[("negative/ssh-public.pub", &[])],
};
