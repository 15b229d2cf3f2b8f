//! tendhost-exec: the only crate that runs commands, on a host over SSH ([`SshExecutor`]) or on
//! this machine ([`LocalExecutor`]), behind one dyn-compatible trait ([`Executor`]).
//!
//! What lives here: [`Cmd`] (program + arguments + environment + privilege, never a shell line
//! pasted together), the one shell-quoting function [`quote`], output streaming
//! ([`OutputSink`]) and results ([`Output`]), and [`ExecError`], which tells apart every failure
//! the host actor maps to a host state. What does not: which commands to run (tendhost-pkg),
//! host states (tendhost-core), configuration parsing (the daemon).
//!
//! ```no_run
//! use std::sync::Arc;
//! use tendhost_exec::{Cmd, ExecEnv, Executor, NoSink, SshExecutor, SshTarget};
//!
//! # async fn example() -> Result<(), tendhost_exec::ExecError> {
//! let env = ExecEnv::open("/var/lib/tendhost")?; // once per process
//! let mut target = SshTarget::new("web1", "10.0.0.5");
//! target.user = "deploy".into();
//! let executor: Arc<dyn Executor> = Arc::new(SshExecutor::new(target, &env));
//! let output = executor
//!     .run(&Cmd::new("apt-get").arg("update").privileged(), &NoSink)
//!     .await?
//!     .ensure_success()?;
//! println!("{} took {:?}", output.command, output.duration); // sudo -n -- apt-get update
//! # Ok(()) }
//! ```

mod cmd;
mod error;
mod executor;
mod http;
mod local;
mod output;
mod quote;
mod ssh;
mod sudo;
mod timing;

pub use cmd::{Cmd, CmdProblem, Privilege};
pub use error::ExecError;
pub use executor::{BoxFuture, DEFAULT_COMMAND_TIMEOUT, Executor};
pub use http::{HttpAnswer, HttpUrl};
pub use local::{LocalExecutor, LocalTarget};
pub use output::{MAX_CAPTURE, NoSink, Output, OutputSink, Stream};
pub use quote::{quote, quote_line};
pub use ssh::{ConnectErrors, ExecEnv, KnownHostsPolicy, SSH_KEY_ENV, SshExecutor, SshTarget};
pub use timing::set_connect_observer;
