//! The rules a host definition follows, written once for both places a host is defined: a
//! `[[host]]` or `[defaults]` table in the config file (`config`) and a `POST /hosts` body
//! (`http::new_host`). Each rule takes a value and answers with what it means or a
//! [`RuleError`]: the [`Field`] at fault and a reason that does not repeat the field's name.
//!
//! Callers render the error their own way: the config file as `file:line:col: {subject}
//! {reason}` (`port must be between 1 and 65535, not 0`), the API as a 422 naming the JSON path
//! (`port: must be between 1 and 65535, not 0`). Nothing here knows TOML spans or HTTP.
//!
//! Words the config file spells out (`known_hosts = "accept-new"`) are parsed here too; the API
//! gets them as enums (`tendhost_api::hosts`) whose wire names are these same words.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use tendhost_core::spec::{
    AptUpgrade, KnownHostsPolicy, MaintenanceWindow, PinnedManager, UpdatePolicy, Weekday,
    is_valid_host_name,
};

/// A field of a host definition that a rule checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Name,
    Addr,
    Port,
    User,
    SshKey,
    KnownHosts,
    HostKeySha256,
    ConnectTimeout,
    CommandTimeout,
    CheckInterval,
    SshIdleTimeout,
    ReconnectWindow,
    DpkgLockTimeout,
    JobTimeout,
    /// One entry of `tags`.
    Tag,
    RebootCommand,
    PackageManager,
    Updates,
    AptUpgrade,
    WindowStart,
    WindowEnd,
    /// One entry of `maintenance_window.days`.
    WindowDay,
}

/// Why a value breaks a host rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub field: Field,
    /// What is wrong, without the field's name (`"soon" is not a duration (...)`).
    pub reason: String,
}

type Rule<T> = Result<T, RuleError>;

fn refuse<T>(field: Field, reason: String) -> Rule<T> {
    Err(RuleError { field, reason })
}

/// The reason a name (of a host, a tag or a group) is refused, if it is.
pub fn name_problem(name: &str) -> Option<String> {
    (!is_valid_host_name(name))
        .then(|| format!("{name:?} is invalid: use 1 to 64 characters from A-Z a-z 0-9 . _ -"))
}

/// A host name.
pub fn host_name(name: &str) -> Rule<()> {
    name_problem(name).map_or(Ok(()), |reason| refuse(Field::Name, reason))
}

/// One tag.
pub fn tag(tag: &str) -> Rule<()> {
    name_problem(tag).map_or(Ok(()), |reason| refuse(Field::Tag, reason))
}

/// An SSH address: an IP address or a DNS name (`local` is decided by the caller).
pub fn addr(addr: &str) -> Rule<()> {
    if addr.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let valid_name = !addr.is_empty()
        && addr.len() <= 253
        && addr.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if valid_name {
        Ok(())
    } else {
        refuse(
            Field::Addr,
            format!(
                "{addr:?} is not an IP address or DNS name (use addr = \"local\" for this machine)"
            ),
        )
    }
}

/// An SSH port.
pub fn port(port: i64) -> Rule<u16> {
    u16::try_from(port)
        .ok()
        .filter(|&port| port != 0)
        .map_or_else(
            || {
                refuse(
                    Field::Port,
                    format!("must be between 1 and 65535, not {port}"),
                )
            },
            Ok,
        )
}

/// A login name: letters, digits, `.`, `_`, `-`, at most 32, not starting with `-`.
pub fn user(user: &str) -> Rule<()> {
    let valid = !user.is_empty()
        && user.len() <= 32
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        && !user.starts_with('-');
    if valid {
        Ok(())
    } else {
        refuse(
            Field::User,
            format!("{user:?} is not a valid login name (letters, digits, . _ -)"),
        )
    }
}

/// A private key file that exists (the path already resolved by the caller).
pub fn ssh_key(path: &Path) -> Rule<()> {
    if path.is_file() {
        Ok(())
    } else {
        refuse(
            Field::SshKey,
            format!("{} does not exist or is not a file", path.display()),
        )
    }
}

/// A pinned host key fingerprint as `ssh-keygen -l` prints it: `SHA256:` and 43 base64
/// characters (a trailing `=` is dropped).
pub fn host_key_sha256(value: &str) -> Rule<String> {
    let digest = value
        .strip_prefix("SHA256:")
        .map(|d| d.trim_end_matches('='));
    match digest {
        Some(digest)
            if digest.len() == 43
                && digest
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/')) =>
        {
            Ok(format!("SHA256:{digest}"))
        }
        _ => refuse(
            Field::HostKeySha256,
            format!(
                "{value:?} is not a SHA256 fingerprint: write it as ssh-keygen -l prints it, \
                 e.g. \"SHA256:{}\"",
                "A".repeat(43)
            ),
        ),
    }
}

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

/// The upper bound of `keep_job_dirs` (listed in docs/configuration.md).
pub const MAX_KEEP_JOB_DIRS: usize = 1000;

/// Upper bounds of the durations outside a host (listed in docs/configuration.md).
pub const MAX_WS_PING_INTERVAL: Duration = HOUR;
pub const MAX_RESOLVE_TIMEOUT: Duration = Duration::from_secs(5 * 60);
pub const MAX_APPROVAL_TIMEOUT: Duration = Duration::from_secs(30 * 24 * 3600);

/// `approve_after` as the core takes it (the same words in a `POST /fleet/update` body and a
/// `[[schedule]]`).
pub fn approve_after(
    gate: tendhost_api::gates::ApproveAfter,
) -> tendhost_core::model::ApproveAfter {
    use tendhost_api::gates::ApproveAfter;
    use tendhost_core::model::ApproveAfter as Gate;
    match gate {
        ApproveAfter::Canary => Gate::Canary,
        ApproveAfter::Batch(index) => Gate::Batch(usize::try_from(index).unwrap_or(usize::MAX)),
    }
}

/// The upper bound of one of the host's timing settings (listed in docs/configuration.md).
/// Beyond these a value is a typo, and it would overflow time arithmetic somewhere.
pub fn max_duration(field: Field) -> Duration {
    match field {
        Field::ConnectTimeout => Duration::from_secs(10 * 60),
        Field::CheckInterval => Duration::from_secs(30 * 24 * 3600),
        Field::CommandTimeout
        | Field::SshIdleTimeout
        | Field::ReconnectWindow
        | Field::DpkgLockTimeout
        | Field::JobTimeout => DAY,
        _ => MINUTE,
    }
}

/// A humantime duration greater than zero and at most `max`; the reason alone, for durations
/// outside a host.
pub fn duration_reason(value: &str, max: Duration) -> Result<Duration, String> {
    match humantime::parse_duration(value) {
        Ok(duration) if duration.is_zero() => Err("must be greater than zero".to_owned()),
        Ok(duration) if duration > max => Err(format!(
            "{value:?} is too long: at most {}",
            humantime::format_duration(max)
        )),
        Ok(duration) => Ok(duration),
        Err(err) => Err(format!(
            "{value:?} is not a duration ({err}); write e.g. \"30s\", \"5m\", \"1h 30m\""
        )),
    }
}

/// One of the host's timing settings (`field` says which), within [`max_duration`].
pub fn duration(field: Field, value: &str) -> Rule<Duration> {
    duration_reason(value, max_duration(field)).or_else(|reason| refuse(field, reason))
}

/// `reboot_command`: an argv whose program is named.
pub fn reboot_command(argv: &[String]) -> Rule<()> {
    if argv.first().is_none_or(String::is_empty) {
        refuse(
            Field::RebootCommand,
            "must be a non-empty argv array, e.g. [\"systemctl\", \"reboot\"]".to_owned(),
        )
    } else {
        Ok(())
    }
}

/// `maintenance_window.start` or `.end` (`field` says which): minutes after midnight.
pub fn window_time(field: Field, value: &str) -> Rule<u16> {
    MaintenanceWindow::parse_hhmm(value).map_or_else(
        || {
            refuse(
                field,
                format!("{value:?} is not a time: use \"HH:MM\" (24-hour)"),
            )
        },
        Ok,
    )
}

/// One of `maintenance_window.days` (any case).
pub fn window_day(day: &str) -> Rule<Weekday> {
    Weekday::parse(day).map_or_else(
        || {
            refuse(
                Field::WindowDay,
                format!("{day:?} is not one of mon, tue, wed, thu, fri, sat, sun"),
            )
        },
        Ok,
    )
}

/// `word` looked up in `words`, else "must be ... not ...".
fn one_of<T: Copy>(field: Field, word: &str, words: &[(&str, T)]) -> Rule<T> {
    if let Some((_, value)) = words.iter().find(|(name, _)| *name == word) {
        return Ok(*value);
    }
    let quoted: Vec<String> = words.iter().map(|(name, _)| format!("{name:?}")).collect();
    let choices = match quoted.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    };
    refuse(field, format!("must be {choices}, not {word:?}"))
}

/// `known_hosts`.
pub fn known_hosts(word: &str) -> Rule<KnownHostsPolicy> {
    one_of(
        Field::KnownHosts,
        word,
        &[
            ("strict", KnownHostsPolicy::Strict),
            ("accept-new", KnownHostsPolicy::AcceptNew),
        ],
    )
}

/// `package_manager`.
pub fn package_manager(word: &str) -> Rule<PinnedManager> {
    one_of(
        Field::PackageManager,
        word,
        &[
            ("apt", PinnedManager::Apt),
            ("dnf", PinnedManager::Dnf),
            ("yum", PinnedManager::Yum),
        ],
    )
}

/// `policy.updates`.
pub fn updates(word: &str) -> Rule<UpdatePolicy> {
    one_of(
        Field::Updates,
        word,
        &[
            ("allowed", UpdatePolicy::Allowed),
            ("check-only", UpdatePolicy::CheckOnly),
        ],
    )
}

/// `policy.apt_upgrade`.
pub fn apt_upgrade(word: &str) -> Rule<AptUpgrade> {
    one_of(
        Field::AptUpgrade,
        word,
        &[
            ("dist-upgrade", AptUpgrade::DistUpgrade),
            ("upgrade", AptUpgrade::Upgrade),
        ],
    )
}

#[cfg(test)]
mod tests;
