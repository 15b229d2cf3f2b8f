//! Maintenance windows against the clock: is a window open at a given local time.

use jiff::Zoned;
use jiff::civil::Weekday as JiffWeekday;

use crate::spec::{MaintenanceWindow, Weekday};

fn weekday(day: JiffWeekday) -> Weekday {
    match day {
        JiffWeekday::Monday => Weekday::Mon,
        JiffWeekday::Tuesday => Weekday::Tue,
        JiffWeekday::Wednesday => Weekday::Wed,
        JiffWeekday::Thursday => Weekday::Thu,
        JiffWeekday::Friday => Weekday::Fri,
        JiffWeekday::Saturday => Weekday::Sat,
        JiffWeekday::Sunday => Weekday::Sun,
    }
}

/// Whether `window` is open at `now` (the daemon's local time).
pub fn is_open(window: &MaintenanceWindow, now: &Zoned) -> bool {
    let minute =
        u16::try_from(now.hour()).unwrap_or(0) * 60 + u16::try_from(now.minute()).unwrap_or(0);
    window.contains(weekday(now.weekday()), minute)
}

/// When `window` next opens after `now`: its start time on the next day it starts on
/// (`None` only for a window no day can open, which config validation prevents).
pub fn next_open(window: &MaintenanceWindow, now: &Zoned) -> Option<Zoned> {
    let start = jiff::civil::Time::new(
        i8::try_from(window.start_minute / 60).ok()?,
        i8::try_from(window.start_minute % 60).ok()?,
        0,
        0,
    )
    .ok()?;
    (0..=8).find_map(|n_days| {
        let date = now
            .date()
            .checked_add(jiff::Span::new().days(n_days))
            .ok()?;
        let opens = date
            .to_datetime(start)
            .to_zoned(now.time_zone().clone())
            .ok()?;
        let day = weekday(opens.weekday());
        let starts = window.days.is_empty() || window.days.contains(&day);
        (starts && opens > *now).then_some(opens)
    })
}

/// `HH:MM-HH:MM on mon,tue` for messages.
pub fn describe(window: &MaintenanceWindow) -> String {
    let hhmm = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
    let days = if window.days.is_empty() {
        "every day".to_owned()
    } else {
        let names: Vec<&str> = window
            .days
            .iter()
            .map(|d| match d {
                Weekday::Mon => "mon",
                Weekday::Tue => "tue",
                Weekday::Wed => "wed",
                Weekday::Thu => "thu",
                Weekday::Fri => "fri",
                Weekday::Sat => "sat",
                Weekday::Sun => "sun",
            })
            .collect();
        format!("on {}", names.join(","))
    };
    format!(
        "{}-{} {days}, daemon local time",
        hhmm(window.start_minute),
        hhmm(window.end_minute)
    )
}

#[cfg(test)]
mod tests {
    use jiff::civil::date;

    use crate::spec::{MaintenanceWindow, Weekday};
    use crate::window::{describe, is_open, next_open};

    #[test]
    fn open_and_closed_at_real_times() {
        let window = MaintenanceWindow {
            start_minute: 23 * 60,
            end_minute: 2 * 60,
            days: vec![Weekday::Fri],
        };
        // 2026-11-20 is a Friday.
        let fri_2330 = date(2026, 11, 20).at(23, 30, 0, 0).in_tz("UTC").unwrap();
        let sat_0100 = date(2026, 11, 21).at(1, 0, 0, 0).in_tz("UTC").unwrap();
        let sat_0300 = date(2026, 11, 21).at(3, 0, 0, 0).in_tz("UTC").unwrap();
        assert!(is_open(&window, &fri_2330));
        assert!(is_open(&window, &sat_0100));
        assert!(!is_open(&window, &sat_0300));
        assert_eq!(describe(&window), "23:00-02:00 on fri, daemon local time");
        let opens = next_open(&window, &sat_0300).unwrap();
        assert_eq!(opens.to_string(), "2026-11-27T23:00:00+00:00[UTC]");
        let every_day = MaintenanceWindow {
            days: Vec::new(),
            ..window
        };
        let opens = next_open(&every_day, &sat_0300).unwrap();
        assert_eq!(opens.to_string(), "2026-11-21T23:00:00+00:00[UTC]");
    }
}
