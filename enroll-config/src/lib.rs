//! The enrollment stub's config file, `/.ocicert/enroll.json` inside an image: what `ocicert inject
//! --enroll` writes and what `ocicert-enroll` reads at container start.
//!
//! It holds **non-secret settings only**. Secrets (the ACME EAB key id and HMAC, the EST password or
//! client key, the Vault token or a Kubernetes service-account JWT) are never in this file: it only
//! names the env vars and file paths where the runtime provides them, so nothing secret is baked
//! into an image.
//!
//! This crate is deliberately tiny (serde + serde_json + thiserror, no network, no crypto), so that
//! the main `ocicert` binary can depend on it to *write* the file without pulling in the stub's
//! HTTP/TLS stack. It does not resolve templates, read secrets or touch the network: that is the
//! stub's job.
//!
//! ```
//! use ocicert_enroll_config::{Ca, EnrollConfig, AcmeOptions};
//! let mut config = EnrollConfig::new(Ca::Acme(AcmeOptions::new("https://acme.example/dir")));
//! config.sans = vec!["${HOSTNAME}.svc.example".into(), "app.example".into()];
//! let json = config.to_json();
//! assert_eq!(EnrollConfig::from_json(&json).unwrap(), config);
//! ```

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Where `ocicert inject` puts the config inside the image, and where the stub looks by default.
pub const DEFAULT_CONFIG_PATH: &str = "/.ocicert/enroll.json";
/// Where `ocicert inject` puts the stub binary inside the image.
pub const DEFAULT_STUB_PATH: &str = "/.ocicert/ocicert-enroll";
/// The output dir used when the config does not name one. It must be writable at run time: a
/// tmpfs (`docker run --tmpfs /run/ocicert`) or a Kubernetes `emptyDir` volume.
pub const DEFAULT_OUTPUT_DIR: &str = "/run/ocicert";
/// The only format version this crate reads and writes.
pub const VERSION: u32 = 1;

/// File names the stub writes into the output dir.
pub mod files {
    /// PKCS#8 PEM private key, mode 0600.
    pub const KEY: &str = "key.pem";
    /// The leaf certificate followed by the intermediates (what TLS servers want to present).
    pub const CERT: &str = "cert.pem";
    /// The intermediates alone.
    pub const CHAIN: &str = "chain.pem";
    /// The issuing CA bundle (for verifying peers that hold certificates from the same CA).
    pub const CA: &str = "ca.pem";
}

/// Env vars the stub adds for the program it execs.
pub mod env {
    /// Path of [`super::files::CERT`].
    pub const CERT_FILE: &str = "OCICERT_CERT_FILE";
    /// Path of [`super::files::KEY`].
    pub const KEY_FILE: &str = "OCICERT_KEY_FILE";
    /// Path of [`super::files::CA`].
    pub const CA_FILE: &str = "OCICERT_CA_FILE";
    /// Path of [`super::files::CHAIN`].
    pub const CHAIN_FILE: &str = "OCICERT_CHAIN_FILE";
}

/// The whole config file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollConfig {
    /// Format version; always [`VERSION`].
    pub version: u32,
    /// The CA to enroll with, and how.
    pub ca: Ca,
    /// PEM bundle (a path inside the image) that the enrollment server's TLS certificate must chain
    /// to. `None` means the Mozilla roots compiled into the stub.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ca_file: Option<PathBuf>,
    /// SubjectAltNames. Each entry is a template: `${VAR}` and `${VAR:-default}` expand from the
    /// container's environment (`${HOSTNAME}` falls back to the kernel host name). An entry that
    /// parses as an IP address is an IP SAN; `dns:`, `ip:` and `uri:` prefixes force the type.
    pub sans: Vec<String>,
    /// Subject common name template; `None` means the first DNS SAN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_name: Option<String>,
    /// Type of the key generated at start.
    #[serde(default)]
    pub key_type: KeyType,
    /// Directory for the key, cert, chain and CA bundle; must be writable at run time.
    #[serde(default = "default_output_dir")]
    pub output_dir: PathBuf,
    /// A cert in the output dir with more life left than this is reused: `"33%"` (of its total
    /// lifetime) or a duration such as `"90s"`, `"30m"`, `"12h"`, `"7d"`. In `--renew` mode the
    /// stub renews when this much life is left (`"33%"`: at 2/3 of the lifetime).
    #[serde(default = "default_renew_before")]
    pub renew_before: String,
    /// `true` (default): a failed enrollment stops the container (exit 70). `false`: print the
    /// cause and start the program anyway, without the `OCICERT_*` env vars.
    #[serde(default = "default_true")]
    pub required: bool,
    /// Overall time budget of one enrollment, in seconds.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
    /// If set, `ca.pem` is a copy of this PEM file (a path inside the image) instead of the CA
    /// certificates the protocol returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_ca_file: Option<PathBuf>,
    /// `--renew` mode settings (the mode itself is switched on by the stub's `--renew` flag or
    /// by `renew.enabled`).
    #[serde(default)]
    pub renew: RenewOptions,
    /// `false` (default): the environment variables that carry enrollment secrets (see
    /// [`Ca::secret_env`]) are removed from the program's environment, so the app and anything
    /// it spawns never see the Vault token, EST password or EAB key. `true` passes them through
    /// (for an app that uses the same Vault token itself).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keep_secret_env: bool,
}

/// Which enrollment protocol, with its options. Serialized with a `"protocol"` tag:
/// `{"protocol": "acme", "url": "https://…/directory", …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "protocol", rename_all = "lowercase")]
pub enum Ca {
    /// RFC 8555.
    Acme(AcmeOptions),
    /// RFC 7030.
    Est(EstOptions),
    /// Vault or OpenBao PKI secrets engine, `sign/<role>`.
    Vault(VaultOptions),
}

impl Ca {
    /// The environment variables whose values are enrollment secrets or credentials: the EAB key
    /// id and HMAC key, the EST user name and password, the Vault token. (The `_FILE` variants and
    /// the client certificate variables hold paths, not secrets.)
    pub fn secret_env(&self) -> Vec<&str> {
        match self {
            Self::Acme(options) => vec![&options.eab_kid_env, &options.eab_hmac_env],
            Self::Est(options) => vec![&options.username_env, &options.password_env],
            Self::Vault(options) => vec![&options.token_env],
        }
    }

    /// The endpoint URL of the CA, whatever the protocol.
    pub fn url(&self) -> &str {
        match self {
            Self::Acme(options) => &options.url,
            Self::Est(options) => &options.url,
            Self::Vault(options) => &options.url,
        }
    }

    /// The protocol's name as it appears in the file.
    pub fn protocol(&self) -> &'static str {
        match self {
            Self::Acme(_) => "acme",
            Self::Est(_) => "est",
            Self::Vault(_) => "vault",
        }
    }
}

/// ACME options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcmeOptions {
    /// Directory URL.
    pub url: String,
    /// Env var holding the External Account Binding key id; when neither it nor the file variant
    /// (`<NAME>_FILE`) is set at run time, no EAB is sent.
    #[serde(default = "default_eab_kid_env")]
    pub eab_kid_env: String,
    /// Env var holding the base64url EAB HMAC key (or `<NAME>_FILE`, a path to a file holding it).
    #[serde(default = "default_eab_hmac_env")]
    pub eab_hmac_env: String,
    /// Port the stub answers http-01 challenges on, during enrollment only. Below 1024 needs
    /// `CAP_NET_BIND_SERVICE` for a non-root user.
    #[serde(default = "default_http01_port")]
    pub http01_port: u16,
    /// Address the http-01 responder binds.
    #[serde(default = "default_http01_bind")]
    pub http01_bind: String,
    /// `mailto:` contacts for the account.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contact: Vec<String>,
}

impl AcmeOptions {
    /// Options with every default and the given directory URL.
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            eab_kid_env: default_eab_kid_env(),
            eab_hmac_env: default_eab_hmac_env(),
            http01_port: default_http01_port(),
            http01_bind: default_http01_bind(),
            contact: Vec::new(),
        }
    }
}

/// EST options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EstOptions {
    /// Server base URL, `https://host[:port]`; the stub appends `/.well-known/est[/label]/…`.
    pub url: String,
    /// Optional CA label (RFC 7030 §3.2.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Env var with the HTTP Basic user name (or `<NAME>_FILE`).
    #[serde(default = "default_est_username_env")]
    pub username_env: String,
    /// Env var with the HTTP Basic password (or `<NAME>_FILE`).
    #[serde(default = "default_est_password_env")]
    pub password_env: String,
    /// Env var with the path of a PEM client certificate for TLS client auth (mounted at run time).
    #[serde(default = "default_est_client_cert_env")]
    pub client_cert_env: String,
    /// Env var with the path of the PEM (PKCS#8) key of that client certificate.
    #[serde(default = "default_est_client_key_env")]
    pub client_key_env: String,
}

impl EstOptions {
    /// Options with every default and the given server URL.
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            label: None,
            username_env: default_est_username_env(),
            password_env: default_est_password_env(),
            client_cert_env: default_est_client_cert_env(),
            client_key_env: default_est_client_key_env(),
        }
    }
}

/// Vault / OpenBao PKI options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultOptions {
    /// Vault address, `https://vault.example:8200`.
    pub url: String,
    /// PKI secrets engine mount path.
    #[serde(default = "default_vault_mount")]
    pub mount: String,
    /// PKI role used with `sign/<role>`.
    pub role: String,
    /// How the stub gets a Vault token.
    #[serde(default)]
    pub auth: VaultAuth,
    /// Env var holding the token for `auth = "token"` (or `<NAME>_FILE`).
    #[serde(default = "default_vault_token_env")]
    pub token_env: String,
    /// Mount path of the Kubernetes auth method.
    #[serde(default = "default_vault_kubernetes_mount")]
    pub kubernetes_mount: String,
    /// Vault role for the Kubernetes login (`auth = "kubernetes"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_role: Option<String>,
    /// Service-account JWT file for the Kubernetes login.
    #[serde(default = "default_vault_jwt_file")]
    pub jwt_file: PathBuf,
    /// Requested TTL (`"1h"`), passed through to Vault; `None` means the role's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// Vault Enterprise / OpenBao namespace (`X-Vault-Namespace`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl VaultOptions {
    /// Options with every default, the given address and PKI role.
    pub fn new(url: &str, role: &str) -> Self {
        Self {
            url: url.to_owned(),
            mount: default_vault_mount(),
            role: role.to_owned(),
            auth: VaultAuth::default(),
            token_env: default_vault_token_env(),
            kubernetes_mount: default_vault_kubernetes_mount(),
            kubernetes_role: None,
            jwt_file: default_vault_jwt_file(),
            ttl: None,
            namespace: None,
        }
    }
}

/// How the stub authenticates to Vault.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VaultAuth {
    /// `X-Vault-Token` from an env var or file.
    #[default]
    Token,
    /// `POST auth/<kubernetes_mount>/login` with the service-account JWT.
    Kubernetes,
}

/// Type of the key generated at container start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyType {
    /// ECDSA on P-256 with SHA-256 (default).
    #[default]
    EcdsaP256,
    /// ECDSA on P-384 with SHA-384.
    EcdsaP384,
    /// Ed25519.
    Ed25519,
    /// RSA 2048 bits, PKCS#1 v1.5 SHA-256 signatures.
    #[serde(rename = "rsa-2048")]
    Rsa2048,
    /// RSA 3072 bits.
    #[serde(rename = "rsa-3072")]
    Rsa3072,
}

/// `--renew` mode: the stub stays as a minimal init that renews the certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewOptions {
    /// Run in `--renew` mode even without the flag.
    #[serde(default)]
    pub enabled: bool,
    /// Signal sent to the program after each renewal (`"SIGHUP"`, `"SIGUSR1"`, …, or `"none"`).
    #[serde(default = "default_renew_signal")]
    pub signal: String,
}

impl Default for RenewOptions {
    fn default() -> Self {
        Self {
            enabled: false,
            signal: default_renew_signal(),
        }
    }
}

/// Why a config file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not valid JSON for this schema.
    #[error("invalid enrollment config")]
    Syntax(#[source] serde_json::Error),
    /// A version this build does not know.
    #[error(
        "enrollment config version {found} is not supported (this stub reads version {VERSION})"
    )]
    Version {
        /// The version in the file.
        found: u32,
    },
    /// Valid JSON, but an impossible combination.
    #[error("invalid enrollment config: {0}")]
    Invalid(&'static str),
}

impl EnrollConfig {
    /// A config with every default and the given CA.
    pub fn new(ca: Ca) -> Self {
        Self {
            version: VERSION,
            ca,
            tls_ca_file: None,
            sans: Vec::new(),
            common_name: None,
            key_type: KeyType::default(),
            output_dir: default_output_dir(),
            renew_before: default_renew_before(),
            required: true,
            timeout_seconds: default_timeout(),
            app_ca_file: None,
            renew: RenewOptions::default(),
            keep_secret_env: false,
        }
    }

    /// Parses and checks a config file's bytes.
    pub fn from_json(bytes: &[u8]) -> Result<Self, Error> {
        let config: Self = serde_json::from_slice(bytes).map_err(Error::Syntax)?;
        config.validate()?;
        Ok(config)
    }

    /// The file's bytes: pretty JSON with a trailing newline.
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing these plain structs to a Vec cannot fail: no maps with non-string keys, no
        // custom Serialize impls.
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), Error> {
        if self.version != VERSION {
            return Err(Error::Version {
                found: self.version,
            });
        }
        if self.sans.is_empty() {
            return Err(Error::Invalid(
                "`sans` must name at least one SubjectAltName",
            ));
        }
        if self.ca.url().is_empty() {
            return Err(Error::Invalid("the CA `url` is empty"));
        }
        if !self.output_dir.is_absolute() {
            return Err(Error::Invalid("`output_dir` must be an absolute path"));
        }
        if let Ca::Vault(vault) = &self.ca
            && vault.auth == VaultAuth::Kubernetes
            && vault.kubernetes_role.is_none()
        {
            return Err(Error::Invalid(
                "Vault `auth = \"kubernetes\"` needs `kubernetes_role`",
            ));
        }
        Ok(())
    }
}

fn default_output_dir() -> PathBuf {
    PathBuf::from(DEFAULT_OUTPUT_DIR)
}
fn default_renew_before() -> String {
    "33%".to_owned()
}
fn default_true() -> bool {
    true
}
fn default_timeout() -> u64 {
    60
}
fn default_eab_kid_env() -> String {
    "OCICERT_ACME_EAB_KID".to_owned()
}
fn default_eab_hmac_env() -> String {
    "OCICERT_ACME_EAB_HMAC".to_owned()
}
fn default_http01_port() -> u16 {
    80
}
fn default_http01_bind() -> String {
    "0.0.0.0".to_owned()
}
fn default_est_username_env() -> String {
    "OCICERT_EST_USERNAME".to_owned()
}
fn default_est_password_env() -> String {
    "OCICERT_EST_PASSWORD".to_owned()
}
fn default_est_client_cert_env() -> String {
    "OCICERT_EST_CLIENT_CERT".to_owned()
}
fn default_est_client_key_env() -> String {
    "OCICERT_EST_CLIENT_KEY".to_owned()
}
fn default_vault_mount() -> String {
    "pki".to_owned()
}
fn default_vault_token_env() -> String {
    "VAULT_TOKEN".to_owned()
}
fn default_vault_kubernetes_mount() -> String {
    "kubernetes".to_owned()
}
fn default_vault_jwt_file() -> PathBuf {
    PathBuf::from("/var/run/secrets/kubernetes.io/serviceaccount/token")
}
fn default_renew_signal() -> String {
    "SIGHUP".to_owned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn minimal_file_gets_defaults() {
        let json = br#"{"version":1,"ca":{"protocol":"est","url":"https://est.example"},"sans":["a.example"]}"#;
        let config = EnrollConfig::from_json(json).unwrap();
        assert_eq!(config.output_dir, PathBuf::from("/run/ocicert"));
        assert_eq!(config.key_type, KeyType::EcdsaP256);
        assert!(config.required);
        assert_eq!(config.renew_before, "33%");
        let names: Vec<String> = [
            KeyType::EcdsaP256,
            KeyType::EcdsaP384,
            KeyType::Ed25519,
            KeyType::Rsa2048,
            KeyType::Rsa3072,
        ]
        .iter()
        .map(|key_type| serde_json::to_string(key_type).unwrap())
        .collect();
        assert_eq!(
            names,
            [
                r#""ecdsa-p256""#,
                r#""ecdsa-p384""#,
                r#""ed25519""#,
                r#""rsa-2048""#,
                r#""rsa-3072""#
            ]
        );
        let Ca::Est(est) = &config.ca else {
            panic!("not est")
        };
        assert_eq!(est.password_env, "OCICERT_EST_PASSWORD");
    }

    #[test]
    fn round_trip_every_protocol() {
        let mut vault = VaultOptions::new("https://vault.example:8200", "web");
        vault.auth = VaultAuth::Kubernetes;
        vault.kubernetes_role = Some("app".into());
        for ca in [
            Ca::Acme(AcmeOptions::new("https://acme.example/dir")),
            Ca::Est(EstOptions::new("https://est.example")),
            Ca::Vault(vault),
        ] {
            let mut config = EnrollConfig::new(ca);
            config.sans = vec!["${HOSTNAME}".into()];
            config.key_type = KeyType::Rsa3072;
            let back = EnrollConfig::from_json(&config.to_json()).unwrap();
            assert_eq!(back, config);
        }
    }

    #[test]
    fn rejects_typos_versions_and_secrets() {
        let typo =
            br#"{"version":1,"ca":{"protocol":"acme","url":"u"},"sans":["a"],"reqired":false}"#;
        assert!(matches!(
            EnrollConfig::from_json(typo),
            Err(Error::Syntax(_))
        ));
        // A secret has no field to go in.
        let secret = br#"{"version":1,"ca":{"protocol":"vault","url":"u","role":"r","token":"s.x"},"sans":["a"]}"#;
        assert!(matches!(
            EnrollConfig::from_json(secret),
            Err(Error::Syntax(_))
        ));
        let v2 = br#"{"version":2,"ca":{"protocol":"acme","url":"u"},"sans":["a"]}"#;
        assert!(matches!(
            EnrollConfig::from_json(v2),
            Err(Error::Version { found: 2 })
        ));
        let no_sans = br#"{"version":1,"ca":{"protocol":"acme","url":"u"},"sans":[]}"#;
        assert!(matches!(
            EnrollConfig::from_json(no_sans),
            Err(Error::Invalid(_))
        ));
    }
}
