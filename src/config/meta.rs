//! The variables of Meta's WhatsApp Cloud API channel, read beside Twilio's: all four
//! credentials or none, so a half-configured channel stops the start instead of failing
//! every message later.

use super::{invalid, parse_url, ConfigError, Secret};

/// The Graph API version used unless `META_GRAPH_VERSION` says otherwise.
pub const DEFAULT_GRAPH_VERSION: &str = "v23.0";
/// Meta's Graph API, where the Cloud API lives.
pub const DEFAULT_GRAPH_BASE_URL: &str = "https://graph.facebook.com";

/// The variables that switch the channel on; each one names what it is for.
const REQUIRED: [(&str, &str); 4] = [
    ("META_APP_SECRET", "verifies X-Hub-Signature-256 on /whatsapp/cloud"),
    ("META_VERIFY_TOKEN", "answers Meta's webhook verification"),
    ("META_ACCESS_TOKEN", "sends replies and fetches media"),
    ("META_PHONE_NUMBER_ID", "names the number replies are sent from"),
];

/// Meta's WhatsApp Cloud API, when configured.
#[derive(Debug, Clone)]
pub struct MetaConfig {
    /// The app secret: the key of the webhook's HMAC-SHA256 signature.
    pub app_secret: Secret,
    /// What Meta must echo in `hub.verify_token` for the handshake to pass.
    pub verify_token: Secret,
    /// The bearer token for the Graph API (a system user's, in production).
    pub access_token: Secret,
    /// The business phone number's id: replies are `POST /{id}/messages`.
    pub phone_number_id: String,
    /// `v23.0`, …: the path prefix of every Graph call.
    pub graph_version: String,
    /// `https://graph.facebook.com` in production, a loopback fake in tests.
    pub graph_base_url: url::Url,
}

/// Reads the Meta variables: `None` when none of the four credentials is set.
///
/// # Errors
/// When some but not all are set, or a value is malformed.
pub(super) fn meta_config(get: &dyn Fn(&str) -> Option<String>) -> Result<Option<MetaConfig>, ConfigError> {
    let values: Vec<Option<String>> = REQUIRED.iter().map(|(name, _)| get(name)).collect();
    // Read (and checked) even when the channel is off, so a typo shows at once.
    let graph_version = get("META_GRAPH_VERSION").unwrap_or_else(|| DEFAULT_GRAPH_VERSION.into());
    let graph_base_url = parse_url("META_GRAPH_BASE_URL", get("META_GRAPH_BASE_URL"), DEFAULT_GRAPH_BASE_URL)?;
    let well_formed =
        graph_version.strip_prefix('v').and_then(|rest| rest.split_once('.')).is_some_and(|(major, minor)| {
            !major.is_empty() && !minor.is_empty() && (major.bytes().chain(minor.bytes())).all(|b| b.is_ascii_digit())
        });
    if !well_formed {
        return Err(invalid(
            "META_GRAPH_VERSION",
            format!("{graph_version:?} is not a Graph API version such as {DEFAULT_GRAPH_VERSION}"),
        ));
    }
    if values.iter().all(Option::is_none) {
        return Ok(None);
    }
    if let Some(((name, purpose), _)) = REQUIRED.iter().zip(&values).find(|(_, value)| value.is_none()) {
        return Err(invalid(
            name,
            format!("is required when Meta's WhatsApp Cloud API is configured (it {purpose}); set all of META_APP_SECRET, META_VERIFY_TOKEN, META_ACCESS_TOKEN and META_PHONE_NUMBER_ID, or none"),
        ));
    }
    let mut values = values.into_iter().flatten();
    let mut next = || values.next().unwrap_or_default();
    let (app_secret, verify_token, access_token, phone_number_id) = (next(), next(), next(), next());
    if !phone_number_id.bytes().all(|b| b.is_ascii_digit()) || phone_number_id.len() > 30 {
        return Err(invalid(
            "META_PHONE_NUMBER_ID",
            "must be the digits of the phone number's id (WhatsApp Manager > API Setup)",
        ));
    }
    Ok(Some(MetaConfig {
        app_secret: Secret::new(app_secret),
        verify_token: Secret::new(verify_token),
        access_token: Secret::new(access_token),
        phone_number_id,
        graph_version,
        graph_base_url,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn read(pairs: &[(&str, &str)]) -> Result<Option<MetaConfig>, ConfigError> {
        let vars: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        meta_config(&|name| vars.get(name).cloned())
    }

    const ALL: [(&str, &str); 4] = [
        ("META_APP_SECRET", "app-secret"),
        ("META_VERIFY_TOKEN", "verify-me"),
        ("META_ACCESS_TOKEN", "EAAG-token"),
        ("META_PHONE_NUMBER_ID", "106540352242922"),
    ];

    #[test]
    fn none_set_is_no_channel_and_all_set_is_one_with_defaults() {
        assert!(read(&[]).unwrap().is_none());
        let meta = read(&ALL).unwrap().unwrap();
        assert_eq!(meta.phone_number_id, "106540352242922");
        assert_eq!(meta.graph_version, DEFAULT_GRAPH_VERSION);
        assert_eq!(meta.graph_base_url.as_str(), "https://graph.facebook.com/");
        assert!(!format!("{meta:?}").contains("EAAG-token"));
    }

    #[test]
    fn a_partial_channel_names_the_first_missing_variable() {
        for (index, (name, _)) in ALL.iter().enumerate() {
            let mut some = ALL.to_vec();
            some.remove(index);
            assert_eq!(read(&some).unwrap_err().variable, *name);
        }
    }

    #[test]
    fn malformed_values_are_refused_by_name() {
        let mut vars = ALL.to_vec();
        vars.push(("META_GRAPH_VERSION", "23"));
        assert_eq!(read(&vars).unwrap_err().variable, "META_GRAPH_VERSION");
        let mut vars = ALL.to_vec();
        vars[3] = ("META_PHONE_NUMBER_ID", "+1555");
        assert_eq!(read(&vars).unwrap_err().variable, "META_PHONE_NUMBER_ID");
        let mut vars = ALL.to_vec();
        vars.push(("META_GRAPH_BASE_URL", "ftp://x"));
        assert_eq!(read(&vars).unwrap_err().variable, "META_GRAPH_BASE_URL");
        let mut vars = ALL.to_vec();
        vars.push(("META_GRAPH_VERSION", "v21.0"));
        assert_eq!(read(&vars).unwrap().unwrap().graph_version, "v21.0");
    }
}
