//! Tokens signed by PyJWT with algorithms other than HS256, and key-confusion tokens that use
//! an RSA public key PEM as the HMAC secret (`fixtures/alg-tokens.json`, made by
//! `scripts/interop/make_alg_tokens.py`).
//!
//! The verifier must reject every one with the exact error, and must reject a non-HS256 `alg`
//! before it looks at the signature.

mod forge;

use serde_json::Value;
use twilio_access_token::{ApiSecret, DiagnoseContext, Verifier, VerifyError, diagnose};

const FIXTURE: &str = include_str!("fixtures/alg-tokens.json");

/// The fixture tokens' issue time, in Unix seconds: inside their one-hour lifetime.
const NOW: u64 = 1_700_000_000;

struct Fixture {
    document: Value,
}

impl Fixture {
    fn load() -> Fixture {
        Fixture {
            document: serde_json::from_str(FIXTURE).expect("fixture is JSON"),
        }
    }

    fn meta(&self, field: &str) -> &str {
        self.document["meta"][field].as_str().expect(field)
    }

    fn tokens(&self) -> impl Iterator<Item = (&str, &str)> {
        self.document["tokens"]
            .as_array()
            .expect("tokens list")
            .iter()
            .map(|case| {
                let id = case["id"].as_str().expect("id");
                (id, case["jwt"].as_str().expect("jwt"))
            })
    }

    fn token(&self, id: &str) -> &str {
        self.tokens()
            .find(|(case, _)| *case == id)
            .map(|(_, jwt)| jwt)
            .unwrap_or_else(|| panic!("no token {id} in the fixture"))
    }

    /// Builds a verifier with the fixture's account and the key whose secret is `secret`.
    fn verifier(&self, secret: &str) -> Verifier {
        Verifier::builder(self.meta("account_sid"))
            .key(self.meta("api_key_sid"), ApiSecret::new(secret))
            .build()
            .expect("fixture SIDs are valid")
    }

    fn public_key_pem(&self) -> &str {
        self.document["rsa_public_key_pem"]
            .as_str()
            .expect("rsa_public_key_pem")
    }
}

/// The error each fixture token must get from a verifier holding the real API secret.
fn expected(id: &str, api_key_sid: &str) -> VerifyError {
    let alg = |name: &str| VerifyError::UnsupportedAlgorithm {
        alg: Some(format!("\"{name}\"")),
    };
    match id {
        "hs384" => alg("HS384"),
        "hs512" => alg("HS512"),
        "none" => alg("none"),
        "rs256" | "rs256_header_pem_hmac" => alg("RS256"),
        "ps256" => alg("PS256"),
        "es256" => alg("ES256"),
        "hs256_pem_secret" => VerifyError::BadSignature {
            api_key_sid: api_key_sid.to_owned(),
        },
        other => panic!("no expectation for fixture token {other}"),
    }
}

#[test]
fn fixture_tokens_rejected_exactly() {
    let fixture = Fixture::load();
    let verifier = fixture.verifier(fixture.meta("api_secret"));
    let api_key_sid = fixture.meta("api_key_sid");
    let mut checked = 0;
    for (id, jwt) in fixture.tokens() {
        let error = verifier.verify_at(jwt, NOW).expect_err(id);
        assert_eq!(error, expected(id, api_key_sid), "{id}");
        let code = match error {
            VerifyError::BadSignature { .. } => 20107,
            _ => 20102,
        };
        assert_eq!(error.twilio_code(), code, "{id}");
        checked += 1;
    }
    assert_eq!(checked, 8);
}

#[test]
fn pem_secret_token_is_hmac_of_pem() {
    // Shows the fixture is what it claims: a verifier wrongly given the public key as its
    // secret accepts the HS256 confusion token.
    let fixture = Fixture::load();
    let misconfigured = fixture.verifier(fixture.public_key_pem());
    let claims = misconfigured
        .verify_at(fixture.token("hs256_pem_secret"), NOW)
        .expect("HMAC-SHA256 keyed with the PEM");
    assert_eq!(claims.identity, "alice");
}

#[test]
fn rs256_header_rejected_even_with_pem_secret() {
    let fixture = Fixture::load();
    let misconfigured = fixture.verifier(fixture.public_key_pem());
    assert_eq!(
        misconfigured.verify_at(fixture.token("rs256_header_pem_hmac"), NOW),
        Err(VerifyError::UnsupportedAlgorithm {
            alg: Some("\"RS256\"".into())
        })
    );
}

#[test]
fn algorithm_rejected_before_signature() {
    let fixture = Fixture::load();
    let verifier = fixture.verifier(fixture.meta("api_secret"));
    let api_key_sid = fixture.meta("api_key_sid");
    for (id, jwt) in fixture.tokens() {
        if id == "hs256_pem_secret" {
            continue;
        }
        let signing_input = jwt.rsplit_once('.').expect("three parts").0;
        // Valid base64url that is no signature of any algorithm, and no signature at all.
        for garbage in ["Z2FyYmFnZQ", "", "AAAA"] {
            let tampered = format!("{signing_input}.{garbage}");
            assert_eq!(
                verifier.verify_at(&tampered, NOW),
                Err(expected(id, api_key_sid)),
                "{id} with signature {garbage:?}"
            );
        }
    }
}

#[test]
fn algorithm_rejected_before_issuer_lookup() {
    // A verifier configured without the token's key still reports the algorithm first.
    let fixture = Fixture::load();
    let stranger = Verifier::builder(fixture.meta("account_sid"))
        .key(forge::SECOND_KEY_SID, ApiSecret::new(forge::SECOND_SECRET))
        .build()
        .expect("builds");
    let error = stranger
        .verify_at(fixture.token("rs256"), NOW)
        .expect_err("RS256");
    assert_eq!(
        error,
        VerifyError::UnsupportedAlgorithm {
            alg: Some("\"RS256\"".into())
        }
    );
}

#[test]
fn diagnose_reports_algorithm_with_fix() {
    let fixture = Fixture::load();
    let context = DiagnoseContext::new(NOW)
        .key(fixture.meta("api_key_sid"), fixture.meta("api_secret"))
        .account_sid(fixture.meta("account_sid"));
    for (id, jwt) in fixture.tokens() {
        if id == "hs256_pem_secret" {
            continue;
        }
        let diagnosis = diagnose(jwt, &context);
        let header = diagnosis
            .findings
            .iter()
            .find(|finding| finding.check == "header")
            .unwrap_or_else(|| panic!("{id}: no header finding"));
        assert_eq!(header.twilio_code, Some(20102), "{id}");
        let fix_names_unsigned = header.fix.contains("unsigned token (alg none)");
        assert_eq!(fix_names_unsigned, id == "none", "{id}: {}", header.fix);
    }
}
