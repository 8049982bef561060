//! Twilio SIDs: a two-letter prefix naming the resource type and 32 lowercase hex digits.

use std::fmt;
use std::str::FromStr;

/// The resource types whose SIDs appear in Access Tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SidKind {
    /// Account (`AC…`), the token's `sub`.
    Account,
    /// API key (`SK…`), the token's `iss`.
    ApiKey,
    /// Chat, Conversations or Sync service (`IS…`).
    Service,
    /// Push credential (`CR…`).
    Credential,
    /// Chat deployment role (`RL…`).
    Role,
    /// TwiML application (`AP…`), the Voice outgoing application.
    Application,
    /// TaskRouter workspace (`WS…`).
    Workspace,
    /// TaskRouter worker (`WK…`).
    Worker,
}

impl SidKind {
    const ALL: [SidKind; 8] = [
        SidKind::Account,
        SidKind::ApiKey,
        SidKind::Service,
        SidKind::Credential,
        SidKind::Role,
        SidKind::Application,
        SidKind::Workspace,
        SidKind::Worker,
    ];

    /// Returns the two-letter prefix, such as `"AC"`.
    pub const fn prefix(self) -> &'static str {
        match self {
            SidKind::Account => "AC",
            SidKind::ApiKey => "SK",
            SidKind::Service => "IS",
            SidKind::Credential => "CR",
            SidKind::Role => "RL",
            SidKind::Application => "AP",
            SidKind::Workspace => "WS",
            SidKind::Worker => "WK",
        }
    }

    /// Returns the name used in messages, such as `"account SID"`.
    pub const fn name(self) -> &'static str {
        match self {
            SidKind::Account => "account SID",
            SidKind::ApiKey => "API key SID",
            SidKind::Service => "service SID",
            SidKind::Credential => "push credential SID",
            SidKind::Role => "role SID",
            SidKind::Application => "TwiML application SID",
            SidKind::Workspace => "TaskRouter workspace SID",
            SidKind::Worker => "TaskRouter worker SID",
        }
    }

    /// Returns the kind whose prefix starts `value`, if any.
    pub fn from_prefix(value: &str) -> Option<SidKind> {
        let prefix = value.get(..2)?;
        Self::ALL.into_iter().find(|kind| kind.prefix() == prefix)
    }
}

impl fmt::Display for SidKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The problem with a SID.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SidProblem {
    /// The value is empty.
    Empty,
    /// The value starts or ends with whitespace, usually from copying it.
    Whitespace,
    /// The value starts with the prefix of another known SID type.
    OtherKind(SidKind),
    /// The value does not start with the expected prefix.
    WrongPrefix,
    /// The value has the right prefix but not 32 characters after it.
    WrongLength {
        /// Characters found after the prefix.
        found: usize,
    },
    /// The 32 characters after the prefix are hex digits, but some are uppercase.
    UppercaseHex,
    /// The characters after the prefix are not all hex digits.
    NotHex,
}

/// A SID that failed validation: which kind was expected, the value, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SidError {
    /// The kind of SID that was expected.
    pub expected: SidKind,
    /// The value as given.
    pub value: String,
    /// The problem with it.
    pub problem: SidProblem,
}

impl fmt::Display for SidError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let expected = self.expected;
        let prefix = expected.prefix();
        let value = &self.value;
        match &self.problem {
            SidProblem::Empty => write!(
                f,
                "the {expected} is empty: set it to {prefix} followed by 32 lowercase hex digits"
            ),
            SidProblem::Whitespace => write!(
                f,
                "the {expected} {value:?} has whitespace around it: remove the spaces or newlines"
            ),
            SidProblem::OtherKind(SidKind::ApiKey) if expected == SidKind::Account => write!(
                f,
                "the account SID {value:?} looks like an API key SID: the account SID starts with \
                 AC and is shown on the Twilio Console dashboard"
            ),
            SidProblem::OtherKind(SidKind::Account) if expected == SidKind::ApiKey => write!(
                f,
                "the API key SID {value:?} looks like an account SID: Access Tokens are signed \
                 with an API key, so create one in the Twilio Console (Account > API keys) and \
                 use its SID, which starts with SK"
            ),
            SidProblem::OtherKind(found) => write!(
                f,
                "the {expected} {value:?} looks like a {found} ({}…): expected a SID starting \
                 with {prefix}",
                found.prefix()
            ),
            SidProblem::WrongPrefix => {
                write!(
                    f,
                    "the {expected} {value:?} does not start with {prefix}: expected {prefix} \
                     followed by 32 lowercase hex digits"
                )
            }
            SidProblem::WrongLength { found } => write!(
                f,
                "the {expected} {value:?} has {found} characters after {prefix}: expected 32 hex \
                 digits"
            ),
            SidProblem::UppercaseHex => write!(
                f,
                "the {expected} {value:?} has uppercase hex digits: Twilio SIDs use lowercase \
                 (0-9, a-f)"
            ),
            SidProblem::NotHex => write!(
                f,
                "the {expected} {value:?} has characters that are not hex digits after {prefix}: \
                 expected 32 of 0-9 and a-f"
            ),
        }
    }
}

impl std::error::Error for SidError {}

/// Checks that `value` is a SID of `expected` kind.
///
/// # Errors
///
/// Returns a [`SidError`] naming the problem when `value` is not the prefix followed by 32
/// lowercase hex digits.
pub fn validate_sid(expected: SidKind, value: &str) -> Result<(), SidError> {
    let problem = sid_problem(expected, value);
    match problem {
        None => Ok(()),
        Some(problem) => Err(SidError {
            expected,
            value: value.to_owned(),
            problem,
        }),
    }
}

fn sid_problem(expected: SidKind, value: &str) -> Option<SidProblem> {
    if value.is_empty() {
        return Some(SidProblem::Empty);
    }
    if value.trim() != value {
        return Some(SidProblem::Whitespace);
    }
    let Some(rest) = value.strip_prefix(expected.prefix()) else {
        return Some(match SidKind::from_prefix(value) {
            Some(other) => SidProblem::OtherKind(other),
            None => SidProblem::WrongPrefix,
        });
    };
    if rest.chars().count() != 32 {
        return Some(SidProblem::WrongLength {
            found: rest.chars().count(),
        });
    }
    if !rest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Some(SidProblem::NotHex);
    }
    if rest.bytes().any(|b| b.is_ascii_uppercase()) {
        return Some(SidProblem::UppercaseHex);
    }
    None
}

macro_rules! sid_type {
    ($(#[$doc:meta])* $name:ident, $kind:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// The kind of SID this type holds.
            pub const KIND: SidKind = $kind;

            /// Parses and validates a SID.
            ///
            /// # Errors
            ///
            /// Returns a [`SidError`] when the value is not the expected prefix followed by
            /// 32 lowercase hex digits.
            pub fn parse(value: &str) -> Result<Self, SidError> {
                validate_sid(Self::KIND, value)?;
                Ok(Self(value.to_owned()))
            }

            /// Returns the SID as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = SidError;

            fn from_str(value: &str) -> Result<Self, SidError> {
                Self::parse(value)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl From<$name> for String {
            fn from(sid: $name) -> String {
                sid.0
            }
        }
    };
}

sid_type!(
    /// An account SID (`AC` + 32 lowercase hex digits), written as the token's `sub`.
    AccountSid,
    SidKind::Account
);
sid_type!(
    /// An API key SID (`SK` + 32 lowercase hex digits), written as the token's `iss`.
    ApiKeySid,
    SidKind::ApiKey
);
sid_type!(
    /// A Chat, Conversations or Sync service SID (`IS` + 32 lowercase hex digits).
    ServiceSid,
    SidKind::Service
);
sid_type!(
    /// A push credential SID (`CR` + 32 lowercase hex digits).
    CredentialSid,
    SidKind::Credential
);
sid_type!(
    /// A Chat deployment role SID (`RL` + 32 lowercase hex digits).
    RoleSid,
    SidKind::Role
);
sid_type!(
    /// A TwiML application SID (`AP` + 32 lowercase hex digits).
    ApplicationSid,
    SidKind::Application
);
sid_type!(
    /// A TaskRouter workspace SID (`WS` + 32 lowercase hex digits).
    WorkspaceSid,
    SidKind::Workspace
);
sid_type!(
    /// A TaskRouter worker SID (`WK` + 32 lowercase hex digits).
    WorkerSid,
    SidKind::Worker
);

/// The name Sync accepts in place of a service SID for the account's default service.
pub const DEFAULT_SYNC_SERVICE: &str = "default";

/// Checks a Sync service SID, which may also be `default`.
///
/// # Errors
///
/// Returns a [`SidError`] when the value is neither `default` nor a valid `IS` SID.
pub fn validate_sync_service_sid(value: &str) -> Result<(), SidError> {
    if value == DEFAULT_SYNC_SERVICE {
        return Ok(());
    }
    validate_sid(SidKind::Service, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";

    fn problem(kind: SidKind, value: &str) -> SidProblem {
        validate_sid(kind, value).expect_err(value).problem
    }

    #[test]
    fn valid_sids_accepted() {
        assert_eq!(
            AccountSid::parse(ACCOUNT).map(|s| s.to_string()),
            Ok(ACCOUNT.to_owned())
        );
        assert!(validate_sid(SidKind::Worker, "WK00000000000000000000000000000008").is_ok());
    }

    #[test]
    fn sid_problems_detected() {
        assert_eq!(problem(SidKind::Account, ""), SidProblem::Empty);
        assert_eq!(
            problem(SidKind::Account, &format!("{ACCOUNT}\n")),
            SidProblem::Whitespace
        );
        assert_eq!(
            problem(SidKind::Account, "SKfedcba9876543210fedcba9876543210"),
            SidProblem::OtherKind(SidKind::ApiKey)
        );
        assert_eq!(problem(SidKind::Account, "XY0123"), SidProblem::WrongPrefix);
        assert_eq!(
            problem(SidKind::Account, "AC0123"),
            SidProblem::WrongLength { found: 4 }
        );
        assert_eq!(
            problem(SidKind::Account, "AC0123456789ABCDEF0123456789abcdef"),
            SidProblem::UppercaseHex
        );
        assert_eq!(
            problem(SidKind::Account, "AC0123456789abcdef0123456789abcdeg"),
            SidProblem::NotHex
        );
        assert_eq!(problem(SidKind::Account, "A"), SidProblem::WrongPrefix);
        assert_eq!(
            problem(SidKind::Account, "AC-not-a-real-sid"),
            SidProblem::WrongLength { found: 15 }
        );
    }

    #[test]
    fn multibyte_value_has_no_panic() {
        assert_eq!(problem(SidKind::Account, "é"), SidProblem::WrongPrefix);
        assert_eq!(
            problem(SidKind::Account, "AC€"),
            SidProblem::WrongLength { found: 1 }
        );
    }

    #[test]
    fn sync_service_accepts_default() {
        assert!(validate_sync_service_sid("default").is_ok());
        assert!(validate_sync_service_sid("Default").is_err());
    }
}
