//! Reads Twilio's webhook form into a domain `InboundMessage`, refusing what Twilio would
//! never send with a message that says which field is wrong. Unknown fields are kept.

use chrono::{DateTime, Utc};

use crate::config::is_e164;
use crate::domain::model::{Channel, InboundMessage, MediaItem, MessageSid, SharedLocation};
use crate::domain::text::{clean_text, is_unwanted_control};

/// The largest `Body` accepted (WhatsApp itself allows far less).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Twilio sends at most ten media items per message.
pub const MAX_MEDIA: usize = 10;

/// Why a webhook form is not a message we can store.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormError {
    #[error("missing required field {0}")]
    Missing(&'static str),
    #[error("field {field} is invalid: {reason}")]
    Invalid { field: String, reason: String },
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> FormError {
    FormError::Invalid { field: field.into(), reason: reason.into() }
}

/// A message SID: two letters and 32 hexadecimal digits (`SM…`, `MM…`).
fn is_message_sid(sid: &str) -> bool {
    sid.len() == 34
        && sid.as_bytes()[..2].iter().all(u8::is_ascii_alphabetic)
        && sid[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// The parameters with control characters other than newline and tab taken out of
/// every name and value (see [`crate::domain::text`]); borrowed when there are none.
/// The signature is checked over the parameters as received, before this.
fn without_control_characters(params: &[(String, String)]) -> std::borrow::Cow<'_, [(String, String)]> {
    let has_control = |s: &String| s.chars().any(is_unwanted_control);
    if !params.iter().any(|(k, v)| has_control(k) || has_control(v)) {
        return std::borrow::Cow::Borrowed(params);
    }
    params.iter().map(|(k, v)| (clean_text(k).into_owned(), clean_text(v).into_owned())).collect()
}

/// Parses a webhook's parameters (in the order received, repeats allowed). Control
/// characters other than newline and tab are dropped from every field first, so a `Body`
/// or `ProfileName` carrying U+0000 is stored alike on SQLite and PostgreSQL.
///
/// # Errors
/// [`FormError`] naming the first missing or invalid field.
pub fn parse_inbound_form(
    params: &[(String, String)],
    received_at: DateTime<Utc>,
) -> Result<InboundMessage, FormError> {
    let params = &*without_control_characters(params);
    let field = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let non_empty = |name: &str| field(name).map(str::trim).filter(|v| !v.is_empty());

    let sid = non_empty("MessageSid").ok_or(FormError::Missing("MessageSid"))?;
    if !is_message_sid(sid) {
        return Err(invalid("MessageSid", "expected two letters and 32 hexadecimal digits"));
    }
    let from = non_empty("From").ok_or(FormError::Missing("From"))?;
    let phone_number = from.strip_prefix("whatsapp:").unwrap_or(from).to_string();
    if !is_e164(&phone_number) {
        return Err(invalid("From", "expected whatsapp:+<E.164 number>"));
    }
    let wa_id = match non_empty("WaId") {
        Some(wa_id) if wa_id.bytes().all(|b| b.is_ascii_digit()) && (6..=20).contains(&wa_id.len()) => {
            wa_id.to_string()
        }
        Some(_) => return Err(invalid("WaId", "expected the sender's digits")),
        None => phone_number.trim_start_matches('+').to_string(),
    };
    let body = field("Body").unwrap_or_default().to_string();
    if body.len() > MAX_BODY_BYTES {
        return Err(invalid("Body", format!("longer than {} KiB", MAX_BODY_BYTES / 1024)));
    }
    let num_media = match non_empty("NumMedia") {
        None => 0,
        Some(n) => n
            .parse::<usize>()
            .ok()
            .filter(|n| *n <= MAX_MEDIA)
            .ok_or_else(|| invalid("NumMedia", format!("expected a whole number from 0 to {MAX_MEDIA}")))?,
    };
    let media = (0..num_media)
        .map(|i| {
            let url_field = format!("MediaUrl{i}");
            let url = non_empty(&url_field).ok_or_else(|| invalid(&url_field, "missing, but NumMedia announces it"))?;
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(invalid(url_field, "expected an http(s) URL"));
            }
            let content_type = non_empty(&format!("MediaContentType{i}")).unwrap_or("application/octet-stream");
            Ok(MediaItem { url: url.to_string(), content_type: content_type.to_string() })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let location = match (non_empty("Latitude"), non_empty("Longitude")) {
        (Some(lat), Some(lon)) => {
            let latitude = lat.parse::<f64>().ok().filter(|v| (-90.0..=90.0).contains(v));
            let longitude = lon.parse::<f64>().ok().filter(|v| (-180.0..=180.0).contains(v));
            match (latitude, longitude) {
                (Some(latitude), Some(longitude)) => Some(SharedLocation {
                    latitude,
                    longitude,
                    address: non_empty("Address").map(str::to_string),
                    label: non_empty("Label").map(str::to_string),
                }),
                (None, _) => return Err(invalid("Latitude", "expected a number from -90 to 90")),
                (_, None) => return Err(invalid("Longitude", "expected a number from -180 to 180")),
            }
        }
        (None, None) => None,
        (Some(_), None) => return Err(FormError::Missing("Longitude")),
        (None, Some(_)) => return Err(FormError::Missing("Latitude")),
    };
    let message_type = match non_empty("MessageType") {
        Some(t) => t.to_string(),
        None if !media.is_empty() => media[0].content_type.split('/').next().unwrap_or("media").to_string(),
        None if location.is_some() => "location".to_string(),
        None => "text".to_string(),
    };
    Ok(InboundMessage {
        sid: MessageSid(sid.to_string()),
        wa_id,
        phone_number,
        profile_name: non_empty("ProfileName").map(str::to_string),
        body,
        message_type,
        media,
        location,
        raw_form: raw_form_json(params),
        received_at,
        channel: Channel::Twilio,
    })
}

/// Every field as received, each name with the list of its values, so nothing Twilio
/// sent is lost even when we do not interpret it yet.
fn raw_form_json(params: &[(String, String)]) -> serde_json::Value {
    let mut object = serde_json::Map::new();
    for (name, value) in params {
        let entry = object.entry(name.clone()).or_insert_with(|| serde_json::Value::Array(Vec::new()));
        if let serde_json::Value::Array(values) = entry {
            values.push(serde_json::Value::String(value.clone()));
        }
    }
    serde_json::Value::Object(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SID: &str = "SM0123456789abcdef0123456789abcdef";

    fn form(extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut params = vec![
            ("MessageSid", SID),
            ("From", "whatsapp:+15551234567"),
            ("To", "whatsapp:+14155238886"),
            ("WaId", "15551234567"),
            ("ProfileName", "Ada"),
            ("Body", "buy milk"),
            ("NumMedia", "0"),
        ];
        for (k, v) in extra {
            params.retain(|(name, _)| name != k);
            params.push((k, v));
        }
        params.into_iter().filter(|(_, v)| *v != "<absent>").map(|(k, v)| (k.into(), v.into())).collect()
    }

    fn parse(extra: &[(&str, &str)]) -> Result<InboundMessage, FormError> {
        parse_inbound_form(&form(extra), Utc::now())
    }

    #[test]
    fn a_text_message_is_read_with_its_sender() {
        let m = parse(&[]).unwrap();
        assert_eq!(m.sid.0, SID);
        assert_eq!(m.wa_id, "15551234567");
        assert_eq!(m.phone_number, "+15551234567");
        assert_eq!(m.profile_name.as_deref(), Some("Ada"));
        assert_eq!(m.body, "buy milk");
        assert_eq!(m.message_type, "text");
    }

    #[test]
    fn missing_sid_or_sender_is_refused_by_name() {
        assert_eq!(parse(&[("MessageSid", "<absent>")]).unwrap_err(), FormError::Missing("MessageSid"));
        assert_eq!(parse(&[("From", "<absent>")]).unwrap_err(), FormError::Missing("From"));
        assert!(
            matches!(parse(&[("MessageSid", "SM1")]).unwrap_err(), FormError::Invalid { field, .. } if field == "MessageSid")
        );
        assert!(
            matches!(parse(&[("From", "whatsapp:me")]).unwrap_err(), FormError::Invalid { field, .. } if field == "From")
        );
    }

    #[test]
    fn num_media_must_be_a_number_up_to_ten() {
        for bad in ["x", "-1", "11", "1.5"] {
            assert!(
                matches!(parse(&[("NumMedia", bad)]).unwrap_err(), FormError::Invalid { field, .. } if field == "NumMedia")
            );
        }
    }

    #[test]
    fn announced_media_must_have_its_url() {
        let err = parse(&[("NumMedia", "1")]).unwrap_err();
        assert!(matches!(err, FormError::Invalid { field, .. } if field == "MediaUrl0"));
    }

    #[test]
    fn media_items_are_read_in_order_with_their_types() {
        let m = parse(&[
            ("NumMedia", "2"),
            ("MediaUrl0", "https://api.twilio.com/a"),
            ("MediaContentType0", "image/jpeg"),
            ("MediaUrl1", "https://api.twilio.com/b"),
        ])
        .unwrap();
        assert_eq!(m.media.len(), 2);
        assert_eq!(m.media[0].content_type, "image/jpeg");
        assert_eq!(m.media[1].content_type, "application/octet-stream");
        assert_eq!(m.message_type, "image");
    }

    #[test]
    fn a_body_over_64_kib_is_refused() {
        let long = "a".repeat(MAX_BODY_BYTES + 1);
        assert!(matches!(parse(&[("Body", &long)]).unwrap_err(), FormError::Invalid { field, .. } if field == "Body"));
        assert!(parse(&[("Body", &"a".repeat(MAX_BODY_BYTES))]).is_ok());
    }

    #[test]
    fn the_sender_id_falls_back_to_the_digits_of_from() {
        assert_eq!(parse(&[("WaId", "<absent>")]).unwrap().wa_id, "15551234567");
    }

    #[test]
    fn a_location_needs_both_coordinates_in_range() {
        let m = parse(&[("Latitude", "52.5"), ("Longitude", "13.4"), ("Label", "Home")]).unwrap();
        assert_eq!(m.location.unwrap().label.as_deref(), Some("Home"));
        assert_eq!(parse(&[("Latitude", "52.5")]).unwrap_err(), FormError::Missing("Longitude"));
        assert!(parse(&[("Latitude", "95"), ("Longitude", "13.4")]).is_err());
    }

    #[test]
    fn unknown_and_repeated_fields_are_kept_raw() {
        let m = parse(&[("ChannelMetadata", "{\"x\":1}"), ("ReferralNumMedia", "0")]).unwrap();
        assert_eq!(m.raw_form["ChannelMetadata"][0], "{\"x\":1}");
        assert_eq!(m.raw_form["ReferralNumMedia"][0], "0");
    }

    #[test]
    fn control_characters_are_dropped_from_every_field_and_the_raw_form() {
        let m = parse(&[("Body", "buy\u{0} milk\r\n"), ("ProfileName", "A\u{0}da\u{7}"), ("Label", "x")]).unwrap();
        assert_eq!(m.body, "buy milk\n");
        assert_eq!(m.profile_name.as_deref(), Some("Ada"));
        assert_eq!(m.raw_form["Body"][0], "buy milk\n");
        assert!(!m.raw_form.to_string().contains("\\u0000"));
    }
}
