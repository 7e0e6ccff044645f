//! `run --record FILE`: every request a connection sends upstream (`tools/list`,
//! `tools/call`) with what came back, one JSON object per line, so that `run --replay FILE`
//! can run the plugin again with no server at all.
//!
//! Why here, in the client layer: every upstream request passes through it, whether a
//! plugin's session, a temporary call or the aggregator's listing made it. A recording
//! belongs to one `run`, so the recorder is the process's; with none, nothing is written and
//! nothing is serialised.

use std::io::Write;
use std::sync::{Mutex, OnceLock};

use crate::locks::lock;
use serde_json::Value;

static RECORDER: OnceLock<Mutex<std::fs::File>> = OnceLock::new();

/// Records to `path` (created, or emptied) from now on; once per process.
pub fn record_to(path: &std::path::Path) -> std::io::Result<()> {
    let file = std::fs::File::create(path)?;
    RECORDER
        .set(Mutex::new(file))
        .map_err(|_| std::io::Error::other("this process is already recording"))
}

/// Whether this process is recording.
pub fn recording() -> bool {
    RECORDER.get().is_some()
}

/// Appends `line` to the recording, if this process is recording.
pub fn note(line: Value) {
    if let Some(file) = RECORDER.get() {
        let mut file = lock(file);
        if let Err(e) = writeln!(file, "{line}") {
            tracing::warn!(error = %e, "cannot write to the recording");
        }
    }
}
