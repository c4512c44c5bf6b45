//! One enrollment pass, start to finish: resolve the config against the container's environment
//! ([`Plan`]), reuse the certificate in the output dir when it is still good, otherwise generate
//! a key, build the CSR, enroll with the configured protocol and write the files.
//!
//! It neither execs nor supervises (that is `main` and [`crate::renew`]) and prints nothing: the
//! caller turns the result into one log line.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ocicert_enroll_config::{Ca, EnrollConfig, VaultAuth, env};

use crate::der::{CertInfo, San};
use crate::http::{Cause, Client, Identity};
use crate::key::Key;
use crate::store::{self, Existing, Paths, Threshold};
use crate::{acme, der, est, template, vault};

/// Any failure of an enrollment pass, by concept. [`Error::cause`] classifies it and
/// [`Error::one_line`] renders the message the stub prints.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The config file cannot be read.
    #[error("cannot read the config `{path}`")]
    ConfigFile {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The config file is invalid.
    #[error(transparent)]
    Config(#[from] ocicert_enroll_config::Error),
    /// A template or secret.
    #[error(transparent)]
    Template(#[from] template::Error),
    /// Key or CSR.
    #[error(transparent)]
    Key(#[from] crate::key::Error),
    /// Client setup (trust bundle).
    #[error(transparent)]
    Http(#[from] crate::http::Error),
    /// ACME.
    #[error(transparent)]
    Acme(#[from] acme::Error),
    /// EST.
    #[error(transparent)]
    Est(#[from] est::Error),
    /// Vault.
    #[error(transparent)]
    Vault(#[from] vault::Error),
    /// Output dir or issued certificate.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// A client identity file for EST.
    #[error("cannot use the EST client certificate `{path}`: {detail}")]
    ClientIdentity {
        /// The file.
        path: String,
        /// What is wrong.
        detail: String,
    },
}

impl Error {
    /// The failure class.
    pub fn cause(&self) -> Cause {
        match self {
            Self::ConfigFile { .. } | Self::Config(_) => Cause::Config,
            Self::Template(template::Error::SecretFile { .. }) | Self::ClientIdentity { .. } => {
                Cause::Secret
            }
            Self::Template(_) | Self::Key(_) => Cause::Config,
            Self::Http(error) => error.cause(),
            Self::Acme(error) => error.cause(),
            Self::Est(error) => error.cause(),
            Self::Vault(error) => error.cause(),
            Self::Store(store::Error::Write { .. }) => Cause::Storage,
            Self::Store(store::Error::AppCa { .. } | store::Error::Threshold(_)) => Cause::Config,
            Self::Store(_) => Cause::CaRefusal,
        }
    }

    /// `<cause>: <message>: <source>: …` on one line.
    pub fn one_line(&self) -> String {
        let mut line = format!("{}: {self}", self.cause());
        let mut source = std::error::Error::source(self);
        while let Some(error) = source {
            let text = error.to_string();
            if !line.ends_with(&text) {
                line.push_str(": ");
                line.push_str(&text);
            }
            source = error.source();
        }
        line.replace(['\n', '\r'], " ")
    }
}

/// The config resolved against this container: concrete SANs, CN, threshold and paths.
pub struct Plan {
    /// The config as read.
    pub config: EnrollConfig,
    /// Expanded SANs, in config order, duplicates removed.
    pub sans: Vec<San>,
    /// Expanded common name.
    pub common_name: Option<String>,
    /// Reuse/renew threshold.
    pub threshold: Threshold,
    /// Output files.
    pub paths: Paths,
}

/// What a pass did.
pub enum Outcome {
    /// The certificate in the output dir is still good.
    Reused(CertInfo),
    /// A new certificate was written.
    Enrolled {
        /// The new leaf.
        info: CertInfo,
        /// Why the old one was not reused.
        reason: String,
    },
}

impl Outcome {
    /// The certificate now in the output dir.
    pub fn info(&self) -> &CertInfo {
        match self {
            Self::Reused(info) | Self::Enrolled { info, .. } => info,
        }
    }
}

/// Reads and validates the config file.
pub fn load(path: &std::path::Path) -> Result<EnrollConfig, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::ConfigFile {
        path: path.to_owned(),
        source,
    })?;
    Ok(EnrollConfig::from_json(&bytes)?)
}

impl Plan {
    /// Expands templates with `lookup` (the process environment in production).
    pub fn new(
        config: EnrollConfig,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, Error> {
        let mut sans = Vec::new();
        for template_text in &config.sans {
            let san = template::san(template_text, lookup)?;
            if !sans.contains(&san) {
                sans.push(san);
            }
        }
        let common_name = match &config.common_name {
            Some(template_text) => Some(template::expand(template_text, lookup)?),
            None => sans.iter().find_map(|san| match san {
                San::Dns(name) => Some(name.clone()),
                _ => None,
            }),
        };
        let threshold = Threshold::parse(&config.renew_before)?;
        let paths = Paths::new(&config.output_dir);
        Ok(Self {
            config,
            sans,
            common_name,
            threshold,
            paths,
        })
    }

    /// The env vars the program gets.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let text = |path: &PathBuf| path.to_string_lossy().into_owned();
        vec![
            (env::CERT_FILE, text(&self.paths.cert)),
            (env::KEY_FILE, text(&self.paths.key)),
            (env::CA_FILE, text(&self.paths.ca)),
            (env::CHAIN_FILE, text(&self.paths.chain)),
        ]
    }

    /// Reuses the certificate in the output dir if it is good, else enrolls.
    pub fn obtain(&self, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Outcome, Error> {
        match store::check(&self.paths, &self.sans, self.threshold, now()) {
            Existing::Reuse(info) => Ok(Outcome::Reused(info)),
            Existing::Enroll(reason) => {
                let info = self.enroll(lookup, false)?;
                Ok(Outcome::Enrolled { info, reason })
            }
        }
    }

    /// Enrolls unconditionally and writes the files. `renewal` uses EST `simplereenroll` with
    /// the current certificate as TLS client identity.
    pub fn enroll(
        &self,
        lookup: &dyn Fn(&str) -> Option<String>,
        renewal: bool,
    ) -> Result<CertInfo, Error> {
        let config = &self.config;
        let deadline = Instant::now() + Duration::from_secs(config.timeout_seconds.max(1));
        let timeout = Duration::from_secs(config.timeout_seconds.max(1));
        let key = Key::generate(config.key_type)?;
        let csr = key.csr(self.common_name.as_deref(), &self.sans)?;
        let bundle = config.tls_ca_file.as_deref();
        let issued = match &config.ca {
            Ca::Acme(options) => {
                let kid = template::secret(&options.eab_kid_env, lookup)?;
                let hmac = template::secret(&options.eab_hmac_env, lookup)?;
                let eab = acme::Eab::from_secrets(kid, hmac)?;
                let client = Client::new(bundle, timeout, None)?;
                let settings = acme::Settings {
                    directory_url: &options.url,
                    contact: &options.contact,
                    eab: eab.as_ref(),
                    http01_bind: &options.http01_bind,
                    http01_port: options.http01_port,
                    deadline,
                };
                acme::enroll(&client, &settings, &self.sans, &csr)?
            }
            Ca::Est(options) => {
                let username = template::secret(&options.username_env, lookup)?;
                let password = template::secret(&options.password_env, lookup)?;
                let identity = if renewal {
                    Some(self.current_identity()?)
                } else {
                    est_client_identity(
                        lookup(&options.client_cert_env).filter(|path| !path.is_empty()),
                        lookup(&options.client_key_env).filter(|path| !path.is_empty()),
                    )?
                };
                let client = Client::new(bundle, timeout, identity.as_ref())?;
                let settings = est::Settings {
                    url: &options.url,
                    label: options.label.as_deref(),
                    basic: username.as_deref().zip(password.as_deref()),
                    reenroll: renewal,
                    deadline,
                };
                est::enroll(&client, &settings, &csr, &key.spki())?
            }
            Ca::Vault(options) => {
                let login = match options.auth {
                    VaultAuth::Token => vault::Login::Token(
                        template::secret(&options.token_env, lookup)?
                            .ok_or_else(|| vault::Error::NoToken(options.token_env.clone()))?,
                    ),
                    VaultAuth::Kubernetes => vault::Login::Kubernetes {
                        mount: &options.kubernetes_mount,
                        role: options.kubernetes_role.as_deref().unwrap_or_default(),
                        jwt: template::read_secret_file(&options.jwt_file).map_err(|source| {
                            vault::Error::Jwt {
                                path: options.jwt_file.display().to_string(),
                                source,
                            }
                        })?,
                    },
                };
                let client = Client::new(bundle, timeout, None)?;
                let settings = vault::Settings {
                    url: &options.url,
                    mount: &options.mount,
                    role: &options.role,
                    login,
                    ttl: options.ttl.as_deref(),
                    namespace: options.namespace.as_deref(),
                };
                vault::enroll(
                    &client,
                    &settings,
                    self.common_name.as_deref(),
                    &self.sans,
                    &csr,
                )?
            }
        };
        Ok(store::write(
            &self.paths,
            &key,
            &issued,
            &self.sans,
            config.app_ca_file.as_deref(),
        )?)
    }

    /// The certificate and key in the output dir, as a TLS client identity.
    fn current_identity(&self) -> Result<Identity, Error> {
        let bad = |detail: &str| Error::ClientIdentity {
            path: self.paths.cert.display().to_string(),
            detail: detail.to_owned(),
        };
        let cert =
            std::fs::read_to_string(&self.paths.cert).map_err(|error| bad(&error.to_string()))?;
        let chain =
            der::pem_decode_all(&cert, "CERTIFICATE").map_err(|error| bad(&error.to_string()))?;
        let key =
            std::fs::read_to_string(&self.paths.key).map_err(|error| bad(&error.to_string()))?;
        let key = Key::from_pem(&key).map_err(|error| bad(&error.to_string()))?;
        let identity = Identity {
            chain,
            key_pkcs8: key.to_pkcs8_der(),
        };
        check_identity(&identity).map_err(bad)?;
        Ok(identity)
    }
}

/// The EST client identity named by the runtime (two env vars holding file paths).
fn est_client_identity(
    cert_path: Option<String>,
    key_path: Option<String>,
) -> Result<Option<Identity>, Error> {
    let (cert_path, key_path) = match (cert_path, key_path) {
        (None, None) => return Ok(None),
        (Some(cert), Some(key)) => (cert, key),
        (Some(path), None) | (None, Some(path)) => {
            return Err(Error::ClientIdentity {
                path,
                detail: "both the certificate and the key are needed".into(),
            });
        }
    };
    let bad = |path: &str, detail: String| Error::ClientIdentity {
        path: path.to_owned(),
        detail,
    };
    let cert =
        std::fs::read_to_string(&cert_path).map_err(|error| bad(&cert_path, error.to_string()))?;
    let chain = der::pem_decode_all(&cert, "CERTIFICATE")
        .map_err(|error| bad(&cert_path, error.to_string()))?;
    if chain.is_empty() {
        return Err(bad(&cert_path, "no PEM certificate".into()));
    }
    let key =
        std::fs::read_to_string(&key_path).map_err(|error| bad(&key_path, error.to_string()))?;
    let key_pkcs8 = der::pem_decode_all(&key, "PRIVATE KEY")
        .ok()
        .and_then(|blocks| blocks.into_iter().next())
        .ok_or_else(|| bad(&key_path, "not a PKCS#8 `PRIVATE KEY` PEM".into()))?;
    let identity = Identity { chain, key_pkcs8 };
    check_identity(&identity).map_err(|detail| bad(&cert_path, detail.to_owned()))?;
    Ok(Some(identity))
}

/// What rustls would otherwise reject by panicking inside ureq: a v1 certificate, or a key that
/// is not the certificate's.
fn check_identity(identity: &Identity) -> Result<(), &'static str> {
    let leaf = identity.chain.first().ok_or("no certificate")?;
    let info = der::parse_certificate(leaf).map_err(|_| "the certificate does not parse")?;
    if info.version != 2 {
        return Err("not an X.509 v3 certificate");
    }
    let key = Key::from_pkcs8_der(&identity.key_pkcs8)
        .map_err(|_| "the key is not a usable PKCS#8 key")?;
    if key.spki() != info.spki {
        return Err("the key does not belong to the certificate");
    }
    Ok(())
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64)
}
