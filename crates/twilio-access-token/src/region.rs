//! The Twilio region, written as the `twr` header.

use std::fmt;

/// Checks a region: one or more lowercase ASCII letters followed by one or more digits, at most
/// 16 characters, such as `us1`, `ie1` or `au1`.
///
/// # Errors
///
/// Returns a [`RegionError`] holding the value when it has another form.
pub fn validate_region(region: &str) -> Result<(), RegionError> {
    let letters = region.bytes().take_while(u8::is_ascii_lowercase).count();
    let digits = region[letters..]
        .bytes()
        .take_while(u8::is_ascii_digit)
        .count();
    let valid = letters > 0 && digits > 0 && letters + digits == region.len() && region.len() <= 16;
    if valid {
        Ok(())
    } else {
        Err(RegionError {
            value: region.to_owned(),
        })
    }
}

/// A region that is not lowercase letters followed by digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionError {
    /// The value as given.
    pub value: String,
}

impl fmt::Display for RegionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the region {:?} is not a Twilio region id: expected lowercase letters then digits, \
             such as us1, ie1 or au1",
            self.value
        )
    }
}

impl std::error::Error for RegionError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_forms() {
        for good in ["us1", "ie1", "au1", "sg12"] {
            assert_eq!(validate_region(good), Ok(()), "{good}");
        }
        for bad in [
            "US1",
            "us",
            "1",
            "us1a",
            "us-1",
            "r\u{e9}g1",
            " us1",
            "",
            "abcdefghijklmnop1",
        ] {
            assert_eq!(
                validate_region(bad),
                Err(RegionError {
                    value: bad.to_owned()
                }),
                "{bad}"
            );
        }
    }
}
