//! Schedule expressions: `rate(…)` and six-field `cron(…)` with AWS's validation, and the next
//! fire time in UTC.
//!
//! AWS answers every invalid expression with the same `ValidationException` text
//! ([`ScheduleError::AWS_MESSAGE`]); our error says what was wrong, for logs and tests.
//! Times are Unix seconds; calendar arithmetic is done here (proleptic Gregorian, UTC) to avoid
//! a date-time dependency.

use std::fmt;

/// The first and last year a cron expression may name, as AWS documents them.
const YEARS: (u32, u32) = (1970, 2199);

/// A parsed schedule expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// `rate(value unit)`: every `seconds`, counted from an anchor (the rule's creation).
    Rate { seconds: u64 },
    /// `cron(minutes hours day-of-month month day-of-week year)`.
    Cron(Box<Cron>),
}

/// A six-field cron expression, each field expanded to the values it allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: Vec<bool>,
    hours: Vec<bool>,
    months: Vec<bool>,
    years: Vec<bool>,
    days: DaySpec,
    text: String,
}

/// The day part of a cron expression: exactly one of day-of-month and day-of-week is set.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DaySpec {
    /// Day-of-month values, with the `L` (last day) and `nW` (nearest weekday) forms.
    Month {
        days: Vec<bool>,
        last: bool,
        weekday_near: Vec<u32>,
    },
    /// Day-of-week values (1 = Sunday), with `dL` (last such weekday) and `d#n` (n-th).
    Week {
        days: Vec<bool>,
        last: Vec<u32>,
        nth: Vec<(u32, u32)>,
    },
}

/// Why a schedule expression was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid schedule expression {expression:?}: {reason}")]
pub struct ScheduleError {
    pub expression: String,
    pub reason: String,
}

// === impl ScheduleError ===

impl ScheduleError {
    /// What AWS says for any invalid `ScheduleExpression`.
    pub const AWS_MESSAGE: &'static str = "Parameter ScheduleExpression is not valid.";

    fn new(expression: &str, reason: impl Into<String>) -> Self {
        ScheduleError {
            expression: expression.to_owned(),
            reason: reason.into(),
        }
    }
}

// === impl Schedule ===

impl Schedule {
    /// Parses `rate(5 minutes)` or `cron(0 12 * * ? *)` exactly as written (AWS accepts no
    /// extra whitespace and no upper-case units).
    pub fn parse(expression: &str) -> Result<Schedule, ScheduleError> {
        if let Some(body) = expression
            .strip_prefix("rate(")
            .and_then(|r| r.strip_suffix(')'))
        {
            return parse_rate(body).map_err(|r| ScheduleError::new(expression, r));
        }
        if let Some(body) = expression
            .strip_prefix("cron(")
            .and_then(|r| r.strip_suffix(')'))
        {
            return Cron::parse(body)
                .map(|c| Schedule::Cron(Box::new(c)))
                .map_err(|r| ScheduleError::new(expression, r));
        }
        Err(ScheduleError::new(
            expression,
            "expected rate(...) or cron(...)",
        ))
    }

    /// The first fire time strictly after `after` (Unix seconds). Rates count whole periods
    /// from `anchor`; cron ignores it. `None` when the schedule never fires again.
    pub fn next_after(&self, after: i64, anchor: i64) -> Option<i64> {
        match self {
            Schedule::Rate { seconds } => {
                let period = *seconds as i64;
                if after < anchor {
                    return Some(anchor);
                }
                let periods = (after - anchor) / period + 1;
                Some(anchor + periods * period)
            }
            Schedule::Cron(c) => c.next_after(after),
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Rate { seconds } => {
                let (n, unit) = if seconds % 86_400 == 0 {
                    (seconds / 86_400, "day")
                } else if seconds % 3_600 == 0 {
                    (seconds / 3_600, "hour")
                } else {
                    (seconds / 60, "minute")
                };
                let plural = if n == 1 { "" } else { "s" };
                write!(f, "rate({n} {unit}{plural})")
            }
            Schedule::Cron(c) => write!(f, "cron({})", c.text),
        }
    }
}

fn parse_rate(body: &str) -> Result<Schedule, String> {
    let (value, unit) = body
        .split_once(' ')
        .ok_or_else(|| "expected a value and a unit".to_owned())?;
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("value {value:?} is not a positive integer"));
    }
    let n: u64 = value
        .parse()
        .map_err(|_| format!("value {value:?} is too large"))?;
    if n == 0 {
        return Err("value must be positive".to_owned());
    }
    let (singular, seconds) = match unit {
        "minute" => (true, 60),
        "minutes" => (false, 60),
        "hour" => (true, 3_600),
        "hours" => (false, 3_600),
        "day" => (true, 86_400),
        "days" => (false, 86_400),
        _ => return Err(format!("unknown unit {unit:?}")),
    };
    // AWS wants "1 minute" but "5 minutes".
    if singular != (n == 1) {
        return Err(format!("unit {unit:?} does not agree with value {n}"));
    }
    let seconds = n
        .checked_mul(seconds)
        .ok_or_else(|| format!("value {n} is too large"))?;
    Ok(Schedule::Rate { seconds })
}

// === impl Cron ===

impl Cron {
    fn parse(body: &str) -> Result<Cron, String> {
        let fields: Vec<&str> = body.split(' ').collect();
        if fields.len() != 6 {
            return Err(format!("expected 6 fields, found {}", fields.len()));
        }
        let minutes = parse_field(fields[0], 0, 59, &[])?;
        let hours = parse_field(fields[1], 0, 23, &[])?;
        let months = parse_field(fields[3], 1, 12, &MONTH_NAMES)?;
        let years = parse_field(fields[5], YEARS.0, YEARS.1, &[])?;
        let (dom, dow) = (fields[2], fields[4]);
        let days = match (dom == "?", dow == "?") {
            (true, false) => parse_week_days(dow)?,
            (false, true) => parse_month_days(dom)?,
            _ => return Err("exactly one of day-of-month and day-of-week must be '?'".to_owned()),
        };
        Ok(Cron {
            minutes,
            hours,
            months,
            years,
            days,
            text: body.to_owned(),
        })
    }

    fn next_after(&self, after: i64) -> Option<i64> {
        // Start at the next whole minute.
        let start = after.div_euclid(60) * 60 + 60;
        let mut day = start.div_euclid(86_400);
        let mut minute_of_day = (start.rem_euclid(86_400) / 60) as u32;
        let last_day = days_from_civil(YEARS.1 as i64, 12, 31);
        while day <= last_day {
            let (y, m, d) = civil_from_days(day);
            if y < YEARS.0 as i64 || !self.years[(y as u32 - YEARS.0) as usize] {
                // Jump to 1 January of the next year.
                day = days_from_civil(y + 1, 1, 1);
                minute_of_day = 0;
                continue;
            }
            if !self.months[m as usize - 1] {
                day = if m == 12 {
                    days_from_civil(y + 1, 1, 1)
                } else {
                    days_from_civil(y, m + 1, 1)
                };
                minute_of_day = 0;
                continue;
            }
            if self.day_matches(y, m, d) {
                for t in minute_of_day..24 * 60 {
                    if self.hours[(t / 60) as usize] && self.minutes[(t % 60) as usize] {
                        return Some(day * 86_400 + t as i64 * 60);
                    }
                }
            }
            day += 1;
            minute_of_day = 0;
        }
        None
    }

    fn day_matches(&self, y: i64, m: u32, d: u32) -> bool {
        let month_len = days_in_month(y, m);
        let weekday = weekday(days_from_civil(y, m, d)); // 1 = Sunday
        match &self.days {
            DaySpec::Month {
                days,
                last,
                weekday_near,
            } => {
                (*last && d == month_len)
                    || days[d as usize - 1]
                    || weekday_near
                        .iter()
                        .any(|&n| nearest_weekday(y, m, n) == Some(d))
            }
            DaySpec::Week { days, last, nth } => {
                days[weekday as usize - 1]
                    || last.iter().any(|&w| w == weekday && d + 7 > month_len)
                    || nth
                        .iter()
                        .any(|&(w, n)| w == weekday && (d - 1) / 7 + 1 == n)
            }
        }
    }
}

const MONTH_NAMES: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// Parses a list field (`*`, `a`, `a-b`, `a/step`, `*/step`, `a-b/step`, comma-separated)
/// into a table of allowed values `lo..=hi`.
fn parse_field(text: &str, lo: u32, hi: u32, names: &[&str]) -> Result<Vec<bool>, String> {
    let mut allowed = vec![false; (hi - lo + 1) as usize];
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, Some(parse_number(s, 1, hi.max(1), &[])?)),
            None => (part, None),
        };
        let (start, end) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            let a = parse_number(a, lo, hi, names)?;
            let b = parse_number(b, lo, hi, names)?;
            if a > b {
                return Err(format!("range {range:?} is reversed"));
            }
            (a, b)
        } else {
            let a = parse_number(range, lo, hi, names)?;
            // "a/step" runs from a to the end of the field.
            (a, if step.is_some() { hi } else { a })
        };
        let step = step.unwrap_or(1);
        if step == 0 {
            return Err("step must be positive".to_owned());
        }
        let mut v = start;
        while v <= end {
            allowed[(v - lo) as usize] = true;
            v += step;
        }
    }
    Ok(allowed)
}

fn parse_number(text: &str, lo: u32, hi: u32, names: &[&str]) -> Result<u32, String> {
    if let Some(i) = names.iter().position(|n| *n == text) {
        return Ok(lo + i as u32);
    }
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) || text.len() > 4 {
        return Err(format!("{text:?} is not a number"));
    }
    let n: u32 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if n < lo || n > hi {
        return Err(format!("{n} is outside {lo}-{hi}"));
    }
    Ok(n)
}

fn parse_month_days(text: &str) -> Result<DaySpec, String> {
    let mut days = vec![false; 31];
    let mut last = false;
    let mut weekday_near = Vec::new();
    let mut plain = Vec::new();
    for part in text.split(',') {
        if part == "L" {
            last = true;
        } else if let Some(n) = part.strip_suffix('W') {
            weekday_near.push(parse_number(n, 1, 31, &[])?);
        } else {
            plain.push(part);
        }
    }
    if !plain.is_empty() {
        days = parse_field(&plain.join(","), 1, 31, &[])?;
    }
    Ok(DaySpec::Month {
        days,
        last,
        weekday_near,
    })
}

fn parse_week_days(text: &str) -> Result<DaySpec, String> {
    let mut last = Vec::new();
    let mut nth = Vec::new();
    let mut plain = Vec::new();
    for part in text.split(',') {
        if let Some((d, n)) = part.split_once('#') {
            let d = parse_number(d, 1, 7, &DAY_NAMES)?;
            let n = parse_number(n, 1, 5, &[])?;
            nth.push((d, n));
        } else if let Some(d) = part.strip_suffix('L').filter(|d| !d.is_empty()) {
            last.push(parse_number(d, 1, 7, &DAY_NAMES)?);
        } else if part == "L" {
            // "L" alone in day-of-week means the last day of the week: Saturday.
            last.push(7);
        } else {
            plain.push(part);
        }
    }
    let days = if plain.is_empty() {
        vec![false; 7]
    } else {
        parse_field(&plain.join(","), 1, 7, &DAY_NAMES)?
    };
    Ok(DaySpec::Week { days, last, nth })
}

/// The weekday (Monday to Friday) nearest to day `n` of the month, without leaving the month.
fn nearest_weekday(y: i64, m: u32, n: u32) -> Option<u32> {
    let len = days_in_month(y, m);
    if n > len {
        return None;
    }
    match weekday(days_from_civil(y, m, n)) {
        7 if n == 1 => Some(3),       // Saturday the 1st: Monday the 3rd
        7 => Some(n - 1),             // Saturday: Friday before
        1 if n == len => Some(n - 2), // Sunday the last: Friday before
        1 => Some(n + 1),             // Sunday: Monday after
        _ => Some(n),
    }
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// 1 = Sunday … 7 = Saturday, for days since 1970-01-01 (a Thursday).
fn weekday(days: i64) -> u32 {
    ((days + 4).rem_euclid(7) + 1) as u32
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of `days_from_civil`.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (y, m, d)
}

/// Formats Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`, the form EventBridge uses for `time`.
pub fn format_utc(unix: i64) -> String {
    let (y, m, d) = civil_from_days(unix.div_euclid(86_400));
    let s = unix.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i64, m: u32, d: u32, h: i64, min: i64) -> i64 {
        days_from_civil(y, m, d) * 86_400 + h * 3600 + min * 60
    }

    #[test]
    fn calendar_round_trip() {
        for day in [-1000, 0, 1, 59, 365, 11_016, 19_000, 84_000] {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(weekday(0), 5); // Thursday
    }

    #[test]
    fn rates() {
        assert_eq!(
            Schedule::parse("rate(5 minutes)").unwrap(),
            Schedule::Rate { seconds: 300 }
        );
        assert_eq!(
            Schedule::parse("rate(1 day)").unwrap().to_string(),
            "rate(1 day)"
        );
        let r = Schedule::parse("rate(1 hour)").unwrap();
        assert_eq!(r.next_after(100, 0), Some(3600));
        assert_eq!(r.next_after(3600, 0), Some(7200));
    }

    #[test]
    fn cron_next_fire_times() {
        let c = Schedule::parse("cron(0/15 * * * ? *)").unwrap();
        assert_eq!(
            c.next_after(at(2024, 1, 1, 10, 7), 0),
            Some(at(2024, 1, 1, 10, 15))
        );
        let c = Schedule::parse("cron(0 18 ? * MON-FRI *)").unwrap();
        // 2024-01-06 is a Saturday: next is Monday the 8th.
        assert_eq!(
            c.next_after(at(2024, 1, 6, 12, 0), 0),
            Some(at(2024, 1, 8, 18, 0))
        );
        let c = Schedule::parse("cron(15 10 ? * 6L 2002-2005)").unwrap();
        // Last Friday of January 2002 is the 25th.
        assert_eq!(
            c.next_after(at(2002, 1, 1, 0, 0), 0),
            Some(at(2002, 1, 25, 10, 15))
        );
        assert_eq!(c.next_after(at(2006, 1, 1, 0, 0), 0), None);
        let c = Schedule::parse("cron(0 2 ? * SAT#3 *)").unwrap();
        assert_eq!(
            c.next_after(at(2024, 1, 1, 0, 0), 0),
            Some(at(2024, 1, 20, 2, 0))
        );
        let c = Schedule::parse("cron(0 8 L * ? *)").unwrap();
        assert_eq!(
            c.next_after(at(2024, 2, 1, 0, 0), 0),
            Some(at(2024, 2, 29, 8, 0))
        );
        let c = Schedule::parse("cron(0 9 1W * ? *)").unwrap();
        // 2024-06-01 is a Saturday: the nearest weekday in June is Monday the 3rd.
        assert_eq!(
            c.next_after(at(2024, 5, 15, 0, 0), 0),
            Some(at(2024, 6, 3, 9, 0))
        );
    }
}
