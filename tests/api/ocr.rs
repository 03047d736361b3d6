//! Text in photos, screenshots and PDFs end to end: rendered screenshots and the real
//! WhatsApp screenshot read by the real Tesseract (in process), PDFs by poppler, the text
//! saved with the memory, confirmed in the reply and found by `/search`; hostile files
//! kept and answered clearly. Needs Tesseract, poppler-utils, ImageMagick and qpdf
//! (`make test` and `.ci/run` install them).

use std::time::{Duration, Instant};

use sea_orm::ConnectionTrait;
use whatsapp_memory::adapters::tesseract::{TesseractRecognizer, TesseractSettings};
use whatsapp_memory::domain::ports::{Clock, TextRecognizer};

use crate::fake_twilio::{self, FakeTwilio};
use crate::helpers::*;
use crate::media::{media_form, twilio_vars};
use crate::ocr_fixtures::*;

const SCREENSHOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/samples/screenshot_lambdatest.jpg");

/// The time cap the OCR test servers run with.
const TIME_CAP_SECONDS: u64 = 20;

fn recognizer() -> TesseractRecognizer {
    TesseractRecognizer::load(TesseractSettings {
        languages: "eng".into(),
        max_pixels: 12_000_000,
        time_cap: Duration::from_secs(TIME_CAP_SECONDS),
        concurrency: 1,
    })
    .expect("Tesseract and its English data are installed (apt-get install tesseract-ocr tesseract-ocr-eng)")
}

async fn ocr_app() -> (TestApp, FakeTwilio) {
    let twilio = fake_twilio::start().await;
    let vars = twilio_vars(&twilio);
    let app = spawn_app_with(move |all| {
        all.extend(vars);
        all.insert("OCR".into(), "on".into());
        all.insert("OCR_TIMEOUT_SECONDS".into(), TIME_CAP_SECONDS.to_string());
    })
    .await;
    (app, twilio)
}

/// Sends `bytes` as the one media item of a message (declared `content_type`) and
/// returns the one late reply and how long it took.
async fn send_file(app: &TestApp, twilio: &FakeTwilio, bytes: Vec<u8>, content_type: &str) -> (String, Duration) {
    let before = twilio.sent().len();
    let url = twilio.add_media(bytes, content_type);
    let started = Instant::now();
    let response = app.post_webhook(&media_form(ADA, "", &[(url, content_type)])).await;
    assert_eq!(response.status(), 200);
    eventually("the reply about the file", || async { twilio.sent().len() > before }).await;
    let elapsed = started.elapsed();
    // One reply per file, never a second one.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(twilio.sent().len(), before + 1, "{:?}", twilio.sent());
    (twilio.sent()[before].body.clone(), elapsed)
}

/// The memories of Ada as the REST API shows them, newest first.
async fn memories(app: &TestApp) -> Vec<serde_json::Value> {
    let page = app.api_json(reqwest::Method::GET, "/memories/list?user_id=15551234567", None, 200).await;
    page["items"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn rendered_phone_screenshots_come_back_with_at_least_95_percent_of_their_words() {
    let recognizer = recognizer();
    for shot in screenshots() {
        let found = recognizer.recognize(std::fs::read(&shot.path).unwrap()).await.unwrap();
        let recall = word_recall(&shot.words, &found.text);
        assert!(recall >= 0.95, "{}: {:.0}% of the words: {:?}", shot.path.display(), recall * 100.0, found.text);
    }
}

#[tokio::test]
async fn a_photo_of_text_at_an_angle_of_up_to_5_degrees_is_read() {
    let recognizer = recognizer();
    for degrees in [-5.0, 3.0, 5.0] {
        let photo = rotated_photo(degrees);
        let found = recognizer.recognize(std::fs::read(&photo.path).unwrap()).await.unwrap();
        let recall = word_recall(&photo.words, &found.text);
        assert!(recall >= 0.9, "{degrees}°: {:.0}% of the words: {:?}", recall * 100.0, found.text);
    }
}

#[tokio::test]
async fn an_image_without_text_gives_no_text_rather_than_noise() {
    let found = recognizer().recognize(std::fs::read(crate::media::PHOTO).unwrap()).await.unwrap();
    assert!(words(&found.text).len() <= 2, "the penne photo read as {:?}", found.text);
}

#[tokio::test]
async fn a_screenshot_is_saved_with_its_text_confirmed_and_found_by_search() {
    let (app, twilio) = ocr_app().await;
    let shot = &screenshots()[0];
    let (reply, _) = send_file(&app, &twilio, std::fs::read(&shot.path).unwrap(), "image/png").await;
    assert!(reply.starts_with("📷 Photo saved ✅ (text: “Home Network"), "{reply}");
    assert!(reply.ends_with("…”)") && reply.contains("Bluebird-5G"), "{reply}");

    let found = app.send_text(ADA, "/search Bluebird").await;
    assert!(found.contains("Photo 1080×2400") && found.contains("WIFI Bluebird-5G"), "{found}");
    let found = app.send_text(ADA, "/search lisbon booking").await;
    assert!(found.contains("QX7HPL"), "{found}");
    let listed = app.send_text(ADA, "/list today").await;
    assert!(listed.contains("Home Network WIFI Bluebird-5G") && listed.lines().count() == 1, "an excerpt: {listed}");

    let items = memories(&app).await;
    let extracted = items[0]["extracted_text"].as_str().expect("extracted_text in REST");
    assert!(extracted.contains("maple-orange-tiger-42\n"), "lines kept: {extracted:?}");
    assert!(items[0]["text"].as_str().unwrap().starts_with("Photo 1080×2400, received"), "{}", items[0]);
}

#[tokio::test]
async fn the_real_whatsapp_screenshot_is_found_by_two_of_its_words() {
    let (app, twilio) = ocr_app().await;
    let (reply, _) = send_file(&app, &twilio, std::fs::read(SCREENSHOT).unwrap(), "image/jpeg").await;
    assert!(reply.contains("(text: “") && reply.contains("Power Your Software"), "{reply}");
    for word in ["supercharge", "globally"] {
        let found = app.send_text(ADA, &format!("/search {word}")).await;
        assert!(found.starts_with("1. ") && found.contains("Supercharge"), "{word}: {found}");
    }
    let extracted = memories(&app).await[0]["extracted_text"].as_str().unwrap().to_string();
    assert!(!extracted.contains("e@kroe") && !extracted.contains("=="), "noise filtered: {extracted:?}");
}

#[tokio::test]
async fn a_pdf_with_a_text_layer_is_found_by_a_word_on_its_second_page() {
    let (app, twilio) = ocr_app().await;
    let pdf = text_pdf(&["Invoice 2026-114 for the garden shed", "Delivery by the zeppelin company on Monday"]);
    let (reply, _) = send_file(&app, &twilio, pdf, "application/pdf").await;
    assert!(reply.starts_with("📄 Document saved ✅ (text: “Invoice 2026-114"), "{reply}");
    let found = app.send_text(ADA, "/search zeppelin").await;
    assert!(found.contains("Invoice 2026-114"), "{found}");
    assert_eq!(app.scalar("SELECT count(*) FROM memories WHERE kind = 'document'").await, 1);
}

#[tokio::test]
async fn a_scanned_pdf_is_rendered_read_and_found_by_a_word_on_its_second_page() {
    let (app, twilio) = ocr_app().await;
    let pdf = scanned_pdf(&["Lease agreement for the flat", "The landlord repaints the balcony in April"]);
    let (reply, _) = send_file(&app, &twilio, pdf, "application/pdf").await;
    assert!(reply.starts_with("📄 Document saved ✅ (text: “Lease agreement"), "{reply}");
    let found = app.send_text(ADA, "/search balcony").await;
    assert!(found.contains("Lease agreement"), "{found}");
}

/// A hostile file is kept, answered with `expected` in the reply, and lets its worker go
/// within the bound the job holds it to (twice the time cap, on a machine shared by the
/// whole suite).
async fn kept_and_answered(bytes: Vec<u8>, content_type: &str, expected: &str) {
    let (app, twilio) = ocr_app().await;
    let (reply, elapsed) = send_file(&app, &twilio, bytes, content_type).await;
    assert!(reply.contains(expected), "{reply}");
    assert!(elapsed < Duration::from_secs(2 * TIME_CAP_SECONDS), "the worker was held {elapsed:?}");
    assert_eq!(app.count("media_assets").await, 1, "the file is kept");
    assert_eq!(app.count("memories").await, 1, "and remembered");
    assert_eq!(app.count("jobs WHERE state NOT IN ('done')").await, 0, "nothing stuck or dead");
    // The server still reads the next file.
    let pdf = text_pdf(&["Next file is read normally"]);
    let (reply, _) = send_file(&app, &twilio, pdf, "application/pdf").await;
    assert!(reply.contains("Next file is read normally"), "{reply}");
}

#[tokio::test]
async fn an_encrypted_pdf_is_kept_and_the_user_told_it_is_password_protected() {
    let locked = encrypted_pdf(&text_pdf(&["Payslip November", "Net pay"]));
    kept_and_answered(
        locked,
        "application/pdf",
        "📄 Document saved ✅ (I could not read its text: it is password-protected)",
    )
    .await;
}

#[tokio::test]
async fn a_truncated_pdf_is_kept_and_answered_clearly() {
    let mut pdf = text_pdf(&["Boarding pass gate B12", "Seat 14C"]);
    pdf.truncate(120);
    kept_and_answered(pdf, "application/pdf", "📄 Document saved ✅ (I could not read its text: the PDF is damaged")
        .await;
}

#[tokio::test]
async fn a_pdf_of_10000_pages_is_read_only_as_far_as_its_first_pages() {
    kept_and_answered(many_page_pdf(10_000), "application/pdf", "📄 Document saved ✅").await;
}

#[tokio::test]
async fn a_png_claiming_50000_by_50000_pixels_is_kept_and_answered_clearly() {
    kept_and_answered(
        png_claiming(50_000, 50_000),
        "image/png",
        "📷 Photo saved ✅ (I could not read its text: it is too large",
    )
    .await;
}

#[tokio::test]
async fn posters_over_40_megapixels_sent_as_png_or_jpeg_are_read_downscaled_not_refused() {
    let (app, twilio) = ocr_app().await;
    let posters = [
        ("png", "image/png", poster("png", "xc:#f4efe4", &["Garden party Saturday", "lanterns and lemonade"])),
        // Light to dark from top to bottom, so it is no near duplicate of the first.
        (
            "jpg",
            "image/jpeg",
            poster(
                "jpg",
                "gradient:#ffffff-#8a8a8a",
                &["Choir concert Friday", "tickets at the bakery", "doors open seven"],
            ),
        ),
    ];
    for (extension, content_type, poster) in posters {
        let (reply, _) = send_file(&app, &twilio, std::fs::read(&poster.path).unwrap(), content_type).await;
        assert!(reply.starts_with("📷 Photo saved ✅ (text: “"), "{extension}: {reply}");
        let items = memories(&app).await;
        let read = items[0]["extracted_text"].as_str().unwrap_or_default();
        assert!(word_recall(&poster.words, read) >= 0.9, "{extension}: {read:?}");
        // Described at the size it was decoded at, half the camera's.
        assert!(items[0]["text"].as_str().unwrap().starts_with("Photo 4000×3000"), "{}", items[0]);
    }
    for (word, poster) in [("lanterns", "Garden party"), ("bakery", "Choir concert")] {
        let found = app.send_text(ADA, &format!("/search {word}")).await;
        assert!(found.contains(poster), "{word}: {found}");
    }
}

#[tokio::test]
async fn a_photo_without_text_is_confirmed_as_before_and_keeps_its_description() {
    let (app, twilio) = ocr_app().await;
    let (reply, _) = send_file(&app, &twilio, std::fs::read(crate::media::PHOTO).unwrap(), "image/jpeg").await;
    assert_eq!(reply, "📷 Photo saved ✅");
    let items = memories(&app).await;
    assert!(items[0]["text"].as_str().unwrap().starts_with("Photo 998×1280"), "{}", items[0]);
    assert!(items[0].get("extracted_text").is_none(), "{}", items[0]);
}

#[tokio::test]
async fn a_near_duplicate_photo_is_not_read_again() {
    let (app, twilio) = ocr_app().await;
    let shot = std::fs::read(SCREENSHOT).unwrap();
    send_file(&app, &twilio, shot.clone(), "image/jpeg").await;
    let copy = image::load_from_memory(&shot).unwrap().resize(640, 640, image::imageops::FilterType::Triangle);
    let mut smaller = std::io::Cursor::new(Vec::new());
    copy.write_to(&mut smaller, image::ImageFormat::Jpeg).unwrap();
    let (reply, _) = send_file(&app, &twilio, smaller.into_inner(), "image/jpeg").await;
    assert!(reply.starts_with("This photo is already saved ✅"), "{reply}");
    assert_eq!(app.count("jobs WHERE kind = 'media.ocr'").await, 1, "the stored text stands for the copy");
}

#[tokio::test]
async fn with_ocr_off_photos_are_kept_as_before() {
    let twilio = fake_twilio::start().await;
    let vars = twilio_vars(&twilio);
    let app = spawn_app_with(move |all| {
        all.extend(vars);
        all.insert("OCR".into(), "off".into());
    })
    .await;
    let (reply, _) = send_file(&app, &twilio, std::fs::read(SCREENSHOT).unwrap(), "image/jpeg").await;
    assert_eq!(reply, "📷 Photo saved ✅");
    assert_eq!(app.count("jobs WHERE kind = 'media.ocr'").await, 0);
}

#[tokio::test]
async fn reindex_ocr_reads_the_photos_saved_before_ocr_was_on() {
    let (app, twilio) = ocr_app().await;
    send_file(&app, &twilio, std::fs::read(SCREENSHOT).unwrap(), "image/jpeg").await;
    // As a photo saved before OCR: its description alone, its text never read.
    let description = memories(&app).await[0]["text"].as_str().unwrap().split(" — ").next().unwrap().to_string();
    let forget = format!("UPDATE memories SET extracted_text = NULL, text = '{description}'");
    app.db.execute_unprepared(&forget).await.unwrap();
    assert!(app.send_text(ADA, "/search supercharge").await.contains("No matching"));

    let config =
        whatsapp_memory::config::Config::from_lookup(|k| (k == "DATABASE_URL").then(|| app.database_url.clone()))
            .unwrap();
    assert_eq!(whatsapp_memory::reindex_ocr(&config, app.clock.now()).await.unwrap(), 1);
    eventually("the text read again", || async {
        app.send_text(ADA, "/search supercharge").await.contains("Supercharge")
    })
    .await;
    assert_eq!(whatsapp_memory::reindex_ocr(&config, app.clock.now()).await.unwrap(), 0, "nothing left to read");
    assert_eq!(twilio.sent().len(), 1, "nobody is told twice");
}

#[tokio::test]
async fn a_photo_added_through_the_rest_api_gets_its_text() {
    let (app, twilio) = ocr_app().await;
    let url = twilio.add_media(std::fs::read(SCREENSHOT).unwrap(), "image/jpeg");
    let created = app
        .api_json(
            reqwest::Method::POST,
            "/memories?user_id=15551234567",
            Some(serde_json::json!({"memory_type": "image", "media_url": url})),
            201,
        )
        .await;
    let id = created["id"].as_i64().unwrap();
    eventually("the text in the memory", || async {
        let memory = app.api_json(reqwest::Method::GET, &format!("/memories/{id}"), None, 200).await;
        memory["extracted_text"].as_str().is_some_and(|t| t.contains("Supercharge"))
    })
    .await;
    assert!(twilio.sent().is_empty(), "nobody to reply to: the app asked");
}
