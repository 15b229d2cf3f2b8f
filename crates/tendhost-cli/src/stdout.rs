//! Writing to stdout without panicking when it is closed. `tendhost hosts | head -3` closes the
//! pipe after three lines: the command then ends quietly with status 0, as the reader asked,
//! where `println!` would panic. Any other write error ends it with status 1 and one line on
//! stderr naming it. Every line the CLI and the binary's subcommands print goes through here
//! ([`out!`](crate::out), [`outln!`](crate::outln)).

use std::io::Write;

/// Writes `args` to stdout, or ends the process as described above.
pub fn write(args: std::fmt::Arguments<'_>) {
    if let Err(err) = std::io::stdout().lock().write_fmt(args) {
        closed(&err);
    }
}

/// Writes `bytes` to stdout and flushes, or ends the process as described above.
pub fn write_bytes(bytes: &[u8]) {
    let mut stdout = std::io::stdout().lock();
    if let Err(err) = stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        closed(&err);
    }
}

fn closed(err: &std::io::Error) -> ! {
    if err.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("tendhost: cannot write to stdout: {err}");
    std::process::exit(1);
}

/// `print!` through [`write`].
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::stdout::write(format_args!($($arg)*))
    };
}

/// `println!` through [`write`].
#[macro_export]
macro_rules! outln {
    () => {
        $crate::stdout::write(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::stdout::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}
