//! The results file: every scenario appends its figures to it, one JSON line per
//! measurement (`--results`, default `loadtest-results.jsonl`).

use std::io::Write;
use std::path::Path;

/// The results file, opened for appending (created if missing).
pub fn open(path: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

/// Appends one JSON line to the results file.
pub fn append(path: &Path, line: &serde_json::Value) {
    writeln!(open(path), "{line}").expect("write results");
}
