//! Every token the official libraries minted in the fixture, verified with its case's secret at
//! the case's time. Tokens this library's rules reject are listed with their exact error.

use serde_json::Value;
use twilio_access_token::{SidError, SidKind, SidProblem, Verifier, VerifierError, VerifyError};

const VECTORS: &str = include_str!("fixtures/vectors-shared.json");

type Outcome = Result<(), Result<VerifyError, VerifierError>>;

fn verify_at(input: &Value, jwt: &str, now: u64) -> Outcome {
    let verifier = Verifier::builder(input["account_sid"].as_str().expect("account_sid"))
        .key(
            input["api_key_sid"].as_str().expect("api_key_sid"),
            input["api_secret"].as_str().expect("api_secret"),
        )
        .build()
        .map_err(Err)?;
    verifier.verify_at(jwt, now).map(|_| ()).map_err(Ok)
}

fn case_time(input: &Value) -> u64 {
    input["fixed_now_ms"].as_u64().expect("fixed_now_ms") / 1000
}

/// The outcome this library must give for a case's token from `library` at the case's time.
fn expected(id: &str, library: &str) -> Outcome {
    let rejected = |error| Err(Ok(error));
    match (id, library) {
        ("no_identity_no_grants" | "region_au1_no_identity", "python") => {
            rejected(VerifyError::MissingIdentity)
        }
        ("identity_integer", "python") => {
            rejected(VerifyError::IdentityNotString { value: "42".into() })
        }
        ("identity_float", "python") => rejected(VerifyError::IdentityNotString {
            value: "1.5".into(),
        }),
        // twilio-node drops a non-integer identity, so its token has none.
        ("identity_float", "node") => rejected(VerifyError::MissingIdentity),
        ("ttl_86401", "python") => rejected(VerifyError::LifetimeTooLong {
            lifetime: 86_401,
            from: "nbf",
            max: 86_400,
        }),
        ("ttl_86401", "node") => rejected(VerifyError::LifetimeTooLong {
            lifetime: 86_401,
            from: "iat",
            max: 86_400,
        }),
        ("ttl_float", "python") => rejected(VerifyError::InvalidTime {
            claim: "exp",
            value: "1700000001.5".into(),
        }),
        ("nbf_explicit_future", _) => rejected(VerifyError::NotYetValid {
            nbf: 1_700_000_600,
            now: 1_700_000_000,
            leeway: 60,
        }),
        ("alg_hs512", _) => rejected(VerifyError::UnsupportedAlgorithm {
            alg: Some("\"HS512\"".into()),
        }),
        // The account SID cannot even be configured.
        ("sids_unusual_values", _) => Err(Err(VerifierError::InvalidSid(SidError {
            expected: SidKind::Account,
            value: "AC-not-a-real-sid".into(),
            problem: SidProblem::WrongLength { found: 15 },
        }))),
        _ => Ok(()),
    }
}

fn cases() -> Vec<Value> {
    let document: Value = serde_json::from_str(VECTORS).expect("fixture is JSON");
    document["vectors"]
        .as_array()
        .expect("vectors list")
        .clone()
}

#[test]
fn official_tokens_verify_or_named_error() {
    let mut checked = 0;
    for case in cases() {
        let id = case["id"].as_str().expect("id");
        for library in ["python", "node"] {
            let block = &case[library];
            if block["ok"] != true {
                continue;
            }
            let jwt = block["jwt"].as_str().expect("jwt");
            let outcome = verify_at(&case["input"], jwt, case_time(&case["input"]));
            assert_eq!(outcome, expected(id, library), "{id} from {library}");
            checked += 1;
        }
    }
    assert!(checked >= 96, "only {checked} tokens checked");
}

#[test]
fn future_nbf_valid_once_reached() {
    let case = cases()
        .into_iter()
        .find(|case| case["id"] == "nbf_explicit_future")
        .expect("case");
    let nbf = case["input"]["nbf"].as_u64().expect("nbf");
    for library in ["python", "node"] {
        let jwt = case[library]["jwt"].as_str().expect("jwt");
        assert_eq!(
            verify_at(&case["input"], jwt, nbf - 60),
            Ok(()),
            "{library} within leeway"
        );
        assert_eq!(
            verify_at(&case["input"], jwt, nbf - 61),
            Err(Ok(VerifyError::NotYetValid {
                nbf,
                now: nbf - 61,
                leeway: 60
            })),
            "{library} one second before the leeway"
        );
    }
}

#[test]
fn official_tokens_fail_with_wrong_secret() {
    for case in cases() {
        let id = case["id"].as_str().expect("id");
        if case["node"]["ok"] != true || expected(id, "node") != Ok(()) {
            continue;
        }
        let mut input = case["input"].clone();
        input["api_secret"] = Value::from("anotherSecretThatIsNotTheRightOne");
        let jwt = case["node"]["jwt"].as_str().expect("jwt");
        let api_key_sid = input["api_key_sid"].as_str().expect("sid").to_owned();
        assert_eq!(
            verify_at(&input, jwt, case_time(&input)),
            Err(Ok(VerifyError::BadSignature { api_key_sid })),
            "{id}"
        );
    }
}
