//! Reading an input from a file or from stdin (`-`).

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;

use crate::error::CliError;

/// The largest input read from a file or stdin: 1 MiB. Tokens, secrets and grant documents are
/// far smaller, so a larger input is a mistake such as the wrong file.
pub(crate) const MAX_INPUT_BYTES: u64 = 1024 * 1024;

/// The source of an input: stdin for `-`, otherwise a file path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    Stdin,
    File(PathBuf),
}

impl Source {
    /// Reads a command-line value: `-` is stdin, anything else a path.
    pub(crate) fn from_arg(arg: &OsStr) -> Source {
        if arg == "-" {
            Source::Stdin
        } else {
            Source::File(PathBuf::from(arg))
        }
    }

    /// Reads the optional value of a flag such as `--grants-json`.
    pub(crate) fn from_optional_arg(arg: Option<&OsString>) -> Option<Source> {
        arg.map(|arg| Source::from_arg(arg))
    }
}

impl fmt::Display for Source {
    /// Writes `stdin` or `the file "PATH"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Stdin => f.write_str("stdin"),
            Source::File(path) => write!(f, "the file {:?}", path.display().to_string()),
        }
    }
}

/// Reads all of `source`, up to [`MAX_INPUT_BYTES`]. `what` names the input in errors, such as
/// `the grants JSON`.
pub(crate) fn read_bytes(source: &Source, what: &str) -> Result<Vec<u8>, CliError> {
    let mut bytes = Vec::new();
    read_into(source, what, &mut bytes)?;
    Ok(bytes)
}

/// Reads all of `source` into `buffer`, up to [`MAX_INPUT_BYTES`].
///
/// The buffer gets room for 8 KiB first, so a small input such as a secret is read without the
/// buffer being moved, which would leave a copy behind in freed memory.
pub(crate) fn read_into(source: &Source, what: &str, buffer: &mut Vec<u8>) -> Result<(), CliError> {
    buffer.reserve(8 * 1024);
    let result = match source {
        Source::Stdin => read_limited(io::stdin().lock(), buffer),
        Source::File(path) => File::open(path).and_then(|file| read_limited(file, buffer)),
    };

    if let Err(error) = result {
        return Err(CliError::Read {
            what: format!("{what} from {source}"),
            source: error,
        });
    }
    if buffer.len() as u64 > MAX_INPUT_BYTES {
        return Err(CliError::Input(format!(
            "{what} from {source} is larger than 1 MiB: check that it is the right input"
        )));
    }
    Ok(())
}

/// Returns the argument itself, or the text on stdin for `-`.
pub(crate) fn read_token(arg: &str) -> Result<String, CliError> {
    if arg != "-" {
        return Ok(arg.to_owned());
    }
    let bytes = read_bytes(&Source::Stdin, "the token")?;
    String::from_utf8(bytes)
        .map_err(|_| CliError::Input("the token from stdin is not UTF-8 text".to_owned()))
}

/// Reads one byte more than the limit, so the caller can tell a full input from a cut one.
fn read_limited(reader: impl Read, bytes: &mut Vec<u8>) -> io::Result<usize> {
    reader.take(MAX_INPUT_BYTES + 1).read_to_end(bytes)
}

/// Removes exactly one trailing newline, `\r\n` or `\n`, as a file written by an editor or
/// `echo` ends with one.
pub(crate) fn strip_one_newline(bytes: &mut Vec<u8>) {
    if bytes.ends_with(b"\r\n") {
        bytes.truncate(bytes.len() - 2);
    } else if bytes.ends_with(b"\n") {
        bytes.truncate(bytes.len() - 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dash_is_stdin() {
        assert_eq!(Source::from_arg(OsStr::new("-")), Source::Stdin);
        assert_eq!(
            Source::from_arg(OsStr::new("./-")),
            Source::File(PathBuf::from("./-"))
        );
    }

    #[test]
    fn source_display_names_file() {
        assert_eq!(Source::Stdin.to_string(), "stdin");
        assert_eq!(
            Source::File(PathBuf::from("a b.json")).to_string(),
            "the file \"a b.json\""
        );
    }

    #[test]
    fn missing_file_error_names_input() {
        let source = Source::File(PathBuf::from("/nonexistent/twilio-token-test"));
        let error = read_bytes(&source, "the grants JSON").expect_err("file is missing");
        assert_eq!(
            error.to_string(),
            "failed to read the grants JSON from the file \"/nonexistent/twilio-token-test\""
        );
    }

    #[test]
    fn strip_one_newline_removes_one() {
        for (input, expected) in [
            (&b"s\n"[..], &b"s"[..]),
            (b"s\r\n", b"s"),
            (b"s\n\n", b"s\n"),
            (b"s\r\n\r\n", b"s\r\n"),
            (b"s\r", b"s\r"),
            (b"s", b"s"),
            (b"\n", b""),
        ] {
            let mut bytes = input.to_vec();
            strip_one_newline(&mut bytes);
            assert_eq!(bytes, expected, "{input:?}");
        }
    }
}
