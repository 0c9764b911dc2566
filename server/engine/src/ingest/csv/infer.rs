//! The type a CSV column gets when the upload does not say: the narrowest
//! kind that every value seen so far parses as.
//!
//! Kinds form a small lattice joined as values arrive (int and float make
//! float, date and timestamp make timestamp, anything else makes text).
//! Parsing is strict so that nothing is lost by guessing: `007` stays text
//! (a leading zero is part of a code, not a number), and a timestamp with
//! more than microsecond precision stays text rather than being truncated.

use arrow::datatypes::{DataType, TimeUnit};

/// What a column's values are, narrowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only nulls seen so far.
    Null,
    Bool,
    Int64,
    Float64,
    Date,
    /// A timestamp without a time zone.
    Timestamp,
    /// A timestamp with `Z` or an offset, stored in UTC.
    TimestampUtc,
    Utf8,
}

impl Kind {
    /// The narrowest kind of one non-null value.
    pub fn of(value: &str) -> Kind {
        if parse_bool(value).is_some() {
            Kind::Bool
        } else if parse_int(value).is_some() {
            Kind::Int64
        } else if parse_float(value).is_some() {
            Kind::Float64
        } else if parse_date(value).is_some() {
            Kind::Date
        } else {
            match parse_timestamp(value) {
                Some((_, false)) => Kind::Timestamp,
                Some((_, true)) => Kind::TimestampUtc,
                None => Kind::Utf8,
            }
        }
    }

    /// The narrowest kind holding values of both.
    pub fn join(self, other: Kind) -> Kind {
        use Kind::*;
        match (self, other) {
            (a, b) if a == b => a,
            (Null, k) | (k, Null) => k,
            (Int64, Float64) | (Float64, Int64) => Float64,
            (Date, Timestamp) | (Timestamp, Date) => Timestamp,
            (Date, TimestampUtc) | (TimestampUtc, Date) => TimestampUtc,
            _ => Utf8,
        }
    }

    /// The column type; a column of nulls only is text.
    pub fn data_type(self) -> DataType {
        match self {
            Kind::Bool => DataType::Boolean,
            Kind::Int64 => DataType::Int64,
            Kind::Float64 => DataType::Float64,
            Kind::Date => DataType::Date32,
            Kind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            Kind::TimestampUtc => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Kind::Null | Kind::Utf8 => DataType::Utf8,
        }
    }
}

pub fn parse_bool(value: &str) -> Option<bool> {
    if value.eq_ignore_ascii_case("true") {
        Some(true)
    } else if value.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// Digits after an optional sign, without a leading zero unless the
/// number is zero.
fn is_plain_integer(digits: &str) -> bool {
    let digits = digits.strip_prefix(['-', '+']).unwrap_or(digits);
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
}

pub fn parse_int(value: &str) -> Option<i64> {
    if !is_plain_integer(value) {
        return None;
    }
    value.parse().ok()
}

/// `[-+]digits.digits` in one pass, or `None` to leave the value to the
/// general parser. Integers (no point) are not floats; see [`parse_float`].
fn plain_decimal(value: &str) -> Option<f64> {
    const POWERS: [f64; 16] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
    ];
    let bytes = value.as_bytes();
    let (negative, digits) = match bytes.first()? {
        b'-' => (true, &bytes[1..]),
        b'+' => (false, &bytes[1..]),
        _ => (false, bytes),
    };
    let mut mantissa = 0u64;
    let mut count = 0;
    let mut point = None;
    for (i, &b) in digits.iter().enumerate() {
        match b {
            // Past 15 digits the mantissa may not be exact (and past 19 it
            // would overflow): the general parser decides.
            b'0'..=b'9' if count == 15 => return None,
            b'0'..=b'9' => {
                mantissa = mantissa * 10 + u64::from(b - b'0');
                count += 1;
            }
            b'.' if point.is_none() => point = Some(i),
            _ => return None,
        }
    }
    let point = point?;
    let whole = &digits[..point];
    let leading_zero = whole.len() > 1 && whole[0] == b'0';
    if count == 0 || leading_zero {
        return None;
    }
    // An exact mantissa over an exact power of ten is correctly rounded
    // (Clinger's fast path): the same value the full parser returns.
    let value = mantissa as f64 / POWERS[digits.len() - point - 1];
    Some(if negative { -value } else { value })
}

/// Decimal or scientific notation with a point or an exponent; no `inf`,
/// `nan` or hex, and the
/// integer part follows the same leading-zero rule as integers.
pub fn parse_float(value: &str) -> Option<f64> {
    if let Some(fast) = plain_decimal(value) {
        return Some(fast);
    }
    let unsigned = value.strip_prefix(['-', '+']).unwrap_or(value);
    let mantissa_end = unsigned.find(['e', 'E']).unwrap_or(unsigned.len());
    let (mantissa, exponent) = unsigned.split_at(mantissa_end);
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits_ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let whole_ok =
        whole.is_empty() || (digits_ok(whole) && (whole == "0" || !whole.starts_with('0')));
    let has_digit = !whole.is_empty() || !fraction.is_empty();
    // An integer too large for Int64 stays text: as a float it would lose digits.
    let is_integer = !mantissa.contains('.') && exponent.is_empty();
    let exponent_ok = exponent.is_empty() || {
        let e = &exponent[1..];
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && digits_ok(e)
    };
    if is_integer || !(whole_ok && digits_ok(fraction) && has_digit && exponent_ok) {
        return None;
    }
    value.parse().ok().filter(|f: &f64| f.is_finite())
}

/// `YYYY-MM-DD` as days since 1970-01-01.
pub fn parse_date(value: &str) -> Option<i32> {
    let b = value.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (year, month, day) = (
        number(&b[0..4])? as i32,
        number(&b[5..7])?,
        number(&b[8..10])?,
    );
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    Some(days_from_civil(year, month, day))
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a valid proleptic Gregorian date (Howard
/// Hinnant's `days_from_civil`): parsing dates is hot in CSV upload.
fn days_from_civil(year: i32, month: u32, day: u32) -> i32 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era =
        year_of_era as u32 * 365 + year_of_era as u32 / 4 - year_of_era as u32 / 100 + day_of_year;
    era * 146_097 + day_of_era as i32 - 719_468
}

/// `YYYY-MM-DD[T| ]HH:MM[:SS[.ffffff]][Z|±HH[:MM]]` as microseconds since
/// the epoch in UTC, and whether a zone was given.
pub fn parse_timestamp(value: &str) -> Option<(i64, bool)> {
    let b = value.as_bytes();
    if b.len() < 16 || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let days = parse_date(&value[..10])? as i64;
    let rest = &b[11..];
    if rest[2] != b':' {
        return None;
    }
    let (hour, minute) = (number(&rest[0..2])?, number(&rest[3..5])?);
    let mut at = 5;
    let mut second = 0;
    let mut micros = 0u32;
    if rest.get(at) == Some(&b':') {
        second = number(rest.get(at + 1..at + 3)?)?;
        at += 3;
        if rest.get(at) == Some(&b'.') {
            let digits = rest[at + 1..]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .count();
            if digits == 0 || digits > 6 {
                return None;
            }
            let fraction = number(&rest[at + 1..at + 1 + digits])?;
            micros = fraction * 10u32.pow(6 - digits as u32);
            at += 1 + digits;
        }
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let (offset_secs, zoned) = parse_zone(&rest[at..])?;
    let secs = days * 86_400 + (hour * 3600 + minute * 60 + second) as i64 - offset_secs;
    Some((secs * 1_000_000 + micros as i64, zoned))
}

/// `""` (no zone), `Z`, `±HH`, `±HHMM` or `±HH:MM` as seconds east of UTC.
fn parse_zone(zone: &[u8]) -> Option<(i64, bool)> {
    match zone {
        [] => Some((0, false)),
        [b'Z' | b'z'] => Some((0, true)),
        [sign @ (b'+' | b'-'), rest @ ..] => {
            let (hours, minutes) = match rest {
                [h1, h2] => (number(&[*h1, *h2])?, 0),
                [h1, h2, m1, m2] | [h1, h2, b':', m1, m2] => {
                    (number(&[*h1, *h2])?, number(&[*m1, *m2])?)
                }
                _ => return None,
            };
            if hours > 23 || minutes > 59 {
                return None;
            }
            let secs = (hours * 3600 + minutes * 60) as i64;
            Some((if *sign == b'-' { -secs } else { secs }, true))
        }
        _ => None,
    }
}

fn number(digits: &[u8]) -> Option<u32> {
    if digits.is_empty() || digits.len() > 9 {
        return None;
    }
    digits.iter().try_fold(0u32, |n, d| {
        d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Datelike;

    #[test]
    fn kinds_of_values() {
        for (value, kind) in [
            ("true", Kind::Bool),
            ("FALSE", Kind::Bool),
            ("0", Kind::Int64),
            ("-42", Kind::Int64),
            ("007", Kind::Utf8),
            ("02134", Kind::Utf8),
            ("1.5", Kind::Float64),
            ("-0.25", Kind::Float64),
            (".5", Kind::Float64),
            ("1e10", Kind::Float64),
            ("2.5E-3", Kind::Float64),
            ("01.5", Kind::Utf8),
            ("inf", Kind::Utf8),
            ("NaN", Kind::Utf8),
            ("9223372036854775808", Kind::Utf8),
            ("2024-02-29", Kind::Date),
            ("2023-02-29", Kind::Utf8),
            ("2024-01-05 10:30", Kind::Timestamp),
            ("2024-01-05T10:30:00.123456", Kind::Timestamp),
            ("2024-01-05T10:30:00.1234567", Kind::Utf8),
            ("2024-01-05T10:30:00Z", Kind::TimestampUtc),
            ("2024-01-05 10:30:00+02:00", Kind::TimestampUtc),
            ("2024-01-05 25:30:00", Kind::Utf8),
            ("hello", Kind::Utf8),
            ("1,5", Kind::Utf8),
            ("-", Kind::Utf8),
        ] {
            assert_eq!(Kind::of(value), kind, "{value}");
        }
    }

    #[test]
    fn joins_widen() {
        assert_eq!(Kind::Null.join(Kind::Int64), Kind::Int64);
        assert_eq!(Kind::Int64.join(Kind::Float64), Kind::Float64);
        assert_eq!(Kind::Date.join(Kind::Timestamp), Kind::Timestamp);
        assert_eq!(Kind::Int64.join(Kind::Bool), Kind::Utf8);
        assert_eq!(Kind::Timestamp.join(Kind::TimestampUtc), Kind::Utf8);
        assert_eq!(Kind::Float64.join(Kind::of("3")), Kind::Float64);
        assert_eq!(Kind::Int64.join(Kind::of("3.5")), Kind::Float64);
    }

    #[test]
    fn long_decimals_go_to_the_full_parser_without_overflow() {
        // Found by the fuzzer: 20+ digits overflowed the fast path's u64.
        for value in [
            "99999999999999999999.5",
            "-123456789012345678901234.0",
            "1234567890123456.7",
        ] {
            assert_eq!(parse_float(value), value.parse::<f64>().ok(), "{value}");
        }
    }

    #[test]
    fn fast_decimals_equal_the_full_parser() {
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..100_000 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let digits = (rng % 15) as usize + 1;
            let point = (rng >> 8) as usize % (digits + 1);
            let text: String = (0..digits)
                .map(|i| char::from(b'0' + ((rng >> (i * 4 % 60)) % 10) as u8))
                .collect();
            let (whole, fraction) = text.split_at(point);
            let whole = whole.trim_start_matches('0');
            let value = format!("-{}.{fraction}", if whole.is_empty() { "0" } else { whole });
            assert_eq!(parse_float(&value), value.parse::<f64>().ok(), "{value}");
        }
    }

    #[test]
    fn dates_are_days_since_the_epoch() {
        let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        let mut day = chrono::NaiveDate::from_ymd_opt(1600, 1, 1).unwrap();
        while day.year() < 2400 {
            let text = day.format("%Y-%m-%d").to_string();
            assert_eq!(
                parse_date(&text),
                Some((day - epoch).num_days() as i32),
                "{text}"
            );
            day = day.succ_opt().unwrap();
        }
        for bad in [
            "2023-02-29",
            "2024-13-01",
            "2024-04-31",
            "2024-00-10",
            "2024-01-00",
            "1900-02-29",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
        assert!(parse_date("2000-02-29").is_some());
    }

    #[test]
    fn timestamps_are_utc_microseconds() {
        assert_eq!(
            parse_timestamp("1970-01-01T00:00:01Z"),
            Some((1_000_000, true))
        );
        assert_eq!(
            parse_timestamp("1970-01-01 01:00:00+01:00"),
            Some((0, true))
        );
        assert_eq!(
            parse_timestamp("1970-01-01 00:00:00.5"),
            Some((500_000, false))
        );
        assert_eq!(parse_date("1969-12-31"), Some(-1));
    }
}
