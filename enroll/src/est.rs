//! EST (RFC 7030, with the RFC 8951 clarifications): `/cacerts`, `/simpleenroll` and
//! `/simplereenroll` under `/.well-known/est[/label]`. The CSR goes out as base64 DER
//! `application/pkcs10`; certificates come back as base64 DER PKCS#7 certs-only
//! `application/pkcs7-mime`. Authentication is HTTP Basic (sent with the request) and/or the TLS
//! client certificate the [`Client`] was built with.
//!
//! Not implemented: `/csrattrs`, `/serverkeygen` (the key must never leave the container) and
//! `/fullcmc`.

use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::der;
use crate::http::{Cause, Client, Response};
use crate::store::Issued;

/// Why an EST enrollment failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Transport.
    #[error(transparent)]
    Http(#[from] crate::http::Error),
    /// 401/403.
    #[error(
        "EST {operation} was refused: HTTP {status} (check the EST user name and password or client certificate)"
    )]
    Auth {
        /// `simpleenroll`, `cacerts`…
        operation: &'static str,
        /// HTTP status.
        status: u16,
    },
    /// Another error status.
    #[error("EST {operation} failed: HTTP {status}: {detail}")]
    Refused {
        /// `simpleenroll`, `cacerts`…
        operation: &'static str,
        /// HTTP status.
        status: u16,
        /// The server's text.
        detail: String,
    },
    /// Not `application/pkcs7-mime`.
    #[error("EST {operation} answered `{content_type}`, not application/pkcs7-mime")]
    ContentType {
        /// `simpleenroll`, `cacerts`…
        operation: &'static str,
        /// What it said.
        content_type: String,
    },
    /// Not base64.
    #[error("EST {0} response is not base64")]
    Base64(&'static str),
    /// Not PKCS#7 certs-only.
    #[error("EST {operation} response is not a PKCS#7 certs-only message")]
    Pkcs7 {
        /// `simpleenroll`, `cacerts`…
        operation: &'static str,
        /// The parse error.
        #[source]
        source: der::Error,
    },
    /// No certificate for our key in the response.
    #[error("EST {0} response holds no certificate for the stub's key")]
    NoLeaf(&'static str),
    /// 202 until the deadline.
    #[error("EST enrollment still pending (HTTP 202) when the time budget ran out")]
    Pending,
}

impl Error {
    /// The failure class for the one-line message.
    pub fn cause(&self) -> Cause {
        match self {
            Self::Http(error) => error.cause(),
            Self::Auth { .. } => Cause::Auth,
            Self::Refused { .. } => Cause::CaRefusal,
            Self::Pending => Cause::Timeout,
            Self::ContentType { .. } | Self::Base64(_) | Self::Pkcs7 { .. } | Self::NoLeaf(_) => {
                Cause::Protocol
            }
        }
    }
}

/// Settings of one EST enrollment.
pub struct Settings<'a> {
    /// `https://host[:port]`.
    pub url: &'a str,
    /// Optional CA label.
    pub label: Option<&'a str>,
    /// HTTP Basic user and password.
    pub basic: Option<(&'a str, &'a str)>,
    /// `simplereenroll` (renewal with the current certificate as TLS client identity) instead of
    /// `simpleenroll`.
    pub reenroll: bool,
    /// When to give up.
    pub deadline: Instant,
}

/// Fetches `/cacerts`, then enrolls `csr_der`. `spki` picks our certificate out of the answer.
pub fn enroll(
    client: &Client,
    settings: &Settings<'_>,
    csr_der: &[u8],
    spki: &[u8],
) -> Result<Issued, Error> {
    let mut base = format!("{}/.well-known/est", settings.url.trim_end_matches('/'));
    if let Some(label) = settings.label {
        base = format!("{base}/{label}");
    }
    let response = client.get(
        &format!("{base}/cacerts"),
        &[("accept", "application/pkcs7-mime")],
    )?;
    let ca = certificates("cacerts", &response)?;

    let operation = if settings.reenroll {
        "simplereenroll"
    } else {
        "simpleenroll"
    };
    let url = format!("{base}/{operation}");
    let body = base64_lines(csr_der);
    let authorization = settings.basic.map(|(user, password)| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
    });
    let mut headers = vec![
        ("content-type", "application/pkcs10"),
        ("content-transfer-encoding", "base64"),
        ("accept", "application/pkcs7-mime"),
    ];
    if let Some(authorization) = &authorization {
        headers.push(("authorization", authorization.as_str()));
    }
    loop {
        let response = client.post(&url, &headers, body.as_bytes())?;
        if response.status == 202 {
            // RFC 7030 §4.2.3: pending manual approval; retry the same request after Retry-After.
            let wait = response
                .header("retry-after")
                .and_then(|value| value.trim().parse::<u64>().ok())
                .map_or(Duration::from_secs(5), Duration::from_secs);
            if Instant::now() + wait >= settings.deadline {
                return Err(Error::Pending);
            }
            std::thread::sleep(wait);
            continue;
        }
        let mut certificates = certificates(operation, &response)?;
        let position = certificates
            .iter()
            .position(|certificate| {
                der::parse_certificate(certificate).is_ok_and(|info| info.spki == spki)
            })
            .ok_or(Error::NoLeaf(operation))?;
        let leaf = certificates.remove(position);
        return Ok(Issued {
            leaf,
            chain: certificates,
            ca,
        });
    }
}

fn certificates(operation: &'static str, response: &Response) -> Result<Vec<Vec<u8>>, Error> {
    match response.status {
        200 => {}
        401 | 403 => {
            return Err(Error::Auth {
                operation,
                status: response.status,
            });
        }
        status => {
            return Err(Error::Refused {
                operation,
                status,
                detail: response.excerpt(),
            });
        }
    }
    let content_type = response.header("content-type").unwrap_or_default();
    if !content_type
        .trim()
        .to_ascii_lowercase()
        .starts_with("application/pkcs7-mime")
    {
        return Err(Error::ContentType {
            operation,
            content_type: content_type.to_owned(),
        });
    }
    let text: Vec<u8> = response
        .body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| Error::Base64(operation))?;
    der::pkcs7_certificates(&der).map_err(|source| Error::Pkcs7 { operation, source })
}

/// Base64 in 64-character lines (RFC 2045 allows up to 76), CRLF-terminated.
fn base64_lines(der: &[u8]) -> String {
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    text.as_bytes()
        .chunks(64)
        .map(|line| format!("{}\r\n", String::from_utf8_lossy(line)))
        .collect()
}
