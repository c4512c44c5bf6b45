//! The `ocicert serve` configuration file (TOML): parsed, then validated with every problem
//! reported at once. Secrets are read from environment variables named in the file (or, less
//! wisely, written into it) and are never printed: `Secret` redacts itself.
//!
//! The registry allowlist lives here: a webhook may only name a registry host and repository
//! listed in `[[registry]]`, so a forged or misrouted delivery cannot make the service contact
//! an arbitrary host. This module does not open sockets or databases.

use crate::finding::Severity;
use crate::registry::{self, auth::Credentials};
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A secret from the configuration: compared in constant time, never shown.
#[derive(Clone)]
pub struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Secret {
    /// A secret with this value (tests, and values read from the environment).
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// Whether `candidate` equals the secret, in time independent of where they differ.
    pub fn matches(&self, candidate: &[u8]) -> bool {
        use subtle::ConstantTimeEq as _;
        self.0.as_bytes().ct_eq(candidate).into()
    }

    /// The secret's bytes, for computing an HMAC.
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// A webhook endpoint that is turned on.
#[derive(Clone, Debug)]
pub struct Hook {
    pub secret: Secret,
    /// The registry host to scan from, whatever host the payload names: a registry known
    /// under another name inside, or a mirror of Docker Hub.
    pub registry: Option<String>,
    /// Docker Hub: hosts its `callback_url` may point at (default `registry.hub.docker.com`).
    pub callback_hosts: Vec<String>,
}

/// The webhook endpoints; `None` means the endpoint answers 404.
#[derive(Clone, Debug, Default)]
pub struct Hooks {
    /// CNCF distribution (`registry:2` and registries built on it) notifications,
    /// `Authorization: Bearer`.
    pub distribution: Option<Hook>,
    /// Docker Hub repository webhooks, the secret in the URL path.
    pub dockerhub: Option<Hook>,
    /// GitHub `package` events (GHCR), HMAC-signed with the secret.
    pub github: Option<Hook>,
}

/// A registry the service may contact, and which of its repositories.
#[derive(Clone, Debug)]
pub struct AllowedRegistry {
    /// Host (and port) as written in references: `ghcr.io`, `docker.io`, `registry:5000`.
    pub host: String,
    /// The repository globs as written.
    pub patterns: Vec<String>,
    repositories: GlobSet,
    pub insecure: bool,
    pub ca_files: Vec<PathBuf>,
    /// Credentials from the environment; `None` means the usual lookup (auth.json, Docker's
    /// config.json and credential helpers).
    pub credentials: Option<Credentials>,
    /// Other hosts (`host` or `host:port`) the registry may send the service to: blob storage
    /// that downloads redirect to, a token service on another host or port.
    pub redirect_hosts: Vec<String>,
}

/// Where Docker Hub itself sends clients: its API host, its token service and its blob CDN.
const DOCKER_HUB_HOSTS: &[&str] = &[
    "index.docker.io",
    "registry-1.docker.io",
    "auth.docker.io",
    "production.cloudflare.docker.com",
];

/// Where GitHub's registry redirects blob downloads.
const GHCR_HOSTS: &[&str] = &["pkg-containers.githubusercontent.com"];

impl AllowedRegistry {
    /// Client options for this registry: every request it makes, redirects and token realms
    /// included, goes to the registry's own host (same port) or to its `redirect_hosts`.
    pub fn options(&self) -> registry::Options {
        let mut allowed = vec![self.host.clone()];
        let implied = match self.host.as_str() {
            "docker.io" => DOCKER_HUB_HOSTS,
            "ghcr.io" => GHCR_HOSTS,
            _ => &[],
        };
        allowed.extend(implied.iter().map(|h| (*h).to_string()));
        allowed.extend(self.redirect_hosts.iter().cloned());
        registry::Options {
            insecure: self.insecure,
            ca_files: self.ca_files.clone(),
            credentials: self.credentials.clone(),
            allowed_hosts: Some(allowed),
            ..registry::Options::default()
        }
    }
}

/// Where to tell about images with findings.
#[derive(Clone, Debug)]
pub struct Notify {
    pub url: String,
    /// Notify when the highest finding is at or above this.
    pub threshold: Severity,
    /// When set, the body is signed: `X-Ocicert-Signature-256: sha256=<hex HMAC>`.
    pub secret: Option<Secret>,
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: Option<PathBuf>,
    /// Scans at the same time in this process (0: only accept webhooks).
    pub workers: usize,
    /// How long a claimed job stays owned without a heartbeat.
    pub lease: Duration,
    pub max_attempts: u32,
    pub retry_backoff: Duration,
    /// How long a stopping service waits for running scans before handing them back.
    pub shutdown_grace: Duration,
    /// How long one scan may take: past it the scan stops, and the job fails for good.
    pub job_timeout: Duration,
    /// The process's resident memory past which a running scan stops, and its job fails for
    /// good (`job_memory_mib`).
    pub job_memory: u64,
    /// What a client connection may cost: see `listen::Limits`.
    pub connections: super::listen::Limits,
    /// Base URL of this service, for links in notifications.
    pub public_url: Option<String>,
    /// A policy file applied to every report (as `ocicert scan --policy`).
    pub policy: Option<PathBuf>,
    pub hooks: Hooks,
    pub registries: Vec<AllowedRegistry>,
    pub notify: Option<Notify>,
    /// `[read]`: the token the API, the web pages and `/metrics` want (`None`: open).
    pub read_token: Option<Secret>,
}

/// The registry name a notification or webhook used, normalised for allowlist checks.
pub fn normalize_host(host: &str) -> String {
    let host = host.trim().trim_end_matches('/').to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".into()
        }
        _ => host,
    }
}

impl Config {
    /// The allowlist entry for `repository` on `registry`, if any.
    pub fn allowed(&self, registry: &str, repository: &str) -> Option<&AllowedRegistry> {
        let host = normalize_host(registry);
        self.registries
            .iter()
            .find(|r| r.host == host && r.repositories.is_match(repository))
    }
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read the configuration `{path}`")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The line is shown with the value of a `secret` key replaced: the config holds secrets,
    /// and error output ends up in logs.
    #[error(
        "`{path}` is not valid TOML for `ocicert serve`: line {line}: {message}\n    {excerpt}"
    )]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
        excerpt: String,
    },
    #[error("`{path}` has problems:\n  - {}", problems.join("\n  - "))]
    Invalid {
        path: PathBuf,
        problems: Vec<String>,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    workers: Option<usize>,
    lease_seconds: Option<u64>,
    max_attempts: Option<u32>,
    retry_backoff_seconds: Option<u64>,
    shutdown_grace_seconds: Option<u64>,
    job_timeout_seconds: Option<u64>,
    job_memory_mib: Option<u64>,
    header_timeout_seconds: Option<u64>,
    idle_timeout_seconds: Option<u64>,
    max_connections: Option<usize>,
    public_url: Option<String>,
    policy: Option<PathBuf>,
    #[serde(default)]
    hooks: RawHooks,
    #[serde(default, rename = "registry")]
    registries: Vec<RawRegistry>,
    notify: Option<RawNotify>,
    read: Option<RawRead>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRead {
    secret: Option<String>,
    secret_env: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHooks {
    distribution: Option<RawHook>,
    dockerhub: Option<RawHook>,
    github: Option<RawHook>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHook {
    secret: Option<String>,
    secret_env: Option<String>,
    registry: Option<String>,
    callback_hosts: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegistry {
    host: String,
    #[serde(default)]
    repositories: Vec<String>,
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    ca_files: Vec<PathBuf>,
    username_env: Option<String>,
    password_env: Option<String>,
    #[serde(default)]
    redirect_hosts: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotify {
    url: String,
    #[serde(default = "default_threshold")]
    threshold: String,
    secret: Option<String>,
    secret_env: Option<String>,
}

fn default_threshold() -> String {
    "high".into()
}

/// A secret given literally or by the name of an environment variable.
fn secret(
    problems: &mut Vec<String>,
    env: &dyn Fn(&str) -> Option<String>,
    what: &str,
    literal: Option<String>,
    name: Option<String>,
) -> Option<Secret> {
    match (literal, name) {
        (Some(value), None) if !value.is_empty() => Some(Secret(value)),
        (None, Some(name)) => match env(&name) {
            Some(value) if !value.is_empty() => Some(Secret(value)),
            _ => {
                problems.push(format!(
                    "{what}: the environment variable `{name}` is not set"
                ));
                None
            }
        },
        (Some(_), Some(_)) => {
            problems.push(format!("{what}: give `secret` or `secret_env`, not both"));
            None
        }
        _ => {
            problems.push(format!(
                "{what}: a secret is required (`secret_env = \"NAME\"` names an environment variable)"
            ));
            None
        }
    }
}

/// Reads and validates a configuration file. `env` looks up environment variables.
pub fn load(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, Error> {
    let text = fs_err::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text, env)
}

/// A syntax error with its line, the value of any `secret` on it redacted.
fn syntax(path: &Path, text: &str, error: &toml::de::Error) -> Error {
    let start = error.span().map_or(0, |span| span.start).min(text.len());
    let line = text[..start].matches('\n').count() + 1;
    let content = text.lines().nth(line - 1).unwrap_or_default();
    let secret_line = content
        .split_once('=')
        .is_some_and(|(key, _)| key.trim().trim_matches('"') == "secret");
    let (excerpt, message) = if secret_line {
        let key = content.split_once('=').map_or(content, |(key, _)| key);
        (
            format!("{key}= <redacted>"),
            // The message may quote the value (`invalid type: integer `5``).
            error
                .message()
                .split('`')
                .next()
                .unwrap_or_default()
                .trim()
                .to_string(),
        )
    } else {
        (content.to_string(), error.message().trim().to_string())
    };
    Error::Syntax {
        path: path.to_path_buf(),
        line,
        message,
        excerpt,
    }
}

/// Parses and validates configuration text; `path` is only for messages and relative paths.
pub fn parse(
    path: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, Error> {
    let raw: RawConfig = toml::from_str(text).map_err(|error| syntax(path, text, &error))?;
    let mut problems = Vec::new();
    let base = path.parent().unwrap_or(Path::new("."));
    let relative = |p: PathBuf| if p.is_relative() { base.join(p) } else { p };

    let listen_text = raw.listen.unwrap_or_else(|| "127.0.0.1:8080".into());
    let listen = listen_text.parse().unwrap_or_else(|_| {
        problems.push(format!(
            "`listen = \"{listen_text}\"` is not an address such as 127.0.0.1:8080"
        ));
        SocketAddr::from(([127, 0, 0, 1], 8080))
    });

    let hook = |problems: &mut Vec<String>, what: &str, raw: Option<RawHook>| {
        raw.and_then(|raw| {
            let registry = raw.registry.map(|r| normalize_host(&r));
            let callback_hosts = raw
                .callback_hosts
                .unwrap_or_else(|| vec!["registry.hub.docker.com".into()]);
            secret(problems, env, what, raw.secret, raw.secret_env).map(|secret| Hook {
                secret,
                registry,
                callback_hosts,
            })
        })
    };
    let hooks = Hooks {
        distribution: hook(
            &mut problems,
            "[hooks.distribution]",
            raw.hooks.distribution,
        ),
        dockerhub: hook(&mut problems, "[hooks.dockerhub]", raw.hooks.dockerhub),
        github: hook(&mut problems, "[hooks.github]", raw.hooks.github),
    };
    let notify = raw.notify.map(|notify| {
        let threshold = match notify.threshold.as_str() {
            "critical" => Severity::Critical,
            "high" => Severity::High,
            "medium" => Severity::Medium,
            "low" => Severity::Low,
            "info" => Severity::Info,
            other => {
                problems.push(format!(
                    "[notify]: `threshold = \"{other}\"` is not one of critical, high, medium, low, info"
                ));
                Severity::High
            }
        };
        if !(notify.url.starts_with("http://") || notify.url.starts_with("https://")) {
            problems.push(format!(
                "[notify]: `url = \"{}\"` is not an http(s) URL",
                notify.url
            ));
        }
        let secret = if notify.secret.is_some() || notify.secret_env.is_some() {
            secret(
                &mut problems,
                env,
                "[notify]",
                notify.secret,
                notify.secret_env,
            )
        } else {
            None
        };
        Notify {
            url: notify.url,
            threshold,
            secret,
        }
    });

    let read_token = raw
        .read
        .and_then(|read| secret(&mut problems, env, "[read]", read.secret, read.secret_env));

    let mut registries = Vec::new();
    for (index, entry) in raw.registries.into_iter().enumerate() {
        let what = format!("[[registry]] #{} (`{}`)", index + 1, entry.host);
        let host = normalize_host(&entry.host);
        if host.is_empty() || host.contains('/') || host.contains("://") {
            problems.push(format!(
                "{what}: `host` must be a registry host such as ghcr.io or registry.local:5000"
            ));
        }
        let patterns = if entry.repositories.is_empty() {
            problems.push(format!(
                "{what}: `repositories` must list at least one glob (`[\"**\"]` allows all)"
            ));
            Vec::new()
        } else {
            entry.repositories
        };
        let mut set = GlobSetBuilder::new();
        for pattern in &patterns {
            match GlobBuilder::new(pattern).literal_separator(true).build() {
                Ok(glob) => {
                    set.add(glob);
                }
                Err(error) => problems.push(format!("{what}: `{pattern}`: {error}")),
            }
        }
        let credentials = match (entry.username_env, entry.password_env) {
            (None, None) => None,
            (Some(user), Some(pass)) => match (env(&user), env(&pass)) {
                (Some(username), Some(password)) => Some(Credentials { username, password }),
                _ => {
                    problems.push(format!(
                        "{what}: the environment variables `{user}` and `{pass}` must both be set"
                    ));
                    None
                }
            },
            _ => {
                problems.push(format!(
                    "{what}: give both `username_env` and `password_env`, or neither"
                ));
                None
            }
        };
        registries.push(AllowedRegistry {
            host,
            patterns,
            repositories: set.build().unwrap_or_else(|_| GlobSet::empty()),
            insecure: entry.insecure,
            ca_files: entry.ca_files.into_iter().map(relative).collect(),
            credentials,
            redirect_hosts: entry.redirect_hosts,
        });
    }
    if registries.is_empty() {
        problems.push(
            "no `[[registry]]` is allowed: list the registries and repositories to scan".into(),
        );
    }
    // 0 workers: a webhook front end that only enqueues (with PostgreSQL, other processes scan).
    let workers = raw.workers.unwrap_or(2);
    // A replica killed mid-scan hands its job over within 15 s (heartbeats every 5 s).
    let lease = raw.lease_seconds.unwrap_or(15);
    if lease < 2 {
        problems.push("`lease_seconds` must be at least 2".into());
    }
    if !problems.is_empty() {
        return Err(Error::Invalid {
            path: path.to_path_buf(),
            problems,
        });
    }
    Ok(Config {
        listen,
        data_dir: raw.data_dir.map(relative),
        workers,
        lease: Duration::from_secs(lease),
        max_attempts: raw.max_attempts.unwrap_or(5).max(1),
        retry_backoff: Duration::from_secs(raw.retry_backoff_seconds.unwrap_or(30)),
        shutdown_grace: Duration::from_secs(raw.shutdown_grace_seconds.unwrap_or(20)),
        job_timeout: Duration::from_secs(raw.job_timeout_seconds.unwrap_or(600).max(1)),
        job_memory: raw.job_memory_mib.unwrap_or(2048).clamp(1, 1 << 30) << 20,
        connections: super::listen::Limits {
            header_timeout: Duration::from_secs(raw.header_timeout_seconds.unwrap_or(10).max(1)),
            idle_timeout: Duration::from_secs(raw.idle_timeout_seconds.unwrap_or(60).max(1)),
            max_connections: raw.max_connections.unwrap_or(1024).max(1),
        },
        public_url: raw.public_url.map(|u| u.trim_end_matches('/').to_string()),
        policy: raw.policy.map(relative),
        hooks,
        registries,
        notify,
        read_token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_errors_never_show_a_secret() {
        for text in [
            "[hooks.distribution]\nsecret = \"hunter2-very-secret\n",
            "[hooks.distribution]\nsecret = \"hunter2-very-secret\" junk\n",
            "[hooks.distribution]\n  \"secret\" = 'hunter2-very-secret' = 3\n",
        ] {
            let error =
                parse(Path::new("serve.toml"), text, &|_| None).expect_err("a syntax error");
            let shown = format!("{error}");
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(
                shown.contains("line 2") && shown.contains("<redacted>"),
                "{shown}"
            );
        }
        let error = parse(Path::new("serve.toml"), "workers = \"two\"\n", &|_| None)
            .expect_err("a type error");
        assert!(
            format!("{error}").contains("workers = \"two\""),
            "other lines are shown"
        );
    }

    fn env(name: &str) -> Option<String> {
        match name {
            "HOOK" => Some("s3cret".into()),
            "USER" => Some("u".into()),
            "PASS" => Some("p".into()),
            _ => None,
        }
    }

    #[test]
    fn parses_and_checks_the_allowlist() {
        let config = parse(
            Path::new("/etc/ocicert/serve.toml"),
            r#"
            listen = "127.0.0.1:9000"
            [hooks.distribution]
            secret_env = "HOOK"
            [[registry]]
            host = "Registry.Local:5000"
            repositories = ["team/*", "base/**"]
            ca_files = ["ca.pem"]
            username_env = "USER"
            password_env = "PASS"
            [[registry]]
            host = "index.docker.io"
            repositories = ["exampleorg/webapp"]
            "#,
            &env,
        )
        .unwrap();
        assert!(
            config
                .hooks
                .distribution
                .as_ref()
                .unwrap()
                .secret
                .matches(b"s3cret")
        );
        assert!(config.hooks.github.is_none());
        assert!(
            config.read_token.is_none(),
            "without [read] the results are open"
        );
        assert!(config.allowed("registry.local:5000", "team/app").is_some());
        assert!(config.allowed("registry.local:5000", "team/a/b").is_none());
        assert!(config.allowed("registry.local:5000", "base/x/y").is_some());
        assert!(config.allowed("evil.example", "team/app").is_none());
        assert!(config.allowed("docker.io", "exampleorg/webapp").is_some());
        let local = config.allowed("registry.local:5000", "team/app").unwrap();
        assert_eq!(local.ca_files, [PathBuf::from("/etc/ocicert/ca.pem")]);
        let debug = format!("{:?}", local.credentials);
        assert!(
            debug.contains("\"u\"") && !debug.contains("\"p\""),
            "{debug}"
        );
    }

    /// The first ```toml block of `markdown` that follows `marker`.
    fn toml_block<'a>(markdown: &'a str, marker: &str) -> &'a str {
        let start = markdown.find(marker).expect("marker") + marker.len();
        let block = &markdown[start..];
        let block = &block[block.find("```toml\n").expect("a toml block") + 8..];
        &block[..block.find("```").expect("closed")]
    }

    #[test]
    fn the_configurations_in_the_docs_are_valid() {
        let any = |name: &str| Some(format!("value-of-{name}"));
        let readme = toml_block(
            include_str!("../../README.md"),
            "### 3. The webhook service",
        );
        let config = parse(Path::new("serve.toml"), readme, &any).unwrap();
        assert!(config.read_token.is_some() && config.hooks.distribution.is_some());
        let docs = toml_block(include_str!("../../docs/serve.md"), "## Configuration");
        let config = parse(Path::new("serve.toml"), docs, &any).unwrap();
        assert!(config.read_token.is_some() && config.notify.is_some());
        assert!(config.allowed("ghcr.io", "exampleorg/app").is_some());
    }

    #[test]
    fn reports_every_problem_without_secrets() {
        let error = parse(
            Path::new("serve.toml"),
            r#"
            listen = "nowhere"
            workers = 1
            [hooks.github]
            secret_env = "MISSING"
            [notify]
            url = "ftp://x"
            threshold = "huge"
            [read]
            secret_env = "NO_READ_TOKEN"
            "#,
            &env,
        )
        .unwrap_err()
        .to_string();
        for expected in [
            "`listen = \"nowhere\"`",
            "`MISSING` is not set",
            "no `[[registry]]`",
            "not an http(s) URL",
            "`threshold = \"huge\"`",
            "[read]: the environment variable `NO_READ_TOKEN` is not set",
        ] {
            assert!(error.contains(expected), "{expected} in {error}");
        }
    }
}
