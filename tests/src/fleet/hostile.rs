//! Hostile hosts: real sshd hosts of the fleet (the unchanged base image, started by
//! `tests/fleet/hostile/boot.sh`) whose every SSH session runs `tests/fleet/hostile/shell.sh`
//! with one [`Hostile`] profile instead of the command it asked for (sshd's `ForceCommand`).
//! `docker exec` still reaches them normally, so out-of-band checks and package installs work.

use std::path::PathBuf;

use crate::fleet::Fleet;

/// How a hostile host answers every SSH command (see `tests/fleet/hostile/shell.sh`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Hostile {
    /// Prints the same line for ever.
    Endless,
    /// Prints one 100 MB line, then exits 0.
    HugeLine,
    /// Prints 4 MB of random bytes on stdout and on stderr, then exits 0.
    Garbage,
    /// Never prints anything and never exits.
    NeverExits,
    /// Starts an apt-like answer and is killed (SIGKILL) in the middle of a line.
    ExitsMidLine,
    /// Prints one byte a second, for ever.
    Trickle,
    /// Runs every command normally but answers the reboot-required probe with nonsense.
    RebootProbe,
}

impl Hostile {
    /// Every profile, in a fixed order.
    pub const ALL: [Hostile; 7] = [
        Hostile::Endless,
        Hostile::HugeLine,
        Hostile::Garbage,
        Hostile::NeverExits,
        Hostile::ExitsMidLine,
        Hostile::Trickle,
        Hostile::RebootProbe,
    ];

    /// The profile's name in `shell.sh` (and in the host's name).
    pub fn as_str(self) -> &'static str {
        match self {
            Hostile::Endless => "endless",
            Hostile::HugeLine => "huge-line",
            Hostile::Garbage => "garbage",
            Hostile::NeverExits => "never-exits",
            Hostile::ExitsMidLine => "exits-mid-line",
            Hostile::Trickle => "trickle",
            Hostile::RebootProbe => "reboot-probe",
        }
    }
}

/// Where the scripts live on this machine (mounted read-only into hostile hosts).
pub(crate) fn scripts_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fleet/hostile")
}

/// Where hostile hosts see [`scripts_dir`].
pub(crate) const MOUNT: &str = "/srv/tendhost/hostile";

/// A daemon config managing every host of `fleet` as root by the fleet's key (tagged
/// `ordinary` or `hostile`; hostile hosts with apt pinned, so their answers reach apt's
/// parsers past the detection), with the short `command_timeout` and `job_timeout` that make
/// hostile jobs end, and no background checks.
pub fn hostile_config(fleet: &Fleet, log_level: &str) -> String {
    let mut config = format!(
        "[daemon]\nlog_level = \"{log_level}\"\ncheck_on_start = false\n\n\
         [defaults]\nuser = \"root\"\nssh_key = \"{}\"\nknown_hosts = \"accept-new\"\n\
         connect_timeout = \"10s\"\ncommand_timeout = \"15s\"\njob_timeout = \"45s\"\n\
         reconnect_window = \"10s\"\n",
        fleet.ssh_key().display()
    );
    for host in fleet.hosts() {
        config.push_str(&format!(
            "\n[[host]]\nname = \"{}\"\naddr = \"{}\"\n",
            host.name(),
            host.addr()
        ));
        if host.hostile().is_some() {
            config.push_str("tags = [\"hostile\"]\npackage_manager = \"apt\"\n");
        } else {
            config.push_str("tags = [\"ordinary\"]\n");
        }
    }
    config
}
