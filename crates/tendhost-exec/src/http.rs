//! A GET of a plain `http://` URL as a host sees it, for health checks: [`HttpUrl`] (the parsed
//! address), [`HttpAnswer`] (status and the start of the body) and the HTTP/1.0 exchange over
//! any byte stream. Over SSH the stream is a connection forwarded through the host's master
//! (`ssh/mod.rs`), so the host needs no HTTP client; locally it is a plain TCP connection.

use std::fmt;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

/// The most of an answer read (status line, headers and body).
const MAX_ANSWER: u64 = 64 * 1024;
/// The most of the body kept in [`HttpAnswer::body`].
const MAX_BODY: usize = 2048;

/// `http://HOST[:PORT][/PATH]`, as the host sees it (`127.0.0.1` is the host itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// A name or an IP address (IPv6 without its brackets).
    pub host: String,
    pub port: u16,
    /// From `/`, with the query if any.
    pub path: String,
}

impl HttpUrl {
    /// Parses `text`; the reason alone on failure (only `http://` is supported: the request
    /// travels inside the SSH connection already, and a host-local TLS name rarely matches).
    pub fn parse(text: &str) -> Result<HttpUrl, String> {
        let rest = text.strip_prefix("http://").ok_or_else(|| {
            format!("{text:?} is not an http:// URL (write e.g. \"http://127.0.0.1:8080/health\")")
        })?;
        let (authority, path) = rest
            .find(['/', '?'])
            .map_or((rest, "/"), |at| rest.split_at(at));
        let path = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_owned()
        };
        if path.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return Err(format!(
                "{text:?}: the path has spaces or control characters"
            ));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{text:?}: an IPv6 address needs its closing ]"))?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() || authority.contains('@') {
            return Err(format!("{text:?}: needs a host (and no user info)"));
        }
        if !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'_'))
        {
            return Err(format!("{text:?}: {host:?} is not a host name or address"));
        }
        let port = match port {
            None => 80,
            Some(port) => port
                .parse::<u16>()
                .ok()
                .filter(|port| *port > 0)
                .ok_or_else(|| format!("{text:?}: the port must be 1-65535"))?,
        };
        Ok(HttpUrl {
            host: host.to_owned(),
            port,
            path,
        })
    }

    /// The `Host` header's value.
    fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}{}", self.authority(), self.path)
    }
}

/// What the server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAnswer {
    pub status: u16,
    /// The start of the body (lossy UTF-8, at most 2 KiB).
    pub body: String,
}

/// Sends `GET url` over `stream` (HTTP/1.0, `Connection: close`) and reads the answer.
pub(crate) async fn get<S>(mut stream: S, url: &HttpUrl) -> Result<HttpAnswer, String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let request = format!(
        "GET {} HTTP/1.0\r\nHost: {}\r\nUser-Agent: tendhost-health-check\r\nAccept: */*\r\n\
         Connection: close\r\n\r\n",
        url.path,
        url.authority()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|err| format!("sending the request failed: {err}"))?;
    let mut answer = Vec::new();
    (&mut stream)
        .take(MAX_ANSWER)
        .read_to_end(&mut answer)
        .await
        .map_err(|err| format!("reading the answer failed: {err}"))?;
    parse_answer(&answer)
}

/// The status and body start of a raw HTTP/1.x answer.
pub(crate) fn parse_answer(answer: &[u8]) -> Result<HttpAnswer, String> {
    if answer.is_empty() {
        return Err(
            "the connection closed without an answer (is anything listening there?)".to_owned(),
        );
    }
    let line_end = answer
        .windows(2)
        .position(|pair| pair == b"\r\n")
        .or_else(|| answer.iter().position(|b| *b == b'\n'))
        .unwrap_or(answer.len());
    let status_line = String::from_utf8_lossy(&answer[..line_end]);
    let mut words = status_line.split_whitespace();
    let status = match (words.next(), words.next()) {
        (Some(version), Some(code)) if version.starts_with("HTTP/") && code.len() == 3 => {
            code.parse::<u16>().ok()
        }
        _ => None,
    }
    .ok_or_else(|| {
        format!(
            "not an HTTP answer: {:?}",
            status_line.chars().take(80).collect::<String>()
        )
    })?;
    let body = answer
        .windows(4)
        .position(|four| four == b"\r\n\r\n")
        .map_or(&[][..], |at| &answer[at + 4..]);
    let body = String::from_utf8_lossy(&body[..body.len().min(MAX_BODY)]).into_owned();
    Ok(HttpAnswer { status, body })
}

#[cfg(test)]
mod tests {
    use crate::http::{HttpAnswer, HttpUrl, parse_answer};

    #[test]
    fn urls_as_the_host_sees_them() {
        let url = HttpUrl::parse("http://127.0.0.1:8080/health?full=1").unwrap();
        assert_eq!(
            (url.host.as_str(), url.port, url.path.as_str()),
            ("127.0.0.1", 8080, "/health?full=1")
        );
        assert_eq!(url.to_string(), "http://127.0.0.1:8080/health?full=1");
        let url = HttpUrl::parse("http://localhost").unwrap();
        assert_eq!((url.port, url.path.as_str()), (80, "/"));
        let url = HttpUrl::parse("http://[::1]:81/x").unwrap();
        assert_eq!((url.host.as_str(), url.port), ("::1", 81));
        assert_eq!(url.to_string(), "http://[::1]:81/x");
        for bad in [
            "https://127.0.0.1/",
            "127.0.0.1:80",
            "http://",
            "http://h:0/",
            "http://h:99999/",
            "http://u@h/",
            "http://h/a b",
            "http://h;rm/",
        ] {
            assert!(HttpUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn answers_give_their_status_and_body() {
        assert_eq!(
            parse_answer(b"HTTP/1.0 200 OK\r\nServer: busybox\r\n\r\nfine\n"),
            Ok(HttpAnswer {
                status: 200,
                body: "fine\n".to_owned()
            })
        );
        assert_eq!(parse_answer(b"HTTP/1.1 503 Busy\r\n").unwrap().status, 503);
        for bad in [
            &b""[..],
            b"SSH-2.0-OpenSSH\r\n",
            b"HTTP/1.1 2000 x\r\n",
            b"\xff\xfe",
        ] {
            assert!(parse_answer(bad).is_err(), "{bad:?}");
        }
    }
}
