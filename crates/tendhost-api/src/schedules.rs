//! Wire types of package selection and schedules: `packages` (`"all"`, `"security"` or a list
//! of names) as the update bodies take it, a run's `reboot` choice, a rollout's `trigger`
//! (`{"schedule": NAME}` or `{"api": TOKEN-NAME}`), and `GET /schedules` with its items.

use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, Type};

/// What an update installs: `"all"` (the default), `"security"`, or a list of package names
/// (and what the package manager needs for them). Packages a host's `exclude` patterns match
/// are never installed, whatever this says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Packages {
    #[default]
    All,
    Security,
    Names(Vec<String>),
}

impl Serialize for Packages {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Packages::All => serializer.serialize_str("all"),
            Packages::Security => serializer.serialize_str("security"),
            Packages::Names(names) => names.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Packages {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(PackagesVisitor)
    }
}

struct PackagesVisitor;

impl<'de> Visitor<'de> for PackagesVisitor {
    type Value = Packages;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"all\", \"security\" or a non-empty list of package names")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Packages, E> {
        match value {
            "all" => Ok(Packages::All),
            "security" => Ok(Packages::Security),
            other => Err(E::invalid_value(de::Unexpected::Str(other), &self)),
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Packages, A::Error> {
        let mut names = Vec::new();
        while let Some(name) = seq.next_element::<String>()? {
            names.push(name);
        }
        if names.is_empty() {
            return Err(de::Error::invalid_length(0, &self));
        }
        Ok(Packages::Names(names))
    }
}

impl utoipa::PartialSchema for Packages {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["all", "security"]))
                    .description(Some(
                        "`all`: every pending update; `security`: updates from a security \
                         suite (apt) or with a security advisory (dnf)",
                    )),
            )
            .item(
                ArrayBuilder::new()
                    .items(ObjectBuilder::new().schema_type(Type::String))
                    .min_items(Some(1))
                    .description(Some(
                        "Only these packages, and what the package manager needs for them",
                    )),
            )
            .description(Some(
                "What an update installs. Packages the host's `exclude` patterns match are \
                 never installed.",
            ))
            .examples([
                serde_json::json!("security"),
                serde_json::json!(["openssl"]),
            ])
            .into()
    }
}

impl ToSchema for Packages {}

/// Whether the hosts of a run reboot after their update, instead of each host's
/// `auto_reboot`. The maintenance window still applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RebootChoice {
    Never,
    IfRequired,
    Always,
}

/// Who started a rollout: `{"schedule": "nightly"}` or `{"api": "ci-bot"}` (the token's
/// name; null with auth off).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Schedule(String),
    Api(Option<String>),
}

/// What a schedule starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleAction {
    Check,
    Update,
}

/// `GET /schedules/{name}`: a `[[schedule]]` and where it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "name": "nightly-security",
    "cron": "0 3 * * *",
    "timezone": "Europe/Berlin",
    "action": "update",
    "packages": "security",
    "reboot": "if_required",
    "enabled": true,
    "paused": false,
    "random_delay_secs": 0,
    "next_run": "2026-05-03T01:00:00Z",
    "last_run": "2026-05-02T01:00:00Z",
    "last_rollout_id": "rollout-0196a0c4-7e1f-7b3a-9c1d-2f4e5a6b7c8d"
}))]
pub struct Schedule {
    pub name: String,
    /// As written in the config (5 fields, or `@daily` and the like).
    pub cron: String,
    /// IANA name the cron expression is read in.
    pub timezone: String,
    pub action: ScheduleAction,
    pub packages: Packages,
    /// Null: each host's `auto_reboot`.
    pub reboot: Option<RebootChoice>,
    /// `enabled` in the config; a disabled schedule never runs by itself.
    pub enabled: bool,
    /// Paused through the API (kept across restarts).
    pub paused: bool,
    /// `random_delay` in seconds: each run starts up to this long after its cron time (its
    /// own delay, fixed per run, is already in `next_run`). 0: at the cron time.
    pub random_delay_secs: u64,
    /// RFC 3339, the instant the next run starts (its cron time plus its delay); null when
    /// disabled or paused.
    #[schema(format = DateTime)]
    pub next_run: Option<String>,
    /// RFC 3339; null when it never ran.
    #[schema(format = DateTime)]
    pub last_run: Option<String>,
    pub last_rollout_id: Option<String>,
}

/// `GET /schedules`: every schedule, in config order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ScheduleList {
    pub data: Vec<Schedule>,
}

/// `202` answer of `POST /schedules/{name}/run`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"schedule": "nightly-security", "rollout_id": "rollout-0196a0c4-7e1f-7b3a-9c1d-2f4e5a6b7c8d"}))]
pub struct ScheduleRunAccepted {
    pub schedule: String,
    pub rollout_id: String,
}

#[cfg(test)]
mod tests {
    use crate::schedules::{Packages, Trigger};

    #[test]
    fn packages_are_a_word_or_names() {
        let parse = |json: &str| serde_json::from_str::<Packages>(json).map_err(|e| e.to_string());
        assert_eq!(parse("\"all\""), Ok(Packages::All));
        assert_eq!(parse("\"security\""), Ok(Packages::Security));
        assert_eq!(
            parse("[\"openssl\"]"),
            Ok(Packages::Names(vec!["openssl".into()]))
        );
        for bad in ["\"some\"", "[]", "3", "[1]", "null"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            serde_json::to_string(&Packages::Names(vec!["a".into()])).unwrap(),
            "[\"a\"]"
        );
        assert_eq!(
            serde_json::to_value(Trigger::Schedule("n".into())).unwrap(),
            serde_json::json!({"schedule": "n"})
        );
    }
}
