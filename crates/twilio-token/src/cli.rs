//! Command-line arguments. The help text is the doc comments below.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};

/// Expands to the exit status table of `mint` and `decode`, which never reject a token. It is a
/// literal so that `concat!` can append it to other help.
macro_rules! exit_status {
    () => {
        "\
Exit status:
  0  success
  2  usage or input error: a missing or invalid flag, credential, file or token"
    };
}

/// Expands to the exit status table of `verify` and `doctor`.
macro_rules! check_exit_status {
    () => {
        "\
Exit status:
  0  no error was found in the token
  1  the token was rejected (a malformed token counts as rejected)
  2  usage or input error: a missing or invalid flag, credential or file"
    };
}

/// The exit status table of the whole program.
const PROGRAM_EXIT_STATUS: &str = "\
Exit status:
  0  success (for verify and doctor: no error was found in the token)
  1  verify or doctor rejected the token (a malformed token counts as rejected)
  2  usage or input error: a missing or invalid flag, credential or file, or a token that
     decode cannot read";

/// Expands to the environment variables that name the API key and its secret.
macro_rules! key_environment {
    () => {
        concat!(
            "  TWILIO_ACCOUNT_SID                        account SID, when --account-sid is not given\n",
            "  TWILIO_API_KEY or TWILIO_API_KEY_SID      API key SID, when --api-key-sid is not given\n",
            "  TWILIO_API_SECRET or TWILIO_API_KEY_SECRET\n",
            "                                            API secret, when --api-secret-file is not given\n",
        )
    };
}

const EXIT_STATUS: &str = exit_status!();

const MINT_AFTER_HELP: &str = concat!(
    "Environment:\n",
    key_environment!(),
    "  TWILIO_REGION                             region, when --region is not given
An empty variable counts as unset. Where two names are listed, setting both to different values
is an error. TWILIO_AUTH_TOKEN is not used, because Access Tokens are signed with an API key and
its secret.

",
    exit_status!()
);

const CHECK_AFTER_HELP: &str = concat!(
    "Environment:\n",
    key_environment!(),
    "\
An empty variable counts as unset. Where two names are listed, setting both to different values
is an error. TWILIO_AUTH_TOKEN is not used, because Access Tokens are signed with an API key and
its secret.

Key file (--key-file), one API key per line:
  # production
  SKfedcba9876543210fedcba9876543210=FAKEsecretDoNotUse0123456789abcd
  SK00000000000000000000000000000002 FAKEsecondSecretDoNotUse01234567

",
    check_exit_status!()
);

/// Expands to the environment variables that fill in the server's profile named `default`.
macro_rules! server_environment {
    () => {
        "\
Environment:
  TWILIO_ACCOUNT_SID, TWILIO_API_KEY or TWILIO_API_KEY_SID, TWILIO_API_SECRET or
  TWILIO_API_KEY_SECRET, TWILIO_CHAT_SERVICE_SID or TWILIO_CONVERSATIONS_SERVICE_SID,
  TWILIO_SYNC_SERVICE_SID, TWILIO_TWIML_APP_SID, TWILIO_PUSH_CREDENTIAL_SID,
  TWILIO_TASKROUTER_WORKSPACE_SID, TWILIO_REGION
      fill in the profile named default, creating it when needed. They win over the file,
      and an empty variable counts as unset.
"
    };
}

const SERVE_AFTER_HELP: &str = concat!(
    server_environment!(),
    "  RUST_LOG
      log filter, such as debug or twilio_token_server=debug [default: info]

Stopping:
  SIGINT or SIGTERM stops accepting connections and gives requests in flight
  server.shutdown_grace_secs (default 30) to finish. A second signal, or the end of that
  time, stops the server at once.

Exit status:
  0  stopped by SIGINT or SIGTERM
  2  invalid configuration, a non-loopback address that needs --allow-insecure, or an
     address that could not be bound"
);

const CONFIG_CHECK_AFTER_HELP: &str = concat!(
    server_environment!(),
    "
Exit status:
  0  the configuration is valid
  2  the configuration is invalid, or a file could not be read"
);

/// Mint, verify and diagnose Twilio Access Tokens, and run a server that issues them
///
/// Access Tokens are the JWTs that Twilio's client SDKs (Conversations, Chat, Video, Voice, Sync,
/// TaskRouter and Live) use to connect. They are signed with an API key and its secret.
#[derive(Debug, Parser)]
#[command(name = "twilio-token", version, after_long_help = PROGRAM_EXIT_STATUS)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Mint an Access Token and print it
    ///
    /// The token is printed alone on one line, or with its claims by --json. The API secret comes
    /// only from the environment or --api-secret-file, so it never appears in the process list.
    #[command(after_long_help = MINT_AFTER_HELP)]
    Mint(Box<MintArgs>),

    /// Check a token's signature and claims as Twilio does, and print a summary
    ///
    /// A valid token gets a one-line summary on stdout and exit status 0. A rejected token,
    /// malformed ones included, gets `invalid: <reason> (Twilio error <code>)` on stderr and exit
    /// status 1. The checks run in a fixed order and the first failure is reported: use doctor
    /// to list every problem.
    #[command(after_long_help = CHECK_AFTER_HELP)]
    Verify(Box<VerifyArgs>),

    /// List every problem in a token, with the Twilio error code and a fix for each
    ///
    /// Prints the findings by severity (errors, warnings, notes), the checks that could not be
    /// made, and a verdict. Without an API secret the signature is not checked, and without an
    /// account SID the account is not: the report lists the skipped checks, and the verdict is "not
    /// verified".
    /// Exit status 1 means at least one finding is an error.
    #[command(after_long_help = CHECK_AFTER_HELP)]
    Doctor(Box<DoctorArgs>),

    /// Print a token's header and claims without checking its signature
    ///
    /// The signature is NOT checked: nothing shown proves who made the token or that it was not
    /// changed.
    #[command(after_long_help = EXIT_STATUS)]
    Decode(DecodeArgs),

    /// Run the token server until SIGINT or SIGTERM
    ///
    /// Reads the configuration file, if any, and the Twilio environment variables, then serves
    /// POST /token, GET /token, /healthz, /readyz and /openapi.json. Logs go to stderr. Every
    /// invalid configuration value stops start-up with its key and the fix.
    #[command(after_long_help = SERVE_AFTER_HELP)]
    Serve(ServeArgs),

    /// Check a server configuration
    #[command(subcommand)]
    Config(ConfigCommand),

    /// Generate and hash the API keys that backends send to the server
    #[command(subcommand)]
    ApiKey(ApiKeyCommand),

    /// Manage the built-in users that sign in at POST /login
    ///
    /// Changes the server's user database directly, so it works while the server runs.
    /// Passwords are read from a prompt or stdin, never from an argument.
    Users(crate::users::UsersArgs),

    /// Show the server's audit log: every token issued and every request rejected
    ///
    /// Reads the SQLite file in the data folder, or the PostgreSQL table that the
    /// configuration's [audit] section names, and prints the newest records (oldest first)
    /// as a table or as JSON. Records never contain tokens or secrets.
    #[command(after_long_help = AUDIT_AFTER_HELP)]
    Audit(crate::audit_cmd::AuditArgs),
    /// Revoke tokens by identity or jti, and list or remove revocations
    ///
    /// Writes the deny lists of the configuration's [revocation] store, which running servers
    /// read within refresh_secs.
    Revoke(crate::revoke::RevokeArgs),
}

const AUDIT_AFTER_HELP: &str = "\
Examples:
  twilio-token audit --identity alice --since 2h
  twilio-token audit --config server.toml --outcome refused --json

Exit status:
  0  success, including when no record matches
  2  usage or input error: an invalid option or time, an unreadable configuration, or a log
     that cannot be opened";

#[derive(Debug, Args)]
pub(crate) struct MintArgs {
    /// Account SID (AC…), written as sub [env: TWILIO_ACCOUNT_SID]
    #[arg(long, value_name = "SID", help_heading = "Credentials")]
    pub(crate) account_sid: Option<String>,

    /// API key SID (SK…), written as iss [env: TWILIO_API_KEY or TWILIO_API_KEY_SID]
    #[arg(long, value_name = "SID", help_heading = "Credentials")]
    pub(crate) api_key_sid: Option<String>,

    /// Read the API secret from a file, or from stdin with -
    ///
    /// Exactly one trailing newline (\n or \r\n) is removed. Without this flag the secret comes
    /// from TWILIO_API_SECRET or TWILIO_API_KEY_SECRET. No flag takes the secret itself, so it
    /// never appears in the process list.
    #[arg(long, value_name = "PATH|-", help_heading = "Credentials")]
    pub(crate) api_secret_file: Option<OsString>,

    /// User identity, written as grants.identity (required)
    ///
    /// 1 to 256 characters without control characters. Voice accepts only letters, digits and
    /// underscores.
    #[arg(long, value_name = "IDENTITY", help_heading = "Token")]
    pub(crate) identity: Option<String>,

    /// Lifetime: seconds or a duration such as 90m, 1h or 1h30m [default: 3600]
    ///
    /// Whole seconds from 1 to 86400 (24 hours, the maximum Twilio accepts). A duration uses the
    /// units d, h, m and s, largest first.
    #[arg(
        long,
        value_name = "DURATION",
        allow_negative_numbers = true,
        help_heading = "Token"
    )]
    pub(crate) ttl: Option<String>,

    /// Not-before time (nbf) in Unix seconds [default: no nbf claim]
    #[arg(long, value_name = "UNIX_SECONDS", help_heading = "Token")]
    pub(crate) nbf: Option<u64>,

    /// Issue time in Unix seconds, for reproducible tokens [default: the system clock]
    #[arg(long, value_name = "UNIX_SECONDS", help_heading = "Token")]
    pub(crate) issued_at: Option<u64>,

    /// Region for the twr header, such as us1, ie1 or au1 [env: TWILIO_REGION]
    ///
    /// An empty value means no region.
    #[arg(long, value_name = "REGION", help_heading = "Token")]
    pub(crate) region: Option<String>,

    /// Grants as a JSON object in Twilio's wire format, from a file or stdin (-)
    ///
    /// The object is a token's grants object without identity, such as
    /// {"chat":{"service_sid":"IS…"},"video":{}}. Its keys are chat, ip_messaging, video, voice,
    /// data_sync, task_router and player. The grants keep their order in the object, and grants
    /// from the flags below come after them. A grant built from flags replaces a grant of the
    /// same type from this object, in its place.
    #[arg(long, value_name = "FILE|-", help_heading = "Grants")]
    pub(crate) grants_json: Option<OsString>,

    #[command(flatten)]
    pub(crate) chat: ChatArgs,

    #[command(flatten)]
    pub(crate) video: VideoArgs,

    #[command(flatten)]
    pub(crate) voice: VoiceArgs,

    #[command(flatten)]
    pub(crate) sync: SyncArgs,

    #[command(flatten)]
    pub(crate) task_router: TaskRouterArgs,

    /// Print a JSON object with the token, its times and its grants instead of the token alone
    ///
    /// The members are token, identity, iat, exp, nbf (when set), ttl (seconds), region (when
    /// set) and grants (as in the token, without identity).
    #[arg(long, help_heading = "Output")]
    pub(crate) json: bool,
}

/// Flags that build the Chat grant (`chat`), used by the Conversations and Chat SDKs.
#[derive(Debug, Args)]
#[command(next_help_heading = "Chat grant")]
pub(crate) struct ChatArgs {
    /// Add a Chat grant, even with no fields (any --chat-* flag also adds one)
    #[arg(id = "chat", long = "chat")]
    pub(crate) enabled: bool,

    /// Conversations or Chat service SID (IS…)
    #[arg(id = "chat-service-sid", long = "chat-service-sid", value_name = "SID")]
    pub(crate) service_sid: Option<String>,

    /// Endpoint id, for Chat SDKs that tell a user's devices apart
    #[arg(
        id = "chat-endpoint-id",
        long = "chat-endpoint-id",
        value_name = "ID",
        conflicts_with = "device_id"
    )]
    pub(crate) endpoint_id: Option<String>,

    /// Push credential SID (CR…)
    #[arg(
        id = "chat-push-credential-sid",
        long = "chat-push-credential-sid",
        value_name = "SID"
    )]
    pub(crate) push_credential_sid: Option<String>,

    /// Deployment role SID (RL…)
    #[arg(
        id = "chat-deployment-role-sid",
        long = "chat-deployment-role-sid",
        value_name = "SID"
    )]
    pub(crate) deployment_role_sid: Option<String>,

    /// Device id: sets the endpoint id to APP_NAME:IDENTITY:DEVICE_ID (needs --app-name)
    #[arg(long, value_name = "DEVICE_ID", requires = "app_name")]
    pub(crate) device_id: Option<String>,

    /// App name for the endpoint id built by --device-id
    #[arg(long, value_name = "APP_NAME", requires = "device_id")]
    pub(crate) app_name: Option<String>,
}

/// Flags that build the Video grant (`video`).
#[derive(Debug, Args)]
#[command(next_help_heading = "Video grant")]
pub(crate) struct VideoArgs {
    /// Add a Video grant, which allows any room unless --video-room names one
    #[arg(id = "video", long = "video")]
    pub(crate) enabled: bool,

    /// Room name or room SID (RM…) the token may join (adds a Video grant)
    ///
    /// An empty value is an error, because a Video grant without a room allows every room; use
    /// --video for that.
    #[arg(
        id = "video-room",
        long = "video-room",
        value_name = "ROOM",
        value_parser = clap::builder::NonEmptyStringValueParser::new()
    )]
    pub(crate) room: Option<String>,
}

/// Flags that build the Voice grant (`voice`).
#[derive(Debug, Args)]
#[command(next_help_heading = "Voice grant")]
pub(crate) struct VoiceArgs {
    /// Add a Voice grant, even with no fields (any --voice-* flag also adds one)
    #[arg(id = "voice", long = "voice")]
    pub(crate) enabled: bool,

    /// Allow incoming calls (incoming.allow)
    #[arg(id = "voice-incoming", long = "voice-incoming")]
    pub(crate) incoming: bool,

    /// TwiML application SID (AP…) for outgoing calls
    #[arg(
        id = "voice-outgoing-app-sid",
        long = "voice-outgoing-app-sid",
        value_name = "SID"
    )]
    pub(crate) outgoing_app_sid: Option<String>,

    /// Parameter for the outgoing application, as KEY=VALUE (repeatable)
    ///
    /// Values are strings. The parameters keep the order given, and a repeated key replaces the
    /// earlier value. Needs --voice-outgoing-app-sid.
    #[arg(
        id = "voice-param",
        long = "voice-param",
        value_name = "KEY=VALUE",
        value_parser = parse_key_value
    )]
    pub(crate) params: Vec<(String, String)>,

    /// Push credential SID (CR…) for incoming call notifications
    #[arg(
        id = "voice-push-credential-sid",
        long = "voice-push-credential-sid",
        value_name = "SID"
    )]
    pub(crate) push_credential_sid: Option<String>,

    /// Endpoint id
    #[arg(
        id = "voice-endpoint-id",
        long = "voice-endpoint-id",
        value_name = "ID"
    )]
    pub(crate) endpoint_id: Option<String>,
}

/// Flags that build the Sync grant (`data_sync`).
#[derive(Debug, Args)]
#[command(next_help_heading = "Sync grant")]
pub(crate) struct SyncArgs {
    /// Add a Sync grant, even with no fields (any --sync-* flag also adds one)
    #[arg(id = "sync", long = "sync")]
    pub(crate) enabled: bool,

    /// Sync service SID (IS…), or default for the account's default service
    #[arg(id = "sync-service-sid", long = "sync-service-sid", value_name = "SID")]
    pub(crate) service_sid: Option<String>,

    /// Endpoint id
    #[arg(id = "sync-endpoint-id", long = "sync-endpoint-id", value_name = "ID")]
    pub(crate) endpoint_id: Option<String>,
}

/// Flags that build the TaskRouter grant (`task_router`).
#[derive(Debug, Args)]
#[command(next_help_heading = "TaskRouter grant")]
pub(crate) struct TaskRouterArgs {
    /// Add a TaskRouter grant, even with no fields (any --taskrouter-* flag also adds one)
    #[arg(id = "taskrouter", long = "taskrouter")]
    pub(crate) enabled: bool,

    /// Workspace SID (WS…)
    #[arg(
        id = "taskrouter-workspace-sid",
        long = "taskrouter-workspace-sid",
        value_name = "SID"
    )]
    pub(crate) workspace_sid: Option<String>,

    /// Worker SID (WK…)
    #[arg(
        id = "taskrouter-worker-sid",
        long = "taskrouter-worker-sid",
        value_name = "SID"
    )]
    pub(crate) worker_sid: Option<String>,

    /// Role, such as worker or supervisor
    #[arg(id = "taskrouter-role", long = "taskrouter-role", value_name = "ROLE")]
    pub(crate) role: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The token, or - to read it from stdin
    ///
    /// Surrounding whitespace is ignored. Reading from stdin keeps the token out of the process
    /// list.
    #[arg(value_name = "TOKEN|-")]
    pub(crate) token: String,

    /// Account SID (AC…) the token must name in sub (required) [env: TWILIO_ACCOUNT_SID]
    #[arg(long, value_name = "SID", help_heading = "Credentials")]
    pub(crate) account_sid: Option<String>,

    #[command(flatten)]
    pub(crate) keys: KeyArgs,

    #[command(flatten)]
    pub(crate) time: CheckTimeArgs,

    /// Print the claims, or the error, as a JSON object
    ///
    /// A valid token gives {"valid": true, "identity", "grants", "unknown_grants", "iat", "nbf",
    /// "exp", "iss", "sub", "jti", "region"}, with null for a claim the token does not have. A
    /// rejected one gives {"valid": false, "error": {"twilio_code", "kind", "message"}}, on
    /// stdout too. The exit status is the same as without --json.
    #[arg(long, help_heading = "Output")]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct DoctorArgs {
    /// The token, or - to read it from stdin
    ///
    /// Whitespace around the token is reported as a problem, except for one trailing newline on
    /// stdin, which shells and editors add.
    #[arg(value_name = "TOKEN|-")]
    pub(crate) token: String,

    /// Account SID (AC…) the token should name in sub [env: TWILIO_ACCOUNT_SID]
    ///
    /// Without it, the account is not checked.
    #[arg(long, value_name = "SID", help_heading = "Credentials")]
    pub(crate) account_sid: Option<String>,

    #[command(flatten)]
    pub(crate) keys: KeyArgs,

    #[command(flatten)]
    pub(crate) time: CheckTimeArgs,

    /// Print {"verdict", "findings", "skipped"} as JSON
    ///
    /// verdict is valid, unverified or invalid. Each finding has severity (error, warning or
    /// note), check, twilio_code (null when none applies), message and fix. skipped lists the
    /// checks that could not be made, with the reason.
    #[arg(long, help_heading = "Output")]
    pub(crate) json: bool,
}

/// The API keys that `verify` and `doctor` check signatures with.
#[derive(Debug, Args)]
pub(crate) struct KeyArgs {
    /// API key SID (SK…) whose secret checks the signature [env: TWILIO_API_KEY or
    /// TWILIO_API_KEY_SID]
    #[arg(long, value_name = "SID", help_heading = "Credentials")]
    pub(crate) api_key_sid: Option<String>,

    /// Read the API secret from a file, or from stdin with -
    ///
    /// Exactly one trailing newline (\n or \r\n) is removed. Without this flag the secret comes
    /// from TWILIO_API_SECRET or TWILIO_API_KEY_SECRET. No flag takes the secret itself, so it
    /// never appears in the process list.
    #[arg(long, value_name = "PATH|-", help_heading = "Credentials")]
    pub(crate) api_secret_file: Option<OsString>,

    /// Read more API keys from a file: one SK…=SECRET or SK… SECRET per line
    ///
    /// The token's iss picks the key, so several keys, such as an old and a new one during a
    /// rotation, can check tokens at once. They are added to the key from --api-key-sid. Blank
    /// lines and lines starting with # are skipped. Whitespace around each line is removed, so
    /// a secret cannot start or end with whitespace. On Unix a warning is printed when the file
    /// can be read or written by other users.
    #[arg(long, value_name = "PATH", help_heading = "Credentials")]
    pub(crate) key_file: Option<PathBuf>,
}

/// The time `verify` and `doctor` check a token at, and the clock leeway.
#[derive(Debug, Args)]
pub(crate) struct CheckTimeArgs {
    /// Clock leeway for exp and nbf: seconds or a duration such as 90s or 2m [default: 60]
    ///
    /// A token counts as expired when now > exp + leeway and as not yet valid when
    /// nbf > now + leeway. A duration uses the units h, m and s, largest first. The maximum is
    /// 1h: to check a token at another time, use --at.
    #[arg(long, value_name = "DURATION", help_heading = "Time")]
    pub(crate) leeway: Option<String>,

    /// Check the token as of this time, in Unix seconds [default: the system clock]
    #[arg(long, value_name = "UNIX_SECONDS", help_heading = "Time")]
    pub(crate) at: Option<u64>,
}

#[derive(Debug, Args)]
pub(crate) struct DecodeArgs {
    /// The token, or - to read it from stdin
    ///
    /// Surrounding whitespace is ignored. Reading from stdin keeps the token out of the process
    /// list.
    #[arg(value_name = "TOKEN|-")]
    pub(crate) token: String,

    /// Print {"signature_checked": false, "header": …, "claims": …} as JSON, keys in token order
    #[arg(long)]
    pub(crate) json: bool,

    /// Current time in Unix seconds for the relative times shown [default: the system clock]
    ///
    /// Makes the output reproducible, for tests and examples.
    #[arg(long, value_name = "UNIX_SECONDS")]
    pub(crate) now: Option<u64>,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Configuration file (TOML) [default: none, the environment alone]
    ///
    /// Relative secret_file paths in it are read from the file's folder.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,

    /// Address and port to listen on, replacing server.listen [default: 127.0.0.1:8080]
    ///
    /// Port 0 picks a free port, which the listening log line shows.
    #[arg(long, value_name = "ADDR:PORT")]
    pub(crate) listen: Option<SocketAddr>,

    /// Run the embedded default for trying the server on this machine
    ///
    /// Enables the built-in users and, unless server.demo_page is false, the demo page at /.
    /// When the configuration has no policy rules, adds one that gives every identity Video,
    /// Voice and, when their services are set, Chat and Sync.
    /// Without real credentials in the environment or the file, tokens are signed with
    /// placeholder credentials that Twilio does not accept. Listens on loopback only unless
    /// --allow-insecure is given.
    #[arg(long)]
    pub(crate) demo: bool,

    /// Start on a non-loopback address without authentication or with --demo
    ///
    /// Without this flag such a start is an error. With it the server starts and logs a
    /// warning.
    #[arg(long)]
    pub(crate) allow_insecure: bool,

    /// Log format on stderr, replacing log.format of the configuration [default: plain]
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub(crate) log_format: Option<LogFormat>,
}

/// The format of the logs `serve` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// One line of text per event
    Plain,
    /// One JSON object per line
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Validate a server configuration and print it with secrets hidden
    ///
    /// Loads the file and the environment as serve does and prints the configuration that
    /// results: defaults filled in, the authentication providers in the order they run, the
    /// profiles and the policy rules. API secrets are never printed, only whether each is set,
    /// and API key hashes are shortened.
    #[command(after_long_help = CONFIG_CHECK_AFTER_HELP)]
    Check(ConfigCheckArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ConfigCheckArgs {
    /// Configuration file (TOML) [default: none, the environment alone]
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,

    /// Print the configuration as JSON instead of TOML
    #[arg(long)]
    pub(crate) json: bool,

    /// Skip opening the audit log's SQLite file or PostgreSQL database, for a check on a
    /// machine that cannot reach them
    #[arg(long)]
    pub(crate) offline: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ApiKeyCommand {
    /// Generate an API key and the configuration block for it
    ///
    /// The key goes to stdout, and this is the only time it is shown: the server stores only
    /// its hash. A [[auth.api_keys]] block with the hash goes to stderr, ready to paste into
    /// the configuration file.
    #[command(after_long_help = EXIT_STATUS)]
    Generate(ApiKeyGenerateArgs),

    /// Read an API key from stdin and print its hash for the configuration
    ///
    /// Whitespace around the key is ignored.
    #[command(after_long_help = EXIT_STATUS)]
    Hash,
}

#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("caller")
        .args(["identity", "may_act_for"])
        .required(true)
        .multiple(true)
))]
pub(crate) struct ApiKeyGenerateArgs {
    /// Name of the key in logs, such as billing-backend
    #[arg(long, value_name = "NAME")]
    pub(crate) name: String,

    /// Identity of the tokens minted for this key when the request names none
    #[arg(long, value_name = "IDENTITY")]
    pub(crate) identity: Option<String>,

    /// Identities the key may request tokens for, as a pattern such as user-* (* matches any
    /// run of characters, ? one character)
    #[arg(long, value_name = "PATTERN")]
    pub(crate) may_act_for: Option<String>,

    /// Group the key's requests belong to, for policy rules (repeatable)
    #[arg(long = "group", value_name = "GROUP")]
    pub(crate) groups: Vec<String>,
}

/// Splits `KEY=VALUE` at the first `=`. The key must not be empty, but the value may be.
fn parse_key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some(("", _)) => Err("the key before '=' is empty".to_owned()),
        Some((key, value)) => Ok((key.to_owned(), value.to_owned())),
        None => Err("expected KEY=VALUE, such as To=+15005550006".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn command_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn key_value_splits_at_first_equals() {
        assert_eq!(
            parse_key_value("To=a=b"),
            Ok(("To".to_owned(), "a=b".to_owned()))
        );
        assert_eq!(parse_key_value("To="), Ok(("To".to_owned(), String::new())));
    }

    #[test]
    fn key_value_without_key_rejected() {
        assert_eq!(
            parse_key_value("=x"),
            Err("the key before '=' is empty".to_owned())
        );
        assert_eq!(
            parse_key_value("x"),
            Err("expected KEY=VALUE, such as To=+15005550006".to_owned())
        );
    }
}
