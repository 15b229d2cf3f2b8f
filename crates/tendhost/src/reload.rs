//! Config reload: on SIGHUP (`systemctl reload`) the daemon re-reads its config file and
//! applies what can change while it runs, in one place (`Reloader::apply`; later sections such
//! as schedules and notifiers add their step there):
//!
//! - tokens: the file's `[daemon.auth] tokens` (and the tokens file, read again) are in force;
//! - groups: as in the file;
//! - hosts: added ones are added, removed ones removed (one with a running job when the job
//!   ends), changed ones get their new definition for their next job (a busy one after its
//!   job); hosts registered through the API are left alone;
//! - schedules: as in the file (a schedule that keeps its name keeps its pause and last run;
//!   a run already started goes on);
//! - notifiers: when `[[notify]]` or `daemon.public_url` changed, a new notification service
//!   for the file's notifiers replaces the running one; the old one stops, and its deliveries
//!   still `pending` are recorded as failed ("the notifiers were reloaded before delivering
//!   it"), never left pending.
//!
//! Settings that only a restart can change (bind address, TLS, data_dir, the auth mode) are
//! logged as such. An invalid file changes nothing: every problem is logged as
//! `file:line:col: message`. Either way an event says what happened (`config_reloaded {added,
//! removed, changed}` or `config_reload_failed {errors}`), and the service manager is told
//! `RELOADING=1` then `READY=1`.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, PoisonError};

use tendhost_core::Fleet;
use tendhost_core::events::EventKind;
use tendhost_core::model::FleetError;
use tendhost_core::schedule::{ScheduleChanges, Schedules};
use tendhost_core::spec::HostSpec;
use tendhost_store::Store;
use tokio::task::JoinHandle;

use crate::config::{self, Config, ConfigError};
use crate::http::NotifySlot;
use crate::sd_notify;

/// What a reload changed, by host name (each list sorted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

/// Holds the config in force and applies new versions of the file.
pub struct Reloader {
    path: PathBuf,
    current: Config,
    fleet: Fleet,
    keyring: Arc<tendhost_auth::Keyring>,
    /// The `[[schedule]]` runner, when the daemon has one.
    schedules: Option<Schedules>,
    /// Removals and replacements waiting for a running job to end, by host.
    deferred: HashMap<String, JoinHandle<()>>,
    /// The notification service's slot and the store its deliveries go to.
    notify: Option<(NotifySlot, Store)>,
}

impl Reloader {
    /// `current` is the config the daemon started with; reloads read `current.source` with
    /// the process environment.
    pub fn new(current: Config, fleet: Fleet, keyring: Arc<tendhost_auth::Keyring>) -> Reloader {
        Reloader {
            path: current.source.clone(),
            current,
            fleet,
            keyring,
            schedules: None,
            deferred: HashMap::new(),
            notify: None,
        }
    }

    /// Reloads also replace the notification service in `slot` (deliveries recorded in
    /// `store`).
    #[must_use]
    pub fn with_notify(mut self, slot: NotifySlot, store: Store) -> Reloader {
        self.notify = Some((slot, store));
        self
    }

    /// Reloads also replace the schedules of `schedules`.
    #[must_use]
    pub fn with_schedules(mut self, schedules: Schedules) -> Reloader {
        self.schedules = Some(schedules);
        self
    }

    /// Reloads on every SIGHUP until the task is aborted.
    pub async fn on_hangup(mut self) {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hangup) = signal(SignalKind::hangup()) else {
            tracing::error!("cannot listen for SIGHUP; the config file is not reloaded");
            return;
        };
        while hangup.recv().await.is_some() {
            tracing::info!(path = %self.path.display(), "SIGHUP: reloading the config file");
            let _ = self.reload().await;
        }
    }

    /// Re-reads the file and applies it, or changes nothing; logs and announces the outcome.
    pub async fn reload(&mut self) -> Result<Changes, Vec<String>> {
        sd_notify::notify("RELOADING=1\nSTATUS=reloading the config file");
        let result = match config::load(&self.path, &|var| std::env::var(var).ok()) {
            Ok(new) => self.apply(new).await,
            Err(err) => Err(problems(&err)),
        };
        match &result {
            Ok(changes) => {
                tracing::info!(
                    added = ?changes.added,
                    removed = ?changes.removed,
                    changed = ?changes.changed,
                    "config reloaded"
                );
                self.announce(EventKind::ConfigReloaded {
                    added: changes.added.clone(),
                    removed: changes.removed.clone(),
                    changed: changes.changed.clone(),
                });
            }
            Err(errors) => {
                for error in errors {
                    tracing::error!(problem = %error, "config file not applied; the running config stays in force");
                }
                self.announce(EventKind::ConfigReloadFailed {
                    errors: errors.clone(),
                });
            }
        }
        sd_notify::notify("READY=1\nSTATUS=config reloaded");
        result
    }

    fn announce(&self, kind: EventKind) {
        if let Err(kind) = self.fleet.announce(kind) {
            tracing::error!(?kind, "not a daemon event; not published");
        }
    }

    /// Applies a valid config: the one place a reload changes the running daemon. What can
    /// fail (the tokens file) comes first, so a refused reload has changed nothing.
    async fn apply(&mut self, new: Config) -> Result<Changes, Vec<String>> {
        self.warn_restart_only(&new);
        // Notifiers: the new service starts first (a notifier that cannot start refuses the
        // file); it is put in force below, with the rest.
        let notify_changed = self.current.notify != new.notify
            || self.current.daemon.public_url != new.daemon.public_url;
        let fresh_notify = match &self.notify {
            Some((_, store)) if notify_changed => Some(
                crate::start_notify(&new, &self.fleet, store)
                    .map_err(|err| vec![format!("{}: {err:#}", self.path.display())])?,
            ),
            _ => None,
        };
        // Tokens.
        let auth = &new.daemon.auth;
        let tokens_mode = auth.enabled && (!auth.tokens.is_empty() || auth.tokens_file.is_some());
        if tokens_mode
            && self.keyring.tokens_file() == auth.tokens_file.as_deref()
            && let Err(problems) = self.keyring.set_config_tokens(auth.tokens.clone())
        {
            for problem in &problems {
                tracing::error!(%problem, "tokens_file not applied; the previous tokens stay in force");
            }
            return Err(problems);
        }
        // Groups.
        self.fleet.set_groups(new.groups.clone()).await;
        // Hosts.
        let old: BTreeMap<String, HostSpec> = self
            .current
            .hosts
            .iter()
            .map(|spec| (spec.name.clone(), spec.clone()))
            .collect();
        let mut changes = Changes::default();
        for spec in &new.hosts {
            if let Some(pending) = self.deferred.remove(&spec.name) {
                pending.abort();
            }
            match old.get(&spec.name) {
                None => changes.added.push(spec.name.clone()),
                Some(before) if before != spec => changes.changed.push(spec.name.clone()),
                Some(_) => continue,
            }
            self.put(spec.clone()).await;
        }
        for name in old.keys() {
            if !new.hosts.iter().any(|spec| spec.name == *name) {
                if let Some(pending) = self.deferred.remove(name) {
                    pending.abort();
                }
                changes.removed.push(name.clone());
                self.retire(name.clone()).await;
            }
        }
        // Schedules: replaced; a kept name keeps its pause and last run.
        if let Some(schedules) = &self.schedules {
            let changed = schedules.set_specs(new.schedules.clone());
            if changed != ScheduleChanges::default() {
                tracing::info!(
                    added = ?changed.added,
                    removed = ?changed.removed,
                    changed = ?changed.changed,
                    "schedules reloaded"
                );
            }
        }
        // Notifiers: the new service in force, the old one stopped; what it had not
        // delivered yet is recorded as failed.
        if let (Some(fresh), Some((slot, store))) = (fresh_notify, &self.notify) {
            let old = std::mem::replace(
                &mut *slot.write().unwrap_or_else(PoisonError::into_inner),
                fresh,
            );
            drop(old);
            match store
                .fail_pending_deliveries(
                    jiff::Timestamp::now().as_millisecond(),
                    "the notifiers were reloaded before delivering it".to_owned(),
                )
                .await
            {
                Ok(0) => {}
                Ok(n_ended) => tracing::warn!(
                    n_ended,
                    "notifications still pending at the reload are recorded as failed"
                ),
                Err(err) => tracing::error!(%err, "cannot record the pending notifications"),
            }
            tracing::info!(notifiers = new.notify.len(), "notifiers reloaded");
        }
        changes.added.sort();
        changes.removed.sort();
        changes.changed.sort();
        self.current = new;
        Ok(changes)
    }

    /// Puts a config host in place now, or after the job running on it.
    async fn put(&mut self, spec: HostSpec) {
        let name = spec.name.clone();
        match self.fleet.put_config_host(spec.clone()).await {
            Ok(_) => {}
            Err(FleetError::HostBusy { job_id, .. }) => {
                tracing::info!(host = %name, job = %job_id, "host changed in the config file; its new settings apply after its running job");
                let fleet = self.fleet.clone();
                let task = tokio::spawn(async move {
                    let mut job_id = job_id;
                    loop {
                        fleet.wait_job(&job_id).await;
                        match fleet.put_config_host(spec.clone()).await {
                            Err(FleetError::HostBusy { job_id: next, .. }) => job_id = next,
                            Err(err) => {
                                tracing::error!(host = %spec.name, %err, "cannot apply the host's new settings");
                                return;
                            }
                            Ok(_) => return,
                        }
                    }
                });
                self.deferred.insert(name, task);
            }
            Err(err) => {
                tracing::error!(host = %name, %err, "cannot apply the host from the config file");
            }
        }
    }

    /// Removes a host now, or when the job running on it ends.
    async fn retire(&mut self, name: String) {
        match self.fleet.retire_host(&name).await {
            Ok(()) => {}
            Err(FleetError::HostBusy { job_id, .. }) => {
                tracing::info!(host = %name, job = %job_id, "host removed from the config file; it goes when its running job ends");
                let fleet = self.fleet.clone();
                let host = name.clone();
                let task = tokio::spawn(async move {
                    let mut job_id = job_id;
                    loop {
                        fleet.wait_job(&job_id).await;
                        match fleet.retire_host(&host).await {
                            Err(FleetError::HostBusy { job_id: next, .. }) => job_id = next,
                            Err(err) => {
                                tracing::error!(%host, %err, "cannot remove the host");
                                return;
                            }
                            Ok(()) => return,
                        }
                    }
                });
                self.deferred.insert(name, task);
            }
            Err(err) => tracing::error!(host = %name, %err, "cannot remove the host"),
        }
    }

    /// Logs the settings of `new` that differ from the running ones but need a restart.
    fn warn_restart_only(&self, new: &Config) {
        let old = &self.current.daemon;
        let fresh = &new.daemon;
        let mut keys = Vec::new();
        if old.bind != fresh.bind {
            keys.push("daemon.bind");
        }
        if old.data_dir != fresh.data_dir {
            keys.push("daemon.data_dir");
        }
        if format!("{:?}", old.tls) != format!("{:?}", fresh.tls) {
            keys.push("daemon.tls");
        }
        let auth_mode = |auth: &config::AuthConfig| {
            (
                auth.enabled,
                auth.tokens.is_empty() && auth.tokens_file.is_none(),
                auth.tokens_file.clone(),
            )
        };
        if auth_mode(&old.auth) != auth_mode(&fresh.auth) {
            keys.push("daemon.auth (enabled, bootstrap or tokens_file)");
        }
        if !keys.is_empty() {
            tracing::warn!(keys = ?keys, "changed in the config file; these take effect at the next restart");
        }
    }
}

/// Every problem of a refused file, one line each (`file:line:col: message`).
fn problems(err: &ConfigError) -> Vec<String> {
    err.to_string().lines().map(str::to_owned).collect()
}
