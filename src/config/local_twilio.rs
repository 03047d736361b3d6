//! The Twilio REST API a development server without any Twilio setting shares with
//! `simulate --media`, which plays it on loopback: a new clone's `make run` can fetch the
//! media `simulate` sends with nothing to configure.

use super::{Config, Environment, Secret};

impl Config {
    /// The Twilio REST API that `simulate --media` plays on loopback, for a development
    /// server given no Twilio setting at all: a new user's `make run` then fetches the
    /// media `simulate` sends and sends it the late reply, with nothing to configure. Webhook
    /// signatures stay as configured (none: not checked in development). `None` as soon as
    /// any Twilio setting is given, and always in production.
    pub fn local_twilio(&self) -> Option<LoopbackTwilio> {
        let unconfigured = self.environment == Environment::Development
            && self.twilio_account_sid.is_none()
            && self.twilio_auth_token.is_none()
            && self.twilio_whatsapp_number.is_none()
            && self.twilio_api_base_url.as_str() == DEFAULT_TWILIO_API_BASE_URL;
        unconfigured.then(|| LoopbackTwilio {
            account_sid: LOCAL_TWILIO_ACCOUNT_SID.to_owned(),
            auth_token: Secret::new(LOCAL_TWILIO_AUTH_TOKEN.to_owned()),
            whatsapp_number: LOCAL_TWILIO_NUMBER.to_owned(),
            api_base_url: url::Url::parse(LOCAL_TWILIO_API_BASE_URL).expect("a valid constant URL"),
        })
    }
}

/// Twilio's REST API as a development server without Twilio settings and `simulate`
/// both reach it (see [`Config::local_twilio`]).
#[derive(Debug, Clone)]
pub struct LoopbackTwilio {
    /// The account both sides use (no real account: the API is `simulate`'s).
    pub account_sid: String,
    /// The Basic-auth password of media downloads and sends.
    pub auth_token: Secret,
    /// The sender of late replies.
    pub whatsapp_number: String,
    /// Where `simulate --media` listens.
    pub api_base_url: url::Url,
}

/// Twilio's real REST API, the default of `TWILIO_API_BASE_URL`.
pub(super) const DEFAULT_TWILIO_API_BASE_URL: &str = "https://api.twilio.com/";
const LOCAL_TWILIO_ACCOUNT_SID: &str = "AC00000000000000000000000000000000";
const LOCAL_TWILIO_AUTH_TOKEN: &str = "local-development";
const LOCAL_TWILIO_NUMBER: &str = "+14155238886";
const LOCAL_TWILIO_API_BASE_URL: &str = "http://127.0.0.1:8099";

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Config {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| map.get(k).cloned()).expect("a valid configuration")
    }

    #[test]
    fn a_development_server_without_any_twilio_setting_uses_the_loopback_api_simulate_plays() {
        let local = config(&[]).local_twilio().expect("the loopback API");
        assert_eq!(local.api_base_url.as_str(), "http://127.0.0.1:8099/");
        assert_eq!(
            (local.account_sid.as_str(), local.whatsapp_number.as_str()),
            (LOCAL_TWILIO_ACCOUNT_SID, "+14155238886")
        );
        // Signatures stay as configured: none, so not checked in development.
        assert!(config(&[]).twilio_auth_token.is_none());
        for (variable, value) in [
            ("TWILIO_ACCOUNT_SID", "AC0123456789abcdef0123456789abcdef"),
            ("TWILIO_AUTH_TOKEN", "secret"),
            ("TWILIO_WHATSAPP_NUMBER", "+14155238886"),
            ("TWILIO_API_BASE_URL", "http://127.0.0.1:9000"),
        ] {
            assert!(config(&[(variable, value)]).local_twilio().is_none(), "{variable} given");
        }
        let production = [
            ("ENV", "production"),
            ("META_APP_SECRET", "s"),
            ("META_VERIFY_TOKEN", "v"),
            ("META_ACCESS_TOKEN", "a"),
            ("API_KEYS", "0123456789abcdef0123"),
            ("META_PHONE_NUMBER_ID", "1"),
        ];
        assert!(config(&production).local_twilio().is_none(), "never in production");
    }
}
