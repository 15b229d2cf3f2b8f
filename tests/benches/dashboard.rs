//! Benchmark: the dashboard with 10,000 configured hosts. The real daemon (in-process, real
//! HTTP, auth off on loopback) is given 10,000 `[[host]]` tables at TEST-NET addresses that
//! are never contacted (no check at start, a 30-day interval). Measured: the latency of
//! `GET /fleet/summary` and of the first page of `GET /hosts` (name order, and sorted by
//! pending updates), with `GET /health` as the same-run baseline; then headless Chromium's
//! navigation timing for the overview and the host list: the load event, and the page's own
//! `tendhost:shown:*` mark (its data drawn). Prints Markdown tables for docs/benchmarks.md.
//!
//! Run: `cargo bench -p tendhost-tests --bench dashboard` (optional argument: hosts, default
//! 10000).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde_json::Value;
use tendhost_tests::browser::Browser;
use tendhost_tests::daemon::spawn_app;

const ROUNDS: usize = 50;
const PAGE_LOADS: usize = 10;

fn main() {
    let n_hosts: usize = std::env::args()
        .skip(1)
        .find(|arg| !arg.starts_with('-'))
        .and_then(|arg| arg.parse().ok())
        .unwrap_or(10_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(bench(n_hosts));
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(
        |_| "unknown".to_owned(),
        |text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        },
    )
}

fn config(n_hosts: usize) -> String {
    let mut config = String::from(
        "[daemon]\nlog_level = \"warn\"\ncheck_on_start = false\n\n[defaults]\ncheck_interval = \"30d\"\n",
    );
    for idx in 0..n_hosts {
        let _ = write!(
            config,
            "\n[[host]]\nname = \"host-{idx:05}\"\naddr = \"192.0.2.{}\"\ntags = [\"{}\"]\n",
            idx % 250 + 1,
            ["web", "db", "cache", "batch"][idx % 4]
        );
    }
    config
}

/// Median, p90, min and max, in milliseconds.
fn stats(mut samples: Vec<Duration>) -> (f64, f64, f64, f64) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    // Nearest rank: the sample `percent` of the way through the sorted list.
    let at = |percent: usize| ms(samples[(samples.len() - 1) * percent / 100]);
    (
        at(50),
        at(90),
        ms(samples[0]),
        ms(samples[samples.len() - 1]),
    )
}

async fn bench(n_hosts: usize) {
    println!("load at start: {}", loadavg());
    let started = Instant::now();
    let app = spawn_app(&config(n_hosts)).await;
    // Ready when every host is listed.
    loop {
        let list: Value = app
            .client
            .get(app.url("/hosts?per_page=1"))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map(reqwest::Response::json)
            .expect("GET /hosts")
            .await
            .expect("JSON");
        if list["pagination"]["total_items"] == n_hosts {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "daemon up with {n_hosts} hosts in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    println!();
    println!("| request ({n_hosts} hosts) | runs | median | p90 | min | max | median / health |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    let mut health_median = 0.0;
    for path in [
        "/health",
        "/fleet/summary",
        "/hosts?page=1&per_page=50",
        "/hosts?page=1&per_page=50&sort=-pending",
    ] {
        let url = app.url(path);
        for _ in 0..5 {
            app.client
                .get(&url)
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
        }
        let mut samples = Vec::with_capacity(ROUNDS);
        let mut size = 0;
        for _ in 0..ROUNDS {
            let start = Instant::now();
            let response = app.client.get(&url).send().await.unwrap();
            assert!(
                response.status().is_success(),
                "{path}: {}",
                response.status()
            );
            size = response.bytes().await.unwrap().len();
            samples.push(start.elapsed());
        }
        let (median, p90, min, max) = stats(samples);
        if path == "/health" {
            health_median = median;
        }
        println!(
            "| `GET {path}` ({size} bytes) | {ROUNDS} | {median:.2} ms | {p90:.2} ms | {min:.2} ms | {max:.2} ms | {:.1}x |",
            median / health_median
        );
    }

    let browser = Browser::launch().await;
    let page = &browser.page;
    page.viewport(1280, 900, false).await;
    println!();
    println!(
        "| page ({n_hosts} hosts, headless Chromium) | loads | load event, median | data shown, median | data shown, max |"
    );
    println!("| --- | --- | --- | --- | --- |");
    for (route, mark) in [("#/", "overview"), ("#/hosts", "hosts")] {
        let mut loads = Vec::new();
        let mut shown = Vec::new();
        for _ in 0..PAGE_LOADS {
            page.goto("about:blank").await;
            page.goto(&app.url(&format!("/ui/{route}"))).await;
            let timing = page
                .wait_for(
                    &format!(
                        "(() => {{ const m = performance.getEntriesByName('tendhost:shown:{mark}')[0]; \
                         const n = performance.getEntriesByType('navigation')[0]; \
                         return m && n && n.loadEventEnd > 0 ? [n.loadEventEnd, m.startTime] : null; }})()"
                    ),
                    &format!("{route} drawn"),
                )
                .await;
            let ms = |v: &Value| Duration::from_secs_f64(v.as_f64().unwrap() / 1000.0);
            loads.push(ms(&timing[0]));
            shown.push(ms(&timing[1]));
        }
        let (load, _, _, _) = stats(loads);
        let (data, _, _, data_max) = stats(shown);
        println!(
            "| `/ui/{route}` | {PAGE_LOADS} | {load:.0} ms | {data:.0} ms | {data_max:.0} ms |"
        );
    }
    println!();
    println!("load at end: {}", loadavg());
    drop(browser);
    app.stop().await.unwrap();
}
