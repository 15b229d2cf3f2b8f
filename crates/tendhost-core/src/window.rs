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
    use crate::window::{describe, is_open};

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
    }
}
