//! Structured logging: tracing with a human or JSON format, written to standard error, every
//! line scrubbed of telephone numbers unless the configuration turns masking off.

use std::io::{self, IsTerminal, Write};

use serde::{Deserialize, Serialize};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::mask::mask_numbers_in;

/// `[log]`: logging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `human` (default) or `json`.
    pub format: LogFormat,
    /// A tracing filter such as `info` or `hotline=debug,sqlx=warn`; `RUST_LOG` wins if set.
    pub level: String,
    /// Mask telephone numbers in every log line (`138****5678`). On by default.
    pub mask_numbers: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Human,
            level: "info".into(),
            mask_numbers: true,
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One readable line per event.
    Human,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Installs the global subscriber. `RUST_LOG`, when set, overrides `log.level`.
pub fn init(cfg: &LogConfig) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .or_else(|| EnvFilter::try_new(&cfg.level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let writer = LogWriter {
        mask: cfg.mask_numbers,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(io::stderr().is_terminal());
    // A second init (tests) keeps the first subscriber.
    let _ = match cfg.format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Makes one [`MaskingStderr`] per log event.
#[derive(Clone, Copy)]
struct LogWriter {
    mask: bool,
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = MaskingStderr;
    fn make_writer(&'a self) -> Self::Writer {
        MaskingStderr { mask: self.mask }
    }
}

/// Standard error, with telephone numbers masked. tracing's formatter hands over each event as
/// one complete buffer, so a number is never split across two writes.
struct MaskingStderr {
    mask: bool,
}

impl Write for MaskingStderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut err = io::stderr().lock();
        if self.mask {
            let mut line = String::from_utf8_lossy(buf).into_owned();
            mask_numbers_in(&mut line);
            err.write_all(line.as_bytes())?;
        } else {
            err.write_all(buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}
