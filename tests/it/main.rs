//! The one integration-test binary: it runs the real `ocicert` binary on images built here.

#![allow(clippy::unwrap_used)]

mod common;
mod hostile;
mod policy;
mod registry;
mod report;
mod scan;
mod serve;
mod sources;
mod support;
