//! The one HTTP(S) client of the stub (ureq + rustls/ring, blocking, no async runtime) and the
//! classification of transport failures into the one-line causes the stub prints (DNS, connection,
//! TLS trust, timeout).
//!
//! It trusts only the bundle the config names (or the Mozilla roots compiled in), never the
//! image's `/etc/ssl`, which a scratch image does not have. It does not interpret status codes:
//! the protocol modules decide what a 401 or a 400 means.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig};

/// The classes of failure the stub reports in its one-line message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The config file or a template.
    Config,
    /// A secret is missing or unreadable.
    Secret,
    /// The CA's host name does not resolve.
    Dns,
    /// Nothing listens, or the connection broke.
    Connect,
    /// The server's certificate does not chain to the configured bundle.
    TlsTrust,
    /// Any other TLS failure.
    Tls,
    /// The time budget ran out.
    Timeout,
    /// The CA rejected our credentials.
    Auth,
    /// The CA refused the request (policy, bad CSR, rate limit, server error).
    CaRefusal,
    /// The CA answered something this stub cannot read.
    Protocol,
    /// The output dir cannot be written.
    Storage,
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Config => "config",
            Self::Secret => "secret",
            Self::Dns => "DNS",
            Self::Connect => "connection",
            Self::TlsTrust => "TLS trust",
            Self::Tls => "TLS",
            Self::Timeout => "timeout",
            Self::Auth => "auth",
            Self::CaRefusal => "CA refusal",
            Self::Protocol => "protocol",
            Self::Storage => "output dir",
        })
    }
}

/// A transport failure, with the URL and its class.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request did not complete.
    #[error("{method} {url}: {detail}")]
    Transport {
        /// GET, POST, HEAD.
        method: &'static str,
        /// The URL.
        url: String,
        /// DNS, connection, TLS trust, timeout…
        cause: Cause,
        /// What the transport said, made readable.
        detail: String,
    },
    /// The trust bundle cannot be read.
    #[error("cannot read the TLS CA bundle `{path}`")]
    Bundle {
        /// The bundle's path.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The TLS client key is not usable.
    #[error("the TLS client key is not a usable PKCS#8 key")]
    ClientKey,
    /// The trust bundle holds no certificate.
    #[error("the TLS CA bundle `{0}` holds no PEM certificate")]
    EmptyBundle(String),
}

impl Error {
    /// The failure class for the one-line message.
    pub fn cause(&self) -> Cause {
        match self {
            Self::Transport { cause, .. } => *cause,
            Self::Bundle { .. } | Self::EmptyBundle(_) => Cause::Config,
            Self::ClientKey => Cause::Secret,
        }
    }
}

/// A response: status, the headers the protocols read, and the body.
#[derive(Debug)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Body, at most 4 MiB.
    pub body: Vec<u8>,
}

impl Response {
    /// The first header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// `true` for 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as text, for error messages (cut to 300 characters, one line).
    pub fn excerpt(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        line.chars().take(300).collect()
    }
}

/// A TLS client identity (EST client-cert auth, `simplereenroll`).
pub struct Identity {
    /// Leaf first, DER.
    pub chain: Vec<Vec<u8>>,
    /// PKCS#8 DER.
    pub key_pkcs8: Vec<u8>,
}

/// The blocking client.
#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
}

impl Client {
    /// A client that trusts `bundle` (PEM; `None`: Mozilla roots) and gives every request at most
    /// `timeout`.
    pub fn new(
        bundle: Option<&Path>,
        timeout: Duration,
        identity: Option<&Identity>,
    ) -> Result<Self, Error> {
        let client_cert = match identity {
            None => None,
            Some(identity) => {
                let chain: Vec<Certificate<'static>> = identity
                    .chain
                    .iter()
                    .map(|der| Certificate::from_der(der).to_owned())
                    .collect();
                // ureq takes typed keys only through PEM; the PEM lives in memory only.
                let pem = crate::der::pem_encode("PRIVATE KEY", &identity.key_pkcs8);
                let key = PrivateKey::from_pem(pem.as_bytes()).map_err(|_| Error::ClientKey)?;
                Some(ClientCert::new_with_certs(&chain, key))
            }
        };
        let roots = match bundle {
            None => RootCerts::WebPki,
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| Error::Bundle {
                    path: path.display().to_string(),
                    source,
                })?;
                let certificates: Vec<Certificate<'static>> =
                    crate::der::pem_decode_all(&text, "CERTIFICATE")
                        .unwrap_or_default()
                        .into_iter()
                        .map(|der| Certificate::from_der(&der).to_owned())
                        .collect();
                if certificates.is_empty() {
                    return Err(Error::EmptyBundle(path.display().to_string()));
                }
                RootCerts::Specific(Arc::new(certificates))
            }
        };
        let tls = TlsConfig::builder()
            .root_certs(roots)
            .client_cert(client_cert)
            .build();
        let config = ureq::Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .timeout_connect(Some(timeout.min(Duration::from_secs(10))))
            .max_redirects(0)
            .user_agent(concat!("ocicert-enroll/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(Self {
            agent: config.new_agent(),
        })
    }

    /// GET.
    pub fn get(&self, url: &str, headers: &[(&str, &str)]) -> Result<Response, Error> {
        let mut request = self.agent.get(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        finish("GET", url, request.call())
    }

    /// HEAD.
    pub fn head(&self, url: &str) -> Result<Response, Error> {
        finish("HEAD", url, self.agent.head(url).call())
    }

    /// POST with a body.
    pub fn post(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response, Error> {
        let mut request = self.agent.post(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        finish("POST", url, request.send(body))
    }
}

fn finish(
    method: &'static str,
    url: &str,
    result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<Response, Error> {
    let transport = |error: &ureq::Error| {
        let (cause, detail) = classify(error);
        Error::Transport {
            method,
            url: url.to_owned(),
            cause,
            detail,
        }
    };
    let mut response = result.map_err(|error| transport(&error))?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = response
        .body_mut()
        .with_config()
        .limit(4 * 1024 * 1024)
        .read_to_vec()
        .map_err(|error| transport(&error))?;
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn classify(error: &ureq::Error) -> (Cause, String) {
    use std::io::ErrorKind;
    match error {
        ureq::Error::HostNotFound => (Cause::Dns, "host name does not resolve".to_owned()),
        ureq::Error::Timeout(which) => (Cause::Timeout, format!("timed out ({which})")),
        ureq::Error::ConnectionFailed => (Cause::Connect, "connection failed".to_owned()),
        ureq::Error::Io(io) => {
            // rustls reports handshake failures through the stream as io errors.
            if let Some(tls) = io
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            {
                return tls_cause(tls);
            }
            let text = io.to_string();
            let cause = match io.kind() {
                _ if text.contains("lookup address") => Cause::Dns,
                ErrorKind::TimedOut | ErrorKind::WouldBlock => Cause::Timeout,
                ErrorKind::ConnectionRefused
                | ErrorKind::ConnectionReset
                | ErrorKind::ConnectionAborted
                | ErrorKind::NotConnected
                | ErrorKind::AddrNotAvailable
                | ErrorKind::NetworkUnreachable
                | ErrorKind::HostUnreachable
                | ErrorKind::BrokenPipe
                | ErrorKind::UnexpectedEof => Cause::Connect,
                _ => Cause::Connect,
            };
            (cause, text)
        }
        ureq::Error::Rustls(tls) => tls_cause(tls),
        ureq::Error::Tls(text) => (Cause::Tls, (*text).to_owned()),
        other => (Cause::Protocol, other.to_string()),
    }
}

fn tls_cause(tls: &rustls::Error) -> (Cause, String) {
    let cause = match tls {
        rustls::Error::InvalidCertificate(_) => Cause::TlsTrust,
        _ => Cause::Tls,
    };
    (cause, format!("TLS: {tls}"))
}
