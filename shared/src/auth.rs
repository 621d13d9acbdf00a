//! JWT verification (and minting, for dev login and tests). The algorithm is pinned by
//! configuration, never read from the token; `exp` is required. Both claim layouts are accepted:
//! flat `{sub, name, role}` and the original nested `{user: {id, username, globalName, role}}`.
//! `nbf` is honoured; `iss` and `aud` are checked when configured ([`JwtVerifier::expect_claims`]).
//! The bot's identity (id `bot`, role `bot`) is never taken from a token: the bot worker speaks
//! over the bus, so a token claiming it is forged or misissued and is refused.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::protocol::identity::{BOT_USER_ID, Role, UserInfo};

/// Leeway on `exp`, in seconds.
pub const EXP_LEEWAY_SECS: u64 = 5;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("token rejected: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
    #[error("token has no user id (neither `sub` nor `user.id`)")]
    MissingSubject,
    #[error("cannot read the public key file {path}: {source}")]
    KeyFile {
        path: String,
        source: std::io::Error,
    },
    #[error("the public key in {path} is not a PEM {alg:?} key: {source}")]
    BadKey {
        path: String,
        alg: Algorithm,
        source: jsonwebtoken::errors::Error,
    },
    #[error("tokens can only be minted with an HS256 secret")]
    CannotMint,
    #[error("a token may not claim the bot's identity (role or id `bot`)")]
    ReservedIdentity,
}

/// A verified token: who, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    pub user: UserInfo,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
}

/// Claims as they may appear in a token (both layouts).
#[derive(Debug, Deserialize)]
struct RawClaims {
    sub: Option<IdValue>,
    name: Option<String>,
    role: Option<String>,
    user: Option<NestedUser>,
    exp: u64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NestedUser {
    id: Option<IdValue>,
    username: Option<String>,
    global_name: Option<String>,
    role: Option<String>,
}

/// An id that may be a string or a number (Discord snowflakes arrive both ways).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum IdValue {
    Text(String),
    Number(u64),
}

impl IdValue {
    fn into_string(self) -> String {
        match self {
            IdValue::Text(s) => s,
            IdValue::Number(n) => n.to_string(),
        }
    }
}

/// Flat claims as minted by this system.
#[derive(Debug, Serialize)]
struct MintClaims<'a> {
    sub: &'a str,
    name: &'a str,
    role: &'a str,
    iat: u64,
    exp: u64,
}

/// How tokens are checked: one algorithm and its key.
#[derive(Clone)]
pub struct JwtVerifier {
    validation: Validation,
    decoding: DecodingKey,
    encoding: Option<EncodingKey>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("algorithms", &self.validation.algorithms)
            .finish_non_exhaustive()
    }
}

impl JwtVerifier {
    /// HS256 with a shared secret (can also mint tokens).
    pub fn hs256(secret: &[u8]) -> Self {
        JwtVerifier {
            validation: validation(Algorithm::HS256),
            decoding: DecodingKey::from_secret(secret),
            encoding: Some(EncodingKey::from_secret(secret)),
        }
    }

    /// RS256 or ES256 with a PEM public key read from `path` (verification only).
    pub fn from_public_key_file(path: &str, alg: Algorithm) -> Result<Self, AuthError> {
        let pem = std::fs::read(path).map_err(|source| AuthError::KeyFile {
            path: path.to_owned(),
            source,
        })?;
        let decoding = match alg {
            Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(&pem),
            _ => DecodingKey::from_rsa_pem(&pem),
        }
        .map_err(|source| AuthError::BadKey {
            path: path.to_owned(),
            alg,
            source,
        })?;
        Ok(JwtVerifier {
            validation: validation(alg),
            decoding,
            encoding: None,
        })
    }

    /// Verifies signature, algorithm and expiry, and reads the identity.
    pub fn verify(&self, token: &str) -> Result<VerifiedToken, AuthError> {
        let data = jsonwebtoken::decode::<RawClaims>(token, &self.decoding, &self.validation)?;
        let claims = data.claims;
        let (id, name, role) = match claims.user {
            Some(user) => (
                user.id.map(IdValue::into_string),
                user.global_name
                    .filter(|n| !n.trim().is_empty())
                    .or(user.username),
                user.role.or(claims.role),
            ),
            None => (
                claims.sub.map(IdValue::into_string),
                claims.name,
                claims.role,
            ),
        };
        let id = id
            .filter(|id| !id.is_empty())
            .ok_or(AuthError::MissingSubject)?;
        let name = name
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| id.clone());
        let role = Role::parse_lenient(role.as_deref());
        if role == Role::Bot || id == BOT_USER_ID {
            return Err(AuthError::ReservedIdentity);
        }
        Ok(VerifiedToken {
            user: UserInfo::new(id, name, role),
            exp: claims.exp,
        })
    }

    /// Mints a flat-claims HS256 token valid for `ttl_secs` (dev login, tests, load tests).
    pub fn mint(&self, user: &UserInfo, ttl_secs: u64) -> Result<String, AuthError> {
        let key = self.encoding.as_ref().ok_or(AuthError::CannotMint)?;
        let iat = unix_now();
        let claims = MintClaims {
            sub: &user.id,
            name: &user.name,
            role: user.role.as_str(),
            iat,
            exp: iat + ttl_secs,
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            key,
        )?)
    }

    /// Also requires `iss` to equal `issuer` and `aud` to contain `audience`, each when set.
    pub fn expect_claims(mut self, issuer: Option<&str>, audience: Option<&str>) -> Self {
        let mut required = vec!["exp"];
        if let Some(issuer) = issuer {
            self.validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        if let Some(audience) = audience {
            self.validation.set_audience(&[audience]);
            self.validation.validate_aud = true;
            required.push("aud");
        }
        self.validation.set_required_spec_claims(&required);
        self
    }

    /// Whether this verifier can mint tokens (HS256).
    pub fn can_mint(&self) -> bool {
        self.encoding.is_some()
    }
}

fn validation(alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.leeway = EXP_LEEWAY_SECS;
    v.validate_exp = true;
    v.validate_nbf = true;
    v.set_required_spec_claims(&["exp"]);
    v.validate_aud = false;
    v
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Picks the token from a `Cookie` header value (cookie `cookie_name`) first, then from an
/// `Authorization: Bearer` value.
pub fn extract_token<'a>(
    cookie_headers: impl IntoIterator<Item = &'a str>,
    authorization: Option<&'a str>,
    cookie_name: &str,
) -> Option<&'a str> {
    let from_cookie = cookie_headers.into_iter().find_map(|header| {
        header.split(';').find_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            (name.trim() == cookie_name)
                .then(|| value.trim().trim_matches('"'))
                .filter(|v| !v.is_empty())
        })
    });
    from_cookie.or_else(|| {
        let auth = authorization?.trim();
        let (scheme, token) = auth.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim())
            .filter(|t| !t.is_empty())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(claims: serde_json::Value, secret: &[u8]) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret),
        )
        .expect("encode")
    }

    #[test]
    fn flat_claims() {
        let v = JwtVerifier::hs256(b"s");
        let t = raw(
            serde_json::json!({"sub":"u1","name":"Ann","role":"club","exp":unix_now()+60}),
            b"s",
        );
        let got = v.verify(&t).expect("valid");
        assert_eq!(got.user, UserInfo::new("u1", "Ann", Role::Club));
    }

    #[test]
    fn nested_claims_prefer_global_name() {
        let v = JwtVerifier::hs256(b"s");
        let t = raw(
            serde_json::json!({"user":{"id":123,"username":"ann","globalName":"Ann A","role":"admin"},"exp":unix_now()+60}),
            b"s",
        );
        let got = v.verify(&t).expect("valid");
        assert_eq!(got.user, UserInfo::new("123", "Ann A", Role::Admin));
    }

    #[test]
    fn missing_exp_expired_and_wrong_secret_are_refused() {
        let v = JwtVerifier::hs256(b"s");
        assert!(
            v.verify(&raw(serde_json::json!({"sub":"u1"}), b"s"))
                .is_err()
        );
        let old = raw(serde_json::json!({"sub":"u1","exp":unix_now()-3600}), b"s");
        assert!(v.verify(&old).is_err());
        let other = raw(serde_json::json!({"sub":"u1","exp":unix_now()+60}), b"x");
        assert!(v.verify(&other).is_err());
    }

    #[test]
    fn the_bot_identity_is_never_taken_from_a_token() {
        let v = JwtVerifier::hs256(b"s");
        let exp = unix_now() + 60;
        for claims in [
            serde_json::json!({"sub":"u1","role":"bot","exp":exp}),
            serde_json::json!({"sub":"u1","role":" BOT ","exp":exp}),
            serde_json::json!({"sub":"bot","role":"member","exp":exp}),
            serde_json::json!({"user":{"id":"u1","role":"bot"},"exp":exp}),
            serde_json::json!({"user":{"id":"bot"},"exp":exp}),
        ] {
            let got = v.verify(&raw(claims.clone(), b"s"));
            assert!(
                matches!(got, Err(AuthError::ReservedIdentity)),
                "{claims}: {got:?}"
            );
        }
    }

    #[test]
    fn nbf_in_the_future_is_refused() {
        let v = JwtVerifier::hs256(b"s");
        let now = unix_now();
        let later = raw(
            serde_json::json!({"sub":"u1","nbf":now+3600,"exp":now+7200}),
            b"s",
        );
        assert!(v.verify(&later).is_err());
        let started = raw(
            serde_json::json!({"sub":"u1","nbf":now-10,"exp":now+60}),
            b"s",
        );
        assert!(v.verify(&started).is_ok());
    }

    #[test]
    fn issuer_and_audience_when_configured() {
        let exp = unix_now() + 60;
        let v = JwtVerifier::hs256(b"s").expect_claims(Some("https://id.example"), Some("chat"));
        let table = [
            (serde_json::json!({"sub":"u1","exp":exp}), false),
            (
                serde_json::json!({"sub":"u1","iss":"https://id.example","exp":exp}),
                false,
            ),
            (
                serde_json::json!({"sub":"u1","aud":"chat","exp":exp}),
                false,
            ),
            (
                serde_json::json!({"sub":"u1","iss":"https://evil.example","aud":"chat","exp":exp}),
                false,
            ),
            (
                serde_json::json!({"sub":"u1","iss":"https://id.example","aud":"other","exp":exp}),
                false,
            ),
            (
                serde_json::json!({"sub":"u1","iss":"https://id.example","aud":"chat","exp":exp}),
                true,
            ),
            (
                serde_json::json!({"sub":"u1","iss":"https://id.example","aud":["x","chat"],"exp":exp}),
                true,
            ),
        ];
        for (claims, ok) in table {
            assert_eq!(v.verify(&raw(claims.clone(), b"s")).is_ok(), ok, "{claims}");
        }
        let unconfigured = JwtVerifier::hs256(b"s");
        let any = raw(
            serde_json::json!({"sub":"u1","iss":"x","aud":"y","exp":exp}),
            b"s",
        );
        assert!(unconfigured.verify(&any).is_ok());
    }

    #[test]
    fn mint_round_trips() {
        let v = JwtVerifier::hs256(b"s");
        let user = UserInfo::new("u9", "Zed", Role::Member);
        let t = v.mint(&user, 60).expect("mint");
        assert_eq!(v.verify(&t).expect("valid").user, user);
    }

    #[test]
    fn token_sources() {
        assert_eq!(
            extract_token(
                ["a=1; slimy_admin_token=abc"],
                Some("Bearer zzz"),
                "slimy_admin_token"
            ),
            Some("abc")
        );
        assert_eq!(
            extract_token([], Some("bearer zzz"), "slimy_admin_token"),
            Some("zzz")
        );
        assert_eq!(extract_token(["x=1"], None, "slimy_admin_token"), None);
    }
}
