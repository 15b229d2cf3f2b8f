//! Job and rollout ids: `{prefix}-{UUIDv7}`, e.g. `job-01a2f3c4-5d6e-7f80-9a1b-2c3d4e5f6a7b`.
//!
//! A UUIDv7 starts with the creation time in milliseconds, zero-padded, so ids compare as
//! strings in creation order (the store breaks `created_at` ties with `id DESC`), and its other
//! 74 bits are random, so two runs never issue the same id. [`Ids`] adds what the clock alone
//! cannot give: every id sorts after the last one issued, in this run or (seeded with the ids
//! an earlier run left) in an earlier one, even when the clock steps back.

use std::sync::{Mutex, PoisonError};

use jiff::Timestamp;
use uuid::{NoContext, Uuid, Version};

/// Issues ids that sort in creation order. One per fleet, shared by jobs and rollouts.
pub(crate) struct Ids {
    last: Mutex<Uuid>,
}

impl Ids {
    /// A generator whose ids sort after every id in `issued` (ids an earlier run gave out, as
    /// a restart reads them back; ids of another form, such as older releases', are ignored).
    pub(crate) fn after<'a>(issued: impl IntoIterator<Item = &'a str>) -> Ids {
        let last = issued
            .into_iter()
            .filter_map(uuid_of)
            .max()
            .unwrap_or_else(Uuid::nil);
        Ids {
            last: Mutex::new(last),
        }
    }

    /// A new id with `prefix` (`job`, `rollout`).
    pub(crate) fn next(&self, prefix: &str) -> String {
        self.next_at(prefix, Timestamp::now())
    }

    /// A new id as [`Ids::next`] makes it when the clock reads `now`.
    pub(crate) fn next_at(&self, prefix: &str, now: Timestamp) -> String {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let last_ms = millis_of(*last);
        let now_ms = u64::try_from(now.as_millisecond()).unwrap_or(0);
        let mut id = v7(now_ms.max(last_ms));
        if id <= *last {
            // The clock is behind the last id, or in its millisecond with smaller random
            // bits: one millisecond later, still random, so it is greater and still unique.
            id = v7(last_ms + 1);
        }
        *last = id;
        format!("{prefix}-{}", id.hyphenated())
    }
}

/// A UUIDv7 of millisecond `ms` with random bits.
fn v7(ms: u64) -> Uuid {
    let nanos = u32::try_from(ms % 1000).unwrap_or(0) * 1_000_000;
    Uuid::new_v7(uuid::Timestamp::from_unix(NoContext, ms / 1000, nanos))
}

/// The milliseconds a UUIDv7 starts with (its top 48 bits).
fn millis_of(id: Uuid) -> u64 {
    u64::try_from(id.as_u128() >> 80).unwrap_or(u64::MAX)
}

/// The UUIDv7 in `{prefix}-{uuid}`, if `id` has that form.
fn uuid_of(id: &str) -> Option<Uuid> {
    let (_, uuid) = id.split_once('-')?;
    let uuid = Uuid::try_parse(uuid).ok()?;
    (uuid.get_version() == Some(Version::SortRand)).then_some(uuid)
}

#[cfg(test)]
mod tests {
    use jiff::{SignedDuration, Timestamp};

    use crate::ids::Ids;

    #[test]
    fn ids_sort_by_creation_across_a_restart_with_the_clock_set_back() {
        let start = Timestamp::now();
        let first_run = Ids::after([]);
        // Twelve ids in one millisecond: the old counter suffix sorted `-10` before `-9`.
        let mut issued: Vec<String> = (0..12).map(|_| first_run.next_at("job", start)).collect();
        issued.push(first_run.next_at("rollout", start));
        // Within a run the clock may step back too.
        issued.push(first_run.next_at("job", start - SignedDuration::from_secs(5)));

        // A restart with the clock an hour behind, seeded with what the first run left.
        let second_run = Ids::after(issued.iter().map(String::as_str));
        let behind = start - SignedDuration::from_hours(1);
        for _ in 0..12 {
            issued.push(second_run.next_at("job", behind));
        }
        // The clock catches up and passes the first run's ids.
        issued.push(second_run.next_at("job", start + SignedDuration::from_secs(1)));

        let uuids: Vec<&str> = issued
            .iter()
            .map(|id| id.split_once('-').unwrap().1)
            .collect();
        let mut sorted = uuids.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(
            sorted, uuids,
            "ids must be distinct and sort in creation order"
        );
        let jobs: Vec<&String> = issued.iter().filter(|id| id.starts_with("job-")).collect();
        assert!(jobs.is_sorted(), "{jobs:#?}");
    }

    #[test]
    fn a_seed_of_another_form_is_ignored() {
        let ids = Ids::after(["job-18f3a2b4c5d-17", "garbage", "rollout-"]);
        let now = Timestamp::now();
        let id = ids.next_at("job", now);
        let later = ids.next_at("job", now);
        assert!(id < later, "{id} {later}");
        // The id's time is the clock's: the unparsable seed did not push it anywhere.
        let ms = u64::from_str_radix(&id["job-".len()..].replace('-', "")[..12], 16).unwrap();
        assert_eq!(i64::try_from(ms).unwrap(), now.as_millisecond());
    }

    #[test]
    fn ids_name_host_job_directories() {
        let ids = Ids::after([]);
        for prefix in ["job", "rollout"] {
            let id = ids.next(prefix);
            assert!(
                tendhost_pkg::JobId::new(id.clone()).is_ok(),
                "{id} must be a valid host-side job id"
            );
        }
    }
}
