//! How reminders are said to the user: the confirmation, the list, the message that
//! fires, and the refusals. Local times, short: "Fri 12 Dec 09:00".

use chrono::{DateTime, Datelike, NaiveTime, Utc, Weekday};
use chrono_tz::Tz;

use super::parse::{ReminderError, REMINDER_EXAMPLES};
use super::schedule::{Repeat, Schedule};

/// `at` on the user's wall clock, "Fri 12 Dec 09:00"; the year is added when it is not
/// the current one, so "3 March" next year is not mistaken for this year's.
pub fn local_when(at: DateTime<Utc>, tz: Tz, now: DateTime<Utc>) -> String {
    let local = at.with_timezone(&tz);
    if local.year() == now.with_timezone(&tz).year() {
        local.format("%a %-d %b %H:%M").to_string()
    } else {
        local.format("%a %-d %b %Y %H:%M").to_string()
    }
}

/// "every Monday at 08:00", "every day at 21:00", "every month on the 1st at 09:00".
pub fn describe_repeat(repeat: Repeat, time: NaiveTime) -> String {
    let time = time.format("%H:%M");
    match repeat {
        Repeat::Daily => format!("every day at {time}"),
        Repeat::Weekly(day) => format!("every {} at {time}", weekday_name(day)),
        Repeat::Monthly(day) => format!("every month on the {} at {time}", ordinal(day)),
    }
}

/// The reply to a reminder taken: the resolved local time and the what, so a misread is
/// seen at once. "⏰ I'll remind you Fri 12 Dec 09:00: call mom".
pub fn confirmation(what: &str, schedule: &Schedule, tz: Tz, now: DateTime<Utc>) -> String {
    let when = local_when(schedule.first, tz, now);
    match schedule.repeat {
        None => format!("⏰ I'll remind you {when}: {what}"),
        Some(repeat) => format!("⏰ I'll remind you {} (next: {when}): {what}", describe_repeat(repeat, schedule.time)),
    }
}

/// The reply to a reminder request not taken: what was wrong and examples that work.
pub fn refusal(error: &ReminderError) -> String {
    format!("⏰ {error}\nFor example:\n{REMINDER_EXAMPLES}")
}

/// The message a reminder sends when it fires; `late` is the local due time when it
/// fires late ("⏰ Reminder: call mom (late: was due 09:00)").
pub fn reminder_message(what: &str, late: Option<&str>) -> String {
    match late {
        None => format!("⏰ Reminder: {what}"),
        Some(due) => format!("⏰ Reminder: {what} (late: was due {due})"),
    }
}

/// One line of `/reminders`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReminderLine {
    pub next_at: DateTime<Utc>,
    pub time: NaiveTime,
    pub repeat: Option<Repeat>,
    pub what: String,
}

/// `/reminders`: the upcoming ones, numbered as `/cancel N` counts them.
pub fn listing(lines: &[ReminderLine], tz: Tz, now: DateTime<Utc>) -> String {
    if lines.is_empty() {
        return format!("⏰ You have no reminders. For example:\n{REMINDER_EXAMPLES}");
    }
    let mut text = String::from("⏰ Your reminders:");
    for (n, line) in lines.iter().enumerate() {
        let when = local_when(line.next_at, tz, now);
        match line.repeat {
            None => text.push_str(&format!("\n{}. {when}: {}", n + 1, line.what)),
            Some(repeat) => {
                text.push_str(&format!("\n{}. {when} ({}): {}", n + 1, describe_repeat(repeat, line.time), line.what))
            }
        }
    }
    text.push_str("\nCancel one with /cancel N.");
    text
}

fn weekday_name(day: Weekday) -> &'static str {
    match day {
        Weekday::Mon => "Monday",
        Weekday::Tue => "Tuesday",
        Weekday::Wed => "Wednesday",
        Weekday::Thu => "Thursday",
        Weekday::Fri => "Friday",
        Weekday::Sat => "Saturday",
        Weekday::Sun => "Sunday",
    }
}

/// 1st, 2nd, 3rd, 4th, 11th, 12th, 13th, 21st, 22nd, 23rd, 31st.
fn ordinal(n: u32) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Europe::Berlin;

    fn utc(text: &str) -> DateTime<Utc> {
        text.parse().expect("RFC 3339")
    }

    #[test]
    fn the_confirmation_repeats_the_local_time_and_the_what() {
        let now = utc("2026-12-08T10:00:00Z");
        let schedule = Schedule {
            first: utc("2026-12-12T08:00:00Z"),
            time: NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
            repeat: None,
        };
        assert_eq!(confirmation("call mom", &schedule, Berlin, now), "⏰ I'll remind you Sat 12 Dec 09:00: call mom");
        let weekly = Schedule { repeat: Some(Repeat::Weekly(Weekday::Sat)), ..schedule };
        assert_eq!(
            confirmation("call mom", &weekly, Berlin, now),
            "⏰ I'll remind you every Saturday at 09:00 (next: Sat 12 Dec 09:00): call mom"
        );
    }

    #[test]
    fn a_date_in_another_year_shows_the_year() {
        let now = utc("2026-12-08T10:00:00Z");
        assert_eq!(local_when(utc("2027-03-03T08:00:00Z"), Berlin, now), "Wed 3 Mar 2027 09:00");
    }

    #[test]
    fn ordinals_and_repeats_read_naturally() {
        let nine = NaiveTime::from_hms_opt(9, 0, 0).unwrap();
        let cases = [
            (1, "1st"),
            (2, "2nd"),
            (3, "3rd"),
            (4, "4th"),
            (11, "11th"),
            (12, "12th"),
            (13, "13th"),
            (21, "21st"),
            (22, "22nd"),
            (31, "31st"),
        ];
        for (n, text) in cases {
            assert_eq!(ordinal(n), text);
        }
        assert_eq!(describe_repeat(Repeat::Monthly(1), nine), "every month on the 1st at 09:00");
        assert_eq!(describe_repeat(Repeat::Daily, nine), "every day at 09:00");
    }

    #[test]
    fn a_late_reminder_says_when_it_was_due() {
        assert_eq!(reminder_message("call mom", None), "⏰ Reminder: call mom");
        assert_eq!(reminder_message("call mom", Some("09:00")), "⏰ Reminder: call mom (late: was due 09:00)");
    }

    #[test]
    fn the_listing_numbers_reminders_and_shows_repeats() {
        let now = utc("2026-12-08T10:00:00Z");
        let nine = NaiveTime::from_hms_opt(9, 0, 0).unwrap();
        let lines = [
            ReminderLine { next_at: utc("2026-12-12T08:00:00Z"), time: nine, repeat: None, what: "call mom".into() },
            ReminderLine {
                next_at: utc("2026-12-14T08:00:00Z"),
                time: nine,
                repeat: Some(Repeat::Weekly(Weekday::Mon)),
                what: "water the plants".into(),
            },
        ];
        assert_eq!(
            listing(&lines, Berlin, now),
            "⏰ Your reminders:\n1. Sat 12 Dec 09:00: call mom\n2. Mon 14 Dec 09:00 (every Monday at 09:00): water the plants\nCancel one with /cancel N."
        );
        assert!(listing(&[], Berlin, now).starts_with("⏰ You have no reminders."));
    }
}
