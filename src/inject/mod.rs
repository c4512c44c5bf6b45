//! Trust injection: plans and builds the one layer that makes every trust store of an image
//! trust new CAs, plus the edited config.
//!
//! Pure: it works from the image's final filesystem view and file contents handed in, and
//! returns layer bytes and JSON (`apply` reads the layers it needs from a blob store); opening
//! sources and writing or pushing belong to `commands::inject`.

pub mod apply;
pub mod attestation;
pub mod build;
pub mod cas;
pub mod enroll;
pub mod fsview;
pub mod java;
mod java_p12;
pub mod plan;
pub mod subject_hash;
