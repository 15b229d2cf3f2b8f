//! The one shell-quoting function: turns any argument into a single POSIX `sh` word.
//!
//! Everything tendhost sends through a remote shell (program, arguments, `K=V` environment
//! assignments) goes through [`quote`]. Building argument vectors lives in `cmd.rs`; this file
//! only knows how to make one word safe.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt as _;

/// Quotes `arg` so that a POSIX shell reads it back as exactly one word with exactly these bytes.
///
/// - Words made only of `[A-Za-z0-9_@%+=:,./-]` (and not empty) are returned as they are, so
///   displayed command lines stay readable (`apt-get -y upgrade`).
/// - Everything else is wrapped in single quotes; a `'` inside becomes `'\''`. Inside single
///   quotes the shell interprets nothing: `$()`, backticks, `\`, `!`, `*`, newlines are literal.
/// - Bytes that are not valid UTF-8 are written as `"$(printf '\NNN')"` (octal), which any POSIX
///   shell expands back to that one byte, so the returned line is plain UTF-8 text.
/// - The empty string becomes `''`.
///
/// A NUL byte cannot be part of any Unix argument; [`crate::Cmd`] rejects such commands before
/// they are quoted (here it would be written as `printf '\000'`, which a shell drops).
pub fn quote(arg: impl AsRef<OsStr>) -> String {
    let bytes = arg.as_ref().as_bytes();
    if !bytes.is_empty() && bytes.iter().all(|&byte| is_bare(byte)) {
        // All bytes are ASCII, so this is valid UTF-8.
        return String::from_utf8_lossy(bytes).into_owned();
    }
    let mut quoted = String::with_capacity(bytes.len() + 2);
    let mut in_quotes = false;
    for chunk in bytes.utf8_chunks() {
        for ch in chunk.valid().chars() {
            if ch == '\'' {
                if in_quotes {
                    quoted.push('\'');
                    in_quotes = false;
                }
                quoted.push_str("\\'");
            } else {
                if !in_quotes {
                    quoted.push('\'');
                    in_quotes = true;
                }
                quoted.push(ch);
            }
        }
        for &byte in chunk.invalid() {
            if in_quotes {
                quoted.push('\'');
                in_quotes = false;
            }
            // Writing to a String cannot fail.
            let _ = write!(quoted, "\"$(printf '\\{byte:03o}')\"");
        }
    }
    if in_quotes {
        quoted.push('\'');
    }
    if quoted.is_empty() {
        quoted.push_str("''");
    }
    quoted
}

/// Joins already-split words into one shell line, quoting each.
pub fn quote_line<I, A>(words: I) -> String
where
    I: IntoIterator<Item = A>,
    A: AsRef<OsStr>,
{
    let mut line = String::new();
    for word in words {
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&quote(word));
    }
    line
}

fn is_bare(byte: u8) -> bool {
    byte.is_ascii_alphanumeric()
        || matches!(
            byte,
            b'_' | b'@' | b'%' | b'+' | b'=' | b':' | b',' | b'.' | b'/' | b'-'
        )
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt as _;
    use std::process::Command;

    use crate::quote::{quote, quote_line};

    fn check(input: &[u8], expected: &str) {
        assert_eq!(
            quote(OsStr::from_bytes(input)),
            expected,
            "quoting {input:?}"
        );
        round_trip(input);
    }

    /// Asks a real `sh` to print the word back (as one argument) and compares bytes.
    fn round_trip(input: &[u8]) {
        let word = quote(OsStr::from_bytes(input));
        let script = format!("for a in {word}; do printf '%s|' \"$a\"; done");
        let output = Command::new("sh").arg("-c").arg(&script).output().unwrap();
        assert!(output.status.success(), "sh failed on {script:?}");
        let mut expected = input.to_vec();
        expected.push(b'|');
        assert_eq!(output.stdout, expected, "sh read {word:?} back differently");
    }

    #[test]
    fn bare_words_stay_bare() {
        check(b"apt-get", "apt-get");
        check(
            b"DEBIAN_FRONTEND=noninteractive",
            "DEBIAN_FRONTEND=noninteractive",
        );
        check(b"/usr/bin/dnf", "/usr/bin/dnf");
        check(b"pkg-1.2+deb12u1:amd64", "pkg-1.2+deb12u1:amd64");
        check(b"user@host,x%y", "user@host,x%y");
    }

    #[test]
    fn empty_string_is_an_empty_word() {
        check(b"", "''");
    }

    #[test]
    fn spaces_and_globs() {
        check(b"two words", "'two words'");
        check(b"*", "'*'");
        check(b"a?[b]", "'a?[b]'");
        check(b"~root", "'~root'");
        check(b"tab\there", "'tab\there'");
    }

    #[test]
    fn single_quotes() {
        check(b"it's", "'it'\\''s'");
        check(b"'", "\\'");
        check(b"''", "\\'\\'");
        check(b"'a'", "\\''a'\\'");
    }

    #[test]
    fn substitutions_stay_literal() {
        check(b"$(reboot)", "'$(reboot)'");
        check(b"`reboot`", "'`reboot`'");
        check(b"${HOME}$PATH", "'${HOME}$PATH'");
        check(b"a;reboot", "'a;reboot'");
        check(
            b"a && reboot || x | y > z < w &",
            "'a && reboot || x | y > z < w &'",
        );
        check(b"back\\slash", "'back\\slash'");
        check(b"\"double\"", "'\"double\"'");
        check(b"!event", "'!event'");
    }

    #[test]
    fn newlines() {
        check(b"line1\nline2", "'line1\nline2'");
        check(b"\n", "'\n'");
        check(b"trailing\n\n", "'trailing\n\n'");
    }

    #[test]
    fn non_utf8_bytes() {
        check(b"\xff", "\"$(printf '\\377')\"");
        check(b"a\xffb", "'a'\"$(printf '\\377')\"'b'");
        check(b"\xc3\x28 x", "\"$(printf '\\303')\"'( x'");
        check(b"caf\xc3\xa9", "'caf\u{e9}'");
        check(
            b"\x80'\x81",
            "\"$(printf '\\200')\"\\'\"$(printf '\\201')\"",
        );
    }

    #[test]
    fn lines_join_quoted_words() {
        assert_eq!(
            quote_line(["sudo", "-n", "env", "A=b c", "echo", "$(x)"]),
            "sudo -n env 'A=b c' echo '$(x)'"
        );
        assert_eq!(quote_line(Vec::<&str>::new()), "");
    }
}
