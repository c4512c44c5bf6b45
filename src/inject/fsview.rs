//! The final filesystem of an image, as paths only: built from each layer's recorded changes
//! (whiteouts, opaque directories, entries, links) without reading file contents, with symlinks
//! resolved inside the image, never on the host.

use crate::layer::{Change, LayerScan};
use std::collections::BTreeMap;

/// One path of the final filesystem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    Directory,
    /// A regular file (or device) written by this layer.
    File {
        layer: usize,
    },
    /// A symlink and its target as written.
    Symlink {
        target: String,
    },
    /// A hard link to `target`, written by this layer.
    Hardlink {
        target: String,
        layer: usize,
    },
}

/// The union of all layers.
#[derive(Clone, Debug, Default)]
pub struct View {
    nodes: BTreeMap<String, Node>,
}

fn remove_below(nodes: &mut BTreeMap<String, Node>, dir: &str) {
    let prefix = if dir == "/" {
        "/".to_string()
    } else {
        format!("{dir}/")
    };
    let doomed: Vec<String> = nodes
        .range(prefix.clone()..)
        .take_while(|(p, _)| p.starts_with(&prefix))
        .map(|(p, _)| p.clone())
        .collect();
    for path in doomed {
        nodes.remove(&path);
    }
}

impl View {
    /// Applies the layers in order, base first.
    pub fn build(scans: &[&LayerScan]) -> Self {
        let mut nodes = BTreeMap::new();
        for (index, scan) in scans.iter().enumerate() {
            for (path, change) in &scan.changes {
                match change {
                    Change::Opaque => remove_below(&mut nodes, path),
                    Change::Whiteout => {
                        nodes.remove(path);
                        remove_below(&mut nodes, path);
                    }
                    _ => {}
                }
            }
            let links: BTreeMap<&str, &crate::layer::Link> =
                scan.links.iter().map(|l| (l.path.as_str(), l)).collect();
            for (path, change) in &scan.changes {
                let node = match change {
                    Change::Directory => Node::Directory,
                    Change::Entry => match links.get(path.as_str()) {
                        Some(link) if link.hard => Node::Hardlink {
                            target: link.target.clone(),
                            layer: index,
                        },
                        Some(link) => Node::Symlink {
                            target: link.target.clone(),
                        },
                        None => Node::File { layer: index },
                    },
                    Change::Whiteout | Change::Opaque => continue,
                };
                if node != Node::Directory {
                    remove_below(&mut nodes, path);
                }
                if !(node == Node::Directory && nodes.get(path) == Some(&Node::Directory)) {
                    nodes.insert(path.clone(), node);
                }
            }
        }
        Self { nodes }
    }

    /// The node at an exact (unresolved) path.
    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    /// Every path, sorted.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.nodes.keys().map(String::as_str)
    }

    /// Resolves every symlink in `path` within the image (at most 40 hops), returning the
    /// absolute path it names; the last component need not exist.
    pub fn resolve(&self, path: &str) -> Option<String> {
        let mut pending: Vec<String> = path
            .split('/')
            .filter(|c| !c.is_empty())
            .rev()
            .map(str::to_string)
            .collect();
        let mut current: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(component) = pending.pop() {
            match component.as_str() {
                "." => continue,
                ".." => {
                    current.pop();
                    continue;
                }
                _ => {}
            }
            current.push(component);
            let candidate = format!("/{}", current.join("/"));
            if let Some(Node::Symlink { target }) = self.nodes.get(&candidate) {
                hops += 1;
                if hops > 40 {
                    return None;
                }
                current.pop();
                if target.starts_with('/') {
                    current.clear();
                }
                pending.extend(
                    target
                        .split('/')
                        .filter(|c| !c.is_empty())
                        .rev()
                        .map(str::to_string),
                );
            }
        }
        Some(format!("/{}", current.join("/")))
    }

    /// Whether `path` resolves to an existing node.
    pub fn exists(&self, path: &str) -> bool {
        self.resolve(path)
            .is_some_and(|p| p == "/" || self.nodes.contains_key(&p))
    }

    /// Where the bytes of a resolved file live: (layer, path inside that layer).
    pub fn content_of(&self, resolved: &str) -> Option<(usize, String)> {
        match self.nodes.get(resolved)? {
            Node::File { layer } => Some((*layer, resolved.to_string())),
            Node::Hardlink { target, layer } => Some((*layer, target.clone())),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::Link;

    fn scan(changes: &[(&str, Change)], links: &[(&str, &str)]) -> LayerScan {
        LayerScan {
            changes: changes.iter().map(|(p, c)| (p.to_string(), *c)).collect(),
            links: links
                .iter()
                .map(|(p, t)| Link {
                    path: p.to_string(),
                    target: t.to_string(),
                    hard: false,
                })
                .collect(),
            ..LayerScan::default()
        }
    }

    #[test]
    fn resolves_relative_absolute_and_looping_links_inside_the_image() {
        let base = scan(
            &[
                ("/etc", Change::Directory),
                ("/etc/ssl/certs/ca-certificates.crt", Change::Entry),
                ("/etc/ssl/cert.pem", Change::Entry),
                ("/etc/os-release", Change::Entry),
                ("/usr/lib/os-release", Change::Entry),
                ("/loop", Change::Entry),
                ("/escape", Change::Entry),
            ],
            &[
                ("/etc/ssl/cert.pem", "certs/ca-certificates.crt"),
                ("/etc/os-release", "../usr/lib/os-release"),
                ("/loop", "/loop"),
                ("/escape", "../../../../etc/ssl/certs/ca-certificates.crt"),
            ],
        );
        let view = View::build(&[&base]);
        assert_eq!(
            view.resolve("/etc/ssl/cert.pem").as_deref(),
            Some("/etc/ssl/certs/ca-certificates.crt")
        );
        assert_eq!(
            view.resolve("/etc/os-release").as_deref(),
            Some("/usr/lib/os-release")
        );
        assert_eq!(view.resolve("/loop"), None);
        assert_eq!(
            view.resolve("/escape").as_deref(),
            Some("/etc/ssl/certs/ca-certificates.crt"),
            "`..` stops at the image root"
        );
        assert_eq!(
            view.content_of("/usr/lib/os-release"),
            Some((0, "/usr/lib/os-release".into()))
        );
    }

    #[test]
    fn later_layers_delete_and_replace() {
        let base = scan(
            &[
                ("/a/x", Change::Entry),
                ("/b/y", Change::Entry),
                ("/c", Change::Entry),
            ],
            &[],
        );
        let top = scan(
            &[
                ("/a", Change::Opaque),
                ("/b/y", Change::Whiteout),
                ("/c", Change::Entry),
            ],
            &[],
        );
        let view = View::build(&[&base, &top]);
        assert!(!view.exists("/a/x") && !view.exists("/b/y"));
        assert_eq!(view.content_of("/c"), Some((1, "/c".into())));
    }
}
