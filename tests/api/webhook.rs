//! The webhook as Twilio uses it: signatures, validation, idempotency, TwiML.

use crate::helpers::*;
use sea_orm::ConnectionTrait;
use whatsapp_memory::simulate::{self, twiml_messages, SimulatedMessage};

#[tokio::test]
async fn a_signed_text_is_saved_and_answered_with_twiml() {
    let app = spawn_app().await;
    let response = app.post_webhook(&text_form(ADA, "buy milk")).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/xml"));
    assert_eq!(
        response.text().await.unwrap(),
        r#"<?xml version="1.0" encoding="UTF-8"?><Response><Message>Memory saved ✅</Message></Response>"#
    );
    assert_eq!(app.count("users").await, 1);
    assert_eq!(app.count("memories").await, 1);
    assert_eq!(app.scalar("SELECT count(*) FROM interactions WHERE direction = 'inbound'").await, 1);
    assert_eq!(app.scalar("SELECT count(*) FROM interactions WHERE direction = 'outbound'").await, 1);
}

#[tokio::test]
async fn a_forged_signature_is_refused_and_nothing_is_stored() {
    let app = spawn_app().await;
    let form = text_form(ADA, "buy milk");
    let response = app.post_webhook_signed(&form, Some("RSOYDt4T1cUTdK1PDd93/VVr8B8=")).await;
    assert_eq!(response.status(), 403);
    let body = response.text().await.unwrap();
    assert!(!body.contains(&app.sign(&form)), "the answer must not reveal the expected signature");
    assert!(!body.contains("memory.example.com"), "the answer must not reveal the signed URL");
    assert_eq!(app.count("interactions").await, 0);
    assert_eq!(app.count("users").await, 0);
}

#[tokio::test]
async fn a_missing_signature_is_refused() {
    let app = spawn_app().await;
    let response = app.post_webhook_signed(&text_form(ADA, "buy milk"), None).await;
    assert_eq!(response.status(), 403);
    assert_eq!(app.count("interactions").await, 0);
}

#[tokio::test]
async fn a_signed_request_whose_body_was_changed_is_refused() {
    let app = spawn_app().await;
    let form = text_form(ADA, "buy milk");
    let signature = app.sign(&form);
    let tampered = with_field(form, "Body", "transfer money");
    assert_eq!(app.post_webhook_signed(&tampered, Some(&signature)).await.status(), 403);
    assert_eq!(app.count("memories").await, 0);
}

#[tokio::test]
async fn without_a_public_url_the_signature_covers_the_forwarded_proto_and_host() {
    let app = spawn_app_with(|vars| {
        vars.remove("PUBLIC_BASE_URL");
    })
    .await;
    let form = text_form(ADA, "behind a proxy");
    let signature = whatsapp_memory::adapters::twilio::signature::compute_signature(
        &whatsapp_memory::config::Secret::new(AUTH_TOKEN),
        "https://tunnel.example.org/webhook",
        &form,
    );
    let response = app
        .client
        .post(format!("{}/webhook", app.address))
        .header("Host", "tunnel.example.org")
        .header("X-Forwarded-Proto", "https")
        .header("X-Twilio-Signature", signature)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(app.count("memories").await, 1);
}

#[tokio::test]
async fn a_redelivery_answers_the_same_and_changes_nothing() {
    let app = spawn_app().await;
    let form = text_form(ADA, "buy milk");
    let first = app.post_webhook(&form).await.text().await.unwrap();
    let second = app.post_webhook(&form).await;
    assert_eq!(second.status(), 200);
    assert_eq!(second.text().await.unwrap(), first);
    assert_eq!(app.count("memories").await, 1);
    assert_eq!(app.count("interactions").await, 2, "one inbound and one outbound");
}

#[tokio::test]
async fn a_redelivered_search_answers_as_it_did_the_first_time() {
    let app = spawn_app().await;
    app.send_text(ADA, "buy milk").await;
    let search = text_form(ADA, "/search milk");
    let first = app.post_webhook(&search).await.text().await.unwrap();
    app.send_text(ADA, "more milk").await;
    let again = app.post_webhook(&search).await.text().await.unwrap();
    assert_eq!(again, first, "the recorded reply, not a new search");
}

#[tokio::test]
async fn a_hundred_concurrent_deliveries_of_one_message_store_it_once() {
    let app = spawn_app().await;
    let form = text_form(ADA, "exactly once");
    let responses = futures::future::join_all((0..100).map(|_| app.post_webhook(&form))).await;
    let mut bodies = Vec::new();
    for response in responses {
        assert_eq!(response.status(), 200);
        bodies.push(response.text().await.unwrap());
    }
    assert!(bodies.iter().all(|b| b == &bodies[0]), "every delivery gets the same TwiML");
    assert_eq!(twiml_messages(&bodies[0]), vec!["Memory saved ✅".to_string()]);
    assert_eq!(app.scalar("SELECT count(*) FROM interactions WHERE direction = 'inbound'").await, 1);
    assert_eq!(app.count("memories").await, 1);
    assert_eq!(app.count("users").await, 1);
}

#[tokio::test]
async fn malformed_forms_get_400_naming_the_field_and_store_nothing() {
    let app = spawn_app().await;
    let cases = [
        (without_field(text_form(ADA, "x"), "MessageSid"), "MessageSid"),
        (without_field(text_form(ADA, "x"), "From"), "From"),
        (with_field(text_form(ADA, "x"), "NumMedia", "eleven"), "NumMedia"),
        (with_field(text_form(ADA, "x"), "NumMedia", "11"), "NumMedia"),
        (with_field(text_form(ADA, "x"), "Body", &"a".repeat(64 * 1024 + 1)), "Body"),
    ];
    for (form, field) in cases {
        let response = app.post_webhook(&form).await;
        assert_eq!(response.status(), 400, "{field}");
        assert_eq!(response.headers()["content-type"], "application/problem+json");
        let problem: serde_json::Value = response.json().await.unwrap();
        assert_eq!(problem["status"], 400);
        assert!(problem["detail"].as_str().unwrap().contains(field), "{problem}");
    }
    assert_eq!(app.count("interactions").await, 0);
}

#[tokio::test]
async fn an_oversized_request_gets_413() {
    let app = spawn_app().await;
    let form = with_field(text_form(ADA, "x"), "Padding", &"a".repeat(300 * 1024));
    assert_eq!(app.post_webhook(&form).await.status(), 413);
    assert_eq!(app.count("interactions").await, 0);
}

#[tokio::test]
async fn a_body_that_is_not_a_form_gets_415() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(format!("{}/webhook", app.address))
        .header("Content-Type", "application/json")
        .body(r#"{"Body":"x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
}

#[tokio::test]
async fn unknown_fields_are_kept_with_the_interaction() {
    let app = spawn_app().await;
    let form = with_field(text_form(ADA, "keep everything"), "ChannelMetadata", r#"{"type":"whatsapp"}"#);
    assert_eq!(app.post_webhook(&form).await.status(), 200);
    let row = app
        .db
        .query_one_raw(sea_orm::Statement::from_string(
            app.db.get_database_backend(),
            "SELECT CAST(raw_form AS TEXT) AS raw FROM interactions WHERE direction = 'inbound'",
        ))
        .await
        .unwrap()
        .unwrap();
    let raw: serde_json::Value = serde_json::from_str(&row.try_get::<String>("", "raw").unwrap()).unwrap();
    assert_eq!(raw["ChannelMetadata"][0], r#"{"type":"whatsapp"}"#);
    assert_eq!(raw["ApiVersion"][0], "2010-04-01");
}

#[tokio::test]
async fn media_is_stored_and_queued_and_answered_with_an_empty_response() {
    let app = spawn_app().await;
    let form = with_field(text_form(ADA, "look"), "NumMedia", "1");
    let form = with_field(form, "MediaUrl0", "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1");
    let form = with_field(form, "MediaContentType0", "image/jpeg");
    let response = app.post_webhook(&form).await;
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().ends_with("<Response/>"));
    assert_eq!(app.scalar("SELECT count(*) FROM jobs WHERE kind = 'media.ingest'").await, 1);
    assert_eq!(app.scalar("SELECT count(*) FROM interactions WHERE direction = 'inbound'").await, 1);
}

#[tokio::test]
async fn a_bare_get_or_head_is_answered_ok_without_a_signature() {
    let app = spawn_app().await;
    let response = app.client.get(format!("{}/webhook", app.address)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(twiml_messages(&response.text().await.unwrap()), vec!["OK".to_string()]);
    let head = app.client.head(format!("{}/webhook", app.address)).send().await.unwrap();
    assert_eq!(head.status(), 200);
}

#[tokio::test]
async fn a_message_sent_by_get_is_verified_over_the_full_url() {
    let app = spawn_app().await;
    let form = text_form(ADA, "sent by GET");
    let query = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(&form).finish();
    let signed_url = format!("{PUBLIC_BASE_URL}/webhook?{query}");
    let signature = whatsapp_memory::adapters::twilio::signature::compute_signature(
        &whatsapp_memory::config::Secret::new(AUTH_TOKEN),
        &signed_url,
        &[],
    );
    let url = format!("{}/webhook?{query}", app.address);
    let forged = app.client.get(&url).header("X-Twilio-Signature", "AAAA").send().await.unwrap();
    assert_eq!(forged.status(), 403);
    let response = app.client.get(&url).header("X-Twilio-Signature", signature).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(app.count("memories").await, 1);
}

#[tokio::test]
async fn development_without_a_token_accepts_unsigned_webhooks() {
    let app = spawn_app_with(|vars| {
        vars.insert("ENV".into(), "development".into());
        vars.remove("TWILIO_AUTH_TOKEN");
    })
    .await;
    let response = app.post_webhook_signed(&text_form(ADA, "unsigned"), None).await;
    assert_eq!(response.status(), 200);
    assert_eq!(app.count("memories").await, 1);
}

#[tokio::test]
async fn simulate_sends_a_signed_message_the_server_accepts() {
    let app = spawn_app_with(|vars| {
        vars.remove("PUBLIC_BASE_URL");
    })
    .await;
    let config =
        whatsapp_memory::config::Config::from_lookup(|k| (k == "TWILIO_AUTH_TOKEN").then(|| AUTH_TOKEN.to_string()))
            .unwrap();
    let message = |body: &str| SimulatedMessage {
        from: ADA.into(),
        profile_name: Some("Ada".into()),
        body: body.into(),
        base_url: Some(app.address.clone()),
    };
    let replies = simulate::send(&config, message("simulated")).await.unwrap();
    assert_eq!(replies, vec!["Memory saved ✅".to_string()]);
    assert_eq!(app.count("memories").await, 1);

    let wrong_token = whatsapp_memory::config::Config::from_lookup(|k| {
        (k == "TWILIO_AUTH_TOKEN").then(|| "another-token".to_string())
    })
    .unwrap();
    assert!(simulate::send(&wrong_token, message("forged")).await.is_err());
    assert_eq!(app.count("memories").await, 1);
}

#[tokio::test]
async fn simulate_media_plays_twilio_and_prints_the_late_reply() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let twilio_vars = [
        ("TWILIO_ACCOUNT_SID", "AC0123456789abcdef0123456789abcdef".to_string()),
        ("TWILIO_AUTH_TOKEN", AUTH_TOKEN.to_string()),
        ("TWILIO_WHATSAPP_NUMBER", "+14155238886".to_string()),
        ("TWILIO_API_BASE_URL", format!("http://127.0.0.1:{port}")),
    ];
    let server_vars = twilio_vars.clone();
    let app = spawn_app_with(move |vars| {
        vars.remove("PUBLIC_BASE_URL");
        for (k, v) in server_vars {
            vars.insert(k.into(), v);
        }
    })
    .await;
    let config = whatsapp_memory::config::Config::from_lookup(|k| {
        twilio_vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
    })
    .unwrap();
    let photo = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/samples/photo_penne.jpg"));
    let message = SimulatedMessage {
        from: ADA.into(),
        profile_name: None,
        body: "penne with spinach".into(),
        base_url: Some(app.address.clone()),
    };
    let replies = simulate::send_media(&config, message, photo).await.unwrap();
    assert_eq!(replies, vec!["📷 Photo saved ✅".to_string()]);
    assert!(app.send_text(ADA, "/search spinach").await.contains("penne with spinach"));
}

/// Before, a known `MessageSid` sent by another sender was answered with the first
/// sender's reply (their search results, say).
#[tokio::test]
async fn a_known_message_sid_from_another_sender_gets_409_and_not_their_reply() {
    let app = spawn_app().await;
    app.send_text(ADA, "my secret plan").await;
    let ada = text_form(ADA, "/search secret");
    let sid = ada.iter().find(|(k, _)| k == "MessageSid").unwrap().1.clone();
    let first = app.post_webhook(&ada).await.text().await.unwrap();
    assert!(first.contains("my secret plan"));
    let mut bob = text_form(BOB, "/search secret");
    for field in ["MessageSid", "SmsMessageSid", "SmsSid"] {
        bob = with_field(bob, field, &sid);
    }
    let response = app.post_webhook(&bob).await;
    assert_eq!(response.status(), 409);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    assert!(!response.text().await.unwrap().contains("secret plan"));
    assert_eq!(app.count("users").await, 1, "nothing of Bob's delivery is stored");
    // Ada's own redelivery still answers as the first time.
    assert_eq!(app.post_webhook(&ada).await.text().await.unwrap(), first);
}
