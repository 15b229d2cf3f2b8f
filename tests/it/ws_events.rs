//! The WebSocket event stream (`GET /ws/events`) through a real WebSocket client
//! (tokio-tungstenite) against the in-process daemon, and against the real binary for SIGTERM:
//! order and seq, `?since=` replay across reconnects with no gap or duplicate, `replay_gap`,
//! `?host=`/`?types=` filters, bad parameters, a client that stops reading (`lagged`),
//! ping/pong keepalive, every socket getting a close frame on shutdown, a replay from disk of
//! many pages, and `max_ws_clients` (503 `too_many_clients` beyond it).
//!
//! Events come from real work: checks of a `local` host (this machine, package lists never
//! refreshed: `apt-get -s` only) and of an SSH host on a closed loopback port (unreachable), and
//! hosts registered and removed through `POST /hosts` / `DELETE /hosts/{name}`.

use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tendhost_api::events::{ControlMessage, EventMessage, EventPayload, StreamMessage};
use tendhost_api::hosts::HostState;
use tendhost_tests::daemon::{DaemonProcess, spawn_app};
use tendhost_tests::wait::{self, WAIT_DEADLINE};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// No checks at start: every event in these tests comes from what the test does.
const BASE: &str = "[daemon]\nlog_level = \"warn\"\ncheck_on_start = false\n";

/// The API may register hosts at 127.0.0.1 (`churn_hosts`).
const API_HOSTS: &str = "[daemon.api_hosts]\nallow = [\"127.0.0.1/32\"]\n";

/// This machine, checked without refreshing package lists, never upgraded.
const LOCAL_HOST: &str = "\n[[host]]\nname = \"me\"\naddr = \"local\"\n[host.policy]\nupdates = \"check-only\"\nrefresh_lists = false\n";

/// An SSH host on a closed loopback port: a check ends `unreachable` at once.
const CLOSED_PORT_HOST: &str = "\n[[host]]\nname = \"gone\"\naddr = \"127.0.0.1\"\nport = 1\n";

fn config(daemon_extra: &str, hosts: &[&str]) -> String {
    format!("{BASE}{daemon_extra}{API_HOSTS}{}", hosts.concat())
}

async fn connect(addr: SocketAddr, query: &str) -> WebSocketStream<TcpStream> {
    let stream = TcpStream::connect(addr)
        .await
        .expect("connect to the daemon");
    handshake(stream, addr, query).await
}

async fn handshake<S>(stream: S, addr: SocketAddr, query: &str) -> WebSocketStream<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let url = format!("ws://{addr}/ws/events{query}");
    let (ws, response) = wait::within(
        &format!("the WebSocket handshake with {url}"),
        tokio_tungstenite::client_async(url.as_str(), stream),
    )
    .await
    .unwrap_or_else(|err| panic!("WebSocket handshake with {url} failed: {err}"));
    assert_eq!(response.status(), 101);
    ws
}

/// The next JSON message (pings and pongs skipped); panics on close or a stuck stream (one
/// deadline for the message, however many pings come meanwhile).
async fn next_value<S>(ws: &mut WebSocketStream<S>) -> Value
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    wait::within("the next WebSocket message", async {
        loop {
            let frame = ws
                .next()
                .await
                .expect("the stream ended")
                .expect("WebSocket error");
            match frame {
                Message::Text(text) => {
                    return serde_json::from_str(text.as_str())
                        .unwrap_or_else(|err| panic!("not JSON ({err}): {text}"));
                }
                Message::Ping(_) | Message::Pong(_) => {}
                other => panic!("unexpected frame {other:?}"),
            }
        }
    })
    .await
}

async fn next_message<S>(ws: &mut WebSocketStream<S>) -> StreamMessage
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let value = next_value(ws).await;
    serde_json::from_value(value.clone())
        .unwrap_or_else(|err| panic!("not a stream message ({err}): {value}"))
}

async fn next_event<S>(ws: &mut WebSocketStream<S>) -> EventMessage
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match next_message(ws).await {
        StreamMessage::Event(event) => event,
        StreamMessage::Control(control) => panic!("expected an event, got {control:?}"),
    }
}

/// Events up to and including the first one that satisfies `last`.
async fn events_until<S>(
    ws: &mut WebSocketStream<S>,
    last: impl Fn(&EventMessage) -> bool,
) -> Vec<EventMessage>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut events = Vec::new();
    loop {
        let event = next_event(ws).await;
        let done = last(&event);
        events.push(event);
        if done {
            return events;
        }
    }
}

fn is_job_finished(job_id: &str) -> impl Fn(&EventMessage) -> bool + '_ {
    move |event| matches!(&event.event, EventPayload::JobFinished { job_id: id, .. } if id == job_id)
}

/// Reads until the close frame; returns its code and reason.
async fn close_frame<S>(ws: &mut WebSocketStream<S>) -> (CloseCode, String)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    wait::within("a close frame", async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(Some(frame)))) => {
                    return (frame.code, frame.reason.as_str().to_owned());
                }
                Some(Ok(Message::Close(None))) => panic!("close frame without a code"),
                Some(Ok(_)) => {}
                Some(Err(err)) => panic!("connection failed before a close frame: {err}"),
                None => panic!("connection ended without a close frame"),
            }
        }
    })
    .await
}

/// What a filtered client should receive.
type EventFilter = Box<dyn Fn(&EventMessage) -> bool>;

fn seqs(events: &[EventMessage]) -> Vec<u64> {
    events.iter().map(|event| event.seq).collect()
}

#[track_caller]
fn assert_consecutive(seqs: &[u64]) {
    for pair in seqs.windows(2) {
        assert_eq!(pair[1], pair[0] + 1, "seq gap or duplicate in {seqs:?}");
    }
}

fn host_of(event: &EventMessage) -> Option<&str> {
    match &event.event {
        EventPayload::HostStateChanged { host, .. }
        | EventPayload::JobStarted { host, .. }
        | EventPayload::JobOutput { host, .. }
        | EventPayload::UpdateProgress { host, .. }
        | EventPayload::JobFinished { host, .. }
        | EventPayload::HostConnected { host }
        | EventPayload::HostDisconnected { host, .. }
        | EventPayload::HostAdded { host }
        | EventPayload::HostRemoved { host }
        | EventPayload::HealthCheckFinished { host, .. }
        | EventPayload::HostDeferred { host, .. } => Some(host),
        EventPayload::RolloutStarted { .. }
        | EventPayload::RolloutAwaitingApproval { .. }
        | EventPayload::RolloutApproved { .. }
        | EventPayload::ScheduleTriggered { .. }
        | EventPayload::BatchStarted { .. }
        | EventPayload::BatchFinished { .. }
        | EventPayload::RolloutFinished { .. }
        | EventPayload::CertificateRenewed { .. }
        | EventPayload::CertificateReloadFailed { .. }
        | EventPayload::ConfigReloaded { .. }
        | EventPayload::ConfigReloadFailed { .. }
        | EventPayload::CertificateRenewalFailed { .. } => None,
    }
}

fn type_of(event: &EventMessage) -> String {
    serde_json::to_value(event).unwrap()["type"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// `POST /hosts/{host}/check`; returns the job id.
async fn check(client: &reqwest::Client, base_url: &str, host: &str) -> String {
    let resp = client
        .post(format!("{base_url}/hosts/{host}/check"))
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
    let body: Value = resp.json().await.unwrap();
    body["job_id"].as_str().unwrap().to_owned()
}

/// Registers and removes `n` runtime hosts named `{prefix}-{idx}` (a `host_added` and a
/// `host_removed` event each). Both events are published before the HTTP answer.
async fn churn_hosts(client: &reqwest::Client, base_url: &str, prefix: &str, n: usize) {
    for idx in 0..n {
        let name = format!("{prefix}-{idx}");
        let resp = client
            .post(format!("{base_url}/hosts"))
            .json(&json!({"name": name, "addr": "127.0.0.1", "port": 1}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
        let resp = client
            .delete(format!("{base_url}/hosts/{name}"))
            .header("content-type", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204, "{}", resp.text().await.unwrap());
    }
}

#[tokio::test]
async fn ws_events_arrive_in_order_with_seq_plus_one() {
    let app = spawn_app(&config("", &[CLOSED_PORT_HOST, LOCAL_HOST])).await;
    // Subscribed once the handshake completes: nothing published after this is missed.
    let mut ws = connect(app.addr, "").await;

    let local_job = check(&app.client, &app.base_url, "me").await;
    let first = next_value(&mut ws).await;
    // One flat JSON object: seq, time, type and the type's fields side by side.
    assert_eq!(first["seq"], 1, "{first}");
    let time = first["time"].as_str().unwrap();
    assert!(
        time.parse::<jiff::Timestamp>().is_ok() && time.ends_with('Z'),
        "not RFC 3339 UTC: {time}"
    );
    assert!(
        first["type"].is_string() && first["host"] == "me",
        "{first}"
    );
    let first: EventMessage = serde_json::from_value(first).unwrap();
    let mut events = vec![first];
    events.extend(events_until(&mut ws, is_job_finished(&local_job)).await);

    let unreachable_job = check(&app.client, &app.base_url, "gone").await;
    events.extend(events_until(&mut ws, is_job_finished(&unreachable_job)).await);

    assert_consecutive(&seqs(&events));
    assert_eq!(events[0].seq, 1);
    let summary: Vec<String> = events
        .iter()
        .map(|event| match &event.event {
            EventPayload::HostStateChanged { host, from, to } => {
                format!("{} {host}: {from:?} -> {to:?}", event.seq)
            }
            EventPayload::JobFinished { host, outcome, .. } => {
                format!("{} {host}: job_finished {outcome}", event.seq)
            }
            _ => format!(
                "{} {}: {}",
                event.seq,
                host_of(event).unwrap_or("-"),
                type_of(event)
            ),
        })
        .collect();
    eprintln!("{summary:#?}");
    // The local check: started, querying, then a resting state, then finished.
    let local: Vec<&EventMessage> = events
        .iter()
        .filter(|event| host_of(event) == Some("me"))
        .collect();
    assert!(matches!(
        &local[0].event,
        EventPayload::JobStarted { job_id, .. } if *job_id == local_job
    ));
    assert!(
        events.iter().any(|event| matches!(
            &event.event,
            EventPayload::HostStateChanged { host, from: HostState::Idle, to: HostState::Querying } if host == "me"
        )),
        "{summary:#?}"
    );
    assert!(
        events.iter().any(|event| matches!(
            &event.event,
            EventPayload::JobFinished { host, outcome, .. } if host == "me" && outcome == "succeeded"
        )),
        "{summary:#?}"
    );
    // The closed port: querying -> unreachable, disconnected, the job failed.
    assert!(
        events.iter().any(|event| matches!(
            &event.event,
            EventPayload::HostStateChanged { host, from: HostState::Querying, to: HostState::Unreachable } if host == "gone"
        )),
        "{summary:#?}"
    );
    assert!(
        events.iter().any(|event| matches!(
            &event.event,
            EventPayload::HostDisconnected { host, .. } if host == "gone"
        )),
        "{summary:#?}"
    );
    assert!(
        events.iter().any(|event| matches!(
            &event.event,
            EventPayload::JobFinished { host, outcome, .. } if host == "gone" && outcome == "failed"
        )),
        "{summary:#?}"
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn ws_since_resumes_without_gap_or_duplicate_while_events_flow() {
    const PAIRS: usize = 150;
    let app = spawn_app(&config("", &[LOCAL_HOST])).await;
    let mut watcher = connect(app.addr, "?since=0").await;
    let client = app.client.clone();
    let base_url = app.base_url.clone();
    let generator =
        tokio::spawn(async move { churn_hosts(&client, &base_url, "churn", PAIRS).await });

    // Reconnect over and over while events are being published, each time resuming after the
    // last seq received; sometimes closing politely, sometimes just dropping the connection.
    let total = u64::try_from(PAIRS * 2).unwrap();
    let mut received: Vec<EventMessage> = Vec::new();
    let mut n_connections = 0;
    while received.last().map_or(0, |event| event.seq) < total {
        let since = received.last().map_or(0, |event| event.seq);
        let mut ws = connect(app.addr, &format!("?since={since}")).await;
        n_connections += 1;
        for _ in 0..(3 + n_connections % 11) {
            received.push(next_event(&mut ws).await);
            if received.last().unwrap().seq == total {
                break;
            }
        }
        if n_connections % 2 == 0 {
            ws.close(None).await.unwrap();
        }
    }
    generator.await.unwrap();
    let watched = events_until(&mut watcher, |event| event.seq == total).await;

    eprintln!("{n_connections} connections");
    assert!(
        n_connections > 10,
        "the seam was crossed only {n_connections} times"
    );
    let resumed = seqs(&received);
    assert_eq!(resumed.first(), Some(&1));
    assert_consecutive(&resumed);
    // Same events, same content, as a client that never disconnected.
    assert_eq!(received, watched);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn ws_replay_from_disk_then_gap_only_for_what_retention_pruned() {
    let app = spawn_app(&config("event_buffer = 5\n", &[])).await;
    churn_hosts(&app.client, &app.base_url, "gap", 6).await;
    // 12 events published; the memory buffer holds 8..=12, the database all of them.

    // Older than the buffer: replayed from the database, no gap.
    let mut ws = connect(app.addr, "?since=1").await;
    let replayed = events_until(&mut ws, |event| event.seq == 12).await;
    assert_eq!(seqs(&replayed), (2..=12).collect::<Vec<u64>>());
    // Then live, continuing the same sequence.
    churn_hosts(&app.client, &app.base_url, "after", 1).await;
    assert_eq!(
        seqs(&events_until(&mut ws, |event| event.seq == 14).await),
        [13, 14]
    );
    // `since` inside the buffer: the replay starts right after it.
    let mut ws = connect(app.addr, "?since=11").await;
    assert_eq!(next_event(&mut ws).await.seq, 12);

    // Retention prunes every stored event (as the daily pruning does for old ones); after a
    // restart, what is gone is reported as a gap, and seq still never goes back.
    let dir = app.into_dir().await;
    let store = tendhost_store::Store::open(dir.path().join("data")).unwrap();
    let pruned = store
        .prune(jiff::Timestamp::now().as_millisecond() + 60_000)
        .await
        .unwrap();
    assert_eq!(pruned.events, 14);
    store.close().await.unwrap();
    let app = tendhost_tests::daemon::spawn_app_in(dir).await;
    churn_hosts(&app.client, &app.base_url, "later", 1).await;
    let mut ws = connect(app.addr, "?since=0").await;
    assert_eq!(
        next_message(&mut ws).await,
        StreamMessage::Control(ControlMessage::ReplayGap { oldest_seq: 15 })
    );
    assert_eq!(next_event(&mut ws).await.seq, 15);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn ws_host_and_types_filters_apply_to_replay_and_live() {
    // The filtered clients are read only after the check: with pings far apart a slow check
    // on a loaded machine cannot get them closed for unanswered pings first.
    let app = spawn_app(&config(
        "ws_ping_interval = \"10m\"\n",
        &[CLOSED_PORT_HOST, LOCAL_HOST],
    ))
    .await;
    let mut everything = connect(app.addr, "").await;
    let mut by_host = connect(app.addr, "?host=me").await;
    let mut by_types = connect(app.addr, "?types=job_started,job_finished").await;
    let mut both_repeated = connect(
        app.addr,
        "?host=gone&types=host_state_changed&types=host_disconnected",
    )
    .await;

    let job = check(&app.client, &app.base_url, "me").await;
    let mut all = events_until(&mut everything, is_job_finished(&job)).await;
    let job = check(&app.client, &app.base_url, "gone").await;
    all.extend(events_until(&mut everything, is_job_finished(&job)).await);
    churn_hosts(&app.client, &app.base_url, "other", 2).await;
    let last_seq = all.last().unwrap().seq + 4;
    all.extend(events_until(&mut everything, |event| event.seq == last_seq).await);
    assert_consecutive(&seqs(&all));

    // A client connecting now replays the buffer through its filter.
    let mut replay_filtered = connect(app.addr, "?since=0&host=me,gone&types=job_finished").await;

    let filters: Vec<(&str, EventFilter)> = vec![
        ("host=me", Box::new(|event| host_of(event) == Some("me"))),
        (
            "types=job_started,job_finished",
            Box::new(|event| ["job_started", "job_finished"].contains(&type_of(event).as_str())),
        ),
        (
            "host=gone, types=host_state_changed|host_disconnected",
            Box::new(|event| {
                host_of(event) == Some("gone")
                    && ["host_state_changed", "host_disconnected"]
                        .contains(&type_of(event).as_str())
            }),
        ),
        (
            "since=0, host=me|gone, types=job_finished",
            Box::new(|event| {
                matches!(host_of(event), Some("me" | "gone")) && type_of(event) == "job_finished"
            }),
        ),
    ];
    let mut clients = [
        &mut by_host,
        &mut by_types,
        &mut both_repeated,
        &mut replay_filtered,
    ];
    let mut expected_counts = Vec::new();
    for ((name, wanted), ws) in filters.iter().zip(clients.iter_mut()) {
        let expected: Vec<&EventMessage> = all.iter().filter(|event| wanted(event)).collect();
        assert!(
            !expected.is_empty(),
            "{name}: the scenario produced nothing to filter for"
        );
        let mut got = Vec::new();
        for _ in 0..expected.len() {
            got.push(next_event(&mut **ws).await);
        }
        assert_eq!(got.iter().collect::<Vec<_>>(), expected, "{name}");
        expected_counts.push((name, expected.len()));
    }
    eprintln!("{expected_counts:?}");

    // Nothing else was sent in between: the next message each filtered client gets is from
    // work done after this point and matches its filter.
    let job_me = check(&app.client, &app.base_url, "me").await;
    let mut sentinel = events_until(&mut everything, is_job_finished(&job_me)).await;
    let job_gone = check(&app.client, &app.base_url, "gone").await;
    sentinel.extend(events_until(&mut everything, is_job_finished(&job_gone)).await);
    for ((name, wanted), ws) in filters.iter().zip(clients.iter_mut()) {
        let event = next_event(&mut **ws).await;
        assert!(event.seq > last_seq, "{name}: stale {event:?}");
        assert!(wanted(&event), "{name}: {event:?}");
        let expected = sentinel.iter().find(|event| wanted(event)).unwrap();
        assert_eq!(&event, expected, "{name}");
    }
    app.stop().await.unwrap();
}

#[tokio::test]
async fn ws_bad_params_get_json_errors_naming_the_param() {
    let app = spawn_app(&config("", &[])).await;
    let handshake_get = |query: &str| {
        app.client
            .get(app.url(&format!("/ws/events{query}")))
            .header("Connection", "Upgrade")
            .header("Upgrade", "websocket")
            .header("Sec-WebSocket-Version", "13")
            .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
            .send()
    };
    for (query, field, needle) in [
        ("?since=abc", "since", "since: must be an event seq"),
        ("?since=-4", "since", "not \"-4\""),
        (
            "?types=host_added,bogus",
            "types",
            "unknown event type \"bogus\"",
        ),
        (
            "?types=host_added&types=",
            "types",
            "unknown event type \"\"",
        ),
        (
            "?host=bad%20name",
            "host",
            "\"bad name\" is not a host name",
        ),
        ("?sinse=3", "sinse", "unknown query parameter"),
    ] {
        let resp = handshake_get(query).await.unwrap();
        assert_eq!(resp.status(), 422, "{query}");
        assert_eq!(resp.headers()["content-type"], "application/json");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_value", "{query}: {body}");
        assert_eq!(body["error"]["details"]["field"], field, "{query}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{query}: {message}");
    }

    // A WebSocket client sees the same refusal instead of a socket.
    let url = format!("ws://{}/ws/events?since=abc", app.addr);
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 422);
        }
        other => panic!("expected a 422 refusal, got {other:?}"),
    }

    // Not a WebSocket handshake at all.
    let resp = app.client.get(app.url("/ws/events")).send().await.unwrap();
    assert_eq!(resp.status(), 426);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upgrade_required", "{body}");
    let resp = app.client.post(app.url("/ws/events")).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn ws_slow_client_gets_lagged_while_others_continue() {
    const CHURNERS: usize = 4;
    const PAIRS: usize = 600;
    // A subscriber may fall 16 events behind before it lags.
    // Pings far apart: the slow client answers none until it reads, and on a loaded machine
    // the churn can outlast the default keepalive, which would close it before it lags.
    let app = spawn_app(&config(
        "event_channel = 16\nws_ping_interval = \"10m\"\n",
        &[],
    ))
    .await;
    let mut slow = handshake(slow_socket(app.addr).await, app.addr, "").await;
    let mut fast = connect(app.addr, "").await;

    let total = u64::try_from(CHURNERS * PAIRS * 2).unwrap();
    let mut generators = Vec::new();
    for churner in 0..CHURNERS {
        let client = app.client.clone();
        let base_url = app.base_url.clone();
        let prefix = format!("a-long-host-name-so-that-each-event-is-bigger-{churner}");
        generators.push(tokio::spawn(async move {
            churn_hosts(&client, &base_url, &prefix, PAIRS).await;
        }));
    }
    // The fleet is not held up by the slow client: the other one gets every event, in order.
    let fast_events = events_until(&mut fast, |event| event.seq == total).await;
    for generator in generators {
        generator.await.unwrap();
    }
    assert_consecutive(&seqs(&fast_events));
    assert_eq!(fast_events.len(), usize::try_from(total).unwrap());

    // The slow client reads now: events, `lagged` with how many it missed, newer events.
    let mut before: Option<u64> = None;
    let mut n_lagged = 0;
    let mut n_missed = 0;
    let mut pending_missed: Option<u64> = None;
    loop {
        match next_message(&mut slow).await {
            StreamMessage::Control(ControlMessage::Lagged { missed }) => {
                eprintln!("lagged after seq {before:?}: missed {missed}");
                assert!(missed > 0);
                assert!(pending_missed.is_none(), "two lagged messages in a row");
                pending_missed = Some(missed);
                n_lagged += 1;
                n_missed += missed;
            }
            StreamMessage::Control(other) => panic!("unexpected {other:?}"),
            StreamMessage::Event(event) => {
                let expected = before.map_or(1, |seq| seq + 1) + pending_missed.take().unwrap_or(0);
                assert_eq!(
                    event.seq, expected,
                    "a jump in seq must be announced by `lagged` with exactly the missed count"
                );
                before = Some(event.seq);
                if event.seq == total {
                    break;
                }
            }
        }
    }
    eprintln!("slow client: lagged {n_lagged} times, missed {n_missed} events");
    assert!(n_lagged >= 1, "the slow client never lagged");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn ws_ping_pong_keepalive() {
    let app = spawn_app(&config("ws_ping_interval = \"500ms\"\n", &[])).await;

    // A client that answers pings (tungstenite does as it reads) stays connected.
    let mut ws = connect(app.addr, "").await;
    wait::within("4 pings from the daemon", async {
        let mut n_pings = 0;
        while n_pings < 4 {
            match ws.next().await.unwrap().unwrap() {
                Message::Ping(_) => n_pings += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
    })
    .await;
    // The server answers a client's ping too.
    ws.send(Message::Ping("are you there".into()))
        .await
        .unwrap();
    wait::within("the pong to the client's ping", async {
        loop {
            match ws.next().await.unwrap().unwrap() {
                Message::Pong(payload) => {
                    assert_eq!(&payload[..], b"are you there");
                    break;
                }
                Message::Ping(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    })
    .await;
    churn_hosts(&app.client, &app.base_url, "alive", 1).await;
    let event = next_event(&mut ws).await;
    assert!(
        matches!(event.event, EventPayload::HostAdded { .. }),
        "{event:?}"
    );

    // A client that never answers is closed (1008) after the next ping.
    let (frames, ended) = silent_client(app.addr).await;
    assert!(
        frames.iter().any(|(opcode, _)| *opcode == 0x9),
        "no ping: {frames:?}"
    );
    let (opcode, payload) = frames.last().unwrap();
    assert_eq!(*opcode, 0x8, "last frame is not a close frame: {frames:?}");
    assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 1008);
    assert!(
        ended,
        "the daemon kept the connection open after closing it"
    );
    app.stop().await.unwrap();
}

/// A TCP connection that buffers little: a small receive buffer, and a small MSS so the daemon's
/// side of the connection sizes its send buffer small too (on loopback it would otherwise start
/// at megabytes). A client on it that stops reading blocks the daemon's sends soon.
async fn slow_socket(addr: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )
    .unwrap();
    socket.set_tcp_mss(536).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.set_nonblocking(true).unwrap();
    let socket = tokio::net::TcpSocket::from_std_stream(socket.into());
    socket.connect(addr).await.unwrap()
}

/// A WebSocket client that completes the handshake by hand and then never writes anything (so
/// never answers a ping); returns the server's frames (opcode, payload) until the server closes
/// the TCP connection, and whether it did.
async fn silent_client(addr: SocketAddr) -> (Vec<(u8, Vec<u8>)>, bool) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET /ws/events HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut bytes = Vec::new();
    let ended = tokio::time::timeout(WAIT_DEADLINE, stream.read_to_end(&mut bytes))
        .await
        .is_ok();
    let head_end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no HTTP response head")
        + 4;
    let head = String::from_utf8_lossy(&bytes[..head_end]);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    // Server frames are unmasked; these are all short (payload < 126 bytes).
    let mut frames = Vec::new();
    let mut rest = &bytes[head_end..];
    while rest.len() >= 2 {
        let opcode = rest[0] & 0x0f;
        let len = usize::from(rest[1] & 0x7f);
        assert!(
            len < 126 && rest.len() >= 2 + len,
            "unexpected frame {rest:?}"
        );
        frames.push((opcode, rest[2..2 + len].to_vec()));
        rest = &rest[2 + len..];
    }
    (frames, ended)
}

#[tokio::test]
async fn ws_shutdown_sends_close_frames_and_completes() {
    let app = spawn_app(&config("", &[LOCAL_HOST])).await;
    let mut reading = connect(app.addr, "").await;
    let mut replaying = connect(app.addr, "?since=0&types=job_finished").await;
    let mut not_reading = connect(app.addr, "?host=me").await;
    let base_url = app.base_url.clone();
    let client = app.client.clone();

    // A job is running when shutdown starts.
    let job = check(&client, &base_url, "me").await;
    let first = next_event(&mut reading).await;
    assert!(host_of(&first) == Some("me"), "{first:?}");

    // `stop` gives up (and fails the test) when `run` does not return by itself.
    app.stop().await.unwrap_or_else(|err| {
        panic!("run returned an error at shutdown with job {job} running: {err:?}")
    });

    for ws in [&mut reading, &mut replaying, &mut not_reading] {
        let (code, reason) = close_frame(ws).await;
        assert_eq!(code, CloseCode::Away);
        assert_eq!(reason, "daemon shutting down");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_sigterm_with_clients_connected_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tendhost.toml");
    std::fs::write(
        &path,
        config("", &[LOCAL_HOST]).replace("log_level = \"warn\"\n", ""),
    )
    .unwrap();
    let mut daemon = DaemonProcess::start(&path, &dir.path().join("data"));
    let addr = daemon.addr;
    let base_url = daemon.base_url.clone();
    let client = wait::http_client();

    let mut readers = Vec::new();
    for query in ["", "?since=0", "?host=me&types=job_output"] {
        let mut ws = connect(addr, query).await;
        readers.push(tokio::spawn(async move { close_frame(&mut ws).await }));
    }
    // A job is running (or just ran) when the signal comes.
    check(&client, &base_url, "me").await;

    daemon.signal("TERM");
    // Blocking: off the runtime's threads, so the readers keep reading meanwhile.
    let (status, daemon) = tokio::task::spawn_blocking(move || {
        let status = daemon.wait_exit("SIGTERM with 3 WebSocket clients connected");
        (status, daemon)
    })
    .await
    .unwrap();
    assert!(
        status.success(),
        "exit status {status:?}; log:\n{}",
        daemon.log.join("\n")
    );
    for reader in readers {
        let (code, reason) = reader.await.unwrap();
        assert_eq!(code, CloseCode::Away);
        assert_eq!(reason, "daemon shutting down");
    }
    // The HTTP drain did not need its deadline: the WebSocket connections ended on their own.
    assert!(
        !daemon
            .log
            .iter()
            .any(|line| line.contains("did not finish in time")),
        "{}",
        daemon.log.join("\n")
    );
}

/// A replay from the state database longer than many of its pages arrives whole, in order,
/// then goes live: the session reads the database page by page while it sends.
#[tokio::test]
async fn ws_replay_from_disk_spans_many_pages_without_gap() {
    let app = spawn_app(&config("event_buffer = 1\n", &[])).await;
    // 2 events per host: far more than one page of the disk replay.
    let n_hosts = 3 * tendhost::persist::EVENT_PAGE as usize / 2 + 7;
    churn_hosts(&app.client, &app.base_url, "page", n_hosts).await;
    let last = 2 * n_hosts as u64;
    let mut ws = connect(app.addr, "?since=0").await;
    let replayed = events_until(&mut ws, |event| event.seq == last).await;
    assert_eq!(seqs(&replayed), (1..=last).collect::<Vec<u64>>());
    churn_hosts(&app.client, &app.base_url, "live", 1).await;
    assert_eq!(
        seqs(&events_until(&mut ws, |event| event.seq == last + 2).await),
        [last + 1, last + 2]
    );
    app.stop().await.unwrap();
}

/// `max_ws_clients` streams at once: one more is refused before the upgrade with 503
/// `too_many_clients` in the API's error shape; once a client leaves, a new one gets in.
#[tokio::test]
async fn ws_clients_beyond_max_ws_clients_get_503_too_many_clients() {
    let app = spawn_app(&config("max_ws_clients = 2\n", &[])).await;
    let first = connect(app.addr, "").await;
    let _second = connect(app.addr, "").await;

    let url = format!("ws://{}/ws/events", app.addr);
    let refused = tokio_tungstenite::connect_async(url.as_str()).await;
    let Err(tokio_tungstenite::tungstenite::Error::Http(response)) = refused else {
        panic!("a third client was not refused: {refused:?}");
    };
    assert_eq!(response.status(), 503);
    let body: Value = serde_json::from_slice(response.body().as_deref().unwrap_or_default())
        .expect("the refusal is JSON");
    assert_eq!(body["error"]["code"], "too_many_clients", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_ws_clients"),
        "{body}"
    );

    drop(first);
    let again = wait::until("a new client once one has left", || async {
        match tokio_tungstenite::connect_async(url.as_str()).await {
            Ok((ws, _)) => Ok(ws),
            Err(err) => Err(err.to_string()),
        }
    })
    .await;
    drop(again);
    app.stop().await.unwrap();
}
