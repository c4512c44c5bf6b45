//! Test-only: reading a file of `fixtures/` (see `fixtures/README.md`), for the unit tests.

/// The bytes of `fixtures/<name>`; a missing fixture fails the test.
pub(crate) fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name);
    fs_err::read(path).unwrap()
}
