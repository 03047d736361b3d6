//! The process's log subscriber: `LOG_FORMAT=text` for a person at a terminal, `json`
//! (one object a line: timestamp, level, target, message, the current span's fields and
//! every enclosing span's, the thread's name) for a log collector.

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines; coloured when standard error is a terminal.
    #[default]
    Text,
    /// One JSON object a line.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("{other:?} is not text or json")),
        }
    }
}

/// Installs the global subscriber, writing to standard error, filtered by `RUST_LOG`
/// (else `default_filter`).
pub fn init(format: LogFormat, default_filter: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder
            // Colours for a person at a terminal; plain text for log files and collectors.
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        // The thread names the SQLite writer's lines; the span list carries the request
        // id and the message sid onto every line written for them.
        LogFormat::Json => builder.json().with_current_span(true).with_span_list(true).with_thread_names(true).init(),
    }
}
