//! Verifies `X-Twilio-Signature` exactly as Twilio's own `RequestValidator` does, so a
//! request Twilio signed is accepted whichever way a proxy rewrote the port.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

use crate::config::Secret;

/// Checks request signatures with the account's auth token.
#[derive(Clone)]
pub struct SignatureValidator {
    auth_token: Secret,
}

impl SignatureValidator {
    /// The validator for one Twilio account.
    pub fn new(auth_token: Secret) -> Self {
        Self { auth_token }
    }

    /// Whether `signature` is Twilio's signature of a form request to `url` with `params`.
    /// Both the URL without its port and with the scheme's default port are tried, as
    /// Twilio's validator does. Repeated values under one name count once.
    pub fn is_valid_form(&self, url: &str, params: &[(String, String)], signature: &str) -> bool {
        url_variants(url)
            .iter()
            .any(|variant| constant_time_eq(&compute_signature(&self.auth_token, variant, params), signature))
    }

    /// Whether a JSON request is genuine: the URL carries `bodySHA256`, the hash must
    /// match the raw body, and the signature covers the URL alone.
    pub fn is_valid_json(&self, url: &str, body: &[u8], signature: &str) -> bool {
        let Some(expected_hash) = query_value(url, "bodySHA256") else {
            return false;
        };
        let actual_hash = sha256_hex(body);
        constant_time_eq(&actual_hash, &expected_hash) && self.is_valid_form(url, &[], signature)
    }
}

/// Twilio's signature: base64(HMAC-SHA1(token, url + name₁value₁ + …)) over the sorted,
/// distinct names and, per name, its sorted distinct values.
pub fn compute_signature(auth_token: &Secret, url: &str, params: &[(String, String)]) -> String {
    let mut pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    pairs.sort_unstable();
    pairs.dedup();
    let mut mac = Hmac::<Sha1>::new_from_slice(auth_token.expose().as_bytes()).expect("HMAC accepts any key length");
    mac.update(url.as_bytes());
    for (name, value) in pairs {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

fn sha256_hex(body: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(body).iter().map(|b| format!("{b:02x}")).collect()
}

/// The URL without its port and with the default port, textually, as Python's
/// `urlparse(...)._replace(netloc=...)` would make them: no other normalisation.
fn url_variants(url: &str) -> [String; 2] {
    let Some((scheme, rest)) = url.split_once("://") else {
        return [url.to_string(), url.to_string()];
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let (userinfo, host_port) = match authority.rfind('@') {
        Some(at) => authority.split_at(at + 1),
        None => ("", authority),
    };
    let host = match host_port.rfind(':') {
        Some(colon)
            if !host_port[colon + 1..].is_empty() && host_port[colon + 1..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            Some(&host_port[..colon])
        }
        _ => None,
    };
    match host {
        Some(host_only) => [format!("{scheme}://{userinfo}{host_only}{tail}"), url.to_string()],
        None => {
            let port = if scheme.eq_ignore_ascii_case("https") { 443 } else { 80 };
            [url.to_string(), format!("{scheme}://{userinfo}{host_port}:{port}{tail}")]
        }
    }
}

fn query_value(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or(query);
    url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";

    fn token() -> Secret {
        Secret::new("12345")
    }

    fn params() -> Vec<(String, String)> {
        [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn validator() -> SignatureValidator {
        SignatureValidator::new(token())
    }

    #[test]
    fn vector_1_the_plain_url_and_params() {
        assert_eq!(compute_signature(&token(), URL, &params()), "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
        assert!(validator().is_valid_form(URL, &params(), "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
    }

    #[test]
    fn vector_2_https_with_the_default_port_is_accepted_both_ways() {
        let with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2";
        assert_eq!(compute_signature(&token(), with_port, &params()), "kvajT1Ptam85bY51eRf/AJRuM3w=");
        // Signed with the port, called without it (and the other way round).
        assert!(validator().is_valid_form(URL, &params(), "kvajT1Ptam85bY51eRf/AJRuM3w="));
        assert!(validator().is_valid_form(with_port, &params(), "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
    }

    #[test]
    fn vector_3_a_custom_port() {
        let url = "http://mycompany.com:1234/myapp.php?foo=1&bar=2";
        assert_eq!(compute_signature(&token(), url, &params()), "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=");
        assert!(validator().is_valid_form(url, &params(), "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="));
    }

    #[test]
    fn vector_4_http_with_the_default_port() {
        let url = "http://mycompany.com:80/myapp.php?foo=1&bar=2";
        assert_eq!(compute_signature(&token(), url, &params()), "0ZXoZLH/DfblKGATFgpif+LLRf4=");
        assert!(validator().is_valid_form(
            "http://mycompany.com/myapp.php?foo=1&bar=2",
            &params(),
            "0ZXoZLH/DfblKGATFgpif+LLRf4="
        ));
    }

    #[test]
    fn vector_5_repeated_values_under_one_name_count_once() {
        let repeated: Vec<(String, String)> =
            [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234"), ("Digits", "1234")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        assert_eq!(compute_signature(&token(), URL, &repeated), "IK+Dwps556ElfBT0I3Rgjkr1wJU=");
        assert!(validator().is_valid_form(URL, &repeated, "IK+Dwps556ElfBT0I3Rgjkr1wJU="));
    }

    #[test]
    fn vector_6_an_encoded_quote_in_the_query_is_signed_as_sent() {
        let url = format!("{URL}&Body=It%27s+amazing");
        assert_eq!(compute_signature(&token(), &url, &params()), "TfZzewPq8wqrGlMfyAud8+/IvJ0=");
        assert!(validator().is_valid_form(&url, &params(), "TfZzewPq8wqrGlMfyAud8+/IvJ0="));
    }

    #[test]
    fn vector_7_a_json_body_is_checked_by_its_hash() {
        let url = format!("{URL}&bodySHA256=0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620");
        let body = br#"{"property": "value", "boolean": true}"#;
        assert_eq!(compute_signature(&token(), &url, &[]), "a9nBmqA0ju/hNViExpshrM61xv4=");
        assert!(validator().is_valid_json(&url, body, "a9nBmqA0ju/hNViExpshrM61xv4="));
        assert!(!validator().is_valid_json(&url, br#"{"property": "forged"}"#, "a9nBmqA0ju/hNViExpshrM61xv4="));
    }

    #[test]
    fn a_changed_param_a_wrong_token_or_garbage_is_rejected() {
        let mut tampered = params();
        tampered[2].1 = "9999".into();
        assert!(!validator().is_valid_form(URL, &tampered, "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
        assert!(!SignatureValidator::new(Secret::new("54321")).is_valid_form(
            URL,
            &params(),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
        assert!(!validator().is_valid_form(URL, &params(), ""));
        assert!(!validator().is_valid_form(URL, &params(), "not base64 at all"));
    }

    #[test]
    fn url_variants_only_touch_the_port() {
        assert_eq!(
            url_variants("https://user:pw@example.com:8443/a?b=c:1"),
            ["https://user:pw@example.com/a?b=c:1".to_string(), "https://user:pw@example.com:8443/a?b=c:1".to_string()]
        );
        assert_eq!(
            url_variants("http://example.com"),
            ["http://example.com".to_string(), "http://example.com:80".to_string()]
        );
    }
}
