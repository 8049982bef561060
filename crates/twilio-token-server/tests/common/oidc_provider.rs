//! A running `oidc-provider` (npm) for tests: `tests/oidc/provider.mjs` on 127.0.0.1.
//!
//! Included with `#[path]` by the test binaries that need it, so `common/mod.rs` stays as is.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

/// The audience the token server accepts.
pub(crate) const AUDIENCE: &str = "urn:twilio-token";
/// The client secret of every test client. Distinctive, so a log search cannot miss it.
pub(crate) const CLIENT_SECRET: &str = "oidc-client-secret-DoNotLog-4242424242";

/// A running `oidc-provider`, stopped when dropped.
pub(crate) struct OidcServer {
    pub(crate) issuer: String,
    pub(crate) rsa_kid: String,
    pub(crate) rsa_public_pem: String,
    child: Option<Child>,
    client: reqwest::Client,
}

fn provider_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oidc")
}

impl OidcServer {
    /// Starts the provider with `clients` (see provider.mjs) and waits for its ready line.
    pub(crate) fn start(clients: Value) -> Self {
        let dir = provider_dir();
        assert!(
            dir.join("node_modules/oidc-provider").is_dir(),
            "oidc-provider is not installed: run `npm ci` in {} (scripts/test.sh does)",
            dir.display()
        );
        let mut child = Command::new("node")
            .arg("provider.mjs")
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| {
                panic!("cannot start node ({error}): install Node.js 20 or later (Debian nodejs)")
            });
        let config = json!({ "clients": clients }).to_string();
        let mut stdin = child.stdin.take().expect("stdin is piped");
        stdin
            .write_all(config.as_bytes())
            .expect("write the provider configuration");
        drop(stdin);
        // Read the ready line on a thread, so a provider that never starts fails the test
        // after a minute instead of hanging it. Its stderr is kept for the failure message.
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut stderr = child.stderr.take().expect("stderr is piped");
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = sender.send(line);
        });
        let Ok(line) = receiver.recv_timeout(Duration::from_secs(60)) else {
            let _ = child.kill();
            let mut errors = String::new();
            let _ = std::io::Read::read_to_string(&mut stderr, &mut errors);
            panic!("the provider printed no ready line within 60 s; its stderr: {errors}");
        };
        let ready: Value = serde_json::from_str(&line).unwrap_or_else(|_| {
            let _ = child.kill();
            let mut errors = String::new();
            let _ = std::io::Read::read_to_string(&mut stderr, &mut errors);
            panic!("the provider did not start; it printed {line:?} and on stderr: {errors}")
        });
        // Drain stderr (oidc-provider's start-up warnings) so the pipe never fills.
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut stderr, &mut std::io::sink());
        });
        OidcServer {
            issuer: ready["issuer"].as_str().expect("issuer").to_owned(),
            rsa_kid: ready["rsa_kid"].as_str().expect("kid").to_owned(),
            rsa_public_pem: ready["rsa_public_pem"].as_str().expect("pem").to_owned(),
            child: Some(child),
            client: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client builds"),
        }
    }

    /// Gets an access token for `client_id` and `resource` with the client_credentials grant.
    pub(crate) async fn token(&self, client_id: &str, resource: &str) -> String {
        let response = self
            .client
            .post(format!("{}/token", self.issuer))
            .basic_auth(client_id, Some(CLIENT_SECRET))
            .form(&[
                ("grant_type", "client_credentials"),
                ("resource", resource),
                ("scope", "token"),
            ])
            .send()
            .await
            .expect("the provider answers the token request");
        let status = response.status();
        let body: Value = response.json().await.expect("token response is JSON");
        assert_eq!(status, 200, "token request failed: {body}");
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// Adds a new RSA signing key at the provider and returns its kid.
    pub(crate) async fn rotate(&self) -> String {
        let body: Value = self
            .client
            .post(format!("{}/__test/rotate", self.issuer))
            .send()
            .await
            .expect("rotate")
            .json()
            .await
            .expect("rotate answer");
        body["kid"].as_str().expect("kid").to_owned()
    }

    /// Returns how many JWKS requests the provider has served.
    pub(crate) async fn jwks_requests(&self) -> u64 {
        let body: Value = self
            .client
            .get(format!("{}/__test/stats", self.issuer))
            .send()
            .await
            .expect("stats")
            .json()
            .await
            .expect("stats answer");
        body["jwks_requests"].as_u64().expect("count")
    }

    /// Stops the provider process.
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OidcServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One client per algorithm, all with the `support` group and a verified email.
pub(crate) fn standard_clients() -> Value {
    let claims = json!({"groups": ["support"], "email": "svc@example.com", "email_verified": true});
    json!([
        {"client_id": "svc-rs256", "client_secret": CLIENT_SECRET, "alg": "RS256", "claims": claims},
        {"client_id": "svc-ps256", "client_secret": CLIENT_SECRET, "alg": "PS256", "claims": claims},
        {"client_id": "svc-es256", "client_secret": CLIENT_SECRET, "alg": "ES256", "claims": claims},
        {"client_id": "svc-eddsa", "client_secret": CLIENT_SECRET, "alg": "EdDSA", "claims": claims},
        {"client_id": "short-lived", "client_secret": CLIENT_SECRET, "alg": "RS256", "ttl": 2},
        {"client_id": "unverified", "client_secret": CLIENT_SECRET, "alg": "RS256",
         "claims": {"email": "x@example.com", "email_verified": false}},
        {"client_id": "no-email", "client_secret": CLIENT_SECRET, "alg": "RS256"},
    ])
}
