//! [`ExecEnv`]: tendhost's SSH state in the data directory, set up once per process: the control
//! socket directory (with stale masters from a previous run stopped), the known_hosts files (one
//! per host name for the keys tendhost accepts, one shared file that only the admin writes), and
//! the key from `TENDHOST_SSH_KEY`.
//!
//! Connecting lives in `ssh/master.rs`; the executor in `ssh/mod.rs`.

use std::fmt::Write as _;
use std::fs::{DirBuilder, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, FileTypeExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use base64::Engine as _;

use crate::error::ExecError;

/// The environment variable holding a base64-encoded private key (the whole key file).
pub const SSH_KEY_ENV: &str = "TENDHOST_SSH_KEY";

/// Unix socket paths are limited to 108 bytes including the NUL; `ssh -M` first binds
/// `<ControlPath>.<16 random chars>`, and socket names here are at most 7 characters.
const MAX_CONTROL_DIR_LEN: usize = 107 - 17 - 1 - 7;

/// Where tendhost keeps SSH state, shared by every [`crate::SshExecutor`] of the process.
/// Cheap to clone.
///
/// Layout under `data_dir`:
/// - `ssh/known_hosts`: keys the admin trusts for every host (read, never written by tendhost;
///   the user's `~/.ssh` is never read or written)
/// - `ssh/hosts/<name>`: the keys accepted or pinned for one host name, each line with the
///   address it was seen at; no other host reads it, so accepting a key for one host cannot
///   make another host's strict check pass
/// - `ssh/env_key`: the key from `TENDHOST_SSH_KEY`, mode 0600, when set
/// - `ssh/c/`: master control sockets and master logs (one pair per executor)
#[derive(Clone, Debug)]
pub struct ExecEnv {
    inner: Arc<EnvInner>,
}

#[derive(Debug)]
struct EnvInner {
    data_dir: PathBuf,
    control_dir: PathBuf,
    known_hosts: PathBuf,
    hosts_dir: PathBuf,
    env_key: Option<PathBuf>,
    next_socket: AtomicU32,
}

impl ExecEnv {
    /// Sets up SSH state under `data_dir`, taking a key from `TENDHOST_SSH_KEY` when set.
    /// Call once per process, before creating executors (see [`ExecEnv::open_with_key`]).
    pub fn open(data_dir: impl Into<PathBuf>) -> Result<Self, ExecError> {
        let key = std::env::var(SSH_KEY_ENV).ok();
        Self::open_with_key(
            data_dir,
            key.as_deref().filter(|key| !key.trim().is_empty()),
        )
    }

    /// Sets up SSH state under `data_dir`:
    /// - creates `ssh/`, `ssh/c/` and `ssh/hosts/` (mode 0700), and an empty `ssh/known_hosts`
    ///   if missing;
    /// - stops masters left by a previous run (`ssh -O exit` on every socket in `ssh/c/`) and
    ///   removes their sockets and logs; do not open two `ExecEnv`s on one data directory at once;
    /// - writes `ssh_key_base64` (a base64-encoded private key file) to `ssh/env_key` (0600).
    ///
    /// Fails when the data directory is too long for Unix socket paths (at most 75 bytes once
    /// made absolute), cannot be written, or the key is not base64 of a private key.
    pub fn open_with_key(
        data_dir: impl Into<PathBuf>,
        ssh_key_base64: Option<&str>,
    ) -> Result<Self, ExecError> {
        let data_dir = data_dir.into();
        let data_dir = std::path::absolute(&data_dir).map_err(|err| ExecError::Setup {
            detail: format!("data_dir {}: {err}", data_dir.display()),
        })?;
        let ssh_dir = data_dir.join("ssh");
        let control_dir = ssh_dir.join("c");
        let control_dir_len = control_dir.as_os_str().len();
        if control_dir_len > MAX_CONTROL_DIR_LEN {
            return Err(ExecError::Setup {
                detail: format!(
                    "data_dir {} is too long for SSH control sockets: Unix socket paths are \
                     limited to 108 bytes, so data_dir may have at most {} bytes (it has {})",
                    data_dir.display(),
                    MAX_CONTROL_DIR_LEN - "/ssh/c".len(),
                    data_dir.as_os_str().len()
                ),
            });
        }
        let setup_err = |what: &str, path: &Path, err: std::io::Error| ExecError::Setup {
            detail: format!("{what} {}: {err}", path.display()),
        };
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&control_dir)
            .map_err(|err| setup_err("cannot create", &control_dir, err))?;

        let hosts_dir = ssh_dir.join("hosts");
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&hosts_dir)
            .map_err(|err| setup_err("cannot create", &hosts_dir, err))?;

        stop_stale_masters(&control_dir)
            .map_err(|err| setup_err("cannot clean up", &control_dir, err))?;

        let known_hosts = ssh_dir.join("known_hosts");
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&known_hosts)
            .map_err(|err| setup_err("cannot create", &known_hosts, err))?;

        let env_key = match ssh_key_base64 {
            Some(encoded) => {
                let path = ssh_dir.join("env_key");
                write_env_key(&path, encoded)?;
                Some(path)
            }
            None => None,
        };

        Ok(Self {
            inner: Arc::new(EnvInner {
                data_dir,
                control_dir,
                known_hosts,
                hosts_dir,
                env_key,
                next_socket: AtomicU32::new(0),
            }),
        })
    }

    /// The (absolute) data directory.
    pub fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }

    /// The shared known_hosts file: keys the admin trusts for any host. tendhost reads it for
    /// hosts without a pinned key and never writes it.
    pub fn known_hosts(&self) -> &Path {
        &self.inner.known_hosts
    }

    /// The known_hosts file of one host name: the keys accepted (`accept-new`) or pinned for
    /// it, each with its address. Only that host's connections read or write it.
    pub fn host_known_hosts(&self, host_name: &str) -> PathBuf {
        self.inner.hosts_dir.join(host_file_name(host_name))
    }

    /// The directory holding master control sockets and their logs.
    pub fn control_dir(&self) -> &Path {
        &self.inner.control_dir
    }

    /// The key file written from `TENDHOST_SSH_KEY`, if any.
    pub fn env_key(&self) -> Option<&Path> {
        self.inner.env_key.as_deref()
    }

    /// A new, short, process-unique control socket name (base 36, at most 7 characters).
    pub(crate) fn next_socket_path(&self) -> PathBuf {
        let mut n = self.inner.next_socket.fetch_add(1, Ordering::Relaxed);
        let mut name = Vec::new();
        loop {
            name.push(b"0123456789abcdefghijklmnopqrstuvwxyz"[(n % 36) as usize]);
            n /= 36;
            if n == 0 {
                break;
            }
        }
        name.reverse();
        let name = String::from_utf8(name).expect("ASCII digits");
        self.inner.control_dir.join(format!("m{name}"))
    }
}

/// A file name for a host name: `h-` and the name, every byte outside `A-Z a-z 0-9 . _ -` as
/// `=XX` (host names are validated elsewhere; this keeps any name inside the directory, and
/// never writes `%`, which ssh would expand in `UserKnownHostsFile`).
fn host_file_name(host_name: &str) -> String {
    let mut name = String::from("h-");
    for byte in host_name.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-') {
            name.push(char::from(byte));
        } else {
            let _ = write!(name, "={byte:02X}");
        }
    }
    name
}

/// Asks every master whose socket is in `control_dir` to exit, then empties the directory.
fn stop_stale_masters(control_dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(control_dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_socket() {
            tracing::info!(socket = %path.display(), "stopping a stale ssh master");
            exit_master_blocking(&path);
        }
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// `ssh -O exit` on a control socket, waiting for it (a few milliseconds); errors are ignored,
/// the master may be gone already.
pub(crate) fn exit_master_blocking(control_path: &Path) {
    let _ = exit_master_command(control_path).status();
}

/// The `ssh -O exit` command for a control socket, output discarded.
pub(crate) fn exit_master_command(control_path: &Path) -> Command {
    let mut command = Command::new("ssh");
    command
        .env_remove(SSH_KEY_ENV)
        .args(["-F", "none", "-o", "BatchMode=yes", "-S"])
        .arg(control_path)
        .args(["-O", "exit", "tendhost-master"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

fn write_env_key(path: &Path, encoded: &str) -> Result<(), ExecError> {
    let compact: String = encoded.split_whitespace().collect();
    let key = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|err| ExecError::Setup {
            detail: format!("{SSH_KEY_ENV} is not valid base64 ({err})"),
        })?;
    if !key.starts_with(b"-----BEGIN ") || !key.windows(9).any(|w| w == b"PRIVATE K") {
        return Err(ExecError::Setup {
            detail: format!(
                "{SSH_KEY_ENV} does not decode to a private key file (expected \
                 `-----BEGIN ... PRIVATE KEY-----`; encode the whole file, e.g. base64 -w0 < key)"
            ),
        });
    }
    // Recreate the file so its mode is 0600 whatever an older copy had.
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => {
            return Err(ExecError::Setup {
                detail: format!("cannot replace {}: {err}", path.display()),
            });
        }
    }
    let write = || -> std::io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        file.write_all(&key)?;
        if !key.ends_with(b"\n") {
            file.write_all(b"\n")?;
        }
        file.sync_all()
    };
    write().map_err(|err| ExecError::Setup {
        detail: format!("cannot write {}: {err}", path.display()),
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use base64::Engine as _;

    use crate::error::ExecError;
    use crate::ssh::env::ExecEnv;

    const FAKE_KEY: &str =
        "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n";

    #[test]
    fn lays_out_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let encoded = base64::engine::general_purpose::STANDARD.encode(FAKE_KEY);
        let env = ExecEnv::open_with_key(dir.path(), Some(&encoded)).unwrap();
        assert!(env.known_hosts().is_file());
        assert!(env.control_dir().is_dir());
        let web = env.host_known_hosts("web-1");
        assert!(web.ends_with("ssh/hosts/h-web-1"), "{}", web.display());
        assert!(web.parent().unwrap().is_dir());
        assert!(env.host_known_hosts("..").ends_with("ssh/hosts/h-.."));
        assert!(
            env.host_known_hosts("a/b c")
                .ends_with("ssh/hosts/h-a=2Fb=20c")
        );
        let key = env.env_key().unwrap();
        assert_eq!(std::fs::read_to_string(key).unwrap(), FAKE_KEY);
        let mode = std::fs::metadata(key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let first = env.next_socket_path();
        assert!(first.ends_with("m0"));
        for _ in 0..40 {
            env.next_socket_path();
        }
        assert!(env.next_socket_path().ends_with("m15"));
        // Opening again keeps known_hosts and empties the control dir.
        std::fs::write(env.known_hosts(), "x\n").unwrap();
        std::fs::write(env.control_dir().join("m0.log"), "old").unwrap();
        let env = ExecEnv::open_with_key(dir.path(), None).unwrap();
        assert_eq!(std::fs::read_to_string(env.known_hosts()).unwrap(), "x\n");
        assert_eq!(std::fs::read_dir(env.control_dir()).unwrap().count(), 0);
    }

    #[test]
    fn rejects_bad_keys_and_long_paths() {
        let dir = tempfile::tempdir().unwrap();
        let err = ExecEnv::open_with_key(dir.path(), Some("not base64!")).unwrap_err();
        assert!(
            err.to_string()
                .contains("TENDHOST_SSH_KEY is not valid base64")
        );
        let encoded = base64::engine::general_purpose::STANDARD.encode("hello");
        let err = ExecEnv::open_with_key(dir.path(), Some(&encoded)).unwrap_err();
        assert!(err.to_string().contains("does not decode to a private key"));

        let long = dir.path().join("x".repeat(90));
        let err = ExecEnv::open_with_key(&long, None).unwrap_err();
        assert!(matches!(err, ExecError::Setup { .. }));
        assert!(err.to_string().contains("too long"), "{err}");
    }
}
