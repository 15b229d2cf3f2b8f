//! Hostile hosts: real sshd hosts of the fleet (the unchanged base image, started by
//! `tests/fleet/hostile/boot.sh`) whose every SSH session runs `tests/fleet/hostile/shell.sh`
//! with one [`Hostile`] profile instead of the command it asked for (sshd's `ForceCommand`).
//! `docker exec` still reaches them normally, so out-of-band checks and package installs work.

use std::path::PathBuf;

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
