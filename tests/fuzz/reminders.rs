//! The reminder phrases ("remind me every Monday at 8 to water the plants", "snooze 30m"):
//! any text a user sends after "remind me" is read, at any instant in any zone, without a
//! panic, within a second, and what it gives back holds together.

use chrono::{DateTime, NaiveTime, TimeDelta, Utc};
use chrono_tz::{Tz, TZ_VARIANTS};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use serde::{Deserialize, Serialize};
use whatsapp_memory::domain::reminder::{
    next_occurrence, parse_reminder, parse_snooze, ReminderContext, ReminderError,
};
use whatsapp_memory::domain::reply::MAX_ECHO_CHARS;

use crate::harness::{fuzz, Limits, MIB};
use crate::json_corpus_input;
use crate::text::message_text;

/// Words the reminder parser knows, so generated requests get past its first word.
const REMINDER_WORDS: &[&str] = &[
    "remind",
    "me",
    "to",
    "at",
    "on",
    "in",
    "every",
    "each",
    "day",
    "daily",
    "week",
    "month",
    "monthly",
    "tomorrow",
    "today",
    "tonight",
    "next",
    "monday",
    "mon",
    "friday",
    "sunday",
    "9",
    "8",
    "0",
    "12",
    "24",
    "25",
    "18:30",
    "02:30",
    "01:30",
    "23:59",
    "24:00",
    "9am",
    "9pm",
    "12am",
    "noon",
    "midnight",
    "am",
    "pm",
    "the",
    "1st",
    "31st",
    "29",
    "3",
    "march",
    "feb",
    "february",
    "december",
    "2026",
    "2027",
    "1999",
    "minute",
    "minutes",
    "min",
    "m",
    "hour",
    "hours",
    "h",
    "2",
    "30m",
    "1h",
    "99999999999",
    "snooze",
    "for",
    "call",
    "mom",
    "take",
    "out",
    "bins",
    " ",
    " ",
    " ",
];

/// A request read at an instant in a zone.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestAt {
    request: String,
    /// Seconds since the Unix epoch.
    now: i64,
    zone: String,
}

json_corpus_input!(RequestAt);

fn request_at() -> impl Strategy<Value = RequestAt> {
    let request = prop_oneof![
        3 => vec(select(REMINDER_WORDS), 0..12).prop_map(|words| words.join(" ")),
        1 => message_text(),
        1 => (vec(select(REMINDER_WORDS), 0..6), message_text()).prop_map(|(words, text)| format!("{} {text}", words.join(" "))),
    ];
    let now = prop_oneof![
        6 => 946_684_800i64..4_102_444_800, // 2000 to 2100
        1 => DateTime::<Utc>::MIN_UTC.timestamp()..DateTime::<Utc>::MIN_UTC.timestamp() + 40 * 86_400,
        1 => DateTime::<Utc>::MAX_UTC.timestamp() - 40 * 86_400..=DateTime::<Utc>::MAX_UTC.timestamp(),
    ];
    let zone = select(TZ_VARIANTS.to_vec()).prop_map(|tz| tz.name().to_string());
    (request, now, zone).prop_map(|(request, now, zone)| RequestAt { request, now, zone })
}

/// What must hold of a request's reading: a reminder is never due before now, says
/// something the user wrote, and repeats forward; a refusal quotes briefly.
fn reading_holds_together(input: &RequestAt) -> Result<(), String> {
    let now = DateTime::<Utc>::from_timestamp(input.now, 0).ok_or("the instant is out of chrono's range")?;
    let tz: Tz = input.zone.parse().map_err(|_| format!("unknown zone {}", input.zone))?;
    let context = ReminderContext { now, tz, default_time: NaiveTime::from_hms_opt(9, 0, 0).unwrap() };
    match parse_reminder(&input.request, &context) {
        Ok(request) => {
            if request.schedule.first < now {
                return Err(format!("{:?} is due before now ({now})", request.schedule));
            }
            if request.what.trim().is_empty() || !input.request.contains(request.what.as_str()) {
                return Err(format!("what {:?} is not part of the request", request.what));
            }
            if let Some(repeat) = request.schedule.repeat {
                if let Some(next) = next_occurrence(repeat, request.schedule.time, request.schedule.first, tz) {
                    if next <= request.schedule.first {
                        return Err(format!("{repeat:?} repeats at {next}, not after {}", request.schedule.first));
                    }
                }
            }
            Ok(())
        }
        Err(ReminderError::NotUnderstood { phrase }) if phrase.chars().count() > MAX_ECHO_CHARS => {
            Err(format!("the refusal quotes {} characters", phrase.chars().count()))
        }
        Err(_) => Ok(()),
    }
}

#[test]
fn reminder_requests_are_read_forward_in_time_or_refused_briefly() {
    fuzz("reminder", 2000, Limits::one_cpu_second(MIB), request_at(), reading_holds_together);
}

#[test]
fn snoozes_put_off_by_a_positive_bounded_time() {
    let text = prop_oneof![
        2 => vec(select(REMINDER_WORDS), 0..4).prop_map(|words| format!("snooze {}", words.join(" "))),
        1 => message_text(),
    ];
    fuzz("snooze", 1000, Limits::one_cpu_second(MIB), text, |text: &String| match parse_snooze(text) {
        Some(delta) if delta <= TimeDelta::zero() => Err(format!("snooze by {delta}")),
        _ => Ok(()),
    });
}
