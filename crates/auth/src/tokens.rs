//! User and permission tokens (DESIGN §5): RS256 JWTs whose kind is pinned by a `typ` claim, so no token of one
//! kind ever passes as the other. Verification never uses `jku`, `x5u`, `jwk` or `x5c` headers (a token carrying
//! one is refused), and looks a `kid` up only among keys already in memory.

use std::sync::Arc;
use std::time::Duration;

use conductor_core::{Timestamp, UserId};
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::keys::KeySet;

/// Clock skew tolerated on `exp`, `nbf` and `iat`.
pub const LEEWAY: Duration = Duration::from_secs(60);
/// Longer than any token we issue: a larger one is refused before parsing.
const MAX_TOKEN_LEN: usize = 16 * 1024;

pub const USER_TOKEN: &str = "user";
pub const PERMISSION_TOKEN: &str = "permission";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token is not signed with RS256")]
    WrongAlgorithm,
    #[error("the token carries a `{0}` header, which is never trusted")]
    ForbiddenHeader(&'static str),
    #[error("the token was signed by an unknown key")]
    UnknownKey,
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("this is not a {expected} token")]
    WrongKind { expected: &'static str },
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was issued by someone else")]
    WrongIssuer,
    #[error("the token is meant for another audience")]
    WrongAudience,
    #[error("signing failed: {0}")]
    Signing(String),
}

/// The claims of a user token: who is logged in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserClaims {
    pub typ: String,
    pub userid: UserId,
    pub iss: String,
    pub iat: i64,
    pub exp: i64,
}

/// The claims of a permission token: what a user may do with one service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PermissionClaims {
    pub typ: String,
    pub userid: UserId,
    pub service: String,
    pub permissions: Map<String, Value>,
    pub iss: String,
    pub iat: i64,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// The id of the API key the token was issued for, when it was: our own endpoints check that the key is
    /// still live on every use, so revoking a key stops its tokens here at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
}

impl PermissionClaims {
    /// Whether the token grants `permission` (only JSON `true` does).
    pub fn grants(&self, permission: &str) -> bool {
        self.permissions.get(permission) == Some(&Value::Bool(true))
    }
}

/// Where verification finds keys: a key set of our own, or keys fetched from a JWKS.
pub(crate) trait KeyLookup {
    fn key(&self, kid: Option<&str>) -> Option<DecodingKey>;
}

impl KeyLookup for KeySet {
    fn key(&self, kid: Option<&str>) -> Option<DecodingKey> {
        self.verifying_key(kid).cloned()
    }
}

/// What verification checks besides the signature.
pub(crate) struct Expectations<'a> {
    pub kind: &'static str,
    pub issuer: Option<&'a str>,
    pub now: Timestamp,
}

/// Verifies a token's header, signature and time claims, then reads its claims as `C`.
pub(crate) fn verify<C: DeserializeOwned>(
    token: &str,
    keys: &impl KeyLookup,
    expect: &Expectations<'_>,
) -> Result<C, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed);
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
    if header.alg != Algorithm::RS256 {
        return Err(TokenError::WrongAlgorithm);
    }
    for (present, name) in [
        (header.jku.is_some(), "jku"),
        (header.x5u.is_some(), "x5u"),
        (header.jwk.is_some(), "jwk"),
        (header.x5c.is_some(), "x5c"),
        (header.crit.is_some(), "crit"),
    ] {
        if present {
            return Err(TokenError::ForbiddenHeader(name));
        }
    }
    let key = keys.key(header.kid.as_deref()).ok_or(TokenError::UnknownKey)?;

    // The signature only: time and kind are checked below against the injected clock.
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind;
        match e.kind() {
            ErrorKind::InvalidSignature | ErrorKind::InvalidRsaKey(_) => TokenError::BadSignature,
            ErrorKind::InvalidAlgorithm => TokenError::WrongAlgorithm,
            _ => TokenError::Malformed,
        }
    })?;
    let claims = data.claims;

    if claims.get("typ").and_then(Value::as_str) != Some(expect.kind) {
        return Err(TokenError::WrongKind {
            expected: expect.kind,
        });
    }
    let now = expect.now.as_millis() / 1000;
    let leeway = LEEWAY.as_secs() as i64;
    let seconds = |name: &str| {
        claims
            .get(name)
            .map(|v| v.as_i64().ok_or(TokenError::Malformed))
            .transpose()
    };
    // Every token we issue expires; one without `exp` is not ours.
    let exp = seconds("exp")?.ok_or(TokenError::Malformed)?;
    if now > exp.saturating_add(leeway) {
        return Err(TokenError::Expired);
    }
    for claim in ["nbf", "iat"] {
        if seconds(claim)?.is_some_and(|at| at > now.saturating_add(leeway)) {
            return Err(TokenError::NotYetValid);
        }
    }
    if let Some(issuer) = expect.issuer
        && claims.get("iss").and_then(Value::as_str) != Some(issuer)
    {
        return Err(TokenError::WrongIssuer);
    }
    serde_json::from_value(Value::Object(claims)).map_err(|_| TokenError::Malformed)
}

/// Token lifetimes and options, from `auth.*`.
#[derive(Clone, Debug)]
pub struct TokenPolicy {
    /// `iss` of every token: the service's base URL.
    pub issuer: String,
    pub user_ttl: Duration,
    pub permission_ttl: Duration,
    /// Put `aud = service` in permission tokens.
    pub permission_aud: bool,
}

/// Issues and verifies Conductor's own tokens with its key set.
#[derive(Clone, Debug)]
pub struct TokenIssuer {
    keys: Arc<KeySet>,
    policy: TokenPolicy,
}

impl TokenIssuer {
    pub fn new(keys: Arc<KeySet>, policy: TokenPolicy) -> Self {
        Self { keys, policy }
    }

    pub fn keys(&self) -> &KeySet {
        &self.keys
    }

    pub fn issue_user(&self, userid: &UserId, now: Timestamp) -> Result<String, TokenError> {
        let (iat, exp) = self.window(now, self.policy.user_ttl);
        let claims = UserClaims {
            typ: USER_TOKEN.into(),
            userid: userid.clone(),
            iss: self.policy.issuer.clone(),
            iat,
            exp,
        };
        self.sign(&claims)
    }

    pub fn issue_permission(
        &self,
        userid: &UserId,
        service: &str,
        permissions: Map<String, Value>,
        now: Timestamp,
    ) -> Result<String, TokenError> {
        let (iat, exp) = self.window(now, self.policy.permission_ttl);
        self.sign(&self.permission_claims(userid, service, permissions, (iat, exp)))
    }

    /// A permission token for an API key: it names the key, lives at most `ttl` (shorter than a user's, as other
    /// services cannot ask whether the key was revoked) and never past the key's own expiry.
    pub fn issue_key_permission(
        &self,
        userid: &UserId,
        service: &str,
        permissions: Map<String, Value>,
        key: (&str, Option<Timestamp>),
        ttl: Duration,
        now: Timestamp,
    ) -> Result<String, TokenError> {
        let (iat, mut exp) = self.window(now, ttl.min(self.policy.permission_ttl));
        if let Some(expires) = key.1 {
            exp = exp.min(expires.as_millis() / 1000);
        }
        let mut claims = self.permission_claims(userid, service, permissions, (iat, exp));
        claims.api_key = Some(key.0.to_owned());
        self.sign(&claims)
    }

    fn permission_claims(
        &self,
        userid: &UserId,
        service: &str,
        permissions: Map<String, Value>,
        (iat, exp): (i64, i64),
    ) -> PermissionClaims {
        PermissionClaims {
            typ: PERMISSION_TOKEN.into(),
            userid: userid.clone(),
            service: service.to_owned(),
            permissions,
            iss: self.policy.issuer.clone(),
            iat,
            exp,
            aud: self.policy.permission_aud.then(|| service.to_owned()),
            api_key: None,
        }
    }

    pub fn verify_user(&self, token: &str, now: Timestamp) -> Result<UserClaims, TokenError> {
        verify(token, self.keys.as_ref(), &self.expect(USER_TOKEN, now))
    }

    pub fn verify_permission(&self, token: &str, now: Timestamp) -> Result<PermissionClaims, TokenError> {
        let claims: PermissionClaims =
            verify(token, self.keys.as_ref(), &self.expect(PERMISSION_TOKEN, now))?;
        if claims.aud.as_ref().is_some_and(|aud| aud != &claims.service) {
            return Err(TokenError::WrongAudience);
        }
        Ok(claims)
    }

    fn expect(&self, kind: &'static str, now: Timestamp) -> Expectations<'_> {
        Expectations {
            kind,
            issuer: Some(&self.policy.issuer),
            now,
        }
    }

    fn window(&self, now: Timestamp, ttl: Duration) -> (i64, i64) {
        let iat = now.as_millis() / 1000;
        (
            iat,
            iat.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)),
        )
    }

    fn sign<C: Serialize>(&self, claims: &C) -> Result<String, TokenError> {
        let (kid, key) = self.keys.signing_key();
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, key).map_err(|e| TokenError::Signing(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::LazyLock;

    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use jsonwebtoken::EncodingKey;
    use secrecy::ExposeSecret;
    use serde_json::json;

    use super::*;
    use crate::keys::GeneratedKeys;

    // Key generation is slow in debug builds: one pair for all tests.
    static PAIR: LazyLock<GeneratedKeys> = LazyLock::new(|| KeySet::generate().unwrap());
    static OTHER: LazyLock<GeneratedKeys> = LazyLock::new(|| KeySet::generate().unwrap());
    const NOW: Timestamp = Timestamp::from_millis(1_800_000_000_000);
    const ISSUER: &str = "http://127.0.0.1:8000/";

    fn issuer() -> TokenIssuer {
        let keys = KeySet::from_pems(PAIR.private_pem.expose_secret(), None, vec![]).unwrap();
        TokenIssuer::new(
            Arc::new(keys),
            TokenPolicy {
                issuer: ISSUER.into(),
                user_ttl: Duration::from_secs(14 * 86_400),
                permission_ttl: Duration::from_secs(12 * 3600),
                permission_aud: false,
            },
        )
    }

    fn ada() -> UserId {
        UserId::from_email("ada@example.test")
    }

    fn now_secs() -> i64 {
        NOW.as_millis() / 1000
    }

    /// Signs arbitrary claims and header with our real key, to probe what verification accepts.
    fn forge(header: Header, claims: Value) -> String {
        let key = EncodingKey::from_rsa_pem(PAIR.private_pem.expose_secret().as_bytes()).unwrap();
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    }

    fn our_header() -> Header {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(issuer().keys().current().kid().to_owned());
        header
    }

    fn user_claims() -> Value {
        json!({"typ": "user", "userid": ada(), "iss": ISSUER, "iat": now_secs(), "exp": now_secs() + 3600})
    }

    fn b64(value: &Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
    }

    #[test]
    fn issued_tokens_verify_as_their_own_kind_only() {
        let issuer = issuer();
        let user = issuer.issue_user(&ada(), NOW).unwrap();
        let permissions = json!({"datapackage-upload": true}).as_object().cloned().unwrap();
        let permission = issuer
            .issue_permission(&ada(), "os.datastore", permissions.clone(), NOW)
            .unwrap();

        let claims = issuer.verify_user(&user, NOW).unwrap();
        assert_eq!((claims.userid, claims.exp - claims.iat), (ada(), 14 * 86_400));
        let claims = issuer.verify_permission(&permission, NOW).unwrap();
        assert_eq!(
            (claims.service.as_str(), &claims.permissions, claims.aud),
            ("os.datastore", &permissions, None)
        );
        assert_eq!(claims.exp - claims.iat, 12 * 3600);

        assert_eq!(
            issuer.verify_permission(&user, NOW),
            Err(TokenError::WrongKind {
                expected: PERMISSION_TOKEN
            })
        );
        assert_eq!(
            issuer.verify_user(&permission, NOW).unwrap_err(),
            TokenError::WrongKind { expected: USER_TOKEN }
        );
    }

    #[test]
    fn audience_is_added_on_request_and_checked() {
        let mut issuer = issuer();
        issuer.policy.permission_aud = true;
        let token = issuer
            .issue_permission(&ada(), "os.datastore", Map::new(), NOW)
            .unwrap();
        assert_eq!(
            issuer.verify_permission(&token, NOW).unwrap().aud.as_deref(),
            Some("os.datastore")
        );
        let mut claims = json!({"typ": "permission", "userid": ada(), "service": "os.datastore", "permissions": {},
            "iss": ISSUER, "iat": now_secs(), "exp": now_secs() + 60});
        claims["aud"] = json!("os.other");
        assert_eq!(
            issuer.verify_permission(&forge(our_header(), claims), NOW),
            Err(TokenError::WrongAudience)
        );
    }

    #[test]
    fn time_claims_are_checked_against_the_injected_clock() {
        let issuer = issuer();
        let token = issuer.issue_user(&ada(), NOW).unwrap();
        let after = |secs: u64| NOW.plus(Duration::from_secs(secs));
        assert!(
            issuer.verify_user(&token, after(14 * 86_400 + 30)).is_ok(),
            "within the leeway"
        );
        assert_eq!(
            issuer.verify_user(&token, after(14 * 86_400 + 61)),
            Err(TokenError::Expired)
        );

        let mut future = user_claims();
        future["nbf"] = json!(now_secs() + 120);
        assert_eq!(
            issuer.verify_user(&forge(our_header(), future), NOW),
            Err(TokenError::NotYetValid)
        );
        let mut issued_later = user_claims();
        issued_later["iat"] = json!(now_secs() + 3600);
        assert_eq!(
            issuer.verify_user(&forge(our_header(), issued_later), NOW),
            Err(TokenError::NotYetValid)
        );
        let mut no_exp = user_claims();
        no_exp.as_object_mut().unwrap().remove("exp");
        assert_eq!(
            issuer.verify_user(&forge(our_header(), no_exp), NOW),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn alg_none_and_hs256_keyed_with_the_public_key_are_refused() {
        let issuer = issuer();
        let none = format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "typ": "JWT"})),
            b64(&user_claims())
        );
        assert!(issuer.verify_user(&none, NOW).is_err());

        let public_pem = issuer.keys().current().pem().to_owned();
        for secret in [public_pem.as_bytes(), public_pem.trim().as_bytes()] {
            let key = EncodingKey::from_secret(secret);
            let hs = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &user_claims(), &key).unwrap();
            assert_eq!(issuer.verify_user(&hs, NOW), Err(TokenError::WrongAlgorithm));
        }
        let mut es = our_header();
        es.alg = Algorithm::ES256;
        let es = format!(
            "{}.{}.{}",
            b64(&serde_json::to_value(&es).unwrap()),
            b64(&user_claims()),
            "AAAA"
        );
        assert_eq!(issuer.verify_user(&es, NOW), Err(TokenError::WrongAlgorithm));
    }

    #[test]
    fn key_headers_are_never_trusted() {
        let issuer = issuer();
        let mut jku = our_header();
        jku.jku = Some("https://evil.test/jwks.json".into());
        assert_eq!(
            issuer.verify_user(&forge(jku, user_claims()), NOW),
            Err(TokenError::ForbiddenHeader("jku"))
        );
        let mut x5u = our_header();
        x5u.x5u = Some("https://evil.test/cert.pem".into());
        assert_eq!(
            issuer.verify_user(&forge(x5u, user_claims()), NOW),
            Err(TokenError::ForbiddenHeader("x5u"))
        );
        let mut jwk = our_header();
        jwk.jwk = Some(issuer.keys().current().jwk().clone());
        assert_eq!(
            issuer.verify_user(&forge(jwk, user_claims()), NOW),
            Err(TokenError::ForbiddenHeader("jwk"))
        );
        let mut x5c = our_header();
        x5c.x5c = Some(vec!["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA".into()]);
        assert_eq!(
            issuer.verify_user(&forge(x5c, user_claims()), NOW),
            Err(TokenError::ForbiddenHeader("x5c"))
        );
    }

    #[test]
    fn unknown_and_hostile_kids_find_no_key() {
        let issuer = issuer();
        for kid in ["unknown", "../../dev/null", "x' OR '1'='1", ""] {
            let mut header = our_header();
            header.kid = Some(kid.into());
            assert_eq!(
                issuer.verify_user(&forge(header, user_claims()), NOW),
                Err(TokenError::UnknownKey),
                "{kid}"
            );
        }
    }

    #[test]
    fn tampered_truncated_and_foreign_signatures_fail() {
        let issuer = issuer();
        let token = issuer.issue_user(&ada(), NOW).unwrap();
        let (signed, signature) = token.rsplit_once('.').unwrap();
        // Truncated bytes, re-encoded (cutting the base64 text instead may leave invalid base64, a different error).
        let bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
        let truncated = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(&bytes[..bytes.len() / 2]));
        assert_eq!(issuer.verify_user(&truncated, NOW), Err(TokenError::BadSignature));
        let cut_text = format!("{signed}.{}", &signature[..signature.len() / 2]);
        assert!(issuer.verify_user(&cut_text, NOW).is_err());
        let zeros = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(vec![0u8; 256]));
        assert_eq!(issuer.verify_user(&zeros, NOW), Err(TokenError::BadSignature));

        let mut claims = user_claims();
        claims["userid"] = json!(UserId::from_email("mallory@example.test"));
        let (_, original_sig) = token.rsplit_once('.').unwrap();
        let (header_part, _) = signed.split_once('.').unwrap();
        let swapped = format!("{header_part}.{}.{original_sig}", b64(&claims));
        assert_eq!(issuer.verify_user(&swapped, NOW), Err(TokenError::BadSignature));

        // Another key claiming our kid.
        let foreign = EncodingKey::from_rsa_pem(OTHER.private_pem.expose_secret().as_bytes()).unwrap();
        let forged = jsonwebtoken::encode(&our_header(), &user_claims(), &foreign).unwrap();
        assert_eq!(issuer.verify_user(&forged, NOW), Err(TokenError::BadSignature));

        for garbage in ["", "a.b", "a.b.c", "not a token", &"x".repeat(20_000)] {
            assert!(issuer.verify_user(garbage, NOW).is_err(), "{garbage:.20}");
        }
    }

    #[test]
    fn claims_must_be_complete_and_from_our_issuer() {
        let issuer = issuer();
        let mut other_issuer = user_claims();
        other_issuer["iss"] = json!("https://evil.test/");
        assert_eq!(
            issuer.verify_user(&forge(our_header(), other_issuer), NOW),
            Err(TokenError::WrongIssuer)
        );
        let mut no_user = user_claims();
        no_user.as_object_mut().unwrap().remove("userid");
        assert_eq!(
            issuer.verify_user(&forge(our_header(), no_user), NOW),
            Err(TokenError::Malformed)
        );
        let mut bad_user = user_claims();
        bad_user["userid"] = json!("*");
        assert_eq!(
            issuer.verify_user(&forge(our_header(), bad_user), NOW),
            Err(TokenError::Malformed)
        );
    }
}
