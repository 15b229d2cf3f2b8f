//! Builders of the commands the operations run: one `Cmd` per package-manager call
//! (`command::apt`, `command::dnf`), the one-command look at an apt host (`command::look`), the
//! detached job scripts (`command::job`) and the system
//! probes (`command::system`). Every value that reaches a shell line is an argv element of a
//! `Cmd` or goes through `tendhost_exec::quote`. Nothing here runs anything.

pub mod apt;
pub mod dnf;
pub mod job;
pub mod look;
pub mod services;
pub mod system;
