//! Store throughput bench (`cargo bench -p tendhost-store`): sustained output lines/s through
//! the group-committing writer, posted events/s, and the latency of writes that commit before
//! returning. Prints one line per figure; the figures go in `docs/benchmarks.md` ("Store").
//! Without `--bench` (as `cargo test --all-targets` runs it) it does a small, checked pass.
//! The database lives in a temp dir (`TMPDIR`); no timing is asserted anywhere.

use std::time::{Duration, Instant};

use serde_json::json;
use tendhost_store::{JobRecord, NewEvent, Store};

struct Sizes {
    lines: u64,
    jobs: u64,
    events: u64,
    sync_writes: u64,
    concurrent_appenders: u64,
}

const FULL: Sizes = Sizes {
    lines: 300_000,
    jobs: 16,
    events: 100_000,
    sync_writes: 2_000,
    concurrent_appenders: 32,
};

const QUICK: Sizes = Sizes {
    lines: 2_000,
    jobs: 4,
    events: 1_000,
    sync_writes: 50,
    concurrent_appenders: 4,
};

/// A line about as long as apt's progress output.
const LINE: &str = "Get:42 http://deb.debian.org/debian bookworm/main amd64 libssl3 amd64 3.0.13-1~deb12u1 [2,025 kB]";

fn job(id: &str) -> JobRecord {
    JobRecord {
        id: id.to_owned(),
        host: "bench-host".to_owned(),
        kind: "update".to_owned(),
        params: json!({}),
        state: "running".to_owned(),
        created_at_ms: 0,
        started_at_ms: Some(0),
        finished_at_ms: None,
        outcome: None,
        packages_changed: json!([]),
    }
}

fn output_event(job_id: &str, line_idx: u64) -> NewEvent {
    NewEvent {
        time_ms: 1,
        kind: "job_output".to_owned(),
        host: Some("bench-host".to_owned()),
        body: json!({"job_id": job_id, "stream": "stdout", "line": LINE, "n": line_idx}),
        correlation: line_idx,
    }
}

fn per_second(n: u64, elapsed: Duration) -> f64 {
    f64::from(u32::try_from(n).expect("bench counts fit u32")) / elapsed.as_secs_f64()
}

fn report(name: &str, n: u64, elapsed: Duration) {
    println!(
        "{name:<48} {n:>8} in {:>8.3} s = {:>10.0} /s",
        elapsed.as_secs_f64(),
        per_second(n, elapsed)
    );
}

fn report_latency(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |q: usize| samples[(samples.len() * q / 100).min(samples.len() - 1)];
    let total: Duration = samples.iter().sum();
    let n = u32::try_from(samples.len()).expect("few samples");
    println!(
        "{name:<48} mean {:>7.3} ms  p50 {:>7.3} ms  p99 {:>7.3} ms",
        (total / n).as_secs_f64() * 1e3,
        at(50).as_secs_f64() * 1e3,
        at(99).as_secs_f64() * 1e3
    );
}

async fn stored_lines(store: &Store, job_id: &str) -> u64 {
    let mut n_lines = 0;
    loop {
        let page = store.job_output(job_id, n_lines, 10_000).await.unwrap();
        if page.is_empty() {
            return u64::try_from(n_lines).unwrap();
        }
        n_lines += i64::try_from(page.len()).unwrap();
    }
}

async fn run(sizes: &Sizes) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();

    // One job logging as fast as it can.
    store.insert_job(job("one")).await.unwrap();
    let started = Instant::now();
    for _ in 0..sizes.lines {
        store.log_line("one", "stdout", 1, LINE).unwrap();
    }
    store.flush().await.unwrap();
    report("log_line, 1 job, flushed", sizes.lines, started.elapsed());
    assert_eq!(stored_lines(&store, "one").await, sizes.lines);

    // Many jobs interleaved, each from its own task.
    let job_ids: Vec<String> = (0..sizes.jobs)
        .map(|job_idx| format!("many-{job_idx}"))
        .collect();
    for job_id in &job_ids {
        store.insert_job(job(job_id)).await.unwrap();
    }
    let lines_per_job = sizes.lines / sizes.jobs;
    let started = Instant::now();
    let tasks: Vec<_> = job_ids
        .iter()
        .map(|job_id| {
            let (store, job_id) = (store.clone(), job_id.clone());
            tokio::spawn(async move {
                for line_idx in 0..lines_per_job {
                    store.log_line(&job_id, "stdout", 1, LINE).unwrap();
                    if line_idx % 256 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    store.flush().await.unwrap();
    report(
        &format!("log_line, {} jobs interleaved, flushed", sizes.jobs),
        lines_per_job * sizes.jobs,
        started.elapsed(),
    );
    for job_id in &job_ids {
        assert_eq!(stored_lines(&store, job_id).await, lines_per_job);
    }

    // What the daemon does per output line: the line plus its `job_output` event.
    store.insert_job(job("paired")).await.unwrap();
    let next_seq = store.next_seq().await.unwrap();
    let started = Instant::now();
    for line_idx in 0..sizes.events {
        store.log_line("paired", "stdout", 1, LINE).unwrap();
        store.post_event(output_event("paired", line_idx)).unwrap();
    }
    store.flush().await.unwrap();
    report(
        "log_line + post_event pairs, flushed",
        sizes.events,
        started.elapsed(),
    );
    assert_eq!(
        store.next_seq().await.unwrap() - next_seq,
        i64::try_from(sizes.events).unwrap()
    );

    // Writes that commit before returning, one after the other: one fsync each.
    let mut samples = Vec::new();
    for line_idx in 0..sizes.sync_writes {
        let started = Instant::now();
        store
            .append_event(output_event("x", line_idx))
            .await
            .unwrap();
        samples.push(started.elapsed());
    }
    report_latency("append_event, sequential (commit each)", samples);
    let mut samples = Vec::new();
    for write_idx in 0..sizes.sync_writes {
        let state = if write_idx % 2 == 0 {
            "running"
        } else {
            "queued"
        };
        let started = Instant::now();
        store.set_job_state("one", state).await.unwrap();
        samples.push(started.elapsed());
    }
    report_latency("set_job_state, sequential (commit each)", samples);

    // Many tasks each appending and waiting: their commits share groups.
    let per_task = sizes.sync_writes;
    let started = Instant::now();
    let tasks: Vec<_> = (0..sizes.concurrent_appenders)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                for line_idx in 0..per_task {
                    store
                        .append_event(output_event("y", line_idx))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    report(
        &format!(
            "append_event, {} concurrent tasks",
            sizes.concurrent_appenders
        ),
        per_task * sizes.concurrent_appenders,
        started.elapsed(),
    );

    store.close().await.unwrap();
    let db_bytes = std::fs::metadata(dir.path().join(tendhost_store::DB_FILE))
        .unwrap()
        .len();
    println!("database size at the end: {} MiB", db_bytes / 1_048_576);
}

fn main() {
    let full = std::env::args().any(|arg| arg == "--bench");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(if full { &FULL } else { &QUICK }));
}
