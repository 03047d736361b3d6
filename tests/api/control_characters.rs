//! Control characters (U+0000 above all, which PostgreSQL cannot store) in every text
//! field of every input: dropped at the edge, so the message is stored, and stored alike
//! on SQLite and PostgreSQL. Before, PostgreSQL answered 500 and lost the message.

use reqwest::Method;
use serde_json::json;

use crate::helpers::*;

const ADA_ID: &str = "15551234567";

#[tokio::test]
async fn a_webhook_message_with_nul_characters_is_stored_without_them() {
    let app = spawn_app().await;
    let form = with_field(text_form(ADA, "buy\u{0} milk\u{7}\r\nand eggs"), "ProfileName", "A\u{0}da\u{1b}");
    let response = app.post_webhook(&form).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let memories = app.api_json(Method::GET, &format!("/memories/list?user_id={ADA_ID}"), None, 200).await;
    assert_eq!(memories["items"][0]["text"], "buy milk\nand eggs");
    let user = app.api_json(Method::GET, &format!("/users/{ADA_ID}"), None, 200).await;
    assert_eq!(user["display_name"], "Ada");
    // Twilio's redelivery of the same message answers as the first did and adds nothing.
    let again = app.post_webhook(&form).await;
    assert_eq!(again.status(), 200);
    assert_eq!(app.count("memories").await, 1);
    assert_eq!(app.scalar("SELECT count(*) FROM interactions WHERE direction = 'inbound'").await, 1);
}

#[tokio::test]
async fn a_search_or_command_with_nul_characters_is_answered() {
    let app = spawn_app().await;
    app.send_text(ADA, "buy milk").await;
    let found = app.send_text(ADA, "/search mi\u{0}lk").await;
    assert!(found.contains("buy milk"), "{found}");
    let listed = app.send_text(ADA, "/list to\u{0}day").await;
    assert!(listed.contains("buy milk"), "{listed}");
}

#[tokio::test]
async fn rest_text_labels_and_display_name_with_nul_characters_are_stored_without_them() {
    let app = spawn_app().await;
    let created = app
        .api_json(
            Method::POST,
            &format!("/memories?user_id={ADA_ID}"),
            Some(json!({ "text": "piano\u{0} on\u{85} friday", "labels": ["fam\u{0}ily", "x\u{7f}"] })),
            201,
        )
        .await;
    assert_eq!(created["text"], "piano on friday");
    assert_eq!(created["labels"], json!(["family", "x"]));
    let id = created["id"].as_i64().unwrap();
    let changed = app
        .api_json(
            Method::PATCH,
            &format!("/memories/{id}"),
            Some(json!({ "text": "piano\u{0} on monday", "labels": ["\u{0}music"] })),
            200,
        )
        .await;
    assert_eq!(changed["text"], "piano on monday");
    assert_eq!(changed["labels"], json!(["music"]));
    let renamed = app
        .api_json(Method::PATCH, &format!("/users/{ADA_ID}"), Some(json!({ "display_name": "Ada\u{0} L." })), 200)
        .await;
    assert_eq!(renamed["display_name"], "Ada L.");
    let found = app.api_json(Method::GET, &format!("/memories?user_id={ADA_ID}&query=pia%00no"), None, 200).await;
    assert_eq!(found["query"], "piano");
    assert_eq!(found["results"][0]["memory"]["id"], id, "{found}");
    let listed = app.api_json(Method::GET, &format!("/memories/list?user_id={ADA_ID}&range=to%00day"), None, 200).await;
    assert_eq!(listed["items"][0]["id"], id);
}
