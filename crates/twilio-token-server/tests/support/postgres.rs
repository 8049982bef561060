//! A throwaway PostgreSQL server for tests: `initdb` into a temporary folder, then `postgres` on
//! 127.0.0.1 and a free port, with its Unix socket in the same folder.
//!
//! It uses the Debian package's binaries in `/usr/lib/postgresql/<version>/bin`. PostgreSQL
//! refuses to run as root, so under root both programs run as the user `nobody` through
//! `setpriv`, which executes them in place (so a signal to the child reaches PostgreSQL), and
//! the folder is given to that user. The server is stopped and the folder removed
//! on drop.
#![allow(dead_code)]

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The user PostgreSQL runs as when the tests run as root.
const UNPRIVILEGED_USER: &str = "nobody";

/// A running test PostgreSQL server.
pub(crate) struct Postgres {
    folder: PathBuf,
    bin: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Postgres {
    /// Creates a database cluster in a new temporary folder and starts the server.
    ///
    /// # Panics
    ///
    /// Panics with the package to install when PostgreSQL is missing, and with the server's
    /// output when it does not start.
    pub(crate) fn start(name: &str) -> Postgres {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let bin = find_bin();
        let folder = std::env::temp_dir().join(format!(
            "twilio-token-pg-{name}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&folder);
        std::fs::create_dir_all(&folder).expect("create the PostgreSQL folder");
        if is_root() {
            let status = Command::new("chown")
                .args([UNPRIVILEGED_USER])
                .arg(&folder)
                .status()
                .expect("run chown");
            assert!(
                status.success(),
                "chown {UNPRIVILEGED_USER} {folder:?} failed"
            );
        }

        let output = as_postgres_user(&bin.join("initdb"))
            .arg("-D")
            .arg(folder.join("data"))
            .args(["-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"])
            .output()
            .expect("run initdb");
        assert!(
            output.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );

        let mut postgres = Postgres {
            folder,
            bin,
            port: free_port(),
            child: None,
        };
        postgres.resume();
        postgres
    }

    /// Returns a connection string for the `postgres` database as the `postgres` user.
    pub(crate) fn url(&self) -> String {
        format!(
            "postgresql://postgres@127.0.0.1:{}/postgres?connect_timeout=2",
            self.port
        )
    }

    /// Returns the port.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server with a fast shutdown (SIGINT) and waits for it to exit. Connected
    /// clients get an error on their next query.
    pub(crate) fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        let _ = child.wait();
    }

    /// Starts the server again on the same port and data, and waits until it accepts
    /// connections.
    pub(crate) fn resume(&mut self) {
        assert!(self.child.is_none(), "the server is already running");
        let log = std::fs::File::create(self.folder.join("postgres.log")).expect("create log");
        let child = as_postgres_user(&self.bin.join("postgres"))
            .arg("-D")
            .arg(self.folder.join("data"))
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(&self.folder)
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "max_connections=50",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start postgres");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q"])
                .status()
                .is_ok_and(|status| status.success());
            if ready {
                return;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("postgres exited with {status}: {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not accept connections within 30 s: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Returns the server's log so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.folder.join("postgres.log")).unwrap_or_default()
    }

    /// Returns true when a TCP connection to the port succeeds.
    pub(crate) fn accepts_tcp(&self) -> bool {
        TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).is_ok()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.folder);
    }
}

/// Finds the newest `/usr/lib/postgresql/<version>/bin` with `initdb`.
fn find_bin() -> PathBuf {
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|entry| {
                    let version = entry.file_name().to_string_lossy().parse::<u32>().ok()?;
                    let bin = entry.path().join("bin");
                    bin.join("initdb").exists().then_some((version, bin))
                })
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    match versions.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL is not installed: no /usr/lib/postgresql/<version>/bin/initdb was found. \
             Install the Debian package with: apt-get install -y postgresql"
        ),
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| output.stdout.trim_ascii() == b"0")
}

/// Returns a command that runs `program` as [`UNPRIVILEGED_USER`] under root, or directly.
fn as_postgres_user(program: &Path) -> Command {
    if is_root() {
        let mut command = Command::new("setpriv");
        command
            .args([
                "--reuid",
                UNPRIVILEGED_USER,
                "--regid",
                "nogroup",
                "--clear-groups",
                "--",
            ])
            .arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a free port");
    listener.local_addr().expect("local address").port()
}
