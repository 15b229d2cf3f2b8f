//! Reads off the writer thread: a small pool of read-only connections (WAL lets them read the
//! last commit while the writer writes), each read run in `spawn_blocking`. A read first waits
//! for what was queued before it ([`Store::read`]: read your own queued writes), or reads what
//! is committed at once ([`Store::read_committed`], for events, which are announced only after
//! their commit). Also `block_on`, the wait of a queueing call that found the writer's queue
//! full.

use std::future::Future;
use std::path::PathBuf;
use std::pin::pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

use rusqlite::{Connection, OpenFlags};

use crate::Store;
use crate::error::{Result, StoreError, open_error};

/// Idle read connections kept for reuse; more are opened while more reads run at once.
const MAX_IDLE: usize = 4;

pub(crate) struct Readers {
    db_path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    pub(crate) fn new(db_path: PathBuf) -> Self {
        Self {
            db_path,
            idle: Mutex::new(Vec::new()),
        }
    }

    fn take(&self) -> Result<Connection> {
        if let Some(conn) = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
        {
            return Ok(conn);
        }
        let conn = Connection::open_with_flags(
            &self.db_path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| open_error(&self.db_path, source))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch("PRAGMA query_only = ON;")?;
        Ok(conn)
    }

    fn give_back(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }
}

impl Store {
    /// Runs `f` on a read-only connection once everything queued before this call is
    /// committed, so a read sees the caller's own queued writes.
    pub(crate) async fn read<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R> + Send + 'static,
    {
        self.flush().await?;
        self.read_committed(f).await
    }

    /// Runs `f` on a read-only connection at once: it sees the last commit.
    pub(crate) async fn read_committed<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R> + Send + 'static,
    {
        let readers = Arc::clone(&self.readers);
        tokio::task::spawn_blocking(move || {
            let conn = readers.take()?;
            let result = f(&conn);
            readers.give_back(conn);
            result
        })
        .await
        // The runtime is shutting down (or the read panicked): nothing to answer with.
        .map_err(|_| StoreError::Closed)?
    }
}

struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `future` to its end on this thread, parking it between polls. Used only to wait for
/// room in the writer's queue, which the writer thread makes without waiting on anyone.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::thread::park();
    }
}
