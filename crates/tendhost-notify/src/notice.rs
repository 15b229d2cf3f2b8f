//! A message before it is sent: what happened, to which hosts, with counts and a link. Each
//! channel renders it its own way (webhook: `NotificationV1` JSON; ntfy: title + text; email:
//! subject + text) from the one `Notice`.

use jiff::Timestamp;
use tendhost_api::notifications::{NotificationCounts, NotificationItem, NotificationV1};

/// How the hosts of a rollout ended (only the hosts the notifier speaks about).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub total: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub skipped: u64,
    pub cancelled: u64,
}

/// One host line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub host: String,
    pub count: Option<u64>,
    pub detail: Option<String>,
}

/// One message, for one notifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// The notification event's name (`rollout_finished`, ..., or `test`).
    pub event: &'static str,
    pub time: Timestamp,
    pub title: String,
    /// Plain-text lines after the title.
    pub lines: Vec<String>,
    pub rollout_id: Option<String>,
    pub state: Option<String>,
    pub hosts: Vec<String>,
    pub counts: Option<Counts>,
    pub duration_seconds: Option<u64>,
    pub items: Vec<Item>,
    pub url: Option<String>,
    /// Urgent events get a higher ntfy priority and a warning tag.
    pub urgent: bool,
}

impl Notice {
    pub fn new(event: &'static str, time: Timestamp, title: String) -> Self {
        Self {
            event,
            time,
            title,
            lines: Vec::new(),
            rollout_id: None,
            state: None,
            hosts: Vec::new(),
            counts: None,
            duration_seconds: None,
            items: Vec::new(),
            url: None,
            urgent: false,
        }
    }

    /// The plain-text body: the lines, then the link.
    pub fn text(&self) -> String {
        let mut text = self.lines.join("\n");
        if let Some(url) = &self.url {
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(url);
        }
        if text.is_empty() {
            text.clone_from(&self.title);
        }
        text
    }

    /// The webhook body.
    pub fn to_wire(&self, notifier: &str) -> NotificationV1 {
        NotificationV1 {
            version: 1,
            event: self.event.to_owned(),
            time: self.time.to_string(),
            notifier: notifier.to_owned(),
            title: self.title.clone(),
            message: self.text(),
            rollout_id: self.rollout_id.clone(),
            state: self.state.clone(),
            hosts: self.hosts.clone(),
            counts: self.counts.map(|counts| NotificationCounts {
                total: counts.total,
                succeeded: counts.succeeded,
                failed: counts.failed,
                skipped: counts.skipped,
                cancelled: counts.cancelled,
            }),
            duration_seconds: self.duration_seconds,
            items: self
                .items
                .iter()
                .map(|item| NotificationItem {
                    host: item.host.clone(),
                    count: item.count,
                    detail: item.detail.clone(),
                })
                .collect(),
            url: self.url.clone(),
        }
    }
}

/// `1h 2m 3s`, `2m 10s`, `5s`.
pub fn human_duration(seconds: u64) -> String {
    let (hours, minutes, seconds) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    let mut parts = Vec::new();
    if hours > 0 {
        parts.push(format!("{hours}h"));
    }
    if minutes > 0 {
        parts.push(format!("{minutes}m"));
    }
    if seconds > 0 || parts.is_empty() {
        parts.push(format!("{seconds}s"));
    }
    parts.join(" ")
}

/// `a, b, c` or `a, b, c and 7 more`: a message about 500 hosts stays readable.
pub fn host_list(hosts: &[String]) -> String {
    const SHOWN: usize = 10;
    if hosts.len() <= SHOWN {
        return hosts.join(", ");
    }
    format!(
        "{} and {} more",
        hosts[..SHOWN].join(", "),
        hosts.len() - SHOWN
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_host_lists_read_well() {
        assert_eq!(human_duration(0), "0s");
        assert_eq!(human_duration(130), "2m 10s");
        assert_eq!(human_duration(3600), "1h");
        let hosts: Vec<String> = (0..12).map(|idx| format!("h{idx}")).collect();
        assert_eq!(host_list(&hosts[..2]), "h0, h1");
        assert!(host_list(&hosts).ends_with("h9 and 2 more"));
    }

    #[test]
    fn wire_shape_is_version_1_with_the_link_in_the_text() {
        let mut notice = Notice::new("rollout_finished", Timestamp::UNIX_EPOCH, "done".to_owned());
        notice.lines.push("6 hosts".to_owned());
        notice.url = Some("https://t.example/rollouts/r-1".to_owned());
        let wire = notice.to_wire("ops");
        assert_eq!(wire.version, 1);
        assert_eq!(wire.notifier, "ops");
        assert_eq!(wire.message, "6 hosts\nhttps://t.example/rollouts/r-1");
        let json = serde_json::to_value(&wire).unwrap();
        assert_eq!(json["version"], 1);
        assert_eq!(json["time"], "1970-01-01T00:00:00Z");
    }
}
