//! Registry credentials and challenges: where a username and password come from (flags, env,
//! podman/skopeo `auth.json`, Docker's `config.json` with credential helpers), and how a
//! `WWW-Authenticate` challenge is parsed.
//!
//! Credentials never reach a log line or an error message; `Credentials` has a redacting
//! `Debug`. Token requests themselves are made by `Client` (the only HTTP code); which token
//! realms may receive the credentials is decided here (`realm_may_get_credentials`).

use std::fmt;

/// A username and password (or token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Credentials {{ username: {:?}, password: <redacted> }}",
            self.username
        )
    }
}

impl Credentials {
    /// Parses `user:pass`.
    pub fn parse(text: &str) -> Option<Self> {
        let (username, password) = text.split_once(':')?;
        Some(Self {
            username: username.to_string(),
            password: password.to_string(),
        })
    }
}

/// The names under which a registry's credentials may be stored.
fn server_keys(registry: &str) -> Vec<String> {
    if matches!(
        registry,
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    ) {
        return vec![
            "https://index.docker.io/v1/".into(),
            "index.docker.io".into(),
            "docker.io".into(),
            "registry-1.docker.io".into(),
        ];
    }
    vec![
        registry.to_string(),
        format!("https://{registry}"),
        format!("http://{registry}"),
    ]
}

/// Looks up stored credentials for `registry`, in the order podman, skopeo and docker use:
/// `auth.json` (`REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`), then Docker's
/// `config.json` (`DOCKER_CONFIG`), including `credsStore` and `credHelpers` programs.
pub fn stored(registry: &str) -> Option<Credentials> {
    use docker_credential::DockerCredential;
    type Lookup = fn(&str) -> Result<DockerCredential, docker_credential::CredentialRetrievalError>;
    let lookups: [Lookup; 2] = [
        docker_credential::get_podman_credential,
        docker_credential::get_credential,
    ];
    for lookup in lookups {
        for key in server_keys(registry) {
            match lookup(&key) {
                Ok(DockerCredential::UsernamePassword(username, password)) => {
                    return Some(Credentials { username, password });
                }
                Ok(DockerCredential::IdentityToken(_)) => {
                    tracing::warn!(
                        registry,
                        "ignoring an identity token in the credential store; use a username and password or token"
                    );
                }
                Err(_) => {}
            }
        }
    }
    None
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses the first challenge of a `WWW-Authenticate` header value.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let (scheme, rest) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut params = std::collections::HashMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let value: String = if chars.peek() == Some(&'"') {
            chars.next();
            let mut value = String::new();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    other => value.push(other),
                }
            }
            value
        } else {
            chars.by_ref().take_while(|c| *c != ',').collect()
        };
        params.insert(key.trim().to_ascii_lowercase(), value);
    }
    Some(Challenge::Bearer {
        realm: params.remove("realm")?,
        service: params.remove("service"),
        scope: params.remove("scope"),
    })
}

/// Whether a Bearer challenge's token realm may receive the user's credentials: over HTTPS
/// (Docker Hub's registry sends its users to `https://auth.docker.io`), or on the registry's own
/// host name, whatever the port (a token server next to a registry). Docker and containerd send
/// credentials to any realm; a plain-HTTP realm on another host (reachable only with
/// `--insecure`) would put the password in clear text on a path to a host the user never named,
/// so it gets none.
pub fn realm_may_get_credentials(realm: &reqwest::Url, registry_host: &str) -> bool {
    if realm.scheme() == "https" {
        return true;
    }
    let registry = reqwest::Url::parse(&format!("http://{registry_host}/")).ok();
    match (
        realm.host_str(),
        registry.as_ref().and_then(reqwest::Url::host_str),
    ) {
        (Some(realm), Some(registry)) => realm.eq_ignore_ascii_case(registry),
        _ => false,
    }
}

/// `host:port` of `url`, the port always written (its scheme's default when the URL has none).
pub fn authority(url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port_or_known_default() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

/// Whether `url` is on one of `hosts` (`host` or `host:port`): the same host *and* port, a host
/// written without a port standing for the URL scheme's default port.
pub fn on_hosts(url: &reqwest::Url, hosts: &[String]) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let port = url.port_or_known_default();
    hosts.iter().any(|entry| {
        reqwest::Url::parse(&format!("{}://{entry}/", url.scheme())).is_ok_and(|listed| {
            listed
                .host_str()
                .is_some_and(|h| h.eq_ignore_ascii_case(host))
                && listed.port_or_known_default() == port
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_on_the_list_means_the_same_port_too() {
        let on = |url: &str, hosts: &[&str]| {
            let hosts: Vec<String> = hosts.iter().map(|h| (*h).to_string()).collect();
            on_hosts(&reqwest::Url::parse(url).unwrap(), &hosts)
        };
        assert!(on("http://127.0.0.1:5000/v2/", &["127.0.0.1:5000"]));
        assert!(!on("http://127.0.0.1:5001/token", &["127.0.0.1:5000"]));
        assert!(on("https://ghcr.io/v2/", &["GHCR.io"]));
        assert!(on("https://ghcr.io:443/v2/", &["ghcr.io"]));
        assert!(!on("https://ghcr.io:8443/v2/", &["ghcr.io"]));
        assert!(!on("https://evil.example/ghcr.io", &["ghcr.io"]));
        assert!(!on("https://ghcr.io.evil.example/", &["ghcr.io"]));
        assert!(on("http://[::1]:5000/", &["[::1]:5000"]));
        assert_eq!(
            authority(&reqwest::Url::parse("https://ghcr.io/v2/").unwrap()),
            "ghcr.io:443"
        );
    }

    #[test]
    fn credentials_go_to_https_realms_and_to_the_registry_host_only() {
        let may = |realm: &str, registry: &str| {
            realm_may_get_credentials(&reqwest::Url::parse(realm).unwrap(), registry)
        };
        assert!(may("https://auth.docker.io/token", "index.docker.io"));
        assert!(may("https://localhost:9/token", "127.0.0.1:5000"));
        assert!(may("http://127.0.0.1:5001/token", "127.0.0.1:5000"));
        assert!(may("http://Registry.Example:80/t", "registry.example"));
        assert!(may("http://[::1]:8080/token", "[::1]:5000"));
        assert!(!may("http://localhost:5001/token", "127.0.0.1:5000"));
        assert!(!may("http://auth.example/token", "registry.example"));
        assert!(!may(
            "http://registry.example.evil/token",
            "registry.example"
        ));
        assert!(!may("http://127.0.0.1/token", "not a host name/"));
    }

    #[test]
    fn parses_bearer_and_basic_challenges() {
        let header = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#;
        assert_eq!(
            parse_challenge(header),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/nginx:pull".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="test-realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(parse_challenge("Bearer service=x"), None);
    }

    #[test]
    fn credentials_never_show_the_password() {
        let credentials = Credentials::parse("alice:s3cret").unwrap();
        assert!(!format!("{credentials:?}").contains("s3cret"));
        assert_eq!(Credentials::parse("nocolon"), None);
    }
}
