//! Turns a natural-language time phrase ("last week", "since monday", "2026-11-03 to 2026-11-07")
//! into a half-open UTC range, reading calendar boundaries in the user's own time zone.

use chrono::{
    DateTime, Datelike, Days, Months, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeDelta, TimeZone, Utc, Weekday,
};
use chrono_tz::Tz;

/// A half-open interval [start, end) in UTC.
///
/// Half-open so that back-to-back ranges ("yesterday", "today") tile time with no gap and no
/// overlap, and UTC so that it can be compared directly against stored message timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    /// The first instant inside the range.
    pub start: DateTime<Utc>,
    /// The first instant after the range (excluded), so a day ends exactly where the next begins.
    pub end: DateTime<Utc>,
}

impl TimeRange {
    /// Whether `t` falls inside the range; `end` is excluded so that a message sent exactly at
    /// midnight belongs to the new day only, never to both.
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.start <= t && t < self.end
    }
}

/// Why a phrase could not be turned into a range, so the caller can tell the user instead of
/// silently searching the wrong period.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeRangeError {
    /// The phrase is not one we understand; we never guess.
    #[error("I don't understand the time range \"{phrase}\".")]
    Unknown {
        /// The phrase as the user wrote it (trimmed, and cut to [`super::reply::MAX_ECHO_CHARS`]),
        /// echoed back so they can see what failed.
        phrase: String,
    },
}

/// A short human list of the phrases understood, sent back in a WhatsApp reply when a phrase is
/// not recognised so the user can rephrase (several lines, well under 600 characters).
pub const KNOWN_PHRASES: &str = "\
• today, yesterday
• this week / last week (also month, year)
• last 3 days / past 12 hours / last 2 weeks / last 6 months / last 24h
• monday, on friday, last tuesday (or mon, tue, ...)
• since monday, since 2026-11-03
• march, march 2025 (or mar, sept, ...)
• 2026-11-03
• 2026-11-03 to 2026-11-07 (also until, through, -)";

/// Parse `phrase` relative to `now`, in zone `tz`.
///
/// `now` is passed in (never read from the clock) so results are reproducible and testable;
/// `tz` is the user's zone, because "yesterday" means their yesterday, not UTC's.
pub fn parse_time_range(phrase: &str, now: DateTime<Utc>, tz: Tz) -> Result<TimeRange, TimeRangeError> {
    let normalized = normalize(phrase);
    let words: Vec<&str> = normalized.split(' ').collect();
    interpret(&words, now, tz).ok_or_else(|| TimeRangeError::Unknown { phrase: super::reply::echo(phrase.trim()) })
}

/// Lower-cases, trims, drops one trailing '.', and collapses runs of whitespace to one space.
fn normalize(phrase: &str) -> String {
    let lower = phrase.trim().to_lowercase();
    let lower = lower.strip_suffix('.').unwrap_or(&lower);
    lower.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Matches the word list against every supported phrase shape; `None` means "not understood".
fn interpret(words: &[&str], now: DateTime<Utc>, tz: Tz) -> Option<TimeRange> {
    let today = wall_clock(now, tz)?.date();
    match *words {
        ["today"] => day_range(today, tz),
        ["yesterday"] => day_range(today.pred_opt()?, tz),
        ["this", unit] => calendar_period(Period::parse(unit)?, today, false, tz),
        ["last", word] => {
            if let Some(period) = Period::parse(word) {
                calendar_period(period, today, true, tz)
            } else if let Some(weekday) = parse_weekday(word) {
                day_range(weekday_date(weekday, today, true)?, tz)
            } else {
                rolling_attached_hours(word, now)
            }
        }
        ["past", word] => rolling_attached_hours(word, now),
        ["last" | "past", amount, unit] => rolling(parse_amount(amount)?, RollUnit::parse(unit)?, now, tz),
        ["on", word] => day_range(weekday_date(parse_weekday(word)?, today, false)?, tz),
        ["since", word] => {
            let date = match parse_weekday(word) {
                Some(weekday) => weekday_date(weekday, today, false)?,
                None => parse_iso_date(word)?,
            };
            checked_range(local_midnight(date, tz)?, now)
        }
        [word] => {
            if let Some(weekday) = parse_weekday(word) {
                day_range(weekday_date(weekday, today, false)?, tz)
            } else if let Some(month) = parse_month(word) {
                // The most recent such month that has already begun.
                let year = if today.month() >= month { today.year() } else { today.year().checked_sub(1)? };
                month_range(year, month, tz)
            } else {
                day_range(parse_iso_date(word)?, tz)
            }
        }
        [month, year] => month_range(parse_year(year)?, parse_month(month)?, tz),
        [first, separator, last] if is_separator(separator) => date_span(first, last, tz),
        ["from", first, separator, last] if is_separator(separator) => date_span(first, last, tz),
        _ => None,
    }
}

/// A calendar period for "this X" / "last X".
#[derive(Clone, Copy)]
enum Period {
    Week,
    Month,
    Year,
}

impl Period {
    fn parse(word: &str) -> Option<Period> {
        match word {
            "week" => Some(Period::Week),
            "month" => Some(Period::Month),
            "year" => Some(Period::Year),
            _ => None,
        }
    }
}

/// The current (or, with `previous`, the preceding) calendar week/month/year, local midnights.
fn calendar_period(period: Period, today: NaiveDate, previous: bool, tz: Tz) -> Option<TimeRange> {
    let (start, end) = match period {
        Period::Week => {
            let monday = today.checked_sub_days(Days::new(u64::from(today.weekday().num_days_from_monday())))?;
            let start = if previous { monday.checked_sub_days(Days::new(7))? } else { monday };
            (start, start.checked_add_days(Days::new(7))?)
        }
        Period::Month => {
            let first = today.with_day(1)?;
            let start = if previous { first.checked_sub_months(Months::new(1))? } else { first };
            (start, start.checked_add_months(Months::new(1))?)
        }
        Period::Year => {
            let year = today.year().checked_sub(i32::from(previous))?;
            (NaiveDate::from_ymd_opt(year, 1, 1)?, NaiveDate::from_ymd_opt(year.checked_add(1)?, 1, 1)?)
        }
    };
    dates_range(start, end, tz)
}

/// The unit of a rolling "last N units" window.
#[derive(Clone, Copy)]
enum RollUnit {
    Hours,
    Days,
    Weeks,
    Months,
}

impl RollUnit {
    fn parse(word: &str) -> Option<RollUnit> {
        match word {
            "h" | "hour" | "hours" => Some(RollUnit::Hours),
            "day" | "days" => Some(RollUnit::Days),
            "week" | "weeks" => Some(RollUnit::Weeks),
            "month" | "months" => Some(RollUnit::Months),
            _ => None,
        }
    }
}

/// A rolling window [now - N units, now). Hours, days and weeks are exact durations (a day is
/// 24 h even across a DST change); months step back on the local wall clock.
fn rolling(amount: u32, unit: RollUnit, now: DateTime<Utc>, tz: Tz) -> Option<TimeRange> {
    let hours = i64::from(amount);
    let start = match unit {
        RollUnit::Hours => now.checked_sub_signed(TimeDelta::try_hours(hours)?)?,
        RollUnit::Days => now.checked_sub_signed(TimeDelta::try_hours(hours * 24)?)?,
        RollUnit::Weeks => now.checked_sub_signed(TimeDelta::try_hours(hours * 24 * 7)?)?,
        RollUnit::Months => {
            let local = wall_clock(now, tz)?.checked_sub_months(Months::new(amount))?;
            resolve_local(local, tz)?
        }
    };
    checked_range(start, now)
}

/// "last 24h": a count with the hour suffix glued on.
fn rolling_attached_hours(word: &str, now: DateTime<Utc>) -> Option<TimeRange> {
    let amount = parse_amount(word.strip_suffix('h')?)?;
    let start = now.checked_sub_signed(TimeDelta::try_hours(i64::from(amount))?)?;
    checked_range(start, now)
}

/// A plain decimal count in 1..=1000 (no sign, no other characters).
fn parse_amount(word: &str) -> Option<u32> {
    if word.is_empty() || word.len() > 4 || !word.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let amount: u32 = word.parse().ok()?;
    (1..=1000).contains(&amount).then_some(amount)
}

/// A weekday's English name or abbreviation, lower case (shared with reminders).
pub(crate) fn parse_weekday(word: &str) -> Option<Weekday> {
    Some(match word {
        "monday" | "mon" => Weekday::Mon,
        "tuesday" | "tue" | "tues" => Weekday::Tue,
        "wednesday" | "wed" => Weekday::Wed,
        "thursday" | "thu" | "thur" | "thurs" => Weekday::Thu,
        "friday" | "fri" => Weekday::Fri,
        "saturday" | "sat" => Weekday::Sat,
        "sunday" | "sun" => Weekday::Sun,
        _ => return None,
    })
}

/// The most recent `weekday` on or before `today` (strictly before when `strictly_before`).
fn weekday_date(weekday: Weekday, today: NaiveDate, strictly_before: bool) -> Option<NaiveDate> {
    let today_index = today.weekday().num_days_from_monday();
    let target_index = weekday.num_days_from_monday();
    let mut back = (today_index + 7 - target_index) % 7;
    if back == 0 && strictly_before {
        back = 7;
    }
    today.checked_sub_days(Days::new(u64::from(back)))
}

/// A month's English name or abbreviation, lower case, as 1..=12 (shared with reminders).
pub(crate) fn parse_month(word: &str) -> Option<u32> {
    Some(match word {
        "january" | "jan" => 1,
        "february" | "feb" => 2,
        "march" | "mar" => 3,
        "april" | "apr" => 4,
        "may" => 5,
        "june" | "jun" => 6,
        "july" | "jul" => 7,
        "august" | "aug" => 8,
        "september" | "sep" | "sept" => 9,
        "october" | "oct" => 10,
        "november" | "nov" => 11,
        "december" | "dec" => 12,
        _ => return None,
    })
}

/// Exactly four ASCII digits.
fn parse_year(word: &str) -> Option<i32> {
    if word.len() != 4 || !word.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    word.parse().ok()
}

/// Strict `YYYY-MM-DD` that names a real calendar day.
fn parse_iso_date(word: &str) -> Option<NaiveDate> {
    let bytes = word.as_bytes();
    let shape_ok = bytes.len() == 10
        && bytes.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            _ => b.is_ascii_digit(),
        });
    if !shape_ok {
        return None;
    }
    let year = word[0..4].parse().ok()?;
    let month = word[5..7].parse().ok()?;
    let day = word[8..10].parse().ok()?;
    NaiveDate::from_ymd_opt(year, month, day)
}

fn is_separator(word: &str) -> bool {
    matches!(word, "to" | "-" | "until" | "through")
}

/// `first` .. `last` inclusive of the whole last day; rejects spans that run backwards.
fn date_span(first: &str, last: &str, tz: Tz) -> Option<TimeRange> {
    let first = parse_iso_date(first)?;
    let last = parse_iso_date(last)?;
    if last < first {
        return None;
    }
    dates_range(first, last.succ_opt()?, tz)
}

fn month_range(year: i32, month: u32, tz: Tz) -> Option<TimeRange> {
    let start = NaiveDate::from_ymd_opt(year, month, 1)?;
    dates_range(start, start.checked_add_months(Months::new(1))?, tz)
}

fn day_range(date: NaiveDate, tz: Tz) -> Option<TimeRange> {
    dates_range(date, date.succ_opt()?, tz)
}

/// From local midnight of `start` to local midnight of `end` (exclusive).
fn dates_range(start: NaiveDate, end: NaiveDate, tz: Tz) -> Option<TimeRange> {
    checked_range(local_midnight(start, tz)?, local_midnight(end, tz)?)
}

/// A range, or `None` if it would run backwards.
fn checked_range(start: DateTime<Utc>, end: DateTime<Utc>) -> Option<TimeRange> {
    (start <= end).then_some(TimeRange { start, end })
}

/// The UTC instant at which `date` begins in `tz`: local 00:00, or, where DST makes midnight
/// not exist, the first instant that does exist on that day.
fn local_midnight(date: NaiveDate, tz: Tz) -> Option<DateTime<Utc>> {
    resolve_local(date.and_time(NaiveTime::MIN), tz)
}

/// Maps a local wall-clock reading to UTC. Ambiguous readings (clocks fall back) take the
/// earliest instant; readings inside a gap (clocks spring forward) take the first instant
/// whose wall clock reads at or after `local`, i.e. the moment the gap ends.
fn resolve_local(local: NaiveDateTime, tz: Tz) -> Option<DateTime<Utc>> {
    if let Some(t) = tz.from_local_datetime(&local).earliest() {
        return Some(t.with_timezone(&Utc));
    }
    // Binary search over UTC seconds; ±2 days comfortably brackets any offset (|offset| < 1 day)
    // and even a whole skipped calendar day.
    let target = local.and_utc().timestamp();
    let mut lo = target.checked_sub(2 * 86_400)?;
    let mut hi = target.checked_add(2 * 86_400)?;
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if wall_clock(DateTime::from_timestamp(mid, 0)?, tz)? >= local {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    DateTime::from_timestamp(lo, 0)
}

/// The local wall-clock reading of `t` in `tz`, without panicking at the edges of chrono's range.
fn wall_clock(t: DateTime<Utc>, tz: Tz) -> Option<NaiveDateTime> {
    let utc = t.naive_utc();
    utc.checked_add_offset(tz.offset_from_utc_datetime(&utc).fix())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::LocalResult;
    use chrono_tz::America::{Havana, New_York, Santiago};
    use chrono_tz::Asia::Beirut;
    use chrono_tz::Europe::Berlin;
    use chrono_tz::Pacific::Apia;

    /// A UTC instant from RFC 3339 text, e.g. "2026-03-28T23:00:00Z".
    fn utc(text: &str) -> DateTime<Utc> {
        text.parse().expect("valid RFC 3339 test timestamp")
    }

    /// A local wall-clock time ("2026-03-30 10:00") that exists exactly once in `tz`, as UTC.
    fn local(tz: Tz, text: &str) -> DateTime<Utc> {
        let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").expect("test time");
        match tz.from_local_datetime(&naive) {
            LocalResult::Single(t) => t.with_timezone(&Utc),
            other => panic!("test time {text} is not unique in {tz}: {other:?}"),
        }
    }

    fn parse(phrase: &str, now: DateTime<Utc>, tz: Tz) -> TimeRange {
        parse_time_range(phrase, now, tz).unwrap_or_else(|e| panic!("{phrase:?} should parse but got: {e}"))
    }

    fn range(start: &str, end: &str) -> TimeRange {
        TimeRange { start: utc(start), end: utc(end) }
    }

    fn hours(r: TimeRange) -> i64 {
        (r.end - r.start).num_hours()
    }

    fn is_unknown(phrase: &str, now: DateTime<Utc>, tz: Tz) -> bool {
        parse_time_range(phrase, now, tz) == Err(TimeRangeError::Unknown { phrase: phrase.trim().to_string() })
    }

    /// Wednesday 2026-11-11 15:30 in New York (EST, UTC-5): the default fixed "now".
    fn wednesday_in_new_york() -> DateTime<Utc> {
        local(New_York, "2026-11-11 15:30")
    }

    #[test]
    fn today_runs_from_local_midnight_to_the_next_local_midnight() {
        let r = parse("today", wednesday_in_new_york(), New_York);
        assert_eq!(r, range("2026-11-11T05:00:00Z", "2026-11-12T05:00:00Z"));
    }

    #[test]
    fn today_is_the_users_local_day_not_the_utc_day() {
        // 22:00 in New York is already tomorrow in UTC.
        let now = local(New_York, "2026-11-11 22:00");
        let r = parse("today", now, New_York);
        assert_eq!(r, range("2026-11-11T05:00:00Z", "2026-11-12T05:00:00Z"));
    }

    #[test]
    fn yesterday_is_the_full_previous_local_day_and_ends_where_today_starts() {
        let now = wednesday_in_new_york();
        let yesterday = parse("yesterday", now, New_York);
        assert_eq!(yesterday, range("2026-11-10T05:00:00Z", "2026-11-11T05:00:00Z"));
        assert_eq!(yesterday.end, parse("today", now, New_York).start);
    }

    #[test]
    fn yesterday_after_berlin_spring_forward_is_a_23_hour_day() {
        let now = local(Berlin, "2026-03-30 10:00");
        let r = parse("yesterday", now, Berlin);
        assert_eq!(r, range("2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z"));
        assert_eq!(hours(r), 23);
    }

    #[test]
    fn yesterday_after_berlin_fall_back_is_a_25_hour_day() {
        let now = local(Berlin, "2026-10-26 10:00");
        let r = parse("yesterday", now, Berlin);
        assert_eq!(r, range("2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z"));
        assert_eq!(hours(r), 25);
    }

    #[test]
    fn today_on_berlin_spring_forward_day_is_23_hours() {
        let now = local(Berlin, "2026-03-29 12:00");
        let r = parse("today", now, Berlin);
        assert_eq!(r, range("2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z"));
    }

    #[test]
    fn today_on_new_york_spring_forward_day_is_23_hours() {
        let now = local(New_York, "2026-03-08 12:00");
        let r = parse("today", now, New_York);
        assert_eq!(r, range("2026-03-08T05:00:00Z", "2026-03-09T04:00:00Z"));
        assert_eq!(hours(r), 23);
    }

    #[test]
    fn today_on_new_york_fall_back_day_is_25_hours() {
        let now = local(New_York, "2026-11-01 12:00");
        let r = parse("today", now, New_York);
        assert_eq!(r, range("2026-11-01T04:00:00Z", "2026-11-02T05:00:00Z"));
        assert_eq!(hours(r), 25);
    }

    #[test]
    fn last_week_is_the_previous_calendar_week_not_seven_days() {
        let now = wednesday_in_new_york();
        let r = parse("last week", now, New_York);
        // Monday 2026-11-02 00:00 EST .. Monday 2026-11-09 00:00 EST.
        assert_eq!(r, range("2026-11-02T05:00:00Z", "2026-11-09T05:00:00Z"));
        assert_ne!(r.start, now - TimeDelta::days(7));
        assert!(!r.contains(now));
    }

    #[test]
    fn this_week_runs_from_monday_to_next_monday() {
        let r = parse("this week", wednesday_in_new_york(), New_York);
        assert_eq!(r, range("2026-11-09T05:00:00Z", "2026-11-16T05:00:00Z"));
    }

    #[test]
    fn this_week_on_a_sunday_still_started_on_the_previous_monday() {
        let now = local(New_York, "2026-11-15 09:00");
        let r = parse("this week", now, New_York);
        assert_eq!(r, range("2026-11-09T05:00:00Z", "2026-11-16T05:00:00Z"));
    }

    #[test]
    fn this_week_spanning_berlin_spring_forward_is_one_hour_short() {
        let now = local(Berlin, "2026-03-25 12:00");
        let r = parse("this week", now, Berlin);
        assert_eq!(r, range("2026-03-22T23:00:00Z", "2026-03-29T22:00:00Z"));
        assert_eq!(hours(r), 7 * 24 - 1);
    }

    #[test]
    fn last_week_spanning_new_york_fall_back_is_one_hour_long() {
        let now = local(New_York, "2026-11-04 12:00");
        let r = parse("last week", now, New_York);
        // Monday 2026-10-26 00:00 EDT .. Monday 2026-11-02 00:00 EST.
        assert_eq!(r, range("2026-10-26T04:00:00Z", "2026-11-02T05:00:00Z"));
        assert_eq!(hours(r), 7 * 24 + 1);
    }

    #[test]
    fn this_month_and_last_month_are_calendar_months() {
        let now = wednesday_in_new_york();
        assert_eq!(parse("this month", now, New_York), range("2026-11-01T04:00:00Z", "2026-12-01T05:00:00Z"));
        assert_eq!(parse("last month", now, New_York), range("2026-10-01T04:00:00Z", "2026-11-01T04:00:00Z"));
    }

    #[test]
    fn last_month_in_january_is_december_of_the_previous_year() {
        let now = local(Berlin, "2026-01-15 08:00");
        assert_eq!(parse("last month", now, Berlin), range("2025-11-30T23:00:00Z", "2025-12-31T23:00:00Z"));
    }

    #[test]
    fn this_year_and_last_year_are_calendar_years() {
        let now = wednesday_in_new_york();
        assert_eq!(parse("this year", now, New_York), range("2026-01-01T05:00:00Z", "2027-01-01T05:00:00Z"));
        assert_eq!(parse("last year", now, New_York), range("2025-01-01T05:00:00Z", "2026-01-01T05:00:00Z"));
    }

    #[test]
    fn last_n_days_is_a_rolling_window_ending_now() {
        let now = wednesday_in_new_york();
        let r = parse("last 3 days", now, New_York);
        assert_eq!(r.start, now - TimeDelta::hours(72));
        assert_eq!(r.end, now);
        assert_eq!(parse("past 3 days", now, New_York), r);
        assert_eq!(parse("last 1 day", now, New_York).start, now - TimeDelta::hours(24));
    }

    #[test]
    fn last_2_days_across_a_dst_change_is_exactly_48_hours() {
        let now = local(Berlin, "2026-03-30 10:00");
        let r = parse("last 2 days", now, Berlin);
        assert_eq!(r, range("2026-03-28T08:00:00Z", "2026-03-30T08:00:00Z"));
        assert_eq!(hours(r), 48);
    }

    #[test]
    fn last_hours_accepts_singular_plural_past_and_the_h_suffix() {
        let now = wednesday_in_new_york();
        let expected = TimeRange { start: now - TimeDelta::hours(24), end: now };
        for phrase in ["last 24 hours", "past 24 hours", "last 24h", "past 24h", "last 24 h"] {
            assert_eq!(parse(phrase, now, New_York), expected, "{phrase}");
        }
        assert_eq!(parse("last 1 hour", now, New_York).start, now - TimeDelta::hours(1));
    }

    #[test]
    fn last_n_weeks_is_n_times_seven_exact_days() {
        let now = local(New_York, "2026-11-04 12:00");
        let r = parse("last 2 weeks", now, New_York);
        assert_eq!(r.start, now - TimeDelta::hours(14 * 24));
        assert_eq!(r.end, now);
        assert_eq!(parse("last 1 week", now, New_York).start, now - TimeDelta::days(7));
    }

    #[test]
    fn last_n_months_steps_back_calendar_months_on_the_local_clock() {
        // 2026-03-31 10:00 EDT -> 2026-02-28 10:00 EST (clamped day, different offset).
        let now = local(New_York, "2026-03-31 10:00");
        let r = parse("last 1 month", now, New_York);
        assert_eq!(r, range("2026-02-28T15:00:00Z", "2026-03-31T14:00:00Z"));
        assert_eq!(parse("last 12 months", now, New_York).start, utc("2025-03-31T14:00:00Z"));
    }

    #[test]
    fn rolling_counts_outside_1_to_1000_are_rejected() {
        let now = wednesday_in_new_york();
        for phrase in [
            "last 0 days",
            "last 1001 days",
            "last 99999999999999 days",
            "last -1 days",
            "last +5 days",
            "last 0h",
            "last 2.5 hours",
            "last three days",
        ] {
            assert!(is_unknown(phrase, now, New_York), "{phrase}");
        }
        assert!(parse_time_range("last 1000 days", now, New_York).is_ok());
    }

    #[test]
    fn bare_weekday_includes_today() {
        let now = wednesday_in_new_york();
        assert_eq!(parse("wednesday", now, New_York), parse("today", now, New_York));
    }

    #[test]
    fn bare_weekday_is_the_most_recent_such_day() {
        let now = wednesday_in_new_york();
        assert_eq!(parse("monday", now, New_York), range("2026-11-09T05:00:00Z", "2026-11-10T05:00:00Z"));
        // Friday has not come yet this week, so it is last week's Friday.
        assert_eq!(parse("friday", now, New_York), range("2026-11-06T05:00:00Z", "2026-11-07T05:00:00Z"));
    }

    #[test]
    fn last_weekday_is_strictly_before_today() {
        let now = wednesday_in_new_york();
        assert_eq!(parse("last wednesday", now, New_York), range("2026-11-04T05:00:00Z", "2026-11-05T05:00:00Z"));
        assert_eq!(parse("last monday", now, New_York), parse("monday", now, New_York));
    }

    #[test]
    fn on_prefix_and_abbreviations_name_the_same_day() {
        let now = wednesday_in_new_york();
        let names = [
            ("monday", &["mon", "on monday", "on mon"][..]),
            ("tuesday", &["tue", "tues"][..]),
            ("wednesday", &["wed"][..]),
            ("thursday", &["thu", "thur", "thurs", "on thursday"][..]),
            ("friday", &["fri"][..]),
            ("saturday", &["sat"][..]),
            ("sunday", &["sun", "on sun"][..]),
        ];
        for (full, aliases) in names {
            let expected = parse(full, now, New_York);
            for alias in aliases {
                assert_eq!(parse(alias, now, New_York), expected, "{alias}");
            }
        }
        assert_ne!(parse("sat", now, New_York), parse("sun", now, New_York));
    }

    #[test]
    fn since_weekday_runs_from_that_local_midnight_until_now() {
        let now = wednesday_in_new_york();
        let r = parse("since monday", now, New_York);
        assert_eq!(r.start, utc("2026-11-09T05:00:00Z"));
        assert_eq!(r.end, now);
        // "since wednesday" on a Wednesday is today so far.
        assert_eq!(parse("since wed", now, New_York).start, utc("2026-11-11T05:00:00Z"));
    }

    #[test]
    fn since_date_runs_from_that_local_midnight_until_now() {
        let now = wednesday_in_new_york();
        let r = parse("since 2026-10-30", now, New_York);
        assert_eq!(r.start, utc("2026-10-30T04:00:00Z"));
        assert_eq!(r.end, now);
    }

    #[test]
    fn since_a_future_date_or_nothing_is_rejected() {
        let now = wednesday_in_new_york();
        assert!(is_unknown("since 2026-11-12", now, New_York));
        assert!(is_unknown("since", now, New_York));
        assert!(is_unknown("since tomorrow", now, New_York));
    }

    #[test]
    fn iso_date_is_that_whole_local_day() {
        let now = wednesday_in_new_york();
        assert_eq!(parse("2026-11-03", now, New_York), range("2026-11-03T05:00:00Z", "2026-11-04T05:00:00Z"));
        assert_eq!(parse("2026-11-03", now, Berlin), range("2026-11-02T23:00:00Z", "2026-11-03T23:00:00Z"));
    }

    #[test]
    fn impossible_or_loosely_written_dates_are_rejected() {
        let now = wednesday_in_new_york();
        for phrase in
            ["2026-02-30", "2026-13-01", "2026-00-10", "2026-1-3", "26-01-03", "2026/01/03", "2026-01-03T00:00"]
        {
            assert!(is_unknown(phrase, now, New_York), "{phrase}");
        }
        assert!(parse_time_range("2028-02-29", now, New_York).is_ok());
    }

    #[test]
    fn date_range_includes_the_whole_end_date() {
        let now = wednesday_in_new_york();
        let r = parse("2026-11-03 to 2026-11-05", now, New_York);
        assert_eq!(r, range("2026-11-03T05:00:00Z", "2026-11-06T05:00:00Z"));
        assert!(r.contains(utc("2026-11-06T04:59:59Z")));
    }

    #[test]
    fn date_range_accepts_every_separator_and_a_from_prefix() {
        let now = wednesday_in_new_york();
        let expected = range("2026-10-30T04:00:00Z", "2026-11-03T05:00:00Z");
        for phrase in [
            "2026-10-30 to 2026-11-02",
            "2026-10-30 - 2026-11-02",
            "2026-10-30 until 2026-11-02",
            "2026-10-30 through 2026-11-02",
            "from 2026-10-30 to 2026-11-02",
            "from 2026-10-30 until 2026-11-02",
        ] {
            assert_eq!(parse(phrase, now, New_York), expected, "{phrase}");
        }
        assert!(is_unknown("2026-10-30 and 2026-11-02", now, New_York));
        assert!(is_unknown("2026-10-30-2026-11-02", now, New_York));
    }

    #[test]
    fn date_range_ending_before_it_starts_is_rejected() {
        let now = wednesday_in_new_york();
        assert!(is_unknown("2026-11-05 to 2026-11-03", now, New_York));
        assert_eq!(parse("2026-11-03 to 2026-11-03", now, New_York), parse("2026-11-03", now, New_York));
    }

    #[test]
    fn bare_month_is_this_year_once_it_has_begun() {
        let now = wednesday_in_new_york();
        assert_eq!(parse("march", now, New_York), range("2026-03-01T05:00:00Z", "2026-04-01T04:00:00Z"));
        assert_eq!(parse("november", now, New_York), parse("this month", now, New_York));
    }

    #[test]
    fn bare_month_not_yet_begun_this_year_means_last_year() {
        let now = local(New_York, "2026-02-10 12:00");
        assert_eq!(parse("march", now, New_York), range("2025-03-01T05:00:00Z", "2025-04-01T04:00:00Z"));
        assert_eq!(parse("december", now, New_York).start, utc("2025-12-01T05:00:00Z"));
    }

    #[test]
    fn month_abbreviations_and_sept_are_understood() {
        let now = wednesday_in_new_york();
        for (full, short) in [
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep"),
            ("september", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ] {
            assert_eq!(parse(short, now, New_York), parse(full, now, New_York), "{short}");
        }
        assert_eq!(parse("may", now, New_York), range("2026-05-01T04:00:00Z", "2026-06-01T04:00:00Z"));
    }

    #[test]
    fn month_with_a_year_is_exactly_that_month() {
        let now = wednesday_in_new_york();
        assert_eq!(parse("march 2025", now, Berlin), range("2025-02-28T23:00:00Z", "2025-03-31T22:00:00Z"));
        assert_eq!(parse("Sept 2024", now, New_York), range("2024-09-01T04:00:00Z", "2024-10-01T04:00:00Z"));
        assert!(is_unknown("march 25", now, New_York));
        assert!(is_unknown("march 20255", now, New_York));
    }

    #[test]
    fn phrases_ignore_case_whitespace_a_trailing_dot_and_extra_spaces() {
        let now = wednesday_in_new_york();
        assert_eq!(parse("  Last   WEEK. ", now, New_York), parse("last week", now, New_York));
        assert_eq!(parse("Today.", now, New_York), parse("today", now, New_York));
        assert_eq!(
            parse("\tFROM 2026-10-30\n TO  2026-11-02.", now, New_York),
            parse("2026-10-30 to 2026-11-02", now, New_York)
        );
    }

    #[test]
    fn unknown_phrases_are_rejected_with_the_phrase_in_the_message() {
        let now = wednesday_in_new_york();
        for phrase in [
            "tomorrow",
            "next week",
            "last day",
            "this monday",
            "in march",
            "last march",
            "the other day",
            "today yesterday",
        ] {
            assert!(is_unknown(phrase, now, New_York), "{phrase}");
        }
        let err = parse_time_range("  Whenever ", now, New_York).unwrap_err();
        assert_eq!(err.to_string(), "I don't understand the time range \"Whenever\".");
    }

    #[test]
    fn santiago_day_without_a_midnight_starts_at_the_first_existing_instant() {
        // Confirm the premise: on 2026-09-06 Santiago clocks jump from 00:00 to 01:00.
        let midnight = NaiveDate::from_ymd_opt(2026, 9, 6).unwrap().and_time(NaiveTime::MIN);
        assert_eq!(Santiago.from_local_datetime(&midnight), LocalResult::None);

        let now = local(Santiago, "2026-09-06 15:00");
        let today = parse("today", now, Santiago);
        // 01:00 -03 is 04:00Z; the day ends at 2026-09-07 00:00 -03.
        assert_eq!(today, range("2026-09-06T04:00:00Z", "2026-09-07T03:00:00Z"));
        assert_eq!(hours(today), 23);
        // The previous day (all at -04) ends exactly where this one starts.
        let yesterday = parse("yesterday", now, Santiago);
        assert_eq!(yesterday, range("2026-09-05T04:00:00Z", "2026-09-06T04:00:00Z"));
    }

    #[test]
    fn beirut_day_without_a_midnight_starts_when_clocks_reach_one_am() {
        let now = local(Beirut, "2026-03-29 12:00");
        assert_eq!(parse("2026-03-29", now, Beirut), range("2026-03-28T22:00:00Z", "2026-03-29T21:00:00Z"));
    }

    #[test]
    fn ambiguous_midnight_uses_the_earliest_instant() {
        // Havana falls back at 01:00 CDT to 00:00 CST on 2026-11-01, so midnight occurs twice.
        let now = wednesday_in_new_york();
        let r = parse("2026-11-01", now, Havana);
        assert_eq!(r, range("2026-11-01T04:00:00Z", "2026-11-02T05:00:00Z"));
        assert_eq!(parse("2026-10-31", now, Havana).end, r.start);
    }

    #[test]
    fn a_calendar_day_skipped_entirely_is_an_empty_range() {
        // Samoa skipped 2011-12-30 when it crossed the date line.
        let now = utc("2012-01-05T00:00:00Z");
        let r = parse("2011-12-30", now, Apia);
        assert_eq!(r, range("2011-12-30T10:00:00Z", "2011-12-30T10:00:00Z"));
        assert!(!r.contains(r.start));
        assert_eq!(parse("2011-12-29", now, Apia).end, r.start);
    }

    #[test]
    fn contains_includes_start_and_excludes_end() {
        let r = range("2026-11-03T05:00:00Z", "2026-11-04T05:00:00Z");
        assert!(r.contains(r.start));
        assert!(r.contains(utc("2026-11-04T04:59:59Z")));
        assert!(!r.contains(r.end));
        assert!(!r.contains(utc("2026-11-03T04:59:59Z")));
    }

    #[test]
    fn odd_inputs_never_panic_and_never_yield_backward_ranges() {
        let odd = [
            "",
            " ",
            ".",
            "..",
            "last",
            "last 0 days",
            "last 99999999999999 days",
            "since",
            "since since",
            "2026-02-30",
            "9999-12-31",
            "0000-01-01",
            "december 9999",
            "january 0000",
            "🙂",
            "last 🙂 days",
            "läst wëek",
            "İ",
            "ß",
            "from",
            "from to",
            "- - -",
            "2026-11-03 to",
            "to 2026-11-03",
            "last 1000 months",
            "last 1000 weeks",
            "last 1000h",
            "\u{0}",
            "2026-11-0３",
            "2026-11-03 to 2026-11-03 to 2026-11-03",
        ];
        let words = [
            "last",
            "past",
            "this",
            "since",
            "on",
            "from",
            "to",
            "-",
            "today",
            "week",
            "5",
            "1000",
            "h",
            "24h",
            "days",
            "monday",
            "march",
            "2026",
            "2026-11-03",
            "🙂",
        ];
        let mut phrases: Vec<String> = odd.iter().map(|s| s.to_string()).collect();
        for a in words {
            for b in words {
                phrases.push(format!("{a} {b}"));
                for c in words {
                    phrases.push(format!("{a} {b} {c}"));
                }
            }
        }
        let nows =
            [wednesday_in_new_york(), DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC, DateTime::<Utc>::UNIX_EPOCH];
        let mut understood = 0;
        for now in nows {
            for tz in [New_York, Santiago, Apia, chrono_tz::UTC] {
                for phrase in &phrases {
                    if let Ok(r) = parse_time_range(phrase, now, tz) {
                        assert!(r.start <= r.end, "{phrase:?} at {now} in {tz}: {r:?}");
                        understood += 1;
                    }
                }
            }
        }
        assert!(understood > 0, "the fuzz corpus should include some real phrases");
        assert!(is_unknown("last 99999999999999 days", nows[0], New_York));
    }

    #[test]
    fn known_phrases_is_a_short_multi_line_list_of_phrases_that_really_parse() {
        assert!(KNOWN_PHRASES.chars().count() < 600);
        assert!(KNOWN_PHRASES.lines().count() >= 5);
        let now = wednesday_in_new_york();
        for example in [
            "today",
            "yesterday",
            "last week",
            "last 3 days",
            "past 12 hours",
            "last 24h",
            "last 6 months",
            "on friday",
            "last tuesday",
            "since monday",
            "since 2026-11-03",
            "march 2025",
            "2026-11-03 to 2026-11-07",
        ] {
            assert!(KNOWN_PHRASES.contains(example), "{example} not listed");
            assert!(parse_time_range(example, now, New_York).is_ok(), "listed example {example} does not parse");
        }
    }
}
