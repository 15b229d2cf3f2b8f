//! The store throughput bench's core, sized by its caller: `benches/store_throughput.rs` runs
//! it at [`Sizes::FULL`] (`cargo bench -p tendhost-store`), the unit test below at
//! [`Sizes::QUICK`] so CI notices when the bench breaks. Measures sustained output lines/s
//! through the group-committing writer, posted events/s, and the latency of writes that commit
//! before returning; [`Report`] prints one line per figure. It checks that every write it
//! timed is stored (a count that does not match panics, naming it).
//!
//! Only the store's public API is used. Not used by the daemon; no timing is asserted anywhere.

use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::{DB_FILE, JobRecord, NewEvent, Result, Store, StoreError};

/// How much the bench writes.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    pub lines: u64,
    pub jobs: u64,
    pub events: u64,
    pub sync_writes: u64,
    pub concurrent_appenders: u64,
}

impl Sizes {
    /// What `cargo bench` runs.
    pub const FULL: Sizes = Sizes {
        lines: 300_000,
        jobs: 16,
        events: 100_000,
        sync_writes: 2_000,
        concurrent_appenders: 32,
    };

    /// A small, checked pass (the CI smoke, and the bench binary without `--bench`).
    pub const QUICK: Sizes = Sizes {
        lines: 2_000,
        jobs: 4,
        events: 1_000,
        sync_writes: 50,
        concurrent_appenders: 4,
    };
}

/// A line about as long as apt's progress output.
const LINE: &str = "Get:42 http://deb.debian.org/debian bookworm/main amd64 libssl3 amd64 3.0.13-1~deb12u1 [2,025 kB]";

/// One printed figure.
#[derive(Debug)]
pub enum Figure {
    /// `n` writes in `elapsed`.
    Throughput {
        name: String,
        n: u64,
        elapsed: Duration,
    },
    /// One sample per write.
    Latency {
        name: &'static str,
        samples: Vec<Duration>,
    },
}

/// Everything one run measured, and what it stored.
#[derive(Debug)]
pub struct Report {
    /// In the order measured.
    pub figures: Vec<Figure>,
    /// Output lines read back per job: the one job, then each interleaved job.
    pub stored_lines: Vec<(String, u64)>,
    /// Events the paired phase added to the log (`next_seq` after minus before).
    pub events_posted: u64,
    /// The database file's size after `close`.
    pub db_bytes: u64,
}

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

async fn stored_lines(store: &Store, job_id: &str) -> Result<u64> {
    let mut n_lines = 0;
    loop {
        let page = store.job_output(job_id, n_lines, 10_000).await?;
        if page.is_empty() {
            return Ok(u64::try_from(n_lines).expect("a count is positive"));
        }
        n_lines += i64::try_from(page.len()).expect("a page fits i64");
    }
}

/// Reads back `job_id`'s output and checks it holds `expected` lines.
async fn check_lines(
    store: &Store,
    job_id: &str,
    expected: u64,
    report: &mut Report,
) -> Result<()> {
    let n_lines = stored_lines(store, job_id).await?;
    assert_eq!(n_lines, expected, "output lines stored for job {job_id}");
    report.stored_lines.push((job_id.to_owned(), n_lines));
    Ok(())
}

fn throughput(name: impl Into<String>, n: u64, elapsed: Duration) -> Figure {
    Figure::Throughput {
        name: name.into(),
        n,
        elapsed,
    }
}

fn as_i64(n: u64) -> i64 {
    i64::try_from(n).expect("bench counts fit i64")
}

/// Runs the bench at `sizes` with its database in `data_dir` (a fresh directory); must be
/// called inside a multi-threaded Tokio runtime.
pub async fn run(sizes: Sizes, data_dir: &Path) -> Result<Report> {
    let store = Store::open(data_dir)?;
    let mut report = Report {
        figures: Vec::new(),
        stored_lines: Vec::new(),
        events_posted: 0,
        db_bytes: 0,
    };

    // One job logging as fast as it can.
    store.insert_job(job("one")).await?;
    let started = Instant::now();
    for _ in 0..sizes.lines {
        store.log_line("one", "stdout", 1, LINE)?;
    }
    store.flush().await?;
    let figure = throughput("log_line, 1 job, flushed", sizes.lines, started.elapsed());
    report.figures.push(figure);
    check_lines(&store, "one", sizes.lines, &mut report).await?;

    // Many jobs interleaved, each from its own task.
    let job_ids: Vec<String> = (0..sizes.jobs)
        .map(|job_idx| format!("many-{job_idx}"))
        .collect();
    for job_id in &job_ids {
        store.insert_job(job(job_id)).await?;
    }
    let lines_per_job = sizes.lines / sizes.jobs.max(1);
    let started = Instant::now();
    let tasks: Vec<_> = job_ids
        .iter()
        .map(|job_id| {
            let (store, job_id) = (store.clone(), job_id.clone());
            tokio::spawn(async move {
                for line_idx in 0..lines_per_job {
                    store.log_line(&job_id, "stdout", 1, LINE)?;
                    if line_idx % 256 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                Ok::<_, StoreError>(())
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a logging task panicked")?;
    }
    store.flush().await?;
    let figure = throughput(
        format!("log_line, {} jobs interleaved, flushed", sizes.jobs),
        lines_per_job * sizes.jobs,
        started.elapsed(),
    );
    report.figures.push(figure);
    for job_id in &job_ids {
        check_lines(&store, job_id, lines_per_job, &mut report).await?;
    }

    // What the daemon does per output line: the line plus its `job_output` event.
    store.insert_job(job("paired")).await?;
    let next_seq = store.next_seq().await?;
    let started = Instant::now();
    for line_idx in 0..sizes.events {
        store.log_line("paired", "stdout", 1, LINE)?;
        store.post_event(output_event("paired", line_idx))?;
    }
    store.flush().await?;
    let figure = throughput(
        "log_line + post_event pairs, flushed",
        sizes.events,
        started.elapsed(),
    );
    report.figures.push(figure);
    let events_posted = store.next_seq().await? - next_seq;
    assert_eq!(events_posted, as_i64(sizes.events), "events posted");
    report.events_posted = u64::try_from(events_posted).expect("checked above");
    check_lines(&store, "paired", sizes.events, &mut report).await?;

    // Writes that commit before returning, one after the other: one fsync each.
    let mut samples = Vec::new();
    for line_idx in 0..sizes.sync_writes {
        let started = Instant::now();
        store.append_event(output_event("x", line_idx)).await?;
        samples.push(started.elapsed());
    }
    report.figures.push(Figure::Latency {
        name: "append_event, sequential (commit each)",
        samples,
    });
    let mut samples = Vec::new();
    for write_idx in 0..sizes.sync_writes {
        let state = if write_idx % 2 == 0 {
            "running"
        } else {
            "queued"
        };
        let started = Instant::now();
        store.set_job_state("one", state).await?;
        samples.push(started.elapsed());
    }
    report.figures.push(Figure::Latency {
        name: "set_job_state, sequential (commit each)",
        samples,
    });

    // Many tasks each appending and waiting: their commits share groups.
    let per_task = sizes.sync_writes;
    let next_seq = store.next_seq().await?;
    let started = Instant::now();
    let tasks: Vec<_> = (0..sizes.concurrent_appenders)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                for line_idx in 0..per_task {
                    store.append_event(output_event("y", line_idx)).await?;
                }
                Ok::<_, StoreError>(())
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("an appending task panicked")?;
    }
    let figure = throughput(
        format!(
            "append_event, {} concurrent tasks",
            sizes.concurrent_appenders
        ),
        per_task * sizes.concurrent_appenders,
        started.elapsed(),
    );
    report.figures.push(figure);
    assert_eq!(
        store.next_seq().await? - next_seq,
        as_i64(per_task * sizes.concurrent_appenders),
        "events appended by the concurrent tasks"
    );

    store.close().await?;
    let db_path = data_dir.join(DB_FILE);
    report.db_bytes = std::fs::metadata(&db_path)
        .map_err(|source| StoreError::DataDir {
            path: db_path,
            source,
        })?
        .len();
    Ok(report)
}

fn per_second(n: u64, elapsed: Duration) -> f64 {
    f64::from(u32::try_from(n).expect("bench counts fit u32")) / elapsed.as_secs_f64()
}

impl fmt::Display for Figure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Figure::Throughput { name, n, elapsed } => write!(
                f,
                "{name:<48} {n:>8} in {:>8.3} s = {:>10.0} /s",
                elapsed.as_secs_f64(),
                per_second(*n, *elapsed)
            ),
            Figure::Latency { name, samples } => {
                let mut samples = samples.clone();
                samples.sort();
                if samples.is_empty() {
                    return write!(f, "{name:<48} no samples");
                }
                let at = |q: usize| samples[(samples.len() * q / 100).min(samples.len() - 1)];
                let total: Duration = samples.iter().sum();
                let n = u32::try_from(samples.len()).expect("few samples");
                write!(
                    f,
                    "{name:<48} mean {:>7.3} ms  p50 {:>7.3} ms  p99 {:>7.3} ms",
                    (total / n).as_secs_f64() * 1e3,
                    at(50).as_secs_f64() * 1e3,
                    at(99).as_secs_f64() * 1e3
                )
            }
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for figure in &self.figures {
            writeln!(f, "{figure}")?;
        }
        writeln!(
            f,
            "database size at the end: {} MiB",
            self.db_bytes / 1_048_576
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::bench::{Figure, Sizes, run};

    /// The smoke of `benches/store_throughput.rs` that CI runs: the same code at
    /// [`Sizes::QUICK`]. Checks what was stored, never how fast.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn smoke_store_throughput_bench() {
        let dir = tempfile::tempdir().unwrap();
        let sizes = Sizes::QUICK;
        let report = run(sizes, dir.path()).await.unwrap();
        let lines_per_job = sizes.lines / sizes.jobs;
        let mut expected = vec![("one".to_owned(), sizes.lines)];
        expected.extend((0..sizes.jobs).map(|idx| (format!("many-{idx}"), lines_per_job)));
        expected.push(("paired".to_owned(), sizes.events));
        assert_eq!(report.stored_lines, expected);
        assert_eq!(report.events_posted, sizes.events);
        assert!(report.db_bytes > 0, "the database file was written");
        let latency_samples: Vec<usize> = report
            .figures
            .iter()
            .filter_map(|figure| match figure {
                Figure::Latency { samples, .. } => Some(samples.len()),
                Figure::Throughput { .. } => None,
            })
            .collect();
        let sync_writes = usize::try_from(sizes.sync_writes).unwrap();
        assert_eq!(latency_samples, [sync_writes, sync_writes]);
        let text = report.to_string();
        assert_eq!(text.lines().count(), 7, "six figures and the size:\n{text}");
        assert!(text.contains("append_event, 4 concurrent tasks"), "{text}");
    }
}
