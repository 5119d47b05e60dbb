//! The process's log as the dashboard reads it: a `tracing` layer ([`LogFeedLayer`]) that keeps
//! the latest lines in a bounded ring and hands each new one to live readers through a bounded
//! broadcast. `cue` installs it beside the terminal's log (`main.rs`); without it the feed is
//! simply empty.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock, PoisonError};

use serde::Serialize;
use tokio::sync::broadcast;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::Context;

/// Lines kept for a reader that arrives later (the dashboard's Log view opens with them); the
/// oldest is dropped when a new one comes.
pub const KEPT_LINES: usize = 500;
/// Lines waiting for a slow live reader; past that it skips the oldest and is told how many
/// (`broadcast`'s lag), the writer never waits.
pub const LIVE_BUFFER: usize = 256;
/// The longest message kept, in bytes; a longer one is cut (on a character boundary) and ends
/// with `…`.
pub const MAX_LINE_BYTES: usize = 2048;

/// One log line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LogLine {
    /// When, in ms since the Unix epoch.
    pub ms: u64,
    /// `ERROR`, `WARN`, `INFO`, `DEBUG` or `TRACE`.
    pub level: &'static str,
    /// The module that logged it (`cue_host::node::provider::run`).
    pub target: String,
    /// The message, then its fields as `name=value`.
    pub message: String,
}

/// The feed: a ring of recent lines and the live broadcast.
pub struct LogFeed {
    /// The latest [`KEPT_LINES`] lines, oldest first.
    kept: Mutex<VecDeque<LogLine>>,
    /// New lines, to every live reader ([`LIVE_BUFFER`] each).
    live: broadcast::Sender<LogLine>,
}

/// The process's feed.
pub fn feed() -> &'static LogFeed {
    static FEED: OnceLock<LogFeed> = OnceLock::new();
    FEED.get_or_init(|| LogFeed {
        kept: Mutex::new(VecDeque::with_capacity(KEPT_LINES)),
        live: broadcast::channel(LIVE_BUFFER).0,
    })
}

impl LogFeed {
    /// The lines kept, oldest first.
    pub fn recent(&self) -> Vec<LogLine> {
        self.kept.lock().unwrap_or_else(PoisonError::into_inner).iter().cloned().collect()
    }

    /// A live reader of the lines logged from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<LogLine> {
        self.live.subscribe()
    }

    /// Keeps `line` and hands it to the live readers (none: dropped).
    pub fn push(&self, line: LogLine) {
        {
            let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
            if kept.len() == KEPT_LINES {
                kept.pop_front();
            }
            kept.push_back(line.clone());
        }
        let _ = self.live.send(line);
    }
}

/// The `tracing` layer that writes every event it is shown into [`feed`] (the subscriber's
/// filter decides which it is shown).
#[derive(Clone, Copy, Debug, Default)]
pub struct LogFeedLayer;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for LogFeedLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut text = LineText::default();
        event.record(&mut text);
        let metadata = event.metadata();
        feed().push(LogLine {
            ms: crate::clock::now_ms(),
            level: metadata.level().as_str(),
            target: metadata.target().to_owned(),
            message: text.finish(),
        });
    }
}

/// A line's text as its fields are visited: the message first, then `name=value`s.
#[derive(Default)]
struct LineText {
    message: String,
    fields: String,
}

impl LineText {
    fn finish(mut self) -> String {
        if !self.fields.is_empty() {
            if !self.message.is_empty() {
                self.message.push(' ');
            }
            self.message.push_str(self.fields.trim_start());
        }
        cut(self.message)
    }
}

impl Visit for LineText {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if self.message.len() + self.fields.len() > MAX_LINE_BYTES {
            return;
        }
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.record_debug(field, &value);
        }
    }
}

/// `text` cut to [`MAX_LINE_BYTES`] on a character boundary, marked with `…` when cut.
fn cut(mut text: String) -> String {
    if text.len() > MAX_LINE_BYTES {
        let mut end = MAX_LINE_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    #[test]
    fn events_reach_the_ring_and_live_readers_with_their_fields_and_long_ones_are_cut() {
        let mut live = feed().subscribe();
        let subscriber = tracing_subscriber::registry().with(LogFeedLayer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(peer = "12D3", jobs = 3, "a test line from logfeed");
            tracing::info!("{}", "x".repeat(3 * MAX_LINE_BYTES));
        });
        let first = live.try_recv().expect("the first line, live");
        assert_eq!(first.level, "WARN");
        assert_eq!(first.message, "a test line from logfeed peer=\"12D3\" jobs=3");
        let long = live.try_recv().expect("the long line, live");
        assert!(
            long.message.ends_with('…') && long.message.len() <= MAX_LINE_BYTES + 3,
            "{}",
            long.message.len()
        );
        assert!(feed().recent().contains(&first), "kept in the ring");
    }

    #[test]
    fn the_ring_keeps_only_the_latest_lines() {
        let feed = LogFeed { kept: Mutex::default(), live: broadcast::channel(4).0 };
        for n in 0..KEPT_LINES + 10 {
            feed.push(LogLine { ms: 0, level: "INFO", target: String::new(), message: n.to_string() });
        }
        let recent = feed.recent();
        assert_eq!(recent.len(), KEPT_LINES);
        assert_eq!(recent[0].message, "10");
    }
}
