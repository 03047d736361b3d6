//! The Twilio adapters (message sender, media fetcher) against the loopback fake Twilio:
//! what they send, what they refuse, and how every failure maps to a retry decision.

use std::time::Duration;

use whatsapp_memory::adapters::twilio::media::TwilioMediaFetcher;
use whatsapp_memory::adapters::twilio::sender::TwilioSender;
use whatsapp_memory::config::Secret;
use whatsapp_memory::domain::ports::{FetchError, MediaFetcher, MessageSender, SendError};

use crate::fake_twilio::{self, FakeTwilio, MediaOptions, MediaRequests, SentRecord};
use crate::helpers::ADA;

/// Our WhatsApp sender number.
const OUR_NUMBER: &str = "+14155238886";
const TIMEOUT: Duration = Duration::from_secs(5);
/// Larger than any test item.
const GENEROUS_LIMIT: u64 = 16 * 1024 * 1024;

fn api_base(fake: &FakeTwilio) -> url::Url {
    url::Url::parse(fake.base_url()).expect("the fake's URL parses")
}

fn sender_with_token(fake: &FakeTwilio, token: &str) -> TwilioSender {
    TwilioSender::new(
        api_base(fake),
        fake.account_sid().to_string(),
        Secret::new(token),
        OUR_NUMBER.to_string(),
        TIMEOUT,
    )
    .expect("the sender builds")
}

fn sender(fake: &FakeTwilio) -> TwilioSender {
    sender_with_token(fake, fake.auth_token())
}

fn fetcher_with(fake: &FakeTwilio, token: &str, max_bytes: u64) -> TwilioMediaFetcher {
    TwilioMediaFetcher::new(api_base(fake), fake.account_sid().to_string(), Secret::new(token), max_bytes, TIMEOUT)
        .expect("the fetcher builds")
}

fn fetcher(fake: &FakeTwilio) -> TwilioMediaFetcher {
    fetcher_with(fake, fake.auth_token(), GENEROUS_LIMIT)
}

/// The real sample photo. CI copies `shared/` beside the clone; where it is missing,
/// generated JPEG-framed bytes of a similar size keep the test meaningful.
fn penne_photo() -> Vec<u8> {
    std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/samples/photo_penne.jpg")).unwrap_or_else(|_| {
        let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE0];
        bytes.extend((0..60_000u32).map(|i| (i % 251) as u8));
        bytes.extend([0xFF, 0xD9]);
        bytes
    })
}

/// Bytes with a recognisable pattern, `len` long.
fn bytes_of(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 256) as u8).collect()
}

// ---------------------------------------------------------------- sending messages

#[tokio::test]
async fn sending_a_message_returns_twilios_sid_and_posts_whatsapp_addresses() {
    let fake = fake_twilio::start().await;

    let sent = sender(&fake).send(ADA, "Saved: penne at Luigi's").await.expect("Twilio accepts the message");

    assert_eq!(sent.status, "queued");
    assert!(sent.sid.starts_with("SM") && sent.sid.len() == 34, "{}", sent.sid);
    let recorded = fake.sent();
    assert_eq!(
        recorded,
        vec![SentRecord {
            sid: sent.sid,
            to: format!("whatsapp:{ADA}"),
            from: format!("whatsapp:{OUR_NUMBER}"),
            body: "Saved: penne at Luigi's".into(),
            date_created: recorded[0].date_created.clone(),
        }]
    );
}

const BOB_NUMBER: &str = "+4915112345678";

#[tokio::test]
async fn a_message_already_accepted_is_found_before_it_is_sent_again() {
    let fake = fake_twilio::start().await;
    let sender = sender(&fake);
    let before = chrono::Utc::now() - chrono::Duration::seconds(5);
    assert_eq!(sender.find_sent(ADA, "Photo saved", before).await.unwrap(), None);
    let sent = sender.send(ADA, "Photo saved").await.unwrap();
    let found = sender.find_sent(ADA, "Photo saved", before).await.unwrap().expect("found");
    assert_eq!(found.sid, sent.sid);
    assert_eq!(sender.find_sent(ADA, "Another body", before).await.unwrap(), None);
    assert_eq!(sender.find_sent(BOB_NUMBER, "Photo saved", before).await.unwrap(), None);
    let later = chrono::Utc::now() + chrono::Duration::seconds(5);
    assert_eq!(sender.find_sent(ADA, "Photo saved", later).await.unwrap(), None, "older than the job");
}

#[tokio::test]
async fn a_rate_limited_send_is_retryable_after_twilios_retry_after() {
    let fake = fake_twilio::start().await;
    fake.fail_next_sends(1, 429);
    let sender = sender(&fake);

    let error = sender.send(ADA, "hello").await.unwrap_err();

    assert!(
        matches!(error, SendError::Retryable { code: Some(20429), retry_after: Some(d), .. } if d == Duration::from_secs(1)),
        "{error:?}"
    );
    assert!(fake.sent().is_empty());
    sender.send(ADA, "hello").await.expect("the retry goes through");
    assert_eq!(fake.sent().len(), 1);
}

#[tokio::test]
async fn a_server_error_on_send_is_retryable() {
    let fake = fake_twilio::start().await;
    fake.fail_next_sends(1, 500);

    let error = sender(&fake).send(ADA, "hello").await.unwrap_err();

    assert!(matches!(error, SendError::Retryable { code: Some(20500), retry_after: None, .. }), "{error:?}");
}

#[tokio::test]
async fn a_number_twilio_refuses_is_rejected_with_twilios_code() {
    let fake = fake_twilio::start().await;
    fake.fail_next_sends(1, 400);

    let error = sender(&fake).send(ADA, "hello").await.unwrap_err();

    assert!(matches!(&error, SendError::Rejected { code: Some(21211), message } if message.contains("Invalid 'To'")));
}

#[tokio::test]
async fn an_invalid_number_is_rejected_and_nothing_is_sent() {
    let fake = fake_twilio::start().await;

    let error = sender(&fake).send("+1", "hello").await.unwrap_err();

    assert!(matches!(error, SendError::Rejected { code: Some(21211), .. }), "{error:?}");
    assert!(fake.sent().is_empty());
}

#[tokio::test]
async fn a_wrong_auth_token_is_rejected_not_retried() {
    let fake = fake_twilio::start().await;

    let error = sender_with_token(&fake, "not-the-token").send(ADA, "hello").await.unwrap_err();

    assert!(matches!(error, SendError::Rejected { code: Some(20003), .. }), "{error:?}");
    assert!(!error.to_string().contains("not-the-token"));
}

#[tokio::test]
async fn a_body_over_1600_characters_is_cut_to_fit_with_an_ellipsis() {
    let fake = fake_twilio::start().await;
    let long = "é".repeat(2000);

    sender(&fake).send(ADA, &long).await.expect("a cut body is accepted");

    let body = &fake.sent()[0].body;
    assert_eq!(body.chars().count(), 1600);
    assert!(body.starts_with("éé") && body.ends_with("é…"));
}

#[tokio::test]
async fn an_unreachable_twilio_makes_a_send_retryable() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = url::Url::parse(&format!("http://{}", closed.local_addr().unwrap())).unwrap();
    drop(closed);
    let sender = TwilioSender::new(
        base,
        "AC00000000000000000000000000000000".into(),
        Secret::new("token"),
        OUR_NUMBER.into(),
        TIMEOUT,
    )
    .unwrap();

    let error = sender.send(ADA, "hello").await.unwrap_err();

    assert!(matches!(error, SendError::Retryable { code: None, .. }), "{error:?}");
}

#[tokio::test]
async fn the_fake_refuses_a_message_without_to_as_twilio_does() {
    let fake = fake_twilio::start().await;

    let response = reqwest::Client::new()
        .post(fake.messages_url())
        .basic_auth(fake.account_sid(), Some(fake.auth_token()))
        .form(&[("From", format!("whatsapp:{OUR_NUMBER}")), ("Body", "hello".into())])
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 400);
    let error: serde_json::Value = response.json().await.unwrap();
    assert_eq!(error["code"], 21604);
    assert_eq!(error["status"], 400);
    assert!(fake.sent().is_empty());
}

// ---------------------------------------------------------------- fetching media

#[tokio::test]
async fn media_is_fetched_through_the_cdn_redirect_without_credentials() {
    let fake = fake_twilio::start().await;
    let photo = penne_photo();
    let url = fake.add_media(photo.clone(), "image/jpeg");

    let media = fetcher(&fake).fetch(&url).await.expect("the photo downloads");

    assert_eq!(media.bytes, photo);
    assert_eq!(media.content_type.as_deref(), Some("image/jpeg"));
    // The CDN answers 400 to a request with Authorization: one clean hop proves none went.
    assert_eq!(fake.media_requests(), MediaRequests { api: 1, cdn: 1, cdn_with_authorization: 0 });
}

#[tokio::test]
async fn a_media_url_on_another_host_is_refused_before_any_request() {
    let fake = fake_twilio::start().await;
    let url = fake.add_media(bytes_of(100), "image/png");
    let path = url.strip_prefix(fake.base_url()).unwrap();
    let port = url::Url::parse(&url).unwrap().port().unwrap();
    let fetcher = fetcher(&fake);

    // `localhost` reaches the very same fake: only the host check keeps it from being asked.
    for foreign in [
        format!("http://localhost:{port}{path}"),
        format!("http://127.0.0.2:{port}{path}"),
        format!("https://evil.example{path}"),
    ] {
        let error = fetcher.fetch(&foreign).await.unwrap_err();
        assert!(matches!(error, FetchError::Refused(_)), "{foreign}: {error:?}");
    }
    assert_eq!(fake.media_requests(), MediaRequests::default());
}

#[tokio::test]
async fn credentials_fetch_nothing_but_a_media_item_of_our_own_account() {
    let fake = fake_twilio::start().await;
    let media = fake.add_media(bytes_of(100), "image/png");
    let fetcher = fetcher(&fake);
    for forged in [
        fake.account_url(),
        fake.messages_url(),
        format!("{}?To=whatsapp:%2B4915112345678", fake.messages_url()),
        format!("{}/2010-04-01/Accounts/ACfedcba9876543210fedcba9876543210/Recordings.json", fake.base_url()),
        format!("{media}?PageSize=1000"),
        format!("{media}.json"),
    ] {
        let error = fetcher.fetch(&forged).await.unwrap_err();
        assert!(matches!(error, FetchError::Refused(_)), "{forged}: {error:?}");
    }
    assert_eq!(fake.resource_reads(), 0);
    assert_eq!(fake.media_requests(), MediaRequests::default());
    // The media item itself still arrives.
    assert_eq!(fetcher.fetch(&media).await.unwrap().bytes, bytes_of(100));
}

#[tokio::test]
async fn a_redirect_away_from_twilio_is_refused() {
    let fake = fake_twilio::start().await;
    let port = url::Url::parse(fake.base_url()).unwrap().port().unwrap();
    let fetcher = fetcher(&fake);

    for location in [format!("http://localhost:{port}/cdn/anything"), "https://evil.example/steal".to_string()] {
        let url = fake.add_media_with(
            bytes_of(100),
            "image/png",
            MediaOptions { location: Some(location.clone()), ..Default::default() },
        );
        let error = fetcher.fetch(&url).await.unwrap_err();
        assert!(matches!(error, FetchError::Refused(_)), "{location}: {error:?}");
    }
    assert_eq!(fake.media_requests().cdn, 0);
}

#[tokio::test]
async fn up_to_three_redirects_are_followed() {
    let fake = fake_twilio::start().await;
    let bytes = bytes_of(5000);
    let url =
        fake.add_media_with(bytes.clone(), "audio/ogg", MediaOptions { extra_redirects: 2, ..Default::default() });

    let media = fetcher(&fake).fetch(&url).await.expect("three redirects are fine");

    assert_eq!(media.bytes, bytes);
    assert_eq!(fake.media_requests(), MediaRequests { api: 1, cdn: 3, cdn_with_authorization: 0 });
}

#[tokio::test]
async fn a_fourth_redirect_is_not_followed() {
    let fake = fake_twilio::start().await;
    let url =
        fake.add_media_with(bytes_of(5000), "audio/ogg", MediaOptions { extra_redirects: 3, ..Default::default() });

    let error = fetcher(&fake).fetch(&url).await.unwrap_err();

    assert!(matches!(&error, FetchError::Gone(m) if m.contains("redirects")), "{error:?}");
    assert_eq!(fake.media_requests().cdn, 3);
}

#[tokio::test]
async fn media_over_the_limit_is_too_large_from_its_content_length() {
    let fake = fake_twilio::start().await;
    let photo = penne_photo();
    let limit = photo.len() as u64 - 1;
    let url = fake.add_media(photo, "image/jpeg");

    let error = fetcher_with(&fake, fake.auth_token(), limit).fetch(&url).await.unwrap_err();

    assert_eq!(error, FetchError::TooLarge { limit });
}

#[tokio::test]
async fn streamed_media_over_the_limit_is_cut_off_while_reading() {
    let fake = fake_twilio::start().await;
    let streamed = MediaOptions { streamed: true, ..Default::default() };
    let url = fake.add_media_with(bytes_of(10_000), "video/mp4", streamed);

    let error = fetcher_with(&fake, fake.auth_token(), 9_999).fetch(&url).await.unwrap_err();

    assert_eq!(error, FetchError::TooLarge { limit: 9_999 });
}

#[tokio::test]
async fn media_exactly_at_the_limit_is_accepted_streamed_or_not() {
    let fake = fake_twilio::start().await;
    let bytes = bytes_of(10_000);
    let fetcher = fetcher_with(&fake, fake.auth_token(), 10_000);

    for streamed in [false, true] {
        let url =
            fake.add_media_with(bytes.clone(), "application/pdf", MediaOptions { streamed, ..Default::default() });
        let media = fetcher.fetch(&url).await.unwrap_or_else(|e| panic!("streamed={streamed}: {e}"));
        assert_eq!(media.bytes, bytes);
        assert_eq!(media.content_type.as_deref(), Some("application/pdf"));
    }
}

#[tokio::test]
async fn a_wrong_token_makes_media_gone_saying_the_credentials_were_refused() {
    let fake = fake_twilio::start().await;
    let url = fake.add_media(bytes_of(100), "image/png");

    let error = fetcher_with(&fake, "not-the-token", GENEROUS_LIMIT).fetch(&url).await.unwrap_err();

    assert!(matches!(&error, FetchError::Gone(m) if m.contains("credentials") && m.contains("20003")), "{error:?}");
    assert_eq!(fake.media_requests().cdn, 0);
}

#[tokio::test]
async fn a_server_error_on_media_is_retryable_and_the_retry_succeeds() {
    let fake = fake_twilio::start().await;
    let url = fake.add_media(bytes_of(100), "image/png");
    fake.fail_next_media(1, 500);
    let fetcher = fetcher(&fake);

    let error = fetcher.fetch(&url).await.unwrap_err();

    assert!(error.is_retryable(), "{error:?}");
    assert_eq!(fetcher.fetch(&url).await.expect("the retry downloads").bytes, bytes_of(100));
}

#[tokio::test]
async fn rate_limited_media_is_retryable() {
    let fake = fake_twilio::start().await;
    let url = fake.add_media(bytes_of(100), "image/png");
    fake.fail_next_media(1, 429);

    let error = fetcher(&fake).fetch(&url).await.unwrap_err();

    assert!(matches!(&error, FetchError::Retryable(m) if m.contains("20429")), "{error:?}");
}

#[tokio::test]
async fn unknown_media_is_gone() {
    let fake = fake_twilio::start().await;

    let error = fetcher(&fake).fetch(&fake.unknown_media_url()).await.unwrap_err();

    assert!(matches!(&error, FetchError::Gone(m) if m.contains("20404")), "{error:?}");
}
