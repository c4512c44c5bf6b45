//! `ocicert-enroll`, the init-time enrollment stub that `ocicert inject --enroll` puts into an
//! image: at container start it gets a short-lived certificate (ACME, EST or Vault PKI) for a
//! key generated in memory, writes it to a tmpfs, and execs the image's real entrypoint.
//!
//! The library exists so the binary stays a thin `main` and the modules can be unit-tested; it is
//! not meant as a dependency of other crates (the config schema lives in
//! `ocicert-enroll-config` for that). It has no async runtime and no system TLS: one blocking
//! HTTP client with rustls and ring, so the static binary stays small.

pub mod acme;
pub mod cli;
pub mod der;
pub mod est;
pub mod http;
pub mod key;
pub mod renew;
pub mod run;
pub mod store;
pub mod template;
pub mod vault;
