//! Every phrase of a reminder request, at fixed instants, in three zones (two northern,
//! one southern, so both DST changes fall in different months), and across both DST
//! changes in each.

use chrono::{DateTime, NaiveDateTime, NaiveTime, TimeDelta, TimeZone, Utc, Weekday};
use chrono_tz::America::New_York;
use chrono_tz::Australia::Sydney;
use chrono_tz::Europe::Berlin;
use chrono_tz::Tz;

use super::*;

const ZONES: [Tz; 3] = [Berlin, New_York, Sydney];

/// A local wall-clock time that exists once in `tz`, as UTC.
fn local(tz: Tz, text: &str) -> DateTime<Utc> {
    let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").expect("test time");
    tz.from_local_datetime(&naive).single().expect("unique local time").with_timezone(&Utc)
}

fn wall(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string()
}

fn context(now: DateTime<Utc>, tz: Tz) -> ReminderContext {
    ReminderContext { now, tz, default_time: NaiveTime::from_hms_opt(9, 0, 0).unwrap() }
}

fn parse(text: &str, now: DateTime<Utc>, tz: Tz) -> ReminderRequest {
    parse_reminder(text, &context(now, tz)).unwrap_or_else(|e| panic!("{text:?} in {tz}: {e}"))
}

/// Wednesday 9 December 2026, 10:00 local.
fn wednesday(tz: Tz) -> DateTime<Utc> {
    local(tz, "2026-12-09 10:00")
}

#[test]
fn every_phrase_of_the_issue_resolves_to_the_right_local_time_in_three_zones() {
    let cases: [(&str, &str, &str, Option<Repeat>); 10] = [
        ("tomorrow at 9 to call mom", "2026-12-10 09:00", "call mom", None),
        ("in 2 hours to take the cake out", "2026-12-09 12:00", "take the cake out", None),
        ("on Friday 18:30 take out the bins", "2026-12-11 18:30", "take out the bins", None),
        ("on 3 March to renew the passport", "2027-03-03 09:00", "renew the passport", None),
        (
            "every Monday at 8 to water the plants",
            "2026-12-14 08:00",
            "water the plants",
            Some(Repeat::Weekly(Weekday::Mon)),
        ),
        ("every day at 21:00 take the pills", "2026-12-09 21:00", "take the pills", Some(Repeat::Daily)),
        ("every month on the 1st to pay the rent", "2027-01-01 09:00", "pay the rent", Some(Repeat::Monthly(1))),
        ("at 9 to stretch", "2026-12-10 09:00", "stretch", None),
        ("to call mom tomorrow at 9", "2026-12-10 09:00", "call mom", None),
        ("Friday at 6pm: drinks", "2026-12-11 18:00", "drinks", None),
    ];
    for tz in ZONES {
        let now = wednesday(tz);
        for (text, at, what, repeat) in cases {
            let request = parse(text, now, tz);
            assert_eq!(wall(request.schedule.first, tz), at, "{text:?} in {tz}");
            assert_eq!(request.what, what, "{text:?} in {tz}");
            assert_eq!(request.schedule.repeat, repeat, "{text:?} in {tz}");
        }
    }
}

#[test]
fn in_hours_is_exact_even_across_a_dst_change() {
    let now = local(Berlin, "2026-03-29 01:30");
    let request = parse("in 2 hours call", now, Berlin);
    assert_eq!(request.schedule.first - now, TimeDelta::hours(2));
    assert_eq!(wall(request.schedule.first, Berlin), "2026-03-29 04:30");
    for (text, minutes) in [("in 30m x", 30), ("in 30 min x", 30), ("in an hour x", 60), ("in 2h x", 120)] {
        assert_eq!(parse(text, now, Berlin).schedule.first - now, TimeDelta::minutes(minutes), "{text}");
    }
}

#[test]
fn in_days_keeps_the_time_of_day_across_a_dst_change() {
    let now = local(New_York, "2026-03-07 10:00");
    assert_eq!(wall(parse("in 2 days x", now, New_York).schedule.first, New_York), "2026-03-09 10:00");
    assert_eq!(wall(parse("in 1 week at 8 x", now, New_York).schedule.first, New_York), "2026-03-14 08:00");
}

/// The day before each spring-forward day: "tomorrow at 2:30" is in the gap.
const SPRING_FORWARD: [(Tz, &str, &str); 3] = [
    (Berlin, "2026-03-28 12:00", "2026-03-29T01:30:00Z"),
    (New_York, "2026-03-07 12:00", "2026-03-08T07:30:00Z"),
    (Sydney, "2026-10-03 12:00", "2026-10-03T16:30:00Z"),
];

/// The day before each fall-back day, and a time in the hour that happens twice.
const FALL_BACK: [(Tz, &str, &str, &str); 3] = [
    (Berlin, "2026-10-24 12:00", "2:30", "2026-10-25T00:30:00Z"),
    (New_York, "2026-10-31 12:00", "1:30", "2026-11-01T05:30:00Z"),
    (Sydney, "2026-04-04 12:00", "2:30", "2026-04-04T15:30:00Z"),
];

#[test]
fn a_reminder_at_0230_on_a_spring_forward_day_fires_at_0330() {
    for (tz, now, expected) in SPRING_FORWARD {
        let request = parse("tomorrow at 2:30 to feed the cat", local(tz, now), tz);
        assert_eq!(request.schedule.first, expected.parse::<DateTime<Utc>>().unwrap(), "{tz}");
        assert!(wall(request.schedule.first, tz).ends_with("03:30"), "{tz}");
    }
}

#[test]
fn a_daily_reminder_in_the_gap_fires_at_0330_that_day_and_0230_the_next() {
    for (tz, now, expected) in SPRING_FORWARD {
        let request = parse("every day at 2:30 to feed the cat", local(tz, now), tz);
        assert_eq!(request.schedule.first, expected.parse::<DateTime<Utc>>().unwrap(), "{tz}");
        let next = next_occurrence(Repeat::Daily, request.schedule.time, request.schedule.first, tz).unwrap();
        assert!(wall(next, tz).ends_with("02:30"), "{tz}: {}", wall(next, tz));
        // 03:30 to 02:30 on the same (summer) offset.
        assert_eq!(next - request.schedule.first, TimeDelta::hours(23), "{tz}");
    }
}

#[test]
fn a_reminder_in_the_repeated_hour_on_a_fall_back_day_fires_once() {
    for (tz, now, time, expected) in FALL_BACK {
        let text = format!("tomorrow at {time} to feed the cat");
        let request = parse(&text, local(tz, now), tz);
        assert_eq!(request.schedule.first, expected.parse::<DateTime<Utc>>().unwrap(), "{tz}");
        let daily = parse(&format!("every day at {time} x"), local(tz, now), tz).schedule;
        assert_eq!(daily.first, request.schedule.first, "{tz}");
        let next = next_occurrence(Repeat::Daily, daily.time, daily.first, tz).unwrap();
        assert_eq!(next - daily.first, TimeDelta::hours(25), "{tz}: the second 0{time} is skipped");
    }
}

#[test]
fn a_time_already_past_today_means_tomorrow() {
    for tz in ZONES {
        let request = parse("at 9 to stretch", local(tz, "2026-12-09 10:00"), tz);
        assert_eq!(wall(request.schedule.first, tz), "2026-12-10 09:00");
        let request = parse("at 11 to stretch", local(tz, "2026-12-09 10:00"), tz);
        assert_eq!(wall(request.schedule.first, tz), "2026-12-09 11:00");
        let request = parse("on Wednesday at 9 to stretch", local(tz, "2026-12-09 10:00"), tz);
        assert_eq!(wall(request.schedule.first, tz), "2026-12-16 09:00");
    }
}

#[test]
fn an_explicit_past_date_is_refused() {
    let now = wednesday(Berlin);
    for text in ["today at 9 to x", "on 9 December to x", "on 3 March 2026 to x", "on 2026-12-01 to x"] {
        let error = parse_reminder(text, &context(now, Berlin)).unwrap_err();
        assert!(matches!(error, ReminderError::InThePast { .. }), "{text}: {error:?}");
    }
    let error = parse_reminder("today at 9 to x", &context(now, Berlin)).unwrap_err();
    assert_eq!(error.to_string(), "Wed 9 Dec 09:00 has already passed.");
    assert_eq!(wall(parse("on 3 March 2027 to x", now, Berlin).schedule.first, Berlin), "2027-03-03 09:00");
}

#[test]
fn a_date_alone_fires_at_the_default_time() {
    let now = wednesday(Berlin);
    let context = ReminderContext { default_time: NaiveTime::from_hms_opt(7, 15, 0).unwrap(), ..context(now, Berlin) };
    for text in ["on 3 March to x", "3 March x", "March 3rd x", "on the 3rd of March x", "on 2027-03-03 x"] {
        let request = parse_reminder(text, &context).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(wall(request.schedule.first, Berlin), "2027-03-03 07:15", "{text}");
        assert_eq!(request.what, "x", "{text}");
    }
    assert_eq!(wall(parse_reminder("tomorrow x", &context).unwrap().schedule.first, Berlin), "2026-12-10 07:15");
}

#[test]
fn twelve_hour_times_noon_and_midnight() {
    let now = wednesday(Berlin);
    for (text, at) in [
        ("at 9pm x", "2026-12-09 21:00"),
        ("at 9 pm x", "2026-12-09 21:00"),
        ("at 9:30pm x", "2026-12-09 21:30"),
        ("at 12am x", "2026-12-10 00:00"),
        ("at 12pm x", "2026-12-09 12:00"),
        ("at noon x", "2026-12-09 12:00"),
        ("at midnight x", "2026-12-10 00:00"),
        ("tomorrow 7am x", "2026-12-10 07:00"),
        ("next friday at 18:30 x", "2026-12-11 18:30"),
    ] {
        assert_eq!(wall(parse(text, now, Berlin).schedule.first, Berlin), at, "{text}");
    }
}

#[test]
fn a_request_without_an_understandable_time_is_not_understood() {
    let now = wednesday(Berlin);
    for text in [
        "",
        "call mom",
        "at 25:00 to x",
        "at 9:75 x",
        "at 13pm x",
        "in 2 fortnights to x",
        "on blursday to x",
        "every hour to x",
        "every day in 2 hours x",
        "in the evening to x",
    ] {
        let error = parse_reminder(text, &context(now, Berlin)).unwrap_err();
        assert!(matches!(error, ReminderError::NotUnderstood { .. }), "{text:?}: {error:?}");
    }
    let error = parse_reminder("whenever to call mom", &context(now, Berlin)).unwrap_err();
    assert_eq!(error.to_string(), "I couldn't tell when to remind you from \"whenever to call mom\".");
    assert!(refusal(&error).contains("remind me tomorrow at 9 to call mom"));
}

#[test]
fn a_time_without_anything_to_remind_of_asks_what() {
    let now = wednesday(Berlin);
    for text in ["tomorrow at 9", "tomorrow at 9 to", "in 2 hours:"] {
        assert_eq!(parse_reminder(text, &context(now, Berlin)), Err(ReminderError::NothingToRemind), "{text}");
    }
}

#[test]
fn the_what_is_kept_as_written() {
    let request = parse("tomorrow at 9 to Call Mom, about the Party!\nbring cake", wednesday(Berlin), Berlin);
    assert_eq!(request.what, "Call Mom, about the Party!\nbring cake");
}

#[test]
fn every_example_shown_to_the_user_parses() {
    let now = wednesday(Sydney);
    for line in REMINDER_EXAMPLES.lines() {
        let text = line.trim_start_matches("• remind me ");
        parse(text, now, Sydney);
    }
}

#[test]
fn a_when_alone_is_read_for_the_rest_api() {
    let now = wednesday(Berlin);
    let schedule = parse_when("every day at 21:00", &context(now, Berlin)).unwrap();
    assert_eq!((wall(schedule.first, Berlin).as_str(), schedule.repeat), ("2026-12-09 21:00", Some(Repeat::Daily)));
    assert!(parse_when("tomorrow call mom", &context(now, Berlin)).is_err());
    assert!(parse_when("", &context(now, Berlin)).is_err());
}

#[test]
fn snooze_takes_an_optional_duration() {
    assert_eq!(parse_snooze("snooze"), Some(TimeDelta::minutes(10)));
    assert_eq!(parse_snooze("Snooze 30m"), Some(TimeDelta::minutes(30)));
    assert_eq!(parse_snooze("snooze for 1 hour"), Some(TimeDelta::hours(1)));
    assert_eq!(parse_snooze("snooze the alarm"), None);
    assert_eq!(parse_snooze("snooze 3 weeks"), None);
    assert_eq!(parse_snooze("call mom"), None);
}

#[test]
fn odd_inputs_never_panic() {
    let now = wednesday(Berlin);
    for text in [
        "at",
        "on",
        "in",
        "every",
        "on the",
        "on the 31st of february x",
        "in 0 hours x",
        "at 9 9 9",
        "🙂 at 9",
        "at ٩ x",
    ] {
        let _ = parse_reminder(text, &context(now, Berlin));
    }
}
