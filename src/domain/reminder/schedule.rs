//! When a reminder's occurrences fall: local wall-clock times in the user's zone, turned
//! into UTC instants the way people expect across DST changes.

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone, Utc, Weekday};
use chrono_tz::Tz;

/// How a reminder repeats. The time of day is kept beside it (local), so a daily 08:00
/// stays 08:00 on the wall clock when the clocks change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    /// Every day.
    Daily,
    /// Every week on this weekday.
    Weekly(Weekday),
    /// Every month on this day (1..=31); a month too short for it uses its last day, so
    /// "every month on the 31st" still fires in April.
    Monthly(u32),
}

impl Repeat {
    /// The value stored in `reminders.repeat`: identifiers that never change, since rows
    /// outlive upgrades (`daily`, `weekly:mon`, `monthly:1`).
    pub fn to_stored(self) -> String {
        match self {
            Repeat::Daily => "daily".to_string(),
            Repeat::Weekly(day) => format!("weekly:{}", weekday_code(day)),
            Repeat::Monthly(day) => format!("monthly:{day}"),
        }
    }

    /// Reads [`Repeat::to_stored`]'s value back; `None` for anything else.
    pub fn from_stored(text: &str) -> Option<Repeat> {
        match text.split_once(':') {
            None if text == "daily" => Some(Repeat::Daily),
            Some(("weekly", day)) => weekday_from_code(day).map(Repeat::Weekly),
            Some(("monthly", day)) => day.parse().ok().filter(|d| (1..=31).contains(d)).map(Repeat::Monthly),
            _ => None,
        }
    }

    /// A repeat named by one word (`daily`, `weekly`, `monthly`), anchored on the local
    /// date of the first occurrence: what the REST API's `repeat` field means.
    pub fn from_word(word: &str, first: NaiveDate) -> Option<Repeat> {
        match word.trim().to_lowercase().as_str() {
            "daily" | "day" => Some(Repeat::Daily),
            "weekly" | "week" => Some(Repeat::Weekly(first.weekday())),
            "monthly" | "month" => Some(Repeat::Monthly(first.day())),
            _ => None,
        }
    }
}

fn weekday_code(day: Weekday) -> &'static str {
    match day {
        Weekday::Mon => "mon",
        Weekday::Tue => "tue",
        Weekday::Wed => "wed",
        Weekday::Thu => "thu",
        Weekday::Fri => "fri",
        Weekday::Sat => "sat",
        Weekday::Sun => "sun",
    }
}

fn weekday_from_code(code: &str) -> Option<Weekday> {
    [Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri, Weekday::Sat, Weekday::Sun]
        .into_iter()
        .find(|day| weekday_code(*day) == code)
}

/// When a reminder fires: its first (next) occurrence, its local time of day, and how it
/// repeats (`None`: once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub first: DateTime<Utc>,
    pub time: NaiveTime,
    pub repeat: Option<Repeat>,
}

/// The instant a local wall-clock reading means for a reminder. A reading that happens
/// twice (clocks fall back) takes the first, so the reminder fires once; a reading that
/// never happens (clocks spring forward) is moved on by the length of the gap, as
/// calendars do: 02:30 on a spring-forward day fires at 03:30.
pub fn resolve_wall_clock(local: NaiveDateTime, tz: Tz) -> Option<DateTime<Utc>> {
    if let Some(t) = tz.from_local_datetime(&local).earliest() {
        return Some(t.with_timezone(&Utc));
    }
    // In a gap: read the time with the offset in force before it (a day earlier is
    // safely before any gap that contains `local`).
    let before = local.checked_sub_days(Days::new(1))?;
    let offset = tz.offset_from_utc_datetime(&before).fix();
    Some(local.checked_sub_offset(offset)?.and_utc())
}

/// The local wall-clock reading of `t` in `tz`; `None` when it falls outside the calendar
/// chrono can represent (an instant within hours of its first or last day, in a zone whose
/// offset takes it over the edge), where `naive_local()` would panic (found by the
/// `reminder` fuzz target).
pub fn local_time(t: DateTime<Utc>, tz: Tz) -> Option<NaiveDateTime> {
    let utc = t.naive_utc();
    utc.checked_add_offset(tz.offset_from_utc_datetime(&utc).fix())
}

/// The first occurrence of `repeat` at local `time` strictly after `after`: the next
/// occurrence of a recurring reminder once one has fired (or been dropped).
pub fn next_occurrence(repeat: Repeat, time: NaiveTime, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
    // From the day before: `after`'s local date may already hold a later occurrence.
    let start = local_time(after, tz)?.date().pred_opt()?;
    match repeat {
        Repeat::Daily | Repeat::Weekly(_) => (0..=9u64)
            .filter_map(|i| start.checked_add_days(Days::new(i)))
            .filter(|date| matches!(repeat, Repeat::Daily) || Repeat::Weekly(date.weekday()) == repeat)
            .filter_map(|date| resolve_wall_clock(date.and_time(time), tz))
            .find(|t| *t > after),
        Repeat::Monthly(day) => {
            let first_of_month = start.with_day(1)?;
            (0..=2u32)
                .filter_map(|i| first_of_month.checked_add_months(Months::new(i)))
                .filter_map(|month| clamp_day(month.year(), month.month(), day))
                .filter_map(|date| resolve_wall_clock(date.and_time(time), tz))
                .find(|t| *t > after)
        }
    }
}

/// `day` of the month, or the month's last day when it is shorter.
pub fn clamp_day(year: i32, month: u32, day: u32) -> Option<NaiveDate> {
    (1..=day.min(31)).rev().find_map(|d| NaiveDate::from_ymd_opt(year, month, d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::America::New_York;
    use chrono_tz::Australia::Sydney;
    use chrono_tz::Europe::Berlin;

    fn utc(text: &str) -> DateTime<Utc> {
        text.parse().expect("RFC 3339")
    }

    fn at(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    #[test]
    fn an_instant_at_the_edge_of_the_calendar_has_no_local_time_instead_of_a_panic() {
        // Twelve hours behind UTC on chrono's first day is before its calendar starts.
        let gmt_plus_12: Tz = "Etc/GMT+12".parse().unwrap();
        assert_eq!(local_time(DateTime::<Utc>::MIN_UTC, gmt_plus_12), None);
        assert_eq!(next_occurrence(Repeat::Monthly(1), at(9, 0), DateTime::<Utc>::MIN_UTC, gmt_plus_12), None);
        assert!(local_time(utc("2026-12-06T10:00:00Z"), gmt_plus_12).is_some());
    }

    #[test]
    fn a_time_in_the_spring_forward_gap_moves_on_by_the_gap() {
        let local = NaiveDate::from_ymd_opt(2026, 3, 29).unwrap().and_time(at(2, 30));
        assert_eq!(resolve_wall_clock(local, Berlin), Some(utc("2026-03-29T01:30:00Z"))); // 03:30 CEST
        let local = NaiveDate::from_ymd_opt(2026, 3, 8).unwrap().and_time(at(2, 30));
        assert_eq!(resolve_wall_clock(local, New_York), Some(utc("2026-03-08T07:30:00Z"))); // 03:30 EDT
        let local = NaiveDate::from_ymd_opt(2026, 10, 4).unwrap().and_time(at(2, 30));
        assert_eq!(resolve_wall_clock(local, Sydney), Some(utc("2026-10-03T16:30:00Z")));
        // 03:30 AEDT
    }

    #[test]
    fn a_time_that_happens_twice_on_fall_back_day_is_the_first() {
        let local = NaiveDate::from_ymd_opt(2026, 10, 25).unwrap().and_time(at(2, 30));
        assert_eq!(resolve_wall_clock(local, Berlin), Some(utc("2026-10-25T00:30:00Z"))); // CEST
        let local = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap().and_time(at(1, 30));
        assert_eq!(resolve_wall_clock(local, New_York), Some(utc("2026-11-01T05:30:00Z")));
        // EDT
    }

    #[test]
    fn a_daily_reminder_in_the_repeated_hour_fires_once_that_day() {
        let first = resolve_wall_clock(NaiveDate::from_ymd_opt(2026, 11, 1).unwrap().and_time(at(1, 30)), New_York);
        let next = next_occurrence(Repeat::Daily, at(1, 30), first.unwrap(), New_York).unwrap();
        assert_eq!(next, utc("2026-11-02T06:30:00Z")); // the next day, EST; not 06:30Z on Nov 1
    }

    #[test]
    fn a_daily_reminder_keeps_its_wall_clock_time_across_dst() {
        let before = utc("2026-03-28T07:00:00Z"); // Sat 08:00 CET
        let next = next_occurrence(Repeat::Daily, at(8, 0), before, Berlin).unwrap();
        assert_eq!(next, utc("2026-03-29T06:00:00Z")); // Sun 08:00 CEST
    }

    #[test]
    fn weekly_and_monthly_find_the_next_matching_day() {
        let wednesday = utc("2026-12-09T12:00:00Z");
        let monday = next_occurrence(Repeat::Weekly(Weekday::Mon), at(8, 0), wednesday, Berlin).unwrap();
        assert_eq!(monday, utc("2026-12-14T07:00:00Z"));
        let first = next_occurrence(Repeat::Monthly(1), at(9, 0), wednesday, Berlin).unwrap();
        assert_eq!(first, utc("2027-01-01T08:00:00Z"));
        let last_of_april = next_occurrence(Repeat::Monthly(31), at(9, 0), utc("2027-04-01T00:00:00Z"), Berlin);
        assert_eq!(last_of_april, Some(utc("2027-04-30T07:00:00Z")));
    }

    #[test]
    fn an_occurrence_exactly_now_is_not_next() {
        let now = utc("2026-12-14T07:00:00Z");
        let next = next_occurrence(Repeat::Weekly(Weekday::Mon), at(8, 0), now, Berlin).unwrap();
        assert_eq!(next, utc("2026-12-21T07:00:00Z"));
    }

    #[test]
    fn stored_repeats_read_back_and_junk_is_refused() {
        for repeat in [Repeat::Daily, Repeat::Weekly(Weekday::Sun), Repeat::Monthly(31)] {
            assert_eq!(Repeat::from_stored(&repeat.to_stored()), Some(repeat));
        }
        for junk in ["", "weekly", "weekly:xyz", "monthly:0", "monthly:32", "yearly"] {
            assert_eq!(Repeat::from_stored(junk), None, "{junk}");
        }
        let friday = NaiveDate::from_ymd_opt(2026, 12, 11).unwrap();
        assert_eq!(Repeat::from_word("Weekly", friday), Some(Repeat::Weekly(Weekday::Fri)));
        assert_eq!(Repeat::from_word("monthly", friday), Some(Repeat::Monthly(11)));
        assert_eq!(Repeat::from_word("hourly", friday), None);
    }
}
