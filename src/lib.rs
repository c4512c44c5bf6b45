//! ocicert: find, inventory and judge the private keys and certificates in container images.
//!
//! The library is a pure, synchronous scan engine (`detect`, `layer`, `overlay`, `analyze`,
//! `scan`) over image sources (`image`), with report writers (`report`). The `ocicert` binary is
//! a thin shell around `commands`.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod analyze;
pub mod baseline;
pub mod cache;
pub mod cli;
pub mod commands;
pub mod detect;
pub mod finding;
#[doc(hidden)]
pub mod fuzzing;
pub mod image;
pub mod inject;
pub mod jks;
pub mod keys;
pub mod layer;
pub mod memory;
pub mod overlay;
pub mod p12;
pub mod packages;
pub mod pbe;
pub mod pipeline;
pub mod policy;
pub mod private;
pub mod registry;
pub mod report;
#[cfg(test)]
mod rule_rows;
pub mod scan;
pub mod serve;
pub mod sign;
pub mod store;
pub mod tar_guard;
#[cfg(test)]
mod test_fixtures;
pub mod truststore;
pub mod x509;
