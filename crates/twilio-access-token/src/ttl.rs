//! Token lifetime.

use std::fmt;
use std::str::FromStr;

/// A token lifetime in whole seconds, from 1 second to 24 hours.
///
/// Twilio rejects tokens whose expiry is more than 24 hours after they were issued (error
/// 20157), so longer lifetimes are rejected here, where the message can explain why.
///
/// # Examples
///
/// ```
/// use twilio_access_token::Ttl;
///
/// assert_eq!(Ttl::default().as_secs(), 3600);
/// assert_eq!("90m".parse::<Ttl>().unwrap().as_secs(), 5400);
/// assert!(Ttl::from_secs(90_000).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ttl(u32);

impl Ttl {
    /// The maximum lifetime Twilio accepts: 86400 seconds (24 hours).
    pub const MAX: Ttl = Ttl(86_400);

    /// The lifetime every official helper library uses by default: 3600 seconds.
    pub const DEFAULT: Ttl = Ttl(3600);

    /// Creates a lifetime from seconds.
    ///
    /// # Errors
    ///
    /// Returns [`TtlError::Zero`] for 0 and [`TtlError::TooLong`] above 86400.
    pub fn from_secs(secs: u64) -> Result<Ttl, TtlError> {
        match secs {
            0 => Err(TtlError::Zero),
            1..=86_400 => Ok(Ttl(secs as u32)),
            _ => Err(TtlError::TooLong { secs }),
        }
    }

    /// Returns the lifetime in seconds.
    pub const fn as_secs(self) -> u64 {
        self.0 as u64
    }
}

impl Default for Ttl {
    fn default() -> Self {
        Ttl::DEFAULT
    }
}

impl fmt::Display for Ttl {
    /// Writes the lifetime in seconds, such as `3600`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for Ttl {
    type Err = TtlError;

    /// Parses seconds (`3600`) or a duration made of whole numbers with the units `d`, `h`, `m`
    /// and `s`, largest first (`1h`, `90m`, `1h30m`, `45s`).
    fn from_str(text: &str) -> Result<Ttl, TtlError> {
        let invalid = || TtlError::Invalid {
            value: text.to_owned(),
        };
        if let Some(rest) = text.strip_prefix('-')
            && !rest.is_empty()
            && rest.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        {
            return Err(TtlError::Negative {
                value: text.to_owned(),
            });
        }
        if text.contains('.') && text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return Err(TtlError::NotWholeSeconds {
                value: text.to_owned(),
            });
        }
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            let secs = text.parse::<u64>().unwrap_or(u64::MAX);
            return Ttl::from_secs(secs);
        }
        parse_duration(text)
            .ok_or_else(invalid)
            .and_then(Ttl::from_secs)
    }
}

/// Parses `1h30m`-style durations into seconds, saturating on overflow.
fn parse_duration(text: &str) -> Option<u64> {
    const UNITS: [(char, u64); 4] = [('d', 86_400), ('h', 3600), ('m', 60), ('s', 1)];
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
    if text.is_empty() { None } else { Some(total) }
}

/// A lifetime that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TtlError {
    /// The lifetime is zero.
    Zero,
    /// The lifetime is longer than 24 hours.
    TooLong {
        /// The requested lifetime in seconds.
        secs: u64,
    },
    /// The lifetime is negative.
    Negative {
        /// The text as given.
        value: String,
    },
    /// The lifetime has a fractional part.
    NotWholeSeconds {
        /// The text as given.
        value: String,
    },
    /// The text is neither seconds nor a duration such as `1h30m`.
    Invalid {
        /// The text as given.
        value: String,
    },
}

impl fmt::Display for TtlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TtlError::Zero => f.write_str(
                "the TTL is 0 seconds, so the token would expire as it is issued: use 1 to 86400 \
                 seconds (default 3600)",
            ),
            TtlError::TooLong { secs } => write!(
                f,
                "the TTL of {secs} seconds is over 24 hours: Twilio rejects tokens that live \
                 longer than 24 hours (error 20157), so use at most 86400"
            ),
            TtlError::Negative { value } => {
                write!(f, "the TTL {value:?} is negative: use 1 to 86400 seconds")
            }
            TtlError::NotWholeSeconds { value } => write!(
                f,
                "the TTL {value:?} is not a whole number of seconds: token times have one-second \
                 resolution"
            ),
            TtlError::Invalid { value } => write!(
                f,
                "the TTL {value:?} is not a number of seconds or a duration: write 3600, 90m, 1h \
                 or 1h30m"
            ),
        }
    }
}

impl std::error::Error for TtlError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<u64, TtlError> {
        text.parse::<Ttl>().map(Ttl::as_secs)
    }

    #[test]
    fn ttl_bounds() {
        assert_eq!(Ttl::from_secs(0), Err(TtlError::Zero));
        assert_eq!(Ttl::from_secs(1).map(Ttl::as_secs), Ok(1));
        assert_eq!(Ttl::from_secs(86_400).map(Ttl::as_secs), Ok(86_400));
        assert_eq!(
            Ttl::from_secs(86_401),
            Err(TtlError::TooLong { secs: 86_401 })
        );
    }

    #[test]
    fn ttl_text_forms() {
        assert_eq!(parse("3600"), Ok(3600));
        assert_eq!(parse("90m"), Ok(5400));
        assert_eq!(parse("1h"), Ok(3600));
        assert_eq!(parse("1h30m"), Ok(5400));
        assert_eq!(parse("1d"), Ok(86_400));
        assert_eq!(parse("45s"), Ok(45));
        assert_eq!(parse("25h"), Err(TtlError::TooLong { secs: 90_000 }));
        assert_eq!(
            parse("99999999999999999999"),
            Err(TtlError::TooLong { secs: u64::MAX })
        );
        assert_eq!(parse("0"), Err(TtlError::Zero));
        assert_eq!(
            parse("-60"),
            Err(TtlError::Negative {
                value: "-60".into()
            })
        );
        assert_eq!(
            parse("1.5"),
            Err(TtlError::NotWholeSeconds {
                value: "1.5".into()
            })
        );
    }

    #[test]
    fn ttl_malformed_text_rejected() {
        for bad in [
            "", "h", "1x", "30m1h", "1h1h", "1 h", "1hm", "-", "1.5h", "m30",
        ] {
            assert_eq!(
                parse(bad),
                Err(TtlError::Invalid { value: bad.into() }),
                "{bad}"
            );
        }
    }
}
