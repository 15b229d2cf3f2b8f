//! Reading why `ssh` could not connect from its own log (`-E` file of the master): the pure
//! classification, unit-tested on master logs captured from OpenSSH 9.2p1 (Debian 12) by
//! `scripts/capture-test-data ssh` (`tests/data/`, described in its README).
//!
//! Turning a [`Diagnosis`] into an [`crate::ExecError`] (and reading fingerprints) lives in
//! `ssh/master.rs`.

use std::path::PathBuf;

/// What went wrong, as far as ssh's messages tell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Diagnosis {
    CannotResolve(String),
    Refused,
    Unreachable(String),
    TimedOut,
    AuthFailed(String),
    HostKeyUnknown {
        /// As ssh names it: `ED25519`, `ECDSA`, `RSA`.
        key_type: String,
    },
    HostKeyChanged {
        key_type: String,
        /// `SHA256:...` of the offered key.
        offered: String,
        /// Where the recorded key is (file and 1-based line), when ssh said so.
        offending: Option<(PathBuf, usize)>,
    },
    Other(String),
}

pub(crate) fn diagnose(log: &str) -> Diagnosis {
    let lines: Vec<&str> = log
        .lines()
        .map(|line| {
            let line = line.trim();
            line.strip_prefix("ssh: ").unwrap_or(line)
        })
        .filter(|line| !line.is_empty())
        .collect();

    if lines
        .iter()
        .any(|line| line.contains("REMOTE HOST IDENTIFICATION HAS CHANGED"))
    {
        return host_key_changed(&lines);
    }
    for line in &lines {
        if let Some(rest) = line.strip_prefix("No ")
            && let Some((key_type, _)) = rest.split_once(" host key is known for ")
        {
            return Diagnosis::HostKeyUnknown {
                key_type: key_type.to_owned(),
            };
        }
        if line.starts_with("Could not resolve hostname") {
            return Diagnosis::CannotResolve((*line).to_owned());
        }
        if line.starts_with("connect to host ") || line.contains("during banner exchange") {
            let lower = line.to_ascii_lowercase();
            if lower.contains("connection refused") {
                return Diagnosis::Refused;
            }
            if lower.contains("timed out") {
                return Diagnosis::TimedOut;
            }
            if lower.contains("no route to host") || lower.contains("network is unreachable") {
                return Diagnosis::Unreachable((*line).to_owned());
            }
        }
        if line.contains(": Permission denied (")
            || line.contains("Too many authentication failures")
        {
            return Diagnosis::AuthFailed((*line).to_owned());
        }
    }
    let meaningful: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|line| !line.starts_with("Warning: Permanently added"))
        .collect();
    let detail = meaningful
        .iter()
        .rev()
        .take(3)
        .rev()
        .copied()
        .collect::<Vec<_>>()
        .join("; ");
    if detail.is_empty() {
        Diagnosis::Other("ssh exited without a message".to_owned())
    } else {
        Diagnosis::Other(detail)
    }
}

fn host_key_changed(lines: &[&str]) -> Diagnosis {
    let mut key_type = String::from("host");
    let mut offered = String::from("an unknown key");
    let mut offending = None;
    for (idx, line) in lines.iter().enumerate() {
        if let Some(rest) = line.strip_prefix("The fingerprint for the ")
            && let Some((kind, _)) = rest.split_once(" key sent by the remote host is")
        {
            kind.clone_into(&mut key_type);
            // The fingerprint is on the same line (older ssh) or the next one.
            let tail = rest.rsplit_once(" is").map_or("", |(_, tail)| tail).trim();
            let fingerprint = if tail.is_empty() {
                lines.get(idx + 1).copied().unwrap_or("")
            } else {
                tail
            };
            let fingerprint = fingerprint.trim().trim_end_matches('.');
            if !fingerprint.is_empty() {
                fingerprint.clone_into(&mut offered);
            }
        }
        if let Some(rest) = line.strip_prefix("Offending ")
            && let Some((_, location)) = rest.split_once(" key in ")
            && let Some((file, line_no)) = location.rsplit_once(':')
            && let Ok(line_no) = line_no.trim().parse::<usize>()
        {
            offending = Some((PathBuf::from(file), line_no));
        }
    }
    Diagnosis::HostKeyChanged {
        key_type,
        offered,
        offending,
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use crate::ssh::diagnose::{Diagnosis, diagnose};

    /// A master log from `tests/data/`, captured by `scripts/capture-test-data ssh` (real
    /// ssh with tendhost's master options against a test-fleet host; see the README there).
    fn captured(name: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn host_key_changed() {
        assert_eq!(
            diagnose(&captured("ssh-host-key-changed.log")),
            Diagnosis::HostKeyChanged {
                key_type: "ED25519".into(),
                offered: "SHA256:VMlAhuH1oC+nEvgErN1dFkTpZZnbt8F2xzBoWyck0sI".into(),
                offending: Some((PathBuf::from("/tmp/tendhost-capture.RxwIZH/known_hosts"), 1)),
            }
        );
        // Hand-written: older OpenSSH printed the fingerprint on the same line.
        let same_line = "WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!\n\
                         The fingerprint for the RSA key sent by the remote host is SHA256:abc.\n";
        assert_eq!(
            diagnose(same_line),
            Diagnosis::HostKeyChanged {
                key_type: "RSA".into(),
                offered: "SHA256:abc".into(),
                offending: None,
            }
        );
    }

    #[test]
    fn host_key_unknown() {
        assert_eq!(
            diagnose(&captured("ssh-host-key-unknown.log")),
            Diagnosis::HostKeyUnknown {
                key_type: "ED25519".into()
            }
        );
    }

    #[test]
    fn connection_problems() {
        assert_eq!(diagnose(&captured("ssh-refused.log")), Diagnosis::Refused);
        assert_eq!(
            diagnose(&captured("ssh-connect-timeout.log")),
            Diagnosis::TimedOut
        );
        assert_eq!(
            diagnose(&captured("ssh-banner-timeout.log")),
            Diagnosis::TimedOut
        );
        assert_eq!(
            diagnose(&captured("ssh-no-route.log")),
            Diagnosis::Unreachable(
                "connect to host 10.213.250.99 port 22: No route to host".into()
            )
        );
        assert_eq!(
            diagnose(&captured("ssh-network-unreachable.log")),
            Diagnosis::Unreachable(
                "connect to host 10.213.250.10 port 22: Network is unreachable".into()
            )
        );
        assert_eq!(
            diagnose(&captured("ssh-cannot-resolve.log")),
            Diagnosis::CannotResolve(
                "Could not resolve hostname nope.invalid: Temporary failure in name resolution"
                    .into()
            )
        );
    }

    #[test]
    fn auth_failed() {
        let expected = Diagnosis::AuthFailed(
            "root@10.213.250.10: Permission denied (publickey,password).".into(),
        );
        assert_eq!(diagnose(&captured("ssh-auth-failed.log")), expected);
        // accept-new first records the key ("Warning: Permanently added ..."), then fails.
        assert_eq!(
            diagnose(&captured("ssh-auth-failed-accept-new.log")),
            expected
        );
        // Hand-written: the server's limit on offered keys, as OpenSSH words it.
        let too_many =
            "Received disconnect from 10.0.0.9 port 22:2: Too many authentication failures\n";
        assert!(matches!(diagnose(too_many), Diagnosis::AuthFailed(_)));
    }

    #[test]
    fn anything_else_keeps_the_last_lines() {
        // The host's sshd refused the client (tcp wrappers) before its banner.
        assert_eq!(
            diagnose(&captured("ssh-closed-before-banner.log")),
            Diagnosis::Other(
                "kex_exchange_identification: read: Connection reset by peer; Connection \
                 reset by 10.213.250.10 port 22"
                    .into()
            )
        );
        // Hand-written: the "Permanently added" notice is not a reason.
        let log = "Warning: Permanently added 'x' (ED25519) to the list of known hosts.\n\
                   kex_exchange_identification: Connection closed by remote host\n";
        assert_eq!(
            diagnose(log),
            Diagnosis::Other(
                "kex_exchange_identification: Connection closed by remote host".into()
            )
        );
        assert_eq!(
            diagnose(""),
            Diagnosis::Other("ssh exited without a message".into())
        );
    }
}
