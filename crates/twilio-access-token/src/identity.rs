//! The token's identity: who the client SDK acts as.

use std::fmt;

/// The maximum identity length, in Unicode scalar values.
pub const MAX_IDENTITY_CHARS: usize = 256;

/// The problem with an identity.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdentityError {
    /// The identity is empty.
    Empty,
    /// The identity is longer than [`MAX_IDENTITY_CHARS`].
    TooLong {
        /// Its length in Unicode scalar values.
        chars: usize,
    },
    /// The identity contains a control character (Unicode category Cc).
    ControlCharacter {
        /// The character.
        character: char,
        /// Its index in Unicode scalar values.
        index: usize,
    },
}

impl fmt::Display for IdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentityError::Empty => {
                f.write_str("the identity is empty: set it to the user's name or id in your app")
            }
            IdentityError::TooLong { chars } => write!(
                f,
                "the identity is {chars} characters long: the maximum is {MAX_IDENTITY_CHARS}, \
                 so use a shorter user id"
            ),
            IdentityError::ControlCharacter { character, index } => write!(
                f,
                "the identity contains the control character U+{:04X} at position {index}: remove \
                 it (newlines and tabs are not allowed)",
                u32::from(*character)
            ),
        }
    }
}

impl std::error::Error for IdentityError {}

/// Checks an identity: 1 to 256 Unicode scalar values and no control characters.
///
/// Spaces, punctuation and non-ASCII letters are allowed and written as given. Voice accepts only
/// letters, digits and underscore, which the library does not enforce because Chat, Video and
/// Sync accept more.
///
/// # Errors
///
/// Returns the [`IdentityError`] for the first rule the identity breaks.
pub fn validate_identity(identity: &str) -> Result<(), IdentityError> {
    if identity.is_empty() {
        return Err(IdentityError::Empty);
    }
    let mut chars = 0;
    for (index, character) in identity.chars().enumerate() {
        if character.is_control() {
            return Err(IdentityError::ControlCharacter { character, index });
        }
        chars = index + 1;
    }
    if chars > MAX_IDENTITY_CHARS {
        return Err(IdentityError::TooLong { chars });
    }
    Ok(())
}

/// Builds the legacy Chat endpoint id `app:identity:device` from its three parts.
///
/// Chat SDKs older than JavaScript 0.11, iOS 0.16 and Android 0.11 use the endpoint id to tell
/// one user's devices apart. Twilio documents the form `AppName:identity:device_id` and does not
/// parse it, so the parts are joined as given.
///
/// # Errors
///
/// Returns [`EndpointIdError`] when a part is empty or the app name or device id contains `:`,
/// which would make the three parts ambiguous. The identity may contain `:`.
///
/// # Examples
///
/// ```
/// use twilio_access_token::endpoint_id;
///
/// let id = endpoint_id("HipFlowSlackDockRC", "alice", "device-8f3a").unwrap();
/// assert_eq!(id, "HipFlowSlackDockRC:alice:device-8f3a");
/// ```
pub fn endpoint_id(app: &str, identity: &str, device: &str) -> Result<String, EndpointIdError> {
    for (part, value) in [
        (EndpointIdPart::App, app),
        (EndpointIdPart::Identity, identity),
        (EndpointIdPart::Device, device),
    ] {
        if value.is_empty() {
            return Err(EndpointIdError::Empty(part));
        }
        if part != EndpointIdPart::Identity && value.contains(':') {
            return Err(EndpointIdError::Colon {
                part,
                value: value.to_owned(),
            });
        }
        if value.chars().any(char::is_control) {
            return Err(EndpointIdError::ControlCharacter { part });
        }
    }
    Ok(format!("{app}:{identity}:{device}"))
}

/// One of the three parts of an endpoint id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointIdPart {
    /// The application name.
    App,
    /// The user's identity.
    Identity,
    /// The device id.
    Device,
}

impl fmt::Display for EndpointIdPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EndpointIdPart::App => "app name",
            EndpointIdPart::Identity => "identity",
            EndpointIdPart::Device => "device id",
        })
    }
}

/// A part of an endpoint id that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndpointIdError {
    /// The part is empty.
    Empty(EndpointIdPart),
    /// The app name or device id contains `:`, the separator.
    Colon {
        /// Which part.
        part: EndpointIdPart,
        /// The value as given.
        value: String,
    },
    /// The part contains a control character.
    ControlCharacter {
        /// Which part.
        part: EndpointIdPart,
    },
}

impl fmt::Display for EndpointIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndpointIdError::Empty(part) => {
                write!(
                    f,
                    "the endpoint id's {part} is empty: give a non-empty {part}"
                )
            }
            EndpointIdError::Colon { part, value } => write!(
                f,
                "the endpoint id's {part} {value:?} contains ':', the separator of \
                 app:identity:device: use another character"
            ),
            EndpointIdError::ControlCharacter { part } => {
                write!(
                    f,
                    "the endpoint id's {part} contains a control character: remove it"
                )
            }
        }
    }
}

impl std::error::Error for EndpointIdError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_length_limits() {
        assert_eq!(validate_identity(""), Err(IdentityError::Empty));
        assert_eq!(validate_identity(&"é".repeat(256)), Ok(()));
        assert_eq!(
            validate_identity(&"é".repeat(257)),
            Err(IdentityError::TooLong { chars: 257 })
        );
    }

    #[test]
    fn identity_control_characters_rejected() {
        assert_eq!(
            validate_identity("ab\ncd"),
            Err(IdentityError::ControlCharacter {
                character: '\n',
                index: 2
            })
        );
        assert_eq!(
            validate_identity("x\u{7f}"),
            Err(IdentityError::ControlCharacter {
                character: '\u{7f}',
                index: 1
            })
        );
        assert_eq!(
            validate_identity("\u{85}"),
            Err(IdentityError::ControlCharacter {
                character: '\u{85}',
                index: 0
            })
        );
    }

    #[test]
    fn identity_separators_allowed() {
        assert_eq!(validate_identity("a\u{2028}b\u{feff}c\u{a0} d"), Ok(()));
    }

    #[test]
    fn endpoint_id_parts_checked() {
        assert_eq!(
            endpoint_id("app", "a:b", "dev"),
            Ok("app:a:b:dev".to_owned())
        );
        assert_eq!(
            endpoint_id("", "a", "d"),
            Err(EndpointIdError::Empty(EndpointIdPart::App))
        );
        assert_eq!(
            endpoint_id("a", "b", "d:1"),
            Err(EndpointIdError::Colon {
                part: EndpointIdPart::Device,
                value: "d:1".into()
            })
        );
        assert_eq!(
            endpoint_id("a", "b\n", "d"),
            Err(EndpointIdError::ControlCharacter {
                part: EndpointIdPart::Identity
            })
        );
    }
}
