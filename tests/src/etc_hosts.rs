//! Test names in `/etc/hosts`: the machine's DNS resolver is unreachable (see TESTBED.md), so a
//! test that needs a name resolving to an address adds a line and removes it again on drop.
//! Lines carry a marker with the test process's pid, so parallel test processes only ever
//! remove their own lines, and every read-modify-write holds an exclusive lock on a file
//! in the temp dir, so two test processes (nextest runs each test in its own) never lose
//! each other's lines or read the file half-written. Needs write access to `/etc/hosts` (root,
//! as in CI).

use std::sync::Mutex;

const ETC_HOSTS: &str = "/etc/hosts";

/// Serialises this process's read-modify-write of the file.
static LOCK: Mutex<()> = Mutex::new(());

/// One `ADDRESS NAME` line in `/etc/hosts`, removed on drop.
pub struct HostsEntry {
    line: String,
}

impl HostsEntry {
    /// Adds `addr name` to `/etc/hosts`.
    pub fn add(addr: &str, name: &str) -> HostsEntry {
        let line = format!("{addr} {name} # tendhost-test pid {}", std::process::id());
        edit(|text| {
            let mut text = text.to_owned();
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&line);
            text.push('\n');
            text
        });
        HostsEntry { line }
    }
}

impl Drop for HostsEntry {
    fn drop(&mut self) {
        edit(|text| {
            let mut kept = String::with_capacity(text.len());
            for line in text.lines().filter(|line| *line != self.line) {
                kept.push_str(line);
                kept.push('\n');
            }
            kept
        });
    }
}

/// Rewrites `/etc/hosts` in place (it may be a bind mount, so no rename).
fn edit(change: impl FnOnce(&str) -> String) {
    let _guard = LOCK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let lock_path = std::env::temp_dir().join("tendhost-etc-hosts.lock");
    let lock_file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .unwrap_or_else(|err| panic!("{}: {err}", lock_path.display()));
    // Across test processes; released when `lock_file` is dropped at the end.
    lock_file
        .lock()
        .unwrap_or_else(|err| panic!("lock {}: {err}", lock_path.display()));
    let text = std::fs::read_to_string(ETC_HOSTS).expect("read /etc/hosts");
    std::fs::write(ETC_HOSTS, change(&text))
        .expect("write /etc/hosts (the API host tests need root)");
}
