//! Vault / OpenBao PKI: `POST /v1/<mount>/sign/<role>` with our CSR and `X-Vault-Token`, after
//! an optional `POST /v1/auth/<kubernetes mount>/login` with the service-account JWT. Request and
//! response bodies are Vault's documented JSON.
//!
//! Only `sign` is used: `issue` would have Vault generate the private key, which must never leave
//! the container. The token is not renewed or revoked; the stub uses it for one call.

use serde::Deserialize;
use serde_json::json;

use crate::der::{self, San};
use crate::http::{Cause, Client, Response};
use crate::store::Issued;

/// Why a Vault enrollment failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Transport.
    #[error(transparent)]
    Http(#[from] crate::http::Error),
    /// 401/403 (`permission denied`).
    #[error("Vault {operation} was refused: HTTP {status}: {detail}")]
    Auth {
        /// `login`, `sign`.
        operation: &'static str,
        /// HTTP status.
        status: u16,
        /// Vault's `errors`.
        detail: String,
    },
    /// Another error status.
    #[error("Vault {operation} failed: HTTP {status}: {detail}")]
    Refused {
        /// `login`, `sign`.
        operation: &'static str,
        /// HTTP status.
        status: u16,
        /// Vault's `errors`.
        detail: String,
    },
    /// JSON this stub cannot read.
    #[error("Vault {operation} returned unexpected JSON")]
    Json {
        /// `login`, `sign`.
        operation: &'static str,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The PEM in `data` is not certificates.
    #[error("Vault returned a malformed certificate")]
    Pem(#[source] der::Error),
    /// `data.certificate` is empty.
    #[error("Vault returned no certificate")]
    Empty,
    /// No token in the env and no Kubernetes login configured.
    #[error("no Vault token: set `{0}` (or `{0}_FILE`)")]
    NoToken(String),
    /// The JWT file cannot be read.
    #[error("cannot read the service-account JWT `{path}`")]
    Jwt {
        /// The path.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The failure class for the one-line message.
    pub fn cause(&self) -> Cause {
        match self {
            Self::Http(error) => error.cause(),
            Self::Auth { .. } => Cause::Auth,
            Self::Refused { .. } => Cause::CaRefusal,
            Self::NoToken(_) | Self::Jwt { .. } => Cause::Secret,
            Self::Json { .. } | Self::Pem(_) | Self::Empty => Cause::Protocol,
        }
    }
}

/// How to get the token.
pub enum Login<'a> {
    /// A token from the runtime.
    Token(String),
    /// Kubernetes auth: mount, role, JWT.
    Kubernetes {
        /// Auth method mount.
        mount: &'a str,
        /// Vault role.
        role: &'a str,
        /// The service-account JWT.
        jwt: String,
    },
}

/// Settings of one Vault enrollment.
pub struct Settings<'a> {
    /// Vault address.
    pub url: &'a str,
    /// PKI mount.
    pub mount: &'a str,
    /// PKI role.
    pub role: &'a str,
    /// Token or Kubernetes login.
    pub login: Login<'a>,
    /// `ttl` parameter.
    pub ttl: Option<&'a str>,
    /// `X-Vault-Namespace`.
    pub namespace: Option<&'a str>,
}

#[derive(Deserialize)]
struct LoginResponse {
    auth: LoginAuth,
}

#[derive(Deserialize)]
struct LoginAuth {
    client_token: String,
}

#[derive(Deserialize)]
struct SignResponse {
    data: SignData,
}

#[derive(Deserialize)]
struct SignData {
    certificate: String,
    #[serde(default)]
    issuing_ca: String,
    #[serde(default)]
    ca_chain: Vec<String>,
}

/// Logs in if needed, then signs `csr_der` for `common_name` and `sans`.
pub fn enroll(
    client: &Client,
    settings: &Settings<'_>,
    common_name: Option<&str>,
    sans: &[San],
    csr_der: &[u8],
) -> Result<Issued, Error> {
    let base = format!("{}/v1", settings.url.trim_end_matches('/'));
    let mut headers: Vec<(&str, &str)> = vec![("content-type", "application/json")];
    if let Some(namespace) = settings.namespace {
        headers.push(("x-vault-namespace", namespace));
    }
    let token = match &settings.login {
        Login::Token(token) => token.clone(),
        Login::Kubernetes { mount, role, jwt } => {
            let body = json!({ "role": role, "jwt": jwt }).to_string();
            let response = client.post(
                &format!("{base}/auth/{mount}/login"),
                &headers,
                body.as_bytes(),
            )?;
            check("login", &response)?;
            let login: LoginResponse =
                serde_json::from_slice(&response.body).map_err(|source| Error::Json {
                    operation: "login",
                    source,
                })?;
            login.auth.client_token
        }
    };

    let dns: Vec<&str> = sans
        .iter()
        .filter_map(|san| {
            if let San::Dns(name) = san {
                Some(name.as_str())
            } else {
                None
            }
        })
        .collect();
    let ips: Vec<String> = sans
        .iter()
        .filter_map(|san| {
            if let San::Ip(ip) = san {
                Some(ip.to_string())
            } else {
                None
            }
        })
        .collect();
    let uris: Vec<&str> = sans
        .iter()
        .filter_map(|san| {
            if let San::Uri(uri) = san {
                Some(uri.as_str())
            } else {
                None
            }
        })
        .collect();
    let mut body = json!({
        "csr": der::pem_encode("CERTIFICATE REQUEST", csr_der),
        "format": "pem",
        "alt_names": dns.join(","),
        "ip_sans": ips.join(","),
        "uri_sans": uris.join(","),
    });
    if let Some(common_name) = common_name {
        body["common_name"] = json!(common_name);
    }
    if let Some(ttl) = settings.ttl {
        body["ttl"] = json!(ttl);
    }
    headers.push(("x-vault-token", token.as_str()));
    let url = format!("{base}/{}/sign/{}", settings.mount, settings.role);
    let response = client.post(&url, &headers, body.to_string().as_bytes())?;
    check("sign", &response)?;
    let signed: SignResponse =
        serde_json::from_slice(&response.body).map_err(|source| Error::Json {
            operation: "sign",
            source,
        })?;
    let leaf = der::pem_decode_all(&signed.data.certificate, "CERTIFICATE")
        .map_err(Error::Pem)?
        .into_iter()
        .next()
        .ok_or(Error::Empty)?;
    // `ca_chain` is issuing CA first, up to the root when Vault knows it; older Vaults only send
    // `issuing_ca`.
    let mut chain = Vec::new();
    for pem in &signed.data.ca_chain {
        chain.extend(der::pem_decode_all(pem, "CERTIFICATE").map_err(Error::Pem)?);
    }
    if chain.is_empty() {
        chain = der::pem_decode_all(&signed.data.issuing_ca, "CERTIFICATE").map_err(Error::Pem)?;
    }
    let ca = chain.last().cloned().into_iter().collect();
    // The root (self-issued) belongs in ca.pem, not in the chain a server presents.
    chain.retain(|certificate| {
        der::parse_certificate(certificate).map_or(true, |info| !info.self_issued)
    });
    Ok(Issued { leaf, chain, ca })
}

fn check(operation: &'static str, response: &Response) -> Result<(), Error> {
    if response.is_success() {
        return Ok(());
    }
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<String>,
    }
    let detail = serde_json::from_slice::<Errors>(&response.body)
        .map_or_else(|_| response.excerpt(), |errors| errors.errors.join("; "));
    let status = response.status;
    if status == 401 || status == 403 {
        Err(Error::Auth {
            operation,
            status,
            detail,
        })
    } else {
        Err(Error::Refused {
            operation,
            status,
            detail,
        })
    }
}
