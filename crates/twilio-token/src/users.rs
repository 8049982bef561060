//! `twilio-token users`: adds, removes, lists and changes the passwords of the server's built-in
//! users, in the same SQLite file the server reads.
//!
//! Passwords come from a prompt without echo when stdin is a terminal, and otherwise from the
//! first line of stdin, never from an argument.

use std::fmt::Write as _;
use std::io::{self, BufRead as _, IsTerminal as _, Read as _};
use std::path::PathBuf;

use clap::{Args, Subcommand};
use twilio_token_server::auth::users::store::{validate_name, validate_password};
use twilio_token_server::auth::users::{StoreError, UserInfo, UserStore, database_path};
use twilio_token_server::config::{ServerSection, UsersSection, read_file};
use zeroize::Zeroizing;

use crate::error::CliError;
use crate::output::Outcome;
use crate::time::rfc3339;

/// The maximum number of bytes read from stdin for a password line: 1024 characters of up to 4
/// bytes each, plus a newline, so a longer line is reported as too long instead of being cut.
const MAX_PASSWORD_LINE_BYTES: u64 = 4 * 1024 + 2;

/// Arguments of `twilio-token users`.
#[derive(Debug, Args)]
pub(crate) struct UsersArgs {
    #[command(subcommand)]
    pub(crate) command: UsersCommand,

    /// Configuration file to take server.data_dir and auth.users.database from
    ///
    /// Without it, the database is users.sqlite3 in the data folder.
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,

    /// Data folder, replacing server.data_dir of --config [default: twilio-token-data]
    ///
    /// A relative path is relative to the current directory, as it is for the server.
    #[arg(long, global = true, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
}

/// The `users` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum UsersCommand {
    /// Add a user; the password is read from a prompt (asked twice) or from stdin
    ///
    /// The name is the identity tokens are minted for: 1 to 64 ASCII letters, digits and ._@-,
    /// compared without regard to case. The password has 10 to 1024 characters.
    Add {
        /// The user name
        name: String,

        /// A group for policy rules (repeatable), named like a user
        #[arg(long = "group", value_name = "GROUP")]
        groups: Vec<String>,
    },

    /// Remove a user and end all of their sessions
    Remove {
        /// The user name
        name: String,
    },

    /// List the users with their groups and creation times
    List {
        /// Print a JSON array of {"name", "groups", "created_at", "updated_at"}, times in Unix
        /// seconds
        #[arg(long)]
        json: bool,
    },

    /// Change a user's password and end all of their sessions
    ///
    /// The password is read from a prompt (asked twice) or from stdin.
    Passwd {
        /// The user name
        name: String,
    },
}

/// Runs a `users` subcommand.
///
/// # Errors
///
/// Returns [`CliError::Input`] for an unreadable configuration, an invalid name or password, a
/// missing or existing user, or a database that cannot be opened.
pub(crate) fn run(args: &UsersArgs) -> Result<Outcome, CliError> {
    if let UsersCommand::Add { name, .. } | UsersCommand::Passwd { name } = &args.command {
        validate_name(name).map_err(store_error)?;
    }
    let path = database_file(args)?;
    // Only `add` creates the database: the other commands would find no users in a new one.
    if !path.exists() {
        match &args.command {
            UsersCommand::Add { .. } => {}
            UsersCommand::List { json } => return Ok(list_outcome(&[], *json)),
            UsersCommand::Remove { name } | UsersCommand::Passwd { name } => {
                return Err(CliError::Input(format!(
                    "no user is named {name:?}: there is no user database at {} yet; add users \
                     with `twilio-token users add NAME`",
                    path.display()
                )));
            }
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| CliError::Input(format!("failed to start the async runtime: {error}")))?;

    runtime.block_on(async {
        let store = UserStore::open(&path).map_err(store_error)?;
        let password = match &args.command {
            UsersCommand::Add { name, .. } | UsersCommand::Passwd { name } => {
                check_before_prompt(&store, &args.command, name).await?;
                Some(read_new_password(name)?)
            }
            UsersCommand::Remove { .. } | UsersCommand::List { .. } => None,
        };
        let password = password.as_deref().map(String::as_str).unwrap_or_default();

        match &args.command {
            UsersCommand::Add { name, groups } => {
                store
                    .add_user(name, password, groups)
                    .await
                    .map_err(store_error)?;
                Ok(Outcome::success(format!("added user {name}\n")))
            }
            UsersCommand::Remove { name } => {
                store.remove_user(name).await.map_err(store_error)?;
                Ok(Outcome::success(format!(
                    "removed user {name} and ended their sessions\n"
                )))
            }
            UsersCommand::List { json } => {
                let users = store.list_users().await.map_err(store_error)?;
                Ok(list_outcome(&users, *json))
            }
            UsersCommand::Passwd { name } => {
                store
                    .set_password(name, password)
                    .await
                    .map_err(store_error)?;
                Ok(Outcome::success(format!(
                    "changed the password of {name} and ended their sessions\n"
                )))
            }
        }
    })
}

/// Fails before the password is asked for when `add` names an existing user or `passwd` a
/// missing one. The store checks again when it writes.
async fn check_before_prompt(
    store: &UserStore,
    command: &UsersCommand,
    name: &str,
) -> Result<(), CliError> {
    let exists = store.user_exists(name).await.map_err(store_error)?;
    match command {
        UsersCommand::Add { .. } if exists => Err(store_error(StoreError::UserExists {
            name: name.to_owned(),
        })),
        UsersCommand::Passwd { .. } if !exists => Err(store_error(StoreError::UserNotFound {
            name: name.to_owned(),
        })),
        _ => Ok(()),
    }
}

/// Returns the database path from the flags and the configuration file.
fn database_file(args: &UsersArgs) -> Result<PathBuf, CliError> {
    let (data_dir, section) = match &args.config {
        Some(path) => {
            let file = read_file(path).map_err(|error| CliError::Input(error.to_string()))?;
            (file.server.data_dir, file.auth.users.unwrap_or_default())
        }
        None => (ServerSection::default().data_dir, UsersSection::default()),
    };
    let data_dir = args.data_dir.clone().unwrap_or(data_dir);
    Ok(database_path(&data_dir, &section))
}

/// Reads a new password: twice from a prompt on a terminal, or once from stdin's first line.
fn read_new_password(name: &str) -> Result<Zeroizing<String>, CliError> {
    let password = if io::stdin().is_terminal() {
        let first = prompt(&format!("New password for {name}: "))?;
        validate_password(&first).map_err(store_error)?;
        let second = prompt("Repeat the password: ")?;
        if first != second {
            return Err(CliError::Input(
                "the two passwords differ: run the command again".to_owned(),
            ));
        }
        first
    } else {
        read_password_line()?
    };
    validate_password(&password).map_err(store_error)?;
    Ok(password)
}

fn prompt(text: &str) -> Result<Zeroizing<String>, CliError> {
    rpassword::prompt_password(text)
        .map(Zeroizing::new)
        .map_err(|error| CliError::Read {
            what: "the password from the terminal".to_owned(),
            source: error,
        })
}

/// Reads the first line of stdin and removes one trailing `\n` or `\r\n`.
fn read_password_line() -> Result<Zeroizing<String>, CliError> {
    // Room for the longest line up front, so growing the buffer leaves no copy behind.
    let mut line = Zeroizing::new(String::with_capacity(MAX_PASSWORD_LINE_BYTES as usize));
    let read = io::stdin()
        .lock()
        .take(MAX_PASSWORD_LINE_BYTES)
        .read_line(&mut line);
    match read {
        Ok(0) => {
            return Err(CliError::Input(
                "no password on stdin: type it at a terminal, or pipe it in as the first line"
                    .to_owned(),
            ));
        }
        Ok(_) => {}
        Err(error) => {
            return Err(CliError::Read {
                what: "the password from stdin".to_owned(),
                source: error,
            });
        }
    }
    if line.ends_with('\n') {
        line.pop();
        if line.ends_with('\r') {
            line.pop();
        }
    }
    Ok(line)
}

fn list_outcome(users: &[UserInfo], json: bool) -> Outcome {
    if json {
        let users: Vec<serde_json::Value> = users
            .iter()
            .map(|user| {
                serde_json::json!({
                    "name": user.name,
                    "groups": user.groups,
                    "created_at": user.created_at,
                    "updated_at": user.updated_at,
                })
            })
            .collect();
        return Outcome::success(format!("{}\n", serde_json::Value::Array(users)));
    }
    if users.is_empty() {
        return Outcome {
            stderr: "no users: add one with `twilio-token users add NAME`\n".to_owned(),
            ..Outcome::default()
        };
    }

    let width = users
        .iter()
        .map(|user| user.name.len())
        .max()
        .unwrap_or(0)
        .max("NAME".len());
    let mut text = format!("{:width$}  CREATED               GROUPS\n", "NAME");
    for user in users {
        let created = rfc3339(user.created_at).unwrap_or_else(|| user.created_at.to_string());
        let groups = if user.groups.is_empty() {
            "-".to_owned()
        } else {
            user.groups.join(",")
        };
        let _ = writeln!(text, "{:width$}  {created:20}  {groups}", user.name);
    }
    Outcome::success(text)
}

/// Turns a store error into a one-line message with its cause and, where there is one, the
/// command that fixes it.
fn store_error(error: StoreError) -> CliError {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        let _ = write!(message, ": {cause}");
        source = cause.source();
    }
    match &error {
        StoreError::UserExists { name } => {
            let _ = write!(
                message,
                ": change the password with `twilio-token users passwd {name}`"
            );
        }
        StoreError::UserNotFound { .. } => {
            message.push_str(": list the users with `twilio-token users list`");
        }
        _ => {}
    }
    CliError::Input(message)
}
