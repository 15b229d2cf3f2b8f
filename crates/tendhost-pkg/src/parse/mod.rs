//! Pure parsers of package-manager and system output. Each takes text (and an exit code where
//! the meaning depends on it) and returns domain values or a [`ParseError`] naming the line;
//! none runs anything. Unit tests use output captured on real hosts (`tests/data/`, see its
//! README for how each capture was made). Command builders live in `crate::command`.

pub mod apt;
pub mod dnf;
pub mod every;
pub mod installed;
pub mod job;
pub mod look;
pub mod osquery;
pub mod progress;
pub mod services;
pub mod system;

#[cfg(test)]
mod props;

use std::fmt;

/// Output that does not have the shape a parser expects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ParseError {
    /// What was being parsed, e.g. `apt-get -s output`.
    pub what: &'static str,
    /// 1-based line number in the parsed text; 0 when the problem is not on one line.
    pub line: usize,
    pub message: String,
}

impl ParseError {
    pub(crate) fn new(what: &'static str, line: usize, message: impl Into<String>) -> Self {
        Self {
            what,
            line,
            message: message.into(),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "cannot parse {}: {}", self.what, self.message)
        } else {
            write!(
                f,
                "cannot parse {} line {}: {}",
                self.what, self.line, self.message
            )
        }
    }
}

/// Splits output made of sections, each opened by a marker line `@@tendhost:NAME@@`, into
/// `(NAME, body)` pairs in order. Text before the first marker is ignored. Our scripts print
/// the markers, so several facts come back from one command without guessing at boundaries.
pub fn sections(text: &str) -> Vec<(&str, &str)> {
    sections_marked(text, "@@tendhost:")
}

/// [`sections`] with markers `PREFIXNAME@@`.
pub fn sections_marked<'a>(text: &'a str, prefix: &str) -> Vec<(&'a str, &'a str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    let mut current: Option<(&str, usize)> = None;
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\n', '\r']);
        if let Some(name) = bare
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix("@@"))
        {
            if let Some((prev, start)) = current.take() {
                out.push((prev, &text[start..pos]));
            }
            current = Some((name, pos + line.len()));
        }
        pos += line.len();
    }
    if let Some((prev, start)) = current {
        out.push((prev, &text[start..]));
    }
    out
}

/// The body of the first section called `name`, if any.
pub fn section<'a>(sections: &[(&str, &'a str)], name: &str) -> Option<&'a str> {
    sections
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, body)| *body)
}

/// Test helper: path of a capture under `tests/data/`.
#[cfg(test)]
pub(crate) fn capture(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Test helper: a capture whose last line is `exit=N` (appended when it was made), split into
/// the exit code and the output.
#[cfg(test)]
pub(crate) fn capture_with_exit(name: &str) -> (i32, String) {
    let text = capture(name);
    let (output, last) = text
        .trim_end()
        .rsplit_once("exit=")
        .expect("capture ends with exit=N");
    (last.trim().parse().expect("exit code"), output.to_owned())
}

#[cfg(test)]
mod tests {
    use crate::parse::sections;

    #[test]
    fn splits_marked_sections() {
        let text = "noise\n@@tendhost:a@@\none\ntwo\n@@tendhost:b@@\n@@tendhost:c@@\nthree";
        assert_eq!(
            sections(text),
            [("a", "one\ntwo\n"), ("b", ""), ("c", "three")]
        );
        assert!(sections("no markers\n").is_empty());
        assert_eq!(sections("@@tendhost:x@@\r\nv\r\n"), [("x", "v\r\n")]);
    }
}
