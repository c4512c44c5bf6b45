//! The stub's integration tests: one binary, one module per area. They run the real stub binary
//! against real servers (pebble) or protocol-exact test servers (EST, Vault), and in containers.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod acme;
mod behaviour;
mod container;
mod est;
mod support;
mod vault;
