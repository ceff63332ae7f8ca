//! The printer owns the terminal: results on stdout, the one-line error on stderr. Nothing
//! else in upkeep prints.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::Write;

use serde::Serialize;

use crate::cli::Format;

/// Prints an error as one line: the message and its causes, joined.
pub fn error(err: &anyhow::Error) {
    let line = format!("{err:#}").replace('\n', " ");
    eprintln!("upkeep: error: {line}");
}

/// `-q`: reports in text or Markdown are not printed (a JSON report, asked for, still is).
static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, std::sync::atomic::Ordering::Relaxed);
}

/// Writes bytes on stdout as they are (a completion script, a manual page). A reader that
/// went away (`| head`) is not an error, as in ripgrep: the rest is simply not written.
pub fn raw(bytes: &[u8]) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// Writes a report on stdout in the chosen format; `text` and `markdown` render the other two.
pub fn report<T: Serialize>(
    value: &T,
    format: Format,
    text: impl FnOnce(&T) -> String,
    markdown: impl FnOnce(&T) -> String,
) -> std::io::Result<()> {
    let quiet = QUIET.load(std::sync::atomic::Ordering::Relaxed);
    let out = match format {
        Format::Json => serde_json::to_string_pretty(value).map_err(std::io::Error::other)? + "\n",
        _ if quiet => return Ok(()),
        Format::Text => text(value),
        Format::Markdown => markdown(value),
    };
    raw(out.as_bytes())
}

/// Writes a report whose Markdown form is its text form in a code block.
pub fn report_fenced<T: Serialize>(
    value: &T,
    format: Format,
    text: fn(&T) -> String,
) -> std::io::Result<()> {
    report(value, format, text, |v| format!("```\n{}```\n", text(v)))
}

/// Lays out rows as columns; the first row is the header. Columns listed in `right` are
/// right-aligned (numbers).
pub fn columns(rows: &[Vec<String>], right: &[usize]) -> String {
    let n = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..n)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            let pad = widths[i].saturating_sub(cell.chars().count());
            if right.contains(&i) {
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            } else if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A Markdown table; the first row is the header.
pub fn markdown_table(rows: &[Vec<String>]) -> String {
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        out.push_str("| ");
        out.push_str(
            &row.iter()
                .map(|c| c.replace('|', "\\|"))
                .collect::<Vec<_>>()
                .join(" | "),
        );
        out.push_str(" |\n");
        if i == 0 {
            out.push('|');
            out.push_str(&" --- |".repeat(row.len()));
            out.push('\n');
        }
    }
    out
}

/// 1234567 → "1,234,567".
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
