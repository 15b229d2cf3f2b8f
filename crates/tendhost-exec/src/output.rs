//! What a command produces: [`Output`] (exit code, captured text, duration), the [`OutputSink`]
//! that receives lines while the command runs, and the line pump both executors share.
//!
//! Spawning processes and SSH channels lives in `local.rs` and `ssh/`.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _};

use crate::error::ExecError;

/// Which output stream a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// Receives output lines while a command runs (the API forwards them live).
///
/// Called from the task that reads the command's pipes, once per line, without the trailing
/// newline (a trailing `\r` is removed too), invalid UTF-8 replaced by U+FFFD. Implementations
/// must be quick and must not block (send into a channel, push into a buffer); a slow sink slows
/// the reading of output. A line longer than 64 KiB is delivered in 64 KiB pieces.
///
/// Closures `Fn(Stream, &str) + Send + Sync` are sinks; [`NoSink`] discards lines.
pub trait OutputSink: Send + Sync {
    /// One line of output.
    fn line(&self, stream: Stream, line: &str);

    /// Waits until the sink can take more lines: the pump awaits it before each read of the
    /// command's output, so a sink whose consumer is behind (a full store queue) slows the
    /// reading instead of piling lines up. Ready at once by default.
    fn ready(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(std::future::ready(()))
    }
}

/// A sink that discards every line (the output is still captured in [`Output`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoSink;

impl OutputSink for NoSink {
    fn line(&self, _stream: Stream, _line: &str) {}
}

impl<F> OutputSink for F
where
    F: Fn(Stream, &str) + Send + Sync,
{
    fn line(&self, stream: Stream, line: &str) {
        self(stream, line);
    }
}

/// The result of a command that ran to its end, whatever its exit code.
///
/// `run` returns `Ok(Output)` for any exit code (`dnf check-update` exits 100 when updates are
/// available); call [`Output::ensure_success`] where only 0 is acceptable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    /// The host (its tendhost name) the command ran on.
    pub host: String,
    /// The exact command line that ran (see [`crate::Executor::display`]).
    pub command: String,
    /// The exit code. Follows the shell's convention when the program could not be started:
    /// 127 = not found, 126 = not executable.
    pub exit_code: i32,
    /// Everything written to stdout (invalid UTF-8 replaced), at most [`MAX_CAPTURE`] bytes;
    /// the sink still saw every line.
    pub stdout: String,
    /// Everything written to stderr, same rules as `stdout`.
    pub stderr: String,
    /// Wall time from starting the command to its exit (connecting is not included).
    pub duration: Duration,
}

/// How many bytes of each stream [`Output`] keeps; later output is dropped from the capture (and
/// a note appended) but still streamed to the sink.
pub const MAX_CAPTURE: usize = 16 * 1024 * 1024;

/// How many lines of stderr [`ExecError::NonZeroExit`] carries.
const STDERR_TAIL_LINES: usize = 20;

/// Lines longer than this are cut into pieces before reaching the sink.
const MAX_LINE: usize = 64 * 1024;

impl Output {
    /// Whether the command exited with 0.
    pub fn success(&self) -> bool {
        self.exit_code == 0
    }

    /// `Ok(self)` when the exit code is 0, else [`ExecError::NonZeroExit`] with the code and the
    /// last lines of stderr.
    pub fn ensure_success(self) -> Result<Output, ExecError> {
        if self.success() {
            return Ok(self);
        }
        Err(ExecError::NonZeroExit {
            stderr_tail: self.stderr_tail(),
            host: self.host,
            command: self.command,
            code: self.exit_code,
        })
    }

    /// The last 20 lines of stderr (or of stdout when stderr is empty, as some tools report
    /// errors there).
    pub fn stderr_tail(&self) -> String {
        let text = if self.stderr.trim().is_empty() {
            &self.stdout
        } else {
            &self.stderr
        };
        tail_lines(text, STDERR_TAIL_LINES)
    }
}

pub(crate) fn tail_lines(text: &str, n_lines: usize) -> String {
    let trimmed = text.trim_end();
    let start = trimmed
        .rmatch_indices('\n')
        .nth(n_lines.saturating_sub(1))
        .map_or(0, |(idx, _)| idx + 1);
    trimmed[start..].to_owned()
}

/// Reads `reader` to its end, handing each line to `sink` and capturing the text.
pub(crate) async fn pump<R>(mut reader: R, stream: Stream, sink: &dyn OutputSink) -> Capture
where
    R: AsyncRead + Unpin,
{
    let mut capture = Capture::default();
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0_u8; 8192];
    loop {
        sink.ready().await;
        let n_read = match reader.read(&mut buf).await {
            Ok(0) => break,
            Ok(n_read) => n_read,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => {
                capture.read_error = Some(err);
                break;
            }
        };
        for &byte in &buf[..n_read] {
            pending.push(byte);
            if byte == b'\n' || pending.len() >= MAX_LINE {
                capture.emit(&pending, stream, sink);
                pending.clear();
            }
        }
    }
    if !pending.is_empty() {
        capture.emit(&pending, stream, sink);
    }
    capture
}

/// Text captured from one stream.
#[derive(Debug, Default)]
pub(crate) struct Capture {
    pub(crate) text: String,
    truncated: bool,
    /// A read error that ended the capture early (e.g. the connection dropped).
    pub(crate) read_error: Option<std::io::Error>,
}

impl Capture {
    pub(crate) fn from_text(text: String) -> Self {
        Self {
            text,
            ..Self::default()
        }
    }

    fn emit(&mut self, raw: &[u8], stream: Stream, sink: &dyn OutputSink) {
        let text = String::from_utf8_lossy(raw);
        let line = text.strip_suffix('\n').unwrap_or(&text);
        let line = line.strip_suffix('\r').unwrap_or(line);
        sink.line(stream, line);
        if self.truncated {
            return;
        }
        if self.text.len() + text.len() > MAX_CAPTURE {
            self.truncated = true;
            self.text
                .push_str("\n[tendhost: output truncated; the rest was only streamed]\n");
        } else {
            self.text.push_str(&text);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use crate::error::ExecError;
    use crate::output::{MAX_LINE, Output, Stream, pump, tail_lines};

    fn lines_of(input: &[u8]) -> (Vec<String>, String) {
        let seen = Mutex::new(Vec::new());
        let sink = |_stream: Stream, line: &str| seen.lock().unwrap().push(line.to_owned());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let capture = runtime.block_on(pump(input, Stream::Stdout, &sink));
        (seen.into_inner().unwrap(), capture.text)
    }

    #[test]
    fn splits_lines_and_keeps_text() {
        let (lines, text) = lines_of(b"a\nb\r\n\nlast");
        assert_eq!(lines, ["a", "b", "", "last"]);
        assert_eq!(text, "a\nb\r\n\nlast");
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        let (lines, _) = lines_of(b"caf\xff\n");
        assert_eq!(lines, ["caf\u{fffd}"]);
    }

    #[test]
    fn long_lines_are_cut() {
        let input = vec![b'x'; MAX_LINE + 10];
        let (lines, text) = lines_of(&input);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1].len(), 10);
        assert_eq!(text.len(), MAX_LINE + 10);
    }

    #[test]
    fn tail_keeps_last_lines() {
        assert_eq!(tail_lines("1\n2\n3\n", 2), "2\n3");
        assert_eq!(tail_lines("1\n2\n3", 5), "1\n2\n3");
        assert_eq!(tail_lines("", 5), "");
    }

    #[test]
    fn ensure_success_reports_code_and_stderr() {
        let output = Output {
            host: "web1".into(),
            command: "false".into(),
            exit_code: 3,
            stdout: String::new(),
            stderr: "E: broken\n".into(),
            duration: Duration::ZERO,
        };
        let err = output.clone().ensure_success().unwrap_err();
        assert!(matches!(err, ExecError::NonZeroExit { code: 3, .. }));
        assert_eq!(
            err.to_string(),
            "`false` exited with code 3 on web1: E: broken"
        );
        let ok = Output {
            exit_code: 0,
            ..output
        };
        assert!(ok.ensure_success().is_ok());
    }
}
