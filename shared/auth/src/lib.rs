//! JWT bearer tokens: the claims we use, validation with a pinned algorithm, `exp` and
//! `aud`, and issuing (for development tokens and tests).

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// Token settings, part of every service's configuration as `auth`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct AuthSettings {
    /// `HS256` (shared secret), `RS256` or `EdDSA` (public key). Tokens signed with any
    /// other algorithm are rejected.
    pub algorithm: String,
    /// The HS256 shared secret; also used to sign development tokens.
    pub jwt_secret: SecretString,
    /// PEM public key for RS256 / EdDSA.
    pub public_key_pem: Option<String>,
    /// The required `aud` claim.
    pub audience: String,
    /// The `iss` claim put into development tokens (not checked on validation).
    pub issuer: String,
    /// Whether `POST /api/auth/dev-token` exists. Local development and tests only.
    pub dev_tokens: bool,
    /// Lifetime of development tokens, in seconds.
    pub dev_token_ttl_seconds: u64,
    /// Allowed clock skew when checking `exp`, in seconds.
    pub leeway_seconds: u64,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            algorithm: "HS256".into(),
            jwt_secret: SecretString::from(String::new()),
            public_key_pem: None,
            audience: "kanban".into(),
            issuer: "kanban-dev".into(),
            dev_tokens: false,
            dev_token_ttl_seconds: 12 * 3600,
            leeway_seconds: 30,
        }
    }
}

/// The claims of a Kanban token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// Display name; the user id when absent.
    #[serde(default)]
    pub name: Option<String>,
    pub aud: String,
    pub exp: u64,
    /// Not valid before (seconds since the epoch); checked with the leeway when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Issued at; a token issued further in the future than the leeway is refused.
    #[serde(default)]
    pub iat: Option<u64>,
    #[serde(default)]
    pub iss: Option<String>,
}

/// Why a token or the key material was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("invalid token: {0}")]
    InvalidToken(#[from] jsonwebtoken::errors::Error),
    #[error("invalid token: issued in the future")]
    IssuedInFuture,
    #[error("auth configuration: {0}")]
    Config(String),
    #[error("this verifier cannot sign tokens (it holds a public key only)")]
    CannotSign,
}

/// Validates tokens (and, with a shared secret, issues them). Built once from settings.
#[derive(Clone)]
pub struct TokenVerifier {
    decoding: DecodingKey,
    encoding: Option<EncodingKey>,
    validation: Validation,
    algorithm: Algorithm,
    issuer: String,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl TokenVerifier {
    pub fn from_settings(settings: &AuthSettings) -> Result<Self, AuthError> {
        let algorithm = match settings.algorithm.as_str() {
            "HS256" => Algorithm::HS256,
            "RS256" => Algorithm::RS256,
            "EdDSA" => Algorithm::EdDSA,
            other => {
                return Err(AuthError::Config(format!(
                    "unsupported algorithm '{other}'"
                )))
            }
        };
        let (decoding, encoding) = match algorithm {
            Algorithm::HS256 => {
                let secret = settings.jwt_secret.expose_secret().as_bytes();
                if secret.len() < 32 {
                    return Err(AuthError::Config(
                        "auth.jwt_secret must be at least 32 bytes for HS256".into(),
                    ));
                }
                (
                    DecodingKey::from_secret(secret),
                    Some(EncodingKey::from_secret(secret)),
                )
            }
            Algorithm::RS256 | Algorithm::EdDSA => {
                let pem = settings.public_key_pem.as_deref().ok_or_else(|| {
                    AuthError::Config("auth.public_key_pem is required for RS256/EdDSA".into())
                })?;
                let key = if algorithm == Algorithm::RS256 {
                    DecodingKey::from_rsa_pem(pem.as_bytes())
                } else {
                    DecodingKey::from_ed_pem(pem.as_bytes())
                }
                .map_err(|e| AuthError::Config(format!("auth.public_key_pem: {e}")))?;
                (key, None)
            }
            _ => return Err(AuthError::Config("unsupported algorithm".into())),
        };
        let mut validation = Validation::new(algorithm);
        validation.set_audience(&[settings.audience.as_str()]);
        validation.set_required_spec_claims(&["exp", "aud", "sub"]);
        validation.leeway = settings.leeway_seconds;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        Ok(TokenVerifier {
            decoding,
            encoding,
            validation,
            algorithm,
            issuer: settings.issuer.clone(),
        })
    }

    /// Checks signature, algorithm, `exp`, `nbf`, `iat` and `aud`; returns the claims.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let data = decode::<Claims>(token, &self.decoding, &self.validation)?;
        // jsonwebtoken checks exp and nbf; a token from the future is as suspect.
        if data
            .claims
            .iat
            .is_some_and(|iat| iat > now_seconds().saturating_add(self.validation.leeway))
        {
            return Err(AuthError::IssuedInFuture);
        }
        Ok(data.claims)
    }

    /// Seconds the verifier allows a clock to be off (`exp`, `nbf`, `iat`).
    pub fn leeway_seconds(&self) -> u64 {
        self.validation.leeway
    }

    /// Signs a token for `user_id` valid for `ttl_seconds` (shared-secret mode only).
    pub fn issue(
        &self,
        user_id: &str,
        name: Option<&str>,
        ttl_seconds: u64,
    ) -> Result<String, AuthError> {
        let key = self.encoding.as_ref().ok_or(AuthError::CannotSign)?;
        let now = now_seconds();
        let claims = Claims {
            sub: user_id.to_owned(),
            name: name.map(str::to_owned),
            aud: self.audience().to_owned(),
            exp: now + ttl_seconds,
            nbf: None,
            iat: Some(now),
            iss: Some(self.issuer.clone()),
        };
        Ok(encode(&Header::new(self.algorithm), &claims, key)?)
    }

    fn audience(&self) -> &str {
        self.validation
            .aud
            .as_ref()
            .and_then(|a| a.iter().next())
            .map(String::as_str)
            .unwrap_or("")
    }
}

fn now_seconds() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SECRET: &str = "an-hs256-secret-that-is-long-enough-0123456789";

    fn settings() -> AuthSettings {
        AuthSettings {
            jwt_secret: SecretString::from(SECRET.to_string()),
            ..Default::default()
        }
    }

    fn sign(claims: &serde_json::Value, alg: Algorithm, secret: &str) -> String {
        encode(
            &Header::new(alg),
            claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    /// A public key of the kind an RS256 deployment configures (its private half was
    /// thrown away: the attack below needs only what is public).
    const PUBLIC_KEY_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEArPAe2H2jLvXF4YyYBFHe
0x3q4l9+GyDRywvbt6duZ4dtE22paf35+ImC6kHuj5PzKlQopEUXo/OiudAxRLK1
CdgSYErqPAlQd1tNu+sn9ZkL0fREow6sI9LKAtDVglbLs45WGWLpj08+q6dPhVna
OlYFgYSeoFnG6+baCpEKzXoTGosJtbd56LJ4Y8XijKt603WSJOVHGPX/plX9zrge
XFVTAg7iyBHeifC91KEFtPGnNDSHeWgLM5mzInu2nlqwBayC4cPUXXizQHqYE23U
R8rTu8XREeSadRFnVP3dtVEURDiYecRhta4OaWfv0Os4gJyNuZVmv9J1gC0e4Wp1
VQIDAQAB
-----END PUBLIC KEY-----
";

    #[test]
    fn every_forged_token_of_the_catalogue_is_refused() {
        let verifier = TokenVerifier::from_settings(&settings()).unwrap();
        // The control: the hand-built token with nothing wrong is accepted, so each refusal
        // below is for what the forgery changed.
        let good = kanban_test_support::jwt::hmac_token(
            r#"{"alg":"HS256","typ":"JWT"}"#,
            &kanban_test_support::jwt::claims(Some("alice"), "kanban", Some(600), None),
            SECRET.as_bytes(),
            false,
        );
        assert_eq!(verifier.verify(&good).unwrap().sub, "alice");
        for (what, token) in kanban_test_support::jwt::forged_tokens(SECRET, "kanban", "alice") {
            assert!(verifier.verify(&token).is_err(), "accepted: {what}");
        }
    }

    /// HS/RS key confusion: a verifier configured for RS256 must not take an HS256 token
    /// whose HMAC key is the public key every client can read.
    #[test]
    fn an_hmac_token_keyed_with_the_rs256_public_key_is_refused() {
        let verifier = TokenVerifier::from_settings(&AuthSettings {
            algorithm: "RS256".into(),
            public_key_pem: Some(PUBLIC_KEY_PEM.into()),
            ..Default::default()
        })
        .unwrap();
        let claims = kanban_test_support::jwt::claims(Some("alice"), "kanban", Some(600), None);
        for header in [
            r#"{"alg":"HS256","typ":"JWT"}"#,
            r#"{"alg":"RS256","typ":"JWT"}"#,
        ] {
            let forged = kanban_test_support::jwt::hmac_token(
                header,
                &claims,
                PUBLIC_KEY_PEM.as_bytes(),
                false,
            );
            assert!(verifier.verify(&forged).is_err(), "accepted: {header}");
        }
    }

    #[test]
    fn issued_tokens_verify_and_carry_the_user() {
        let verifier = TokenVerifier::from_settings(&settings()).unwrap();
        let token = verifier.issue("alice", Some("Alice"), 60).unwrap();
        let claims = verifier.verify(&token).unwrap();
        assert_eq!(claims.sub, "alice");
        assert_eq!(claims.name.as_deref(), Some("Alice"));
    }

    #[test]
    fn expired_tokens_are_refused() {
        let verifier = TokenVerifier::from_settings(&settings()).unwrap();
        let claims = serde_json::json!({"sub": "a", "aud": "kanban", "exp": now_seconds() - 3600});
        assert!(verifier
            .verify(&sign(&claims, Algorithm::HS256, SECRET))
            .is_err());
    }

    #[test]
    fn tokens_not_yet_valid_are_refused_beyond_the_leeway() {
        let verifier = TokenVerifier::from_settings(&settings()).unwrap();
        let now = now_seconds();
        let nbf = |nbf: u64| json!({"sub": "a", "aud": "kanban", "exp": now + 3600, "nbf": nbf});
        let future = verifier.verify(&sign(&nbf(now + 600), Algorithm::HS256, SECRET));
        assert!(future.is_err(), "nbf 10 minutes ahead");
        let skewed = verifier.verify(&sign(&nbf(now + 10), Algorithm::HS256, SECRET));
        assert!(skewed.is_ok(), "nbf within the 30 s leeway: {skewed:?}");
        let past = verifier.verify(&sign(&nbf(now - 10), Algorithm::HS256, SECRET));
        assert_eq!(past.unwrap().nbf, Some(now - 10));
    }

    #[test]
    fn tokens_issued_in_the_future_are_refused_beyond_the_leeway() {
        let verifier = TokenVerifier::from_settings(&settings()).unwrap();
        let now = now_seconds();
        let iat = |iat: u64| json!({"sub": "a", "aud": "kanban", "exp": now + 3600, "iat": iat});
        assert!(matches!(
            verifier.verify(&sign(&iat(now + 600), Algorithm::HS256, SECRET)),
            Err(AuthError::IssuedInFuture)
        ));
        assert!(verifier
            .verify(&sign(&iat(now + 10), Algorithm::HS256, SECRET))
            .is_ok());
    }

    #[test]
    fn wrong_audience_is_refused() {
        let verifier = TokenVerifier::from_settings(&settings()).unwrap();
        let claims = serde_json::json!({"sub": "a", "aud": "other", "exp": now_seconds() + 60});
        assert!(verifier
            .verify(&sign(&claims, Algorithm::HS256, SECRET))
            .is_err());
    }

    #[test]
    fn wrong_signature_is_refused() {
        let verifier = TokenVerifier::from_settings(&settings()).unwrap();
        let claims = serde_json::json!({"sub": "a", "aud": "kanban", "exp": now_seconds() + 60});
        let forged = sign(
            &claims,
            Algorithm::HS256,
            "another-secret-that-is-also-long-enough-xx",
        );
        assert!(verifier.verify(&forged).is_err());
    }

    #[test]
    fn other_algorithms_are_refused_even_with_the_right_secret() {
        let verifier = TokenVerifier::from_settings(&settings()).unwrap();
        let claims = serde_json::json!({"sub": "a", "aud": "kanban", "exp": now_seconds() + 60});
        assert!(verifier
            .verify(&sign(&claims, Algorithm::HS512, SECRET))
            .is_err());
    }

    #[test]
    fn a_token_without_sub_is_refused() {
        let verifier = TokenVerifier::from_settings(&settings()).unwrap();
        let claims = serde_json::json!({"aud": "kanban", "exp": now_seconds() + 60});
        assert!(verifier
            .verify(&sign(&claims, Algorithm::HS256, SECRET))
            .is_err());
    }

    #[test]
    fn short_secrets_are_a_configuration_error() {
        let short = AuthSettings {
            jwt_secret: SecretString::from("short".to_string()),
            ..Default::default()
        };
        assert!(matches!(
            TokenVerifier::from_settings(&short),
            Err(AuthError::Config(_))
        ));
    }

    #[test]
    fn garbage_is_refused() {
        let verifier = TokenVerifier::from_settings(&settings()).unwrap();
        assert!(verifier.verify("not.a.token").is_err());
        assert!(verifier.verify("").is_err());
    }
}
