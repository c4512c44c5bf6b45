//! Command-line arguments (clap derive). Doc comments are the `--help` text.

use crate::report::Format;
use clap::{Parser, Subcommand, ValueEnum};

/// Find, inventory and judge the private keys and certificates inside container images.
#[derive(Debug, Parser)]
#[command(name = "ocicert", version, about, long_about = None, after_help = examples::TOP)]
pub struct Cli {
    /// More logging on stderr (-v info, -vv debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
#[allow(
    clippy::large_enum_variant,
    reason = "parsed once per process; boxing would only add noise"
)]
pub enum Command {
    /// Scan an image for private keys and certificates.
    #[command(after_help = examples::SCAN)]
    Scan(ScanArgs),
    /// Copy an image between registries and local layouts, byte for byte.
    #[command(after_help = examples::COPY)]
    Copy(CopyArgs),
    /// Add CA certificates to every trust store of an image, as one new layer.
    #[command(after_help = examples::INJECT)]
    Inject(InjectArgs),
    /// Sign an image in a registry with a cosign key (cosign-compatible signature).
    #[command(after_help = examples::SIGN)]
    Sign(SignArgs),
    /// Write a cosign-format key pair (`cosign.key`, encrypted, and `cosign.pub`).
    #[command(after_help = examples::GENERATE_KEY_PAIR)]
    GenerateKeyPair(GenerateKeyPairArgs),
    /// List the rules with their ids, default severities and summaries.
    #[command(after_help = examples::RULES)]
    Rules,
    /// Print Mozilla's current TLS root certificates (the set `unknown-trust-anchor` and
    /// `removed-trust-anchor` compare against) as one PEM bundle.
    #[command(after_help = examples::ROOTS)]
    Roots,
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(after_help = examples::COMPLETIONS)]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    #[command(after_help = examples::MAN)]
    Man,
    /// Run the webhook scanning service (see docs/serve.md).
    #[command(after_help = examples::SERVE)]
    Serve(ServeArgs),
}

/// Arguments of `ocicert serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The service configuration (TOML): listen address, webhook secrets, registry allowlist.
    #[arg(long, value_name = "PATH")]
    pub config: std::path::PathBuf,
    /// Where the SQLite database and the layer cache live [default: `data_dir` of the config].
    #[arg(long, env = "OCICERT_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<std::path::PathBuf>,
    /// `postgres://user@host:port/db` to share one queue between several processes
    /// [default: SQLite in the data directory].
    #[arg(
        long,
        env = "OCICERT_DATABASE",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database: Option<String>,
    /// Listen on this address instead of the config's `listen`.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
}

/// How to reach registries (shared by every command that takes an image).
#[derive(Debug, Clone, clap::Args)]
pub struct RegistryArgs {
    /// Registry credentials as `user:pass` (else OCICERT_USERNAME/OCICERT_PASSWORD, then the
    /// podman/skopeo auth.json, then ~/.docker/config.json and its credential helpers).
    #[arg(long, value_name = "USER:PASS", hide_env_values = true)]
    pub creds: Option<String>,
    /// Allow plain HTTP and unverified TLS for the registries of this run.
    #[arg(long)]
    pub insecure: bool,
    /// Extra CA certificates (PEM) to trust for registries, next to the system roots.
    #[arg(long = "ca-file", value_name = "PEM")]
    pub ca_files: Vec<std::path::PathBuf>,
    /// Give up on a registry that makes no progress for this many seconds: connecting, waiting
    /// for an answer, between two reads of a layer, and for a whole manifest or token.
    #[arg(
        long,
        value_name = "SECONDS",
        env = "OCICERT_HTTP_TIMEOUT",
        default_value_t = 60,
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    pub timeout: u64,
    /// Require a cosign signature on the source image that this public key verifies
    /// (repeatable: any key may match).
    #[arg(long = "verify-key", value_name = "PUB")]
    pub verify_keys: Vec<std::path::PathBuf>,
}

/// Signing options of commands that push.
#[derive(Debug, Clone, clap::Args)]
pub struct SigningArgs {
    /// Sign the pushed image with this cosign private key.
    #[arg(long, value_name = "KEY")]
    pub sign_key: Option<std::path::PathBuf>,
    /// File whose first line is the key password (default: COSIGN_PASSWORD).
    #[arg(long, value_name = "FILE")]
    pub key_password_file: Option<std::path::PathBuf>,
}

/// Arguments of `ocicert sign`.
#[derive(Debug, clap::Args)]
pub struct SignArgs {
    /// The registry image to sign (tag or digest).
    pub image: String,
    /// cosign private key (`ENCRYPTED SIGSTORE PRIVATE KEY` or `ENCRYPTED COSIGN PRIVATE KEY`).
    #[arg(long)]
    pub key: std::path::PathBuf,
    /// File whose first line is the key password (default: COSIGN_PASSWORD).
    #[arg(long, value_name = "FILE")]
    pub key_password_file: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Arguments of `ocicert generate-key-pair`.
#[derive(Debug, clap::Args)]
pub struct GenerateKeyPairArgs {
    /// Write `<prefix>.key` and `<prefix>.pub`.
    #[arg(long, default_value = "cosign")]
    pub output_key_prefix: String,
    /// File whose first line is the key password (default: COSIGN_PASSWORD).
    #[arg(long, value_name = "FILE")]
    pub key_password_file: Option<std::path::PathBuf>,
}

/// Where scan results of layers are cached.
#[derive(Debug, Clone, clap::Args)]
pub struct CacheArgs {
    /// Layer cache directory (default: $XDG_CACHE_HOME/ocicert or ~/.cache/ocicert).
    #[arg(long, env = "OCICERT_CACHE_DIR", value_name = "DIR")]
    pub cache_dir: Option<std::path::PathBuf>,
    /// Do not read or write the layer cache.
    #[arg(long, env = "OCICERT_NO_CACHE", value_parser = clap::builder::FalseyValueParser::new())]
    pub no_cache: bool,
}

/// Arguments of `ocicert copy`.
#[derive(Debug, clap::Args)]
pub struct CopyArgs {
    /// Source image: a registry reference or `oci:`, `oci-archive:`, `docker-archive:`.
    pub source: String,
    /// Destination: a registry reference, `oci:DIR[:TAG]` or `docker-archive:FILE[:REPO:TAG]`.
    pub destination: String,
    /// Copy only this platform of a multi-platform image (default: every platform).
    #[arg(long)]
    pub platform: Option<String>,
    /// Credentials for the source registry (default: --creds).
    #[arg(long, value_name = "USER:PASS")]
    pub src_creds: Option<String>,
    /// Credentials for the destination registry (default: --creds).
    #[arg(long, value_name = "USER:PASS")]
    pub dest_creds: Option<String>,
    /// Also write the pushed digest to this file.
    #[arg(long, value_name = "FILE")]
    pub digest_file: Option<std::path::PathBuf>,
    /// Upload blobs larger than this many bytes in chunks of this size.
    #[arg(long, default_value_t = 64 * 1024 * 1024, hide = true, env = "OCICERT_UPLOAD_CHUNK_BYTES")]
    pub chunk_bytes: u64,
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[command(flatten)]
    pub signing: SigningArgs,
}

pub use crate::finding::FailOn;

/// `--fail-on` values: the library's `FailOn`, with clap's help text.
impl ValueEnum for FailOn {
    fn value_variants<'a>() -> &'a [Self] {
        &Self::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        let value = clap::builder::PossibleValue::new(self.as_str());
        Some(match self {
            Self::Never => value.help("Always exit 0 when the scan itself worked"),
            _ => value,
        })
    }
}

/// Arguments of `ocicert scan`.
#[derive(Debug, clap::Args)]
pub struct ScanArgs {
    /// The image: a registry reference (`nginx`, `ghcr.io/org/app:v1`, `…@sha256:…`,
    /// `docker://…`), `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]`,
    /// `docker-archive:FILE[:REPO:TAG]` or `dir:PATH`.
    pub image: String,
    /// Platform to scan in a multi-platform image, as `os/arch[/variant]` (default: the host's).
    #[arg(long, conflicts_with = "all_platforms")]
    pub platform: Option<String>,
    /// Scan every platform of a multi-platform image (shared layers are scanned once).
    #[arg(long)]
    pub all_platforms: bool,
    /// Output format on stdout.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Also write the report as FORMAT to PATH (repeatable), e.g. `--output sarif=ocicert.sarif`.
    #[arg(long = "output", value_name = "FORMAT=PATH", value_parser = parse_output)]
    pub outputs: Vec<OutputTarget>,
    /// Exit with status 1 when a finding is at or above this severity [default: the policy's
    /// `fail_on`, else high].
    #[arg(long, value_enum)]
    pub fail_on: Option<FailOn>,
    /// Judge certificates as of this instant (RFC 3339, e.g. 2026-06-01T00:00:00Z).
    #[arg(long)]
    pub now: Option<String>,
    /// Warn about certificates that expire within this many days [default: the policy's
    /// `expiry_warn_days`, else 30].
    #[arg(long)]
    pub expiry_warn: Option<u32>,
    /// Policy file [default: `ocicert.toml` in the working directory, when present].
    #[arg(long, value_name = "PATH")]
    pub policy: Option<std::path::PathBuf>,
    /// Ignore `ocicert.toml` in the working directory.
    #[arg(long, conflicts_with = "policy")]
    pub no_policy: bool,
    /// List every finding in the table: without it, repeats of a rule in one file, one trust
    /// store or one package's verified files are one entry (JSON and SARIF always list each).
    #[arg(long)]
    pub show_all: bool,
    /// An earlier JSON report: only findings not in it count toward `--fail-on`.
    #[arg(long, value_name = "REPORT")]
    pub baseline: Option<std::path::PathBuf>,
    /// The Dockerfile that built the image, relative to the repository root: SARIF results
    /// then point at the instruction that created each layer.
    #[arg(long, value_name = "PATH")]
    pub dockerfile: Option<std::path::PathBuf>,
    /// Extra keystore password to try (repeatable), after the empty one and common defaults.
    #[arg(
        long = "keystore-password",
        env = "OCICERT_KEYSTORE_PASSWORD",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub keystore_passwords: Vec<String>,
    /// How many archives deep to look inside files (jar in war in tar.gz …).
    #[arg(long, default_value_t = 3)]
    pub max_archive_depth: u32,
    /// Worker threads (default: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[command(flatten)]
    pub cache: CacheArgs,
}

/// One `--output FORMAT=PATH`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputTarget {
    pub format: Format,
    pub path: std::path::PathBuf,
}

fn parse_output(text: &str) -> Result<OutputTarget, String> {
    let Some((format, path)) = text.split_once('=') else {
        return Err("expected FORMAT=PATH, for example `sarif=ocicert.sarif`".into());
    };
    let format = <Format as ValueEnum>::from_str(format, true).map_err(|_| {
        format!("unknown format `{format}`; expected table, json, sarif, cyclonedx or markdown")
    })?;
    if path.is_empty() {
        return Err("the path after `=` is empty".into());
    }
    Ok(OutputTarget {
        format,
        path: path.into(),
    })
}

/// Arguments of `ocicert inject`.
#[derive(Debug, clap::Args)]
pub struct InjectArgs {
    /// Source image (any reference `scan` accepts except `dir:`).
    pub image: String,
    /// PEM file with one or more CA certificates to trust (repeatable).
    #[arg(long = "ca", value_name = "PEM", required = true)]
    pub cas: Vec<std::path::PathBuf>,
    /// Destination: a registry reference, `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]` or
    /// `docker-archive:FILE[:REPO:TAG]`.
    #[arg(long, value_name = "DEST", required_unless_present = "dry_run")]
    pub to: Option<String>,
    /// Inject into this platform only (default: every platform, index re-assembled).
    #[arg(long)]
    pub platform: Option<String>,
    /// Accept certificates that are not CAs (basicConstraints CA:FALSE or absent).
    #[arg(long)]
    pub allow_non_ca: bool,
    /// Password of the Java `cacerts` stores in the image.
    #[arg(
        long,
        default_value = "changeit",
        hide_default_value = true,
        env = "OCICERT_JAVA_STORE_PASSWORD",
        hide_env_values = true
    )]
    pub java_store_password: String,
    /// Replace env values the image already sets (NODE_EXTRA_CA_CERTS, SSL_CERT_FILE).
    #[arg(long)]
    pub env_override: bool,
    /// Print the plan (files, stores, env) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Also write the new digest to this file.
    #[arg(long, value_name = "FILE")]
    pub digest_file: Option<std::path::PathBuf>,
    /// Credentials for the source registry (default: --creds).
    #[arg(long, value_name = "USER:PASS")]
    pub src_creds: Option<String>,
    /// Credentials for the destination registry (default: --creds).
    #[arg(long, value_name = "USER:PASS")]
    pub dest_creds: Option<String>,
    /// Attach a DSSE-signed in-toto attestation of what was injected (needs --sign-key).
    #[arg(long, requires = "sign_key")]
    pub attest: bool,
    #[command(flatten)]
    pub enroll: EnrollArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[command(flatten)]
    pub signing: SigningArgs,
    #[command(flatten)]
    pub cache: CacheArgs,
}

/// Which enrollment protocol the stub speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EnrollProtocol {
    Acme,
    Est,
    Vault,
}

/// `inject --enroll`: add the init-time enrollment stub and make it the entrypoint.
#[derive(Debug, Clone, clap::Args)]
pub struct EnrollArgs {
    /// Enroll for a fresh certificate at container start with this protocol.
    #[arg(long, value_enum, requires_all = ["enroll_url", "enroll_sans"])]
    pub enroll: Option<EnrollProtocol>,
    /// ACME directory URL, EST server URL (the stub adds `/.well-known/est/…`) or Vault address.
    #[arg(long, value_name = "URL")]
    pub enroll_url: Option<String>,
    /// SubjectAltName template (repeatable): `${HOSTNAME}`, `${POD_NAME}.svc`, any env var, or a
    /// fixed name or IP.
    #[arg(long = "enroll-san", value_name = "TEMPLATE")]
    pub enroll_sans: Vec<String>,
    /// Key generated at start: ecdsa-p256 (default), ecdsa-p384, ed25519, rsa-2048, rsa-3072.
    #[arg(long, value_name = "TYPE", default_value = "ecdsa-p256")]
    pub enroll_key_type: String,
    /// Start the app even when enrollment fails (default: exit non-zero).
    #[arg(long)]
    pub enroll_optional: bool,
    /// Keep the stub as a minimal init that renews the certificate at 2/3 of its lifetime.
    #[arg(long)]
    pub enroll_renew: bool,
    /// PEM bundle inside the image that the enrollment server must chain to (default: the
    /// image's system bundle, which now includes the injected CAs).
    #[arg(long, value_name = "PATH")]
    pub enroll_tls_ca: Option<String>,
    /// Vault PKI role (`sign/<role>`).
    #[arg(long, value_name = "ROLE")]
    pub enroll_vault_role: Option<String>,
    /// Vault PKI mount (default `pki`).
    #[arg(long, value_name = "MOUNT")]
    pub enroll_vault_mount: Option<String>,
    /// A complete enrollment config (JSON, see docs/enroll.md) instead of the flags above.
    #[arg(long, value_name = "FILE", conflicts_with = "enroll")]
    pub enroll_config: Option<std::path::PathBuf>,
}

/// The "Examples:" blocks at the end of `--help`. Every line is a command that works as written
/// once the files it names exist; `tests/it/help.rs` checks that each subcommand has its block.
mod examples {
    pub(super) const TOP: &str = "\
Examples:
  # Scan the demo image of the source tree (exits 1: it has findings at or above high)
  ocicert scan oci-archive:fixtures/images/demo.tar
  # Make every runtime in an image trust a corporate root, as one new layer
  ocicert inject registry.example.com/app:1.2 --ca corp-root.pem --to registry.example.com/app:1.2-corp
  # The rule ids that findings, policies and baselines use
  ocicert rules

`ocicert <COMMAND> --help` shows examples for each command.";

    pub(super) const SCAN: &str = "\
Examples:
  # The demo image of the source tree (exits 1: it has findings at or above high)
  ocicert scan oci-archive:fixtures/images/demo.tar
  # A registry image in CI: table on stdout, SARIF and JSON files, exit 1 at high or above
  ocicert scan registry.example.com/app:1.2 --output sarif=ocicert.sarif \\
    --output json=ocicert.json --fail-on high
  # A `docker save` tarball; SARIF alerts point at the Dockerfile line that added each key
  ocicert scan docker-archive:app.tar --dockerfile Dockerfile --format sarif > ocicert.sarif
  # Every platform of a multi-platform image, as JSON
  ocicert scan ghcr.io/org/app:v1 --all-platforms --format json > report.json
  # Only findings that are not in an earlier report count toward --fail-on
  ocicert scan oci:build/layout:1.3 --baseline report.json
  # An unpacked root filesystem; report, but never fail
  ocicert scan dir:rootfs --fail-on never

Exit status: 0 nothing at or above --fail-on, 1 findings at or above it, 2 the scan could not
be done.";

    pub(super) const COPY: &str = "\
Examples:
  # Mirror every platform of an image to another registry; digests stay the same
  ocicert copy docker.io/library/nginx:1.27 registry.example.com/mirror/nginx:1.27
  # Push a local archive and keep the pushed digest
  ocicert copy oci-archive:app.tar registry.example.com/app:1.2 --digest-file app.digest
  # One platform into a tarball that `docker load` reads
  ocicert copy registry.example.com/app:1.2 docker-archive:app.tar:app:1.2 --platform linux/amd64
  # Copy only when the source is signed by upstream.pub, and sign the copy
  ocicert copy registry.example.com/app:1.2 registry.example.com/prod/app:1.2 \\
    --verify-key upstream.pub --sign-key cosign.key";

    pub(super) const INJECT: &str = "\
Examples:
  # Show which stores, files and env vars would change; write nothing
  ocicert inject registry.example.com/app:1.2 --ca corp-root.pem --dry-run
  # Trust corp-root.pem in every platform of the image and push it under a new tag
  ocicert inject registry.example.com/app:1.2 --ca corp-root.pem --to registry.example.com/app:1.2-corp
  # Local archive in, local archive out
  ocicert inject oci-archive:app.tar --ca corp-root.pem --to oci-archive:app-corp.tar
  # Get a certificate over EST when the container starts instead of baking a key in
  ocicert inject registry.example.com/app:1.2 --ca corp-root.pem --to registry.example.com/app:1.2-enroll \\
    --enroll est --enroll-url https://est.corp.example --enroll-san '${HOSTNAME}.svc.corp.example'
  # Sign the result and attach an attestation of what was injected (COSIGN_PASSWORD set)
  ocicert inject registry.example.com/app:1.2 --ca corp-root.pem --to registry.example.com/app:1.2-corp \\
    --sign-key cosign.key --attest";

    pub(super) const SIGN: &str = "\
Examples:
  # Sign a pushed image; the key password comes from COSIGN_PASSWORD
  ocicert sign registry.example.com/app:1.2 --key cosign.key
  # The password from the first line of a file instead
  ocicert sign registry.example.com/app:1.2 --key cosign.key --key-password-file cosign.password
  # Check the signature: scan, copy and inject take --verify-key
  ocicert scan registry.example.com/app:1.2 --verify-key cosign.pub";

    pub(super) const GENERATE_KEY_PAIR: &str = "\
Examples:
  # cosign.key (encrypted with COSIGN_PASSWORD) and cosign.pub in the current directory
  ocicert generate-key-pair
  # release.key and release.pub, the password from the first line of a file
  ocicert generate-key-pair --output-key-prefix release --key-password-file release.password

Existing files are never overwritten.";

    pub(super) const RULES: &str = "\
Examples:
  # Every rule id with its default severity and summary
  ocicert rules
  # Only the critical ones
  ocicert rules | grep critical

docs/rules.md explains each rule with an example and a fix.";

    pub(super) const ROOTS: &str = "\
Examples:
  # The bundle ocicert's own image ships; a reference to compare a distro bundle with
  ocicert roots > mozilla-roots.pem
  # How many roots Mozilla trusts for TLS today
  ocicert roots | grep -c 'BEGIN CERTIFICATE'
";

    pub(super) const COMPLETIONS: &str = "\
Examples:
  ocicert completions bash > ~/.local/share/bash-completion/completions/ocicert
  ocicert completions fish > ~/.config/fish/completions/ocicert.fish
  # zsh: a directory in $fpath, e.g. fpath+=(~/.zfunc) before compinit in ~/.zshrc
  ocicert completions zsh > ~/.zfunc/_ocicert";

    pub(super) const MAN: &str = "\
Examples:
  ocicert man > ocicert.1 && man ./ocicert.1
  ocicert man | sudo tee /usr/local/share/man/man1/ocicert.1 > /dev/null";

    pub(super) const SERVE: &str = "\
Examples:
  # One process; the queue is SQLite in the data directory
  ocicert serve --config serve.toml --data-dir /var/lib/ocicert
  # One of several replicas sharing a PostgreSQL queue (or OCICERT_DATABASE=...)
  ocicert serve --config serve.toml --data-dir /var/lib/ocicert \\
    --database postgres://ocicert@db.internal:5432/ocicert
  # Listen somewhere else than the config's `listen`
  ocicert serve --config serve.toml --data-dir /var/lib/ocicert --listen 127.0.0.1:9090";
}
