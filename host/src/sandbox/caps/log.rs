//! The bounded per-job log: `cue:job/host.log` lines plus the guest's stdout and stderr.

use crate::sandbox::error::{FailureKind, JobError};

/// Severity of a log line (the WIT `cue:job/host.level`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal information.
    Info,
    /// Something looks wrong.
    Warn,
    /// Something failed.
    Error,
}

/// Where a log line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogSource {
    /// A `cue:job/host.log` call, with its level.
    Host(LogLevel),
    /// The guest's standard output.
    Stdout,
    /// The guest's standard error (where a Rust guest's panic message goes).
    Stderr,
}

/// One line of a job's log.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LogLine {
    /// Where it came from.
    pub source: LogSource,
    /// The text, without its trailing newline.
    pub text: String,
}

/// Something a running job reports as it happens.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case", tag = "event")]
pub enum JobEvent {
    /// A complete log line.
    Log(LogLine),
    /// `done` out of `total` units of work.
    Progress {
        /// Units done.
        done: u64,
        /// Units in all.
        total: u64,
    },
}

/// A job's log, bounded in bytes. Writing past the bound fails with `too-large`, which stops
/// the job: a guest cannot make the host hold more than `limit` bytes of its output.
#[derive(Debug, Default)]
pub struct JobLog {
    lines: Vec<LogLine>,
    bytes: usize,
    limit: usize,
    /// Stdout bytes after the last newline, waiting for the rest of their line.
    partial_stdout: Vec<u8>,
    /// Stderr bytes after the last newline.
    partial_stderr: Vec<u8>,
}

impl JobLog {
    /// An empty log holding at most `limit` bytes.
    pub fn new(limit: usize) -> Self {
        JobLog { limit, ..JobLog::default() }
    }

    fn reserve(&mut self, n: usize) -> Result<(), JobError> {
        if self.bytes.saturating_add(n) > self.limit {
            return Err(JobError::new(
                FailureKind::TooLarge,
                format!("the job's log passed its limit of {} bytes", self.limit),
            ));
        }
        self.bytes += n;
        Ok(())
    }

    /// Appends a `cue:job/host.log` line; returns the line for live listeners.
    pub(crate) fn push_host(&mut self, level: LogLevel, text: String) -> Result<LogLine, JobError> {
        self.reserve(text.len())?;
        let line = LogLine { source: LogSource::Host(level), text };
        self.lines.push(line.clone());
        Ok(line)
    }

    /// Appends raw stdout/stderr bytes; returns the lines they completed.
    pub(crate) fn push_stream(&mut self, source: LogSource, bytes: &[u8]) -> Result<Vec<LogLine>, JobError> {
        self.reserve(bytes.len())?;
        let partial = match source {
            LogSource::Stderr => &mut self.partial_stderr,
            _ => &mut self.partial_stdout,
        };
        partial.extend_from_slice(bytes);
        let mut completed = Vec::new();
        while let Some(newline) = partial.iter().position(|&b| b == b'\n') {
            let rest = partial.split_off(newline + 1);
            let mut line = std::mem::replace(partial, rest);
            line.pop();
            completed.push(LogLine { source, text: String::from_utf8_lossy(&line).into_owned() });
        }
        self.lines.extend(completed.iter().cloned());
        Ok(completed)
    }

    /// Ends the log: unfinished stdout/stderr lines become lines. Returns them.
    pub(crate) fn finish(&mut self) -> Vec<LogLine> {
        let mut flushed = Vec::new();
        for (source, partial) in
            [(LogSource::Stdout, &mut self.partial_stdout), (LogSource::Stderr, &mut self.partial_stderr)]
        {
            if !partial.is_empty() {
                let text = String::from_utf8_lossy(&std::mem::take(partial)).into_owned();
                flushed.push(LogLine { source, text });
            }
        }
        self.lines.extend(flushed.iter().cloned());
        flushed
    }

    /// Takes the lines out, leaving the log empty.
    pub(crate) fn take_lines(&mut self) -> Vec<LogLine> {
        std::mem::take(&mut self.lines)
    }

    /// The message of a Rust guest's panic, read from its stderr: the text after the last
    /// `panicked at <location>:` line, up to the standard `note:` line.
    pub(crate) fn panic_message(&self) -> Option<String> {
        let stderr: Vec<&str> = self
            .lines
            .iter()
            .filter(|line| line.source == LogSource::Stderr)
            .map(|line| line.text.as_str())
            .collect();
        let start = stderr.iter().rposition(|line| line.contains("panicked at"))?;
        let message: Vec<&str> =
            stderr[start + 1..].iter().take_while(|line| !line.starts_with("note: ")).copied().collect();
        let message = message.join("\n");
        Some(if message.is_empty() { stderr[start].to_string() } else { message })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_bytes_become_lines_and_the_bound_holds() {
        let mut log = JobLog::new(32);
        assert!(log.push_stream(LogSource::Stdout, b"hel").unwrap().is_empty());
        let lines = log.push_stream(LogSource::Stdout, b"lo\nwor").unwrap();
        assert_eq!(lines[0].text, "hello");
        assert_eq!(log.finish()[0].text, "wor");
        let err = log.push_host(LogLevel::Info, "x".repeat(30)).unwrap_err();
        assert_eq!(err.kind, FailureKind::TooLarge);
    }

    #[test]
    fn the_panic_message_is_found_in_stderr() {
        let mut log = JobLog::new(1 << 10);
        let stderr = "\nthread '<unnamed>' panicked at src/lib.rs:9:9:\nthe guest gave up at 42\n\
                      note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n";
        log.push_stream(LogSource::Stderr, stderr.as_bytes()).unwrap();
        assert_eq!(log.panic_message().as_deref(), Some("the guest gave up at 42"));
    }
}
