//! The JWT catalogue an attacker tries, built by hand (base64url and HMAC over `sha2`) so
//! that no token library can refuse to make them: unsigned, re-labelled, wrongly signed,
//! wrongly addressed and ill-timed tokens, each named for the check that must refuse it.

use sha2::{Digest, Sha256, Sha512};
use std::time::{SystemTime, UNIX_EPOCH};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Base64url without padding (RFC 7515 §2).
pub fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
        }
    }
    out
}

/// HMAC (RFC 2104) with SHA-256 or SHA-512.
fn hmac<D: Digest>(block: usize, key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut key = if key.len() > block {
        D::digest(key).to_vec()
    } else {
        key.to_vec()
    };
    key.resize(block, 0);
    let pad = |byte: u8| key.iter().map(|k| k ^ byte).collect::<Vec<u8>>();
    let mut inner = D::new();
    inner.update(pad(0x36));
    inner.update(message);
    let mut outer = D::new();
    outer.update(pad(0x5c));
    outer.update(inner.finalize());
    outer.finalize().to_vec()
}

/// `header.claims.signature` with the header and claims as given and an HMAC signature
/// made with `key` (`sha512`: HS512, else HS256), whatever the header says.
pub fn hmac_token(header: &str, claims: &str, key: &[u8], sha512: bool) -> String {
    let message = format!(
        "{}.{}",
        b64url(header.as_bytes()),
        b64url(claims.as_bytes())
    );
    let signature = if sha512 {
        hmac::<Sha512>(128, key, message.as_bytes())
    } else {
        hmac::<Sha256>(64, key, message.as_bytes())
    };
    format!("{message}.{}", b64url(&signature))
}

/// Claims for `sub` with `aud` and the given times (seconds from now; `None`: absent).
pub fn claims(sub: Option<&str>, aud: &str, exp: Option<i64>, nbf: Option<i64>) -> String {
    let at = |offset: i64| now().saturating_add_signed(offset);
    let mut fields = vec![format!("\"aud\":\"{aud}\"")];
    if let Some(sub) = sub {
        fields.push(format!("\"sub\":\"{sub}\""));
    }
    if let Some(exp) = exp {
        fields.push(format!("\"exp\":{}", at(exp)));
    }
    if let Some(nbf) = nbf {
        fields.push(format!("\"nbf\":{}", at(nbf)));
    }
    format!("{{{}}}", fields.join(","))
}

/// Tokens for `sub` that a service verifying HS256 with `secret` and audience `aud` must
/// refuse, each with what is wrong with it. Times are an hour off, beyond any leeway.
pub fn forged_tokens(secret: &str, aud: &str, sub: &str) -> Vec<(&'static str, String)> {
    let hs256 = r#"{"alg":"HS256","typ":"JWT"}"#;
    let good = claims(Some(sub), aud, Some(600), None);
    let unsigned = |alg: &str| {
        format!(
            "{}.{}.",
            b64url(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#).as_bytes()),
            b64url(good.as_bytes())
        )
    };
    let secret = secret.as_bytes();
    vec![
        ("alg none, no signature", unsigned("none")),
        ("alg None, no signature", unsigned("None")),
        ("alg HS256, no signature", unsigned("HS256")),
        (
            "alg RS256 over an HMAC of the secret (key confusion)",
            hmac_token(r#"{"alg":"RS256","typ":"JWT"}"#, &good, secret, false),
        ),
        (
            "alg HS512 with the right secret (algorithm not pinned)",
            hmac_token(r#"{"alg":"HS512","typ":"JWT"}"#, &good, secret, true),
        ),
        (
            "signed with another secret",
            hmac_token(
                hs256,
                &good,
                b"another-secret-that-is-long-enough-0123",
                false,
            ),
        ),
        (
            "another audience",
            hmac_token(
                hs256,
                &claims(Some(sub), "elsewhere", Some(600), None),
                secret,
                false,
            ),
        ),
        (
            "no sub",
            hmac_token(hs256, &claims(None, aud, Some(600), None), secret, false),
        ),
        (
            "no exp",
            hmac_token(hs256, &claims(Some(sub), aud, None, None), secret, false),
        ),
        (
            "expired an hour ago",
            hmac_token(
                hs256,
                &claims(Some(sub), aud, Some(-3600), None),
                secret,
                false,
            ),
        ),
        (
            "not valid for another hour (nbf)",
            hmac_token(
                hs256,
                &claims(Some(sub), aud, Some(7200), Some(3600)),
                secret,
                false,
            ),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_and_hmac_match_their_rfc_vectors() {
        assert_eq!(b64url(b""), "");
        assert_eq!(b64url(b"f"), "Zg");
        assert_eq!(b64url(b"fo"), "Zm8");
        assert_eq!(b64url(b"foo"), "Zm9v");
        assert_eq!(b64url(&[0xfb, 0xff]), "-_8");
        // RFC 4231, test case 2.
        let mac = hmac::<Sha256>(64, b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            mac.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
