//! Glob patterns for identities, groups and room names: `*` matches any run of characters,
//! `?` matches one character, and everything else matches itself.

use std::fmt;

/// A glob pattern such as `user-*` or `standup-??`.
#[derive(Clone, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    chars: Vec<char>,
}

impl Pattern {
    /// Compiles a pattern. Every string is a valid pattern.
    pub fn new(text: impl Into<String>) -> Self {
        let text = text.into();
        let chars = text.chars().collect();
        Pattern { text, chars }
    }

    /// Returns the pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Returns true when the whole of `value` matches.
    pub fn matches(&self, value: &str) -> bool {
        if self.text == "*" {
            return true;
        }
        let value: Vec<char> = value.chars().collect();
        // Iterative wildcard matching with one backtrack point, linear in practice.
        let (mut p, mut v) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while v < value.len() {
            match self.chars.get(p) {
                Some('*') => {
                    star = Some((p, v));
                    p += 1;
                }
                Some('?') => {
                    p += 1;
                    v += 1;
                }
                Some(c) if *c == value[v] => {
                    p += 1;
                    v += 1;
                }
                _ => match star {
                    Some((star_p, star_v)) => {
                        p = star_p + 1;
                        v = star_v + 1;
                        star = Some((star_p, star_v + 1));
                    }
                    None => return false,
                },
            }
        }
        self.chars[p..].iter().all(|c| *c == '*')
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pattern({:?})", self.text)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match() {
        let cases = [
            ("*", "", true),
            ("*", "anything", true),
            ("user-*", "user-42", true),
            ("user-*", "admin-42", false),
            ("standup-??", "standup-01", true),
            ("standup-??", "standup-1", false),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("exact", "exact", true),
            ("exact", "exactly", false),
            ("é*", "été", true),
        ];
        for (pattern, value, expected) in cases {
            assert_eq!(
                Pattern::new(pattern).matches(value),
                expected,
                "{pattern} ~ {value}"
            );
        }
    }
}
