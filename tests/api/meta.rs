//! Meta's WhatsApp Cloud API channel end to end: the real server, signed deliveries as
//! Meta posts them to `/whatsapp/cloud`, and a loopback fake Graph API that receives the
//! replies and serves the media.

use crate::fake_meta::{self, delivery, media_message, signature, text_message, FakeMeta, VERIFY_TOKEN};
use crate::helpers::*;
use crate::media::PHOTO;

const VOICE_NOTE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/samples/voice_note_basil.ogg");
const WHISPER_MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/ggml-tiny.en.bin");

async fn app_with_meta(extra: &[(&str, &str)]) -> (TestApp, FakeMeta) {
    let meta = fake_meta::start().await;
    let mut vars = meta.vars();
    vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let app = spawn_app_with(move |all| all.extend(vars)).await;
    (app, meta)
}

/// A fresh `wamid.…`.
fn wamid() -> String {
    format!("wamid.HBgL{}", &whatsapp_memory::simulate::new_message_sid()[2..])
}

impl TestApp {
    /// Posts `body` to `/whatsapp/cloud` with the given signature header (or none).
    async fn post_cloud(&self, body: &[u8], signature: Option<&str>) -> reqwest::Response {
        let mut request = self
            .client
            .post(format!("{}/whatsapp/cloud", self.address))
            .header("content-type", "application/json")
            .body(body.to_vec());
        if let Some(signature) = signature {
            request = request.header("X-Hub-Signature-256", signature);
        }
        request.send().await.expect("the server answers")
    }

    /// Posts `body` signed as Meta signs it; it must be answered 200.
    async fn deliver(&self, body: &[u8]) {
        let response = self.post_cloud(body, Some(&signature(body))).await;
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    }
}

async fn wait_for_replies(meta: &FakeMeta, count: usize) -> Vec<String> {
    eventually(&format!("{count} replies at fake Meta"), || async { meta.sent().len() >= count }).await;
    meta.sent().into_iter().map(|m| m.body).collect()
}

#[tokio::test]
async fn the_verification_handshake_echoes_the_challenge_only_for_our_token() {
    let (app, _meta) = app_with_meta(&[]).await;
    let verify = |mode: &str, token: &str| {
        app.client
            .get(format!("{}/whatsapp/cloud", app.address))
            .query(&[("hub.mode", mode), ("hub.verify_token", token), ("hub.challenge", "1158201444")])
            .send()
    };
    let response = verify("subscribe", VERIFY_TOKEN).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    assert_eq!(response.text().await.unwrap(), "1158201444");
    assert_eq!(verify("subscribe", "wrong-token").await.unwrap().status(), 403);
    assert_eq!(verify("unsubscribe", VERIFY_TOKEN).await.unwrap().status(), 403);
    let bare = app.client.get(format!("{}/whatsapp/cloud", app.address)).send().await.unwrap();
    assert_eq!(bare.status(), 403);
}

#[tokio::test]
async fn forged_missing_and_reordered_signatures_are_refused_with_nothing_stored() {
    let (app, meta) = app_with_meta(&[]).await;
    let body = delivery(ADA, vec![text_message(ADA, &wamid(), "buy milk")], vec![]);
    let good = signature(&body);
    assert_eq!(app.post_cloud(&body, None).await.status(), 403);
    assert_eq!(app.post_cloud(&body, Some("sha256=0000")).await.status(), 403);
    let forged = whatsapp_memory::adapters::meta::signature::sign(
        &whatsapp_memory::config::Secret::new("not-the-app-secret"),
        &body,
    );
    assert_eq!(app.post_cloud(&body, Some(&forged)).await.status(), 403);
    // The same JSON re-serialised with its keys in another order is not what Meta signed.
    let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let reordered = serde_json::to_vec_pretty(&value).unwrap();
    assert_ne!(reordered, body);
    assert_eq!(app.post_cloud(&reordered, Some(&good)).await.status(), 403);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(app.count("jobs").await, 0);
    assert_eq!(app.count("interactions").await, 0);
    assert_eq!(app.count("users").await, 0);
    assert!(meta.sent().is_empty());
}

#[tokio::test]
async fn a_signed_delivery_our_code_cannot_read_is_still_stored_and_answered_200() {
    let (app, meta) = app_with_meta(&[]).await;
    for body in
        [&b"{\"object\": \"whatsapp_business_account\", \"entry\": [{\"changes\": 7"[..], br#"{"object": "page"}"#]
    {
        app.deliver(body).await;
    }
    eventually("both deliveries to be kept as dead jobs", || async {
        app.scalar("SELECT count(*) FROM jobs WHERE kind = 'meta.delivery' AND state = 'dead'").await == 2
    })
    .await;
    let kept = app
        .scalar("SELECT count(*) FROM jobs WHERE kind = 'meta.delivery' AND CAST(payload AS TEXT) LIKE '%changes%'")
        .await;
    assert_eq!(kept, 1, "the body is kept as received");
    assert_eq!(app.count("interactions").await, 0);
    assert!(meta.sent().is_empty());
}

#[tokio::test]
async fn a_batch_of_three_is_stored_three_times_answered_through_the_graph_api_and_redelivery_changes_nothing() {
    let (app, meta) = app_with_meta(&[]).await;
    let messages = vec![
        text_message(ADA, &wamid(), "buy milk"),
        text_message(ADA, &wamid(), "call the plumber"),
        text_message(ADA, &wamid(), "Lea starts piano in September"),
    ];
    let body = delivery(ADA, messages, vec![]);
    app.deliver(&body).await;
    let replies = wait_for_replies(&meta, 3).await;
    assert_eq!(replies, vec!["Memory saved ✅"; 3]);
    assert!(meta.sent().iter().all(|m| m.to == ADA.trim_start_matches('+')));
    assert_eq!(app.scalar("SELECT count(*) FROM interactions WHERE direction = 'inbound'").await, 3);
    assert_eq!(app.scalar("SELECT count(*) FROM memories").await, 3);

    // Meta delivers the same batch again (a slow answer, a retry): nothing new.
    app.deliver(&body).await;
    eventually("the redelivery to be processed", || async {
        app.scalar("SELECT count(*) FROM jobs WHERE kind = 'meta.delivery' AND state = 'done'").await == 2
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(meta.sent().len(), 3);
    assert_eq!(app.scalar("SELECT count(*) FROM memories").await, 3);
    assert_eq!(app.scalar("SELECT count(*) FROM interactions WHERE direction = 'inbound'").await, 3);
    let search = app.api_json(reqwest::Method::GET, "/memories?user_id=15551234567&query=plumber", None, 200).await;
    assert_eq!(search["results"].as_array().map(Vec::len), Some(1), "{search}");
}

#[tokio::test]
async fn statuses_of_our_replies_are_recorded_and_acknowledged() {
    let (app, meta) = app_with_meta(&[]).await;
    app.deliver(&delivery(ADA, vec![text_message(ADA, &wamid(), "buy milk")], vec![])).await;
    wait_for_replies(&meta, 1).await;
    let sent = meta.sent()[0].id.clone();
    eventually("the reply's delivery to be recorded", || async {
        app.scalar(&format!("SELECT count(*) FROM interactions WHERE twilio_message_sid = '{sent}'")).await == 1
    })
    .await;
    let status = |state: &str| serde_json::json!({"id": sent, "status": state, "timestamp": "1764158401", "recipient_id": "15551234567"});
    app.deliver(&delivery(ADA, vec![], vec![status("delivered"), status("read")])).await;
    // A late "delivered" does not undo "read".
    app.deliver(&delivery(ADA, vec![], vec![status("delivered")])).await;
    eventually("the statuses to be processed", || async {
        app.scalar("SELECT count(*) FROM jobs WHERE kind = 'meta.delivery' AND state = 'done'").await == 3
    })
    .await;
    let read = app
        .scalar(&format!(
            "SELECT count(*) FROM interactions WHERE twilio_message_sid = '{sent}' AND delivery_status = 'read'"
        ))
        .await;
    assert_eq!(read, 1);
    assert_eq!(meta.sent().len(), 1);
}

#[tokio::test]
async fn a_photo_arrives_through_graph_media_and_the_same_photo_again_is_already_saved() {
    let (app, meta) = app_with_meta(&[]).await;
    let photo = std::fs::read(PHOTO).unwrap();
    let (first, sha) = meta.add_media(photo.clone(), "image/jpeg");
    app.deliver(&delivery(ADA, vec![media_message(ADA, &wamid(), "image", &first, &sha, "image/jpeg")], vec![])).await;
    assert_eq!(wait_for_replies(&meta, 1).await, vec!["📷 Photo saved ✅"]);
    let (again, sha) = meta.add_media(photo, "image/jpeg");
    app.deliver(&delivery(ADA, vec![media_message(ADA, &wamid(), "image", &again, &sha, "image/jpeg")], vec![])).await;
    let replies = wait_for_replies(&meta, 2).await;
    assert!(replies[1].contains("already saved"), "{replies:?}");
    assert_eq!(app.scalar("SELECT count(*) FROM media_assets").await, 1);
    assert_eq!(app.scalar("SELECT count(*) FROM memories WHERE kind = 'image'").await, 1);
    let (lookups, downloads, unauthorized) = meta.media_requests();
    assert_eq!((lookups, downloads, unauthorized), (2, 2, 0));
}

#[tokio::test]
async fn media_on_a_host_that_is_not_metas_or_with_a_wrong_checksum_is_not_kept() {
    let (app, meta) = app_with_meta(&[("WORKERS", "1")]).await;
    let _moving = MovingClock::start(app.clock.clone());
    let photo = std::fs::read(PHOTO).unwrap();
    let foreign = fake_meta::MediaOptions { url: Some("http://127.0.0.2:9/cdn/1".into()), lookup_sha256: None };
    let (id, sha) = meta.add_media_with(photo.clone(), "image/jpeg", foreign);
    app.deliver(&delivery(ADA, vec![media_message(ADA, &wamid(), "image", &id, &sha, "image/jpeg")], vec![])).await;
    let replies = wait_for_replies(&meta, 1).await;
    assert!(replies[0].starts_with("Sorry, I could not save your photo"), "{replies:?}");
    assert_eq!(meta.media_requests().1, 0, "the foreign URL was never requested");
    let bad_sum = fake_meta::MediaOptions { url: None, lookup_sha256: Some("ab".repeat(32)) };
    let (id, sha) = meta.add_media_with(photo, "image/jpeg", bad_sum);
    app.deliver(&delivery(ADA, vec![media_message(ADA, &wamid(), "image", &id, &sha, "image/jpeg")], vec![])).await;
    let replies = wait_for_replies(&meta, 2).await;
    assert!(replies[1].starts_with("Sorry, I could not save your photo"), "{replies:?}");
    assert_eq!(app.scalar("SELECT count(*) FROM media_assets").await, 0);
}

#[tokio::test]
async fn a_voice_note_arrives_through_graph_media_and_is_transcribed() {
    assert!(std::path::Path::new(WHISPER_MODEL).is_file(), "the Whisper model is missing: run `make whisper-model`");
    let (app, meta) = app_with_meta(&[("TRANSCRIBER", "whisper"), ("WHISPER_MODEL_PATH", WHISPER_MODEL)]).await;
    let (id, sha) = meta.add_media(std::fs::read(VOICE_NOTE).unwrap(), "audio/ogg; codecs=opus");
    app.deliver(&delivery(
        ADA,
        vec![media_message(ADA, &wamid(), "audio", &id, &sha, "audio/ogg; codecs=opus")],
        vec![],
    ))
    .await;
    let replies = wait_for_replies(&meta, 1).await;
    assert!(replies[0].starts_with("🎙️ Saved: “") && replies[0].to_lowercase().contains("basil"), "{replies:?}");
    app.deliver(&delivery(ADA, vec![text_message(ADA, &wamid(), "/search basil")], vec![])).await;
    let replies = wait_for_replies(&meta, 2).await;
    assert!(replies[1].to_lowercase().contains("basil"), "{replies:?}");
}

#[tokio::test]
async fn one_person_writing_on_both_channels_has_one_memory_list_and_hears_back_on_each() {
    let (app, meta) = app_with_meta(&[]).await;
    assert_eq!(app.send_text(ADA, "buy milk via twilio").await, "Memory saved ✅");
    app.deliver(&delivery(ADA, vec![text_message(ADA, &wamid(), "buy eggs via meta")], vec![])).await;
    wait_for_replies(&meta, 1).await;
    assert_eq!(app.count("users").await, 1);
    let listed = app.send_text(ADA, "/list").await;
    assert!(listed.contains("buy milk via twilio") && listed.contains("buy eggs via meta"), "{listed}");
    app.deliver(&delivery(ADA, vec![text_message(ADA, &wamid(), "/search milk")], vec![])).await;
    let replies = wait_for_replies(&meta, 2).await;
    assert!(replies[1].contains("buy milk via twilio"), "{replies:?}");
    // Twilio's answers came inline; only Meta's messages went to the Graph API.
    assert_eq!(meta.sent().len(), 2);
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried_and_the_closed_window_is_recorded_not_retried() {
    let (app, meta) = app_with_meta(&[]).await;
    let _moving = MovingClock::start(app.clock.clone());
    meta.fail_next_sends(&[(400, 130_429), (503, 2)]);
    app.deliver(&delivery(ADA, vec![text_message(ADA, &wamid(), "buy milk")], vec![])).await;
    assert_eq!(wait_for_replies(&meta, 1).await, vec!["Memory saved ✅"]);

    meta.fail_next_sends(&[(400, 131_047)]);
    app.deliver(&delivery(ADA, vec![text_message(ADA, &wamid(), "buy eggs")], vec![])).await;
    eventually("the refused reply to be recorded", || async {
        app.scalar("SELECT count(*) FROM interactions WHERE error_code = 131047 AND delivery_status = 'failed'").await
            == 1
    })
    .await;
    assert_eq!(meta.sent().len(), 1);
}

#[tokio::test]
async fn an_expired_token_is_retried_later_not_dropped() {
    let (app, meta) = app_with_meta(&[]).await;
    meta.fail_next_sends(&[(401, 190)]);
    app.deliver(&delivery(ADA, vec![text_message(ADA, &wamid(), "buy milk")], vec![])).await;
    eventually("the send to be put off", || async {
        app.scalar("SELECT count(*) FROM jobs WHERE kind = 'whatsapp.send' AND state = 'queued' AND attempts = 1").await
            == 1
    })
    .await;
    assert!(meta.sent().is_empty());
    // Once the operator renewed it (here: the fake accepts again), the reply goes out.
    app.clock.advance(chrono::Duration::minutes(16));
    assert_eq!(wait_for_replies(&meta, 1).await, vec!["Memory saved ✅"]);
}

#[tokio::test]
async fn production_with_meta_alone_refuses_twilios_webhook_and_with_neither_does_not_start() {
    let (app, meta) = app_with_meta(&[]).await;
    drop(app);
    let vars = meta.vars();
    let app = spawn_app_with(move |all| {
        all.remove("TWILIO_AUTH_TOKEN");
        all.extend(vars);
    })
    .await;
    let response = app.post_webhook_signed(&text_form(ADA, "buy milk"), None).await;
    assert_eq!(response.status(), 403);
    app.deliver(&delivery(ADA, vec![text_message(ADA, &wamid(), "buy milk")], vec![])).await;
    wait_for_replies(&meta, 1).await;
    let error = whatsapp_memory::config::Config::from_lookup(|name| match name {
        "ENV" => Some("production".into()),
        "API_KEYS" => Some(API_KEY.into()),
        _ => None,
    })
    .unwrap_err();
    assert!(error.to_string().contains("no channel is configured"), "{error}");
}
