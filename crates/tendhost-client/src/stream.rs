//! The event stream (`GET /ws/events`) as a client sees it: one WebSocket over TCP or TLS
//! (the client's own rustls configuration), the bearer token in the handshake, and each text
//! message handed out as it came together with its typed form. When the connection drops (a
//! daemon restart, a network cut, silence longer than `idle_timeout`) the stream reconnects
//! with `?since=<last seq seen>`, so nothing is missed or repeated, and gives up after
//! `reconnect_for` with the URL and cause.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use rustls_pki_types::ServerName;
use tendhost_api::events::StreamMessage;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::{Client, Error};

/// What to ask the stream for, and how hard to hold on to it.
#[derive(Debug, Clone)]
pub struct StreamOptions {
    /// Replay events after this seq first (`?since=`); without it, live events only.
    pub since: Option<u64>,
    /// Only events about these hosts (`?host=`).
    pub hosts: Vec<String>,
    /// Only these event types (`?types=`).
    pub types: Vec<String>,
    /// Keep trying to reconnect this long after the connection drops (zero: never).
    pub reconnect_for: Duration,
    /// No frame at all (the daemon pings every `ws_ping_interval`) for this long counts as a
    /// dropped connection.
    pub idle_timeout: Duration,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            since: None,
            hosts: Vec::new(),
            types: Vec::new(),
            reconnect_for: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(90),
        }
    }
}

/// One message of the stream: its text as the daemon sent it, and its typed form (`None` for
/// a message type this client does not know, from a newer daemon).
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub text: String,
    pub message: Option<StreamMessage>,
}

/// A live event stream; `next` yields messages until an error that reconnecting cannot fix.
pub struct EventStream {
    client: Client,
    options: StreamOptions,
    /// The seq of the last event handed out.
    last_seq: Option<u64>,
    socket: Option<WebSocketStream<Io>>,
}

impl Client {
    /// Opens the event stream. When this returns the daemon has subscribed the stream, so
    /// every event after this moment arrives (start a job after it to see all of the job).
    pub async fn events(&self, options: StreamOptions) -> Result<EventStream, Error> {
        let mut stream = EventStream {
            client: self.clone(),
            last_seq: options.since,
            options,
            socket: None,
        };
        stream.socket = Some(stream.connect().await?);
        Ok(stream)
    }
}

impl EventStream {
    /// The seq of the last event handed out (or the `since` asked for).
    pub fn last_seq(&self) -> Option<u64> {
        self.last_seq
    }

    /// The next message, reconnecting as needed.
    pub async fn next(&mut self) -> Result<Received, Error> {
        loop {
            let cause = match self.read().await {
                Ok(received) => return Ok(received),
                Err(cause) => cause,
            };
            self.socket = None;
            self.reconnect(&cause).await?;
        }
    }

    /// The next text message of the current socket, or why the socket is done.
    async fn read(&mut self) -> Result<Received, String> {
        let Some(socket) = self.socket.as_mut() else {
            return Err("not connected".to_owned());
        };
        loop {
            let frame = tokio::time::timeout(self.options.idle_timeout, socket.next())
                .await
                .map_err(|_| {
                    format!(
                        "nothing received for {}s (not even a ping)",
                        self.options.idle_timeout.as_secs()
                    )
                })?;
            match frame {
                None => return Err("the connection ended".to_owned()),
                Some(Err(err)) => return Err(err.to_string()),
                Some(Ok(Message::Text(text))) => {
                    let text = text.as_str().to_owned();
                    let message = serde_json::from_str::<StreamMessage>(&text).ok();
                    let seq = match &message {
                        Some(StreamMessage::Event(event)) => Some(event.seq),
                        // A type this client does not know still moves `since` on.
                        None => serde_json::from_str::<serde_json::Value>(&text)
                            .ok()
                            .and_then(|value| value.get("seq").and_then(serde_json::Value::as_u64)),
                        Some(StreamMessage::Control(_)) => None,
                    };
                    if seq.is_some() {
                        self.last_seq = seq;
                    }
                    return Ok(Received { text, message });
                }
                Some(Ok(Message::Close(frame))) => {
                    return Err(match frame {
                        Some(frame) => format!(
                            "the daemon closed the stream ({} {})",
                            u16::from(frame.code),
                            frame.reason
                        ),
                        None => "the daemon closed the stream".to_owned(),
                    });
                }
                // Pings are answered by tungstenite; nothing else is sent by the daemon.
                Some(Ok(_)) => {}
            }
        }
    }

    /// Connects again with `?since=` until it works or `reconnect_for` has passed.
    async fn reconnect(&mut self, cause: &str) -> Result<(), Error> {
        let url = self.url();
        if self.options.reconnect_for.is_zero() {
            return Err(Error::Connect {
                url,
                cause: cause.to_owned(),
            });
        }
        let deadline = Instant::now() + self.options.reconnect_for;
        let mut pause = Duration::from_millis(200);
        loop {
            match self.connect().await {
                Ok(socket) => {
                    self.socket = Some(socket);
                    return Ok(());
                }
                // The daemon answered and refused: retrying will not help.
                Err(err @ Error::Api { .. }) => return Err(err),
                Err(err) if Instant::now() + pause >= deadline => {
                    return Err(Error::Connect {
                        url,
                        cause: format!(
                            "{cause}; reconnecting for {}s failed: {err}",
                            self.options.reconnect_for.as_secs()
                        ),
                    });
                }
                Err(_) => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// The stream's URL with its query (`since` from the last event seen).
    fn url(&self) -> String {
        let base = self.client.base_url();
        let ws_base = match base.strip_prefix("https://") {
            Some(rest) => format!("wss://{rest}"),
            None => format!("ws://{}", base.trim_start_matches("http://")),
        };
        let mut encoder = form_urlencoded::Serializer::new(String::new());
        if let Some(since) = self.last_seq {
            encoder.append_pair("since", &since.to_string());
        }
        if !self.options.hosts.is_empty() {
            encoder.append_pair("host", &self.options.hosts.join(","));
        }
        if !self.options.types.is_empty() {
            encoder.append_pair("types", &self.options.types.join(","));
        }
        let query = encoder.finish();
        if query.is_empty() {
            format!("{ws_base}/ws/events")
        } else {
            format!("{ws_base}/ws/events?{query}")
        }
    }

    /// One connection: TCP, TLS for `wss`, the WebSocket handshake with the token.
    async fn connect(&self) -> Result<WebSocketStream<Io>, Error> {
        let url = self.url();
        let timeout = self.client.connect_timeout;
        match tokio::time::timeout(timeout, self.handshake(&url)).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout { url, timeout }),
        }
    }

    async fn handshake(&self, url: &str) -> Result<WebSocketStream<Io>, Error> {
        let connect_error = |cause: String| Error::Connect {
            url: url.to_owned(),
            cause,
        };
        let parsed = reqwest::Url::parse(url).map_err(|err| connect_error(err.to_string()))?;
        let host = parsed
            .host_str()
            .ok_or_else(|| connect_error("no host in the URL".to_owned()))?
            .to_owned();
        let port = parsed
            .port_or_known_default()
            .ok_or_else(|| connect_error("no port in the URL".to_owned()))?;
        let tcp_host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let tcp = TcpStream::connect((tcp_host.as_str(), port))
            .await
            .map_err(|err| connect_error(err.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let io = if parsed.scheme() == "wss" {
            let name = ServerName::try_from(tcp_host.clone())
                .map_err(|err| connect_error(format!("bad server name {tcp_host:?}: {err}")))?;
            let tls = TlsConnector::from(Arc::clone(&self.client.tls))
                .connect(name, tcp)
                .await
                .map_err(|err| connect_error(format!("TLS: {}", crate::error::causes(&err))))?;
            Io::Tls(Box::new(tls))
        } else {
            Io::Plain(tcp)
        };
        let mut request = url
            .into_client_request()
            .map_err(|err| connect_error(err.to_string()))?;
        if let Some(token) = &self.client.token {
            let value = format!("Bearer {}", token.0)
                .parse()
                .map_err(|_| Error::Setting("the token is not a valid header value".to_owned()))?;
            request.headers_mut().insert("authorization", value);
        }
        match tokio_tungstenite::client_async(request, io).await {
            Ok((socket, _)) => Ok(socket),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                let status = response.status();
                let text = response
                    .body()
                    .as_ref()
                    .map(|body| String::from_utf8_lossy(body).into_owned())
                    .unwrap_or_default();
                Err(crate::api_error(status, url, &text))
            }
            Err(err) => Err(connect_error(err.to_string())),
        }
    }
}

/// A TCP connection, or TLS over one.
enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Io::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Io::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Io::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Io::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}
