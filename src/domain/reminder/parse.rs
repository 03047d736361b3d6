//! Understanding a reminder request: "tomorrow at 9 to call mom", "in 2 hours take the
//! cake out", "every Monday at 8 to water the plants". The words after "remind me" (or
//! `/remind`) start with *when* and end with *what*; the when is read in the user's zone.

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveTime, TimeDelta, Utc, Weekday};
use chrono_tz::Tz;

use crate::domain::time_range::{parse_month, parse_weekday};

use super::schedule::{clamp_day, local_time, next_occurrence, resolve_wall_clock, Repeat, Schedule};

/// What the user asked to be reminded of, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReminderRequest {
    pub what: String,
    pub schedule: Schedule,
}

/// Why a reminder request was not taken; each says what to fix, and none is saved as a
/// plain note (the user meant a reminder).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReminderError {
    /// No time we understand at the start of the request.
    #[error("I couldn't tell when to remind you from \"{phrase}\".")]
    NotUnderstood { phrase: String },
    /// An explicit date and time that has already passed ("today at 9" at 10:00).
    #[error("{when} has already passed.")]
    InThePast { when: String },
    /// A time but nothing to remind of.
    #[error("What should I remind you of?")]
    NothingToRemind,
}

/// An example that always parses, shown with every refusal.
pub const REMINDER_EXAMPLES: &str = "\
• remind me tomorrow at 9 to call mom
• remind me in 2 hours to take the cake out
• remind me on Friday 18:30 take out the bins
• remind me on 3 March to renew the passport
• remind me every Monday at 8 to water the plants";

/// What a reminder request is read against: the user's now and zone, and the time a
/// date alone means (`REMINDER_DEFAULT_TIME`).
#[derive(Debug, Clone, Copy)]
pub struct ReminderContext {
    pub now: DateTime<Utc>,
    pub tz: Tz,
    pub default_time: NaiveTime,
}

/// Reads "tomorrow at 9 to call mom" (the words after "remind me").
///
/// # Errors
/// [`ReminderError`] saying what was not understood.
pub fn parse_reminder(request: &str, context: &ReminderContext) -> Result<ReminderRequest, ReminderError> {
    let tokens = tokens(request);
    let words: Vec<String> = tokens.iter().map(|(_, word)| normalize(word)).collect();
    let not_understood = || ReminderError::NotUnderstood { phrase: crate::domain::reply::echo(request.trim()) };
    let (when, what) = match read_when(&words) {
        Some((when, used)) if used > 0 => (when, tokens.get(used).map_or("", |(offset, _)| &request[*offset..])),
        // "to call mom tomorrow at 9": the when at the end.
        _ => (1..words.len())
            .find_map(|k| match read_when(&words[k..]) {
                Some((when, used)) if used > 0 && used == words.len() - k => Some((when, &request[..tokens[k].0])),
                _ => None,
            })
            .ok_or_else(not_understood)?,
    };
    let schedule = resolve(&when, context).map_err(|e| e.unwrap_or_else(not_understood))?;
    let what = strip_joiner(what);
    if what.is_empty() {
        return Err(ReminderError::NothingToRemind);
    }
    Ok(ReminderRequest { what: what.to_string(), schedule })
}

/// Reads a when alone ("Friday 18:30", "every day at 21:00"), for the REST API.
///
/// # Errors
/// [`ReminderError::NotUnderstood`] unless the whole phrase is a when.
pub fn parse_when(phrase: &str, context: &ReminderContext) -> Result<Schedule, ReminderError> {
    let words: Vec<String> = tokens(phrase).iter().map(|(_, word)| normalize(word)).collect();
    let not_understood = || ReminderError::NotUnderstood { phrase: crate::domain::reply::echo(phrase.trim()) };
    match read_when(&words) {
        Some((when, used)) if used > 0 && used == words.len() => {
            resolve(&when, context).map_err(|e| e.unwrap_or_else(not_understood))
        }
        _ => Err(not_understood()),
    }
}

/// "snooze" (10 minutes) or "snooze 30m" / "snooze 1 hour": how long to put a reminder
/// off by; `None` when the text is not a snooze.
pub fn parse_snooze(text: &str) -> Option<TimeDelta> {
    let words: Vec<String> = tokens(text).iter().map(|(_, word)| normalize(word)).collect();
    match words.as_slice() {
        [first] if first == "snooze" => Some(TimeDelta::minutes(10)),
        [first, rest @ ..] if first == "snooze" => {
            let rest: Vec<String> = rest.iter().filter(|w| *w != "for").cloned().collect();
            match read_duration(&rest, 0)? {
                (Duration::Exact(delta), used) if used == rest.len() && delta <= TimeDelta::days(7) => Some(delta),
                _ => None,
            }
        }
        _ => None,
    }
}

/// The parts of a when, as written.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct When {
    day: Option<Day>,
    time: Option<NaiveTime>,
    after: Option<Duration>,
    repeat: Option<RepeatWords>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Day {
    Today,
    Tomorrow,
    Weekday(Weekday),
    Date { month: u32, day: u32, year: Option<i32> },
    NthOfMonth(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RepeatWords {
    Daily,
    Weekly(Option<Weekday>),
    Monthly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Duration {
    /// Minutes and hours: exact.
    Exact(TimeDelta),
    /// Days and weeks: on the wall clock, so "in 2 days" keeps the time of day.
    Days(u64),
}

/// Reads when-words from the start; returns them and how many words they took. `None`
/// when a word that must start a when ("at", "on", "in", "every") is not followed by
/// one we understand.
fn read_when(words: &[String]) -> Option<(When, usize)> {
    let mut when = When::default();
    let mut i = 0;
    while i < words.len() {
        let word = words[i].as_str();
        let next = match word {
            "today" if when.day.is_none() => {
                when.day = Some(Day::Today);
                i + 1
            }
            "tomorrow" if when.day.is_none() => {
                when.day = Some(Day::Tomorrow);
                i + 1
            }
            "at" if when.time.is_none() => {
                let (time, used) = read_time(words, i + 1, true)?;
                when.time = Some(time);
                i + 1 + used
            }
            "on" | "next" if when.day.is_none() => {
                let (day, used) = read_day(words, i + 1)?;
                when.day = Some(day);
                i + 1 + used
            }
            "in" if when.after.is_none() => {
                let (after, used) = read_duration(words, i + 1)?;
                when.after = Some(after);
                i + 1 + used
            }
            "every" | "each" if when.repeat.is_none() => {
                let (repeat, day, used) = read_every(words, i + 1)?;
                when.repeat = Some(repeat);
                if day.is_some() {
                    when.day = day;
                }
                i + 1 + used
            }
            "daily" if when.repeat.is_none() => {
                when.repeat = Some(RepeatWords::Daily);
                i + 1
            }
            "weekly" if when.repeat.is_none() => {
                when.repeat = Some(RepeatWords::Weekly(None));
                i + 1
            }
            "monthly" if when.repeat.is_none() => {
                when.repeat = Some(RepeatWords::Monthly);
                i + 1
            }
            _ => {
                if when.time.is_none() {
                    if let Some((time, used)) = read_time(words, i, false) {
                        when.time = Some(time);
                        i += used;
                        continue;
                    }
                }
                if when.day.is_none() {
                    if let Some((day, used)) = read_day(words, i) {
                        if !matches!(day, Day::NthOfMonth(_)) {
                            when.day = Some(day);
                            i += used;
                            continue;
                        }
                    }
                }
                break;
            }
        };
        i = next;
    }
    Some((when, i))
}

/// "day", "Monday", "week", "month": what follows "every"; a weekday also names the day.
fn read_every(words: &[String], at: usize) -> Option<(RepeatWords, Option<Day>, usize)> {
    let word = words.get(at)?.as_str();
    match word {
        "day" => Some((RepeatWords::Daily, None, 1)),
        "week" => Some((RepeatWords::Weekly(None), None, 1)),
        "month" => Some((RepeatWords::Monthly, None, 1)),
        _ => parse_weekday(word).map(|day| (RepeatWords::Weekly(Some(day)), None, 1)),
    }
}

/// A day: a weekday, "the 1st", "3 March", "March 3rd 2027", "2027-03-03".
fn read_day(words: &[String], at: usize) -> Option<(Day, usize)> {
    let mut i = at;
    if words.get(i).map(String::as_str) == Some("the") {
        i += 1;
    }
    let first = words.get(i)?.as_str();
    if let Some(day) = parse_weekday(first) {
        return (i == at).then_some((Day::Weekday(day), 1));
    }
    if let Some(date) = parse_iso_date(first) {
        return (i == at).then_some((Day::Date { month: date.month(), day: date.day(), year: Some(date.year()) }, 1));
    }
    if let Some(day) = parse_day_of_month(first) {
        i += 1;
        if words.get(i).map(String::as_str) == Some("of") {
            i += 1;
        }
        let Some(month) = words.get(i).and_then(|w| parse_month(w)) else {
            // "the 1st" alone: a day of the month (only meaningful with "every month").
            return Some((Day::NthOfMonth(day), i - at));
        };
        i += 1;
        let year = words.get(i).and_then(|w| parse_year(w));
        return Some((Day::Date { month, day, year }, i + usize::from(year.is_some()) - at));
    }
    if let Some(month) = parse_month(first) {
        let day = words.get(i + 1).and_then(|w| parse_day_of_month(w))?;
        let year = words.get(i + 2).and_then(|w| parse_year(w));
        return (i == at).then_some((Day::Date { month, day, year }, 2 + usize::from(year.is_some())));
    }
    None
}

/// A time: "9" (only after "at"), "9am", "9 pm", "18:30", "9:30pm", "noon", "midnight".
fn read_time(words: &[String], at: usize, after_at: bool) -> Option<(NaiveTime, usize)> {
    let word = words.get(at)?.as_str();
    match word {
        "noon" | "midday" => return Some((NaiveTime::from_hms_opt(12, 0, 0)?, 1)),
        "midnight" => return Some((NaiveTime::MIN, 1)),
        _ => {}
    }
    let (digits, glued) = match word.strip_suffix("am").or_else(|| word.strip_suffix("a.m")) {
        Some(d) => (d, Some(false)),
        None => match word.strip_suffix("pm").or_else(|| word.strip_suffix("p.m")) {
            Some(d) => (d, Some(true)),
            None => (word, None),
        },
    };
    let (hour, minute, has_colon) = parse_clock(digits)?;
    let (pm, used) = match glued {
        Some(pm) => (Some(pm), 1),
        None => match words.get(at + 1).map(String::as_str) {
            Some("am" | "a.m") => (Some(false), 2),
            Some("pm" | "p.m") => (Some(true), 2),
            _ => (None, 1),
        },
    };
    let hour = match pm {
        Some(pm) if (1..=12).contains(&hour) => hour % 12 + if pm { 12 } else { 0 },
        Some(_) => return None,
        // A bare number is a time only after "at": "in 2 hours 3 eggs" is not 03:00.
        None if has_colon || after_at => hour,
        None => return None,
    };
    Some((NaiveTime::from_hms_opt(hour, minute, 0)?, used))
}

/// "9", "09", "18:30", "9.30" (after "at" only the first two reach here bare).
fn parse_clock(text: &str) -> Option<(u32, u32, bool)> {
    let (hour, minute, has_colon) = match text.split_once([':', '.']) {
        Some((h, m)) if m.len() == 2 => (h, m, true),
        Some(_) => return None,
        None => (text, "0", false),
    };
    if hour.is_empty() || hour.len() > 2 || !hour.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !minute.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (hour, minute): (u32, u32) = (hour.parse().ok()?, minute.parse().ok()?);
    (hour < 24 && minute < 60).then_some((hour, minute, has_colon))
}

/// "2 hours", "an hour", "30 minutes", "30m", "2h", "3 days", "1 week".
fn read_duration(words: &[String], at: usize) -> Option<(Duration, usize)> {
    let word = words.get(at)?.as_str();
    let (amount, unit, used) = match word {
        "a" | "an" | "one" => (1, words.get(at + 1)?.as_str(), 2),
        _ => match parse_amount(word) {
            Some(amount) => (amount, words.get(at + 1)?.as_str(), 2),
            None => {
                let split = word.find(|c: char| !c.is_ascii_digit())?;
                (parse_amount(&word[..split])?, &word[split..], 1)
            }
        },
    };
    let amount = i64::from(amount);
    let duration = match unit {
        "m" | "min" | "mins" | "minute" | "minutes" => Duration::Exact(TimeDelta::try_minutes(amount)?),
        "h" | "hr" | "hrs" | "hour" | "hours" => Duration::Exact(TimeDelta::try_hours(amount)?),
        "d" | "day" | "days" => Duration::Days(u64::try_from(amount).ok()?),
        "w" | "week" | "weeks" => Duration::Days(u64::try_from(amount).ok()? * 7),
        _ => return None,
    };
    Some((duration, used))
}

/// Turns the words into a schedule. `Err(None)`: a combination we do not understand
/// ("every day in 2 hours"), reported with the phrase by the caller.
fn resolve(when: &When, context: &ReminderContext) -> Result<Schedule, Option<ReminderError>> {
    let ReminderContext { now, tz, default_time } = *context;
    let today = local_time(now, tz).ok_or(None)?.date();
    let time = when.time.unwrap_or(default_time);
    if let Some(repeat) = when.repeat {
        if when.after.is_some() {
            return Err(None);
        }
        let repeat = match (repeat, when.day) {
            (RepeatWords::Daily, None) => Repeat::Daily,
            (RepeatWords::Weekly(Some(day)), None) | (RepeatWords::Weekly(None), Some(Day::Weekday(day))) => {
                Repeat::Weekly(day)
            }
            (RepeatWords::Weekly(None), None) => Repeat::Weekly(today.weekday()),
            (RepeatWords::Monthly, Some(Day::NthOfMonth(day))) => Repeat::Monthly(day),
            (RepeatWords::Monthly, None) => Repeat::Monthly(today.day()),
            _ => return Err(None),
        };
        let first = next_occurrence(repeat, time, now, tz).ok_or(None)?;
        return Ok(Schedule { first, time, repeat: Some(repeat) });
    }
    if let Some(after) = when.after {
        let first = match (after, when.day, when.time) {
            (Duration::Exact(delta), None, None) => now.checked_add_signed(delta).ok_or(None)?,
            (Duration::Days(days), None, time) => {
                let local = local_time(now, tz).ok_or(None)?;
                let date = local.date().checked_add_days(Days::new(days)).ok_or(None)?;
                resolve_wall_clock(date.and_time(time.unwrap_or(local.time())), tz).ok_or(None)?
            }
            _ => return Err(None),
        };
        return Ok(Schedule { first, time: local_time(first, tz).ok_or(None)?.time(), repeat: None });
    }
    let at = |date: NaiveDate| resolve_wall_clock(date.and_time(time), tz).ok_or(None);
    let first = match when.day {
        None => {
            let Some(time) = when.time else { return Err(None) };
            let today_at = at(today)?;
            if today_at > now {
                today_at
            } else {
                resolve_wall_clock(today.succ_opt().ok_or(None)?.and_time(time), tz).ok_or(None)?
            }
        }
        Some(Day::Today) => at(today)?,
        Some(Day::Tomorrow) => at(today.succ_opt().ok_or(None)?)?,
        Some(Day::Weekday(day)) => {
            let ahead = (day.num_days_from_monday() + 7 - today.weekday().num_days_from_monday()) % 7;
            let date = today.checked_add_days(Days::new(u64::from(ahead))).ok_or(None)?;
            let first = at(date)?;
            if first > now {
                first
            } else {
                at(date.checked_add_days(Days::new(7)).ok_or(None)?)?
            }
        }
        Some(Day::Date { month, day, year }) => {
            let this_year = NaiveDate::from_ymd_opt(year.unwrap_or(today.year()), month, day).ok_or(None)?;
            let date = match year {
                // Without a year, a date already behind us this year means next year's.
                None if this_year < today => NaiveDate::from_ymd_opt(today.year() + 1, month, day).ok_or(None)?,
                _ => this_year,
            };
            at(date)?
        }
        Some(Day::NthOfMonth(day)) => {
            let this_month = clamp_day(today.year(), today.month(), day).ok_or(None)?;
            let first = at(this_month)?;
            if this_month >= today && first > now {
                first
            } else {
                let next = today.with_day(1).and_then(|d| d.checked_add_months(chrono::Months::new(1))).ok_or(None)?;
                at(clamp_day(next.year(), next.month(), day).ok_or(None)?)?
            }
        }
    };
    if first <= now {
        return Err(Some(ReminderError::InThePast { when: super::format::local_when(first, tz, now) }));
    }
    Ok(Schedule { first, time, repeat: None })
}

/// Drops the word that joins when and what: "to call mom", ": call mom", "- call mom".
fn strip_joiner(rest: &str) -> &str {
    let rest = rest.trim();
    if rest.eq_ignore_ascii_case("to") || rest.eq_ignore_ascii_case("that") {
        return "";
    }
    for joiner in ["to ", "that ", ":", "-", ","] {
        if rest.get(..joiner.len()).is_some_and(|head| head.eq_ignore_ascii_case(joiner)) {
            return rest[joiner.len()..].trim();
        }
    }
    rest
}

/// The words of `text` with their byte offsets, so what follows the when is kept as
/// written (case, punctuation, line breaks).
fn tokens(text: &str) -> Vec<(usize, &str)> {
    let mut tokens = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                tokens.push((s, &text[s..i]));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        tokens.push((s, &text[s..]));
    }
    tokens
}

/// Lower case, without the punctuation that may trail a when word ("tomorrow,", "9:").
fn normalize(word: &str) -> String {
    word.to_lowercase().trim_end_matches([',', ':', '.', ';', '!']).to_string()
}

fn parse_amount(word: &str) -> Option<u32> {
    if word.is_empty() || word.len() > 4 || !word.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    word.parse().ok().filter(|n| (1..=1000).contains(n))
}

/// "1", "1st", "2nd", "3rd", "21st", "30th": a day of the month.
fn parse_day_of_month(word: &str) -> Option<u32> {
    let digits = ["st", "nd", "rd", "th"].iter().find_map(|suffix| word.strip_suffix(suffix)).unwrap_or(word);
    if digits.is_empty() || digits.len() > 2 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|d| (1..=31).contains(d))
}

fn parse_year(word: &str) -> Option<i32> {
    (word.len() == 4 && word.bytes().all(|b| b.is_ascii_digit())).then(|| word.parse().ok()).flatten()
}

fn parse_iso_date(word: &str) -> Option<NaiveDate> {
    (word.len() == 10).then(|| NaiveDate::parse_from_str(word, "%Y-%m-%d").ok()).flatten()
}
