//! The PEM scanner, whole-buffer and streaming, agreeing on what they find.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocicert::detect::{interpret_pem, pem};
use std::io::Read;

/// Hands out at most `step` bytes per read, so block boundaries fall inside reads.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.data.len().min(buf.len()).min(self.step);
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fuzz_target!(|data: &[u8]| {
    let whole = pem::blocks(data);
    for block in &whole {
        let _ = interpret_pem(block);
    }
    let step = 1 + data.first().copied().unwrap_or(0) as usize * 7;
    let mut streamed = 0usize;
    pem::blocks_in_stream(Trickle { data, step }, |_| streamed += 1).unwrap();
    assert_eq!(whole.len(), streamed, "stream and buffer scans disagree");
});
