//! Headless Chromium for the browser tests and benches: the one launcher (Debian's `chromium`,
//! every host but 127.0.0.1 unresolvable, no background traffic) and a small DevTools-protocol
//! client over its WebSocket. `it/docs_ui.rs` dumps a page's DOM with the launcher; the
//! dashboard tests (`it/dashboard.rs`) and the dashboard bench drive a live page through
//! [`Page`]: navigate, evaluate script, click, type, wait for a condition, take screenshots,
//! read navigation timing. Nothing here knows the dashboard.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

use crate::wait;

/// Debian's `chromium` (override with `TENDHOST_CHROMIUM`).
pub fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("TENDHOST_CHROMIUM") {
        return PathBuf::from(path);
    }
    let path = Path::new("/usr/bin/chromium");
    assert!(
        path.exists(),
        "{} not found: the browser tests need Chromium. \
         install chromium: scripts/test does it (or `apt-get install chromium`)",
        path.display()
    );
    path.to_path_buf()
}

/// `chromium` headless, with the profile in `profile`, able to resolve nothing but 127.0.0.1
/// (an air-gapped network) and making no requests of its own. Callers add their mode
/// (`--dump-dom URL`, or `--remote-debugging-port=0`).
pub fn chromium_command(profile: &Path) -> Command {
    let mut command = Command::new(chromium());
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-proxy-server",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// A running headless Chromium with one page, driven over the DevTools protocol.
pub struct Browser {
    _child: Child,
    _profile: tempfile::TempDir,
    /// The page (tab) the browser opened.
    pub page: Page,
}

impl Browser {
    /// Starts Chromium with a fresh profile and attaches to its first page.
    pub async fn launch() -> Browser {
        let profile = tempfile::tempdir().expect("temp dir");
        let mut child = chromium_command(profile.path())
            .arg("--remote-debugging-port=0")
            .arg("--remote-allow-origins=*")
            .arg("about:blank")
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {}: {err}", chromium().display()));
        let stderr = child.stderr.take().expect("piped stderr");
        let mut lines = BufReader::new(stderr).lines();
        let browser_ws = wait::within("chromium announcing its DevTools endpoint", async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(at) = line.find("ws://") {
                    return line[at..].trim().to_owned();
                }
            }
            panic!("chromium exited without a DevTools endpoint");
        })
        .await;
        // Keep draining stderr so the browser never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let port = browser_ws
            .trim_start_matches("ws://127.0.0.1:")
            .split('/')
            .next()
            .expect("a port")
            .to_owned();
        let targets: Value = wait::http_client()
            .get(format!("http://127.0.0.1:{port}/json/list"))
            .send()
            .await
            .expect("DevTools /json/list")
            .json()
            .await
            .expect("targets are JSON");
        let page_ws = targets
            .as_array()
            .and_then(|targets| targets.iter().find(|t| t["type"] == "page"))
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .unwrap_or_else(|| panic!("no page target in {targets}"))
            .to_owned();
        let page = Page::connect(&page_ws).await;
        page.call("Page.enable", json!({})).await;
        page.call("Runtime.enable", json!({})).await;
        page.call("Log.enable", json!({})).await;
        Browser {
            _child: child,
            _profile: profile,
            page,
        }
    }
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>;

/// One page over the DevTools protocol.
#[derive(Clone)]
pub struct Page {
    outgoing: mpsc::UnboundedSender<String>,
    pending: Pending,
    next_id: Arc<Mutex<u64>>,
    /// Console messages and uncaught exceptions, as text.
    console: Arc<Mutex<Vec<String>>>,
}

impl Page {
    async fn connect(url: &str) -> Page {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("DevTools WebSocket connects");
        let (mut sink, mut stream) = ws.split();
        let (outgoing, mut rx) = mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            while let Some(text) = rx.recv().await {
                if sink.send(Message::text(text)).await.is_err() {
                    break;
                }
            }
        });
        let pending: Pending = Arc::default();
        let console: Arc<Mutex<Vec<String>>> = Arc::default();
        let (pending_in, console_in) = (Arc::clone(&pending), Arc::clone(&console));
        tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                let Message::Text(text) = message else {
                    continue;
                };
                let Ok(value) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                if let Some(id) = value["id"].as_u64() {
                    let waiter = pending_in
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .remove(&id);
                    if let Some(waiter) = waiter {
                        let _ = waiter.send(value);
                    }
                } else if let Some(line) = console_line(&value) {
                    console_in
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(line);
                }
            }
        });
        Page {
            outgoing,
            pending,
            next_id: Arc::new(Mutex::new(0)),
            console,
        }
    }

    /// Sends a DevTools command and returns its `result` (panics on a protocol error).
    pub async fn call(&self, method: &str, params: Value) -> Value {
        let id = {
            let mut next = self.next_id.lock().unwrap_or_else(PoisonError::into_inner);
            *next += 1;
            *next
        };
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, tx);
        let message = json!({"id": id, "method": method, "params": params}).to_string();
        self.outgoing.send(message).expect("DevTools session open");
        let answer = wait::within(&format!("DevTools answering {method}"), rx)
            .await
            .expect("DevTools session open");
        assert!(
            answer.get("error").is_none(),
            "{method} failed: {}",
            answer["error"]
        );
        answer["result"].clone()
    }

    /// Evaluates `expression` in the page (promises awaited) and returns its value.
    pub async fn eval(&self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        if let Some(exception) = result.get("exceptionDetails") {
            panic!("script {expression:?} threw: {exception}");
        }
        result["result"]["value"].clone()
    }

    /// Navigates to `url` and waits for its load event.
    pub async fn goto(&self, url: &str) {
        self.call("Page.navigate", json!({"url": url})).await;
        self.wait_for(
            "document.readyState === 'complete'",
            &format!("{url} loading"),
        )
        .await;
    }

    /// Waits until `condition` (a script expression) is truthy in the page; the failure names
    /// `what` and shows the page's text and console.
    pub async fn wait_for(&self, condition: &str, what: &str) -> Value {
        let expression = format!(
            "(() => {{ try {{ return ({condition}) || null; }} catch (e) {{ return null; }} }})()"
        );
        wait::until(what, || async {
            let value = self.eval(&expression).await;
            if value.is_null() || value == json!(false) {
                Err(self.describe().await)
            } else {
                Ok(value)
            }
        })
        .await
    }

    /// The page's visible text (trimmed) and its console so far, for failure messages.
    pub async fn describe(&self) -> String {
        let text = self
            .eval("document.body ? document.body.innerText : ''")
            .await;
        let text: String = text
            .as_str()
            .unwrap_or_default()
            .chars()
            .take(3000)
            .collect();
        format!(
            "page text:\n{text}\nconsole:\n{}",
            self.console_lines().join("\n")
        )
    }

    /// Console messages and uncaught exceptions seen so far.
    pub fn console_lines(&self) -> Vec<String> {
        self.console
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Clicks the element `selector` names (it must exist).
    pub async fn click(&self, selector: &str) {
        let found = self
            .eval(&format!(
                "(() => {{ const el = document.querySelector({selector:?}); if (!el) return false; el.click(); return true; }})()"
            ))
            .await;
        assert_eq!(
            found,
            json!(true),
            "no element {selector} to click; {}",
            self.describe().await
        );
    }

    /// Sets the value of the input `selector` names, as typing would.
    pub async fn fill(&self, selector: &str, text: &str) {
        let found = self
            .eval(&format!(
                "(() => {{ const el = document.querySelector({selector:?}); if (!el) return false; \
                 el.value = {text:?}; el.dispatchEvent(new Event('input', {{bubbles: true}})); return true; }})()"
            ))
            .await;
        assert_eq!(
            found,
            json!(true),
            "no input {selector}; {}",
            self.describe().await
        );
    }

    /// Sets the viewport (CSS pixels) and whether the page prefers a dark colour scheme.
    pub async fn viewport(&self, width: u32, height: u32, dark: bool) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 700}),
        )
        .await;
        self.call(
            "Emulation.setEmulatedMedia",
            json!({"features": [{"name": "prefers-color-scheme", "value": if dark { "dark" } else { "light" }}]}),
        )
        .await;
    }

    /// A PNG of the whole page as laid out now, written to `path`.
    pub async fn screenshot(&self, path: &Path) {
        let result = self
            .call(
                "Page.captureScreenshot",
                json!({"format": "png", "captureBeyondViewport": true}),
            )
            .await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(result["data"].as_str().expect("screenshot data"))
            .expect("screenshot is base64");
        std::fs::write(path, bytes)
            .unwrap_or_else(|err| panic!("cannot write {}: {err}", path.display()));
    }
}

/// A console message or an uncaught exception as one line of text.
fn console_line(event: &Value) -> Option<String> {
    match event["method"].as_str()? {
        "Runtime.consoleAPICalled" => {
            let args: Vec<String> = event["params"]["args"]
                .as_array()?
                .iter()
                .map(|arg| {
                    arg["value"]
                        .as_str()
                        .map_or_else(|| arg["description"].to_string(), str::to_owned)
                })
                .collect();
            Some(format!(
                "console.{}: {}",
                event["params"]["type"].as_str().unwrap_or("log"),
                args.join(" ")
            ))
        }
        "Runtime.exceptionThrown" => Some(format!(
            "exception: {}",
            event["params"]["exceptionDetails"]
        )),
        "Log.entryAdded" => Some(format!("log: {}", event["params"]["entry"]["text"])),
        _ => None,
    }
}
