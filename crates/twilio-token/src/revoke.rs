//! `twilio-token revoke`: writes and lists the deny lists the server reads, in the store that
//! the configuration's `[revocation]` section names (SQLite in the data folder by default, or
//! Redis).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Subcommand};
use serde_json::{Value, json};
use twilio_access_token::{SidKind, validate_identity, validate_sid};
use twilio_token_server::config::{ServerSection, read_file};
use twilio_token_server::metrics::Metrics;
use twilio_token_server::revocation::{
    JTI_ENTRY_SECS, RevocationError, RevocationList, RevocationSection, RevocationStore,
};

use crate::error::CliError;
use crate::output::{Outcome, warn};
use crate::time::rfc3339;

/// Longest `jti` accepted. Twilio's are an API key SID, a dash and a Unix time: 45 characters.
const MAX_JTI_CHARS: usize = 256;

/// Arguments of `twilio-token revoke`.
#[derive(Debug, Args)]
pub(crate) struct RevokeArgs {
    #[command(subcommand)]
    pub(crate) command: RevokeCommand,

    /// Configuration file to take [revocation] and server.data_dir from
    ///
    /// Without it, the deny lists are in revocations.sqlite3 in the data folder.
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,

    /// Data folder, replacing server.data_dir of --config [default: twilio-token-data]
    #[arg(long, global = true, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
}

/// The `revoke` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum RevokeCommand {
    /// Revoke an identity's tokens; without --before, every token, and no new ones
    ///
    /// The server refuses new tokens for the identity (403 identity_revoked) while the entry
    /// covers the present, and verifiers with the revocation hook reject its older tokens.
    /// Servers pick the entry up within [revocation] refresh_secs.
    Identity {
        /// The identity, exactly as in the tokens
        name: String,

        /// Revoke only tokens issued before this time: RFC 3339 (2026-12-04T22:00:00Z), Unix
        /// seconds, or `now`
        #[arg(long, value_name = "TIME")]
        before: Option<String>,
    },

    /// Revoke one token by its jti
    Jti {
        /// The token's jti, such as SK…-1764885600
        jti: String,
    },

    /// List the entries
    List {
        /// Print JSON: {"identities": [{"identity", "before", "revoked_at"}], "jtis": [{"jti",
        /// "revoked_at"}]}, times in Unix seconds, before null for every token
        #[arg(long)]
        json: bool,
    },

    /// Remove an entry, so that the identity or token is no longer revoked
    Remove {
        #[command(subcommand)]
        entry: RemoveEntry,
    },
}

/// What `revoke remove` removes.
#[derive(Debug, Subcommand)]
pub(crate) enum RemoveEntry {
    /// Remove an identity's entry
    Identity {
        /// The identity
        name: String,
    },
    /// Remove a jti entry
    Jti {
        /// The jti
        jti: String,
    },
}

/// Runs a `revoke` subcommand.
///
/// # Errors
///
/// Returns [`CliError::Input`] for an invalid name, jti or time, a configuration that cannot be
/// read, a store that cannot be opened or written, or an entry to remove that does not exist.
pub(crate) fn run(args: &RevokeArgs) -> Result<Outcome, CliError> {
    let now = unix_now()?;
    let before = match &args.command {
        RevokeCommand::Identity { name, before } => {
            validate_identity(name).map_err(|error| CliError::Input(error.to_string()))?;
            let before = before
                .as_deref()
                .map(|text| parse_time(text, now))
                .transpose()?;
            if let Some(before) = before
                && before.saturating_add(JTI_ENTRY_SECS) < now
            {
                warn(&format!(
                    "every token of {name} issued before {} has expired, so this entry revokes \
                     nothing, and the next revocation deletes it: check --before",
                    show_time(before)
                ));
            }
            before
        }
        RevokeCommand::Jti { jti } => {
            validate_jti(jti)?;
            if !is_twilio_jti(jti) {
                warn(&format!(
                    "{jti:?} is not of the form <API key SID>-<issue time>, as the jti of every \
                     token that twilio-token and the official libraries mint is: check it for \
                     a typo, since an entry that matches no token revokes nothing"
                ));
            }
            None
        }
        RevokeCommand::Remove {
            entry: RemoveEntry::Jti { jti },
        } => {
            validate_jti(jti)?;
            None
        }
        _ => None,
    };
    let (section, data_dir) = store_settings(args)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| CliError::Input(format!("failed to start the async runtime: {error}")))?;

    runtime.block_on(async {
        let store = RevocationStore::open(&section, &data_dir, Arc::new(Metrics::new()))?;
        match &args.command {
            RevokeCommand::Identity { name, .. } => {
                store
                    .revoke_identity(name, before, now)
                    .await
                    .map_err(store_error)?;
                Ok(Outcome::success(match before {
                    None => format!(
                        "revoked every token of {name}; no new token is issued for it until \
                         `twilio-token revoke remove identity {name}`\n"
                    ),
                    Some(before) => format!(
                        "revoked the tokens of {name} issued before {} ({before})\n",
                        show_time(before)
                    ),
                }))
            }
            RevokeCommand::Jti { jti } => {
                store.revoke_jti(jti, now).await.map_err(store_error)?;
                Ok(Outcome::success(format!("revoked the token {jti}\n")))
            }
            RevokeCommand::List { json } => {
                let list = store.load().await.map_err(store_error)?;
                Ok(Outcome::success(if *json {
                    list_json(&list)
                } else {
                    list_text(&list)
                }))
            }
            RevokeCommand::Remove { entry } => {
                let (removed, what) = match entry {
                    RemoveEntry::Identity { name } => (
                        store.remove_identity(name).await.map_err(store_error)?,
                        format!("identity {name}"),
                    ),
                    RemoveEntry::Jti { jti } => (
                        store.remove_jti(jti).await.map_err(store_error)?,
                        format!("jti {jti}"),
                    ),
                };
                if removed {
                    Ok(Outcome::success(format!("removed the entry of {what}\n")))
                } else {
                    Err(CliError::Input(format!(
                        "there is no entry for {what}: see `twilio-token revoke list`"
                    )))
                }
            }
        }
    })
}

/// Returns `[revocation]` and the data folder from the flags and the configuration file.
fn store_settings(args: &RevokeArgs) -> Result<(RevocationSection, PathBuf), CliError> {
    let (section, data_dir) = match &args.config {
        Some(path) => {
            let file = read_file(path).map_err(|error| CliError::Input(error.to_string()))?;
            let section = match file.revocation {
                Some(section) => section,
                None => {
                    warn(&format!(
                        "{} has no [revocation] section, so the server reads no deny list: add \
                         [revocation] to the file",
                        path.display()
                    ));
                    RevocationSection::default()
                }
            };
            (section, file.server.data_dir)
        }
        None => (
            RevocationSection::default(),
            ServerSection::default().data_dir,
        ),
    };
    Ok((section, args.data_dir.clone().unwrap_or(data_dir)))
}

/// Returns true when `jti` is an API key SID, a dash and a Unix time in seconds.
fn is_twilio_jti(jti: &str) -> bool {
    jti.split_once('-').is_some_and(|(sid, seconds)| {
        validate_sid(SidKind::ApiKey, sid).is_ok()
            && !seconds.is_empty()
            && seconds.bytes().all(|byte| byte.is_ascii_digit())
    })
}

fn validate_jti(jti: &str) -> Result<(), CliError> {
    let valid = !jti.is_empty()
        && jti.chars().count() <= MAX_JTI_CHARS
        && !jti.chars().any(|c| c.is_control() || c.is_whitespace());
    if valid {
        Ok(())
    } else {
        Err(CliError::Input(format!(
            "{jti:?} is not a jti: give the token's jti claim, 1 to {MAX_JTI_CHARS} characters \
             without spaces, such as SK0123456789abcdef0123456789abcdef-1764885600"
        )))
    }
}

fn unix_now() -> Result<u64, CliError> {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .map_err(|_| CliError::Input("the system clock is set before 1970".into()))
}

/// Parses `now`, Unix seconds, or an RFC 3339 UTC time such as `2026-12-04T22:00:00Z`.
fn parse_time(text: &str, now: u64) -> Result<u64, CliError> {
    if text == "now" {
        return Ok(now);
    }
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(secs);
    }
    parse_rfc3339(text).ok_or_else(|| {
        CliError::Input(format!(
            "--before {text:?} is not a time: write now, Unix seconds, or a UTC time such as \
             2026-12-04T22:00:00Z"
        ))
    })
}

fn parse_rfc3339(text: &str) -> Option<u64> {
    let text = text.strip_suffix('Z').or_else(|| text.strip_suffix('z'))?;
    let (date, time) = text.split_once(['T', 't'])?;
    let mut date = date.splitn(3, '-');
    let year: i64 = date.next()?.parse().ok()?;
    let month: u32 = date.next()?.parse().ok()?;
    let day: u32 = date.next()?.parse().ok()?;
    let mut time = time.splitn(3, ':');
    let hour: u64 = time.next()?.parse().ok()?;
    let minute: u64 = time.next()?.parse().ok()?;
    let second: u64 = time.next()?.parse().ok()?;
    if !(1970..=9999).contains(&year)
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let secs = u64::try_from(days).ok()? * 86_400 + hour * 3600 + minute * 60 + second;
    // A day past the end of its month (2026-02-30) does not write back the same.
    (rfc3339(secs).as_deref() == Some(&format!("{}Z", text.to_ascii_uppercase())[..]))
        .then_some(secs)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn show_time(secs: u64) -> String {
    rfc3339(secs).unwrap_or_else(|| secs.to_string())
}

fn list_text(list: &RevocationList) -> String {
    if list.identities.is_empty() && list.jtis.is_empty() {
        return "no revocations\n".to_owned();
    }
    let mut identities: Vec<_> = list.identities.iter().collect();
    identities.sort_by(|a, b| a.0.cmp(b.0));
    let mut jtis: Vec<_> = list.jtis.iter().collect();
    jtis.sort_by(|a, b| a.0.cmp(b.0));

    let mut text = String::new();
    for (identity, entry) in identities {
        let scope = match entry.before {
            None => "every token".to_owned(),
            Some(before) => format!("tokens issued before {}", show_time(before)),
        };
        let _ = writeln!(
            text,
            "identity {identity}: {scope}, revoked {}",
            show_time(entry.revoked_at)
        );
    }
    for (jti, revoked_at) in jtis {
        let _ = writeln!(text, "jti {jti}: revoked {}", show_time(*revoked_at));
    }
    text
}

fn list_json(list: &RevocationList) -> String {
    let mut identities: Vec<Value> = list
        .identities
        .iter()
        .map(|(identity, entry)| {
            json!({"identity": identity, "before": entry.before, "revoked_at": entry.revoked_at})
        })
        .collect();
    identities.sort_by(|a, b| a["identity"].as_str().cmp(&b["identity"].as_str()));
    let mut jtis: Vec<Value> = list
        .jtis
        .iter()
        .map(|(jti, revoked_at)| json!({"jti": jti, "revoked_at": revoked_at}))
        .collect();
    jtis.sort_by(|a, b| a["jti"].as_str().cmp(&b["jti"].as_str()));
    let mut text = json!({"identities": identities, "jtis": jtis}).to_string();
    text.push('\n');
    text
}

fn store_error(error: RevocationError) -> CliError {
    let mut message = error.to_string();
    if let Some(cause) = std::error::Error::source(&error) {
        let _ = write!(message, ": {cause}");
    }
    CliError::Input(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times_parse() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20Z"), Some(1_700_000_000));
        assert_eq!(parse_rfc3339("2026-02-30T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("2026-01-01T00:00:00"), None);
        assert_eq!(parse_rfc3339("2026-01-01T24:00:00Z"), None);
    }

    #[test]
    fn time_forms_parse() {
        assert_eq!(parse_time("now", 42).ok(), Some(42));
        assert_eq!(parse_time("1700000000", 42).ok(), Some(1_700_000_000));
        let error = parse_time("yesterday", 42).expect_err("not a time");
        assert_eq!(
            error.to_string(),
            "--before \"yesterday\" is not a time: write now, Unix seconds, or a UTC time such \
             as 2026-12-04T22:00:00Z"
        );
    }
}
