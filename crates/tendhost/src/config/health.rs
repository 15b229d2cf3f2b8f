//! `health_check` (in `[defaults]` and per `[[host]]`, the config file only) and
//! `[host.policy] restart_services`: the raw table and its validation into core's
//! `HealthCheckSpec`, every problem at its `file:line:col`. A host's table replaces the
//! defaults' one whole.

use std::time::Duration;

use serde::Deserialize;
use tendhost_core::spec::{HealthCheckSpec, RestartServices};
use tendhost_exec::HttpUrl;
use toml::Spanned;

use crate::config::Validator;

/// Upper bounds (listed in docs/configuration.md).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(10 * 60);
pub const MAX_INTERVAL: Duration = Duration::from_secs(60 * 60);
pub const MAX_RETRIES: i64 = 100;

/// `health_check = { command = [...], http = "...", ... }` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHealthCheck {
    pub command: Option<Spanned<Vec<String>>>,
    pub http: Option<Spanned<String>>,
    pub expect_status: Option<Spanned<i64>>,
    pub timeout: Option<Spanned<String>>,
    pub retries: Option<Spanned<i64>>,
    pub interval: Option<Spanned<String>>,
    #[serde(default)]
    pub pre_check: bool,
}

impl Validator<'_> {
    pub(super) fn health_check(
        &mut self,
        check: &Spanned<RawHealthCheck>,
    ) -> Option<HealthCheckSpec> {
        let raw = check.get_ref();
        if raw.command.is_none() && raw.http.is_none() {
            self.error(
                &check.span(),
                "health_check needs `command` (an argv array) or `http` (a URL), or both"
                    .to_owned(),
            );
            return None;
        }
        let command = raw.command.as_ref().and_then(|argv| {
            if argv
                .get_ref()
                .first()
                .is_none_or(|program| program.trim().is_empty())
            {
                self.error(
                    &argv.span(),
                    "health_check.command must be a non-empty argv array, e.g. \
                     [\"test\", \"-e\", \"/run/app.pid\"]"
                        .to_owned(),
                );
                None
            } else {
                Some(argv.get_ref().clone())
            }
        });
        let http = raw.http.as_ref().and_then(|url| {
            HttpUrl::parse(url.get_ref())
                .map_err(|reason| self.error(&url.span(), format!("health_check.http: {reason}")))
                .ok()
        });
        let expect_status = raw.expect_status.as_ref().map_or(
            Some(HealthCheckSpec::DEFAULT_EXPECT_STATUS),
            |status| {
                self.int_in_range(status, 100, 599, "health_check.expect_status")
                    .and_then(|status| u16::try_from(status).ok())
            },
        );
        let timeout = self.bounded(
            raw.timeout.as_ref(),
            "health_check.timeout",
            MAX_TIMEOUT,
            HealthCheckSpec::DEFAULT_TIMEOUT,
        );
        let interval = self.bounded(
            raw.interval.as_ref(),
            "health_check.interval",
            MAX_INTERVAL,
            HealthCheckSpec::DEFAULT_INTERVAL,
        );
        let retries =
            raw.retries
                .as_ref()
                .map_or(Some(HealthCheckSpec::DEFAULT_RETRIES), |retries| {
                    self.int_in_range(retries, 0, MAX_RETRIES, "health_check.retries")
                        .and_then(|retries| u32::try_from(retries).ok())
                });
        let failed_part =
            (raw.command.is_some() && command.is_none()) || (raw.http.is_some() && http.is_none());
        if failed_part {
            return None;
        }
        Some(HealthCheckSpec {
            command,
            http,
            expect_status: expect_status?,
            timeout,
            retries: retries?,
            interval,
            pre_check: raw.pre_check,
        })
    }

    pub(super) fn restart_services(&mut self, value: Option<&Spanned<String>>) -> RestartServices {
        match value.map(|value| (value.get_ref().as_str(), value.span())) {
            None | Some(("report", _)) => RestartServices::Report,
            Some(("restart", _)) => RestartServices::Restart,
            Some((other, span)) => {
                self.error(
                    &span,
                    format!("restart_services must be \"report\" or \"restart\", not {other:?}"),
                );
                RestartServices::Report
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use tendhost_core::spec::RestartServices;

    use crate::config::parse;

    const HOST: &str = "[[host]]\nname = \"web\"\naddr = \"10.0.0.5\"\n";

    fn errors(text: &str) -> String {
        parse(text, Path::new("/t.toml"), &|_| None)
            .expect_err("refused")
            .to_string()
    }

    #[test]
    fn defaults_apply_and_a_host_table_replaces_them() {
        let text = format!(
            "[defaults]\nhealth_check = {{ http = \"http://127.0.0.1:8080/health\" }}\n\n{HOST}\n\
             [[host]]\nname = \"db\"\naddr = \"10.0.0.6\"\n\
             health_check = {{ command = [\"pg_isready\"], retries = 0, timeout = \"3s\", \
             interval = \"1s\", pre_check = true }}\n[host.policy]\nrestart_services = \"restart\"\n"
        );
        let config = parse(&text, Path::new("/t.toml"), &|_| None).unwrap();
        let web = config.hosts[0].health_check.as_ref().unwrap();
        assert_eq!(
            web.http.as_ref().unwrap().to_string(),
            "http://127.0.0.1:8080/health"
        );
        assert_eq!((web.expect_status, web.retries), (200, 3));
        assert_eq!(
            (web.timeout, web.interval),
            (Duration::from_secs(10), Duration::from_secs(5))
        );
        assert!(web.command.is_none() && !web.pre_check);
        assert_eq!(
            config.hosts[0].policy.restart_services,
            RestartServices::Report
        );
        let db = config.hosts[1].health_check.as_ref().unwrap();
        assert_eq!(db.command.as_deref(), Some(&["pg_isready".to_owned()][..]));
        assert!(db.http.is_none() && db.pre_check);
        assert_eq!((db.retries, db.timeout), (0, Duration::from_secs(3)));
        assert_eq!(
            config.hosts[1].policy.restart_services,
            RestartServices::Restart
        );
    }

    #[test]
    fn bad_values_are_named_at_their_place() {
        for (table, needle) in [
            ("{ }", "health_check needs `command`"),
            ("{ command = [] }", "must be a non-empty argv array"),
            ("{ http = \"https://x/\" }", "is not an http:// URL"),
            ("{ http = \"http://x:0/\" }", "the port must be 1-65535"),
            (
                "{ command = [\"true\"], expect_status = 99 }",
                "expect_status must be between 100 and 599",
            ),
            (
                "{ command = [\"true\"], timeout = \"11m\" }",
                "health_check.timeout \"11m\" is too long",
            ),
            (
                "{ command = [\"true\"], interval = \"0s\" }",
                "health_check.interval must be greater than zero",
            ),
            (
                "{ command = [\"true\"], retries = 101 }",
                "retries must be between 0 and 100",
            ),
            (
                "{ command = [\"true\"], curl = true }",
                "unknown field `curl`",
            ),
        ] {
            let text = format!("{HOST}health_check = {table}\n");
            let errors = errors(&text);
            assert!(errors.contains("/t.toml:4:"), "{table}: {errors}");
            assert!(errors.contains(needle), "{table}: {errors}");
        }
        let errors = errors(&format!(
            "{HOST}[host.policy]\nrestart_services = \"always\"\n"
        ));
        assert!(
            errors.contains("/t.toml:5:20: restart_services must be \"report\" or \"restart\""),
            "{errors}"
        );
    }
}
