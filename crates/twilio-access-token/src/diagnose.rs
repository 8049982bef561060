//! Diagnosis: every problem a token has, with the Twilio error code and a fix for each.

use std::fmt;

use serde_json::{Map, Value};

use crate::decode::{self, UnverifiedToken};
use crate::grants::{Grant, GrantJsonError};
use crate::jwt::new_hmac;
use crate::region::validate_region;
use crate::secret::ApiSecret;
use crate::sid::{SidKind, validate_sid};
use crate::verify::{
    DEFAULT_LEEWAY_SECS, MAX_LIFETIME_SECS, MAX_TIME_CLAIM, VerifyError, check_header,
    format_duration, signature_matches,
};

/// Video rooms end a participant's session after 4 hours, whatever the token's lifetime.
pub const VIDEO_SESSION_CAP_SECS: u64 = 4 * 3600;

/// The seriousness of a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Twilio rejects the token, or the token cannot be what was intended.
    Error,
    /// Twilio may accept the token, but a product or SDK will likely fail or misbehave.
    Warning,
    /// Worth knowing; nothing is wrong.
    Note,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "note",
        })
    }
}

/// One problem found in a token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Finding {
    /// The seriousness of the finding.
    pub severity: Severity,
    /// A stable identifier of the check, such as `signature.whitespace-secret`.
    pub check: &'static str,
    /// The Twilio error code the service would report, where one applies.
    pub twilio_code: Option<u32>,
    /// The problem, with the values involved.
    pub message: String,
    /// How to fix it.
    pub fix: String,
}

/// Whether the token passed every check that could be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every check passed, signature included.
    Valid,
    /// No error was found, but the signature or the account could not be checked.
    Unverified,
    /// At least one finding is an error.
    Invalid,
}

/// The outcome of [`diagnose`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Diagnosis {
    /// Every finding, in check order.
    pub findings: Vec<Finding>,
    /// Checks that could not be made and why, such as the signature when no secret was given.
    pub skipped: Vec<String>,
    /// The decoded token, when it could be decoded.
    pub token: Option<UnverifiedToken>,
}

impl Diagnosis {
    /// Returns the verdict: invalid with any error, unverified when a check was skipped,
    /// otherwise valid.
    pub fn verdict(&self) -> Verdict {
        if self
            .findings
            .iter()
            .any(|finding| finding.severity == Severity::Error)
        {
            Verdict::Invalid
        } else if self.skipped.is_empty() {
            Verdict::Valid
        } else {
            Verdict::Unverified
        }
    }
}

/// The keys, account and time that [`diagnose`] checks a token against. Every part is optional
/// but the time.
#[derive(Debug, Clone)]
#[must_use]
pub struct DiagnoseContext {
    keys: Vec<(String, ApiSecret)>,
    account_sid: Option<String>,
    now: u64,
    leeway: u64,
    max_lifetime: u64,
}

impl DiagnoseContext {
    /// Creates a context for the time `now` (Unix seconds), with no keys, no expected account,
    /// a 60-second leeway and a 24-hour maximum lifetime.
    pub fn new(now: u64) -> Self {
        DiagnoseContext {
            keys: Vec::new(),
            account_sid: None,
            now,
            leeway: DEFAULT_LEEWAY_SECS,
            max_lifetime: MAX_LIFETIME_SECS,
        }
    }

    /// Adds an API key whose secret may have signed the token.
    pub fn key(mut self, api_key_sid: impl Into<String>, secret: impl Into<ApiSecret>) -> Self {
        self.keys.push((api_key_sid.into(), secret.into()));
        self
    }

    /// Sets the account SID the token must name in `sub`.
    pub fn account_sid(mut self, account_sid: impl Into<String>) -> Self {
        self.account_sid = Some(account_sid.into());
        self
    }

    /// Sets the clock leeway in seconds.
    pub fn leeway_secs(mut self, leeway: u64) -> Self {
        self.leeway = leeway;
        self
    }

    /// Sets the maximum lifetime in seconds.
    pub fn max_lifetime_secs(mut self, max: u64) -> Self {
        self.max_lifetime = max;
        self
    }
}

/// Runs every check that applies to `token` and returns all findings, not just the first.
///
/// Beyond the checks of [`Verifier`](crate::Verifier), it looks for the usual causes of
/// "invalid Access Token":
///
/// - `iss` and `sub` swapped or with the wrong prefix (an `iss` starting with `AC` suggests
///   signing with the Auth Token);
/// - a secret with a stray newline or spaces, or a token signed by another configured key than
///   its `iss` names;
/// - identities Voice rejects, and Video tokens outliving the 4-hour session cap;
/// - a `jti` not of the form `<iss>-<seconds>`, `nbf` after `iat`, and timestamps in
///   milliseconds or with fractions;
/// - grants of the wrong JSON type, an empty grants object, and the legacy `ip_messaging` grant
///   next to `chat`.
///
/// # Examples
///
/// ```
/// use twilio_access_token::{DiagnoseContext, Verdict, diagnose};
///
/// let diagnosis = diagnose("not a token", &DiagnoseContext::new(1_700_000_000));
/// assert_eq!(diagnosis.verdict(), Verdict::Invalid);
/// assert_eq!(diagnosis.findings[0].twilio_code, Some(20101));
/// ```
pub fn diagnose(token: &str, context: &DiagnoseContext) -> Diagnosis {
    let mut report = Report::default();
    let trimmed = token.trim();
    if trimmed.len() != token.len() {
        report.add(
            Severity::Warning,
            "token.whitespace",
            None,
            "the token has whitespace or a newline around it".into(),
            "send the token without surrounding whitespace; SDKs pass it on as given".into(),
        );
    }

    let parts = match decode::decode_parts(trimmed) {
        Ok(parts) => parts,
        Err(error) => {
            let error = VerifyError::Malformed(error);
            let code = error.twilio_code();
            report.add(
                Severity::Error,
                "token.format",
                Some(code),
                error.to_string(),
                "pass the whole token as minted: three base64url parts joined by dots".into(),
            );
            return report.finish(None);
        }
    };

    check_header_fields(&mut report, &parts.header);
    check_issuer_and_subject(&mut report, &parts.claims, context);
    check_signature(&mut report, trimmed, &parts, context);
    let times = check_times(&mut report, &parts.claims, context);
    check_grants(&mut report, &parts.claims, times);
    report.finish(Some(parts))
}

#[derive(Default)]
struct Report {
    findings: Vec<Finding>,
    skipped: Vec<String>,
}

impl Report {
    fn add(
        &mut self,
        severity: Severity,
        check: &'static str,
        twilio_code: Option<u32>,
        message: String,
        fix: String,
    ) {
        self.findings.push(Finding {
            severity,
            check,
            twilio_code,
            message,
            fix,
        });
    }

    fn finish(self, token: Option<UnverifiedToken>) -> Diagnosis {
        Diagnosis {
            findings: self.findings,
            skipped: self.skipped,
            token,
        }
    }
}

fn check_header_fields(report: &mut Report, header: &Map<String, Value>) {
    if let Err(error) = check_header(header) {
        let fix = match &error {
            VerifyError::UnsupportedAlgorithm { alg } if alg.as_deref() == Some("\"none\"") => {
                "an unsigned token (alg none) is never accepted: sign it with HS256 and the API \
                 secret"
            }
            VerifyError::UnsupportedAlgorithm { .. } => {
                "mint with HS256; Twilio's helper libraries do so by default"
            }
            _ => {
                "mint the token with a Twilio helper library or this tool, which write the \
                  header Twilio expects"
            }
        };
        report.add(
            Severity::Error,
            "header",
            Some(error.twilio_code()),
            error.to_string(),
            fix.into(),
        );
    }
    if let Some(Value::String(region)) = header.get("twr")
        && validate_region(region).is_err()
    {
        report.add(
            Severity::Warning,
            "header.region",
            None,
            format!("the region {region:?} in twr is not a Twilio region id such as us1 or ie1"),
            "set the region your account's data lives in, or leave it out for us1".into(),
        );
    }
    let extra: Vec<&str> = header
        .keys()
        .map(String::as_str)
        .filter(|key| !["alg", "typ", "cty", "twr"].contains(key))
        .collect();
    if !extra.is_empty() {
        report.add(
            Severity::Note,
            "header.extra",
            None,
            format!(
                "the header has fields Twilio does not use: {}",
                extra.join(", ")
            ),
            "nothing to do unless these were meant to carry information".into(),
        );
    }
}

fn string_claim<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    claims.get(name).and_then(Value::as_str)
}

fn check_issuer_and_subject(
    report: &mut Report,
    claims: &Map<String, Value>,
    context: &DiagnoseContext,
) {
    let iss = string_claim(claims, "iss");
    let sub = string_claim(claims, "sub");
    let iss_kind = iss.and_then(SidKind::from_prefix);
    let sub_kind = sub.and_then(SidKind::from_prefix);

    if iss_kind == Some(SidKind::Account) && sub_kind == Some(SidKind::ApiKey) {
        report.add(
            Severity::Error,
            "claims.swapped-sids",
            Some(20103),
            "iss is an account SID and sub an API key SID: they are swapped".into(),
            "put the API key SID (SK…) in iss and the account SID (AC…) in sub; in the helper \
             libraries, pass the account SID first"
                .into(),
        );
        return;
    }

    match (iss, iss_kind) {
        (None, _) => report.add(
            Severity::Error,
            "claims.iss",
            Some(20103),
            "the token has no iss string".into(),
            "set iss to the SID of the API key that signs the token (SK…)".into(),
        ),
        (Some(iss), Some(SidKind::Account)) => report.add(
            Severity::Error,
            "claims.iss-account",
            Some(20103),
            format!(
                "iss is the account SID {iss}: the token was probably signed with the Auth Token"
            ),
            "Access Tokens must be signed with an API key: create one in the Twilio Console \
             (Account > API keys) and use its SID as iss and its secret to sign"
                .into(),
        ),
        (Some(iss), _) => {
            if let Err(error) = validate_sid(SidKind::ApiKey, iss) {
                report.add(
                    Severity::Error,
                    "claims.iss",
                    Some(20103),
                    format!("iss: {error}"),
                    "set iss to the SID of the API key that signs the token (SK…)".into(),
                );
            }
        }
    }

    match (sub, sub_kind) {
        (None, _) => report.add(
            Severity::Error,
            "claims.sub",
            Some(20103),
            "the token has no sub string".into(),
            "set sub to the account SID (AC…)".into(),
        ),
        (Some(sub), _) => {
            if let Err(error) = validate_sid(SidKind::Account, sub) {
                report.add(
                    Severity::Error,
                    "claims.sub",
                    Some(20103),
                    format!("sub: {error}"),
                    "set sub to the account SID (AC…) that owns the API key".into(),
                );
            } else if let Some(expected) = context.account_sid.as_deref().filter(|e| *e != sub) {
                report.add(
                    Severity::Error,
                    "claims.sub-account",
                    Some(20103),
                    format!("sub is {sub}, but the expected account is {expected}"),
                    "mint with the account SID that owns the API key, or check that the right \
                     account (or subaccount) is configured"
                        .into(),
                );
            }
        }
    }
    if context.account_sid.is_none() {
        report
            .skipped
            .push("account: no expected account SID was given".into());
    }
}

fn check_signature(
    report: &mut Report,
    token: &str,
    parts: &UnverifiedToken,
    context: &DiagnoseContext,
) {
    if context.keys.is_empty() {
        report
            .skipped
            .push("signature: no API key secret was given".into());
        return;
    }
    if parts.header.get("alg").and_then(Value::as_str) != Some("HS256") {
        report.skipped.push(
            "signature: the header's alg is not HS256, so the signature was not checked".into(),
        );
        return;
    }
    let signing_input = &token.as_bytes()[..parts.signing_input_len];
    let verifies =
        |secret: &[u8]| signature_matches(&new_hmac(secret), signing_input, &parts.signature);
    let iss = string_claim(&parts.claims, "iss").unwrap_or("");
    let named = context.keys.iter().find(|(sid, _)| sid == iss);

    if let Some((sid, secret)) = named {
        if verifies(secret.expose_secret()) {
            return;
        }
        if let Some(variant) = whitespace_variant(secret.expose_secret(), &verifies) {
            report.add(
                Severity::Error,
                "signature.whitespace-secret",
                Some(20107),
                format!("the signature matches the secret of {sid} {variant}"),
                "remove the stray whitespace or newline from the secret where the token is \
                 minted or checked; a file read with its trailing newline is the usual cause"
                    .into(),
            );
            return;
        }
    }

    let other = context
        .keys
        .iter()
        .find(|(sid, secret)| sid != iss && verifies(secret.expose_secret()));
    if let Some((other_sid, _)) = other {
        report.add(
            Severity::Error,
            "signature.other-key",
            Some(20107),
            format!("the token is signed with the secret of {other_sid}, but its iss is {iss:?}"),
            "sign with the secret of the API key named in iss, or set iss to the key whose \
             secret signs"
                .into(),
        );
        return;
    }

    match named {
        Some((sid, _)) => report.add(
            Severity::Error,
            "signature",
            Some(20107),
            format!("the signature does not match the secret of {sid}"),
            "sign with this API key's secret (not the Auth Token, not another key's secret), and \
             check that the token was not changed"
                .into(),
        ),
        // An account SID in iss was reported with its cause by the issuer checks.
        None if SidKind::from_prefix(iss) == Some(SidKind::Account) => {
            report
                .skipped
                .push("signature: iss is an account SID, so no API key secret applies".into());
        }
        None => report.add(
            Severity::Error,
            "signature.unknown-key",
            Some(20103),
            format!(
                "iss {iss:?} is not one of the given API keys, and none of their secrets matches"
            ),
            "give the secret of the API key named in iss".into(),
        ),
    }
}

/// Returns a description of the whitespace change to `secret` under which the token verifies.
fn whitespace_variant(secret: &[u8], verifies: &impl Fn(&[u8]) -> bool) -> Option<&'static str> {
    let trimmed = secret.trim_ascii();
    if trimmed.len() != secret.len() && verifies(trimmed) {
        return Some("once the whitespace around the secret is removed");
    }
    for (suffix, description) in [
        (&b"\n"[..], "with a newline added to the end of the secret"),
        (&b"\r\n"[..], "with a CR LF added to the end of the secret"),
        (&b" "[..], "with a space added to the end of the secret"),
    ] {
        let mut extended = trimmed.to_vec();
        extended.extend_from_slice(suffix);
        if verifies(&extended) {
            return Some(description);
        }
    }
    None
}

/// The time claims that could be read.
#[derive(Clone, Copy, Default)]
struct Times {
    lifetime: Option<u64>,
}

fn check_times(
    report: &mut Report,
    claims: &Map<String, Value>,
    context: &DiagnoseContext,
) -> Times {
    let now = context.now;
    let leeway = context.leeway;
    let exp = read_time(report, claims, "exp", context);
    let nbf = read_time(report, claims, "nbf", context);
    let iat = read_time(report, claims, "iat", context);

    match exp {
        None if !claims.contains_key("exp") => report.add(
            Severity::Error,
            "claims.exp",
            Some(20104),
            "the token has no exp".into(),
            "set exp to the issue time plus the lifetime, in Unix seconds".into(),
        ),
        Some(exp) if now > exp.saturating_add(leeway) => {
            let error = VerifyError::Expired { exp, now, leeway };
            report.add(
                Severity::Error,
                "claims.expired",
                Some(20104),
                error.to_string(),
                "mint a new token, and refresh tokens before they expire (the SDKs emit \
                 tokenAboutToExpire); if it was just minted, check the minting server's clock"
                    .into(),
            );
        }
        _ => {}
    }
    if let Some(nbf) = nbf.filter(|nbf| *nbf > now.saturating_add(leeway)) {
        let error = VerifyError::NotYetValid { nbf, now, leeway };
        report.add(
            Severity::Error,
            "claims.not-yet-valid",
            Some(20105),
            error.to_string(),
            "synchronise the clocks (NTP) or leave nbf out".into(),
        );
    }
    if let (Some(nbf), Some(iat)) = (nbf, iat)
        && nbf > iat
    {
        report.add(
            Severity::Warning,
            "claims.nbf-after-iat",
            None,
            format!(
                "nbf is {} after iat ({nbf} > {iat})",
                format_duration(nbf - iat)
            ),
            "leave nbf out unless the token must wait; clients will be rejected until then".into(),
        );
    }
    if let Some(iat) = iat.filter(|iat| *iat > now.saturating_add(leeway)) {
        report.add(
            Severity::Warning,
            "claims.iat-future",
            None,
            format!(
                "iat is {} in the future (iat {iat}, now {now})",
                format_duration(iat - now)
            ),
            "check the minting server's clock".into(),
        );
    }

    let start = nbf.or(iat);
    // Like the verifier, count from now when the token has neither nbf nor iat.
    let lifetime = exp.map(|exp| exp.saturating_sub(start.unwrap_or(now)));
    if let Some(lifetime) = lifetime.filter(|lifetime| *lifetime > context.max_lifetime) {
        let from = match (nbf, iat) {
            (Some(_), _) => "nbf",
            (None, Some(_)) => "iat",
            (None, None) => "now",
        };
        let error = VerifyError::LifetimeTooLong {
            lifetime,
            from,
            max: context.max_lifetime,
        };
        report.add(
            Severity::Error,
            "claims.lifetime",
            Some(20157),
            error.to_string(),
            "use a TTL of at most 86400 seconds and refresh the token before it expires".into(),
        );
    }
    // Within the leeway the verifier still accepts such a token, so only report what it rejects.
    if let (Some(exp), Some(start)) = (exp, start)
        && exp.saturating_add(leeway) < start
    {
        report.add(
            Severity::Error,
            "claims.exp-before-start",
            Some(20104),
            format!("exp ({exp}) is before nbf or iat ({start}), so the token is never valid"),
            "use a positive TTL".into(),
        );
    }
    check_jti(report, claims, iat);
    Times { lifetime }
}

/// Reads a time claim, reporting values that are not whole seconds or look like milliseconds.
fn read_time(
    report: &mut Report,
    claims: &Map<String, Value>,
    claim: &'static str,
    context: &DiagnoseContext,
) -> Option<u64> {
    let value = claims.get(claim)?;
    let code = match claim {
        "exp" => Some(20104),
        "nbf" => Some(20105),
        _ => Some(20101),
    };
    let Some(time) = value.as_u64() else {
        let detail = match value.as_f64() {
            Some(number) if number.fract() != 0.0 => "has a fractional part",
            Some(number) if number < 0.0 => "is negative",
            Some(_) => "is not an integer",
            None => "is not a number",
        };
        report.add(
            Severity::Error,
            "claims.time-format",
            code,
            format!("{claim} is {value}, which {detail}"),
            format!("write {claim} as a whole number of seconds since 1970"),
        );
        return None;
    };
    if time <= MAX_TIME_CLAIM {
        return Some(time);
    }
    if time / 1000 <= context.now.saturating_mul(2).max(MAX_TIME_CLAIM) {
        report.add(
            Severity::Error,
            "claims.time-milliseconds",
            code,
            format!(
                "{claim} is {time}, which looks like milliseconds (about {} in seconds)",
                time / 1000
            ),
            format!("divide by 1000: {claim} is in seconds, not milliseconds"),
        );
        return Some(time / 1000);
    }
    report.add(
        Severity::Error,
        "claims.time-format",
        code,
        format!("{claim} is {time}, which is after the year 5000"),
        format!("write {claim} as a whole number of seconds since 1970"),
    );
    None
}

fn check_jti(report: &mut Report, claims: &Map<String, Value>, iat: Option<u64>) {
    let iss = string_claim(claims, "iss").unwrap_or("");
    let Some(jti) = string_claim(claims, "jti") else {
        report.add(
            Severity::Note,
            "claims.jti",
            None,
            "the token has no jti string".into(),
            "the official libraries write jti as <API key SID>-<issue time>".into(),
        );
        return;
    };
    let seconds = jti
        .strip_prefix(iss)
        .and_then(|rest| rest.strip_prefix('-'));
    let Some(seconds) = seconds.filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
    else {
        report.add(
            Severity::Warning,
            "claims.jti-format",
            None,
            format!("jti {jti:?} is not of the form <iss>-<seconds>"),
            "write jti as <API key SID>-<issue time in seconds>, as the official libraries do"
                .into(),
        );
        return;
    };
    if let (Ok(jti_time), Some(iat)) = (seconds.parse::<u64>(), iat)
        && jti_time != iat
    {
        report.add(
            Severity::Note,
            "claims.jti-time",
            None,
            format!("jti's time {jti_time} differs from iat {iat}"),
            "read the clock once per token so that jti and iat agree".into(),
        );
    }
}

fn check_grants(report: &mut Report, claims: &Map<String, Value>, times: Times) {
    let Some(grants) = claims.get("grants") else {
        report.add(
            Severity::Error,
            "grants.missing",
            Some(20106),
            "the token has no grants claim".into(),
            "add a grants object with the identity and at least one product grant".into(),
        );
        return;
    };
    let Value::Object(grants) = grants else {
        report.add(
            Severity::Error,
            "grants.type",
            Some(20106),
            format!("grants is {}, not a JSON object", json_type(grants)),
            "write grants as an object such as {\"identity\":\"alice\",\"chat\":{…}}".into(),
        );
        return;
    };
    let identity = check_identity(report, grants);

    let mut products = Vec::new();
    for (key, value) in grants.iter().filter(|(key, _)| *key != "identity") {
        match Grant::from_json(key, value) {
            Ok(grant) => products.push(grant),
            Err(GrantJsonError::UnknownGrant { .. }) => report.add(
                Severity::Warning,
                "grants.unknown",
                None,
                format!("the grant {key:?} is not one Twilio's current SDKs use"),
                format!("use one of: {}", Grant::KEYS.join(", ")),
            ),
            Err(error) => report.add(
                Severity::Error,
                "grants.format",
                Some(20106),
                error.to_string(),
                "write the grant as the helper libraries do".into(),
            ),
        }
    }
    if grants.keys().all(|key| key == "identity") {
        report.add(
            Severity::Warning,
            "grants.empty",
            None,
            "the token has no product grant, so it allows nothing".into(),
            "add the grant for the SDK in use: chat, video, voice, data_sync, task_router or player"
                .into(),
        );
    }
    let keys: Vec<&str> = products.iter().map(Grant::key).collect();
    if keys.contains(&"ip_messaging") && keys.contains(&"chat") {
        report.add(
            Severity::Warning,
            "grants.legacy-ip-messaging",
            None,
            "the token has both the legacy ip_messaging grant and chat".into(),
            "drop ip_messaging unless Chat SDKs older than JavaScript 0.11, iOS 0.16 or Android \
             0.11 still use it"
                .into(),
        );
    }
    if keys.contains(&"voice")
        && let Some(identity) = identity
    {
        check_voice_identity(report, identity);
    }
    if keys.contains(&"video")
        && let Some(lifetime) = times
            .lifetime
            .filter(|lifetime| *lifetime > VIDEO_SESSION_CAP_SECS)
    {
        report.add(
            Severity::Warning,
            "grants.video-lifetime",
            None,
            format!(
                "the token lives {}, but Video ends a participant's session after 4 hours",
                format_duration(lifetime)
            ),
            "use a TTL of at most 4 hours (14400 seconds) for Video".into(),
        );
    }
}

fn check_identity<'a>(report: &mut Report, grants: &'a Map<String, Value>) -> Option<&'a str> {
    match grants.get("identity") {
        None => {
            report.add(
                Severity::Error,
                "grants.identity",
                Some(20106),
                "the token has no grants.identity".into(),
                "set the identity of the signed-in user; every client SDK needs one".into(),
            );
            None
        }
        Some(Value::String(identity)) => {
            if let Err(error) = crate::identity::validate_identity(identity) {
                report.add(
                    Severity::Warning,
                    "grants.identity-format",
                    None,
                    error.to_string(),
                    "use a stable user id of 1 to 256 printable characters".into(),
                );
            }
            Some(identity)
        }
        Some(other) => {
            report.add(
                Severity::Error,
                "grants.identity-type",
                Some(20106),
                format!("grants.identity is {}, not a string", json_type(other)),
                "write the identity as a JSON string, such as \"42\" rather than 42".into(),
            );
            None
        }
    }
}

fn check_voice_identity(report: &mut Report, identity: &str) {
    if let Some(bad) = identity
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
    {
        report.add(
            Severity::Warning,
            "grants.voice-identity",
            None,
            format!(
                "the identity {identity:?} contains {}: Twilio documents Voice identities as \
                 letters, digits and underscore only",
                describe_char(bad)
            ),
            "map the user to an identity of ASCII letters, digits and underscores for Voice".into(),
        );
    }
    // Voice client names longer than 256 characters fail with error 31105.
    let length = identity.chars().count();
    if length > 256 {
        report.add(
            Severity::Warning,
            "grants.voice-identity-length",
            Some(31105),
            format!("the identity is {length} characters long: Voice allows at most 256"),
            "use a shorter identity".into(),
        );
    }
}

fn describe_char(character: char) -> String {
    match character {
        ' ' => "a space".to_owned(),
        _ => format!("{character:?}"),
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
