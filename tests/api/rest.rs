//! The REST API over the real server: every operation, its errors, API-key auth, paging,
//! and problem+json for everything that goes wrong, including poem's own errors.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;

const ADA_ID: &str = "15551234567";

async fn create(app: &TestApp, user: &str, text: &str) -> Value {
    app.api_json(Method::POST, &format!("/memories?user_id={user}"), Some(json!({ "text": text })), 201).await
}

/// A timestamp as RFC 3339 in UTC with `Z`, however the server wrote the offset.
fn time(value: &Value) -> String {
    let parsed = chrono::DateTime::parse_from_rfc3339(value.as_str().expect("a timestamp")).expect("RFC 3339");
    parsed.with_timezone(&chrono::Utc).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn assert_problem(body: &Value, status: u16, detail_contains: &str) {
    assert_eq!(body["status"], status, "{body}");
    assert_eq!(body["type"], "about:blank");
    assert!(body["title"].as_str().is_some_and(|t| !t.is_empty()), "{body}");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(detail_contains), "detail {detail:?} should mention {detail_contains:?}");
}

#[tokio::test]
async fn every_operation_needs_the_api_key() {
    let app = spawn_app().await;
    for (method, path) in [
        (Method::GET, "/memories?query=x&user_id=15551234567"),
        (Method::POST, "/memories?user_id=15551234567"),
        (Method::GET, "/memories/list?user_id=15551234567"),
        (Method::GET, "/memories/1"),
        (Method::PATCH, "/memories/1"),
        (Method::DELETE, "/memories/1"),
        (Method::GET, "/users"),
        (Method::GET, "/users/15551234567"),
        (Method::PATCH, "/users/15551234567"),
        (Method::GET, "/interactions/recent?user_id=15551234567"),
        (Method::GET, "/analytics/summary"),
    ] {
        for key in [None, Some("not-the-key-0123456789")] {
            let mut request = app.client.request(method.clone(), format!("{}{path}", app.address));
            if let Some(key) = key {
                request = request.bearer_auth(key);
            }
            let response = request.json(&json!({})).send().await.unwrap();
            assert_eq!(response.status(), 401, "{method} {path} with {key:?}");
            assert_eq!(response.headers()["www-authenticate"], "Bearer realm=\"whatsapp-memory\"");
            assert_eq!(response.headers()["content-type"], "application/problem+json");
            let body: Value = response.json().await.unwrap();
            assert_problem(&body, 401, "Bearer");
        }
    }
    assert_eq!(app.count("memories").await, 0);
}

#[tokio::test]
async fn probes_docs_and_the_spec_are_public() {
    let app = spawn_app().await;
    for path in ["/healthz", "/readyz", "/openapi.json", "/docs"] {
        let response = app.client.get(format!("{}{path}", app.address)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn a_memory_created_through_the_api_is_found_listed_changed_and_deleted() {
    let app = spawn_app().await;
    let response = app
        .api(Method::POST, "/memories?user_id=%2B15551234567")
        .json(&json!({ "memory_type": "text", "text": "Lea starts piano in September", "labels": ["family", "family", " school "] }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    let created: Value = response.json().await.unwrap();
    let id = created["id"].as_i64().unwrap();
    assert_eq!(location, format!("/memories/{id}"));
    assert_eq!(created["user_id"], ADA_ID);
    assert_eq!(created["memory_type"], "text");
    assert_eq!(created["labels"], json!(["family", "school"]));
    assert_eq!(time(&created["created_at"]), "2026-11-26T12:00:00Z");

    let found = app.api_json(Method::GET, "/memories?query=piano&user_id=15551234567", None, 200).await;
    assert_eq!(found["query"], "piano");
    assert_eq!(found["results"][0]["memory"]["id"], id);
    assert!(found["results"][0]["score"].as_f64().unwrap() > 0.0);
    assert_eq!(found["results"][0]["interaction"], Value::Null, "created through the API, not from a message");

    let one = app.api_json(Method::GET, &format!("/memories/{id}"), None, 200).await;
    assert_eq!(one, created);

    let changed = app
        .api_json(
            Method::PATCH,
            &format!("/memories/{id}"),
            Some(json!({ "text": "Lea starts violin in October" })),
            200,
        )
        .await;
    assert_eq!(changed["text"], "Lea starts violin in October");
    assert_eq!(changed["labels"], json!(["family", "school"]), "labels kept when not given");
    let by_new_word = app.api_json(Method::GET, "/memories?query=violin&user_id=15551234567", None, 200).await;
    assert_eq!(by_new_word["results"].as_array().unwrap().len(), 1);
    let by_old_word = app.api_json(Method::GET, "/memories?query=piano&user_id=15551234567", None, 200).await;
    assert_eq!(by_old_word["results"], json!([]), "the search index follows the new text");
    let relabelled = app.api_json(Method::PATCH, &format!("/memories/{id}"), Some(json!({ "labels": [] })), 200).await;
    assert_eq!(relabelled["labels"], json!([]));

    app.api_json(Method::DELETE, &format!("/memories/{id}"), None, 204).await;
    let gone = app.api_json(Method::GET, &format!("/memories/{id}"), None, 404).await;
    assert_problem(&gone, 404, &format!("no memory with id {id}"));
    let after = app.api_json(Method::GET, "/memories?query=violin&user_id=15551234567", None, 200).await;
    assert_eq!(after["results"], json!([]));
    app.api_json(Method::DELETE, &format!("/memories/{id}"), None, 404).await;
}

#[tokio::test]
async fn chat_memories_are_served_with_the_message_they_came_from() {
    let app = spawn_app().await;
    app.send_text(ADA, "buy oat milk").await;
    for user in ["15551234567", "%2B15551234567", "whatsapp%3A%2B15551234567"] {
        let found = app.api_json(Method::GET, &format!("/memories?query=milk&user_id={user}"), None, 200).await;
        let hit = &found["results"][0];
        assert_eq!(hit["memory"]["text"], "buy oat milk", "{user}");
        assert_eq!(hit["interaction"]["body"], "buy oat milk");
        assert_eq!(hit["interaction"]["direction"], "inbound");
        assert!(hit["interaction"]["twilio_message_sid"].as_str().unwrap().starts_with("SM"));
    }
    let recent = app.api_json(Method::GET, "/interactions/recent?user_id=15551234567", None, 200).await;
    let items = recent["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "the message and its reply: {recent}");
    let directions: Vec<&str> = items.iter().map(|i| i["direction"].as_str().unwrap()).collect();
    assert!(directions.contains(&"inbound") && directions.contains(&"outbound"));
    let reply = items.iter().find(|i| i["direction"] == "outbound").unwrap();
    let inbound = items.iter().find(|i| i["direction"] == "inbound").unwrap();
    assert_eq!(reply["in_reply_to"], inbound["id"]);
}

#[tokio::test]
async fn lists_are_paged_by_cursor_newest_first_without_gaps_or_repeats() {
    let app = spawn_app().await;
    for i in 0..5 {
        create(&app, ADA_ID, &format!("note {i}")).await;
        app.clock.advance(chrono::Duration::minutes(1));
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..5 {
        let path = match &cursor {
            Some(c) => format!("/memories/list?user_id={ADA_ID}&limit=2&cursor={c}"),
            None => format!("/memories/list?user_id={ADA_ID}&limit=2"),
        };
        let page = app.api_json(Method::GET, &path, None, 200).await;
        seen.extend(page["items"].as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap().to_string()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, vec!["note 4", "note 3", "note 2", "note 1", "note 0"]);
}

#[tokio::test]
async fn a_range_is_read_in_the_users_time_zone() {
    let app = spawn_app().await;
    // 2026-11-26 12:00 UTC. Yesterday's note at 23:30 UTC is "today" in Berlin (00:30).
    app.clock.set(chrono::DateTime::parse_from_rfc3339("2026-11-25T23:30:00Z").unwrap().into());
    create(&app, ADA_ID, "late note").await;
    app.clock.set(chrono::DateTime::parse_from_rfc3339("2026-11-26T12:00:00Z").unwrap().into());
    let utc_today = app.api_json(Method::GET, &format!("/memories/list?user_id={ADA_ID}&range=today"), None, 200).await;
    assert_eq!(utc_today["items"], json!([]));
    let user = app
        .api_json(Method::PATCH, &format!("/users/{ADA_ID}"), Some(json!({ "timezone": "Europe/Berlin" })), 200)
        .await;
    assert_eq!(user["timezone"], "Europe/Berlin");
    let berlin_today =
        app.api_json(Method::GET, &format!("/memories/list?user_id={ADA_ID}&range=today"), None, 200).await;
    assert_eq!(berlin_today["items"][0]["text"], "late note");
    let unknown =
        app.api_json(Method::GET, &format!("/memories/list?user_id={ADA_ID}&range=whenever"), None, 400).await;
    assert_problem(&unknown, 400, "whenever");
}

#[tokio::test]
async fn users_are_listed_shown_and_changed() {
    let app = spawn_app().await;
    app.send_text(ADA, "hello").await;
    create(&app, "15557654321", "a note").await;
    let users = app.api_json(Method::GET, "/users", None, 200).await;
    let ids: Vec<&str> = users["items"].as_array().unwrap().iter().map(|u| u["user_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&ADA_ID) && ids.contains(&"15557654321"));
    let ada = app.api_json(Method::GET, "/users/whatsapp%3A%2B15551234567", None, 200).await;
    assert_eq!(ada["phone_number"], ADA);
    assert_eq!(ada["memory_count"], 1);
    let renamed =
        app.api_json(Method::PATCH, &format!("/users/{ADA_ID}"), Some(json!({ "display_name": "Ada L." })), 200).await;
    assert_eq!(renamed["display_name"], "Ada L.");
    let bad_zone = app
        .api_json(Method::PATCH, &format!("/users/{ADA_ID}"), Some(json!({ "timezone": "Mars/Olympus" })), 400)
        .await;
    assert_problem(&bad_zone, 400, "Mars/Olympus");
    let reset = app.api_json(Method::PATCH, &format!("/users/{ADA_ID}"), Some(json!({ "timezone": "" })), 200).await;
    assert_eq!(reset["timezone"], Value::Null);
    let nothing = app.api_json(Method::PATCH, &format!("/users/{ADA_ID}"), Some(json!({})), 400).await;
    assert_problem(&nothing, 400, "display_name");
    let unknown = app.api_json(Method::GET, "/users/15550000000", None, 404).await;
    assert_problem(&unknown, 404, "15550000000");
}

#[tokio::test]
async fn the_summary_counts_everything_with_thirty_days_of_messages() {
    let app = spawn_app().await;
    app.send_text(ADA, "buy milk").await;
    app.send_text(ADA, "/search milk").await;
    create(&app, ADA_ID, "api note").await;
    let summary = app.api_json(Method::GET, "/analytics/summary", None, 200).await;
    assert_eq!(summary["totals"]["users"], 1);
    assert_eq!(summary["totals"]["memories"], 2);
    assert_eq!(summary["totals"]["interactions"], 4, "two messages and their replies");
    assert_eq!(summary["totals"]["media"], 0);
    assert_eq!(summary["memories_by_type"], json!([{ "memory_type": "text", "count": 2 }]));
    assert_eq!(time(&summary["last_ingest_at"]), "2026-11-26T12:00:00Z");
    let days = summary["interactions_per_day"].as_array().unwrap();
    assert_eq!(days.len(), 30);
    assert_eq!(days[29], json!({ "date": "2026-11-26", "count": 4 }));
    assert_eq!(days[0]["date"], "2026-10-28");
}

#[tokio::test]
async fn bad_input_gets_a_problem_that_says_what_to_fix_and_stores_nothing() {
    let app = spawn_app().await;
    let cases: Vec<(Method, &str, Option<Value>, u16, &str)> = vec![
        (Method::POST, "/memories", Some(json!({ "text": "x" })), 400, "user_id"),
        (Method::POST, "/memories?user_id=bob", Some(json!({ "text": "x" })), 400, "WhatsApp id"),
        (Method::POST, "/memories?user_id=15551234567", Some(json!({ "text": "   " })), 400, "text"),
        (Method::POST, "/memories?user_id=15551234567", Some(json!({})), 400, "text"),
        (
            Method::POST,
            "/memories?user_id=15551234567",
            Some(json!({ "memory_type": "image", "text": "x" })),
            400,
            "media",
        ),
        (Method::POST, "/memories?user_id=15551234567", Some(json!({ "memory_type": "sound" })), 400, "sound"),
        (Method::POST, "/memories?user_id=15551234567", Some(json!({ "text": "x", "labels": [""] })), 400, "label"),
        (Method::GET, "/memories?user_id=15551234567", None, 400, "query"),
        (Method::GET, "/memories?user_id=15551234567&query=%20", None, 400, "query"),
        (Method::GET, "/memories?user_id=15551234567&query=x&limit=0", None, 400, "limit"),
        (Method::GET, "/memories?user_id=15551234567&query=x&limit=101", None, 400, "limit"),
        (Method::GET, "/memories?user_id=15551234567&query=x&limit=lots", None, 400, "limit"),
        (Method::GET, "/memories?user_id=15550000000&query=x", None, 404, "15550000000"),
        (Method::GET, "/memories/list?user_id=15551234567&cursor=nonsense", None, 400, "cursor"),
        (Method::GET, "/memories/abc", None, 400, "id"),
        (Method::GET, "/memories/999", None, 404, "999"),
        (Method::PATCH, "/memories/999", Some(json!({ "text": "x" })), 404, "999"),
        (Method::GET, "/no/such/route", None, 404, "route"),
    ];
    app.send_text(ADA, "hello").await; // so that 15551234567 exists
    let before = app.count("memories").await;
    for (method, path, body, status, mention) in cases {
        let problem = app.api_json(method.clone(), path, body, status).await;
        assert_problem(&problem, status, mention);
    }
    // Malformed JSON, and a body that is not JSON at all.
    for (content_type, body, status) in [("application/json", "{\"text\": ", 400), ("text/plain", "just text", 415)] {
        let response = app
            .api(Method::POST, "/memories?user_id=15551234567")
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{content_type}");
        assert_eq!(response.headers()["content-type"], "application/problem+json");
    }
    let huge = "x".repeat(300 * 1024);
    let response =
        app.api(Method::POST, "/memories?user_id=15551234567").json(&json!({ "text": huge })).send().await.unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    assert_eq!(app.count("memories").await, before, "nothing stored");
}

/// Before, `{"text": 123}` was saved as "123", `labels: [1, 2]` as `["1", "2"]` and
/// `display_name: null` taken as "left out": the schema says string, so these are 400s.
#[tokio::test]
async fn json_values_of_the_wrong_type_are_refused_not_coerced() {
    let app = spawn_app().await;
    let memory = create(&app, ADA_ID, "piano in September").await;
    let id = memory["id"].as_i64().unwrap();
    let cases: Vec<(Method, String, Value, &str)> = vec![
        (Method::POST, format!("/memories?user_id={ADA_ID}"), json!({ "text": 123 }), "text"),
        (Method::POST, format!("/memories?user_id={ADA_ID}"), json!({ "text": true }), "text"),
        (Method::POST, format!("/memories?user_id={ADA_ID}"), json!({ "text": "x", "labels": [1, 2] }), "labels"),
        (Method::POST, format!("/memories?user_id={ADA_ID}"), json!({ "text": "x", "labels": [false] }), "labels"),
        (Method::POST, format!("/memories?user_id={ADA_ID}"), json!({ "text": "x", "labels": null }), "labels"),
        (Method::POST, format!("/memories?user_id={ADA_ID}"), json!({ "text": "x", "media_url": 7 }), "media_url"),
        (Method::PATCH, format!("/memories/{id}"), json!({ "text": 42 }), "text"),
        (Method::PATCH, format!("/memories/{id}"), json!({ "labels": [null] }), "labels"),
        (Method::PATCH, format!("/users/{ADA_ID}"), json!({ "display_name": 123 }), "display_name"),
        (Method::PATCH, format!("/users/{ADA_ID}"), json!({ "display_name": null }), "display_name"),
        (Method::PATCH, format!("/users/{ADA_ID}"), json!({ "timezone": false }), "timezone"),
        // Found by schemathesis --checks all: `null` for the non-nullable enum was taken as absent.
        (
            Method::POST,
            format!("/memories?user_id={ADA_ID}"),
            json!({ "text": "x", "memory_type": null }),
            "memory_type",
        ),
    ];
    for (method, path, body, field) in cases {
        let problem = app.api_json(method.clone(), &path, Some(body.clone()), 400).await;
        assert_problem(&problem, 400, field);
        let detail = problem["detail"].as_str().unwrap();
        for internal in ["optional_", "MemoryCreate", "MemoryUpdate", "UserUpdate", "parse request payload"] {
            assert!(!detail.contains(internal), "{method} {path} {body}: {detail}");
        }
    }
    assert_eq!(app.count("memories").await, 1, "nothing stored");
    let unchanged = app.api_json(Method::GET, &format!("/memories/{id}"), None, 200).await;
    assert_eq!(unchanged["text"], "piano in September");
    assert_eq!(app.api_json(Method::GET, &format!("/users/{ADA_ID}"), None, 200).await["display_name"], Value::Null);
}

/// Before, a bad path parameter answered ``failed to parse path `param0` … integer_int64``.
#[tokio::test]
async fn a_bad_parameter_is_named_as_the_spec_names_it() {
    let app = spawn_app().await;
    for path in ["/memories/abc", "/media/abc", "/memories/99999999999999999999"] {
        let problem = app.api_json(Method::GET, path, None, 400).await;
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains("`id`"), "{path}: {detail}");
        assert!(!detail.contains("param0") && !detail.contains("int64"), "{path}: {detail}");
    }
}

/// What the schema says about a field is all a client needs: every value it allows is
/// taken (found by schemathesis --checks all: any string was a documented cursor, and an
/// empty text, label or name passed the schema but was refused), and every value it
/// refuses is refused.
#[tokio::test]
async fn the_schema_states_the_rules_the_handlers_apply() {
    let app = spawn_app().await;
    let memory = create(&app, ADA_ID, "piano in September").await;
    let id = memory["id"].as_i64().unwrap();
    // Any cursor of the documented shape is a position to start after.
    let spec = app.api_json(Method::GET, "/openapi.json", None, 200).await;
    let mut cursors = 0;
    for operation in spec["paths"].as_object().unwrap().values().flat_map(|p| p.as_object().unwrap().values()) {
        for parameter in operation["parameters"].as_array().into_iter().flatten() {
            if parameter["name"] == "cursor" {
                assert_eq!(parameter["schema"]["pattern"], whatsapp_memory::domain::model::PageCursor::PATTERN);
                cursors += 1;
            }
        }
    }
    assert_eq!(cursors, 3, "the three paged lists");
    for path in [
        format!("/memories/list?user_id={ADA_ID}&cursor=0-0"),
        format!("/memories/list?user_id={ADA_ID}&cursor=9999999999999999-999999999999999999"),
        format!("/interactions/recent?user_id={ADA_ID}&cursor=1796551200000000-42"),
        "/users?cursor=12-3".to_string(),
    ] {
        app.api_json(Method::GET, &path, None, 200).await;
    }
    let newest_first = app
        .api_json(Method::GET, &format!("/memories/list?user_id={ADA_ID}&cursor=9999999999999999-1"), None, 200)
        .await;
    assert_eq!(newest_first["items"][0]["id"], id, "a cursor after everything starts at the newest");
    // Values the schema refuses are refused, with the field named.
    let refused: Vec<(Method, String, Option<Value>, &str)> = vec![
        (Method::GET, format!("/memories/list?user_id={ADA_ID}&cursor=6e6f6e"), None, "cursor"),
        (Method::GET, format!("/memories/list?user_id={ADA_ID}&cursor="), None, "cursor"),
        (Method::GET, format!("/memories?user_id={ADA_ID}&query=%01"), None, "query"),
        (Method::PATCH, format!("/memories/{id}"), Some(json!({ "text": "" })), "text"),
        (Method::PATCH, format!("/memories/{id}"), Some(json!({ "labels": [" "] })), "labels"),
        (Method::PATCH, format!("/memories/{id}"), Some(json!({ "labels": ["x".repeat(65)] })), "labels"),
        (Method::PATCH, format!("/users/{ADA_ID}"), Some(json!({ "display_name": "" })), "display_name"),
        (Method::PATCH, format!("/users/{ADA_ID}"), Some(json!({ "display_name": " \u{1}" })), "display_name"),
    ];
    for (method, path, body, field) in refused {
        let problem = app.api_json(method.clone(), &path, body, 400).await;
        assert_problem(&problem, 400, field);
    }
    // A query of stop words alone is a valid question with nothing to find.
    let found = app.api_json(Method::GET, &format!("/memories?user_id={ADA_ID}&query=the"), None, 200).await;
    assert!(found["results"].as_array().is_some_and(|results| results.is_empty()), "{found}");
}
