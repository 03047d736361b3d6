//! Reads a Cloud API webhook delivery (`{"object": "whatsapp_business_account",
//! "entry": [{"changes": [{"field": "messages", "value": {...}}]}]}`) into channel
//! events: every message of every change of every entry, and every status. Fields we do
//! not know are kept in the message's raw JSON; a message type we do not handle is
//! acknowledged and skipped, never an error for the whole delivery.

use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::media::media_reference;
use super::signature::hex;
use crate::adapters::twilio::form::MAX_BODY_BYTES;
use crate::config::is_e164;
use crate::domain::model::{Channel, InboundMessage, MediaItem, MessageSid, SharedLocation};
use crate::domain::ports::{ChannelEvent, DeliveryDecoder, DeliveryStatus};
use crate::domain::text::{clean_string, is_unwanted_control};

/// The longest message id accepted (Meta's `wamid.…` are about 60 characters).
const MAX_ID_CHARS: usize = 200;

/// The [`DeliveryDecoder`] for Meta's Cloud API.
#[derive(Debug, Default, Clone, Copy)]
pub struct CloudApiDecoder;

impl DeliveryDecoder for CloudApiDecoder {
    fn decode(&self, body: &[u8], received_at: DateTime<Utc>) -> Result<Vec<ChannelEvent>, String> {
        decode_delivery(body, received_at)
    }
}

/// Every event of a delivery, in order.
///
/// # Errors
/// When the body is not JSON or not a WhatsApp Business Account delivery.
pub fn decode_delivery(body: &[u8], received_at: DateTime<Utc>) -> Result<Vec<ChannelEvent>, String> {
    let mut document: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    clean_json(&mut document);
    if document["object"] != "whatsapp_business_account" {
        return Err(format!("object is {}, not \"whatsapp_business_account\"", document["object"]));
    }
    let mut events = Vec::new();
    for entry in array(&document["entry"]) {
        for change in array(&entry["changes"]) {
            let field = change["field"].as_str().unwrap_or_default();
            if field != "messages" {
                events.push(ChannelEvent::Skipped(format!("a change of field {field:?}")));
                continue;
            }
            decode_change(&change["value"], received_at, &mut events);
        }
    }
    Ok(events)
}

/// The messages and statuses of one `messages` change.
fn decode_change(value: &Value, received_at: DateTime<Utc>, events: &mut Vec<ChannelEvent>) {
    let contacts = array(&value["contacts"]);
    for message in array(&value["messages"]) {
        events.push(match decode_message(message, contacts, received_at) {
            Ok(message) => ChannelEvent::Message(message),
            Err(skipped) => ChannelEvent::Skipped(skipped),
        });
    }
    for status in array(&value["statuses"]) {
        events.push(match decode_status(status) {
            Some(status) => ChannelEvent::Status(status),
            None => ChannelEvent::Skipped("a status without id or status".into()),
        });
    }
    for error in array(&value["errors"]) {
        events.push(ChannelEvent::Skipped(format!("an error notification: {error}")));
    }
}

fn array(value: &Value) -> &[Value] {
    value.as_array().map(Vec::as_slice).unwrap_or_default()
}

fn text<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value[key].as_str().map(str::trim).filter(|s| !s.is_empty())
}

/// A WhatsApp id: the digits of the number.
fn is_wa_id(id: &str) -> bool {
    (6..=20).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_digit())
}

/// One message, or why it is skipped.
fn decode_message(message: &Value, contacts: &[Value], received_at: DateTime<Utc>) -> Result<InboundMessage, String> {
    let id = text(message, "id").ok_or("a message without id")?;
    if id.chars().count() > MAX_ID_CHARS {
        return Err("a message id longer than 200 characters".into());
    }
    let kind = text(message, "type").unwrap_or("unknown");
    // `from` is the sender's wa_id; a contact entry may carry it (and a business-scoped
    // `user_id`) when `from` is something else.
    let contact = contacts
        .iter()
        .find(|c| text(c, "wa_id") == text(message, "from"))
        .or_else(|| (contacts.len() == 1).then(|| &contacts[0]));
    let wa_id = [text(message, "from"), contact.and_then(|c| text(c, "wa_id"))]
        .into_iter()
        .flatten()
        .find(|id| is_wa_id(id))
        .ok_or("a message whose sender has no WhatsApp id")?;
    let phone_number = format!("+{wa_id}");
    if !is_e164(&phone_number) {
        return Err(format!("a {kind} message from a number that is not E.164"));
    }
    let mut body = String::new();
    let mut media = Vec::new();
    let mut location = None;
    match kind {
        "text" => body = text(&message["text"], "body").unwrap_or_default().to_string(),
        "image" | "video" | "audio" | "document" | "sticker" => {
            let item = &message[kind];
            let media_id = text(item, "id").ok_or_else(|| format!("a {kind} message without a media id"))?;
            let sha256 = text(item, "sha256").and_then(base64_to_hex);
            let content_type = text(item, "mime_type").unwrap_or("application/octet-stream");
            media.push(MediaItem {
                url: media_reference(media_id, sha256.as_deref()),
                content_type: content_type.to_string(),
            });
            body = text(item, "caption").or_else(|| text(item, "filename")).unwrap_or_default().to_string();
        }
        "location" => {
            let place = &message["location"];
            let (Some(latitude), Some(longitude)) = (place["latitude"].as_f64(), place["longitude"].as_f64()) else {
                return Err("a location without coordinates".into());
            };
            if !(-90.0..=90.0).contains(&latitude) || !(-180.0..=180.0).contains(&longitude) {
                return Err("a location with coordinates out of range".into());
            }
            location = Some(SharedLocation {
                latitude,
                longitude,
                address: text(place, "address").map(str::to_string),
                label: text(place, "name").map(str::to_string),
            });
        }
        "contacts" => body = describe_contacts(array(&message["contacts"])),
        "interactive" => {
            let reply = &message["interactive"];
            let chosen = &reply[reply["type"].as_str().unwrap_or_default()];
            body = [text(chosen, "title"), text(chosen, "description")]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" — ");
        }
        "button" => body = text(&message["button"], "text").unwrap_or_default().to_string(),
        other => return Err(format!("a message of type {other:?}")),
    }
    if body.trim().is_empty() && media.is_empty() && location.is_none() {
        return Err(format!("a {kind} message with nothing to save"));
    }
    if body.len() > MAX_BODY_BYTES {
        return Err(format!("a {kind} message longer than {} KiB", MAX_BODY_BYTES / 1024));
    }
    Ok(InboundMessage {
        sid: MessageSid(id.to_string()),
        wa_id: wa_id.to_string(),
        phone_number,
        profile_name: contact.and_then(|c| text(&c["profile"], "name")).map(str::to_string),
        body,
        message_type: kind.to_string(),
        media,
        location,
        raw_form: message.clone(),
        received_at,
        channel: Channel::Meta,
    })
}

/// Shared contact cards as one line each: name, then numbers and e-mail addresses.
fn describe_contacts(contacts: &[Value]) -> String {
    contacts
        .iter()
        .map(|contact| {
            let name = text(&contact["name"], "formatted_name")
                .or_else(|| text(&contact["name"], "first_name"))
                .unwrap_or("A contact");
            let phones = array(&contact["phones"]).iter().filter_map(|p| text(p, "phone"));
            let emails = array(&contact["emails"]).iter().filter_map(|e| text(e, "email"));
            let details: Vec<&str> = phones.chain(emails).collect();
            if details.is_empty() {
                format!("👤 {name}")
            } else {
                format!("👤 {name}: {}", details.join(", "))
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// One status of a message we sent.
fn decode_status(status: &Value) -> Option<DeliveryStatus> {
    let error = array(&status["errors"]).first();
    Some(DeliveryStatus {
        message_id: text(status, "id")?.to_string(),
        status: text(status, "status")?.to_ascii_lowercase(),
        error_code: error.and_then(|e| e["code"].as_i64()),
        error_message: error.and_then(|e| {
            text(e, "message")
                .or_else(|| text(e, "title"))
                .or_else(|| text(&e["error_data"], "details"))
                .map(str::to_string)
        }),
    })
}

/// The webhook's media `sha256` is base64 (the media lookup's is hex): as hex, or `None`
/// when it is not a SHA-256 in base64.
fn base64_to_hex(encoded: &str) -> Option<String> {
    let engine = &base64::engine::general_purpose::STANDARD;
    let bytes = engine.decode(encoded).ok().filter(|b| b.len() == 32)?;
    Some(hex(&bytes))
}

/// Drops control characters other than newline and tab from every string and key, as
/// the Twilio form and the REST API do, so both databases store the same.
fn clean_json(value: &mut Value) {
    match value {
        Value::String(s) if s.chars().any(is_unwanted_control) => *s = clean_string(std::mem::take(s)),
        Value::Array(items) => items.iter_mut().for_each(clean_json),
        Value::Object(object) => {
            if object.keys().any(|k| k.chars().any(is_unwanted_control)) {
                *object = std::mem::take(object).into_iter().map(|(k, v)| (clean_string(k), v)).collect();
            }
            object.values_mut().for_each(clean_json);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn delivery(messages: Value, statuses: Value) -> Vec<u8> {
        json!({
            "object": "whatsapp_business_account",
            "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
                "contacts": [{"profile": {"name": "Ada"}, "wa_id": "15551234567", "user_id": "US.13491208655302741918"}],
                "messages": messages,
                "statuses": statuses,
            }}]}],
        })
        .to_string()
        .into_bytes()
    }

    fn decode(messages: Value) -> Vec<ChannelEvent> {
        decode_delivery(&delivery(messages, json!([])), Utc::now()).unwrap()
    }

    fn message(events: &[ChannelEvent]) -> &InboundMessage {
        match &events[0] {
            ChannelEvent::Message(m) => m,
            other => panic!("not a message: {other:?}"),
        }
    }

    const FROM: &str = "15551234567";

    #[test]
    fn a_text_is_read_with_its_sender_and_name() {
        let events = decode(
            json!([{"from": FROM, "id": "wamid.A1", "timestamp": "1764158400", "type": "text", "text": {"body": "buy milk"}}]),
        );
        let m = message(&events);
        assert_eq!(m.sid.0, "wamid.A1");
        assert_eq!((m.wa_id.as_str(), m.phone_number.as_str()), (FROM, "+15551234567"));
        assert_eq!(m.profile_name.as_deref(), Some("Ada"));
        assert_eq!(m.body, "buy milk");
        assert_eq!(m.channel, Channel::Meta);
        assert_eq!(m.raw_form["text"]["body"], "buy milk");
    }

    #[test]
    fn every_message_of_every_entry_and_change_is_read() {
        let one = |id: &str| json!({"from": FROM, "id": id, "type": "text", "text": {"body": id}});
        let mut document: Value =
            serde_json::from_slice(&delivery(json!([one("wamid.1"), one("wamid.2")]), json!([]))).unwrap();
        let second_entry = document["entry"][0].clone();
        document["entry"][0]["changes"]
            .as_array_mut()
            .unwrap()
            .push(json!({"field": "messages", "value": {"messages": [one("wamid.3")], "contacts": [{"wa_id": FROM}]}}));
        document["entry"].as_array_mut().unwrap().push(second_entry);
        let events = decode_delivery(document.to_string().as_bytes(), Utc::now()).unwrap();
        let ids: Vec<&str> = events
            .iter()
            .filter_map(|e| match e {
                ChannelEvent::Message(m) => Some(m.sid.0.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(ids, ["wamid.1", "wamid.2", "wamid.3", "wamid.1", "wamid.2"]);
    }

    #[test]
    fn media_becomes_a_graph_reference_with_the_hex_checksum() {
        let sha = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let events = decode(json!([
            {"from": FROM, "id": "wamid.I", "type": "image", "image": {"id": "1479537139650973", "mime_type": "image/jpeg", "sha256": sha, "caption": "the fridge"}},
            {"from": FROM, "id": "wamid.V", "type": "audio", "audio": {"id": "2001", "mime_type": "audio/ogg; codecs=opus", "sha256": "not base64!", "voice": true}},
            {"from": FROM, "id": "wamid.D", "type": "document", "document": {"id": "3001", "mime_type": "application/pdf", "filename": "lease.pdf"}},
        ]));
        let image = message(&events);
        assert_eq!(image.media[0].url, format!("meta-media:1479537139650973?sha256={}", "07".repeat(32)));
        assert_eq!(image.media[0].content_type, "image/jpeg");
        assert_eq!(image.body, "the fridge");
        let ChannelEvent::Message(voice) = &events[1] else { panic!() };
        assert_eq!(voice.media[0].url, "meta-media:2001");
        assert_eq!(voice.message_type, "audio");
        let ChannelEvent::Message(document) = &events[2] else { panic!() };
        assert_eq!(document.body, "lease.pdf");
    }

    #[test]
    fn locations_contacts_and_interactive_replies_are_read() {
        let events = decode(json!([
            {"from": FROM, "id": "wamid.L", "type": "location", "location": {"latitude": 52.52, "longitude": 13.405, "name": "Alexanderplatz", "address": "Berlin"}},
            {"from": FROM, "id": "wamid.C", "type": "contacts", "contacts": [{"name": {"formatted_name": "Lea Brandt", "first_name": "Lea"}, "phones": [{"phone": "+49 30 1234", "type": "HOME"}]}]},
            {"from": FROM, "id": "wamid.B", "type": "interactive", "interactive": {"type": "button_reply", "button_reply": {"id": "yes", "title": "Yes please"}}},
            {"from": FROM, "id": "wamid.R", "type": "interactive", "interactive": {"type": "list_reply", "list_reply": {"id": "r1", "title": "Piano", "description": "Mondays"}}},
        ]));
        let location = message(&events).location.clone().unwrap();
        assert_eq!((location.latitude, location.label.as_deref()), (52.52, Some("Alexanderplatz")));
        let bodies: Vec<String> = events[1..]
            .iter()
            .map(|e| match e {
                ChannelEvent::Message(m) => m.body.clone(),
                o => panic!("{o:?}"),
            })
            .collect();
        assert_eq!(bodies, ["👤 Lea Brandt: +49 30 1234", "Yes please", "Piano — Mondays"]);
    }

    #[test]
    fn unknown_types_and_other_fields_are_skipped_not_fatal() {
        let events = decode(json!([
            {"from": FROM, "id": "wamid.X", "type": "reaction", "reaction": {"message_id": "wamid.A1", "emoji": "👍"}},
            {"from": FROM, "id": "wamid.U", "type": "unsupported"},
        ]));
        assert!(events.iter().all(|e| matches!(e, ChannelEvent::Skipped(_))), "{events:?}");
        // A sender known only by a business-scoped id, with no contact giving the wa_id.
        let bsuid = json!({"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages", "value": {
            "contacts": [{"user_id": "US.1349"}],
            "messages": [{"from": "US.1349", "id": "wamid.N", "type": "text", "text": {"body": "x"}}]}}]}]});
        assert!(matches!(
            decode_delivery(bsuid.to_string().as_bytes(), Utc::now()).unwrap()[..],
            [ChannelEvent::Skipped(_)]
        ));
        let other = json!({"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "account_update", "value": {}}]}]});
        assert!(matches!(
            decode_delivery(other.to_string().as_bytes(), Utc::now()).unwrap()[..],
            [ChannelEvent::Skipped(_)]
        ));
    }

    #[test]
    fn a_sender_id_that_is_not_digits_falls_back_to_the_contacts_wa_id() {
        let events = decode(
            json!([{"from": "US.13491208655302741918", "id": "wamid.N", "type": "text", "text": {"body": "x"}}]),
        );
        assert_eq!(message(&events).wa_id, FROM);
    }

    #[test]
    fn statuses_of_our_messages_are_read_with_their_errors() {
        let body = delivery(
            json!([]),
            json!([
                {"id": "wamid.OUT1", "status": "delivered", "timestamp": "1764158401", "recipient_id": FROM},
                {"id": "wamid.OUT2", "status": "failed", "recipient_id": FROM, "errors": [{"code": 131047, "title": "Re-engagement message", "message": "Re-engagement message"}]},
            ]),
        );
        let events = decode_delivery(&body, Utc::now()).unwrap();
        assert_eq!(
            events,
            vec![
                ChannelEvent::Status(DeliveryStatus {
                    message_id: "wamid.OUT1".into(),
                    status: "delivered".into(),
                    error_code: None,
                    error_message: None
                }),
                ChannelEvent::Status(DeliveryStatus {
                    message_id: "wamid.OUT2".into(),
                    status: "failed".into(),
                    error_code: Some(131047),
                    error_message: Some("Re-engagement message".into())
                }),
            ]
        );
    }

    #[test]
    fn what_is_not_a_delivery_is_an_error_and_control_characters_are_dropped() {
        assert!(decode_delivery(b"not json", Utc::now()).is_err());
        assert!(decode_delivery(br#"{"object": "page", "entry": []}"#, Utc::now()).is_err());
        let events = decode(json!([{"from": FROM, "id": "wamid.Z", "type": "text", "text": {"body": "a\u{0}b\r\nc"}}]));
        assert_eq!(message(&events).body, "ab\nc");
        assert!(!message(&events).raw_form.to_string().contains("\\u0000"));
    }
}
