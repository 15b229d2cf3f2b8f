//! Starting one SSH master connection (`ssh -M -f -N` with tendhost's options) and turning its
//! failures into [`ExecError`]s, including the fingerprints a host key error must name; a pinned
//! host key (`host_key_sha256`) is checked and written to the host's own known_hosts first.
//!
//! Deciding when to start or reuse a master lives in `ssh/mod.rs`; reading ssh's messages in
//! `ssh/diagnose.rs`.

use std::ffi::OsString;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt as _;
use tokio::process::Command;

use crate::error::ExecError;
use crate::ssh::diagnose::{Diagnosis, diagnose};
use crate::ssh::{ConnectErrors, KnownHostsPolicy, SshTarget};

/// Everything needed to start a master for one target.
pub(crate) struct MasterSpec<'a> {
    pub(crate) target: &'a SshTarget,
    pub(crate) control_path: &'a Path,
    pub(crate) log_path: &'a Path,
    /// The host's own known_hosts file (`ssh/hosts/<name>`): ssh records accepted keys here.
    pub(crate) host_known_hosts: &'a Path,
    /// The admin's shared file, also read unless the key is pinned.
    pub(crate) shared_known_hosts: &'a Path,
    /// The identity file to use, if any (else ssh's defaults and the agent).
    pub(crate) key: Option<&'a Path>,
}

impl MasterSpec<'_> {
    /// `host:port` (IPv6 in brackets), as error messages show it.
    pub(crate) fn display_addr(&self) -> String {
        display_addr(&self.target.addr, self.target.port)
    }

    /// The `ssh` arguments that start the master. Every value is its own argument (no shell);
    /// the destination comes after `--` so an address can never be read as an option.
    pub(crate) fn args(&self) -> Vec<OsString> {
        let target = self.target;
        let secs = |duration: Duration| duration.as_secs().max(1);
        let mut args: Vec<OsString> = Vec::new();
        let mut push = |arg: &dyn AsRef<std::ffi::OsStr>| args.push(arg.as_ref().to_owned());
        push(&"-F");
        push(&"none");
        push(&"-E");
        push(&self.log_path);
        push(&"-S");
        push(&self.control_path);
        for flag in ["-M", "-f", "-N", "-T"] {
            push(&flag);
        }
        // A pinned key is the only one trusted: nothing is ever accepted beside it.
        let strict = match (target.known_hosts_policy, &target.host_key_sha256) {
            (KnownHostsPolicy::AcceptNew, None) => "accept-new",
            _ => "yes",
        };
        // ssh writes new keys to the first file; quoted, so spaces in the data dir are safe.
        let mut known_hosts_option = OsString::from("UserKnownHostsFile=");
        let mut files = vec![self.host_known_hosts];
        if target.host_key_sha256.is_none() {
            files.push(self.shared_known_hosts);
        }
        for (idx, file) in files.into_iter().enumerate() {
            if idx > 0 {
                known_hosts_option.push(" ");
            }
            known_hosts_option.push("\"");
            known_hosts_option.push(file);
            known_hosts_option.push("\"");
        }
        let options: Vec<OsString> = vec![
            format!("ControlPersist={}s", secs(target.idle_timeout)).into(),
            "BatchMode=yes".into(),
            format!("StrictHostKeyChecking={strict}").into(),
            known_hosts_option,
            "GlobalKnownHostsFile=/dev/null".into(),
            "CheckHostIP=no".into(),
            "UpdateHostKeys=no".into(),
            "HashKnownHosts=no".into(),
            format!("ConnectTimeout={}", secs(target.connect_timeout)).into(),
            format!("ServerAliveInterval={}", secs(target.server_alive_interval)).into(),
            format!(
                "ServerAliveCountMax={}",
                target.server_alive_count_max.max(1)
            )
            .into(),
            "PasswordAuthentication=no".into(),
            "KbdInteractiveAuthentication=no".into(),
            "ForwardAgent=no".into(),
            "ForwardX11=no".into(),
            "ClearAllForwardings=yes".into(),
        ];
        for option in &options {
            push(&"-o");
            push(option);
        }
        if let Some(key) = self.key {
            push(&"-o");
            push(&"IdentitiesOnly=yes");
            push(&"-i");
            push(&key);
        } else if !target.default_identities {
            for option in ["IdentitiesOnly=yes", "IdentityFile=none"] {
                push(&"-o");
                push(&option);
            }
        }
        if !target.default_identities {
            push(&"-o");
            push(&"IdentityAgent=none");
        }
        push(&"-p");
        push(&target.port.to_string());
        push(&"-l");
        push(&target.user);
        push(&"--");
        push(&target.addr);
        args
    }
}

pub(crate) fn display_addr(addr: &str, port: u16) -> String {
    if addr.contains(':') {
        format!("[{addr}]:{port}")
    } else {
        format!("{addr}:{port}")
    }
}

/// Starts the master and waits until it is authenticated and listening on `control_path`, or
/// fails with the reason. The whole attempt is bounded by the target's connect timeout (a
/// pinned key's scan by one more).
///
/// With [`ConnectErrors::Uniform`], every connection failure is [`ExecError::CannotConnect`]
/// and its cause goes to the log only.
pub(crate) async fn launch(spec: &MasterSpec<'_>) -> Result<(), ExecError> {
    let result = launch_detailed(spec).await;
    match result {
        Err(err)
            if spec.target.connect_errors == ConnectErrors::Uniform
                && matches!(
                    err,
                    ExecError::CannotResolve { .. }
                        | ExecError::ConnectionRefused { .. }
                        | ExecError::Unreachable { .. }
                        | ExecError::ConnectTimeout { .. }
                        | ExecError::ConnectFailed { .. }
                ) =>
        {
            tracing::warn!(host = %spec.target.host_name, error = %err, "cannot connect");
            Err(ExecError::CannotConnect {
                host: spec.target.host_name.clone(),
                addr: spec.display_addr(),
            })
        }
        other => other,
    }
}

async fn launch_detailed(spec: &MasterSpec<'_>) -> Result<(), ExecError> {
    let target = spec.target;
    if let Some(pin) = &target.host_key_sha256 {
        pin_host_key(spec, pin).await?;
    }
    let io_err = |context: &str, source: std::io::Error| ExecError::Io {
        host: target.host_name.clone(),
        context: context.to_owned(),
        source,
    };
    // A socket left at our path (a master that died, or one we lost track of) would make the
    // new master run without multiplexing: stop and remove it first.
    if spec.control_path.exists() {
        crate::ssh::exit_master(spec.control_path).await;
        remove_if_exists(spec.control_path)
            .map_err(|err| io_err("removing a stale socket", err))?;
    }
    remove_if_exists(spec.log_path).map_err(|err| io_err("removing an old master log", err))?;

    // The key reaches ssh as a file (`-i`), never through the environment.
    let mut child = Command::new("ssh")
        .env_remove(crate::ssh::SSH_KEY_ENV)
        .args(spec.args())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|err| io_err("cannot run ssh", err))?;

    // ssh forks into the background once authenticated (-f); until then this is the whole
    // connect. A host that accepts TCP but never answers is cut off here.
    let status = match tokio::time::timeout(target.connect_timeout, child.wait()).await {
        Ok(status) => status.map_err(|err| io_err("waiting for ssh", err))?,
        Err(_elapsed) => {
            let _ = child.kill().await;
            return Err(ExecError::ConnectTimeout {
                host: target.host_name.clone(),
                addr: spec.display_addr(),
                after: target.connect_timeout,
            });
        }
    };
    if status.success() {
        return Ok(());
    }
    let log = std::fs::read_to_string(spec.log_path).unwrap_or_default();
    Err(connect_error(spec, diagnose(&log)).await)
}

fn remove_if_exists(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    }
}

async fn connect_error(spec: &MasterSpec<'_>, diagnosis: Diagnosis) -> ExecError {
    let target = spec.target;
    let host = target.host_name.clone();
    let addr = spec.display_addr();
    match diagnosis {
        Diagnosis::CannotResolve(detail) => ExecError::CannotResolve { host, addr, detail },
        Diagnosis::Refused => ExecError::ConnectionRefused { host, addr },
        Diagnosis::Unreachable(detail) => ExecError::Unreachable { host, addr, detail },
        Diagnosis::TimedOut => ExecError::ConnectTimeout {
            host,
            addr,
            after: target.connect_timeout,
        },
        Diagnosis::AuthFailed(detail) => {
            let keys = match spec.key {
                Some(key) => format!("key {}", key.display()),
                None if target.default_identities => {
                    "ssh's default keys and the agent, if any".to_owned()
                }
                None => "no key: none is configured for this host".to_owned(),
            };
            ExecError::AuthFailed {
                host,
                addr,
                user: target.user.clone(),
                detail: format!("{detail} (tried {keys})"),
            }
        }
        Diagnosis::HostKeyUnknown { key_type } => ExecError::HostKeyUnknown {
            offered: scan_fingerprint(target, &key_type).await,
            host,
            addr,
            known_hosts: spec.host_known_hosts.to_owned(),
        },
        Diagnosis::HostKeyChanged {
            key_type,
            offered,
            offending,
        } => {
            let known = match &offending {
                Some((file, line_no)) => recorded_fingerprint(file, *line_no).await,
                None => None,
            };
            ExecError::HostKeyChanged {
                host,
                addr,
                known: known.unwrap_or_else(|| match &offending {
                    Some((file, line_no)) => {
                        format!("the key on line {line_no} of {}", file.display())
                    }
                    None => "another key".to_owned(),
                }),
                offered: format!("{key_type} {offered}"),
                known_hosts: offending
                    .map_or_else(|| spec.host_known_hosts.to_owned(), |(file, _)| file),
            }
        }
        Diagnosis::Other(detail) => ExecError::ConnectFailed { host, addr, detail },
    }
}

/// Makes the host's known_hosts hold exactly the scanned key whose fingerprint is `pin`, or
/// fails with [`ExecError::HostKeyMismatch`] naming what the host offers. When the host cannot
/// be scanned, the file is emptied and connecting reports why (or that the key is unknown).
async fn pin_host_key(spec: &MasterSpec<'_>, pin: &str) -> Result<(), ExecError> {
    let target = spec.target;
    let lines = scan_keys(target, None).await;
    let mut offered = Vec::new();
    let mut pinned_line = None;
    for line in lines.lines().filter(|line| !line.starts_with('#')) {
        let Some(fingerprint) = fingerprints(format!("{line}\n").as_bytes())
            .await
            .into_iter()
            .next()
        else {
            continue;
        };
        if fingerprint.split_whitespace().nth(1) == Some(pin) {
            pinned_line = Some(line.to_owned());
            break;
        }
        offered.push(fingerprint);
    }
    if pinned_line.is_none() && !offered.is_empty() {
        return Err(ExecError::HostKeyMismatch {
            host: target.host_name.clone(),
            addr: spec.display_addr(),
            pinned: pin.to_owned(),
            offered: offered.join(", "),
        });
    }
    let mut contents = pinned_line.unwrap_or_default();
    if !contents.is_empty() {
        contents.push('\n');
    }
    write_private(spec.host_known_hosts, contents.as_bytes())
        .await
        .map_err(|source| ExecError::Io {
            host: target.host_name.clone(),
            context: format!("writing {}", spec.host_known_hosts.display()),
            source,
        })
}

/// Replaces `path` with `contents` (mode 0600) through a temporary file and a rename.
async fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .await?;
    file.write_all(contents).await?;
    file.sync_all().await?;
    drop(file);
    tokio::fs::rename(&tmp, path).await
}

/// The fingerprint (`ED25519 SHA256:...`) of the key on `line_no` of a known_hosts file.
async fn recorded_fingerprint(file: &Path, line_no: usize) -> Option<String> {
    let text = tokio::fs::read_to_string(file).await.ok()?;
    let line = text.lines().nth(line_no.checked_sub(1)?)?;
    let mut fields = line.split_whitespace();
    // Skip the host names, and a marker (@revoked, @cert-authority) before them.
    if fields.next()?.starts_with('@') {
        fields.next()?;
    }
    let key_type = fields.next()?;
    let blob = fields.next()?;
    fingerprints(format!("{key_type} {blob}\n").as_bytes())
        .await
        .into_iter()
        .next()
}

/// Asks the host for its key of `key_type` (`ssh-keyscan`, no authentication) to show the
/// fingerprint in an "unknown host key" error. Best effort: `None` when it cannot be read.
async fn scan_fingerprint(target: &SshTarget, key_type: &str) -> Option<String> {
    let scan_type = match key_type {
        "ED25519" => "ed25519",
        "ECDSA" => "ecdsa",
        "RSA" => "rsa",
        _ => return None,
    };
    let scanned = scan_keys(target, Some(scan_type)).await;
    fingerprints(scanned.as_bytes()).await.into_iter().next()
}

/// The host's keys as known_hosts lines (`ssh-keyscan`, of one type or of every type), empty
/// when it cannot be read within the connect timeout.
async fn scan_keys(target: &SshTarget, key_type: Option<&str>) -> String {
    let timeout_secs = target.connect_timeout.as_secs().max(1);
    let mut scan = Command::new("ssh-keyscan");
    scan.env_remove(crate::ssh::SSH_KEY_ENV)
        .args(["-T", &timeout_secs.to_string()]);
    if let Some(key_type) = key_type {
        scan.args(["-t", key_type]);
    }
    let scan = scan
        .args(["-p", &target.port.to_string(), "--", &target.addr])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(
        target
            .connect_timeout
            .saturating_add(Duration::from_secs(1)),
        scan,
    )
    .await
    {
        Ok(Ok(scanned)) => String::from_utf8_lossy(&scanned.stdout).into_owned(),
        _ => String::new(),
    }
}

/// `ssh-keygen -l` over known_hosts-style lines on stdin: `TYPE SHA256:...` for each key.
async fn fingerprints(lines: &[u8]) -> Vec<String> {
    let Ok(mut child) = Command::new("ssh-keygen")
        .env_remove(crate::ssh::SSH_KEY_ENV)
        .args(["-l", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
    else {
        return Vec::new();
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(lines).await;
    }
    let Ok(Ok(output)) =
        tokio::time::timeout(Duration::from_secs(10), child.wait_with_output()).await
    else {
        return Vec::new();
    };
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            // "256 SHA256:abc... comment (ED25519)"
            let mut fields = line.split_whitespace();
            let _bits = fields.next()?;
            let fingerprint = fields.next()?;
            let key_type = line.rsplit_once('(')?.1.trim_end_matches(')');
            Some(format!("{key_type} {fingerprint}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use crate::ssh::master::{MasterSpec, display_addr};
    use crate::ssh::{KnownHostsPolicy, SshTarget};

    #[test]
    fn destination_cannot_become_an_option() {
        let mut target = SshTarget::new("evil", "-oProxyCommand=touch /tmp/pwned");
        target.user = "-oX=y".into();
        target.known_hosts_policy = KnownHostsPolicy::AcceptNew;
        target.idle_timeout = Duration::from_millis(10);
        let spec = MasterSpec {
            target: &target,
            control_path: Path::new("/d/c/m0"),
            log_path: Path::new("/d/c/m0.log"),
            host_known_hosts: Path::new("/d/hosts/h-evil"),
            shared_known_hosts: Path::new("/d/known_hosts"),
            key: Some(Path::new("/k")),
        };
        let args: Vec<String> = spec
            .args()
            .iter()
            .map(|arg| arg.to_string_lossy().into_owned())
            .collect();
        let n_args = args.len();
        assert_eq!(
            args[n_args - 2..],
            ["--", "-oProxyCommand=touch /tmp/pwned"]
        );
        assert_eq!(args[n_args - 4..n_args - 2], ["-l", "-oX=y"]);
        assert!(args.contains(&"ControlPersist=1s".to_owned()));
        assert!(args.contains(&"StrictHostKeyChecking=accept-new".to_owned()));
        assert!(
            args.contains(&"UserKnownHostsFile=\"/d/hosts/h-evil\" \"/d/known_hosts\"".to_owned())
        );

        // A pinned key: strict whatever the policy, and only the host's own file.
        let mut pinned = target.clone();
        pinned.host_key_sha256 = Some("SHA256:abc".into());
        let spec = MasterSpec {
            target: &pinned,
            ..spec
        };
        let args: Vec<String> = spec
            .args()
            .iter()
            .map(|arg| arg.to_string_lossy().into_owned())
            .collect();
        assert!(args.contains(&"StrictHostKeyChecking=yes".to_owned()));
        assert!(!args.contains(&"IdentityAgent=none".to_owned()));
        assert!(args.contains(&"UserKnownHostsFile=\"/d/hosts/h-evil\"".to_owned()));

        // No default keys and no agent: only the given key, or none at all.
        let mut keyless = target.clone();
        keyless.default_identities = false;
        let spec = MasterSpec {
            target: &keyless,
            key: None,
            ..spec
        };
        let args: Vec<String> = spec
            .args()
            .iter()
            .map(|arg| arg.to_string_lossy().into_owned())
            .collect();
        for option in [
            "IdentitiesOnly=yes",
            "IdentityFile=none",
            "IdentityAgent=none",
        ] {
            assert!(args.contains(&option.to_owned()), "{option}: {args:?}");
        }
    }

    #[test]
    fn addresses() {
        assert_eq!(display_addr("10.0.0.1", 22), "10.0.0.1:22");
        assert_eq!(display_addr("::1", 2222), "[::1]:2222");
    }
}
