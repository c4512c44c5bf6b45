//! The one integration-test binary: it runs the real `ocicert` binary on images built here.

mod common;
mod hostile;
mod scan;
mod sources;
