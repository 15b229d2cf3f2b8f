//! Printing for people and scripts: `--json` prints the API's JSON as the daemon sent it
//! (serialised from the same wire types); otherwise aligned tables and `key: value` blocks,
//! with colour only when stdout is a terminal and `NO_COLOR` is unset.

use std::io::IsTerminal;

use serde::Serialize;

use crate::Failure;

/// Whether to colour the output.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Style {
    pub color: bool,
}

impl Style {
    /// Colour on a terminal, unless `NO_COLOR` is set to anything non-empty.
    pub fn detect() -> Style {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty());
        Style {
            color: !no_color && std::io::stdout().is_terminal(),
        }
    }

    /// `text` in the colour its meaning suggests (a state name, an outcome).
    pub fn state(self, text: &str) -> String {
        if !self.color {
            return text.to_owned();
        }
        let code = match text {
            "failed" | "unreachable" | "stopped" | "lost" => "31",
            "pending_updates" | "waiting_reboot" | "busy" | "interrupted" | "cancelled"
            | "skipped" | "required" => "33",
            "idle" | "succeeded" | "completed" | "finished" | "not_required" => "32",
            "running" | "querying" | "updating" | "rebooting" | "verifying" | "queued" => "36",
            _ => return text.to_owned(),
        };
        format!("\x1b[{code}m{text}\x1b[0m")
    }

    /// `text` in bold (table headers).
    pub fn bold(self, text: &str) -> String {
        if self.color {
            format!("\x1b[1m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
}

/// A wire value's JSON name (`HostState::PendingUpdates` -> `pending_updates`).
pub(crate) fn name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(text)) => text,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// Prints `value` as pretty JSON on stdout.
pub(crate) fn json<T: Serialize>(value: &T) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|err| Failure::failed(format!("cannot print the answer as JSON: {err}")))?;
    crate::outln!("{text}");
    Ok(())
}

/// A table: a header row and rows of cells, which may hold colour codes (widths count what
/// shows). The last column is not padded.
pub(crate) struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&'static str]) -> Table {
        Table {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn print(&self, style: Style) {
        let n_columns = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.len()).collect();
        for row in &self.rows {
            for (column, cell) in row.iter().enumerate().take(n_columns) {
                widths[column] = widths[column].max(visible_width(cell));
            }
        }
        let line = |cells: Vec<String>| {
            let mut text = String::new();
            for (column, cell) in cells.iter().enumerate() {
                text.push_str(cell);
                if column + 1 < cells.len() {
                    let pad = widths[column].saturating_sub(visible_width(cell)) + 2;
                    text.push_str(&" ".repeat(pad));
                }
            }
            crate::outln!("{}", text.trim_end());
        };
        line(self.headers.iter().map(|h| style.bold(h)).collect());
        for row in &self.rows {
            line(row.clone());
        }
    }
}

/// Characters that show, without ANSI colour sequences.
fn visible_width(text: &str) -> usize {
    let mut width = 0;
    let mut in_escape = false;
    for ch in text.chars() {
        match (in_escape, ch) {
            (false, '\x1b') => in_escape = true,
            (true, 'm') => in_escape = false,
            (true, _) => {}
            (false, _) => width += 1,
        }
    }
    width
}

/// An optional value for a cell (`-` when absent).
pub(crate) fn or_dash(value: Option<&str>) -> String {
    value.map_or_else(|| "-".to_owned(), str::to_owned)
}

/// An RFC 3339 time shortened for a table (`2026-05-02 03:14:07`).
pub(crate) fn short_time(time: &str) -> String {
    let trimmed: String = time.chars().take(19).collect();
    trimmed.replace('T', " ")
}
