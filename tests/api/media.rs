//! Photos and other media end to end: webhook -> jobs -> fetch from a loopback fake
//! Twilio -> per-user exact and perceptual de-duplication -> replies through the fake's
//! Messages API.

use std::io::Cursor;

use sea_orm::ConnectionTrait;
use whatsapp_memory::domain::perceptual::{bands, hamming, ImageHash};

use crate::fake_twilio::{self, FakeTwilio};
use crate::helpers::*;

/// A photo of a plate of penne.
pub(crate) const PHOTO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/samples/photo_penne.jpg");
const SCREENSHOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/samples/screenshot_lambdatest.jpg");

/// The variables that point the app at `twilio`.
pub(crate) fn twilio_vars(twilio: &FakeTwilio) -> Vec<(String, String)> {
    vec![
        ("TWILIO_ACCOUNT_SID".into(), twilio.account_sid().to_string()),
        ("TWILIO_AUTH_TOKEN".into(), twilio.auth_token().to_string()),
        ("TWILIO_API_BASE_URL".into(), twilio.base_url().to_string()),
        ("TWILIO_WHATSAPP_NUMBER".into(), "+14155238886".into()),
    ]
}

pub(crate) async fn app_with_twilio() -> (TestApp, FakeTwilio) {
    let twilio = fake_twilio::start().await;
    let vars = twilio_vars(&twilio);
    let app = spawn_app_with(move |all| all.extend(vars)).await;
    (app, twilio)
}

/// A webhook form carrying `media` (URL, content type) and a caption.
pub(crate) fn media_form(phone: &str, caption: &str, media: &[(String, &str)]) -> Vec<(String, String)> {
    let mut form = with_field(text_form(phone, caption), "NumMedia", &media.len().to_string());
    form = with_field(form, "MessageType", "image");
    for (i, (url, content_type)) in media.iter().enumerate() {
        form = with_field(form, &format!("MediaUrl{i}"), url);
        form = with_field(form, &format!("MediaContentType{i}"), content_type);
    }
    form
}

pub(crate) async fn send_media(app: &TestApp, phone: &str, caption: &str, media: &[(String, &str)]) {
    let response = app.post_webhook(&media_form(phone, caption, media)).await;
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().ends_with("<Response/>"), "media is answered later");
}

pub(crate) async fn wait_for_replies(twilio: &FakeTwilio, count: usize) -> Vec<String> {
    eventually(&format!("{count} replies"), || async { twilio.sent().len() >= count }).await;
    twilio.sent().into_iter().map(|m| m.body).collect()
}

/// The sample photo re-encoded smaller at a lower quality: other bytes, same picture.
fn resized_copy(bytes: &[u8]) -> Vec<u8> {
    let image = image::load_from_memory(bytes).unwrap();
    let smaller = image.resize(499, 640, image::imageops::FilterType::Triangle);
    let mut out = Cursor::new(Vec::new());
    smaller.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

#[tokio::test]
async fn two_photos_with_a_caption_become_two_memories_and_two_replies() {
    let (app, twilio) = app_with_twilio().await;
    let photo = std::fs::read(PHOTO).unwrap();
    let screenshot = std::fs::read(SCREENSHOT).unwrap();
    let media = [
        (twilio.add_media(photo, "image/jpeg"), "image/jpeg"),
        (twilio.add_media(screenshot, "image/jpeg"), "image/jpeg"),
    ];
    send_media(&app, ADA, "dinner and the testing site", &media).await;

    let replies = wait_for_replies(&twilio, 2).await;
    assert!(replies.iter().all(|r| r == "📷 Photo saved ✅"), "{replies:?}");
    assert_eq!(twilio.sent()[0].to, format!("whatsapp:{ADA}"));
    assert_eq!(app.scalar("SELECT count(*) FROM memories WHERE kind = 'image'").await, 2);
    assert_eq!(app.scalar("SELECT count(*) FROM media_assets WHERE width_px = 998 AND height_px = 1280").await, 1);
    assert_eq!(twilio.media_requests().cdn_with_authorization, 0, "credentials never go to the CDN");
    // Found by caption, and every reply recorded with Twilio's sid.
    assert!(app.send_text(ADA, "/search dinner").await.contains("dinner and the testing site"));
    eventually("deliveries recorded", || async {
        app.scalar("SELECT count(*) FROM interactions WHERE direction = 'outbound' AND twilio_message_sid LIKE 'SM%'")
            .await
            == 2
    })
    .await;
}

#[tokio::test]
async fn the_same_photo_again_is_already_saved_and_a_resized_copy_is_a_near_duplicate() {
    let (app, twilio) = app_with_twilio().await;
    let photo = std::fs::read(PHOTO).unwrap();
    send_media(&app, ADA, "", &[(twilio.add_media(photo.clone(), "image/jpeg"), "image/jpeg")]).await;
    wait_for_replies(&twilio, 1).await;

    send_media(&app, ADA, "", &[(twilio.add_media(photo.clone(), "image/jpeg"), "image/jpeg")]).await;
    let replies = wait_for_replies(&twilio, 2).await;
    assert_eq!(replies[1], "This media is already saved ✅");

    send_media(&app, ADA, "", &[(twilio.add_media(resized_copy(&photo), "image/jpeg"), "image/jpeg")]).await;
    let replies = wait_for_replies(&twilio, 3).await;
    assert!(
        replies[2].starts_with("This photo is already saved ✅ (a near-identical copy from 2026-11-26"),
        "{replies:?}"
    );

    assert_eq!(app.count("memories").await, 1);
    assert_eq!(app.count("media_assets").await, 1);
    assert_eq!(app.scalar("SELECT count(*) FROM interaction_media").await, 3, "every interaction links its asset");
    assert_eq!(app.scalar("SELECT count(*) FROM interactions WHERE direction = 'inbound'").await, 3);
}

/// A faint checkerboard (grey 100 and 101 in squares of an eighth of the side) as PNG: the
/// hand-written hash and `image_hasher`'s read it 32 bits apart (one compared each cell
/// with the exact mean, 100.5; the other compares with the mean rounded down, 100), so a
/// copy of it saved before the change is only recognised once its hash is recomputed.
fn faint_checkerboard(side: u32) -> Vec<u8> {
    let square = side / 8;
    let image =
        image::GrayImage::from_fn(side, side, |x, y| image::Luma([100 + ((x / square + y / square) % 2) as u8]));
    let mut png = Cursor::new(Vec::new());
    image.write_to(&mut png, image::ImageFormat::Png).unwrap();
    png.into_inner()
}

/// The hash the hand-written aHash gave before `image_hasher` (kept here as the record of
/// what databases hold): grey, 8 x 8 with a triangle filter, bit `i` set when cell `i`
/// (row-major from the top left) is above the exact mean.
fn hand_written_hash(bytes: &[u8]) -> u64 {
    let gray = image::load_from_memory(bytes).unwrap().to_luma8();
    let small = image::imageops::resize(&gray, 8, 8, image::imageops::FilterType::Triangle);
    let sum: u64 = small.pixels().map(|p| u64::from(p.0[0])).sum();
    small.pixels().enumerate().filter(|(_, p)| u64::from(p.0[0]) * 64 > sum).fold(0, |bits, (i, _)| bits | 1 << i)
}

/// Puts Ada's one image back as a database from before the hash change holds it: the
/// hand-written function's hash and bands, queued for re-hashing by the migration.
async fn as_hashed_before_the_change(app: &TestApp, bytes: &[u8]) {
    let legacy = ImageHash(hand_written_hash(bytes));
    let stored = ImageHash::from_i64(app.scalar("SELECT ahash FROM media_assets").await);
    assert!(hamming(legacy, stored) > 5, "the two functions disagree on this picture: {legacy} vs {stored}");
    let b = bands(legacy);
    let sql = format!(
        "UPDATE media_assets SET ahash = {}, band0 = {}, band1 = {}, band2 = {}, band3 = {}, band4 = {}, band5 = {}",
        legacy.to_i64(),
        b[0],
        b[1],
        b[2],
        b[3],
        b[4],
        b[5]
    );
    app.db.execute_unprepared(&sql).await.unwrap();
    app.db.execute_unprepared("INSERT INTO image_rehash_queue (media_id) SELECT id FROM media_assets").await.unwrap();
}

#[tokio::test]
async fn the_migration_to_image_hasher_queues_every_image_hashed_before_it() {
    use migration::MigratorTrait;
    let dir = tempfile::tempdir().unwrap();
    let db = sea_orm::Database::connect(&fresh_database_url(&dir).await).await.unwrap();
    // The schema as it was before: six migrations.
    migration::Migrator::up(&db, Some(6)).await.unwrap();
    let now = "'2026-11-26 12:00:00+00:00'";
    for sql in [
        format!("INSERT INTO users (wa_id, phone_number, created_at, updated_at) VALUES ('1', '+1', {now}, {now})"),
        format!(
            "INSERT INTO media_assets (user_id, sha256, ahash, local_path, content_type, size_bytes, created_at) \
             VALUES (1, 'a', 7, 'a.jpg', 'image/jpeg', 1, {now}), (1, 'b', NULL, 'b.ogg', 'audio/ogg', 1, {now}), \
             (1, 'c', -3, 'c.png', 'image/png', 1, {now})"
        ),
    ] {
        db.execute_unprepared(&sql).await.unwrap();
    }
    migration::Migrator::up(&db, None).await.unwrap();
    let queued = db
        .query_all_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT m.sha256 FROM image_rehash_queue q JOIN media_assets m ON m.id = q.media_id ORDER BY m.sha256",
        ))
        .await
        .unwrap();
    let queued: Vec<String> = queued.iter().map(|row| row.try_get("", "sha256").unwrap()).collect();
    assert_eq!(queued, ["a", "c"], "every image, and only images");
}

#[tokio::test]
async fn a_photo_hashed_before_the_hash_function_changed_is_recognised_after_reindex_hashes() {
    let (app, twilio) = app_with_twilio().await;
    let original = faint_checkerboard(400);
    send_media(&app, ADA, "", &[(twilio.add_media(original.clone(), "image/png"), "image/png")]).await;
    wait_for_replies(&twilio, 1).await;
    as_hashed_before_the_change(&app, &original).await;

    let config = whatsapp_memory::config::Config::from_lookup(|k| match k {
        "DATABASE_URL" => Some(app.database_url.clone()),
        "STORAGE_DIR" => Some(app.storage_dir.display().to_string()),
        _ => None,
    })
    .unwrap();
    let report = whatsapp_memory::rehash_images(&config).await.unwrap();
    assert_eq!((report.rehashed, report.skipped), (1, 0));
    assert_eq!(app.count("image_rehash_queue").await, 0);
    let again = whatsapp_memory::rehash_images(&config).await.unwrap();
    assert_eq!((again.rehashed, again.skipped), (0, 0), "nothing left to do");

    // A smaller copy (other bytes, same picture) is the photo she already has.
    send_media(&app, ADA, "", &[(twilio.add_media(faint_checkerboard(200), "image/png"), "image/png")]).await;
    let replies = wait_for_replies(&twilio, 2).await;
    assert!(replies[1].starts_with("This photo is already saved ✅ (a near-identical copy"), "{replies:?}");
    assert_eq!(app.count("memories").await, 1);
}

#[tokio::test]
async fn a_server_recomputes_the_hashes_an_older_function_made_when_it_starts() {
    let (app, twilio) = app_with_twilio().await;
    let original = faint_checkerboard(400);
    send_media(&app, ADA, "", &[(twilio.add_media(original.clone(), "image/png"), "image/png")]).await;
    wait_for_replies(&twilio, 1).await;
    let current = app.scalar("SELECT ahash FROM media_assets").await;
    as_hashed_before_the_change(&app, &original).await;
    // One more image whose file is gone: it keeps its hash and leaves the queue.
    app.db
        .execute_unprepared(
            "INSERT INTO media_assets (user_id, sha256, ahash, local_path, content_type, size_bytes, created_at) \
             SELECT user_id, 'gone', 1, 'images/gone.png', content_type, 1, created_at FROM media_assets",
        )
        .await
        .unwrap();
    app.db
        .execute_unprepared(
            "INSERT INTO image_rehash_queue (media_id) SELECT id FROM media_assets WHERE sha256 = 'gone'",
        )
        .await
        .unwrap();

    let (database, storage) = (app.database_url.clone(), app.storage_dir.display().to_string());
    let _restarted = spawn_app_with(move |vars| {
        vars.insert("DATABASE_URL".into(), database);
        vars.insert("STORAGE_DIR".into(), storage);
    })
    .await;
    eventually("the queue drained", || async { app.count("image_rehash_queue").await == 0 }).await;
    assert_eq!(app.scalar("SELECT ahash FROM media_assets WHERE sha256 <> 'gone'").await, current);
    assert_eq!(app.scalar("SELECT ahash FROM media_assets WHERE sha256 = 'gone'").await, 1);
}

#[tokio::test]
async fn another_users_identical_photo_is_their_own_memory() {
    let (app, twilio) = app_with_twilio().await;
    let photo = std::fs::read(PHOTO).unwrap();
    send_media(&app, ADA, "", &[(twilio.add_media(photo.clone(), "image/jpeg"), "image/jpeg")]).await;
    wait_for_replies(&twilio, 1).await;
    send_media(&app, BOB, "", &[(twilio.add_media(photo, "image/jpeg"), "image/jpeg")]).await;
    let replies = wait_for_replies(&twilio, 2).await;
    assert_eq!(replies[1], "📷 Photo saved ✅");
    assert_eq!(app.count("media_assets").await, 2);
    assert_eq!(app.scalar("SELECT count(DISTINCT local_path) FROM media_assets").await, 1, "one file serves both");
}

#[tokio::test]
async fn the_bytes_decide_the_type_not_the_declared_one() {
    let (app, twilio) = app_with_twilio().await;
    let photo = std::fs::read(PHOTO).unwrap();
    send_media(&app, ADA, "", &[(twilio.add_media(photo, "application/octet-stream"), "application/octet-stream")])
        .await;
    assert_eq!(wait_for_replies(&twilio, 1).await[0], "📷 Photo saved ✅");
    assert_eq!(app.scalar("SELECT count(*) FROM media_assets WHERE content_type = 'image/jpeg'").await, 1);
}

#[tokio::test]
async fn a_failing_media_host_and_a_rate_limited_send_are_retried_until_they_succeed() {
    let (app, twilio) = app_with_twilio().await;
    twilio.fail_next_media(1, 500);
    twilio.fail_next_sends(1, 429);
    let photo = std::fs::read(PHOTO).unwrap();
    send_media(&app, ADA, "", &[(twilio.add_media(photo, "image/jpeg"), "image/jpeg")]).await;
    // The app's clock is pinned; move it on so that retries come due.
    let moving = MovingClock::start(app.clock.clone());
    let replies = wait_for_replies(&twilio, 1).await;
    drop(moving);
    assert_eq!(replies, vec!["📷 Photo saved ✅".to_string()]);
    assert_eq!(app.count("memories").await, 1);
    assert_eq!(twilio.media_requests().api, 2, "the failed download was tried again");
}

#[tokio::test]
async fn media_that_cannot_be_fetched_is_dead_lettered_and_the_user_told() {
    let (app, twilio) = app_with_twilio().await;
    send_media(&app, ADA, "", &[(twilio.unknown_media_url(), "image/jpeg")]).await;
    let replies = wait_for_replies(&twilio, 1).await;
    assert!(replies[0].starts_with("Sorry, I could not save your photo: Twilio no longer has it"), "{replies:?}");
    assert_eq!(app.scalar("SELECT count(*) FROM jobs WHERE kind = 'media.ingest' AND state = 'dead'").await, 1);
    assert_eq!(app.count("memories").await, 0);
}

/// Links that are on Twilio's API host but name something other than one media item of
/// our account: with our Basic auth they would read the auth token or other people's
/// messages.
fn other_twilio_resources(twilio: &FakeTwilio) -> Vec<String> {
    let base = twilio.base_url();
    let media = twilio.add_media(b"not fetched".to_vec(), "image/jpeg");
    vec![
        twilio.account_url(),
        format!("{}?To=whatsapp:%2B4915112345678", twilio.messages_url()),
        format!("{base}/2010-04-01/Accounts/ACfedcba9876543210fedcba9876543210/Recordings.json"),
        format!("{media}?PageSize=1000"),
        format!("{media}/../../../../{}.json", twilio.account_sid()),
    ]
}

#[tokio::test]
async fn a_link_to_another_twilio_resource_is_refused_before_any_request_and_the_user_told() {
    let (app, twilio) = app_with_twilio().await;
    let links = other_twilio_resources(&twilio);
    for link in &links {
        send_media(&app, ADA, "", &[(link.clone(), "image/jpeg")]).await;
    }
    let replies = wait_for_replies(&twilio, links.len()).await;
    for reply in &replies {
        assert!(
            reply.starts_with("Sorry, I could not save your photo: its link is not a Twilio media link"),
            "{replies:?}"
        );
    }
    assert_eq!(twilio.resource_reads(), 0, "nothing but media is read with our credentials");
    assert_eq!(twilio.media_requests().api, 0);
    assert_eq!(app.count("memories").await, 0);
    assert_eq!(app.count("media_assets").await, 0);
    assert!(stored_files(&app).is_empty());
}

#[tokio::test]
async fn the_api_refuses_a_media_url_that_names_another_twilio_resource() {
    let (app, twilio) = app_with_twilio().await;
    for link in other_twilio_resources(&twilio) {
        let body = serde_json::json!({ "memory_type": "document", "media_url": link });
        let problem = app.api_json(reqwest::Method::POST, "/memories?user_id=15551234567", Some(body), 400).await;
        assert!(problem["detail"].as_str().unwrap().contains("Twilio media URL"), "{link}: {problem}");
    }
    assert_eq!(twilio.resource_reads(), 0);
    assert_eq!(twilio.media_requests().api, 0);
    assert_eq!(app.count("memories").await, 0);
}

/// Every file under the storage root, relative.
fn stored_files(app: &TestApp) -> Vec<String> {
    fn walk(dir: &std::path::Path, root: &std::path::Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, root, out);
            } else if !path.file_name().unwrap().to_string_lossy().starts_with('.') {
                out.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(&app.storage_dir, &app.storage_dir, &mut out);
    out.sort();
    out
}

#[tokio::test]
async fn photos_are_served_exported_and_erased_with_the_files_no_one_else_shares() {
    let (app, twilio) = app_with_twilio().await;
    let photo = std::fs::read(PHOTO).unwrap();
    let screenshot = std::fs::read(SCREENSHOT).unwrap();
    // Ada sends both; Bob sends the same photo (one file on disk serves both).
    let ada_media = [
        (twilio.add_media(photo.clone(), "image/jpeg"), "image/jpeg"),
        (twilio.add_media(screenshot.clone(), "image/jpeg"), "image/jpeg"),
    ];
    send_media(&app, ADA, "dinner", &ada_media).await;
    send_media(&app, BOB, "", &[(twilio.add_media(photo.clone(), "image/jpeg"), "image/jpeg")]).await;
    wait_for_replies(&twilio, 3).await;
    assert_eq!(stored_files(&app).len(), 2);

    let page = app.api_json(reqwest::Method::GET, "/memories/list?user_id=15551234567", None, 200).await;
    let media_ids: Vec<i64> = page["items"].as_array().unwrap().iter().filter_map(|m| m["media_id"].as_i64()).collect();
    assert_eq!(media_ids.len(), 2);
    let response = app.api(reqwest::Method::GET, &format!("/media/{}", media_ids[0])).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/jpeg");
    let served = response.bytes().await.unwrap().to_vec();
    assert!(served == photo || served == screenshot, "the stored bytes, unchanged");
    app.api_json(reqwest::Method::GET, "/media/999999", None, 404).await;

    let export = app.api_json(reqwest::Method::GET, "/users/%2B15551234567/export", None, 200).await;
    assert_eq!(export["user"]["user_id"], "15551234567");
    assert_eq!(export["memories"].as_array().unwrap().len(), 2);
    assert_eq!(export["media"].as_array().unwrap().len(), 2);
    let inbound = export["interactions"].as_array().unwrap().iter().find(|i| i["direction"] == "inbound").unwrap();
    assert_eq!(inbound["raw_form"]["Body"], serde_json::json!(["dinner"]), "everything Twilio sent");

    app.api_json(reqwest::Method::DELETE, "/users/15551234567", None, 204).await;
    app.api_json(reqwest::Method::GET, "/users/15551234567", None, 404).await;
    app.api_json(reqwest::Method::GET, "/users/15551234567/export", None, 404).await;
    app.api_json(reqwest::Method::DELETE, "/users/15551234567", None, 404).await;
    let ada = "(SELECT id FROM users WHERE wa_id = '15551234567')";
    assert_eq!(app.scalar(&format!("SELECT count(*) FROM interactions WHERE user_id IN {ada}")).await, 0);
    assert_eq!(app.count("users").await, 1, "Bob stays");
    assert_eq!(app.count("memories").await, 1, "Bob's photo stays");
    // Ada's screenshot file is gone; the photo Bob shares stays.
    let left = stored_files(&app);
    assert_eq!(left.len(), 1, "{left:?}");
    let bob_media = app.api_json(reqwest::Method::GET, "/memories/list?user_id=4915112345678", None, 200).await;
    let bob_media_id = bob_media["items"][0]["media_id"].as_i64().unwrap();
    let response = app.api(reqwest::Method::GET, &format!("/media/{bob_media_id}")).send().await.unwrap();
    assert_eq!(response.bytes().await.unwrap().to_vec(), photo);
    // Her words are gone from search too: a new Ada starts empty.
    app.send_text(ADA, "hello again").await;
    assert!(!app.send_text(ADA, "/search dinner").await.contains("dinner"));
}

#[tokio::test]
async fn a_photo_saved_through_the_api_is_fetched_like_the_chats_and_de_duplicated() {
    let (app, twilio) = app_with_twilio().await;
    let photo = std::fs::read(PHOTO).unwrap();
    let url = twilio.add_media(photo.clone(), "image/jpeg");
    let body =
        serde_json::json!({ "memory_type": "image", "media_url": url, "text": "penne night", "labels": ["food"] });
    let response = app.api(reqwest::Method::POST, "/memories?user_id=15551234567").json(&body).send().await.unwrap();
    assert_eq!(response.status(), 201);
    let created: serde_json::Value = response.json().await.unwrap();
    assert_eq!(created["memory_type"], "image");
    assert_eq!(created["text"], "penne night");
    assert_eq!(created["labels"], serde_json::json!(["food"]));
    let media_id = created["media_id"].as_i64().expect("a stored file");
    let served = app.api(reqwest::Method::GET, &format!("/media/{media_id}")).send().await.unwrap();
    assert_eq!(served.bytes().await.unwrap().to_vec(), photo);
    assert_eq!(twilio.media_requests().cdn_with_authorization, 0);

    // The same photo again (another URL, a re-encoded copy): the memory it already has.
    for bytes in [photo.clone(), resized_copy(&photo)] {
        let again = serde_json::json!({ "media_url": twilio.add_media(bytes, "image/jpeg") });
        let response =
            app.api(reqwest::Method::POST, "/memories?user_id=15551234567").json(&again).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let existing: serde_json::Value = response.json().await.unwrap();
        assert_eq!(existing["id"], created["id"]);
    }
    assert_eq!(app.count("memories").await, 1);
    // Found by its caption from the chat too.
    assert!(app.send_text(ADA, "/search penne").await.contains("penne night"));

    // Only Twilio's media host is fetched, with credentials.
    let foreign = serde_json::json!({ "media_url": "http://169.254.169.254/latest/meta-data" });
    let problem = app.api_json(reqwest::Method::POST, "/memories?user_id=15551234567", Some(foreign), 400).await;
    assert!(problem["detail"].as_str().unwrap().contains("Twilio media URL"), "{problem}");
    assert_eq!(app.count("memories").await, 1);
}

/// Before, stored HTML or SVG came back as `application/octet-stream` without `nosniff`
/// or a disposition, which some browsers rendered in the API's origin.
#[tokio::test]
async fn stored_media_is_served_as_a_download_unless_it_is_an_image_or_audio_we_decode() {
    let (app, twilio) = app_with_twilio().await;
    let served = |media_id: i64| {
        let request = app.api(reqwest::Method::GET, &format!("/media/{media_id}"));
        async move { request.send().await.unwrap() }
    };
    let header = |response: &reqwest::Response, name: &str| {
        response.headers().get(name).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
    };
    let pages = [
        (&b"<html><body><script>alert(document.cookie)</script></body></html>"[..], "text/html"),
        (&b"<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(1)\"/>"[..], "image/svg+xml"),
    ];
    for (bytes, content_type) in pages {
        let body = serde_json::json!({ "media_url": twilio.add_media(bytes, content_type), "text": "a page" });
        let created = app.api_json(reqwest::Method::POST, "/memories?user_id=15551234567", Some(body), 201).await;
        let response = served(created["media_id"].as_i64().expect("a stored file")).await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "content-type"), "application/octet-stream", "{content_type}");
        assert_eq!(header(&response, "x-content-type-options"), "nosniff", "{content_type}");
        assert!(header(&response, "content-disposition").starts_with("attachment"), "{content_type}");
    }
    let photo = serde_json::json!({ "media_url": twilio.add_media(std::fs::read(PHOTO).unwrap(), "image/jpeg") });
    let created = app.api_json(reqwest::Method::POST, "/memories?user_id=15551234567", Some(photo), 201).await;
    let response = served(created["media_id"].as_i64().unwrap()).await;
    assert_eq!(header(&response, "content-type"), "image/jpeg");
    assert_eq!(header(&response, "x-content-type-options"), "nosniff");
    assert_eq!(header(&response, "content-disposition"), "inline");
}
