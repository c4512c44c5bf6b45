//! Image references in skopeo's transport syntax: `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]`,
//! `docker-archive:FILE[:REPO:TAG]` and `dir:PATH`.
//!
//! The path part may itself contain colons; the longest prefix that exists on disk wins, the
//! way skopeo resolves the same ambiguity. Anything without a local transport is a registry
//! reference, checked by `registry::Target::parse`.

use std::path::{Path, PathBuf};

/// A parsed local image reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reference {
    /// An OCI layout directory, optionally with a tag (`org.opencontainers.image.ref.name`).
    OciDir { path: PathBuf, tag: Option<String> },
    /// A tar of an OCI layout.
    OciArchive { path: PathBuf, tag: Option<String> },
    /// `docker save` output, optionally with `repo:tag`.
    DockerArchive {
        path: PathBuf,
        repo_tag: Option<String>,
    },
    /// A plain directory tree.
    Dir { path: PathBuf },
    /// A registry reference (`[docker://]REGISTRY/REPO[:TAG][@DIGEST]`), parsed later.
    Registry { reference: String },
}

/// Splits `path[:suffix]`, preferring the longest existing path.
fn split_path(rest: &str) -> (PathBuf, Option<String>) {
    if Path::new(rest).exists() {
        return (PathBuf::from(rest), None);
    }
    for (index, _) in rest.match_indices(':') {
        let (path, suffix) = (&rest[..index], &rest[index + 1..]);
        if Path::new(path).exists() {
            return (
                PathBuf::from(path),
                Some(suffix.to_string()).filter(|s| !s.is_empty()),
            );
        }
    }
    match rest.split_once(':') {
        Some((path, suffix)) => (
            PathBuf::from(path),
            Some(suffix.to_string()).filter(|s| !s.is_empty()),
        ),
        None => (PathBuf::from(rest), None),
    }
}

impl Reference {
    /// Parses a reference, or says which transports exist.
    pub fn parse(text: &str) -> Result<Self, super::Error> {
        let error = |reason: &str| super::Error::Reference {
            reference: text.to_string(),
            reason: reason.to_string(),
        };
        let (transport, rest) = match text.split_once(':') {
            Some((transport @ ("oci" | "oci-archive" | "docker-archive" | "dir"), rest)) => {
                (transport, rest)
            }
            Some(("docker", rest)) => {
                return Ok(Self::Registry {
                    reference: rest.trim_start_matches("//").to_string(),
                });
            }
            _ => {
                return Ok(Self::Registry {
                    reference: text.to_string(),
                });
            }
        };
        if rest.is_empty() {
            return Err(error("the path is empty"));
        }
        Ok(match transport {
            "oci" => {
                let (path, tag) = split_path(rest);
                Self::OciDir { path, tag }
            }
            "oci-archive" => {
                let (path, tag) = split_path(rest);
                Self::OciArchive { path, tag }
            }
            "docker-archive" => {
                let (path, repo_tag) = split_path(rest);
                Self::DockerArchive { path, repo_tag }
            }
            _ => Self::Dir {
                path: PathBuf::from(rest),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_transport_and_tags() {
        assert_eq!(
            Reference::parse("oci:/nonexistent/layout:v1").unwrap(),
            Reference::OciDir {
                path: "/nonexistent/layout".into(),
                tag: Some("v1".into())
            }
        );
        assert_eq!(
            Reference::parse("docker-archive:/nonexistent/img.tar:repo/app:latest").unwrap(),
            Reference::DockerArchive {
                path: "/nonexistent/img.tar".into(),
                repo_tag: Some("repo/app:latest".into())
            }
        );
        assert_eq!(
            Reference::parse("dir:/x:y").unwrap(),
            Reference::Dir {
                path: "/x:y".into()
            }
        );
        assert_eq!(
            Reference::parse("nginx").unwrap(),
            Reference::Registry {
                reference: "nginx".into()
            }
        );
        assert_eq!(
            Reference::parse("docker://localhost:5000/a:b").unwrap(),
            Reference::Registry {
                reference: "localhost:5000/a:b".into()
            }
        );
        assert!(Reference::parse("oci:").is_err());
    }

    #[test]
    fn an_existing_path_with_a_colon_wins() {
        let dir = tempfile::tempdir().unwrap();
        let odd = dir.path().join("a:b");
        fs_err::create_dir(&odd).unwrap();
        let text = format!("oci:{}:tag", odd.display());
        assert_eq!(
            Reference::parse(&text).unwrap(),
            Reference::OciDir {
                path: odd,
                tag: Some("tag".into())
            }
        );
    }
}
