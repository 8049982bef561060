//! Unix times as UTC dates (RFC 3339) and as spans relative to now.

/// The last second of the year 9999, the largest time RFC 3339 can write.
const MAX_RFC3339_SECS: u64 = 253_402_300_799;

const SECS_PER_DAY: u64 = 86_400;

/// Formats Unix seconds as an RFC 3339 UTC time, such as `2023-11-14T22:13:20Z`, or returns
/// `None` after the year 9999.
pub(crate) fn rfc3339(secs: u64) -> Option<String> {
    if secs > MAX_RFC3339_SECS {
        return None;
    }

    let days = secs / SECS_PER_DAY;
    let of_day = secs % SECS_PER_DAY;
    let (year, month, day) = civil_from_days(days);
    Some(format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    ))
}

/// Describes `target` relative to `now`: `in 59m 12s`, `3h ago` or `now`.
pub(crate) fn relative(target: u64, now: u64) -> String {
    if target > now {
        format!("in {}", span(target - now))
    } else if target < now {
        format!("{} ago", span(now - target))
    } else {
        "now".to_owned()
    }
}

/// Writes a span in its two largest units of days, hours, minutes and seconds, leaving out a
/// zero second unit: `1d 2h`, `59m 12s`, `3h`, `0s`.
pub(crate) fn span(secs: u64) -> String {
    const UNITS: [(u64, &str); 4] = [(SECS_PER_DAY, "d"), (3600, "h"), (60, "m"), (1, "s")];

    let Some(first) = UNITS.iter().position(|(size, _)| secs >= *size) else {
        return "0s".to_owned();
    };
    let (size, name) = UNITS[first];
    let mut text = format!("{}{name}", secs / size);

    let rest = secs % size;
    if let Some((next_size, next_name)) = UNITS.get(first + 1)
        && rest / next_size > 0
    {
        text.push_str(&format!(" {}{next_name}", rest / next_size));
    }
    text
}

/// The largest leeway `--leeway` accepts: one hour. A longer one would accept tokens long
/// expired, and `--at` is the way to check a token at another time.
pub(crate) const MAX_LEEWAY_SECS: u64 = 3600;

/// Parses a leeway: whole seconds (`90`) or a duration in the units `h`, `m` and `s`, largest
/// first (`90s`, `2m`, `1m30s`), from 0 to [`MAX_LEEWAY_SECS`].
///
/// # Errors
///
/// Returns a message naming the value and the accepted forms.
pub(crate) fn parse_leeway(text: &str) -> Result<u64, String> {
    let secs = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        // Only overflow fails here, and an overflowing value is over the maximum too.
        Some(text.parse::<u64>().unwrap_or(u64::MAX))
    } else {
        parse_duration(text)
    };
    match secs {
        Some(secs) if secs <= MAX_LEEWAY_SECS => Ok(secs),
        Some(_) => Err(format!(
            "the leeway {text:?} is over 1h: use at most 3600 seconds, or --at to check the \
             token at another time"
        )),
        None => Err(format!(
            "the leeway {text:?} is not a number of seconds or a duration: write 60, 90s or 2m"
        )),
    }
}

/// Parses a duration such as `1m30s` into seconds. Each unit of `h`, `m` and `s` may appear
/// once, largest first. Returns `None` for any other text, and saturates on overflow.
pub(crate) fn parse_duration(text: &str) -> Option<u64> {
    const UNITS: [(char, u64); 3] = [('h', 3600), ('m', 60), ('s', 1)];

    if text.is_empty() {
        return None;
    }
    let mut rest = text;
    let mut total: u64 = 0;
    let mut next_unit = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let number = rest[..digits].parse::<u64>().unwrap_or(u64::MAX);
        let unit = rest[digits..].chars().next()?;
        let position = UNITS[next_unit..]
            .iter()
            .position(|(name, _)| *name == unit)?;
        let (_, scale) = UNITS[next_unit + position];
        total = total.saturating_add(number.saturating_mul(scale));
        next_unit += position + 1;
        rest = &rest[digits + unit.len_utf8()..];
    }
    Some(total)
}

/// Converts days since 1970-01-01 to a proleptic Gregorian (year, month, day).
///
/// This is Howard Hinnant's `civil_from_days` algorithm, which counts in 400-year eras of
/// 146097 days starting on 0000-03-01.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Days from 0000-03-01 to 1970-01-01.
    let shifted = days + 719_468;
    let era = shifted / 146_097;
    let day_of_era = shifted % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    // Months counted from March, so February's leap day falls at the end of the year.
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(0).as_deref(), Some("1970-01-01T00:00:00Z"));
        assert_eq!(
            rfc3339(1_700_000_000).as_deref(),
            Some("2023-11-14T22:13:20Z")
        );
        assert_eq!(
            rfc3339(1_234_567_890).as_deref(),
            Some("2009-02-13T23:31:30Z")
        );
        assert_eq!(
            rfc3339(951_782_400).as_deref(),
            Some("2000-02-29T00:00:00Z")
        );
        assert_eq!(
            rfc3339(951_868_800).as_deref(),
            Some("2000-03-01T00:00:00Z")
        );
        assert_eq!(
            rfc3339(4_107_542_399).as_deref(),
            Some("2100-02-28T23:59:59Z")
        );
        assert_eq!(
            rfc3339(4_107_542_400).as_deref(),
            Some("2100-03-01T00:00:00Z")
        );
    }

    #[test]
    fn rfc3339_after_year_9999_none() {
        assert_eq!(
            rfc3339(MAX_RFC3339_SECS).as_deref(),
            Some("9999-12-31T23:59:59Z")
        );
        assert_eq!(rfc3339(MAX_RFC3339_SECS + 1), None);
        assert_eq!(rfc3339(u64::MAX), None);
    }

    #[test]
    fn span_two_largest_units() {
        assert_eq!(span(0), "0s");
        assert_eq!(span(59), "59s");
        assert_eq!(span(3552), "59m 12s");
        assert_eq!(span(3600), "1h");
        assert_eq!(span(3 * 3600 + 5), "3h");
        assert_eq!(span(86_400 + 2 * 3600 + 7), "1d 2h");
        assert_eq!(span(86_400 + 59), "1d");
    }

    #[test]
    fn parse_leeway_forms() {
        assert_eq!(parse_leeway("0"), Ok(0));
        assert_eq!(parse_leeway("60"), Ok(60));
        assert_eq!(parse_leeway("90s"), Ok(90));
        assert_eq!(parse_leeway("2m"), Ok(120));
        assert_eq!(parse_leeway("1m30s"), Ok(90));
        assert_eq!(parse_leeway("1h"), Ok(3600));
        assert_eq!(parse_leeway("3600"), Ok(3600));
    }

    #[test]
    fn parse_leeway_rejects_bad_text() {
        for text in [
            "", "-5", "1.5", "s", "5x", "30s1m", "1m1m", " 60", "2d", "1h1s",
        ] {
            assert!(parse_leeway(text).is_err(), "{text:?}");
        }
        assert_eq!(
            parse_leeway("61m"),
            Err(
                "the leeway \"61m\" is over 1h: use at most 3600 seconds, or --at to check the \
                 token at another time"
                    .to_owned()
            )
        );
        assert_eq!(
            parse_leeway("99999999999999999999s"),
            Err("the leeway \"99999999999999999999s\" is over 1h: use at most 3600 seconds, or --at \
                 to check the token at another time"
                .to_owned())
        );
    }

    #[test]
    fn relative_direction() {
        assert_eq!(relative(100, 100), "now");
        assert_eq!(relative(3652, 100), "in 59m 12s");
        assert_eq!(relative(100, 10_900), "3h ago");
    }
}
