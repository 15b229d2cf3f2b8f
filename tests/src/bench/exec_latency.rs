//! The `exec_latency` bench's core: latency of one trivial command (`true`) through
//! `SshExecutor` on a cold host (new master connection: TCP, key exchange, authentication)
//! versus a warm one (multiplexed over the open master). Against a Debian host of the Docker
//! test fleet (left out with `TENDHOST_SKIP_FLEET=1`) and the loopback sshd of
//! `crate::sshd`; `LocalExecutor` for reference. Prints a Markdown table for
//! docs/benchmarks.md as it goes and returns what it ran ([`Outcome`]). No API calls: the
//! daemon is not involved.

use std::time::{Duration, Instant};

use tendhost_exec::{
    Cmd, ExecEnv, Executor, KnownHostsPolicy, LocalExecutor, LocalTarget, NoSink, SshExecutor,
    SshTarget,
};

use crate::fleet::Fleet;
use crate::sshd::TestSshd;

/// What one run did: each printed row's name and number of runs, and the loopback sshd's
/// logins (one per cold round plus one for the warm executor, when masters are reused).
#[derive(Debug)]
pub struct Outcome {
    pub rows: Vec<(String, usize)>,
    pub loopback_logins: usize,
    pub expected_logins: usize,
}

/// Runs the bench with `rounds` cold rounds per SSH target (warm and local: 10x as many).
pub async fn run(rounds: usize) -> Outcome {
    let data_dir = tempfile::tempdir().expect("data dir");
    let env = ExecEnv::open_with_key(data_dir.path(), None).expect("exec env");
    let mut rows = Vec::new();

    println!("| case | runs | median | p90 | min | max |");
    println!("| --- | --- | --- | --- | --- | --- |");

    if let Some(fleet) = Fleet::builder().apt(1).start().await {
        let host = &fleet.hosts()[0];
        let mut target = SshTarget::new("fleet-apt0", host.addr().to_string());
        target.key = Some(fleet.ssh_key().to_owned());
        target.known_hosts_policy = KnownHostsPolicy::AcceptNew;
        ssh_rows("fleet host (container)", &target, &env, rounds, &mut rows).await;
    }

    let sshd = TestSshd::start();
    let mut target = SshTarget::new("loopback", sshd.addr());
    target.port = sshd.port();
    sshd.user().clone_into(&mut target.user);
    target.key = Some(sshd.client_key());
    target.known_hosts_policy = KnownHostsPolicy::AcceptNew;
    let logins_before = sshd.accepted_logins();
    ssh_rows("loopback sshd", &target, &env, rounds, &mut rows).await;
    let logins = sshd.accepted_logins() - logins_before;

    let local = LocalExecutor::new(LocalTarget::new("bench-local"));
    let mut local_times = Vec::with_capacity(rounds * 10);
    for _ in 0..rounds * 10 {
        local_times.push(time(&local, &Cmd::new("true")).await);
    }
    row("local: `true`", &mut local_times, &mut rows);
    let expected_logins = rounds + 1;
    println!();
    println!(
        "loopback sshd accepted {logins} logins for {rounds} cold + 1 warm executors \
         (expected {expected_logins})"
    );
    Outcome {
        rows,
        loopback_logins: logins,
        expected_logins,
    }
}

/// Cold: a fresh executor per round, so each command opens a new master. Warm: one executor,
/// connected once, then measured.
async fn ssh_rows(
    name: &str,
    target: &SshTarget,
    env: &ExecEnv,
    rounds: usize,
    rows: &mut Vec<(String, usize)>,
) {
    let cmd = Cmd::new("true");
    let mut cold = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let executor = SshExecutor::new(target.clone(), env);
        cold.push(time(&executor, &cmd).await);
        executor.close().await;
    }
    let executor = SshExecutor::new(target.clone(), env);
    time(&executor, &cmd).await;
    let mut warm = Vec::with_capacity(rounds * 10);
    for _ in 0..rounds * 10 {
        warm.push(time(&executor, &cmd).await);
    }
    executor.close().await;
    row(&format!("{name}: cold (new connection)"), &mut cold, rows);
    row(&format!("{name}: warm (multiplexed)"), &mut warm, rows);
}

/// Runs `cmd`, which must succeed (the bench panics naming the error otherwise).
async fn time(executor: &dyn Executor, cmd: &Cmd) -> Duration {
    let started = Instant::now();
    let output = executor
        .run(cmd, &NoSink)
        .await
        .and_then(tendhost_exec::Output::ensure_success)
        .unwrap_or_else(|err| panic!("benchmark command failed: {err}"));
    drop(output);
    started.elapsed()
}

/// Prints one row of the table (nothing for no samples) and records it in `rows`.
fn row(name: &str, samples: &mut [Duration], rows: &mut Vec<(String, usize)>) {
    rows.push((name.to_owned(), samples.len()));
    if samples.is_empty() {
        return;
    }
    samples.sort_unstable();
    let pick = |fraction: f64| {
        // Nearest-rank quantile; samples are never empty here.
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let idx = ((samples.len() as f64 * fraction).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[idx]
    };
    let ms = |duration: Duration| format!("{:.1} ms", duration.as_secs_f64() * 1000.0);
    println!(
        "| {name} | {} | {} | {} | {} | {} |",
        samples.len(),
        ms(pick(0.5)),
        ms(pick(0.9)),
        ms(samples[0]),
        ms(samples[samples.len() - 1]),
    );
}
