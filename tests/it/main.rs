//! The one integration-test binary: it runs the real `ocicert` binary on images built here.

#![allow(clippy::unwrap_used)]

mod action;
mod common;
mod detection_depth;
mod dockerfile;
mod fuzz_regressions;
mod help;
mod hostile;
mod hostile_keystores;
mod hostile_registry;
mod hostile_serve;
mod hostile_tar;
mod hygiene;
mod inject;
mod inject_java;
mod policy;
mod provenance;
mod registry;
mod report;
mod rootfs;
mod scan;
mod serve;
mod serve_connections;
mod serve_egress;
mod signing;
mod sources;
mod store_contract;
mod support;
