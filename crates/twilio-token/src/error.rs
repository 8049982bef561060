//! The one error type of the command line.

use std::fmt;
use std::io;

use twilio_access_token::{
    DecodeError, EndpointIdError, GrantJsonError, MintError, SidError, TtlError, VerifierError,
};
use twilio_token_server::config::ConfigError;

/// The exit status of `verify` and `doctor` when the token was checked and rejected.
pub(crate) const EXIT_REJECTED: u8 = 1;

/// The exit status for a usage or input error. Clap uses the same status for its own errors.
pub(crate) const EXIT_USAGE: u8 = 2;

/// The reason a command failed. Every variant exits with [`EXIT_USAGE`], because a rejected token
/// is a result, not a `CliError`.
///
/// No variant contains an API secret or a token, so printing any of them is safe.
#[derive(Debug)]
pub(crate) enum CliError {
    /// The library refused to build or mint the token.
    Mint(MintError),
    /// `--ttl` is not a usable lifetime.
    Ttl(TtlError),
    /// `--grants-json` has a grant that is not in Twilio's form.
    GrantJson(GrantJsonError),
    /// `--device-id` and `--app-name` do not make an endpoint id.
    EndpointId(EndpointIdError),
    /// The token given to `decode` is malformed.
    Decode(DecodeError),
    /// `--account-sid` or `--api-key-sid` of `verify` or `doctor` is not a valid SID.
    Sid(SidError),
    /// The verifier could not be built from the given keys and account.
    Verifier(VerifierError),
    /// An input is missing or unusable. The message names the input and the fix.
    Input(String),
    /// A file or stdin could not be read.
    Read {
        /// The input being read, such as `the grants JSON from the file "grants.json"`.
        what: String,
        /// The I/O error.
        source: io::Error,
    },
    /// The grants document is not JSON.
    GrantsNotJson {
        /// The document's source, such as `stdin`.
        origin: String,
        /// The parser's error.
        source: serde_json::Error,
    },
    /// Writing the result to stdout failed for a reason other than a closed pipe.
    Write(io::Error),
    /// The server configuration is invalid. The error names the key and the fix.
    Config(ConfigError),
    /// The server could not listen or stopped with an I/O error.
    Serve {
        /// The failed step, such as `failed to listen on 127.0.0.1:8080`.
        what: String,
        /// The I/O error.
        source: io::Error,
    },
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Mint(error) => error.fmt(f),
            CliError::Ttl(error) => error.fmt(f),
            CliError::GrantJson(error) => error.fmt(f),
            CliError::EndpointId(error) => error.fmt(f),
            CliError::Decode(error) => error.fmt(f),
            CliError::Sid(error) => error.fmt(f),
            CliError::Verifier(error) => error.fmt(f),
            CliError::Input(message) => f.write_str(message),
            CliError::Read { what, .. } => write!(f, "failed to read {what}"),
            CliError::GrantsNotJson { origin, .. } => {
                write!(f, "the grants JSON from {origin} is not valid JSON")
            }
            CliError::Write(_) => f.write_str("failed to write to stdout"),
            CliError::Config(error) => error.fmt(f),
            CliError::Serve { what, .. } => f.write_str(what),
        }
    }
}

impl std::error::Error for CliError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CliError::Read { source, .. } => Some(source),
            CliError::GrantsNotJson { source, .. } => Some(source),
            CliError::Write(source) => Some(source),
            CliError::Serve { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<ConfigError> for CliError {
    fn from(error: ConfigError) -> Self {
        CliError::Config(error)
    }
}

impl From<MintError> for CliError {
    fn from(error: MintError) -> Self {
        CliError::Mint(error)
    }
}

impl From<TtlError> for CliError {
    fn from(error: TtlError) -> Self {
        CliError::Ttl(error)
    }
}

impl From<GrantJsonError> for CliError {
    fn from(error: GrantJsonError) -> Self {
        CliError::GrantJson(error)
    }
}

impl From<EndpointIdError> for CliError {
    fn from(error: EndpointIdError) -> Self {
        CliError::EndpointId(error)
    }
}

impl From<DecodeError> for CliError {
    fn from(error: DecodeError) -> Self {
        CliError::Decode(error)
    }
}

impl From<SidError> for CliError {
    fn from(error: SidError) -> Self {
        CliError::Sid(error)
    }
}

impl From<VerifierError> for CliError {
    fn from(error: VerifierError) -> Self {
        CliError::Verifier(error)
    }
}
