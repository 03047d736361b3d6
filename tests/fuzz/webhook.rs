//! The webhook's untrusted input: the raw form body as Twilio (or anyone) sends it, read
//! as the handler reads it, and the signature check over any URL, parameters and token.

use chrono::Utc;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use serde::{Deserialize, Serialize};
use whatsapp_memory::adapters::twilio::form::{parse_inbound_form, MAX_BODY_BYTES, MAX_MEDIA};
use whatsapp_memory::adapters::twilio::signature::{compute_signature, SignatureValidator};
use whatsapp_memory::config::Secret;
use whatsapp_memory::domain::text::is_unwanted_control;

use crate::harness::{clearly_said, fuzz, Limits, MIB};
use crate::json_corpus_input;
use crate::mutate::{apply, edit};
use crate::text::message_text;

const FIELDS: &[&str] = &[
    "MessageSid",
    "From",
    "To",
    "WaId",
    "ProfileName",
    "Body",
    "NumMedia",
    "MediaUrl0",
    "MediaContentType0",
    "MediaUrl1",
    "MediaUrl9",
    "MediaUrl10",
    "Latitude",
    "Longitude",
    "Address",
    "Label",
    "MessageType",
    "AccountSid",
    "ChannelMetadata",
    "SmsMessageSid",
    "OriginalRepliedMessageSid",
    "ButtonPayload",
    "",
];

/// Values that sit on the form parser's edges.
const VALUES: &[&str] = &[
    "SM0123456789abcdef0123456789abcdef",
    "MM0123456789ABCDEF0123456789ABCDEF",
    "SM0123456789abcdef0123456789abcdeg",
    "ÅM0123456789abcdef0123456789abcde",
    "whatsapp:+15551234567",
    "whatsapp:+1",
    "+15551234567",
    "whatsapp:",
    "15551234567",
    "0",
    "1",
    "2",
    "10",
    "11",
    "-1",
    "1.5",
    "+3",
    "１",
    "https://api.twilio.com/2010-04-01/x",
    "http://",
    "ftp://x",
    "image/jpeg",
    "audio/ogg; codecs=opus",
    "52.5",
    "-90",
    "90.0000001",
    "180",
    "NaN",
    "inf",
    "-0",
    "1e309",
    "0x10",
    "",
    " ",
    "\u{0}",
    "%",
    "%zz",
    "%C3%28",
    "&",
    "=",
];

/// A form body: known fields with edge values or any text, in any order, repeated or
/// not, URL-encoded, then a few raw byte edits (stray `%`, `&`, invalid UTF-8).
fn form_body() -> impl Strategy<Value = Vec<u8>> {
    let name = prop_oneof![4 => select(FIELDS).prop_map(str::to_string), 1 => message_text()];
    let value = prop_oneof![
        3 => select(VALUES).prop_map(str::to_string),
        3 => message_text(),
        1 => (message_text(), 1..2000usize).prop_map(|(text, times)| text.repeat(times)),
    ];
    (vec((name, value), 0..16), vec(edit(), 0..3)).prop_map(|(fields, edits)| {
        let mut body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish().into_bytes();
        for edit in &edits {
            apply(&mut body, edit);
        }
        body
    })
}

fn is_message_sid(sid: &str) -> bool {
    sid.len() == 34
        && sid.as_bytes()[..2].iter().all(u8::is_ascii_alphabetic)
        && sid[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

fn has_unwanted_control(json: &serde_json::Value) -> bool {
    match json {
        serde_json::Value::String(s) => s.chars().any(is_unwanted_control),
        serde_json::Value::Array(items) => items.iter().any(has_unwanted_control),
        serde_json::Value::Object(fields) => {
            fields.iter().any(|(name, value)| name.chars().any(is_unwanted_control) || has_unwanted_control(value))
        }
        _ => false,
    }
}

#[test]
fn any_form_body_is_a_valid_message_or_a_clear_refusal() {
    fuzz("webhook_form", 300, Limits::one_cpu_second(16 * MIB), form_body(), |body: &Vec<u8>| {
        // As `webhook_post` reads it.
        let params: Vec<(String, String)> = url::form_urlencoded::parse(body).into_owned().collect();
        let message = match parse_inbound_form(&params, Utc::now()) {
            Ok(message) => message,
            Err(error) => return clearly_said(&error),
        };
        if !is_message_sid(&message.sid.0) {
            return Err(format!("accepted the MessageSid {:?}", message.sid.0));
        }
        if message.wa_id.is_empty() || !message.wa_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("accepted the sender {:?}", message.wa_id));
        }
        if message.body.len() > MAX_BODY_BYTES || message.media.len() > MAX_MEDIA {
            return Err("accepted a body or a media list over its cap".into());
        }
        if let Some(item) = message.media.iter().find(|item| !item.url.starts_with("http")) {
            return Err(format!("accepted the media URL {:?}", item.url));
        }
        if let Some(location) = &message.location {
            if !(-90.0..=90.0).contains(&location.latitude) || !(-180.0..=180.0).contains(&location.longitude) {
                return Err(format!("accepted the location {location:?}"));
            }
        }
        let texts = [Some(&message.body), message.profile_name.as_ref()];
        if texts.into_iter().flatten().any(|text| text.chars().any(is_unwanted_control))
            || has_unwanted_control(&message.raw_form)
        {
            return Err("a control character reached the stored message".into());
        }
        Ok(())
    });
}

/// A request to check: the auth token, the URL Twilio called, the form, and a claimed
/// signature.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignedRequest {
    token: String,
    url: String,
    params: Vec<(String, String)>,
    claimed: String,
}

json_corpus_input!(SignedRequest);

fn signed_request() -> impl Strategy<Value = SignedRequest> {
    let url = prop_oneof![
        2 => select(vec![
            "https://mycompany.com/myapp.php?foo=1&bar=2",
            "https://mycompany.com:443/myapp.php",
            "http://example.com:80",
            "http://[::1]:8080/webhook?x=:1",
            "https://user:pw@host:99999999999999999999/a",
            "https://a@b@c:/x",
            "://",
            "",
            "http://host:/",
            "https://münchen.example/ä?ö=ü#frag",
        ])
        .prop_map(str::to_string),
        2 => ("(https?|HTTP|x)://[a-z0-9.:@\\[\\]]{0,20}(/[a-z?=&#:]{0,12})?", message_text())
            .prop_map(|(url, tail)| format!("{url}{tail}")),
        1 => message_text(),
    ];
    let params = vec((message_text(), message_text()), 0..8);
    (message_text(), url, params, message_text()).prop_map(|(token, url, params, claimed)| SignedRequest {
        token,
        url,
        params,
        claimed,
    })
}

#[test]
fn a_signature_is_accepted_exactly_when_it_was_made_with_the_token() {
    fuzz("signature", 500, Limits::one_cpu_second(MIB), signed_request(), |request: &SignedRequest| {
        let validator = SignatureValidator::new(Secret::new(request.token.clone()));
        let genuine = compute_signature(&Secret::new(request.token.clone()), &request.url, &request.params);
        if !validator.is_valid_form(&request.url, &request.params, &genuine) {
            return Err(format!("its own signature {genuine} is refused"));
        }
        let mut reordered = request.params.clone();
        reordered.reverse();
        if !validator.is_valid_form(&request.url, &reordered, &genuine) {
            return Err("the order of the parameters changed the signature".into());
        }
        let mut forged = genuine.clone().into_bytes();
        forged[0] = if forged[0] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(forged).map_err(|e| e.to_string())?;
        if validator.is_valid_form(&request.url, &request.params, &forged) {
            return Err(format!("the forged signature {forged} is accepted"));
        }
        if request.claimed != genuine && validator.is_valid_form(&request.url, &request.params, &request.claimed) {
            // Only the URL's other port variant may also match; a random claim never does.
            if !request.claimed.ends_with('=') || request.claimed.len() != genuine.len() {
                return Err(format!("the claimed signature {:?} is accepted", request.claimed));
            }
        }
        let _ = validator.is_valid_json(&request.url, request.token.as_bytes(), &request.claimed);
        Ok(())
    });
}
