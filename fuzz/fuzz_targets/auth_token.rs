//! Fuzzes authentication input: picking the token out of arbitrary `Cookie` and `Authorization`
//! header values, then verifying arbitrary tokens. Nothing may panic, and an accepted token
//! must be one the configuration allows: signed HS256 (the pinned algorithm, whatever the
//! header claims), not expired beyond the leeway, with a non-empty user id.
//!
//! Random strings rarely get past the signature check, so the input also carries a header and
//! claims (raw bytes, or well-formed JSON of either claim layout with fuzzed values) signed with
//! the verifier's own secret (HS256/384/512): that drives the fuzzer into header parsing,
//! algorithm pinning, expiry and both claim layouts.

#![no_main]

use arbitrary::Arbitrary;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chat_shared::auth::{EXP_LEEWAY_SECS, JwtVerifier, extract_token, unix_now};
use jsonwebtoken::{Algorithm, EncodingKey};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    cookie_headers: Vec<&'a str>,
    authorization: Option<&'a str>,
    cookie_name: &'a str,
    secret: &'a [u8],
    signed: Signed<'a>,
}

/// A token signed with the verifier's secret, with a fuzzed header and claims.
#[derive(Debug, Arbitrary)]
struct Signed<'a> {
    header: HeaderJson<'a>,
    claims: Claims<'a>,
    algorithm: Hmac,
}

/// The JOSE header: raw bytes, or a well-formed one naming some algorithm.
#[derive(Debug, Arbitrary)]
enum HeaderJson<'a> {
    Raw(&'a [u8]),
    Named {
        alg: AlgName<'a>,
        typ: Option<&'a str>,
    },
}

#[derive(Debug, Arbitrary)]
enum AlgName<'a> {
    Hs256,
    Hs384,
    Hs512,
    None,
    Rs256,
    Es256,
    Other(&'a str),
}

/// The claims: raw bytes, or either layout the verifier accepts, with fuzzed values.
#[derive(Debug, Arbitrary)]
enum Claims<'a> {
    Raw(&'a [u8]),
    Flat {
        sub: Option<Id<'a>>,
        name: Option<&'a str>,
        role: Option<&'a str>,
        exp: Exp,
    },
    Nested {
        id: Option<Id<'a>>,
        username: Option<&'a str>,
        global_name: Option<&'a str>,
        role: Option<&'a str>,
        outer_role: Option<&'a str>,
        exp: Exp,
    },
}

#[derive(Debug, Arbitrary)]
enum Id<'a> {
    Text(&'a str),
    Number(u64),
    Negative(i64),
    Float(f64),
    Flag(bool),
}

#[derive(Debug, Arbitrary)]
enum Exp {
    FromNow(i32),
    Absolute(u64),
    Text,
    Missing,
}

#[derive(Debug, Clone, Copy, Arbitrary)]
enum Hmac {
    Hs256,
    Hs384,
    Hs512,
}

impl Hmac {
    fn algorithm(self) -> Algorithm {
        match self {
            Hmac::Hs256 => Algorithm::HS256,
            Hmac::Hs384 => Algorithm::HS384,
            Hmac::Hs512 => Algorithm::HS512,
        }
    }
}

fuzz_target!(|input: Input<'_>| {
    let verifier = JwtVerifier::hs256(input.secret);
    let picked = extract_token(
        input.cookie_headers.iter().copied(),
        input.authorization,
        input.cookie_name,
    );
    if let Some(token) = picked {
        assert!(!token.is_empty(), "an extracted token is never empty");
        let from_input = input.cookie_headers.iter().any(|h| h.contains(token))
            || input.authorization.is_some_and(|a| a.contains(token));
        assert!(from_input, "an extracted token comes from the headers");
        check_verdict(&verifier, token);
    }
    if let Some(token) = sign(&input.signed, input.secret) {
        check_verdict(&verifier, &token);
    }
});

/// Verifies `token`; when accepted, checks what acceptance promises.
fn check_verdict(verifier: &JwtVerifier, token: &str) {
    let Ok(verified) = verifier.verify(token) else {
        return;
    };
    assert!(!verified.user.id.is_empty(), "accepted without a user id");
    assert!(
        verified.exp.saturating_add(EXP_LEEWAY_SECS + 2) >= unix_now(),
        "accepted an expired token (exp {})",
        verified.exp
    );
    match jsonwebtoken::decode_header(token) {
        Ok(header) => assert_eq!(header.alg, Algorithm::HS256, "accepted another algorithm"),
        Err(error) => panic!("accepted a token whose header does not parse: {error}"),
    }
}

/// `base64url(header).base64url(claims).signature` with the secret and the chosen HMAC.
fn sign(signed: &Signed<'_>, secret: &[u8]) -> Option<String> {
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(signed.header.bytes()),
        URL_SAFE_NO_PAD.encode(signed.claims.bytes())
    );
    let key = EncodingKey::from_secret(secret);
    let signature =
        jsonwebtoken::crypto::sign(message.as_bytes(), &key, signed.algorithm.algorithm()).ok()?;
    Some(format!("{message}.{signature}"))
}

impl HeaderJson<'_> {
    fn bytes(&self) -> Vec<u8> {
        match self {
            HeaderJson::Raw(bytes) => bytes.to_vec(),
            HeaderJson::Named { alg, typ } => {
                let alg = match alg {
                    AlgName::Hs256 => "HS256",
                    AlgName::Hs384 => "HS384",
                    AlgName::Hs512 => "HS512",
                    AlgName::None => "none",
                    AlgName::Rs256 => "RS256",
                    AlgName::Es256 => "ES256",
                    AlgName::Other(name) => name,
                };
                json!({"alg": alg, "typ": typ}).to_string().into_bytes()
            }
        }
    }
}

impl Claims<'_> {
    fn bytes(&self) -> Vec<u8> {
        let value = match self {
            Claims::Raw(bytes) => return bytes.to_vec(),
            Claims::Flat {
                sub,
                name,
                role,
                exp,
            } => {
                let mut claims =
                    json!({"sub": sub.as_ref().map(Id::value), "name": name, "role": role});
                exp.put(&mut claims);
                claims
            }
            Claims::Nested {
                id,
                username,
                global_name,
                role,
                outer_role,
                exp,
            } => {
                let user = json!({
                    "id": id.as_ref().map(Id::value),
                    "username": username,
                    "globalName": global_name,
                    "role": role,
                });
                let mut claims = json!({"user": user, "role": outer_role});
                exp.put(&mut claims);
                claims
            }
        };
        value.to_string().into_bytes()
    }
}

impl Id<'_> {
    fn value(&self) -> Value {
        match self {
            Id::Text(text) => json!(text),
            Id::Number(n) => json!(n),
            Id::Negative(n) => json!(n),
            Id::Float(f) => json!(f),
            Id::Flag(b) => json!(b),
        }
    }
}

impl Exp {
    fn put(&self, claims: &mut Value) {
        let exp = match self {
            Exp::FromNow(delta) => json!(unix_now() as i64 + i64::from(*delta)),
            Exp::Absolute(at) => json!(at),
            Exp::Text => json!("tomorrow"),
            Exp::Missing => return,
        };
        claims["exp"] = exp;
    }
}
