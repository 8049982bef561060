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
        // Iterative wildcard matching with one backtrack point, linear in practice. `v` is a
        // byte offset into `value`, so nothing is allocated.
        let (mut p, mut v) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while let Some(c) = value[v..].chars().next() {
            match self.chars.get(p) {
                Some('*') => {
                    star = Some((p, v));
                    p += 1;
                }
                Some('?') => {
                    p += 1;
                    v += c.len_utf8();
                }
                Some(expected) if *expected == c => {
                    p += 1;
                    v += c.len_utf8();
                }
                _ => match star {
                    Some((star_p, star_v)) => {
                        // Let the star take one more character.
                        let taken = value[star_v..].chars().next().map_or(1, char::len_utf8);
                        p = star_p + 1;
                        v = star_v + taken;
                        star = Some((star_p, v));
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
            ("?t?", "été", true),
            ("??", "été", false),
            ("*é", "aé", true),
            ("a*é?", "abcéx", true),
            ("a*é?", "abcé", false),
            ("*-*-?", "a-b-c-d", true),
            ("*ab", "aab", true),
            ("*", "", true),
            ("?*", "", false),
            ("**", "x", true),
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
