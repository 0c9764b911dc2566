//! Signed, expiring bearer tokens handed out by `Handshake`.
//!
//! A token is `lh1.<claims>.<signature>`: the claims (user name and expiry,
//! JSON, base64url) and an HMAC-SHA256 over them with the server's secret.
//! Nothing is stored per token, so any server holding the same secret
//! accepts it; the role is not in the token but looked up from
//! configuration on every call, so a changed role applies at once.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;
use serde::{Deserialize, Serialize};

const PREFIX: &str = "lh1.";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user's name.
    pub sub: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Not one of ours, or altered.
    Invalid,
    Expired,
}

/// Signs and checks tokens with one secret.
pub struct TokenSigner {
    key: hmac::Key,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSigner { .. }")
    }
}

impl TokenSigner {
    pub fn new(secret: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    /// Whether `text` looks like a signed token (rather than an API token).
    pub fn is_signed_token(text: &str) -> bool {
        text.starts_with(PREFIX)
    }

    pub fn sign(&self, claims: &Claims) -> String {
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialise"));
        let signed = format!("{PREFIX}{body}");
        let tag = hmac::sign(&self.key, signed.as_bytes());
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// The claims of a token this secret signed that has not expired at
    /// `now` (seconds since the epoch).
    pub fn verify(&self, token: &str, now: u64) -> Result<Claims, TokenError> {
        let (signed, tag) = token.rsplit_once('.').ok_or(TokenError::Invalid)?;
        let body = signed.strip_prefix(PREFIX).ok_or(TokenError::Invalid)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| TokenError::Invalid)?;
        hmac::verify(&self.key, signed.as_bytes(), &tag).map_err(|_| TokenError::Invalid)?;
        let claims: Claims = URL_SAFE_NO_PAD
            .decode(body)
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok())
            .ok_or(TokenError::Invalid)?;
        if claims.exp <= now {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: u64) -> Claims {
        Claims {
            sub: "alice".into(),
            exp,
        }
    }

    #[test]
    fn a_signed_token_verifies_until_it_expires() {
        let signer = TokenSigner::new(b"0123456789abcdef0123456789abcdef");
        let token = signer.sign(&claims(1_000));
        assert!(TokenSigner::is_signed_token(&token));
        assert_eq!(signer.verify(&token, 999), Ok(claims(1_000)));
        assert_eq!(signer.verify(&token, 1_000), Err(TokenError::Expired));
    }

    #[test]
    fn altered_or_foreign_tokens_are_invalid() {
        let signer = TokenSigner::new(b"0123456789abcdef0123456789abcdef");
        let other = TokenSigner::new(b"another secret, another server..");
        let token = signer.sign(&claims(1_000));
        assert_eq!(other.verify(&token, 0), Err(TokenError::Invalid));
        // A later expiry with the old signature.
        let (_, tag) = token.rsplit_once('.').unwrap();
        let forged = format!(
            "{PREFIX}{}.{tag}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(9_999)).unwrap())
        );
        assert_eq!(signer.verify(&forged, 0), Err(TokenError::Invalid));
        for junk in ["", "lh1.", "lh1.a.b", "lh1..", "Bearer x", "lh1.e30.AAAA"] {
            assert_eq!(signer.verify(junk, 0), Err(TokenError::Invalid), "{junk:?}");
        }
    }
}
