//! ACME (RFC 8555) over the stub's blocking client: account (with External Account Binding),
//! order, http-01 challenges answered by a responder the stub runs during enrollment only,
//! finalize with our CSR, download the chain. `badNonce` answers are retried with the fresh nonce.
//!
//! The account key is ephemeral (ES256, in memory): each enrollment registers or, with EAB, binds
//! a new account, so there is nothing to store and no account key to leak. Only http-01 is
//! answered; dns-01 and tls-alpn-01 need infrastructure a stub cannot own. No revocation, no
//! key change.

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::der::San;
use crate::http::{Cause, Client, Response};
use crate::store::Issued;

const BAD_NONCE: &str = "urn:ietf:params:acme:error:badNonce";
const NONCE_RETRIES: usize = 10;

/// Why an ACME enrollment failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Transport.
    #[error(transparent)]
    Http(#[from] crate::http::Error),
    /// The server answered with an RFC 7807 problem (or a bare error status).
    #[error("{context}: ACME server said {status} {kind}: {detail}")]
    Problem {
        /// What the stub was doing.
        context: &'static str,
        /// HTTP status.
        status: u16,
        /// The problem type (`urn:ietf:params:acme:error:…`).
        kind: String,
        /// The problem detail.
        detail: String,
    },
    /// A response this stub cannot read.
    #[error("{context}: unexpected ACME response: {detail}")]
    Unexpected {
        /// What the stub was doing.
        context: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// An authorization or order ended `invalid`.
    #[error("ACME {what} for {identifier} is invalid: {detail}")]
    Invalid {
        /// `authorization`, `order`.
        what: &'static str,
        /// The identifier or order URL.
        identifier: String,
        /// The challenge error, if the server gave one.
        detail: String,
    },
    /// No challenge type this stub can answer.
    #[error("ACME offers no http-01 challenge for {0}")]
    NoHttp01(String),
    /// The http-01 responder could not bind its port.
    #[error("cannot listen on {address} for http-01 challenges{hint}")]
    Bind {
        /// `bind:port`.
        address: String,
        /// For EACCES: the capability hint.
        hint: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The time budget ran out while polling.
    #[error("ACME {0} did not complete in time")]
    Timeout(&'static str),
    /// The EAB HMAC key is not base64url.
    #[error("the ACME EAB HMAC key is not base64url")]
    EabKey,
    /// Only one of the EAB key id and HMAC was provided.
    #[error("ACME EAB needs both the key id and the HMAC key")]
    EabHalf,
    /// ring refused to make or use the account key.
    #[error("ACME account key: {0}")]
    Crypto(&'static str),
    /// The chain is not PEM certificates.
    #[error("the ACME certificate chain is not PEM")]
    Chain(#[source] crate::der::Error),
}

impl Error {
    /// The failure class for the one-line message.
    pub fn cause(&self) -> Cause {
        match self {
            Self::Http(error) => error.cause(),
            Self::Problem { kind, status, .. } => {
                let auth = [
                    "unauthorized",
                    "externalAccountRequired",
                    "accountDoesNotExist",
                    "userActionRequired",
                ];
                if auth.iter().any(|suffix| kind.ends_with(suffix))
                    || *status == 401
                    || *status == 403
                {
                    Cause::Auth
                } else {
                    Cause::CaRefusal
                }
            }
            Self::Invalid { .. } => Cause::CaRefusal,
            Self::Timeout(_) => Cause::Timeout,
            Self::EabKey | Self::EabHalf => Cause::Secret,
            Self::Bind { .. } => Cause::Config,
            Self::NoHttp01(_) | Self::Unexpected { .. } | Self::Chain(_) | Self::Crypto(_) => {
                Cause::Protocol
            }
        }
    }
}

/// External Account Binding credentials from the runtime.
pub struct Eab {
    /// Key id.
    pub kid: String,
    /// HMAC key, decoded.
    pub hmac: Vec<u8>,
}

impl Eab {
    /// From the runtime's key id and base64url HMAC (either both or neither).
    pub fn from_secrets(kid: Option<String>, hmac: Option<String>) -> Result<Option<Self>, Error> {
        match (kid, hmac) {
            (None, None) => Ok(None),
            (Some(kid), Some(hmac)) => {
                let trimmed = hmac.trim().trim_end_matches('=');
                let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(trimmed)
                    .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(trimmed))
                    .map_err(|_| Error::EabKey)?;
                Ok(Some(Self { kid, hmac: decoded }))
            }
            _ => Err(Error::EabHalf),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Directory {
    new_nonce: String,
    new_account: String,
    new_order: String,
}

#[derive(Deserialize)]
struct Order {
    status: String,
    #[serde(default)]
    authorizations: Vec<String>,
    finalize: String,
    #[serde(default)]
    certificate: Option<String>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct Authorization {
    status: String,
    identifier: Identifier,
    #[serde(default)]
    challenges: Vec<Challenge>,
}

#[derive(Deserialize)]
struct Identifier {
    value: String,
}

#[derive(Deserialize)]
struct Challenge {
    #[serde(rename = "type")]
    kind: String,
    url: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    error: Option<Value>,
}

/// Settings of one ACME enrollment.
pub struct Settings<'a> {
    /// Directory URL.
    pub directory_url: &'a str,
    /// Account contacts.
    pub contact: &'a [String],
    /// EAB credentials.
    pub eab: Option<&'a Eab>,
    /// http-01 responder address and port.
    pub http01_bind: &'a str,
    /// http-01 responder port.
    pub http01_port: u16,
    /// When to give up.
    pub deadline: Instant,
}

/// Runs one ACME enrollment for `sans` with the CSR `csr_der`.
pub fn enroll(
    client: &Client,
    settings: &Settings<'_>,
    sans: &[San],
    csr_der: &[u8],
) -> Result<Issued, Error> {
    let directory_response = client.get(settings.directory_url, &[])?;
    if !directory_response.is_success() {
        return Err(problem("fetching the directory", &directory_response));
    }
    let directory: Directory = parse("fetching the directory", &directory_response)?;
    let mut session = Session::new(client, directory)?;
    session.register(settings)?;

    let identifiers: Vec<Value> = sans
        .iter()
        .map(|san| match san {
            San::Ip(ip) => json!({"type": "ip", "value": ip.to_string()}),
            San::Dns(name) | San::Uri(name) => json!({"type": "dns", "value": name}),
        })
        .collect();
    let new_order = session.directory.new_order.clone();
    let response = session.post(&new_order, Some(&json!({ "identifiers": identifiers })))?;
    if response.status != 201 {
        return Err(problem("creating the order", &response));
    }
    let order_url = location(&response, "creating the order")?;
    let order: Order = parse("creating the order", &response)?;

    let mut responder = None;
    for url in &order.authorizations {
        session.authorize(url, settings, &mut responder)?;
    }
    drop(responder);

    let order = session.poll_order(&order_url, &["ready", "valid"], settings.deadline, "order")?;
    let order = if order.status == "ready" {
        let csr = b64(csr_der);
        let response = session.post(&order.finalize, Some(&json!({ "csr": csr })))?;
        if !response.is_success() {
            return Err(problem("finalizing the order", &response));
        }
        session.poll_order(&order_url, &["valid"], settings.deadline, "finalization")?
    } else {
        order
    };
    let certificate_url = order.certificate.ok_or_else(|| Error::Unexpected {
        context: "finalizing the order",
        detail: "valid order without a certificate URL".to_owned(),
    })?;
    let response = session.post(&certificate_url, None)?;
    if !response.is_success() {
        return Err(problem("downloading the certificate", &response));
    }
    let text = String::from_utf8_lossy(&response.body);
    let mut certificates =
        crate::der::pem_decode_all(&text, "CERTIFICATE").map_err(Error::Chain)?;
    if certificates.is_empty() {
        return Err(Error::Unexpected {
            context: "downloading the certificate",
            detail: "no PEM certificate".into(),
        });
    }
    let leaf = certificates.remove(0);
    // ACME returns leaf + intermediates; the issuer's CA bundle is the top of that chain unless
    // the config names one.
    let ca = certificates.last().cloned().into_iter().collect();
    Ok(Issued {
        leaf,
        chain: certificates,
        ca,
    })
}

struct Session<'a> {
    client: &'a Client,
    directory: Directory,
    nonce: Option<String>,
    key: EcdsaKeyPair,
    rng: SystemRandom,
    jwk: Value,
    thumbprint: String,
    kid: Option<String>,
}

impl<'a> Session<'a> {
    fn new(client: &'a Client, directory: Directory) -> Result<Self, Error> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| Error::Crypto("generation failed"))?;
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|_| Error::Crypto("unusable key"))?;
        let point = key.public_key().as_ref();
        let (x, y) = (b64(&point[1..33]), b64(&point[33..65]));
        // RFC 7638: the thumbprint hashes the required members in lexicographic order, no spaces.
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let thumbprint =
            b64(ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes()).as_ref());
        let jwk = json!({"crv": "P-256", "kty": "EC", "x": x, "y": y});
        Ok(Self {
            client,
            directory,
            nonce: None,
            key,
            rng,
            jwk,
            thumbprint,
            kid: None,
        })
    }

    fn register(&mut self, settings: &Settings<'_>) -> Result<(), Error> {
        let url = self.directory.new_account.clone();
        let mut payload = json!({ "termsOfServiceAgreed": true });
        if !settings.contact.is_empty() {
            payload["contact"] = json!(settings.contact);
        }
        if let Some(eab) = settings.eab {
            let protected = json!({"alg": "HS256", "kid": eab.kid, "url": url});
            let protected = b64(protected.to_string().as_bytes());
            let jwk = b64(self.jwk.to_string().as_bytes());
            let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &eab.hmac);
            let signature = ring::hmac::sign(&key, format!("{protected}.{jwk}").as_bytes());
            payload["externalAccountBinding"] = json!({"protected": protected, "payload": jwk, "signature": b64(signature.as_ref())});
        }
        let response = self.post(&url, Some(&payload))?;
        if !response.is_success() {
            return Err(problem("registering the account", &response));
        }
        self.kid = Some(location(&response, "registering the account")?);
        Ok(())
    }

    fn authorize(
        &mut self,
        url: &str,
        settings: &Settings<'_>,
        responder: &mut Option<Responder>,
    ) -> Result<(), Error> {
        let response = self.post(url, None)?;
        if !response.is_success() {
            return Err(problem("reading an authorization", &response));
        }
        let authorization: Authorization = parse("reading an authorization", &response)?;
        if authorization.status == "valid" {
            return Ok(());
        }
        let identifier = authorization.identifier.value.clone();
        if authorization.status != "pending" {
            return Err(Error::Invalid {
                what: "authorization",
                identifier,
                detail: authorization.status,
            });
        }
        let challenge = authorization
            .challenges
            .iter()
            .find(|challenge| challenge.kind == "http-01")
            .ok_or_else(|| Error::NoHttp01(identifier.clone()))?;
        let key_authorization = format!("{}.{}", challenge.token, self.thumbprint);
        let running = match responder {
            Some(running) => running,
            None => responder.insert(Responder::start(
                settings.http01_bind,
                settings.http01_port,
            )?),
        };
        running.insert(&challenge.token, &key_authorization);
        let response = self.post(&challenge.url, Some(&json!({})))?;
        if !response.is_success() {
            return Err(problem("answering a challenge", &response));
        }
        let mut delay = Duration::from_millis(250);
        loop {
            let response = self.post(url, None)?;
            if !response.is_success() {
                return Err(problem("polling an authorization", &response));
            }
            let authorization: Authorization = parse("polling an authorization", &response)?;
            match authorization.status.as_str() {
                "valid" => return Ok(()),
                "pending" | "processing" => {}
                _ => {
                    let detail = authorization
                        .challenges
                        .iter()
                        .find_map(|challenge| challenge.error.as_ref())
                        .map_or_else(|| authorization.status.clone(), problem_text);
                    return Err(Error::Invalid {
                        what: "authorization",
                        identifier,
                        detail,
                    });
                }
            }
            delay = wait(&response, delay, settings.deadline, "authorization")?;
        }
    }

    fn poll_order(
        &mut self,
        url: &str,
        wanted: &[&str],
        deadline: Instant,
        what: &'static str,
    ) -> Result<Order, Error> {
        let mut delay = Duration::from_millis(250);
        loop {
            let response = self.post(url, None)?;
            if !response.is_success() {
                return Err(problem("polling the order", &response));
            }
            let order: Order = parse("polling the order", &response)?;
            if wanted.contains(&order.status.as_str()) {
                return Ok(order);
            }
            if order.status == "invalid" {
                let detail = order
                    .error
                    .as_ref()
                    .map_or_else(|| "no detail".to_owned(), problem_text);
                return Err(Error::Invalid {
                    what: "order",
                    identifier: url.to_owned(),
                    detail,
                });
            }
            delay = wait(&response, delay, deadline, what)?;
        }
    }

    /// A JWS POST (`payload: None` is POST-as-GET), retried on `badNonce`.
    fn post(&mut self, url: &str, payload: Option<&Value>) -> Result<Response, Error> {
        let payload =
            payload.map_or_else(String::new, |payload| b64(payload.to_string().as_bytes()));
        let mut attempt = 0;
        loop {
            let nonce = match self.nonce.take() {
                Some(nonce) => nonce,
                None => self.fresh_nonce()?,
            };
            let mut protected = json!({"alg": "ES256", "nonce": nonce, "url": url});
            match &self.kid {
                Some(kid) => protected["kid"] = json!(kid),
                None => protected["jwk"] = self.jwk.clone(),
            }
            let protected = b64(protected.to_string().as_bytes());
            let signature = self
                .key
                .sign(&self.rng, format!("{protected}.{payload}").as_bytes())
                .map_err(|_| Error::Crypto("signing failed"))?;
            let body = json!({"protected": protected, "payload": payload, "signature": b64(signature.as_ref())});
            let response = self.client.post(
                url,
                &[("content-type", "application/jose+json")],
                body.to_string().as_bytes(),
            )?;
            self.nonce = response.header("replay-nonce").map(str::to_owned);
            if response.status == 400
                && attempt < NONCE_RETRIES
                && problem_type(&response) == BAD_NONCE
            {
                attempt += 1;
                continue;
            }
            return Ok(response);
        }
    }

    fn fresh_nonce(&self) -> Result<String, Error> {
        let response = self.client.head(&self.directory.new_nonce)?;
        response
            .header("replay-nonce")
            .map(str::to_owned)
            .ok_or_else(|| Error::Unexpected {
                context: "getting a nonce",
                detail: format!("status {} without Replay-Nonce", response.status),
            })
    }
}

fn wait(
    response: &Response,
    delay: Duration,
    deadline: Instant,
    what: &'static str,
) -> Result<Duration, Error> {
    let asked = response
        .header("retry-after")
        .and_then(|value| value.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let sleep = asked.unwrap_or(delay).min(Duration::from_secs(5));
    if Instant::now() + sleep >= deadline {
        return Err(Error::Timeout(what));
    }
    std::thread::sleep(sleep);
    Ok((delay * 2).min(Duration::from_secs(2)))
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn parse<T: serde::de::DeserializeOwned>(
    context: &'static str,
    response: &Response,
) -> Result<T, Error> {
    serde_json::from_slice(&response.body).map_err(|error| Error::Unexpected {
        context,
        detail: format!("{error} in `{}`", response.excerpt()),
    })
}

fn location(response: &Response, context: &'static str) -> Result<String, Error> {
    response
        .header("location")
        .map(str::to_owned)
        .ok_or_else(|| Error::Unexpected {
            context,
            detail: "no Location header".to_owned(),
        })
}

fn problem_type(response: &Response) -> String {
    serde_json::from_slice::<Value>(&response.body)
        .ok()
        .and_then(|value| value.get("type").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_default()
}

fn problem_text(value: &Value) -> String {
    let detail = value.get("detail").and_then(Value::as_str).unwrap_or("");
    let kind = value.get("type").and_then(Value::as_str).unwrap_or("");
    format!("{kind}: {detail}")
}

fn problem(context: &'static str, response: &Response) -> Error {
    let value: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    Error::Problem {
        context,
        status: response.status,
        kind: value
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("error")
            .to_owned(),
        detail: value
            .get("detail")
            .and_then(Value::as_str)
            .map_or_else(|| response.excerpt(), str::to_owned),
    }
}

/// The http-01 responder: a tiny HTTP/1.0 server on its own thread, alive while enrolling.
struct Responder {
    tokens: Arc<Mutex<HashMap<String, String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Responder {
    fn start(bind: &str, port: u16) -> Result<Self, Error> {
        let address = format!("{bind}:{port}");
        let bind_error = |source: std::io::Error| {
            let hint = if source.kind() == std::io::ErrorKind::PermissionDenied {
                " (ports below 1024 need root or CAP_NET_BIND_SERVICE: set `http01_port` and map port 80 to it)"
            } else {
                ""
            };
            Error::Bind {
                address: address.clone(),
                hint,
                source,
            }
        };
        let listener = TcpListener::bind(&address).map_err(bind_error)?;
        listener.set_nonblocking(true).map_err(bind_error)?;
        let tokens = Arc::new(Mutex::new(HashMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (thread_tokens, thread_stop) = (Arc::clone(&tokens), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            while !thread_stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => answer(stream, &thread_tokens),
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Ok(Self {
            tokens,
            stop,
            thread: Some(thread),
        })
    }

    fn insert(&self, token: &str, key_authorization: &str) {
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.insert(token.to_owned(), key_authorization.to_owned());
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn answer(mut stream: std::net::TcpStream, tokens: &Mutex<HashMap<String, String>>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut request = Vec::new();
    let mut buffer = [0u8; 1024];
    while request.len() < 8192 && !request.windows(4).any(|window| window == b"\r\n\r\n") {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(read) => request.extend_from_slice(&buffer[..read]),
        }
    }
    let text = String::from_utf8_lossy(&request);
    let path = text
        .lines()
        .next()
        .and_then(|line| line.strip_prefix("GET "))
        .and_then(|rest| rest.split(' ').next());
    let body = path
        .and_then(|path| path.strip_prefix("/.well-known/acme-challenge/"))
        .and_then(|token| {
            tokens
                .lock()
                .ok()
                .and_then(|tokens| tokens.get(token).cloned())
        });
    let reply = match body {
        Some(body) => format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
        None => {
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned()
        }
    };
    let _ = stream.write_all(reply.as_bytes());
}
