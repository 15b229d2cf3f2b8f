//! The data directory's OS lock: an exclusive `File::try_lock` (an `flock` on Linux) on
//! `data_dir/tendhost.lock`, holding the owner's pid as text so a refused second daemon can name
//! it. The kernel drops the lock when the holder exits, even on `kill -9`, so a stale pid in the
//! file never blocks a start. Nothing about the database lives here.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::error::{Result, StoreError};

/// File name of the lock inside the data directory.
pub const LOCK_FILE: &str = "tendhost.lock";

/// Held for as long as the store is open; dropping it releases the lock.
#[derive(Debug)]
pub(crate) struct DataDirLock {
    file: File,
    path: PathBuf,
}

impl DataDirLock {
    /// Takes the lock without waiting; `StoreError::Locked` names the pid holding it.
    pub(crate) fn acquire(data_dir: &Path) -> Result<Self> {
        let path = data_dir.join(LOCK_FILE);
        let data_dir_error = |source: std::io::Error| StoreError::DataDir {
            path: path.clone(),
            source,
        };
        // Not truncated on open: the holder's pid must stay readable for the error message.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(data_dir_error)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                // The holder may not have written its pid yet: then the pid is unknown.
                let pid = file
                    .read_to_string(&mut text)
                    .ok()
                    .and_then(|_| text.trim().parse().ok());
                return Err(StoreError::Locked {
                    lock_path: path,
                    pid,
                });
            }
            Err(TryLockError::Error(source)) => return Err(data_dir_error(source)),
        }
        file.set_len(0).map_err(data_dir_error)?;
        file.rewind().map_err(data_dir_error)?;
        writeln!(file, "{}", std::process::id()).map_err(data_dir_error)?;
        Ok(Self { file, path })
    }
}

impl Drop for DataDirLock {
    fn drop(&mut self) {
        // Tidy only: the lock, not the file's content, is what keeps a second daemon out.
        if let Err(error) = self.file.set_len(0) {
            tracing::debug!(path = %self.path.display(), %error, "cannot clear the lock file");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    use crate::Store;
    use crate::error::StoreError;

    /// Env var that turns `second_open_in_another_process_is_refused` into the lock holder.
    const CHILD_ENV: &str = "TENDHOST_STORE_LOCK_CHILD_DIR";
    const HELD: &str = "tendhost-store-lock-held";

    #[test]
    fn second_open_in_same_process_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let error = Store::open(dir.path()).unwrap_err();
        match &error {
            StoreError::Locked { lock_path, pid } => {
                assert_eq!(lock_path, &dir.path().join(super::LOCK_FILE));
                assert_eq!(*pid, Some(std::process::id()));
            }
            other => panic!("expected Locked, got {other:?}"),
        }
        assert!(error.to_string().contains(&std::process::id().to_string()));
        drop(store);
    }

    #[tokio::test]
    async fn close_releases_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.close().await.unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.close().await.unwrap();
    }

    /// Re-runs this test binary as a child that opens the store and holds it. The parent's open
    /// must be refused naming the child's pid; after `kill -9` of the child, it must succeed.
    #[test]
    fn second_open_in_another_process_is_refused() {
        if let Some(dir) = std::env::var_os(CHILD_ENV) {
            let _store = Store::open(dir).unwrap();
            println!("{HELD}");
            // Hold the lock until the parent kills this process; should the parent die first,
            // its end of stdin closes and this child goes too.
            let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new());
            std::process::exit(0);
        }

        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "lock::tests::second_open_in_another_process_is_refused",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut held = false;
        for line in stdout.lines() {
            if line.unwrap().trim_end().ends_with(HELD) {
                held = true;
                break;
            }
        }
        assert!(held, "child exited before taking the lock");

        let child_pid = child.id();
        let second_open = Store::open(dir.path());
        child.kill().unwrap();
        child.wait().unwrap();
        match second_open {
            Err(error @ StoreError::Locked { pid, .. }) => {
                assert_eq!(pid, Some(child_pid), "error names the holder: {error}");
                assert!(error.to_string().contains(&child_pid.to_string()));
            }
            other => panic!("expected Locked, got {other:?}"),
        }

        // The child's pid is still in the file, but the kernel released its lock.
        let store = Store::open(dir.path()).unwrap();
        drop(store);
    }
}
