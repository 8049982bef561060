//! `twilio-token serve`: runs the token server until SIGINT or SIGTERM.

use std::io::{self, IsTerminal as _, Write as _};
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use std::path::PathBuf;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;

use arc_swap::ArcSwap;
use axum::Router;
use twilio_token_server::config::{ConfigError, LogFormat as ConfigLogFormat, apply_demo};
use twilio_token_server::metrics::Metrics;
use twilio_token_server::reload::Reloader;
use twilio_token_server::routes::metrics::metrics_router;
use twilio_token_server::{AppState, ConnectionLimits, run as serve_router, run_reloadable};
use zeroize::Zeroizing;

use crate::cli::{LogFormat, ServeArgs};
use crate::config_cmd::{self, is_exposed_without_auth};
use crate::error::CliError;

/// Starts the server and returns when it has stopped after SIGINT or SIGTERM.
///
/// # Errors
///
/// Returns [`CliError::Config`] for an invalid configuration, [`CliError::Input`] for an
/// invalid `RUST_LOG` or a non-loopback address that needs `--allow-insecure`, and
/// [`CliError::Serve`] when the address cannot be bound or the server fails.
pub(crate) fn run(args: &ServeArgs) -> Result<(), CliError> {
    // The log format comes from the file unless --log-format is given, so the file is read
    // once before logging starts; errors in it are reported without logging.
    let log_format = match args.log_format {
        Some(format) => format,
        None => match config_cmd::load(args.config.as_deref())?.file.log.format {
            ConfigLogFormat::Plain => LogFormat::Plain,
            ConfigLogFormat::Json => LogFormat::Json,
        },
    };
    init_logging(log_format)?;

    let source = ConfigSource {
        config: args.config.clone(),
        listen: args.listen,
        demo: args.demo,
        allow_insecure: args.allow_insecure,
    };
    let state = source.load(None)?;
    check_exposure(&state, args)?;
    // Before the runtime starts, because the PostgreSQL client blocks on a runtime of its own.
    config_cmd::open_audit(&state)?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| CliError::Serve {
            what: "failed to start the async runtime".to_owned(),
            source,
        })?;
    runtime.block_on(serve(state, source))
}

/// Where the configuration comes from, kept to load it again on a reload.
#[derive(Debug, Clone)]
struct ConfigSource {
    config: Option<PathBuf>,
    listen: Option<SocketAddr>,
    demo: bool,
    allow_insecure: bool,
}

impl ConfigSource {
    /// Reads the file and the environment and builds the state, for the start (`previous` is
    /// `None`) or for a reload of the server running with `previous`.
    fn load(&self, previous: Option<&AppState>) -> Result<AppState, CliError> {
        let mut loaded = config_cmd::load(self.config.as_deref())?;
        if let Some(listen) = self.listen {
            loaded.file.server.listen = listen.to_string();
        }
        let demo = self
            .demo
            .then(|| apply_demo(&mut loaded.file, &mut loaded.environment));

        let mut state = match previous {
            None => AppState::from_config(&loaded.file, &loaded.environment, &loaded.base_dir)?,
            Some(previous) => {
                previous.reconfigure(&loaded.file, &loaded.environment, &loaded.base_dir)?
            }
        };
        drop(loaded.environment);
        if let Some(name) = demo
            .as_ref()
            .and_then(|demo| demo.placeholder_profile.as_ref())
            && let Some(profile) = state.profiles.get_mut(name)
        {
            profile.placeholder = true;
        }
        Ok(state)
    }
}

/// The state of the demo user on this start. Never `Debug`, because a variant contains a
/// password.
enum DemoUser {
    /// The user `demo` was created with this password, which the banner prints once.
    Created { password: Zeroizing<String> },
    /// The user `demo` already existed, so its password is not known.
    Exists,
}

/// The demo user's name.
const DEMO_USER: &str = "demo";

/// The length of the generated demo password, from 62 letters and digits (about 119 bits).
const DEMO_PASSWORD_CHARS: usize = 20;

/// Makes sure the user `demo` exists in the built-in user store.
async fn ensure_demo_user(state: &AppState) -> Result<DemoUser, CliError> {
    let Some(users) = &state.users else {
        return Err(CliError::Input(
            "demo mode needs the built-in user store, but [auth.users] is not enabled".into(),
        ));
    };
    let store = users.store();
    let failed = |error: twilio_token_server::auth::users::store::StoreError| {
        CliError::Input(format!("failed to set up the demo user: {error}"))
    };
    if store.user_exists(DEMO_USER).await.map_err(failed)? {
        return Ok(DemoUser::Exists);
    }
    let password = Zeroizing::new(random_password());
    store
        .add_user(DEMO_USER, &password, &[])
        .await
        .map_err(failed)?;
    Ok(DemoUser::Created { password })
}

fn random_password() -> String {
    use rand::Rng as _;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..DEMO_PASSWORD_CHARS)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// Sends logs to stderr, filtered by `RUST_LOG` with `info` as the default.
fn init_logging(format: LogFormat) -> Result<(), CliError> {
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env()
        .map_err(|error| {
            CliError::Input(format!(
                "RUST_LOG is not a valid log filter: {error}: use a level such as info or a list \
                 such as info,twilio_token_server=debug"
            ))
        })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr);
    let result = match format {
        LogFormat::Plain => builder
            .fmt_fields(crate::plain_log::PlainFields)
            .with_ansi(io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    result.map_err(|error| CliError::Input(format!("failed to start logging: {error}")))
}

/// Rejects a non-loopback address in demo mode or when no authentication provider is
/// configured, unless `--allow-insecure` is given, in which case it logs a warning.
fn check_exposure(state: &AppState, args: &ServeArgs) -> Result<(), CliError> {
    let loopback = state.listen.ip().to_canonical().is_loopback();
    let (problem, fix) = if args.demo && !loopback {
        (
            "--demo, with its demo user and its rule for every identity, is meant for this \
             machine only",
            "",
        )
    } else if is_exposed_without_auth(state) {
        (
            "no authentication provider is configured",
            "add [[auth.api_keys]] or [auth.users], ",
        )
    } else {
        if state.providers.is_empty() {
            tracing::warn!(
                "no authentication provider is configured, so every token request gets 401: add \
                 [[auth.api_keys]] or [auth.users]"
            );
        }
        return Ok(());
    };

    if args.allow_insecure {
        tracing::warn!(
            listen = %state.listen,
            "listening on a non-loopback address because of --allow-insecure, although {problem}"
        );
        return Ok(());
    }
    Err(CliError::Input(format!(
        "{} is not a loopback address and {problem}: {fix}listen on 127.0.0.1 or [::1], or pass \
         --allow-insecure to start anyway",
        state.listen
    )))
}

/// Binds the listener, prints the demo banner when `demo` is set, and serves until stopped.
async fn serve(state: AppState, source: ConfigSource) -> Result<(), CliError> {
    let demo_user = if source.demo {
        Some(ensure_demo_user(&state).await?)
    } else {
        None
    };

    // Registered before the listening line, so that a signal sent as soon as that line appears
    // stops the server gracefully instead of killing the process.
    let signals = StopSignals::register().map_err(|source| CliError::Serve {
        what: "failed to listen for SIGINT and SIGTERM".to_owned(),
        source,
    })?;
    let listener = TcpListener::bind(state.listen)
        .await
        .map_err(|source| CliError::Serve {
            what: format!("failed to listen on {}", state.listen),
            source,
        })?;
    let address = listener.local_addr().unwrap_or(state.listen);
    tracing::info!(
        %address,
        version = env!("CARGO_PKG_VERSION"),
        audit = state.audit.describe(),
        audit_fail_open = state.audit.fail_open(),
        "listening"
    );

    if let Some(demo_user) = &demo_user {
        write_banner(address, &state, demo_user);
    }
    drop(demo_user);

    let grace = Duration::from_secs(state.server.shutdown_grace_secs);
    let limits = ConnectionLimits::from_config(&state.server);
    let metrics_listen = state
        .metrics_config
        .enabled
        .then(|| state.metrics_config.listen.clone())
        .flatten();
    let metrics = Arc::clone(&state.metrics);
    let watched = source.config.clone();
    let reloader = Reloader::new(Arc::new(state), move |previous| {
        let state = source.load(Some(previous)).map_err(|error| match error {
            CliError::Config(error) => error,
            other => ConfigError {
                key: "configuration".to_owned(),
                message: other.to_string(),
            },
        })?;
        // The start-up check, against the address the server keeps listening on.
        let exposed = !previous.listen.ip().to_canonical().is_loopback();
        if exposed && state.providers.is_empty() && !source.allow_insecure {
            return Err(ConfigError {
                key: "auth".to_owned(),
                message: format!(
                    "no authentication provider is configured and the server listens on {}, \
                     which is not loopback: add [[auth.api_keys]] or [auth.users]",
                    previous.listen
                ),
            });
        }
        Ok(state)
    });
    reloader
        .watch(watched, CONFIG_POLL)
        .map_err(|source| CliError::Serve {
            what: "failed to listen for SIGHUP".to_owned(),
            source,
        })?;
    if let Some(listen) = metrics_listen {
        serve_metrics(&listen, metrics).await?;
    }
    serve_until_stopped(listener, reloader.routers(), signals, grace, limits).await
}

/// How often the configuration file is checked for changes.
const CONFIG_POLL: Duration = Duration::from_secs(1);

/// Serves `GET /metrics` on its own listener until the process ends.
async fn serve_metrics(listen: &str, metrics: Arc<Metrics>) -> Result<(), CliError> {
    let address: SocketAddr = listen
        .parse()
        .map_err(|_| CliError::Input(format!("metrics.listen {listen:?} is not an address")))?;
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| CliError::Serve {
            what: format!("failed to listen on {address} for metrics"),
            source,
        })?;
    let bound = listener.local_addr().unwrap_or(address);
    tracing::info!(address = %bound, "metrics listening");
    tokio::spawn(async move {
        let router = metrics_router(metrics);
        if let Err(error) = serve_router(listener, router, std::future::pending()).await {
            tracing::error!(%error, "the metrics listener stopped");
        }
    });
    Ok(())
}

/// Serves until SIGINT or SIGTERM, then gives requests in flight `grace` to finish. The end of
/// the grace period, or a second signal, stops them at once.
async fn serve_until_stopped(
    listener: TcpListener,
    routers: Arc<ArcSwap<Router>>,
    mut signals: StopSignals,
    grace: Duration,
    limits: ConnectionLimits,
) -> Result<(), CliError> {
    // The shutdown future hands the signal listeners back, so the same listeners catch a
    // second signal.
    let (signalled, on_signal) = oneshot::channel();
    let shutdown = async move {
        let name = signals.wait().await;
        tracing::info!("{name} received, shutting down");
        let _ = signalled.send(signals);
    };
    let mut server = pin!(run_reloadable(listener, routers, shutdown, limits));
    // The grace period starts at the signal, not at start-up. The signal is checked first
    // because the server finishes soon after it when no request is in flight.
    let mut signals = tokio::select! {
        biased;
        signals = on_signal => signals.ok(),
        result = &mut server => {
            // With no connection open, the server can finish in the same poll as the signal.
            result.map_err(server_failed)?;
            tracing::info!("stopped");
            return Ok(());
        }
    };
    let second_signal = async {
        match signals.as_mut() {
            Some(signals) => signals.wait().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        result = tokio::time::timeout(grace, &mut server) => match result {
            Ok(result) => result.map_err(server_failed)?,
            Err(_) => tracing::warn!(
                grace_secs = grace.as_secs(),
                "shutdown grace period ended with requests in flight, stopping them"
            ),
        },
        name = second_signal => {
            tracing::warn!("second signal {name} received, stopping requests in flight");
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// Listeners for the signals that stop the server.
#[cfg(unix)]
struct StopSignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl StopSignals {
    /// Starts listening for SIGINT and SIGTERM. From here on they no longer end the process.
    fn register() -> io::Result<StopSignals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(StopSignals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// Waits for the next SIGINT or SIGTERM and returns its name.
    async fn wait(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}

/// Listeners for the signals that stop the server: Ctrl-C outside Unix.
#[cfg(not(unix))]
struct StopSignals;

#[cfg(not(unix))]
impl StopSignals {
    fn register() -> io::Result<StopSignals> {
        Ok(StopSignals)
    }

    /// Waits for the next Ctrl-C and returns its name.
    async fn wait(&mut self) -> &'static str {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
        "Ctrl-C"
    }
}

fn server_failed(source: io::Error) -> CliError {
    CliError::Serve {
        what: "the server stopped with an error".to_owned(),
        source,
    }
}

/// Writes the demo banner to stderr: the URL, the credentials in use and the demo user.
fn write_banner(address: SocketAddr, state: &AppState, demo_user: &DemoUser) {
    // Zeroized on drop, because it can contain the demo user's password. The capacity is
    // larger than any banner, so the text is never moved and no copy is left behind.
    let mut banner = Zeroizing::new(String::with_capacity(4096));
    banner.push_str(&format!(
        "\n  twilio-token is running in demo mode, for trying it on this machine only\n  \
         sign in: POST http://{address}/login, then get tokens: POST http://{address}/token\n  \
         API description: http://{address}/openapi.json\n"
    ));
    if state.server.demo_page == Some(true) {
        banner.push_str(&format!(
            "  demo page: open http://{address}/ in a browser\n"
        ));
    }

    match demo_user {
        DemoUser::Created { password } => banner.push_str(&format!(
            "  sign in as demo with password {}\n  The password is shown only now.\n",
            password.as_str()
        )),
        DemoUser::Exists => banner.push_str(
            "  sign in as demo with the password printed when the user was created.\n  To set \
             a new one, run: twilio-token users passwd demo\n",
        ),
    }

    let placeholder = state.profiles.values().any(|profile| profile.placeholder);
    if placeholder {
        banner.push_str(
            "\n  PLACEHOLDER CREDENTIALS: tokens are signed with a made-up account and API key, \
             so Twilio will NOT accept them.\n  To mint tokens Twilio accepts, set \
             TWILIO_ACCOUNT_SID, TWILIO_API_KEY, TWILIO_API_SECRET and\n  \
             TWILIO_CHAT_SERVICE_SID (TWILIO_SYNC_SERVICE_SID and TWILIO_TWIML_APP_SID are \
             optional), then restart.\n",
        );
    } else {
        for profile in state.profiles.values() {
            banner.push_str(&format!(
                "  profile {}: account {}, API key {}\n",
                profile.name,
                profile.account_sid,
                profile.signing_key().0
            ));
        }
    }
    banner.push('\n');

    // Nothing is left to report to if stderr itself fails.
    let _ = io::stderr().lock().write_all(banner.as_bytes());
}
