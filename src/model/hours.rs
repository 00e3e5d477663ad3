//! Business hours: when a team is open, so SLA clocks can run "in business time".
//!
//! A calendar is a time zone, a weekly pattern of opening intervals and a set of holidays.
//!
//! * **Intervals** are local wall-clock times, `[start, end)` in minutes of the local day, so they
//!   follow DST: a 09:00-18:00 day is 9 h of open time, except on a day whose DST jump falls
//!   inside the interval, where it is the real time that passes between the two local instants.
//!   Local times in a DST gap or fold resolve the way jiff's "compatible" disambiguation does (a
//!   gap moves forward by its length, a fold takes the earlier instant).
//! * **Holidays** are local calendar dates; a holiday is closed for the whole local day.
//! * **Open time** is the set of instants covered by an interval of a non-holiday day. Each local
//!   day owns the instants from its own midnight up to the next midnight (both resolved as
//!   above); an interval's instants are clipped to its day and to the end of the previous
//!   interval, so a DST gap can never make two intervals count the same instant twice.
//!
//! All instants in the API are Unix milliseconds (UTC). Instants outside jiff's supported range
//! (about years -9999..=9999) are treated as closed.
//!
//! [`BusinessHours::add`] and [`BusinessHours::next_open`] search at most 1200 local days (about
//! 3.3 years) past the starting day. A deadline that would fall later (a calendar made
//! of holidays, or an absurd target) saturates to `i64::MAX` ("never") rather than being searched
//! for; an SLA deadline that far out means nothing anyway. [`BusinessHours::elapsed`] has no
//! horizon: it is exact over any span.
//!
//! Stretches of whole days without a holiday or a time-zone transition are counted from the weekly
//! totals instead of day by day, so a walk costs a few steps per DST change or holiday rather than
//! per day.

use std::collections::BTreeMap;
use std::fmt;

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp};

/// How many local days past the starting day `add` and `next_open` look before giving up.
const HORIZON_DAYS: i64 = 1200;

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;
const DAY_MINUTES: u16 = 24 * 60;
const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

#[derive(Debug, Clone)]
pub struct BusinessHours {
    tz: TimeZone,
    tz_name: String,
    /// Indexed Monday = 0; sorted, non-overlapping, with touching intervals merged.
    week: [Vec<Interval>; 7],
    /// Open milliseconds of each weekday when no DST change falls on it.
    day_ms: [i64; 7],
    week_ms: i64,
    /// Inclusive date ranges, sorted, with overlapping or touching ranges merged.
    holidays: Vec<(Date, Date)>,
    always: bool,
}

/// A problem with one key of the `[business_hours.NAME]` config table; `key` is relative to that
/// table, e.g. `week.mon`, `holidays[2]`, `time_zone`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoursError {
    pub key: String,
    pub problem: String,
}

impl fmt::Display for HoursError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.problem)
    }
}

impl std::error::Error for HoursError {}

impl HoursError {
    fn new(key: impl Into<String>, problem: impl Into<String>) -> HoursError {
        HoursError {
            key: key.into(),
            problem: problem.into(),
        }
    }
}

/// Minutes of the local day, `start < end <= 1440`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Interval {
    start: u16,
    end: u16,
}

/// One local date and the instants it owns: `[start, end)`, from its midnight to the next.
#[derive(Debug, Clone, Copy)]
struct Day {
    date: Date,
    weekday: usize,
    start: i64,
    end: i64,
}

impl BusinessHours {
    /// Open all the time (calendar time), UTC.
    pub fn always() -> BusinessHours {
        let whole_day = vec![Interval {
            start: 0,
            end: DAY_MINUTES,
        }];
        BusinessHours {
            tz: TimeZone::UTC,
            tz_name: "UTC".to_string(),
            week: std::array::from_fn(|_| whole_day.clone()),
            day_ms: [DAY_MS; 7],
            week_ms: 7 * DAY_MS,
            holidays: Vec::new(),
            always: true,
        }
    }

    /// `time_zone`: an IANA name ("Europe/Berlin", "Asia/Bangkok", "UTC").
    ///
    /// `week`: keys `mon` .. `sun`; values like `"09:00-18:00"`, `"09:00-12:00, 13:00-17:30"` or
    /// `"closed"`. `"00:00-24:00"` is the whole day; intervals cannot cross midnight. A day not
    /// listed is closed; at least one open interval in the week is required.
    ///
    /// `holidays`: `"2026-12-25"` or inclusive ranges `"2026-12-24..2026-12-26"`, local dates.
    pub fn new(
        time_zone: &str,
        week: &BTreeMap<String, String>,
        holidays: &[String],
    ) -> Result<BusinessHours, HoursError> {
        let tz = TimeZone::get(time_zone).map_err(|_| {
            HoursError::new(
                "time_zone",
                format!("unknown time zone {time_zone:?}; expected an IANA name such as \"Europe/Berlin\" or \"UTC\""),
            )
        })?;

        let mut days: [Vec<Interval>; 7] = Default::default();
        for (key, value) in week {
            let Some(index) = WEEKDAYS.iter().position(|day| day == key) else {
                return Err(HoursError::new(
                    format!("week.{key}"),
                    format!("unknown day {key:?}; expected one of {}", WEEKDAYS.join(", ")),
                ));
            };
            days[index] = parse_day(value).map_err(|problem| HoursError::new(format!("week.{key}"), problem))?;
        }
        if days.iter().all(Vec::is_empty) {
            return Err(HoursError::new(
                "week",
                "every day is closed; at least one open interval is required (e.g. mon = \"09:00-18:00\")",
            ));
        }

        let mut ranges = Vec::with_capacity(holidays.len());
        for (index, text) in holidays.iter().enumerate() {
            ranges.push(parse_holiday(text).map_err(|problem| HoursError::new(format!("holidays[{index}]"), problem))?);
        }

        let day_ms = days.each_ref().map(|intervals| {
            intervals
                .iter()
                .map(|iv| i64::from(iv.end - iv.start) * MINUTE_MS)
                .sum::<i64>()
        });
        Ok(BusinessHours {
            tz,
            tz_name: time_zone.to_string(),
            week: days,
            day_ms,
            week_ms: day_ms.iter().sum(),
            holidays: merge_ranges(ranges),
            always: false,
        })
    }

    /// The instant at which `duration_ms` of open time has passed, counting from `start_ms`. If
    /// `start_ms` is outside hours, counting begins at the next opening. When the time runs out
    /// exactly at a closing, the closing instant is returned (not the next opening).
    ///
    /// `duration_ms <= 0` returns `start_ms` unchanged: a clock already due is due now.
    /// Returns `i64::MAX` when the deadline lies more than 1200 local days after the starting day
    /// (or beyond the representable range).
    pub fn add(&self, start_ms: i64, duration_ms: i64) -> i64 {
        if duration_ms <= 0 {
            return start_ms;
        }
        if self.always {
            return start_ms.saturating_add(duration_ms);
        }
        self.walk_add(start_ms.max(min_ms()), duration_ms).unwrap_or(i64::MAX)
    }

    /// Open time between two instants (0 when `to_ms <= from_ms`).
    pub fn elapsed(&self, from_ms: i64, to_ms: i64) -> i64 {
        if to_ms <= from_ms {
            return 0;
        }
        if self.always {
            return to_ms.saturating_sub(from_ms);
        }
        let from = from_ms.clamp(min_ms(), max_ms());
        let to = to_ms.clamp(min_ms(), max_ms());
        if to <= from {
            return 0;
        }
        self.walk_elapsed(from, to)
    }

    /// Whether `at_ms` falls in open time (intervals are half-open: the closing instant is closed).
    pub fn is_open(&self, at_ms: i64) -> bool {
        if self.always {
            return true;
        }
        self.locate(at_ms)
            .is_some_and(|day| self.spans(&day).any(|(start, end)| start <= at_ms && at_ms < end))
    }

    /// `at_ms` itself when open, else the next opening. `None` when there is no opening within
    /// 1200 local days.
    pub fn next_open(&self, at_ms: i64) -> Option<i64> {
        if self.always {
            return Some(at_ms);
        }
        let at = at_ms.max(min_ms());
        let mut day = self.locate(at)?;
        let mut walked = 0;
        loop {
            if let Some(last) = self.holiday_end(day.date) {
                walked += days_between(day.date, last) + 1;
                if walked > HORIZON_DAYS {
                    return None;
                }
                day = self.day(last.tomorrow().ok()?)?;
                continue;
            }
            if let Some((start, _)) = self.spans(&day).find(|&(_, end)| end > at) {
                return Some(start.max(at));
            }
            walked += 1;
            if walked > HORIZON_DAYS {
                return None;
            }
            day = self.next_day(&day)?;
        }
    }

    /// The IANA name given (or "UTC" for `always`).
    pub fn time_zone(&self) -> &str {
        &self.tz_name
    }

    /// Whether this is `always()` (lets callers skip the walk).
    pub fn is_always(&self) -> bool {
        self.always
    }

    fn walk_add(&self, start: i64, duration: i64) -> Option<i64> {
        let mut day = self.locate(start)?;
        let mut remaining = duration;
        let mut walked = 0;
        loop {
            if let Some(last) = self.holiday_end(day.date) {
                walked += days_between(day.date, last) + 1;
                if walked > HORIZON_DAYS {
                    return None;
                }
                day = self.day(last.tomorrow().ok()?)?;
                continue;
            }
            // The first day is skipped only when counting starts at its midnight.
            if day.start >= start
                && let Some((next, days, open)) = self.skip(&day, HORIZON_DAYS - walked, remaining)
            {
                remaining -= open;
                walked += days;
                day = next;
                continue;
            }
            for (span_start, span_end) in self.spans(&day) {
                let span_start = span_start.max(start);
                if span_end <= span_start {
                    continue;
                }
                let available = span_end - span_start;
                if remaining <= available {
                    return Some(span_start + remaining);
                }
                remaining -= available;
            }
            walked += 1;
            if walked > HORIZON_DAYS {
                return None;
            }
            day = self.next_day(&day)?;
        }
    }

    fn walk_elapsed(&self, from: i64, to: i64) -> i64 {
        let Some(mut day) = self.locate(from) else {
            return 0;
        };
        let mut total: i64 = 0;
        while day.start < to {
            if let Some(last) = self.holiday_end(day.date) {
                match last.tomorrow().ok().and_then(|date| self.day(date)) {
                    Some(next) => day = next,
                    None => break,
                }
                continue;
            }
            if day.start >= from
                && let Some((next, _, open)) = self.skip(&day, to.saturating_sub(day.start) / DAY_MS, i64::MAX)
            {
                total = total.saturating_add(open);
                day = next;
                continue;
            }
            for (start, end) in self.spans(&day) {
                let (start, end) = (start.max(from), end.min(to));
                if end > start {
                    total = total.saturating_add(end - start);
                }
            }
            match self.next_day(&day) {
                Some(next) => day = next,
                None => break,
            }
        }
        total
    }

    /// Counts whole days from `day` on by the weekly totals instead of span by span: returns the
    /// day after the run, its length in days and its open time. The run is at most `max_days`
    /// long and its open time stays strictly below `budget`, so the day on which a budget runs out
    /// is still walked span by span.
    ///
    /// Whole-day counting is exact only while local time is a fixed offset from UTC, so the run
    /// ends before the next time-zone transition and before the next holiday.
    fn skip(&self, day: &Day, max_days: i64, budget: i64) -> Option<(Day, i64, i64)> {
        if max_days <= 0 || budget <= 0 || self.week_ms <= 0 {
            return None;
        }
        let midnight = Timestamp::from_millisecond(day.start).ok()?;
        // A midnight inside a gap resolved to a later wall-clock time; such a day is not linear.
        if self.tz.to_datetime(midnight) != day.date.to_datetime(Time::midnight()) {
            return None;
        }
        let transition = self
            .tz
            .following(midnight)
            .next()
            .map_or(i64::MAX, |transition| transition.timestamp().as_millisecond());
        // The last counted day's closing midnight must come strictly before the transition: at the
        // transition itself a fold would resolve the midnight to the other offset.
        let mut limit = max_days.min(transition.saturating_sub(1).saturating_sub(day.start) / DAY_MS);
        limit = limit.min(max_ms().saturating_sub(day.start) / DAY_MS);
        if let Some(holiday) = self.next_holiday(day.date) {
            limit = limit.min(days_between(day.date, holiday));
        }
        if limit <= 0 {
            return None;
        }

        let weeks = (limit / 7).min((budget - 1) / self.week_ms);
        let mut days = weeks * 7;
        let mut open = weeks * self.week_ms;
        while days < limit {
            let next = open.saturating_add(self.day_ms[(day.weekday + (days % 7) as usize) % 7]);
            if next >= budget {
                break;
            }
            open = next;
            days += 1;
        }
        if days == 0 {
            return None;
        }
        let next = self.day(add_days(day.date, days)?)?;
        Some((next, days, open))
    }

    /// The open spans of `day` as instants, in order and disjoint.
    fn spans<'a>(&'a self, day: &Day) -> impl Iterator<Item = (i64, i64)> + 'a {
        let intervals: &[Interval] = if self.holiday_end(day.date).is_some() {
            &[]
        } else {
            &self.week[day.weekday]
        };
        let (date, day_end) = (day.date, day.end.min(max_ms()));
        let mut floor = day.start.max(min_ms());
        intervals.iter().filter_map(move |interval| {
            let start = self.local_instant(date, interval.start)?.max(floor).min(day_end);
            let end = self.local_instant(date, interval.end)?.min(day_end).max(start);
            floor = end;
            (end > start).then_some((start, end))
        })
    }

    /// The day whose instants include `at`.
    fn locate(&self, at: i64) -> Option<Day> {
        if at < min_ms() || at >= max_ms() {
            return None;
        }
        let timestamp = Timestamp::from_millisecond(at).ok()?;
        let mut day = self.day(self.tz.to_datetime(timestamp).date())?;
        // A gap or fold across midnight can hand an instant to the neighbouring day; one step is
        // enough for real zones, the second is slack.
        for _ in 0..2 {
            if at >= day.start {
                break;
            }
            day = self.day(day.date.yesterday().ok()?)?;
        }
        for _ in 0..2 {
            if at < day.end {
                break;
            }
            day = self.next_day(&day)?;
        }
        Some(day)
    }

    fn day(&self, date: Date) -> Option<Day> {
        let start = self.local_instant(date, 0)?;
        let end = self.local_instant(date, DAY_MINUTES)?.max(start);
        Some(Day {
            date,
            weekday: weekday_index(date),
            start,
            end,
        })
    }

    fn next_day(&self, day: &Day) -> Option<Day> {
        let date = day.date.tomorrow().ok()?;
        let end = self.local_instant(date, DAY_MINUTES)?.max(day.end);
        Some(Day {
            date,
            weekday: (day.weekday + 1) % 7,
            start: day.end,
            end,
        })
    }

    /// `minute` of local `date` (1440 is the next midnight) as Unix milliseconds.
    fn local_instant(&self, date: Date, minute: u16) -> Option<i64> {
        let (date, minute) = if minute >= DAY_MINUTES {
            (date.tomorrow().ok()?, 0)
        } else {
            (date, minute)
        };
        let hour = i8::try_from(minute / 60).ok()?;
        let minute = i8::try_from(minute % 60).ok()?;
        let time = Time::new(hour, minute, 0, 0).ok()?;
        let timestamp = self
            .tz
            .to_ambiguous_timestamp(date.to_datetime(time))
            .compatible()
            .ok()?;
        Some(timestamp.as_millisecond())
    }

    /// The last day of the holiday range containing `date`, if any.
    fn holiday_end(&self, date: Date) -> Option<Date> {
        let index = self.holidays.partition_point(|&(_, last)| last < date);
        self.holidays
            .get(index)
            .filter(|&&(first, _)| first <= date)
            .map(|&(_, last)| last)
    }

    /// The first holiday on or after `date`.
    fn next_holiday(&self, date: Date) -> Option<Date> {
        let index = self.holidays.partition_point(|&(_, last)| last < date);
        self.holidays.get(index).map(|&(first, _)| first.max(date))
    }
}

/// The first instant treated as possibly open. jiff's range ends a day or so past years -9999
/// and 9999; the margin keeps every midnight of a day in range representable.
fn min_ms() -> i64 {
    Timestamp::MIN.as_millisecond().saturating_add(3 * DAY_MS)
}

/// The end of the instants treated as possibly open.
fn max_ms() -> i64 {
    Timestamp::MAX.as_millisecond().saturating_sub(3 * DAY_MS)
}

fn weekday_index(date: Date) -> usize {
    usize::try_from(date.weekday().to_monday_zero_offset()).unwrap_or(0) % 7
}

fn days_between(from: Date, to: Date) -> i64 {
    to.duration_since(from).as_secs() / 86_400
}

fn add_days(date: Date, days: i64) -> Option<Date> {
    // A `Span`, not a `SignedDuration`: jiff rejects durations longer than the distance from the
    // Unix epoch to its last date, even when the sum would be in range.
    date.checked_add(Span::new().try_days(days).ok()?).ok()
}

fn merge_ranges(mut ranges: Vec<(Date, Date)>) -> Vec<(Date, Date)> {
    ranges.sort();
    let mut merged: Vec<(Date, Date)> = Vec::with_capacity(ranges.len());
    for (first, last) in ranges {
        match merged.last_mut() {
            // Touching ranges merge too, so a lookup finds the whole closed stretch at once.
            Some(previous) if previous.1.tomorrow().ok().is_none_or(|next| first <= next) => {
                previous.1 = previous.1.max(last);
            }
            _ => merged.push((first, last)),
        }
    }
    merged
}

fn parse_day(value: &str) -> Result<Vec<Interval>, String> {
    let value = value.trim();
    if value.eq_ignore_ascii_case("closed") {
        return Ok(Vec::new());
    }
    let mut intervals = Vec::new();
    for part in value.split(',') {
        intervals.push(parse_interval(part.trim())?);
    }
    intervals.sort_by_key(|interval| interval.start);
    let mut merged: Vec<Interval> = Vec::with_capacity(intervals.len());
    for interval in intervals {
        match merged.last_mut() {
            Some(previous) if interval.start < previous.end => {
                return Err(format!(
                    "intervals \"{}\" and \"{}\" overlap",
                    format_interval(*previous),
                    format_interval(interval)
                ));
            }
            // "09:00-12:00, 12:00-13:00" is one opening; merging keeps each day's spans minimal.
            Some(previous) if interval.start == previous.end => previous.end = interval.end,
            _ => merged.push(interval),
        }
    }
    Ok(merged)
}

fn parse_interval(text: &str) -> Result<Interval, String> {
    let bad_format = || {
        format!(
            "{text:?} is not a time range; expected \"HH:MM-HH:MM\" (e.g. \"09:00-18:00\"), several separated by \
             commas, or \"closed\""
        )
    };
    let (start, end) = text.split_once('-').ok_or_else(bad_format)?;
    let start = parse_clock(start.trim()).ok_or_else(bad_format)?;
    let end = parse_clock(end.trim()).ok_or_else(bad_format)?;
    if start >= DAY_MINUTES {
        return Err(format!(
            "{text:?} starts at 24:00; an interval must start before midnight"
        ));
    }
    if end < start {
        return Err(format!(
            "{text:?} ends before it starts; intervals cannot cross midnight, split it into \"{}-24:00\" on this \
             day and \"00:00-{}\" on the next",
            format_clock(start),
            format_clock(end)
        ));
    }
    if end == start {
        return Err(format!("{text:?} is empty; the end must be after the start"));
    }
    Ok(Interval { start, end })
}

/// `H:MM` or `HH:MM`, up to `24:00`, as minutes of the day.
fn parse_clock(text: &str) -> Option<u16> {
    let (hours, minutes) = text.split_once(':')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(hours) || hours.len() > 2 || !digits(minutes) || minutes.len() != 2 {
        return None;
    }
    let hours: u16 = hours.parse().ok()?;
    let minutes: u16 = minutes.parse().ok()?;
    if minutes > 59 || hours > 24 || (hours == 24 && minutes != 0) {
        return None;
    }
    Some(hours * 60 + minutes)
}

fn format_clock(minute: u16) -> String {
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

fn format_interval(interval: Interval) -> String {
    format!("{}-{}", format_clock(interval.start), format_clock(interval.end))
}

fn parse_holiday(text: &str) -> Result<(Date, Date), String> {
    let trimmed = text.trim();
    let bad =
        || format!("{text:?} is not a date; expected \"YYYY-MM-DD\" or an inclusive range \"YYYY-MM-DD..YYYY-MM-DD\"");
    let (first, last) = match trimmed.split_once("..") {
        Some((first, last)) => (
            parse_date(first.trim()).ok_or_else(bad)?,
            parse_date(last.trim()).ok_or_else(bad)?,
        ),
        None => {
            let date = parse_date(trimmed).ok_or_else(bad)?;
            (date, date)
        }
    };
    if last < first {
        return Err(format!("{text:?} ends ({last}) before it starts ({first})"));
    }
    Ok((first, last))
}

/// Strictly `YYYY-MM-DD`: jiff's own parser also takes datetimes and extended years, which in a
/// holiday list would only hide typos.
fn parse_date(text: &str) -> Option<Date> {
    let bytes = text.as_bytes();
    let shape_ok = bytes.len() == 10
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
    if !shape_ok {
        return None;
    }
    let year: i16 = text.get(0..4)?.parse().ok()?;
    let month: i8 = text.get(5..7)?.parse().ok()?;
    let day: i8 = text.get(8..10)?.parse().ok()?;
    Date::new(year, month, day).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::{Weekday, date};

    const HOUR: i64 = 3_600_000;
    const MINUTE: i64 = 60_000;

    /// Unix milliseconds of a local civil time in `tz`.
    fn local(tz: &str, year: i16, month: i8, day: i8, hour: i8, minute: i8) -> i64 {
        date(year, month, day)
            .at(hour, minute, 0, 0)
            .in_tz(tz)
            .unwrap()
            .timestamp()
            .as_millisecond()
    }

    fn week(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
        entries.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn office(tz: &str, holidays: &[&str]) -> BusinessHours {
        let days = ["mon", "tue", "wed", "thu", "fri"].map(|day| (day, "09:00-18:00"));
        let holidays: Vec<String> = holidays.iter().map(|h| h.to_string()).collect();
        BusinessHours::new(tz, &week(&days), &holidays).unwrap()
    }

    fn error(time_zone: &str, days: &[(&str, &str)], holidays: &[&str]) -> HoursError {
        let holidays: Vec<String> = holidays.iter().map(|h| h.to_string()).collect();
        BusinessHours::new(time_zone, &week(days), &holidays).unwrap_err()
    }

    /// Open time summed day by day from the per-day spans, without the whole-day shortcut.
    fn elapsed_reference(hours: &BusinessHours, from: i64, to: i64) -> i64 {
        let mut day = hours.locate(from).unwrap();
        let mut total = 0;
        while day.start < to {
            for (start, end) in hours.spans(&day) {
                total += (end.min(to) - start.max(from)).max(0);
            }
            day = hours.next_day(&day).unwrap();
        }
        total
    }

    #[test]
    fn friday_evening_plus_an_hour_lands_on_monday_morning() {
        let berlin = "Europe/Berlin";
        assert_eq!(date(2026, 11, 27).weekday(), Weekday::Friday);
        let hours = office(berlin, &[]);
        let start = local(berlin, 2026, 11, 27, 17, 55);
        assert_eq!(hours.add(start, HOUR), local(berlin, 2026, 11, 30, 9, 55));
        assert_ne!(hours.add(start, HOUR), local(berlin, 2026, 11, 27, 18, 55));
    }

    #[test]
    fn holiday_monday_pushes_the_deadline_to_tuesday() {
        let berlin = "Europe/Berlin";
        let hours = office(berlin, &["2026-11-30"]);
        let start = local(berlin, 2026, 11, 27, 17, 55);
        assert_eq!(hours.add(start, HOUR), local(berlin, 2026, 12, 1, 9, 55));
        assert!(!hours.is_open(local(berlin, 2026, 11, 30, 10, 0)));
        assert!(hours.is_open(local(berlin, 2026, 12, 1, 10, 0)));
    }

    #[test]
    fn holiday_ranges_are_inclusive() {
        let berlin = "Europe/Berlin";
        let hours = office(berlin, &["2026-12-24..2026-12-26", "2026-12-31"]);
        // Wed 23rd 17:00 + 2h: one hour on the 23rd, the 24th-26th are off, the 27th is Sunday.
        let start = local(berlin, 2026, 12, 23, 17, 0);
        assert_eq!(hours.add(start, 2 * HOUR), local(berlin, 2026, 12, 28, 10, 0));
        assert_eq!(
            hours.next_open(local(berlin, 2026, 12, 30, 18, 0)),
            Some(local(berlin, 2027, 1, 1, 9, 0))
        );
    }

    #[test]
    fn start_on_saturday_counts_from_monday_opening() {
        let berlin = "Europe/Berlin";
        let hours = office(berlin, &[]);
        let saturday = local(berlin, 2026, 11, 28, 11, 0);
        let monday_nine = local(berlin, 2026, 11, 30, 9, 0);
        assert!(!hours.is_open(saturday));
        assert_eq!(hours.next_open(saturday), Some(monday_nine));
        assert_eq!(hours.add(saturday, 90 * MINUTE), monday_nine + 90 * MINUTE);
        // Nine hours fill Monday exactly, so the deadline is Monday's closing, not Tuesday's opening.
        assert_eq!(hours.add(saturday, 9 * HOUR), local(berlin, 2026, 11, 30, 18, 0));
        assert_eq!(hours.add(saturday, 9 * HOUR + 1), local(berlin, 2026, 12, 1, 9, 0) + 1);
    }

    #[test]
    fn non_positive_duration_returns_start_unchanged() {
        let hours = office("Europe/Berlin", &[]);
        let saturday = local("Europe/Berlin", 2026, 11, 28, 11, 0);
        assert_eq!(hours.add(saturday, 0), saturday);
        assert_eq!(hours.add(saturday, -HOUR), saturday);
    }

    #[test]
    fn elapsed_across_a_weekend_counts_only_open_time() {
        let berlin = "Europe/Berlin";
        let hours = office(berlin, &[]);
        let friday = local(berlin, 2026, 11, 27, 17, 0);
        let monday = local(berlin, 2026, 11, 30, 10, 30);
        assert_eq!(hours.elapsed(friday, monday), 2 * HOUR + 30 * MINUTE);
        assert_eq!(hours.elapsed(monday, friday), 0);
        assert_eq!(hours.elapsed(friday, friday), 0);
        // A whole week is five nine-hour days.
        assert_eq!(hours.elapsed(monday, monday + 7 * 24 * HOUR), 45 * HOUR);
    }

    #[test]
    fn split_days_skip_the_lunch_gap() {
        let berlin = "Europe/Berlin";
        let days = ["mon", "tue", "wed", "thu", "fri"].map(|day| (day, "09:00-12:00, 13:00-17:00"));
        let hours = BusinessHours::new(berlin, &week(&days), &[]).unwrap();
        let morning = local(berlin, 2026, 11, 24, 11, 30);
        assert_eq!(hours.add(morning, HOUR), local(berlin, 2026, 11, 24, 13, 30));
        assert_eq!(
            hours.elapsed(local(berlin, 2026, 11, 24, 11, 0), local(berlin, 2026, 11, 24, 14, 0)),
            2 * HOUR
        );
        let lunch = local(berlin, 2026, 11, 24, 12, 30);
        assert!(!hours.is_open(lunch));
        assert_eq!(hours.next_open(lunch), Some(local(berlin, 2026, 11, 24, 13, 0)));
        // Closing at 12:00 sharp is closed; the interval is half-open.
        assert!(!hours.is_open(local(berlin, 2026, 11, 24, 12, 0)));
        assert!(hours.is_open(local(berlin, 2026, 11, 24, 11, 59)));
    }

    #[test]
    fn intervals_given_out_of_order_or_touching_are_accepted() {
        let berlin = "Europe/Berlin";
        let hours = BusinessHours::new(berlin, &week(&[("mon", "13:00-17:00,09:00-12:00, 12:00-13:00")]), &[]).unwrap();
        let monday = local(berlin, 2026, 11, 30, 9, 0);
        assert_eq!(hours.elapsed(monday, monday + 24 * HOUR), 8 * HOUR);
        assert!(hours.is_open(local(berlin, 2026, 11, 30, 12, 30)));
    }

    #[test]
    fn intervals_meeting_at_midnight_run_on_into_the_next_day() {
        let utc = "UTC";
        let night = [("mon", "22:00-24:00"), ("tue", "00:00-06:00")];
        let hours = BusinessHours::new(utc, &week(&night), &[]).unwrap();
        let start = local(utc, 2026, 11, 30, 23, 0);
        assert_eq!(hours.add(start, 3 * HOUR), local(utc, 2026, 12, 1, 2, 0));
        assert!(hours.is_open(local(utc, 2026, 12, 1, 0, 0)));
        assert_eq!(
            hours.elapsed(local(utc, 2026, 11, 30, 0, 0), local(utc, 2026, 12, 2, 0, 0)),
            8 * HOUR
        );
    }

    #[test]
    fn spring_forward_inside_an_interval_is_real_elapsed_time() {
        let berlin = "Europe/Berlin";
        // 2026-03-29 is a Sunday; clocks jump from 02:00 to 03:00.
        assert_eq!(date(2026, 3, 29).weekday(), Weekday::Sunday);
        let hours = BusinessHours::new(berlin, &week(&[("sun", "01:00-05:00")]), &[]).unwrap();
        let open = local(berlin, 2026, 3, 29, 1, 0);
        let close = local(berlin, 2026, 3, 29, 5, 0);
        assert_eq!(close - open, 3 * HOUR);
        assert_eq!(hours.elapsed(open, close), 3 * HOUR);
        assert_eq!(hours.elapsed(open - HOUR, close + HOUR), 3 * HOUR);
        assert_eq!(hours.add(open, 2 * HOUR), local(berlin, 2026, 3, 29, 4, 0));
        // The same interval a week earlier is a plain four hours.
        let (open, close) = (local(berlin, 2026, 3, 22, 1, 0), local(berlin, 2026, 3, 22, 5, 0));
        assert_eq!(hours.elapsed(open, close), 4 * HOUR);
    }

    #[test]
    fn fall_back_inside_an_interval_is_real_elapsed_time() {
        let new_york = "America/New_York";
        // 2026-11-01 is a Sunday; 01:00-02:00 happens twice.
        let hours = BusinessHours::new(new_york, &week(&[("sun", "00:00-04:00")]), &[]).unwrap();
        let open = local(new_york, 2026, 11, 1, 0, 0);
        assert_eq!(hours.elapsed(open, open + 24 * HOUR), 5 * HOUR);
        // 01:00 EDT is +1 h, 01:00 EST is +2 h, so +3 h is 02:00 EST.
        assert_eq!(hours.add(open, 3 * HOUR), local(new_york, 2026, 11, 1, 2, 0));
    }

    #[test]
    fn interval_starting_in_a_fold_opens_at_the_first_occurrence() {
        let new_york = "America/New_York";
        let hours = BusinessHours::new(new_york, &week(&[("sun", "01:30-05:00")]), &[]).unwrap();
        let midnight = local(new_york, 2026, 11, 1, 0, 0);
        // The first 01:30 is EDT (05:30 UTC); from there to 05:00 EST is four and a half hours.
        assert_eq!(hours.next_open(midnight), Some(local("UTC", 2026, 11, 1, 5, 30)));
        assert_eq!(hours.elapsed(midnight, midnight + 24 * HOUR), 4 * HOUR + 30 * MINUTE);
    }

    #[test]
    fn interval_starting_in_a_gap_opens_when_the_clock_resumes() {
        let new_york = "America/New_York";
        // 2026-03-08: 02:00-03:00 does not exist; "compatible" moves 02:30 to 03:30.
        let hours = BusinessHours::new(new_york, &week(&[("sun", "02:30-04:00")]), &[]).unwrap();
        let midnight = local(new_york, 2026, 3, 8, 0, 0);
        assert_eq!(hours.next_open(midnight), Some(local(new_york, 2026, 3, 8, 3, 30)));
        assert_eq!(hours.elapsed(midnight, midnight + 24 * HOUR), 30 * MINUTE);
    }

    #[test]
    fn gap_cannot_make_two_intervals_count_the_same_instant() {
        let new_york = "America/New_York";
        // "01:00-02:30" ends at 03:30 EDT after resolving the gap, past the start of "03:00-03:15".
        let hours = BusinessHours::new(new_york, &week(&[("sun", "01:00-02:30, 03:00-03:15")]), &[]).unwrap();
        let midnight = local(new_york, 2026, 3, 8, 0, 0);
        assert_eq!(hours.elapsed(midnight, midnight + 24 * HOUR), 90 * MINUTE);
        assert_eq!(hours.add(midnight, 90 * MINUTE), local(new_york, 2026, 3, 8, 3, 30));
    }

    #[test]
    fn transitions_straddling_midnight_hand_instants_to_the_right_day() {
        // No IANA zone does this today: clocks jump from 23:30 to 00:30 in March and fall back
        // from 00:30 to 23:30 in October, so both the gap and the fold contain a midnight.
        let mut hours = BusinessHours::new(
            "UTC",
            &week(&[
                ("sat", "00:00-24:00"),
                ("sun", "22:00-24:00"),
                ("mon", "00:00-01:00, 23:00-24:00"),
            ]),
            &[],
        )
        .unwrap();
        hours.tz = TimeZone::posix("STD-1DST,M3.5.0/23:30,M10.5.0/24:30").unwrap();
        let tz = hours.tz.clone();
        let utc = |year, month, day, hour, minute| local("UTC", year, month, day, hour, minute);
        for (from, to) in [
            (utc(2026, 3, 27, 12, 0), utc(2026, 4, 1, 0, 0)),
            (utc(2026, 10, 23, 12, 0), utc(2026, 10, 28, 0, 0)),
        ] {
            let earlier = from - 3 * 24 * HOUR;
            let mut at = from;
            while at < to {
                let open_by_walk = hours.elapsed(earlier, at + 1) - hours.elapsed(earlier, at) == 1;
                let local = tz.to_datetime(Timestamp::from_millisecond(at).unwrap());
                assert_eq!(hours.is_open(at), open_by_walk, "is_open at {local}");
                assert_eq!(hours.elapsed(at, at + 1) == 1, open_by_walk, "elapsed from {local}");
                if open_by_walk {
                    assert_eq!(hours.next_open(at), Some(at), "next_open at {local}");
                }
                at += 5 * MINUTE;
            }
            assert_eq!(hours.elapsed(earlier, to), elapsed_reference(&hours, earlier, to));
        }
    }

    #[test]
    fn bangkok_hours_follow_the_local_date_not_the_utc_date() {
        let bangkok = "Asia/Bangkok";
        let hours = office(bangkok, &[]);
        // Friday 17:30 local + 1 h → Monday 09:30 local, which is Monday 02:30 UTC.
        let friday = local(bangkok, 2026, 11, 27, 17, 30);
        assert_eq!(hours.add(friday, HOUR), local(bangkok, 2026, 11, 30, 9, 30));
        assert_eq!(hours.add(friday, HOUR), local("UTC", 2026, 11, 30, 2, 30));

        // Open around the clock on weekdays, with Tuesday 2026-12-01 a holiday: that local date
        // starts at Monday 17:00 UTC, while the UTC date is still a working Monday.
        let days = ["mon", "tue", "wed", "thu", "fri"].map(|day| (day, "00:00-24:00"));
        let hours = BusinessHours::new(bangkok, &week(&days), &["2026-12-01".to_string()]).unwrap();
        assert!(hours.is_open(local("UTC", 2026, 11, 30, 16, 59)));
        assert!(!hours.is_open(local("UTC", 2026, 11, 30, 17, 0)));
        assert_eq!(
            hours.next_open(local("UTC", 2026, 11, 30, 20, 0)),
            Some(local("UTC", 2026, 12, 1, 17, 0))
        );
        // Sunday 23:00 UTC is already Monday 06:00 in Bangkok.
        assert!(hours.is_open(local("UTC", 2026, 11, 29, 23, 0)));
        // Sunday 00:00 UTC to Wednesday 00:00 UTC is Sunday 07:00 to Wednesday 07:00 local: all of
        // Monday and the first seven hours of Wednesday.
        let (from, to) = (local("UTC", 2026, 11, 29, 0, 0), local("UTC", 2026, 12, 2, 0, 0));
        assert_eq!(hours.elapsed(from, to), 31 * HOUR);
    }

    #[test]
    fn auckland_monday_opens_on_sunday_utc() {
        let auckland = "Pacific/Auckland";
        let hours = office(auckland, &[]);
        // NZDT is UTC+13: Monday 09:00 local is Sunday 20:00 UTC.
        let opening = local(auckland, 2026, 11, 30, 9, 0);
        assert_eq!(opening, local("UTC", 2026, 11, 29, 20, 0));
        assert!(hours.is_open(opening));
        assert!(!hours.is_open(opening - 1));
        let sunday_utc_noon = local("UTC", 2026, 11, 29, 12, 0);
        assert_eq!(hours.next_open(sunday_utc_noon), Some(opening));
        assert_eq!(hours.add(sunday_utc_noon, HOUR), opening + HOUR);
        // Friday 00:00 UTC is Friday 13:00 local: five hours to close, then Monday 09:00-10:00
        // local (Sunday 21:00 UTC).
        assert_eq!(
            hours.elapsed(local("UTC", 2026, 11, 27, 0, 0), local("UTC", 2026, 11, 29, 21, 0)),
            6 * HOUR
        );
    }

    #[test]
    fn add_and_elapsed_agree_over_many_starts_and_durations() {
        let calendars = [
            (
                "Europe/Berlin",
                vec![
                    ("mon", "09:00-18:00"),
                    ("tue", "09:00-12:00, 13:00-17:00"),
                    ("sat", "10:00-14:00"),
                ],
            ),
            (
                "America/New_York",
                vec![("mon", "00:00-24:00"), ("sun", "01:00-03:30"), ("wed", "08:30-17:15")],
            ),
            ("Pacific/Auckland", vec![("fri", "09:00-17:00"), ("sun", "02:00-04:00")]),
        ];
        let durations = [
            0,
            1,
            MINUTE,
            59 * MINUTE,
            HOUR,
            9 * HOUR,
            9 * HOUR + 1,
            30 * HOUR,
            7 * 24 * HOUR,
            400 * HOUR,
        ];
        for (tz, days) in calendars {
            let holidays = vec!["2026-03-30".to_string(), "2026-04-03..2026-04-06".to_string()];
            let hours = BusinessHours::new(tz, &week(&days), &holidays).unwrap();
            // Every 97 minutes over the spring and autumn DST changes on both hemispheres.
            for window in [local(tz, 2026, 3, 1, 0, 0), local(tz, 2026, 9, 20, 0, 0)] {
                for step in 0..600 {
                    let start = window + step * 97 * MINUTE;
                    let mut previous = start;
                    for duration in durations {
                        let deadline = hours.add(start, duration);
                        assert_ne!(deadline, i64::MAX);
                        assert!(deadline >= previous, "{tz}: add not monotonic at {start} + {duration}");
                        assert_eq!(hours.elapsed(start, deadline), duration, "{tz}: {start} + {duration}");
                        if duration > 0 {
                            assert!(
                                hours.is_open(deadline - 1),
                                "{tz}: deadline {deadline} not after open time"
                            );
                        }
                        previous = deadline;
                    }
                }
            }
        }
    }

    #[test]
    fn whole_day_shortcut_matches_walking_day_by_day() {
        let cases = [
            ("Europe/Berlin", date(2026, 1, 7)),
            ("America/New_York", date(2026, 1, 7)),
            ("Australia/Lord_Howe", date(2026, 1, 7)),
            ("Asia/Bangkok", date(2026, 1, 7)),
            // Local mean time to CET on 1893-04-01 jumps over midnight itself.
            ("Europe/Berlin", date(1892, 6, 1)),
            // DST used to start at midnight in Brazil (2018-11-04).
            ("America/Sao_Paulo", date(2017, 6, 1)),
            // Samoa skipped 2011-12-30 entirely.
            ("Pacific/Apia", date(2011, 6, 1)),
        ];
        let days = [
            ("mon", "09:00-18:00"),
            ("wed", "00:00-03:00, 22:00-24:00"),
            ("fri", "00:00-24:00"),
            ("sat", "20:00-24:00"),
            ("sun", "01:00-04:00"),
        ];
        for (tz, first) in cases {
            let holidays = vec![format!(
                "{}..{}",
                first.saturating_add(Span::new().days(200)),
                first.saturating_add(Span::new().days(208))
            )];
            let hours = BusinessHours::new(tz, &week(&days), &holidays).unwrap();
            let from = first.at(13, 0, 0, 0).in_tz(tz).unwrap().timestamp().as_millisecond();
            for months in [1, 5, 13, 26] {
                let to = from + months * 30 * 24 * HOUR + 17 * MINUTE;
                assert_eq!(
                    hours.elapsed(from, to),
                    elapsed_reference(&hours, from, to),
                    "{tz} from {first}, {months} months"
                );
            }
            // add must agree with the reference too, including deadlines on the odd days themselves.
            let mut start = from;
            while start < from + 400 * 24 * HOUR {
                for duration in [HOUR, 30 * HOUR, 500 * HOUR] {
                    let deadline = hours.add(start, duration);
                    assert_eq!(
                        elapsed_reference(&hours, start, deadline),
                        duration,
                        "{tz}: {start} + {duration}"
                    );
                }
                start += 29 * HOUR + 13 * MINUTE;
            }
        }
    }

    #[test]
    fn always_is_plain_calendar_time() {
        let hours = BusinessHours::always();
        assert!(hours.is_always());
        assert_eq!(hours.time_zone(), "UTC");
        let start = local("UTC", 2026, 11, 28, 3, 0);
        assert_eq!(hours.add(start, 5 * HOUR), start + 5 * HOUR);
        assert_eq!(hours.elapsed(start, start + 5 * HOUR), 5 * HOUR);
        assert!(hours.is_open(start));
        assert_eq!(hours.next_open(start), Some(start));
        assert_eq!(hours.add(i64::MAX - 1, HOUR), i64::MAX);
        assert_eq!(hours.elapsed(i64::MIN, i64::MAX), i64::MAX);
        assert!(!office("UTC", &[]).is_always());
    }

    #[test]
    fn a_calendar_of_holidays_saturates_instead_of_searching_forever() {
        let hours = office("Europe/Berlin", &["2026-01-01..2036-12-31"]);
        let start = local("Europe/Berlin", 2026, 6, 1, 10, 0);
        assert_eq!(hours.add(start, HOUR), i64::MAX);
        assert_eq!(hours.next_open(start), None);
        assert!(!hours.is_open(start));
        assert_eq!(hours.elapsed(start, start + 365 * 24 * HOUR), 0);
        // Past the holidays it is an ordinary calendar again: 2037-01-01 is a Thursday.
        assert_eq!(hours.elapsed(start, local("Europe/Berlin", 2037, 1, 1, 10, 0)), HOUR);
    }

    #[test]
    fn deadlines_beyond_the_horizon_saturate() {
        let hours = office("Europe/Berlin", &[]);
        let start = local("Europe/Berlin", 2026, 6, 1, 9, 0);
        // Roughly 45 h a week: two years of business time fit, ten do not.
        let two_years = 104 * 45 * HOUR;
        let deadline = hours.add(start, two_years);
        assert!(deadline < i64::MAX);
        assert_eq!(hours.elapsed(start, deadline), two_years);
        assert_eq!(hours.add(start, 520 * 45 * HOUR), i64::MAX);
        assert_eq!(hours.add(start, i64::MAX), i64::MAX);
    }

    #[test]
    fn extreme_instants_neither_panic_nor_hang() {
        let hours = office("Europe/Berlin", &["2026-12-25"]);
        for at in [
            i64::MIN,
            i64::MIN + 1,
            -1,
            0,
            i64::MAX - 1,
            i64::MAX,
            min_ms(),
            max_ms(),
        ] {
            let _ = hours.is_open(at);
            let _ = hours.next_open(at);
            for duration in [1, HOUR, i64::MAX] {
                let deadline = hours.add(at, duration);
                assert!(deadline >= at || deadline == i64::MAX);
            }
        }
        // Everything jiff can represent, about 20,000 years of 45-hour weeks.
        let everything = hours.elapsed(i64::MIN, i64::MAX);
        let weeks = (max_ms() - min_ms()) / (7 * 24 * HOUR);
        assert!(
            (everything - weeks * 45 * HOUR).abs() <= 2 * 45 * HOUR,
            "{everything} vs {weeks} weeks"
        );
        let middle = local("Europe/Berlin", 2026, 11, 25, 12, 0);
        assert_eq!(
            everything,
            hours.elapsed(i64::MIN, middle) + hours.elapsed(middle, i64::MAX)
        );
        assert_eq!(hours.elapsed(i64::MAX, i64::MIN), 0);
        assert!(!hours.is_open(i64::MAX));
    }

    #[test]
    fn config_errors_name_the_key() {
        let open = [("mon", "09:00-18:00")];
        let bad_format = error("Europe/Berlin", &[("mon", "9am-5pm")], &[]);
        assert_eq!(bad_format.key, "week.mon");
        assert!(bad_format.problem.contains("HH:MM-HH:MM"), "{}", bad_format.problem);

        assert_eq!(
            error(
                "Europe/Berlin",
                &[("mon", "09:00-18:00"), ("funday", "10:00-11:00")],
                &[]
            )
            .key,
            "week.funday"
        );
        assert_eq!(error("Europe/Berlin", &[("Mon", "09:00-18:00")], &[]).key, "week.Mon");
        assert_eq!(error("Mars/Olympus_Mons", &open, &[]).key, "time_zone");

        let holiday = error("Europe/Berlin", &open, &["2026-12-25", "2026-13-01"]);
        assert_eq!(holiday.key, "holidays[1]");
        assert_eq!(
            error("Europe/Berlin", &open, &["2026-12-26..2026-12-24"]).key,
            "holidays[0]"
        );
        assert_eq!(error("Europe/Berlin", &open, &["2026-12-25T00:00"]).key, "holidays[0]");

        let overlap = error("Europe/Berlin", &[("tue", "09:00-12:00, 11:00-13:00")], &[]);
        assert_eq!(overlap.key, "week.tue");
        assert!(overlap.problem.contains("overlap"), "{}", overlap.problem);

        let overnight = error("Europe/Berlin", &[("fri", "22:00-06:00")], &[]);
        assert_eq!(overnight.key, "week.fri");
        assert!(overnight.problem.contains("\"22:00-24:00\"") && overnight.problem.contains("\"00:00-06:00\""));

        for bad in [
            "09:00-09:00",
            "24:00-24:00",
            "09:00-24:30",
            "09:60-10:00",
            "",
            "09:00-12:00,",
            "9-17",
        ] {
            assert_eq!(error("UTC", &[("wed", bad)], &[]).key, "week.wed", "{bad:?} accepted");
        }

        assert_eq!(
            error("Europe/Berlin", &[("mon", "closed"), ("sun", "closed")], &[]).key,
            "week"
        );
        assert_eq!(error("Europe/Berlin", &[], &[]).key, "week");
        assert_eq!(format!("{overlap}"), format!("week.tue: {}", overlap.problem));
    }

    #[test]
    fn accepted_formats() {
        let days = [("mon", " 9:00 - 17:30 "), ("tue", "00:00-24:00"), ("wed", "CLOSED")];
        let hours = BusinessHours::new("UTC", &week(&days), &[" 2026-12-01 ".to_string()]).unwrap();
        assert_eq!(hours.time_zone(), "UTC");
        let monday = local("UTC", 2026, 11, 30, 0, 0);
        assert_eq!(hours.elapsed(monday, monday + 7 * 24 * HOUR), 8 * HOUR + 30 * MINUTE);
        assert_eq!(
            hours.elapsed(monday, monday + 14 * 24 * HOUR),
            2 * (8 * HOUR + 30 * MINUTE) + 24 * HOUR
        );
    }
}
