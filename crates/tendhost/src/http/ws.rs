//! `GET /ws/events`: the live event stream over a WebSocket, one JSON text message per event.
//!
//! The handler subscribes to the bus and copies its replay buffer under one lock
//! (`EventBus::subscribe_since`) before answering 101. The session then sends `replay_gap` first
//! when `?since=` is older than the buffer, then the buffered events after `since`, then live
//! events, skipping any live event at or below the last seq handled (no gap, no duplicate at the
//! seam). `?host=` and `?types=` filter both. A `since` older than the buffer is served from
//! the state database first, after the 101, one page at a time (`persist::Records::events_page`,
//! which hands back domain events, sent through the same mapping as live ones), so a session
//! holds at most a page of stored events. At most `max_ws_clients` sessions run at once; one
//! more is refused with 503 `too_many_clients` before the upgrade.
//! A client that falls behind the bus gets `lagged {missed}` and continues; one that stops
//! reading long enough to block a send for two ping intervals, or that leaves a ping unanswered
//! until the next, is dropped. On daemon shutdown every session sends a close frame (1001) and
//! ends within `CLOSE_TIMEOUT`: axum's graceful shutdown waits for upgraded connections too, so a
//! session that ignored the stop signal would hold the daemon until its drain timeout.
//!
//! Domain -> wire mapping is in `http::events_map`; the wire types are in `tendhost_api::events`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use tendhost_api::events::ControlMessage;
use tendhost_core::events::{EVENT_TYPES, Event, EventKind, Replay};
use tendhost_core::spec::is_valid_host_name;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, watch};

use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::events_map::event_message;
use crate::persist::Records;

/// How long a closing session may take to send its close frame and read the client's reply.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Largest message a client may send (clients have nothing to say; this bounds memory).
const MAX_CLIENT_MESSAGE: usize = 64 * 1024;

/// The read buffer of a session (tungstenite allocates it whole, 128 KiB by default, for every
/// session): clients send only pongs and a close frame, so a small one is enough; a longer
/// frame (up to `MAX_CLIENT_MESSAGE`) is still read, in more steps. With a write buffer of 0
/// each message is written at once (every send is flushed anyway), so nothing is held
/// between events either.
const READ_BUFFER: usize = 4 * 1024;

/// WebSocket settings from `[daemon]`.
#[derive(Debug, Clone)]
pub struct WsSettings {
    /// Every session is pinged this often; no pong by the next ping closes it.
    pub ping_interval: Duration,
    /// One permit per open session (`max_ws_clients`).
    pub clients: Arc<Semaphore>,
}

/// The validated query: where to start and what to send.
#[derive(Debug, PartialEq)]
struct StreamQuery {
    since: Option<u64>,
    filter: Filter,
}

/// `?host=` (any of) and `?types=` (any of); empty means everything.
#[derive(Debug, Default, PartialEq)]
struct Filter {
    hosts: Vec<String>,
    types: Vec<&'static str>,
}

impl Filter {
    fn matches(&self, kind: &EventKind) -> bool {
        let host_ok = self.hosts.is_empty()
            || kind
                .host()
                .is_some_and(|host| self.hosts.iter().any(|wanted| wanted == host));
        let type_ok = self.types.is_empty() || self.types.contains(&kind.type_name());
        host_ok && type_ok
    }
}

/// Most stored events one reconnecting client is replayed from disk.
const MAX_DISK_REPLAY: usize = 200_000;

/// The part of a replay older than the in-memory buffer, read from the state database page by
/// page while it is sent.
struct DiskReplay {
    records: Records,
    since: u64,
    /// The oldest seq of the memory buffer: the disk replay stops below it.
    before: u64,
}

/// Where a replay from the state database starts: `(replay, gap)` where `gap` is the oldest
/// seq still available when even the database no longer has `since + 1` (retention pruned
/// it). Reads one number; the events themselves are read while they are sent.
async fn disk_replay(
    records: &Records,
    since: u64,
    memory_oldest: u64,
) -> (DiskReplay, Option<u64>) {
    let stored_oldest = records.oldest_event_seq().await.ok().flatten();
    let gap = match stored_oldest {
        Some(oldest) if oldest <= since.saturating_add(1) => None,
        Some(oldest) => Some(oldest.min(memory_oldest)),
        None => Some(memory_oldest),
    };
    let replay = DiskReplay {
        records: records.clone(),
        since,
        before: memory_oldest,
    };
    (replay, gap)
}

fn parse_query(pairs: &[(String, String)]) -> Result<StreamQuery, ApiError> {
    let mut since = None;
    let mut filter = Filter::default();
    for (key, value) in pairs {
        match key.as_str() {
            "since" => {
                if since.is_some() {
                    return Err(ApiError::invalid_value("since", "given more than once"));
                }
                let seq = value.parse::<u64>().map_err(|_| {
                    ApiError::invalid_value(
                        "since",
                        format!("must be an event seq (a non-negative integer), not {value:?}"),
                    )
                })?;
                since = Some(seq);
            }
            "host" => {
                for name in value.split(',') {
                    if !is_valid_host_name(name) {
                        return Err(ApiError::invalid_value(
                            "host",
                            format!(
                                "{name:?} is not a host name ([A-Za-z0-9._-], 1 to 64 characters)"
                            ),
                        ));
                    }
                    filter.hosts.push(name.to_owned());
                }
            }
            "types" => {
                for name in value.split(',') {
                    let Some(type_name) = EVENT_TYPES.iter().find(|known| **known == name) else {
                        return Err(ApiError::invalid_value(
                            "types",
                            format!(
                                "unknown event type {name:?}; known types: {}",
                                EVENT_TYPES.join(", ")
                            ),
                        ));
                    };
                    filter.types.push(type_name);
                }
            }
            // Redeemed by `http::auth` before the handler runs.
            "ticket" => {}
            other => {
                return Err(ApiError::invalid_value(
                    other,
                    "unknown query parameter (known: since, host, types, ticket)",
                ));
            }
        }
    }
    Ok(StreamQuery { since, filter })
}

/// Live event stream.
#[utoipa::path(
    get,
    path = "/ws/events",
    tag = "events",
    summary = "Live event stream (WebSocket)",
    description = "A WebSocket (connect with `ws://HOST/ws/events`). The server sends one JSON text \
message per event, `{seq, time, type, ...fields}` (`EventMessage`), with `seq` increasing by exactly \
1 per event across the daemon, and control messages without `seq` (`ControlMessage`). \
With `?since=SEQ` the buffered events after SEQ are replayed first, then the stream goes live \
with no gap and no duplicate; if SEQ is older than the replay buffer the first message is \
`{type: \"replay_gap\", oldest_seq}`. A client that falls behind gets `{type: \"lagged\", missed}` \
and the stream continues with newer events (reconnect with `?since=` to fetch the missed ones). \
The server pings every `ws_ping_interval` (20 s) and closes a client that has not answered by the \
next ping; on daemon shutdown every socket gets a close frame (1001).",
    params(
        ("since" = Option<u64>, Query, description = "Replay buffered events with a seq greater than this first (0: everything buffered). Without it the stream is live only.", example = 1200),
        ("host" = Option<String>, Query, description = "Only events about this host (comma list or repeated: any of them). Rollout and batch events name no single host and are left out.", example = "web-1"),
        ("ticket" = Option<String>, Query, description = "A single-use ticket from `POST /ws/ticket`, for browsers, which cannot send an `Authorization` header on a WebSocket. Other clients send the header.", example = "tht_3q2-7wY"),
        ("types" = Option<String>, Query, description = "Only these event types (comma list or repeated): host_state_changed, job_started, job_output, update_progress, job_finished, host_connected, host_disconnected, rollout_started, batch_started, batch_finished, rollout_finished, host_added, host_removed. Control messages are always sent.", example = "host_state_changed,job_finished"),
    ),
    responses(
        (status = 101, description = "Switching Protocols: the connection is now a WebSocket carrying `StreamMessage` JSON text messages", body = tendhost_api::events::StreamMessage, content_type = "application/json"),
        (status = 422, description = "A query parameter is invalid (the message and `details.field` name it)", body = tendhost_api::ErrorResponse),
        (status = 426, description = "The request is not a WebSocket handshake", body = tendhost_api::ErrorResponse),
        (status = 503, description = "The daemon is shutting down (`shutting_down`), or `max_ws_clients` streams are open (`too_many_clients`)", body = tendhost_api::ErrorResponse,
            example = json!({"error": {"code": "too_many_clients", "message": "1000 event streams are open, the most this daemon serves (daemon.max_ws_clients); try again later"}})),
    )
)]
pub async fn events(
    State(state): State<AppState>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let Query(pairs) = query.map_err(|rejection| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_query",
            format!("cannot read the query string: {}", rejection.body_text()),
        )
    })?;
    let stream_query = parse_query(&pairs)?;
    let upgrade = upgrade.map_err(|rejection| {
        ApiError::new(
            StatusCode::UPGRADE_REQUIRED,
            "upgrade_required",
            format!(
                "/ws/events is a WebSocket endpoint; connect with a WebSocket client ({})",
                rejection.body_text()
            ),
        )
    })?;
    let shutdown = state.shutdown_signal();
    if *shutdown.borrow() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the daemon is shutting down",
        ));
    }
    let client_slot = client_slot(&state.ws().clients)?;
    let ping_interval = state.ws().ping_interval;
    // Subscribed before the 101 goes out: every event published after the client sees the
    // handshake complete reaches it, even without `?since=`.
    let (mut replay, live) = state.fleet().events().subscribe_since(stream_query.since);
    // Older than the memory buffer: replay from disk; a gap only for what retention pruned.
    let mut disk = None;
    if let (Some(memory_oldest), Some(since), Some(records)) =
        (replay.gap_oldest_seq, stream_query.since, state.records())
    {
        let (from_disk, gap) = disk_replay(records, since, memory_oldest).await;
        disk = Some(from_disk);
        replay.gap_oldest_seq = gap;
    }
    Ok(upgrade
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .on_upgrade(move |socket| async move {
            let _client_slot = client_slot;
            let _client = state.metrics().websocket_opened();
            let settings = Settings {
                ping_interval,
                shutdown,
            };
            session(socket, replay, disk, live, &stream_query.filter, settings).await;
        }))
}

/// A place among the `max_ws_clients` sessions, held until the session ends.
fn client_slot(clients: &Arc<Semaphore>) -> Result<OwnedSemaphorePermit, ApiError> {
    Arc::clone(clients).try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_clients",
            "the daemon serves as many event streams as daemon.max_ws_clients allows; \
             try again later",
        )
    })
}

struct Settings {
    ping_interval: Duration,
    shutdown: watch::Receiver<bool>,
}

/// Why a session ends, and so how it closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The connection broke or the client vanished: nothing to send.
    ClientGone,
    /// The client sent a close frame: answer it.
    ClientClosed,
    /// The daemon is shutting down.
    Shutdown,
    /// The client left a ping unanswered until the next one.
    NoPong,
    /// A send stayed blocked too long (the client stopped reading): drop it.
    TooSlow,
    /// The bus is gone (the fleet stopped).
    BusClosed,
}

/// Resolves when shutdown starts; never if the sender goes away without signalling it.
async fn until_shutdown(mut shutdown: watch::Receiver<bool>) {
    if shutdown.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// The sending half, with the rules every send follows: give up on shutdown or when the client
/// has not taken the message within `send_timeout`.
struct Outbox {
    sink: SplitSink<WebSocket, Message>,
    shutdown: watch::Receiver<bool>,
    send_timeout: Duration,
}

impl Outbox {
    async fn send(&mut self, message: Message) -> Result<(), End> {
        tokio::select! {
            biased;
            sent = self.sink.send(message) => sent.map_err(|_| End::ClientGone),
            () = until_shutdown(self.shutdown.clone()) => Err(End::Shutdown),
            () = tokio::time::sleep(self.send_timeout) => Err(End::TooSlow),
        }
    }

    async fn json(&mut self, value: &impl Serialize) -> Result<(), End> {
        let text = serde_json::to_string(value).map_err(|err| {
            tracing::error!(%err, "cannot serialise a WebSocket message");
            End::ClientGone
        })?;
        self.send(Message::Text(text.into())).await
    }
}

async fn session(
    socket: WebSocket,
    replay: Replay,
    disk: Option<DiskReplay>,
    live: broadcast::Receiver<Arc<Event>>,
    filter: &Filter,
    settings: Settings,
) {
    let (sink, mut stream) = socket.split();
    let mut outbox = Outbox {
        sink,
        shutdown: settings.shutdown.clone(),
        send_timeout: settings.ping_interval.saturating_mul(2),
    };
    let end = match stream_events(
        &mut outbox,
        &mut stream,
        replay,
        disk,
        live,
        filter,
        &settings,
    )
    .await
    {
        Ok(never) => match never {},
        Err(end) => end,
    };
    tracing::debug!(?end, "WebSocket session ending");
    let frame = match end {
        End::ClientGone | End::TooSlow => return,
        End::ClientClosed => {
            // The reply to the client's close frame is queued; flush it.
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, outbox.sink.close()).await;
            return;
        }
        End::Shutdown => close_frame(close_code::AWAY, "daemon shutting down"),
        End::BusClosed => close_frame(close_code::AWAY, "event bus stopped"),
        End::NoPong => close_frame(close_code::POLICY, "no pong to the last ping"),
    };
    // Send our close frame and wait for the client's answer, within one bound.
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
        if outbox.sink.send(Message::Close(Some(frame))).await.is_err() {
            return;
        }
        while let Some(Ok(message)) = stream.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

fn close_frame(code: u16, reason: &'static str) -> CloseFrame {
    CloseFrame {
        code,
        reason: reason.into(),
    }
}

/// Sends the stored events of `disk`, one page read at a time (filtered as read).
async fn send_from_disk(outbox: &mut Outbox, disk: DiskReplay, filter: &Filter) -> Result<(), End> {
    let mut after = disk.since;
    let mut n_sent = 0;
    loop {
        let (events, next) = disk
            .records
            .events_page(after, disk.before, |kind| filter.matches(kind))
            .await;
        for event in &events {
            if n_sent >= MAX_DISK_REPLAY {
                return Ok(());
            }
            outbox.json(&event_message(event)).await?;
            n_sent += 1;
        }
        match next {
            Some(next) => after = next,
            None => return Ok(()),
        }
    }
}

/// Replay, then live until something ends the session (the `Err`).
async fn stream_events(
    outbox: &mut Outbox,
    stream: &mut SplitStream<WebSocket>,
    replay: Replay,
    disk: Option<DiskReplay>,
    mut live: broadcast::Receiver<Arc<Event>>,
    filter: &Filter,
    settings: &Settings,
) -> Result<std::convert::Infallible, End> {
    if let Some(oldest_seq) = replay.gap_oldest_seq {
        outbox
            .json(&ControlMessage::ReplayGap { oldest_seq })
            .await?;
    }
    if let Some(disk) = disk {
        send_from_disk(outbox, disk, filter).await?;
    }
    // The highest seq handled (sent or filtered out); live events at or below it were replayed.
    let mut last_seq = 0;
    for event in replay.events {
        last_seq = event.seq;
        if filter.matches(&event.kind) {
            outbox.json(&event_message(&event)).await?;
        }
    }

    let start = tokio::time::Instant::now()
        .checked_add(settings.ping_interval)
        .unwrap_or_else(tokio::time::Instant::now);
    let mut ping = tokio::time::interval_at(start, settings.ping_interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut awaiting_pong = false;
    let shutdown = until_shutdown(settings.shutdown.clone());
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => return Err(End::Shutdown),
            frame = stream.next() => match frame {
                None | Some(Err(_)) => return Err(End::ClientGone),
                Some(Ok(Message::Close(_))) => return Err(End::ClientClosed),
                // Any frame shows the client is there; pings are answered by tungstenite, and
                // clients have nothing else to say.
                Some(Ok(_)) => awaiting_pong = false,
            },
            _ = ping.tick() => {
                if awaiting_pong {
                    return Err(End::NoPong);
                }
                awaiting_pong = true;
                outbox.send(Message::Ping(axum::body::Bytes::from_static(b"tendhost"))).await?;
            }
            received = live.recv() => match received {
                Ok(event) => {
                    if event.seq <= last_seq {
                        continue;
                    }
                    last_seq = event.seq;
                    if filter.matches(&event.kind) {
                        outbox.json(&event_message(&event)).await?;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::debug!(missed, "WebSocket client lagged behind the event bus");
                    outbox.json(&ControlMessage::Lagged { missed }).await?;
                }
                Err(broadcast::error::RecvError::Closed) => return Err(End::BusClosed),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use tendhost_core::events::EventKind;

    use crate::http::ws::{Filter, StreamQuery, parse_query};

    fn query(text: &str) -> Result<StreamQuery, (String, String)> {
        let pairs: Vec<(String, String)> = text
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                (key.to_owned(), value.to_owned())
            })
            .collect();
        parse_query(&pairs).map_err(|err| {
            let field = err.details.as_ref().unwrap()["field"]
                .as_str()
                .unwrap()
                .to_owned();
            (field, err.message)
        })
    }

    #[track_caller]
    fn check_err(text: &str, field: &str, needle: &str) {
        let (got_field, message) = query(text).expect_err("should be rejected");
        assert_eq!(got_field, field, "{message}");
        assert!(message.contains(needle), "{message:?} lacks {needle:?}");
    }

    #[test]
    fn parses_since_hosts_and_types_in_both_list_forms() {
        assert_eq!(
            query("").unwrap(),
            StreamQuery {
                since: None,
                filter: Filter::default()
            }
        );
        let parsed = query("since=0&host=a,b&host=c&types=job_started,host_added&types=lagged")
            .map(|q| q.since);
        assert!(parsed.is_err(), "`lagged` is a control message, not a type");
        let parsed =
            query("since=17&host=a,b&host=c&types=job_started,host_added&types=job_output")
                .unwrap();
        assert_eq!(parsed.since, Some(17));
        assert_eq!(parsed.filter.hosts, ["a", "b", "c"]);
        assert_eq!(
            parsed.filter.types,
            ["job_started", "host_added", "job_output"]
        );
    }

    #[test]
    fn bad_params_name_the_param() {
        check_err("since=abc", "since", "not \"abc\"");
        check_err("since=-1", "since", "non-negative");
        check_err("since=1&since=2", "since", "more than once");
        check_err(
            "types=host_added,nope",
            "types",
            "unknown event type \"nope\"",
        );
        check_err("types=", "types", "unknown event type \"\"");
        check_err("host=a%20b", "host", "is not a host name");
        check_err("host=", "host", "is not a host name");
        check_err("hosts=a", "hosts", "unknown query parameter");
    }

    #[test]
    fn filter_by_host_and_type() {
        let added = |host: &str| EventKind::HostAdded {
            host: host.to_owned(),
        };
        let rollout = EventKind::RolloutFinished {
            rollout_id: "r".to_owned(),
            state: "completed".to_owned(),
        };
        let everything = Filter::default();
        assert!(everything.matches(&added("a")) && everything.matches(&rollout));
        let host_a = Filter {
            hosts: vec!["a".to_owned()],
            types: Vec::new(),
        };
        assert!(host_a.matches(&added("a")));
        assert!(!host_a.matches(&added("b")));
        assert!(!host_a.matches(&rollout));
        let rollouts = Filter {
            hosts: Vec::new(),
            types: vec!["rollout_finished"],
        };
        assert!(rollouts.matches(&rollout));
        assert!(!rollouts.matches(&added("a")));
    }

    #[test]
    fn openapi_documents_the_route_as_a_101_with_its_message_schemas() {
        let doc = serde_json::to_value(crate::http::openapi()).unwrap();
        let get = &doc["paths"]["/ws/events"]["get"];
        let switching = &get["responses"]["101"];
        assert_eq!(
            switching["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/StreamMessage",
            "{get:#}"
        );
        let params: Vec<&str> = get["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(params, ["since", "host", "ticket", "types"]);
        for status in ["422", "426"] {
            assert!(get["responses"][status].is_object(), "{get:#}");
        }
        let schemas = &doc["components"]["schemas"];
        for name in [
            "StreamMessage",
            "EventMessage",
            "EventPayload",
            "ControlMessage",
            "HostState",
            "JobKind",
            "LogStream",
            "JobState",
            "RolloutState",
        ] {
            assert!(schemas[name].is_object(), "{name} missing from components");
        }
    }
}
