//! The stdout audit sink: one JSON object per line, for a log collector.
//!
//! A batch counts as committed when its lines are written and stdout is flushed. What happens
//! after that, such as a pipe to a collector that loses lines, is outside the server's control.
//! Logs go to stderr, so the two streams do not mix.

use std::io::{self, Write};

use super::{AuditError, AuditRecord, AuditSink};

/// Writes audit records as JSON lines.
pub struct StdoutSink {
    output: Box<dyn Write + Send>,
    buffer: Vec<u8>,
}

impl std::fmt::Debug for StdoutSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StdoutSink").finish_non_exhaustive()
    }
}

impl StdoutSink {
    /// Makes a sink that writes to the process's stdout.
    pub fn new() -> Self {
        StdoutSink::with_writer(Box::new(io::stdout()))
    }

    /// Makes a sink that writes the same lines to `output`, for embedding applications and
    /// tests.
    pub fn with_writer(output: Box<dyn Write + Send>) -> Self {
        StdoutSink {
            output,
            buffer: Vec::new(),
        }
    }
}

impl Default for StdoutSink {
    fn default() -> Self {
        StdoutSink::new()
    }
}

impl AuditSink for StdoutSink {
    fn name(&self) -> &'static str {
        "stdout"
    }

    fn prepare(&mut self) -> Result<(), AuditError> {
        Ok(())
    }

    fn write_batch(&mut self, records: &[AuditRecord]) -> Result<(), AuditError> {
        self.buffer.clear();
        for record in records {
            serde_json::to_writer(&mut self.buffer, record)
                .map_err(|error| AuditError::new("stdout", error.to_string()))?;
            self.buffer.push(b'\n');
        }
        self.output
            .write_all(&self.buffer)
            .and_then(|()| self.output.flush())
            .map_err(|error| AuditError::new("stdout", format!("failed to write: {error}")))
    }
}
