//! The `dashboard` bench's core: the dashboard with many configured hosts (10,000 in the full
//! run). The real daemon (in-process, real HTTP, auth off on loopback) is given `n_hosts`
//! `[[host]]` tables at TEST-NET addresses that are never contacted (no check at start, a
//! 30-day interval). Measured: the latency of `GET /fleet/summary` and of the first page of
//! `GET /hosts` (name order, and sorted by pending updates), with `GET /health` as the same-run
//! baseline; then headless Chromium's navigation timing for the overview and the host list:
//! the load event, and the page's own `tendhost:shown:*` mark (its data drawn). Prints
//! Markdown tables for docs/benchmarks.md as it goes and returns what it saw ([`Outcome`]).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde_json::Value;
use tendhost_api::hosts::HostListQuery;

use crate::bench::loadavg;
use crate::browser::Browser;
use crate::daemon::spawn_app;
use crate::http::api;

/// How much the bench does.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    pub n_hosts: usize,
    /// Timed requests per path (after 5 untimed ones).
    pub rounds: usize,
    /// Timed loads per page.
    pub page_loads: usize,
}

impl Sizes {
    /// What `cargo bench` runs with `n_hosts` hosts (10,000 unless told).
    pub fn full(n_hosts: usize) -> Sizes {
        Sizes {
            n_hosts,
            rounds: 50,
            page_loads: 10,
        }
    }
}

/// What one run saw: each timed request's path, answer size and runs, each page's route and
/// loads, and the host count the daemon reported through the typed client.
#[derive(Debug)]
pub struct Outcome {
    pub requests: Vec<(&'static str, usize, usize)>,
    pub pages: Vec<(&'static str, usize)>,
    /// `GET /fleet/summary`'s `n_hosts` after the timed requests.
    pub summary_hosts: u64,
    /// Hosts on the first page of `GET /hosts?per_page=50`.
    pub first_page_hosts: usize,
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

/// Runs the bench at `sizes` (`rounds` and `page_loads` at least 1).
pub async fn run(sizes: Sizes) -> Outcome {
    let Sizes {
        n_hosts,
        rounds,
        page_loads,
    } = sizes;
    assert!(
        rounds > 0 && page_loads > 0,
        "at least one sample: {sizes:?}"
    );
    println!("load at start: {}", loadavg());
    let started = Instant::now();
    let app = spawn_app(&config(n_hosts)).await;
    let client = api(&app.base_url);
    // Ready when every host is listed.
    let one_per_page = HostListQuery {
        per_page: Some(1),
        ..HostListQuery::default()
    };
    loop {
        let list = client.list_hosts(&one_per_page).await.expect("GET /hosts");
        if list.pagination.total_items == u64::try_from(n_hosts).expect("a count") {
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
    let mut requests = Vec::new();
    let mut health_median = 0.0;
    for path in [
        "/health",
        "/fleet/summary",
        "/hosts?page=1&per_page=50",
        "/hosts?page=1&per_page=50&sort=-pending",
    ] {
        // Raw HTTP, not the typed client: the figures are the wire round trip and the size of
        // the answer, which the typed client (it decodes the body) cannot give.
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
        let mut samples = Vec::with_capacity(rounds);
        let mut size = 0;
        for _ in 0..rounds {
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
            "| `GET {path}` ({size} bytes) | {rounds} | {median:.2} ms | {p90:.2} ms | {min:.2} ms | {max:.2} ms | {:.1}x |",
            median / health_median
        );
        requests.push((path, size, rounds));
    }
    let summary_hosts = client
        .fleet_summary()
        .await
        .expect("GET /fleet/summary")
        .n_hosts;
    let first_page_hosts = client
        .list_hosts(&HostListQuery {
            per_page: Some(50),
            ..HostListQuery::default()
        })
        .await
        .expect("GET /hosts")
        .data
        .len();

    let browser = Browser::launch().await;
    let page = &browser.page;
    page.viewport(1280, 900, false).await;
    println!();
    println!(
        "| page ({n_hosts} hosts, headless Chromium) | loads | load event, median | data shown, median | data shown, max |"
    );
    println!("| --- | --- | --- | --- | --- |");
    let mut pages = Vec::new();
    for (route, mark) in [("#/", "overview"), ("#/hosts", "hosts")] {
        let mut loads = Vec::new();
        let mut shown = Vec::new();
        for _ in 0..page_loads {
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
            "| `/ui/{route}` | {page_loads} | {load:.0} ms | {data:.0} ms | {data_max:.0} ms |"
        );
        pages.push((route, page_loads));
    }
    println!();
    println!("load at end: {}", loadavg());
    drop(browser);
    app.stop().await.unwrap();
    Outcome {
        requests,
        pages,
        summary_hosts,
        first_page_hosts,
    }
}
