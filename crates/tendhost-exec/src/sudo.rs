//! Recognising sudo's own failures in a finished command's result, so "sudo wants a password"
//! becomes [`ExecError::SudoPasswordRequired`] instead of an ordinary non-zero exit.
//!
//! Deciding whether sudo is used lives in `cmd.rs` ([`crate::Privilege`]).

use crate::error::ExecError;

/// If `argv` ran through sudo and sudo itself failed, the error saying so.
///
/// Only sudo's own refusals are recognised (they happen before the program starts): exit code 1
/// with a first stderr line `sudo: a password is required` / `sudo: a terminal is required ...`,
/// or `Sorry, user X is not allowed to execute ...`; exit code 127 with `sudo: not found`.
/// Messages from sudo 1.9 (Debian 12) in the C locale.
pub(crate) fn sudo_failure(
    used_sudo: bool,
    exit_code: i32,
    stderr: &str,
    host: &str,
    user: &str,
) -> Option<ExecError> {
    if !used_sudo {
        return None;
    }
    let first_line = stderr.lines().find(|line| !line.trim().is_empty())?.trim();
    let sudo_message = first_line.starts_with("sudo: ");
    if exit_code == 1
        && sudo_message
        && (first_line.contains("a password is required")
            || first_line.contains("a terminal is required"))
    {
        return Some(ExecError::SudoPasswordRequired {
            host: host.to_owned(),
            user: user.to_owned(),
        });
    }
    if exit_code == 1
        && (first_line.starts_with("Sorry, user ")
            || (sudo_message && first_line.contains("not in the sudoers file")))
    {
        return Some(ExecError::SudoFailed {
            host: host.to_owned(),
            user: user.to_owned(),
            detail: first_line.to_owned(),
        });
    }
    if exit_code == 127 && first_line.contains("sudo") && first_line.contains("not found") {
        return Some(ExecError::SudoFailed {
            host: host.to_owned(),
            user: user.to_owned(),
            detail: format!("sudo is not installed ({first_line})"),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use crate::error::ExecError;
    use crate::sudo::sudo_failure;

    #[test]
    fn password_required() {
        let err = sudo_failure(true, 1, "sudo: a password is required\n", "db1", "deploy");
        assert!(matches!(err, Some(ExecError::SudoPasswordRequired { .. })));
        assert_eq!(
            err.unwrap().to_string(),
            "sudo requires a password on db1 (user \"deploy\"); allow the needed commands \
             without a password (NOPASSWD) or log in as root"
        );
    }

    #[test]
    fn not_allowed_and_missing() {
        let err = sudo_failure(
            true,
            1,
            "Sorry, user deploy is not allowed to execute '/usr/bin/apt-get update' as root on db1.\n",
            "db1",
            "deploy",
        );
        assert!(matches!(err, Some(ExecError::SudoFailed { .. })));
        let err = sudo_failure(true, 127, "sh: 1: sudo: not found\n", "db1", "deploy");
        assert!(err.unwrap().to_string().contains("sudo is not installed"));
    }

    #[test]
    fn ordinary_failures_are_left_alone() {
        assert!(sudo_failure(false, 1, "sudo: a password is required\n", "h", "u").is_none());
        assert!(sudo_failure(true, 1, "E: Could not open lock file\n", "h", "u").is_none());
        assert!(sudo_failure(true, 100, "sudo: a password is required\n", "h", "u").is_none());
        assert!(sudo_failure(true, 0, "", "h", "u").is_none());
    }
}
