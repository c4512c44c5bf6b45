//! The JSON report: `Report` serialised as is, pretty-printed, newline-terminated.

use super::Report;
use std::io::Write;

/// Writes the report as JSON.
pub fn write(report: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, report)?;
    writeln!(out)
}
