//! Mints the typical Chat token in a loop and prints how many tokens per second one thread made.
//!
//! The token has identity "alice", a Chat grant with a service SID and the default TTL, and is
//! minted with `to_jwt()`, which reads the system clock per token as the official Python and Node
//! helpers do. `scripts/bench/compare-mint.sh` runs this pinned to one core.
//!
//! Usage: `cargo run --release -p twilio-access-token --example mint_rate [SECONDS]`, where
//! SECONDS is the measuring time (default 3). Stdout gets one line with two integers: tokens per
//! second of CPU time, then tokens per second of wall-clock time. The first does not drop when
//! another process shares the core, so it is the one to compare. Stderr gets the count, the times
//! and the token length. Linux only: the CPU time comes from `/proc/self/schedstat`.

#![expect(
    clippy::print_stderr,
    reason = "a command-line program reports progress and errors on its own stderr"
)]

use std::hint::black_box;
use std::io::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use twilio_access_token::{AccessToken, ApiSecret, ChatGrant};

/// Tokens minted between two reads of the timer, so the timer costs well under 1% of a token.
const BATCH: u64 = 10_000;

fn main() -> ExitCode {
    let seconds = match std::env::args().nth(1) {
        None => 3.0,
        Some(arg) => match arg.parse::<f64>() {
            Ok(seconds) if seconds > 0.0 && seconds.is_finite() => seconds,
            _ => {
                eprintln!("error: invalid SECONDS {arg:?}: expected a positive number such as 3");
                return ExitCode::from(2);
            }
        },
    };

    let token = match AccessToken::builder()
        .account_sid("AC0123456789abcdef0123456789abcdef")
        .api_key_sid("SKfedcba9876543210fedcba9876543210")
        .api_secret(ApiSecret::new("FAKEsecretDoNotUse0123456789abcd"))
        .identity("alice")
        .grant(ChatGrant::new().service_sid("IS00000000000000000000000000000001"))
        .build()
    {
        Ok(token) => token,
        Err(error) => {
            eprintln!("error: building the Chat token failed: {error}");
            return ExitCode::FAILURE;
        }
    };
    let sample = match token.to_jwt() {
        Ok(jwt) => jwt,
        Err(error) => {
            eprintln!("error: minting the Chat token failed: {error}");
            return ExitCode::FAILURE;
        }
    };

    let budget = Duration::from_secs_f64(seconds);
    let mut minted: u64 = 0;
    let cpu_start = match cpu_time() {
        Ok(cpu) => cpu,
        Err(error) => {
            eprintln!(
                "error: reading this thread's CPU time from /proc/self/schedstat failed: {error}"
            );
            return ExitCode::FAILURE;
        }
    };
    let start = Instant::now();
    let elapsed = loop {
        for _ in 0..BATCH {
            // Minting this token fails only for a clock before 1970 or an issue time past the year
            // 5138. The sample above ruled both out, so the loop discards the result unchecked.
            let _ = black_box(black_box(&token).to_jwt());
        }
        minted += BATCH;
        let elapsed = start.elapsed();
        if elapsed >= budget {
            break elapsed;
        }
    };

    let cpu = match cpu_time() {
        Ok(cpu_end) => cpu_end.saturating_sub(cpu_start),
        Err(error) => {
            eprintln!(
                "error: reading this thread's CPU time from /proc/self/schedstat failed: {error}"
            );
            return ExitCode::FAILURE;
        }
    };

    let cpu_rate = minted as f64 / cpu.as_secs_f64();
    let wall_rate = minted as f64 / elapsed.as_secs_f64();
    eprintln!(
        "rust twilio-access-token: {minted} tokens in {:.3} s wall, {:.3} s CPU, {} bytes each",
        elapsed.as_secs_f64(),
        cpu.as_secs_f64(),
        sample.len()
    );
    let mut stdout = std::io::stdout().lock();
    if let Err(error) = writeln!(stdout, "{cpu_rate:.0} {wall_rate:.0}") {
        eprintln!("error: writing the rate to stdout failed: {error}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Returns the CPU time this thread has run, from the first field of `/proc/self/schedstat`
/// (nanoseconds on the CPU). The program is single-threaded, so that is the process's CPU time.
/// The kernel updates the field at scheduler ticks, so it lags by a few milliseconds at most.
fn cpu_time() -> std::io::Result<Duration> {
    let schedstat = std::fs::read_to_string("/proc/self/schedstat")?;
    schedstat
        .split_whitespace()
        .next()
        .and_then(|field| field.parse::<u64>().ok())
        .map(Duration::from_nanos)
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("expected nanoseconds as the first field, found {schedstat:?}"),
            )
        })
}
