//! Presentation: tables for people, JSON for scripts.
//!
//! Names, keys, tags, targets and handler errors are whatever a client stored, so a text view
//! must never hand them to the terminal raw: an escape sequence in a job's kind could recolour,
//! rewrite or hide the lines around it. Every value shown in a text view goes through
//! [`printable`]: [`Table`] applies it to each cell, key/value views call it on each value.
//! `--json` needs none of this (serde escapes control characters in JSON strings).

use std::{borrow::Cow, fmt};

use chrono::{DateTime, Utc};
use comfy_table::presets::UTF8_BORDERS_ONLY;
use serde::Serialize;

/// `text` with every character that a terminal would act on instead of showing shown as a
/// visible escape: control characters (`\n`, `\r`, `\t`, `\x1b`, C1 codes such as `\u{9b}`)
/// and the invisible marks that reorder or hide text (bidirectional overrides, zero-width
/// characters). Everything else, backslashes included, is left as it is.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) && u32::from(c) < 0x80 => {
                out.push_str(&format!("\\x{:02x}", u32::from(c)));
            }
            c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}'
        )
}

/// An error and its causes on one line, `outer: inner: root`, each cause once: a cause whose
/// text its wrapper already shows (sqlx's "error returned from database: {cause}" is also
/// the source of that cause) is not repeated. [`printable`], since messages echo what a
/// client stored.
pub fn error_report(error: &anyhow::Error) -> String {
    let mut report = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if report.contains(&text) {
            continue;
        }
        if !report.is_empty() {
            report.push_str(": ");
        }
        report.push_str(&text);
    }
    printable(&report).into_owned()
}

/// A table with Bosun's look whose cells are always [`printable`].
pub struct Table(comfy_table::Table);

impl Table {
    /// Add a row; each cell is escaped as [`printable`] says.
    pub fn add_row(&mut self, cells: Vec<String>) -> &mut Self {
        self.0
            .add_row(cells.iter().map(|cell| printable(cell).into_owned()));
        self
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A table with Bosun's look and these headers.
pub fn table(headers: &[&str]) -> Table {
    let mut table = comfy_table::Table::new();
    table
        .load_preset(UTF8_BORDERS_ONLY)
        .set_header(headers.iter().copied());
    Table(table)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_escapes_what_a_terminal_acts_on_and_keeps_the_rest() {
        assert_eq!(
            printable("pantry-1 ünïcode \\ ok"),
            "pantry-1 ünïcode \\ ok"
        );
        assert!(matches!(printable("plain"), Cow::Borrowed(_)));
        assert_eq!(
            printable("a\x1b[31mb\r\nc\td\x07\x7f"),
            "a\\x1b[31mb\\r\\nc\\td\\x07\\x7f"
        );
        // C1 controls (CSI) and marks that reorder or hide text.
        assert_eq!(
            printable("x\u{9b}31m\u{202e}y\u{200b}"),
            "x\\u{9b}31m\\u{202e}y\\u{200b}"
        );
    }

    #[test]
    fn a_table_escapes_every_cell() {
        let mut out = table(&["name"]);
        out.add_row(vec!["evil\x1b[2J\r\nline".to_string()]);
        let shown = out.to_string();
        assert!(
            !shown.contains('\x1b') && !shown.contains('\r'),
            "{shown:?}"
        );
        assert!(shown.contains("evil\\x1b[2J\\r\\nline"), "{shown}");
    }

    #[derive(Debug)]
    struct Wrapper(std::io::Error);

    impl fmt::Display for Wrapper {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "talking to the database: {}", self.0)
        }
    }

    impl std::error::Error for Wrapper {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn an_error_report_gives_each_cause_once() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let error = anyhow::Error::new(Wrapper(refused)).context("connecting");
        assert_eq!(
            error_report(&error),
            "connecting: talking to the database: refused"
        );
        let plain = anyhow::anyhow!("no job\x1b[31m").context("bosun job");
        assert_eq!(error_report(&plain), "bosun job: no job\\x1b[31m");
    }
}
