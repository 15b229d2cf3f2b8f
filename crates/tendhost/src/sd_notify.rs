//! The service manager's notify protocol (`sd_notify(3)`), in the few lines it takes: when
//! `NOTIFY_SOCKET` names a Unix datagram socket (a path, or `@name` in the abstract namespace),
//! each state change is one datagram of `KEY=VALUE` lines. `run` says `READY=1` once it is
//! listening, `RELOADING=1` ... `READY=1` around a config reload and `STOPPING=1` when
//! shutdown begins; without the variable nothing is sent. Failures are logged, never fatal.

use std::os::unix::net::UnixDatagram;

/// Sends `state` (e.g. `"READY=1\nSTATUS=listening"`) to the service manager, if any.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(err) = send(&path, state) {
        tracing::warn!(socket = %path.to_string_lossy(), %err, "cannot notify the service manager");
    }
}

fn send(path: &std::ffi::OsStr, state: &str) -> std::io::Result<usize> {
    let socket = UnixDatagram::unbound()?;
    let bytes = path.as_encoded_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        socket.send_to_addr(state.as_bytes(), &addr)
    } else {
        socket.send_to(state.as_bytes(), path)
    }
}
