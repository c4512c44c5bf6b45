//! Keys that packages generate while they are installed: in no package's file list, at a path
//! the package's install script is known to write. Built into an image, such a key is the same
//! in every container started from it. It does not read any package script: the table is what
//! the packages document.

/// One kind of generated key: the path (a prefix and a suffix around a variable part, or an
/// exact path when the suffix is empty) and the package whose install script writes it.
pub struct Generated {
    pub prefix: &'static str,
    pub suffix: &'static str,
    pub package: &'static str,
    /// How to make the key per container instead.
    pub fix: &'static str,
}

/// What the installers of common packages generate.
pub const GENERATED: &[Generated] = &[
    Generated {
        prefix: "/etc/ssh/ssh_host_",
        suffix: "_key",
        package: "openssh-server",
        fix: "run `ssh-keygen -A` when the container starts",
    },
    Generated {
        prefix: "/etc/ssl/private/ssl-cert-snakeoil.key",
        suffix: "",
        package: "ssl-cert",
        fix: "run `make-ssl-cert generate-default-snakeoil --force-overwrite` when the container starts",
    },
    Generated {
        prefix: "/etc/dropbear/dropbear_",
        suffix: "_host_key",
        package: "dropbear",
        fix: "start dropbear with `-R` so that it makes its host keys at start",
    },
    Generated {
        prefix: "/etc/pki/tls/private/localhost.key",
        suffix: "",
        package: "mod_ssl",
        fix: "generate the key when the container starts (`/usr/libexec/httpd-ssl-gencerts`)",
    },
];

/// The generator of the key at `path`, if it is a path a package's installer writes.
pub fn generator(path: &str) -> Option<&'static Generated> {
    GENERATED.iter().find(|g| {
        if g.suffix.is_empty() {
            path == g.prefix
        } else {
            path.strip_prefix(g.prefix).is_some_and(|rest| {
                rest.strip_suffix(g.suffix)
                    .is_some_and(|middle| !middle.is_empty() && !middle.contains('/'))
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_keys_and_snakeoil_are_generated_but_their_neighbours_are_not() {
        for path in [
            "/etc/ssh/ssh_host_ed25519_key",
            "/etc/ssh/ssh_host_rsa_key",
            "/etc/ssl/private/ssl-cert-snakeoil.key",
            "/etc/dropbear/dropbear_ecdsa_host_key",
        ] {
            assert!(generator(path).is_some(), "{path}");
        }
        for path in [
            "/etc/ssh/ssh_host_ed25519_key.pub",
            "/etc/ssh/ssh_host__key",
            "/etc/ssh/keys/ssh_host_rsa_key/x_key",
            "/etc/ssl/private/server.key",
            "/root/.ssh/id_ed25519",
        ] {
            assert!(generator(path).is_none(), "{path}");
        }
    }
}
