//! Image reference grammar (`[domain/]path[:tag][@digest]`, distribution's `reference`
//! package) and Docker's normalisation (`nginx` → `docker.io/library/nginx:latest`).
//!
//! Hand-written, although `oci-client` parses the same grammar: its parser compiles one large
//! regular expression at the first call, which cost 15–45 ms at every process start (measured
//! with `perf` on a warm registry scan, where it was the largest single cost). This parser is
//! checked against `oci-client`'s on the same inputs (the tests below), so the two agree on
//! what is valid and how it normalises. It does not resolve anything or talk to a registry.

/// The parts of a reference, normalised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Name {
    /// `docker.io`, `ghcr.io`, `127.0.0.1:5000`, `localhost`, …
    pub registry: String,
    /// `library/nginx`, `org/app`.
    pub repository: String,
    /// The tag; `latest` when neither a tag nor a digest was given.
    pub tag: Option<String>,
    /// `algorithm:hex`, when given.
    pub digest: Option<String>,
}

const DOCKER_HUB: &str = "docker.io";
const MAX_NAME: usize = 255;
const MAX_TAG: usize = 128;

impl Name {
    /// The host the registry API lives on: Docker Hub's is `index.docker.io`.
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            "index.docker.io"
        } else {
            &self.registry
        }
    }
}

/// Parses a reference the way `docker pull` reads it.
pub fn parse(text: &str) -> Result<Name, String> {
    if text.is_empty() {
        return Err("the reference is empty".into());
    }
    let (rest, digest) = match text.split_once('@') {
        Some((rest, digest)) => {
            check_digest(digest)?;
            (rest, Some(digest.to_string()))
        }
        None => (text, None),
    };
    // A tag follows the last `:` that comes after the last `/` (a port comes before it).
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(colon) => {
            let at = last_slash + colon;
            let tag = &rest[at + 1..];
            check_tag(tag)?;
            (&rest[..at], Some(tag.to_string()))
        }
        None => (rest, None),
    };
    if name.is_empty() {
        return Err(format!("`{text}` has no repository name"));
    }
    let (registry, path) = match name.split_once('/') {
        Some((first, path)) if is_domain_like(first) => {
            check_domain(first)?;
            // Docker's legacy name for its own registry.
            let registry = if first == "index.docker.io" {
                DOCKER_HUB
            } else {
                first
            };
            (registry.to_string(), path.to_string())
        }
        _ => (DOCKER_HUB.to_string(), name.to_string()),
    };
    check_path(&path)?;
    if path.len() > MAX_NAME {
        return Err(format!(
            "repository name must not be longer than {MAX_NAME} characters"
        ));
    }
    let repository = if registry == DOCKER_HUB && !path.contains('/') {
        format!("library/{path}")
    } else {
        path
    };
    let tag = match (tag, &digest) {
        (None, None) => Some("latest".to_string()),
        (tag, _) => tag,
    };
    Ok(Name {
        registry,
        repository,
        tag,
        digest,
    })
}

/// Whether the first component names a registry: it has a `.` or a `:`, or is `localhost`.
fn is_domain_like(first: &str) -> bool {
    first.contains(['.', ':']) || first == "localhost"
}

fn check_domain(domain: &str) -> Result<(), String> {
    let bad = || format!("invalid registry `{domain}`");
    let (host, port) = split_port(domain).ok_or_else(bad)?;
    let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => !v6.is_empty() && v6.chars().all(|c| c.is_ascii_hexdigit() || c == ':'),
        None => host.split('.').all(valid_domain_component),
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
    if host_ok && port_ok {
        Ok(())
    } else {
        Err(bad())
    }
}

/// `host[:port]`, where the host may be a bracketed IPv6 address.
fn split_port(domain: &str) -> Option<(&str, Option<&str>)> {
    if domain.starts_with('[') {
        let end = domain.find(']')?;
        let (host, after) = domain.split_at(end + 1);
        if after.is_empty() {
            Some((host, None))
        } else {
            after.strip_prefix(':').map(|port| (host, Some(port)))
        }
    } else {
        Some(match domain.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (domain, None),
        })
    }
}

/// `[a-zA-Z0-9]`, or alphanumerics and `-` that start and end alphanumeric.
fn valid_domain_component(component: &str) -> bool {
    !component.is_empty()
        && component
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !component.starts_with('-')
        && !component.ends_with('-')
}

/// `path-component ('/' path-component)*`, where a component is lower-case alphanumerics
/// joined by `.`, `_`, `__` or runs of `-`.
fn check_path(path: &str) -> Result<(), String> {
    if path.chars().any(|c| c.is_ascii_uppercase()) {
        return Err("repository names must be lowercase".into());
    }
    for component in path.split('/') {
        if !valid_component(component) {
            return Err(format!("invalid repository name `{path}`"));
        }
    }
    Ok(())
}

fn valid_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        // A separator: `.`, `_`, `__` or one or more `-`, between alphanumerics.
        let start = i;
        match bytes[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if bytes.get(i) == Some(&b'_') {
                    i += 1;
                }
            }
            b'-' => {
                while bytes.get(i) == Some(&b'-') {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i == start || !bytes.get(i).copied().is_some_and(alnum) {
            return false;
        }
    }
    true
}

/// `[\w][\w.-]{0,127}`.
fn check_tag(tag: &str) -> Result<(), String> {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut chars = tag.chars();
    let valid = tag.len() <= MAX_TAG
        && chars.next().is_some_and(word)
        && chars.all(|c| word(c) || c == '.' || c == '-');
    if valid {
        Ok(())
    } else {
        Err(format!("invalid tag `{tag}`"))
    }
}

/// `algorithm ":" encoded`: the algorithm is `[a-z0-9]+` components joined by `+._-`, the
/// encoded part at least 32 characters of `[a-zA-Z0-9=_-]`.
fn check_digest(digest: &str) -> Result<(), String> {
    let bad = || Err(format!("invalid digest `{digest}`"));
    let Some((algorithm, encoded)) = digest.split_once(':') else {
        return bad();
    };
    let algorithm_ok = !algorithm.is_empty()
        && algorithm.split(['+', '.', '_', '-']).all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        });
    let encoded_ok = encoded.len() >= 32
        && encoded
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '=' | '_' | '-'));
    if algorithm_ok && encoded_ok {
        Ok(())
    } else {
        bad()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What oci-client makes of a reference, in our terms (or `None` when it refuses it).
    fn oci_client(text: &str) -> Option<(String, String, Option<String>, Option<String>)> {
        let reference: oci_client::Reference = text.parse().ok()?;
        // `Target::parse` used to add this check after oci-client's parse.
        if reference
            .repository()
            .chars()
            .any(|c| c.is_ascii_uppercase())
        {
            return None;
        }
        Some((
            reference.registry().to_string(),
            reference.repository().to_string(),
            reference.tag().map(str::to_string),
            reference.digest().map(str::to_string),
        ))
    }

    fn ours(text: &str) -> Option<(String, String, Option<String>, Option<String>)> {
        let name = parse(text).ok()?;
        Some((name.registry, name.repository, name.tag, name.digest))
    }

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn agrees_with_oci_client_on_valid_and_invalid_references() {
        let digest = format!("sha256:{HEX}");
        let mut cases: Vec<String> = [
            "nginx",
            "nginx:1.25",
            "library/nginx",
            "docker.io/nginx",
            "docker.io/library/nginx:latest",
            "index.docker.io/library/nginx",
            "ghcr.io/org/app:v1.2.3",
            "ghcr.io/org/team/app",
            "localhost/app",
            "localhost:5000/app:dev",
            "127.0.0.1:5000/team/app",
            "registry.example.com:443/a/b/c:tag_1",
            "quay.io/a.b/c__d/e---f:x-y.z",
            "my-registry.local/app",
            "a/b",
            "app:",
            ":tag",
            "UPPER/case",
            "ghcr.io/Org/app",
            "app:-bad",
            "app:.bad",
            "app@sha256:short",
            "app@sha256:",
            "reg.io/app@",
            "ghcr.io//app",
            "ghcr.io/app/",
            "ghcr.io/-app",
            "ghcr.io/app-",
            "ghcr.io/a..b",
            "ghcr.io/a___b",
            "-reg.io/app",
            "reg-.io/app",
            "reg.io:port/app",
            "reg.io:/app",
            "a b",
            "app:tag:tag",
            "app@@sha256:x",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        cases.push(format!("nginx@{digest}"));
        cases.push(format!("ghcr.io/org/app:v1@{digest}"));
        cases.push(format!("127.0.0.1:5000/app@{digest}"));
        cases.push(format!("app:{}", "t".repeat(128)));
        cases.push(format!("app:{}", "t".repeat(129)));
        cases.push(format!("reg.io/{}", "a".repeat(255)));
        cases.push(format!("reg.io/{}", "a".repeat(256)));
        for case in &cases {
            assert_eq!(ours(case), oci_client(case), "`{case}`");
        }
    }

    #[test]
    fn agrees_with_oci_client_on_generated_references() {
        // Deterministic pseudo-random references over the characters that matter.
        let alphabet: Vec<char> = "ab1Z.-_:/@".chars().collect();
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = 1 + (state % 14) as usize;
            let mut text = String::new();
            let mut s = state;
            for _ in 0..len {
                text.push(alphabet[(s % alphabet.len() as u64) as usize]);
                s /= alphabet.len() as u64;
                if s == 0 {
                    s = state.rotate_left(17);
                }
            }
            assert_eq!(ours(&text), oci_client(&text), "`{text}`");
        }
    }

    #[test]
    fn bracketed_ipv6_registries_are_accepted_as_distribution_does() {
        // oci-client refuses these; distribution's grammar and docker accept them.
        let name = parse("[::1]:5000/app:v1").unwrap();
        assert_eq!(
            (name.registry.as_str(), name.repository.as_str()),
            ("[::1]:5000", "app")
        );
        assert!(parse("[fe80::1]/team/app").is_ok());
        assert!(parse("[]:5000/app").is_err());
        assert!(parse("[::1/app").is_err());
        assert!(parse("[::1]x/app").is_err());
    }

    #[test]
    fn docker_hub_api_host() {
        assert_eq!(parse("nginx").unwrap().api_host(), "index.docker.io");
        assert_eq!(parse("ghcr.io/a/b").unwrap().api_host(), "ghcr.io");
    }
}
