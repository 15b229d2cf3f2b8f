//! Reading why `ssh` could not connect from its own log (`-E` file of the master): the pure
//! classification, unit-tested on messages captured from OpenSSH 9.2p1 (Debian 12).
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

    // Captured from OpenSSH_9.2p1 Debian-2+deb12u10 against a loopback sshd (see
    // tests/src/sshd.rs), by running the master command with the failure set up.
    const CHANGED: &str = "\
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!
Someone could be eavesdropping on you right now (man-in-the-middle attack)!
It is also possible that a host key has just been changed.
The fingerprint for the ED25519 key sent by the remote host is
SHA256:fhPVowUHV9FNz47RWK4VrGZuDmlmuMoh9f1FF2C0Uqk.
Please contact your system administrator.
Add correct host key in /tmp/sshdexp.S9Y3/kh to get rid of this message.
Offending ED25519 key in /tmp/sshdexp.S9Y3/kh:1
  remove with:
  ssh-keygen -f \"/tmp/sshdexp.S9Y3/kh\" -R \"[127.0.0.1]:42022\"
Host key for [127.0.0.1]:42022 has changed and you have requested strict checking.
Host key verification failed.
";

    #[test]
    fn host_key_changed() {
        assert_eq!(
            diagnose(CHANGED),
            Diagnosis::HostKeyChanged {
                key_type: "ED25519".into(),
                offered: "SHA256:fhPVowUHV9FNz47RWK4VrGZuDmlmuMoh9f1FF2C0Uqk".into(),
                offending: Some((PathBuf::from("/tmp/sshdexp.S9Y3/kh"), 1)),
            }
        );
    }

    #[test]
    fn host_key_unknown() {
        let log = "No ED25519 host key is known for [127.0.0.1]:42022 and you have requested \
                   strict checking.\nHost key verification failed.\n";
        assert_eq!(
            diagnose(log),
            Diagnosis::HostKeyUnknown {
                key_type: "ED25519".into()
            }
        );
    }

    #[test]
    fn connection_problems() {
        assert_eq!(
            diagnose("ssh: connect to host 127.0.0.1 port 1: Connection refused\n"),
            Diagnosis::Refused
        );
        assert_eq!(
            diagnose("connect to host 10.0.0.9 port 22: Connection timed out\n"),
            Diagnosis::TimedOut
        );
        assert_eq!(
            diagnose(
                "Connection timed out during banner exchange\nConnection to 127.0.0.1 port 40000 timed out\n"
            ),
            Diagnosis::TimedOut
        );
        assert_eq!(
            diagnose("ssh: connect to host 10.0.0.9 port 22: No route to host\n"),
            Diagnosis::Unreachable("connect to host 10.0.0.9 port 22: No route to host".into())
        );
        assert_eq!(
            diagnose("ssh: Could not resolve hostname nope.invalid: Name or service not known\n"),
            Diagnosis::CannotResolve(
                "Could not resolve hostname nope.invalid: Name or service not known".into()
            )
        );
    }

    #[test]
    fn auth_failed() {
        let log = "Warning: Permanently added '[127.0.0.1]:42022' (ED25519) to the list of known \
                   hosts.\nroot@127.0.0.1: Permission denied (publickey).\n";
        assert_eq!(
            diagnose(log),
            Diagnosis::AuthFailed("root@127.0.0.1: Permission denied (publickey).".into())
        );
    }

    #[test]
    fn anything_else_keeps_the_last_lines() {
        let log = "Warning: Permanently added 'x' (ED25519) to the list of known hosts.\n\
                   kex_exchange_identification: Connection closed by remote host\n\
                   Connection closed by 127.0.0.1 port 2222\n";
        assert_eq!(
            diagnose(log),
            Diagnosis::Other(
                "kex_exchange_identification: Connection closed by remote host; Connection \
                 closed by 127.0.0.1 port 2222"
                    .into()
            )
        );
        assert_eq!(
            diagnose(""),
            Diagnosis::Other("ssh exited without a message".into())
        );
    }
}
