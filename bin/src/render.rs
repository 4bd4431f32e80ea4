//! Presentation: tables for people, JSON for scripts.

use chrono::{DateTime, Utc};
use comfy_table::{presets::UTF8_BORDERS_ONLY, Table};
use serde::Serialize;

/// A table with Bosun's look and these headers.
pub fn table(headers: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(UTF8_BORDERS_ONLY)
        .set_header(headers.iter().copied());
    table
}

/// Print a line on stdout, like `println!`, but end the process quietly (status 0) when the
/// reader went away (`bosun jobs | head`) instead of panicking on the broken pipe.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::render::write_line(format_args!($($arg)*))
    };
}

/// The function behind [`say!`].
pub fn write_line(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    if let Err(error) = writeln!(std::io::stdout().lock(), "{line}") {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
    }
}

/// Print `value` as pretty JSON on stdout.
///
/// # Errors
/// When serialization fails.
pub fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    crate::say!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Print `value` as one line of JSON (for streams of results, one object per line).
///
/// # Errors
/// When serialization fails.
pub fn print_json_line(value: &impl Serialize) -> anyhow::Result<()> {
    crate::say!("{}", serde_json::to_string(value)?);
    Ok(())
}

/// `at` relative to now: `in 5s`, `3m ago`.
pub fn relative(at: DateTime<Utc>) -> String {
    let delta = at.signed_duration_since(Utc::now());
    let secs = delta.num_seconds();
    let span = short_duration(secs.unsigned_abs());
    if secs > 0 {
        format!("in {span}")
    } else {
        format!("{span} ago")
    }
}

/// `90` → `1m30s`.
pub fn short_duration(secs: u64) -> String {
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m{:02}s", secs / 60, secs % 60),
        3600..=86_399 => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d{:02}h", secs / 86_400, secs % 86_400 / 3600),
    }
}

/// At most `max` characters of `text`, on one line.
pub fn clip(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() <= max {
        line.to_string()
    } else {
        format!(
            "{}…",
            line.chars().take(max.saturating_sub(1)).collect::<String>()
        )
    }
}
