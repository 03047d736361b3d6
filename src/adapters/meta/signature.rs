//! `X-Hub-Signature-256`: `sha256=` and the hex HMAC-SHA256 of the raw body, keyed with
//! the app secret. Checked over the bytes as received (re-serialised JSON would not
//! match) and in constant time.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::Secret;

/// The header Meta signs deliveries with.
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";

/// The header value Meta would send for `body`: `sha256=<hex>`. Used by `simulate` and
/// the tests; the server only verifies.
pub fn sign(app_secret: &Secret, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(app_secret.expose().as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    format!("sha256={}", hex(&digest))
}

/// Whether `header` is Meta's signature of `body` with `app_secret`. The digest is
/// compared in constant time; a header that is not `sha256=` and 64 hex digits fails.
pub fn is_valid(app_secret: &Secret, body: &[u8], header: &str) -> bool {
    let Some(expected) = header.trim().strip_prefix("sha256=").and_then(unhex) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(app_secret.expose().as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of an even-length hex string (either case); `None` for anything else.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> Secret {
        Secret::new("app-secret")
    }

    #[test]
    fn a_body_signed_with_the_secret_verifies_and_any_change_fails() {
        let body = br#"{"object":"whatsapp_business_account","entry":[]}"#;
        let header = sign(&secret(), body);
        assert!(header.starts_with("sha256=") && header.len() == 7 + 64);
        assert!(is_valid(&secret(), body, &header));
        assert!(is_valid(&secret(), body, &header.to_uppercase().replace("SHA256=", "sha256=")));
        assert!(!is_valid(&Secret::new("other"), body, &header));
        // The same JSON with its keys in another order is another body.
        let reordered = br#"{"entry":[],"object":"whatsapp_business_account"}"#;
        assert!(!is_valid(&secret(), reordered, &header));
    }

    #[test]
    fn malformed_headers_fail() {
        let body = b"{}";
        let good = sign(&secret(), body);
        for bad in ["", "sha256=", "sha1=abcd", &good[7..], &good[..good.len() - 1], "sha256=zz"] {
            assert!(!is_valid(&secret(), body, bad), "{bad:?}");
        }
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(hex(&[0, 15, 255]), "000fff");
        assert_eq!(unhex("000fFF"), Some(vec![0, 15, 255]));
        assert_eq!(unhex("0"), None);
        assert_eq!(unhex("g0"), None);
        assert_eq!(unhex("+f"), None);
    }
}
