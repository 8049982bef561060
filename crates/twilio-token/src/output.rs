//! Writing results to stdout.

use std::fmt::Write as _;
use std::io::{self, ErrorKind, Write as _};

use crate::error::{CliError, EXIT_REJECTED};

/// The text a command prints, and whether it rejected the token.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// The result, for stdout.
    pub(crate) stdout: String,
    /// The rejection message of `verify`, for stderr.
    pub(crate) stderr: String,
    /// True when the token was checked and rejected, which gives exit status 1.
    pub(crate) rejected: bool,
}

impl Outcome {
    /// Returns an outcome that prints `text` on stdout and exits with status 0.
    pub(crate) fn success(text: String) -> Outcome {
        Outcome {
            stdout: text,
            ..Outcome::default()
        }
    }

    /// Writes stdout and then stderr, and returns the exit status: 1 when the token was
    /// rejected, otherwise 0.
    ///
    /// # Errors
    ///
    /// Returns [`CliError::Write`] when stdout fails for a reason other than a closed pipe.
    pub(crate) fn emit(self) -> Result<u8, CliError> {
        write_stdout(&self.stdout)?;
        if !self.stderr.is_empty() {
            // Nothing is left to report to if stderr itself fails.
            let _ = io::stderr().lock().write_all(self.stderr.as_bytes());
        }
        Ok(if self.rejected { EXIT_REJECTED } else { 0 })
    }
}

/// Writes `text` to stdout. A closed pipe (`twilio-token decode - | head -1`) is not an error:
/// the reader has all it wanted, so the program ends quietly.
///
/// # Errors
///
/// Returns [`CliError::Write`] for any other write failure, such as a full disk.
pub(crate) fn write_stdout(text: &str) -> Result<(), CliError> {
    let mut stdout = io::stdout().lock();
    let result = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());

    match result {
        Err(error) if error.kind() != ErrorKind::BrokenPipe => Err(CliError::Write(error)),
        _ => Ok(()),
    }
}

/// Writes `warning: <message>` to stderr, for a problem that does not stop the command.
pub(crate) fn warn(message: &str) {
    // Nothing is left to report to if stderr itself fails.
    let _ = writeln!(io::stderr().lock(), "warning: {}", escape_controls(message));
}

/// Replaces every control character except the newline, and every invisible or
/// direction-changing format character, with a `\uXXXX` escape.
///
/// Decoded tokens and audited identities come from anyone. A raw escape sequence in one could
/// rewrite the user's terminal, and a right-to-left override or a zero-width space could make
/// it read as another value. The escape is also valid inside a JSON string, the only place
/// serde_json leaves such characters unescaped, so JSON output stays valid.
pub(crate) fn escape_controls(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        if (character.is_control() && character != '\n') || is_hidden_format(character) {
            let _ = write!(escaped, "\\u{:04x}", u32::from(character));
        } else {
            escaped.push(character);
        }
    }
    escaped
}

/// Returns true for the format characters that change text direction or take no space: the
/// Arabic letter mark, zero-width spaces and joiners, the bidirectional embeddings, overrides
/// and isolates, the invisible operators, and the byte order mark.
fn is_hidden_format(character: char) -> bool {
    matches!(
        character,
        '\u{061c}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{feff}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_controls_escapes_hidden_format_characters() {
        assert_eq!(
            escape_controls("customer-\u{202e}gnp.exe"),
            "customer-\\u202egnp.exe"
        );
        assert_eq!(escape_controls("a\u{200b}b\u{feff}"), "a\\u200bb\\ufeff");
        assert_eq!(escape_controls("\u{2067}x\u{2069}"), "\\u2067x\\u2069");
    }

    #[test]
    fn escape_controls_keeps_newlines() {
        assert_eq!(escape_controls("a\nb"), "a\nb");
        assert_eq!(escape_controls("é ✓"), "é ✓");
    }

    #[test]
    fn escape_controls_escapes_terminal_sequences() {
        assert_eq!(escape_controls("\u{1b}[2J"), "\\u001b[2J");
        assert_eq!(
            escape_controls("x\u{9b}y\u{7f}\t"),
            "x\\u009by\\u007f\\u0009"
        );
    }
}
