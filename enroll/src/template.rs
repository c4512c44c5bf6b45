//! SAN and common-name templates (`${HOSTNAME}`, `${POD_NAME}`, `${VAR:-default}`) and runtime
//! secrets (`NAME` or `NAME_FILE`), both read from the container's environment.
//!
//! The environment is passed in as a lookup function, so tests need not touch the process
//! environment. Nothing here logs a secret's value: errors name the variable, never its content.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::der::San;

/// Why a template or secret could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `${VAR}` with VAR unset and no default.
    #[error("SAN template `{template}` uses `{variable}`, which is not set")]
    Unset {
        /// The template as written.
        template: String,
        /// The variable's name.
        variable: String,
    },
    /// `${` without `}`.
    #[error("SAN template `{0}` has an unterminated `${{`")]
    Syntax(String),
    /// Expanded to something that is not a usable name.
    #[error("SAN template `{template}` expands to `{value}`, which is not a valid {kind}")]
    Invalid {
        /// The template as written.
        template: String,
        /// What it expanded to.
        value: String,
        /// `DNS name`, `IP address`, `URI`.
        kind: &'static str,
    },
    /// `NAME_FILE` names a file that cannot be read.
    #[error("cannot read secret file `{path}` named by `{variable}`")]
    SecretFile {
        /// The `_FILE` variable.
        variable: String,
        /// The path it holds.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Expands `${VAR}` / `${VAR:-default}` in `template`. `$` not followed by `{` is literal.
pub fn expand(template: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, Error> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| Error::Syntax(template.to_owned()))?;
        let expression = &after[..end];
        let (name, default) = match expression.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (expression, None),
        };
        let value = lookup(name).filter(|value| !value.is_empty());
        match (value, default) {
            (Some(value), _) => out.push_str(&value),
            (None, Some(default)) => out.push_str(default),
            (None, None) => {
                return Err(Error::Unset {
                    template: template.to_owned(),
                    variable: name.to_owned(),
                });
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Expands one SAN template and types it: `dns:`/`ip:`/`uri:` prefixes, else an IP if it parses
/// as one, else a DNS name (lower-cased, checked for RFC 1123 syntax; `*.` allowed first).
pub fn san(template: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<San, Error> {
    let value = expand(template, lookup)?;
    let invalid = |kind| Error::Invalid {
        template: template.to_owned(),
        value: value.clone(),
        kind,
    };
    if let Some(ip) = value.strip_prefix("ip:") {
        return ip
            .parse::<IpAddr>()
            .map(San::Ip)
            .map_err(|_| invalid("IP address"));
    }
    if let Some(uri) = value.strip_prefix("uri:") {
        let ok = uri.contains(':') && uri.is_ascii() && !uri.contains(char::is_whitespace);
        return if ok {
            Ok(San::Uri(uri.to_owned()))
        } else {
            Err(invalid("URI"))
        };
    }
    let name = match value.strip_prefix("dns:") {
        Some(name) => name,
        None => {
            if let Ok(ip) = value.parse::<IpAddr>() {
                return Ok(San::Ip(ip));
            }
            &value
        }
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if is_dns_name(&name) {
        Ok(San::Dns(name))
    } else {
        Err(invalid("DNS name"))
    }
}

fn is_dns_name(name: &str) -> bool {
    let body = name.strip_prefix("*.").unwrap_or(name);
    !body.is_empty()
        && name.len() <= 253
        && body.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// The container's environment, with `HOSTNAME` falling back to the kernel's host name (docker
/// and Kubernetes set the env var, a plain `runc` bundle may not).
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.is_empty())
        .or_else(|| {
            (name == "HOSTNAME")
                .then(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
                .flatten()
                .map(|host| host.trim().to_owned())
                .filter(|host| !host.is_empty())
        })
}

/// A runtime secret: the env var `name`, else the contents of the file named by `name_FILE`
/// (the docker/compose secrets convention), trimmed of surrounding whitespace.
pub fn secret(
    name: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<String>, Error> {
    if let Some(value) = lookup(name).filter(|value| !value.is_empty()) {
        return Ok(Some(value));
    }
    let file_variable = format!("{name}_FILE");
    let Some(path) = lookup(&file_variable).filter(|value| !value.is_empty()) else {
        return Ok(None);
    };
    read_secret_file(Path::new(&path))
        .map(Some)
        .map_err(|source| Error::SecretFile {
            variable: file_variable,
            path: PathBuf::from(path),
            source,
        })
}

/// Reads a secret file (a mounted token, a password file), trimmed.
pub fn read_secret_file(path: &Path) -> std::io::Result<String> {
    Ok(std::fs::read_to_string(path)?.trim().to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOSTNAME" => Some("web-7f9c".into()),
            "POD_NAME" => Some("Web-0".into()),
            "EMPTY" => Some(String::new()),
            "POD_IP" => Some("10.1.2.3".into()),
            _ => None,
        }
    }

    #[test]
    fn expands_and_types_sans() {
        assert_eq!(
            san("${POD_NAME}.web.svc", &env).unwrap(),
            San::Dns("web-0.web.svc".into())
        );
        assert_eq!(
            san("${HOSTNAME}", &env).unwrap(),
            San::Dns("web-7f9c".into())
        );
        assert_eq!(
            san("${POD_IP}", &env).unwrap(),
            San::Ip("10.1.2.3".parse().unwrap())
        );
        assert_eq!(
            san("${NOPE:-fallback}.example", &env).unwrap(),
            San::Dns("fallback.example".into())
        );
        assert_eq!(
            san("${EMPTY:-x}.example", &env).unwrap(),
            San::Dns("x.example".into())
        );
        assert_eq!(
            san("uri:spiffe://td/ns/${POD_NAME}", &env).unwrap(),
            San::Uri("spiffe://td/ns/Web-0".into())
        );
        assert_eq!(
            san("dns:*.example.", &env).unwrap(),
            San::Dns("*.example".into())
        );
        assert!(matches!(
            san("$literal.example", &env),
            Err(Error::Invalid { .. })
        ));
    }

    #[test]
    fn reports_unset_and_invalid() {
        let error = san("${POD_NAMESPACE}.svc", &env).unwrap_err();
        assert_eq!(
            error.to_string(),
            "SAN template `${POD_NAMESPACE}.svc` uses `POD_NAMESPACE`, which is not set"
        );
        assert!(matches!(san("${HOSTNAME", &env), Err(Error::Syntax(_))));
        assert!(matches!(
            san("bad name.example", &env),
            Err(Error::Invalid { .. })
        ));
        assert!(matches!(
            san("ip:not-an-ip", &env),
            Err(Error::Invalid { .. })
        ));
    }

    #[test]
    fn secrets_from_env_or_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\n").unwrap();
        let path_text = path.to_string_lossy().into_owned();
        let lookup = move |name: &str| match name {
            "DIRECT" => Some("value".to_owned()),
            "VIA_FILE" => None,
            "VIA_FILE_FILE" => Some(path_text.clone()),
            "MISSING_FILE" => Some("/nonexistent/secret".to_owned()),
            _ => None,
        };
        assert_eq!(secret("DIRECT", &lookup).unwrap().as_deref(), Some("value"));
        assert_eq!(
            secret("VIA_FILE", &lookup).unwrap().as_deref(),
            Some("s3cret")
        );
        assert_eq!(secret("ABSENT", &lookup).unwrap(), None);
        let error = secret("MISSING", &lookup).unwrap_err().to_string();
        assert!(
            error.contains("MISSING_FILE") && !error.contains("s3cret"),
            "{error}"
        );
    }
}
