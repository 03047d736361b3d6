//! API-key authentication for the REST API: `Authorization: Bearer <key>`, keys from
//! `API_KEYS`, compared in constant time so response timing reveals nothing of a key.

use std::sync::Arc;

use poem::http::StatusCode;
use poem::Request;
use poem_openapi::auth::Bearer;
use poem_openapi::SecurityScheme;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::problem::Problem;
use crate::config::Secret;

/// The keys the API accepts, kept as SHA-256 digests: equal-length values to compare in
/// constant time, and no plain key in memory longer than start-up.
pub struct ApiKeys(Vec<[u8; 32]>);

impl ApiKeys {
    /// The accepted keys.
    pub fn new(keys: &[Secret]) -> Self {
        Self(keys.iter().map(|k| digest(k.expose())).collect())
    }

    /// Whether `candidate` is one of the keys; every key is compared, whatever matches.
    pub fn accepts(&self, candidate: &str) -> bool {
        let candidate = digest(candidate);
        self.0.iter().fold(subtle::Choice::from(0), |found, key| found | key.ct_eq(&candidate)).into()
    }

    /// Which of the keys `candidate` is (its place in `API_KEYS`), comparing every key
    /// whatever matches: what per-key rate limits count by.
    pub fn index_of(&self, candidate: &str) -> Option<usize> {
        let candidate = digest(candidate);
        let mut found = None;
        for (index, key) in self.0.iter().enumerate() {
            if bool::from(key.ct_eq(&candidate)) {
                found = Some(index);
            }
        }
        found
    }
}

fn digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// A request that presented a valid API key.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "API key", checker = "check_api_key")]
pub struct ApiKeyAuth(());

async fn check_api_key(request: &Request, bearer: Bearer) -> poem::Result<()> {
    let accepted = request.data::<Arc<ApiKeys>>().is_some_and(|keys| keys.accepts(&bearer.token));
    if accepted {
        Ok(())
    } else {
        let problem =
            Problem::new(StatusCode::UNAUTHORIZED, "the API key is not valid; check `Authorization: Bearer <key>`");
        Err(poem::Error::from_response(problem.into_poem_response()))
    }
}

/// A key for a development server started without `API_KEYS`: 32 random bytes as hex,
/// from the operating system's generator.
///
/// # Errors
/// When the system has no randomness to give.
pub fn generate_key() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_configured_keys_are_accepted() {
        let keys = ApiKeys::new(&[Secret::new("first-key-0123456789"), Secret::new("second-key-0123456789")]);
        assert!(keys.accepts("first-key-0123456789"));
        assert!(keys.accepts("second-key-0123456789"));
        assert!(!keys.accepts("first-key-012345678"));
        assert!(!keys.accepts(""));
        assert!(!ApiKeys::new(&[]).accepts("anything"));
        assert_eq!(keys.index_of("second-key-0123456789"), Some(1));
        assert_eq!(keys.index_of("third-key-0123456789"), None);
    }

    #[test]
    fn generated_keys_are_long_and_different() {
        let (a, b) = (generate_key().unwrap(), generate_key().unwrap());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }
}
