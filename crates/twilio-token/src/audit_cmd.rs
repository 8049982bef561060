//! `twilio-token audit`: reads the server's audit log, from its SQLite file or its PostgreSQL
//! table, filtered by identity, time and outcome.

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use serde_json::json;
use twilio_token_server::audit::{
    AuditQuery, AuditRecord, AuditTarget, Outcome, query_postgres, query_sqlite,
};
use twilio_token_server::config::{FileConfig, read_file};

use crate::error::CliError;
use crate::output::escape_controls;
use crate::time::{parse_duration, rfc3339};

/// Arguments of `twilio-token audit`.
#[derive(Debug, Args)]
pub(crate) struct AuditArgs {
    /// Configuration file to take [audit] and server.data_dir from
    ///
    /// With sink = "postgres" the records are read from the PostgreSQL table at audit.url.
    /// Without a configuration file, the log is audit.sqlite3 in the data folder.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,

    /// Data folder, replacing server.data_dir of --config [default: twilio-token-data]
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,

    /// Only records of this identity
    #[arg(long, value_name = "IDENTITY")]
    pub(crate) identity: Option<String>,

    /// Only records at or after TIME: Unix seconds, 2026-12-04T10:00:00Z, 2026-12-04, or a
    /// span before now such as 90m or 2h
    #[arg(long, value_name = "TIME")]
    pub(crate) since: Option<String>,

    /// Only records before TIME, in the forms --since accepts
    #[arg(long, value_name = "TIME")]
    pub(crate) until: Option<String>,

    /// Only records with this outcome
    #[arg(long, value_enum, value_name = "OUTCOME")]
    pub(crate) outcome: Option<OutcomeArg>,

    /// Show at most this many records, the newest ones; 0 shows all
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub(crate) limit: u64,

    /// Print the records as a JSON array instead of a table
    #[arg(long)]
    pub(crate) json: bool,
}

/// The outcomes `--outcome` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OutcomeArg {
    /// A token was issued
    Issued,
    /// The request was rejected
    Refused,
}

/// Reads the records and returns them as a table or as JSON, oldest first.
///
/// # Errors
///
/// Returns [`CliError::Input`] for an invalid time, a configuration whose log cannot be read
/// back, or a log that cannot be opened, and [`CliError::Config`] for an unreadable
/// configuration file.
pub(crate) fn run(args: &AuditArgs, now: u64) -> Result<String, CliError> {
    let query = AuditQuery {
        identity: args.identity.clone(),
        since: args
            .since
            .as_deref()
            .map(|text| parse_time("--since", text, now))
            .transpose()?,
        until: args
            .until
            .as_deref()
            .map(|text| parse_time("--until", text, now))
            .transpose()?,
        outcome: args.outcome.map(|outcome| match outcome {
            OutcomeArg::Issued => Outcome::Issued,
            OutcomeArg::Refused => Outcome::Refused,
        }),
        limit: (args.limit > 0).then_some(args.limit),
    };
    if let (Some(since), Some(until)) = (query.since, query.until)
        && since > until
    {
        return Err(CliError::Input(format!(
            "--since ({}) is after --until ({}), so no record can match: swap the two",
            rfc3339(since).unwrap_or_else(|| since.to_string()),
            rfc3339(until).unwrap_or_else(|| until.to_string())
        )));
    }

    let file = match &args.config {
        Some(path) => read_file(path)?,
        None => FileConfig::default(),
    };
    let data_dir = args.data_dir.clone().unwrap_or(file.server.data_dir);
    let target = AuditTarget::from_section(&file.audit, &data_dir)?;
    let records = match &target {
        AuditTarget::Sqlite(path, _) => query_sqlite(path, &query),
        AuditTarget::Postgres(url) => query_postgres(url, &query),
        AuditTarget::Stdout | AuditTarget::Off => {
            return Err(CliError::Input(format!(
                "the configuration's audit sink is {}, which keeps no log to read: read the \
                 server's stdout instead, or point --config at a configuration with sink = \
                 \"sqlite\" or \"postgres\"",
                target.describe()
            )));
        }
    }
    .map_err(|error| CliError::Input(format!("failed to read the audit log: {}", error.message)))?;

    if args.json {
        let mut text = serde_json::to_string_pretty(&json!(records)).unwrap_or_default();
        text.push('\n');
        return Ok(text);
    }
    Ok(table(&records))
}

/// The table's columns.
const HEADERS: [&str; 12] = [
    "TIME", "REQUEST", "OUTCOME", "STATUS", "REASON", "IDENTITY", "SUBJECT", "METHOD", "PROFILE",
    "GRANTS", "TTL", "CLIENT",
];

/// Writes one row per record, with `-` for an empty field and the `jti` left out, because it is
/// the API key SID and the time. Control characters and invisible or direction-changing format
/// characters in identities are escaped.
fn table(records: &[AuditRecord]) -> String {
    if records.is_empty() {
        return "no audit records match\n".to_owned();
    }
    // Newlines too, unlike other output, so that a value cannot start a row of its own.
    let text = |value: &Option<String>| {
        value.as_deref().map_or("-".to_owned(), |value| {
            escape_controls(value).replace('\n', "\\n")
        })
    };
    let rows: Vec<[String; 12]> = records
        .iter()
        .map(|record| {
            [
                rfc3339(record.time).unwrap_or_else(|| record.time.to_string()),
                record.request_id.clone(),
                record.outcome.as_str().to_owned(),
                record.status.to_string(),
                text(&record.reason),
                text(&record.identity),
                text(&record.subject),
                text(&record.auth_method),
                text(&record.profile),
                if record.grants.is_empty() {
                    "-".to_owned()
                } else {
                    record.grants.join(",")
                },
                record.ttl.map_or("-".to_owned(), |ttl| ttl.to_string()),
                text(&record.client_addr),
            ]
        })
        .collect();

    let mut widths = HEADERS.map(|header| header.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    write_row(&mut out, &HEADERS.map(str::to_owned), &widths);
    for row in &rows {
        write_row(&mut out, row, &widths);
    }
    out
}

fn write_row(out: &mut String, cells: &[String; 12], widths: &[usize; 12]) {
    let mut line = String::new();
    for (cell, width) in cells.iter().zip(widths) {
        let _ = write!(line, "{cell:<width$}  ");
    }
    out.push_str(line.trim_end());
    out.push('\n');
}

/// Parses a time option: Unix seconds, an RFC 3339 UTC time, a date, or a span before `now`.
fn parse_time(option: &str, text: &str, now: u64) -> Result<u64, CliError> {
    let invalid = || {
        CliError::Input(format!(
            "{option} {text:?} is not a time: write Unix seconds, a UTC time such as \
             2026-12-04T10:00:00Z, a date such as 2026-12-04, or a span before now such as 90m \
             or 2h"
        ))
    };
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(secs);
    }
    if let Some(span) = parse_duration(text) {
        return Ok(now.saturating_sub(span));
    }
    let with_time = if text.len() == 10 {
        format!("{text}T00:00:00Z")
    } else {
        text.to_owned()
    };
    parse_rfc3339(&with_time).ok_or_else(invalid)
}

/// Parses `YYYY-MM-DDTHH:MM:SSZ`, rejecting dates that do not exist.
fn parse_rfc3339(text: &str) -> Option<u64> {
    let bytes = text.as_bytes();
    let shape_ok = bytes.len() == 20
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes[10] == b'T'
        && bytes[13] == b':'
        && bytes[16] == b':'
        && bytes[19] == b'Z';
    if !shape_ok {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u64> {
        let digits = text.get(range)?;
        digits
            .bytes()
            .all(|byte| byte.is_ascii_digit())
            .then(|| digits.parse().ok())?
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if year < 1970 || !(1..=12).contains(&month) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    // A day past the month's end moves into the next month, so the round trip catches it.
    (rfc3339(secs).as_deref() == Some(text)).then_some(secs)
}

/// Converts a proleptic Gregorian date from 1970 on to days since 1970-01-01 (Howard Hinnant's
/// `days_from_civil`, in eras of 400 years starting on 0000-03-01).
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year / 400;
    let year_of_era = year - era * 400;
    let month_index = if month > 2 { month - 3 } else { month + 9 };
    let day_of_year = (153 * month_index + 2) / 5 + day.saturating_sub(1);
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    (era * 146_097 + day_of_era).saturating_sub(719_468)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_cell_cannot_start_a_row() {
        let mut record = AuditRecord::new(1_764_000_000, "c51e43a6-1", None);
        record.subject = Some("x\n2026-12-05T03:19:00Z  c51e43a6-99  issued  200".into());

        let table = table(&[record]);

        assert_eq!(table.lines().count(), 2, "{table}");
        assert!(table.contains("x\\n2026-12-05T03:19:00Z"), "{table}");
    }

    #[test]
    fn parse_time_accepts_each_form() {
        let now = 1_764_000_000;
        assert_eq!(
            parse_time("--since", "1700000000", now).expect("the time is valid"),
            1_700_000_000
        );
        assert_eq!(
            parse_time("--since", "2023-11-14T22:13:20Z", now).expect("the time is valid"),
            1_700_000_000
        );
        assert_eq!(
            parse_time("--since", "1970-01-01", now).expect("the time is valid"),
            0
        );
        assert_eq!(
            parse_time("--since", "2024-02-29", now).expect("the time is valid"),
            1_709_164_800
        );
        assert_eq!(
            parse_time("--since", "2h", now).expect("the time is valid"),
            now - 7200
        );
        assert_eq!(
            parse_time("--since", "1m30s", now).expect("the time is valid"),
            now - 90
        );
    }

    #[test]
    fn parse_time_rejects_impossible_dates() {
        for text in [
            "2023-02-29",
            "2023-13-01",
            "2023-11-14T24:00:00Z",
            "2023-11-14 22:13:20",
            "yesterday",
            "",
        ] {
            let error = parse_time("--until", text, 0).expect_err("the time is invalid");
            assert!(
                error
                    .to_string()
                    .starts_with(&format!("--until {text:?} is not a time")),
                "{error}"
            );
        }
    }
}
