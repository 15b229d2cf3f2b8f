//! Jobs and their output log: creating, starting, completing and listing jobs, the output line
//! queue (group-committed by the writer thread), and recovery of jobs a stopped daemon left
//! `queued` or `running`. The job state machine itself lives in the core crate, not here: the
//! store records any state it is given.

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::error::{Result, StoreError};
use crate::records::{
    JobCompletion, JobFilter, JobRecord, Listed, OutputLineRecord, Page, job_state,
};
use crate::sql::{count, json_column, json_text, opt_json_column, opt_json_text, total};
use crate::{Op, Store};

const JOB_COLUMNS: &str = "id, host, kind, params, state, created_at_ms, started_at_ms, \
                           finished_at_ms, outcome, packages_changed";

/// An output line queued for the writer, before it gets its `idx`.
pub(crate) struct LineOp {
    pub(crate) job_id: String,
    pub(crate) stream: String,
    pub(crate) time_ms: i64,
    pub(crate) line: String,
}

/// What [`insert`] does when the job's id is already stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnConflict {
    /// Keep the stored job (the caller reports a duplicate).
    Ignore,
    /// Replace every column with the given record.
    Replace,
}

/// Inserts `job`; returns the rows written (0: the id existed and `on_conflict` is `Ignore`).
pub(crate) fn insert(
    conn: &Connection,
    job: &JobRecord,
    on_conflict: OnConflict,
) -> rusqlite::Result<usize> {
    let conflict = match on_conflict {
        OnConflict::Ignore => "DO NOTHING",
        OnConflict::Replace => {
            "DO UPDATE SET host = excluded.host, kind = excluded.kind, params = excluded.params,
                 state = excluded.state, created_at_ms = excluded.created_at_ms,
                 started_at_ms = excluded.started_at_ms, finished_at_ms = excluded.finished_at_ms,
                 outcome = excluded.outcome, packages_changed = excluded.packages_changed"
        }
    };
    conn.prepare_cached(&format!(
        "INSERT INTO jobs ({JOB_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (id) {conflict}"
    ))?
    .execute(params![
        job.id,
        job.host,
        job.kind,
        json_text(&job.params),
        job.state,
        job.created_at_ms,
        job.started_at_ms,
        job.finished_at_ms,
        opt_json_text(job.outcome.as_ref()),
        json_text(&job.packages_changed),
    ])
}

fn job_from_row(row: &Row<'_>) -> rusqlite::Result<JobRecord> {
    Ok(JobRecord {
        id: row.get(0)?,
        host: row.get(1)?,
        kind: row.get(2)?,
        params: json_column(row, 3)?,
        state: row.get(4)?,
        created_at_ms: row.get(5)?,
        started_at_ms: row.get(6)?,
        finished_at_ms: row.get(7)?,
        outcome: opt_json_column(row, 8)?,
        packages_changed: json_column(row, 9)?,
    })
}

fn get(conn: &Connection, id: &str) -> Result<Option<JobRecord>> {
    let job = conn
        .prepare_cached(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"))?
        .query_row([id], job_from_row)
        .optional()?;
    Ok(job)
}

fn not_found(id: &str) -> StoreError {
    StoreError::NotFound {
        what: "job",
        key: id.to_owned(),
    }
}

/// Runs an `UPDATE ... WHERE id = ?` built by `update` and returns the job as it now is.
fn update(conn: &Connection, id: &str, changed: usize) -> Result<JobRecord> {
    if changed == 0 {
        return Err(not_found(id));
    }
    get(conn, id)?.ok_or_else(|| not_found(id))
}

#[cfg(test)]
pub(crate) fn next_line_idx(conn: &Connection, job_id: &str) -> rusqlite::Result<i64> {
    Ok(line_position(conn, job_id)?.0)
}

/// Where a job's stored output stands: the next line index, the bytes of the lines stored so
/// far, and whether its last line is the truncation marker.
pub(crate) fn line_position(conn: &Connection, job_id: &str) -> rusqlite::Result<(i64, u64, bool)> {
    let (next_idx, n_bytes) = conn
        .prepare_cached(
            "SELECT COALESCE(MAX(idx) + 1, 0), COALESCE(SUM(LENGTH(CAST(line AS BLOB))), 0)
             FROM job_output WHERE job_id = ?1",
        )?
        .query_row([job_id], |row| {
            Ok((
                row.get(0)?,
                u64::try_from(row.get::<_, i64>(1)?).unwrap_or(0),
            ))
        })?;
    let last: Option<String> = conn
        .prepare_cached("SELECT line FROM job_output WHERE job_id = ?1 ORDER BY idx DESC LIMIT 1")?
        .query_row([job_id], |row| row.get(0))
        .optional()?;
    let truncated = last.is_some_and(|line| line.starts_with(crate::LOG_TRUNCATED));
    Ok((next_idx, n_bytes, truncated))
}

pub(crate) fn insert_line(conn: &Connection, line: &LineOp, idx: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO job_output (job_id, idx, stream, time_ms, line) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        line.job_id,
        idx,
        line.stream,
        line.time_ms,
        line.line
    ])?;
    Ok(())
}

/// SQL condition for a job that has ended (anything but queued or running).
const FINISHED_BEFORE: &str =
    "state NOT IN ('queued', 'running') AND COALESCE(finished_at_ms, created_at_ms) < ?1";

/// Deletes finished jobs that ended before `older_than_ms`; returns (jobs, output lines).
pub(crate) fn prune(conn: &Connection, older_than_ms: i64) -> Result<(u64, u64)> {
    let n_lines = conn.execute(
        &format!(
            "DELETE FROM job_output WHERE job_id IN (SELECT id FROM jobs WHERE {FINISHED_BEFORE})"
        ),
        [older_than_ms],
    )?;
    let n_jobs = conn.execute(
        &format!("DELETE FROM jobs WHERE {FINISHED_BEFORE}"),
        [older_than_ms],
    )?;
    Ok((count(n_jobs), count(n_lines)))
}

impl Store {
    /// Stores a new job; [`StoreError::Duplicate`] if its id exists.
    pub async fn insert_job(&self, job: JobRecord) -> Result<()> {
        self.call(move |writer| {
            let n_inserted = insert(&writer.conn, &job, OnConflict::Ignore)?;
            if n_inserted == 0 {
                return Err(StoreError::Duplicate {
                    what: "job",
                    key: job.id,
                });
            }
            Ok(())
        })
        .await
    }

    pub async fn job(&self, id: &str) -> Result<Option<JobRecord>> {
        let id = id.to_owned();
        self.read(move |conn: &Connection| get(conn, &id)).await
    }

    /// Jobs matching `filter`, newest first, one page of them, with the total count.
    pub async fn list_jobs(&self, filter: JobFilter, page: Page) -> Result<Listed<JobRecord>> {
        self.read(move |conn: &Connection| {
            let condition = "(?1 IS NULL OR host = ?1) AND (?2 IS NULL OR state = ?2) \
                             AND (?3 IS NULL OR kind = ?3)";
            let total_jobs: i64 = conn
                .prepare_cached(&format!("SELECT COUNT(*) FROM jobs WHERE {condition}"))?
                .query_row(params![filter.host, filter.state, filter.kind], |row| {
                    row.get(0)
                })?;
            let items = conn
                .prepare_cached(&format!(
                    "SELECT {JOB_COLUMNS} FROM jobs WHERE {condition}
                     ORDER BY created_at_ms DESC, id DESC LIMIT ?4 OFFSET ?5"
                ))?
                .query_map(
                    params![
                        filter.host,
                        filter.state,
                        filter.kind,
                        page.limit,
                        page.offset
                    ],
                    job_from_row,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Listed {
                items,
                total: total(total_jobs),
            })
        })
        .await
    }

    /// Sets the job `running` with its start time; returns the job as stored.
    pub async fn start_job(&self, id: &str, started_at_ms: i64) -> Result<JobRecord> {
        let id = id.to_owned();
        self.call(move |writer| {
            let changed = writer.conn.execute(
                "UPDATE jobs SET state = ?2, started_at_ms = ?3 WHERE id = ?1",
                params![id, job_state::RUNNING, started_at_ms],
            )?;
            update(&writer.conn, &id, changed)
        })
        .await
    }

    /// Sets the job's state, nothing else; returns the job as stored.
    pub async fn set_job_state(&self, id: &str, state: &str) -> Result<JobRecord> {
        let (id, state) = (id.to_owned(), state.to_owned());
        self.call(move |writer| {
            let changed = writer.conn.execute(
                "UPDATE jobs SET state = ?2 WHERE id = ?1",
                params![id, state],
            )?;
            update(&writer.conn, &id, changed)
        })
        .await
    }

    /// Records the end of a job (also of one recovery marked `interrupted`, when the host shows
    /// it did finish). Output lines logged before this call are committed with or before it.
    pub async fn complete_job(&self, id: &str, completion: JobCompletion) -> Result<JobRecord> {
        let id = id.to_owned();
        self.call(move |writer| {
            let changed = writer.conn.execute(
                "UPDATE jobs SET state = ?2, finished_at_ms = ?3, outcome = ?4,
                                 packages_changed = ?5
                 WHERE id = ?1",
                params![
                    id,
                    completion.state,
                    completion.finished_at_ms,
                    opt_json_text(completion.outcome.as_ref()),
                    json_text(&completion.packages_changed),
                ],
            )?;
            writer.forget_line_idx(Some(&id));
            update(&writer.conn, &id, changed)
        })
        .await
    }

    /// Recovery at start: every job left `queued` or `running` becomes `interrupted`, finished
    /// at `now_ms`. Returns those jobs (oldest first) so their hosts can be re-checked.
    pub async fn mark_running_interrupted(&self, now_ms: i64) -> Result<Vec<JobRecord>> {
        self.call(move |writer| {
            let mut jobs = writer
                .conn
                .prepare(&format!(
                    "UPDATE jobs SET state = ?1, finished_at_ms = ?2 WHERE state IN (?3, ?4)
                     RETURNING {JOB_COLUMNS}"
                ))?
                .query_map(
                    params![
                        job_state::INTERRUPTED,
                        now_ms,
                        job_state::QUEUED,
                        job_state::RUNNING
                    ],
                    job_from_row,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            jobs.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
            Ok(jobs)
        })
        .await
    }

    /// Queues one output line of job `job_id` without waiting; the writer gives it the job's
    /// next `idx` and commits it with others. A line for an unknown job is dropped and logged.
    /// Use [`Store::flush`] to wait until queued lines are on disk.
    pub fn log_line(&self, job_id: &str, stream: &str, time_ms: i64, line: &str) -> Result<()> {
        self.send(Op::Line(LineOp {
            job_id: job_id.to_owned(),
            stream: stream.to_owned(),
            time_ms,
            line: line.to_owned(),
        }))
    }

    /// Up to `limit` committed output lines of a job with `idx >= from_idx`, in order.
    pub async fn job_output(
        &self,
        job_id: &str,
        from_idx: i64,
        limit: u32,
    ) -> Result<Vec<OutputLineRecord>> {
        let job_id = job_id.to_owned();
        self.read(move |conn: &Connection| {
            let lines = conn
                .prepare_cached(
                    "SELECT job_id, idx, stream, time_ms, line FROM job_output
                     WHERE job_id = ?1 AND idx >= ?2 ORDER BY idx LIMIT ?3",
                )?
                .query_map(params![job_id, from_idx, limit], |row| {
                    Ok(OutputLineRecord {
                        job_id: row.get(0)?,
                        idx: row.get(1)?,
                        stream: row.get(2)?,
                        time_ms: row.get(3)?,
                        line: row.get(4)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(lines)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::records::{JobCompletion, JobFilter, JobRecord, OutputLineRecord, Page};
    use crate::testing::{job, reopen_after_drop};
    use crate::{Store, StoreError};

    fn page(offset: u32, limit: u32) -> Page {
        Page { offset, limit }
    }

    #[tokio::test]
    async fn job_round_trips_through_its_life_and_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let queued = job("j1", "web-1", "queued", 1_000);
        store.insert_job(queued.clone()).await.unwrap();
        assert_eq!(store.job("j1").await.unwrap(), Some(queued.clone()));
        assert_eq!(store.job("nope").await.unwrap(), None);

        let running = store.start_job("j1", 1_100).await.unwrap();
        assert_eq!(
            (running.state.as_str(), running.started_at_ms),
            ("running", Some(1_100))
        );

        store
            .log_line("j1", "stdout", 1_200, "Reading package lists...")
            .unwrap();
        store
            .log_line("j1", "stderr", 1_201, "W: something ünïcode")
            .unwrap();
        store.log_line("j1", "stdout", 1_202, "").unwrap();
        let completion = JobCompletion {
            state: "succeeded".to_owned(),
            finished_at_ms: 1_300,
            outcome: Some(json!({"exit_code": 0, "reboot_required": false})),
            packages_changed: json!([{"name": "curl", "from": "1.0", "to": "1.1"}]),
        };
        let done = store.complete_job("j1", completion.clone()).await.unwrap();
        let expected = JobRecord {
            state: completion.state,
            started_at_ms: Some(1_100),
            finished_at_ms: Some(1_300),
            outcome: completion.outcome,
            packages_changed: completion.packages_changed,
            ..queued
        };
        assert_eq!(done, expected);
        store.close().await.unwrap();

        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.job("j1").await.unwrap(), Some(expected));
        let lines = store.job_output("j1", 0, 100).await.unwrap();
        let line = |idx: i64, stream: &str, time_ms: i64, text: &str| OutputLineRecord {
            job_id: "j1".to_owned(),
            idx,
            stream: stream.to_owned(),
            time_ms,
            line: text.to_owned(),
        };
        assert_eq!(
            lines,
            vec![
                line(0, "stdout", 1_200, "Reading package lists..."),
                line(1, "stderr", 1_201, "W: something ünïcode"),
                line(2, "stdout", 1_202, ""),
            ]
        );
        assert_eq!(store.job_output("j1", 2, 100).await.unwrap(), lines[2..]);
        assert_eq!(store.job_output("j1", 0, 1).await.unwrap(), lines[..1]);

        // Lines after a reopen continue the numbering.
        store.log_line("j1", "stdout", 1_400, "late").unwrap();
        store.flush().await.unwrap();
        assert_eq!(store.job_output("j1", 3, 10).await.unwrap()[0].idx, 3);
        store.close().await.unwrap();
    }

    #[tokio::test]
    async fn changing_a_missing_job_is_not_found_and_duplicates_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert!(matches!(
            store.start_job("ghost", 1).await,
            Err(StoreError::NotFound { what: "job", key }) if key == "ghost"
        ));
        assert!(matches!(
            store.set_job_state("ghost", "failed").await,
            Err(StoreError::NotFound { .. })
        ));
        store.insert_job(job("j", "h", "queued", 1)).await.unwrap();
        assert!(matches!(
            store.insert_job(job("j", "other", "queued", 2)).await,
            Err(StoreError::Duplicate { what: "job", .. })
        ));
        assert_eq!(store.job("j").await.unwrap().unwrap().host, "h");

        // A line for an unknown job is dropped; the store keeps working.
        store.log_line("ghost", "stdout", 1, "lost").unwrap();
        store.log_line("j", "stdout", 1, "kept").unwrap();
        store.flush().await.unwrap();
        assert!(store.job_output("ghost", 0, 10).await.unwrap().is_empty());
        assert_eq!(store.job_output("j", 0, 10).await.unwrap()[0].idx, 0);
        store.close().await.unwrap();
    }

    #[tokio::test]
    async fn list_jobs_filters_pages_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for (id, host, state, created) in [
            ("a", "web-1", "succeeded", 1),
            ("b", "web-2", "failed", 2),
            ("c", "web-1", "running", 3),
            ("d", "web-1", "succeeded", 4),
        ] {
            store
                .insert_job(job(id, host, state, created))
                .await
                .unwrap();
        }
        let ids = |listed: &crate::Listed<JobRecord>| {
            listed
                .items
                .iter()
                .map(|job| job.id.clone())
                .collect::<Vec<_>>()
        };
        let all = store
            .list_jobs(JobFilter::default(), page(0, 10))
            .await
            .unwrap();
        assert_eq!(
            (ids(&all), all.total),
            (vec!["d".into(), "c".into(), "b".into(), "a".into()], 4)
        );
        let web1 = JobFilter {
            kind: None,
            host: Some("web-1".to_owned()),
            state: None,
        };
        let second_page = store.list_jobs(web1.clone(), page(2, 2)).await.unwrap();
        assert_eq!(
            (ids(&second_page), second_page.total),
            (vec!["a".into()], 3)
        );
        let web1_done = JobFilter {
            state: Some("succeeded".to_owned()),
            ..web1
        };
        let done = store.list_jobs(web1_done, page(0, 10)).await.unwrap();
        assert_eq!((ids(&done), done.total), (vec!["d".into(), "a".into()], 2));
        let none = JobFilter {
            kind: None,
            host: Some("nobody".to_owned()),
            state: None,
        };
        assert_eq!(store.list_jobs(none, page(0, 10)).await.unwrap().total, 0);
        store.close().await.unwrap();
    }

    #[tokio::test]
    async fn recovery_interrupts_queued_and_running_jobs_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for (id, state, created) in [
            ("running", "running", 2),
            ("queued", "queued", 1),
            ("done", "succeeded", 3),
            ("lost", "lost", 4),
        ] {
            store
                .insert_job(job(id, "web-1", state, created))
                .await
                .unwrap();
        }
        // Simulate a crash: the handle goes away without close, nothing marks the jobs.
        drop(store);
        let store = reopen_after_drop(dir.path());
        let interrupted = store.mark_running_interrupted(9_000).await.unwrap();
        let summary: Vec<_> = interrupted
            .iter()
            .map(|job| (job.id.as_str(), job.state.as_str(), job.finished_at_ms))
            .collect();
        assert_eq!(
            summary,
            [
                ("queued", "interrupted", Some(9_000)),
                ("running", "interrupted", Some(9_000))
            ]
        );
        assert_eq!(store.job("done").await.unwrap().unwrap().state, "succeeded");
        assert_eq!(store.job("lost").await.unwrap().unwrap().state, "lost");
        assert!(
            store
                .mark_running_interrupted(9_500)
                .await
                .unwrap()
                .is_empty()
        );

        // The host showed the upgrade finished: the interrupted job is completed after all.
        let completed = store
            .complete_job(
                "running",
                JobCompletion {
                    state: "succeeded".to_owned(),
                    finished_at_ms: 9_100,
                    outcome: Some(json!({"exit_code": 0, "recovered": true})),
                    packages_changed: json!(["curl"]),
                },
            )
            .await
            .unwrap();
        assert_eq!(
            (completed.state.as_str(), completed.finished_at_ms),
            ("succeeded", Some(9_100))
        );
        store.close().await.unwrap();
    }
}
