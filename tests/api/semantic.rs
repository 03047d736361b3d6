//! Local semantic search end to end: the real all-MiniLM-L6-v2 model (`make embed-model`),
//! the server's indexer working through the embedding queue, vectors in the real
//! database, hybrid ranking through chat and REST.

use std::path::Path;

use reqwest::Method;
use serde_json::{json, Value};
use whatsapp_memory::adapters::db::Database;
use whatsapp_memory::domain::model::UserId;
use whatsapp_memory::domain::ports::{transact, NewMemory};

use crate::helpers::{eventually, spawn_app_with, TestApp, ADA, BOB};

const MODEL_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/all-minilm-l6-v2");
const PARAPHRASES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/paraphrase_search.json");

fn model_dir() -> String {
    assert!(
        Path::new(MODEL_DIR).join("model.safetensors").is_file(),
        "the embedding model is missing: run `make embed-model`"
    );
    MODEL_DIR.to_string()
}

async fn semantic_app_over(database_url: Option<String>) -> TestApp {
    let model = model_dir();
    spawn_app_with(move |vars| {
        vars.insert("SEMANTIC_SEARCH".into(), "on".into());
        vars.insert("EMBED_MODEL_DIR".into(), model);
        if let Some(url) = database_url {
            vars.insert("DATABASE_URL".into(), url);
        }
    })
    .await
}

pub(crate) async fn semantic_app() -> TestApp {
    semantic_app_over(None).await
}

/// The REST user id of a phone number.
pub(crate) fn user_id(phone: &str) -> String {
    phone.trim_start_matches('+').to_string()
}

pub(crate) async fn create(app: &TestApp, phone: &str, text: &str) -> i64 {
    let path = format!("/memories?user_id={}", user_id(phone));
    let created = app.api_json(Method::POST, &path, Some(json!({ "memory_type": "text", "text": text })), 201).await;
    created["id"].as_i64().unwrap()
}

/// The texts `GET /memories?query=` returns for `phone`, best first.
pub(crate) async fn search(app: &TestApp, phone: &str, query: &str, limit: u32) -> Vec<(i64, String, String)> {
    let path = format!("/memories?user_id={}&limit={limit}&query={}", user_id(phone), urlencode(query));
    let found = app.api_json(Method::GET, &path, None, 200).await;
    found["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hit| {
            let memory = &hit["memory"];
            (
                memory["id"].as_i64().unwrap(),
                memory["text"].as_str().unwrap().to_string(),
                memory["user_id"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

pub(crate) async fn wait_for_embeddings(app: &TestApp, count: i64) {
    eventually(&format!("{count} embeddings"), || async { app.count("memory_embeddings").await >= count }).await;
}

struct Pair {
    note: String,
    query: String,
}

fn paraphrases() -> (Vec<Pair>, Vec<String>) {
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(PARAPHRASES).unwrap()).unwrap();
    let pairs = fixture["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| Pair { note: p["note"].as_str().unwrap().into(), query: p["query"].as_str().unwrap().into() })
        .collect();
    let distractors = fixture["distractors"].as_array().unwrap().iter().map(|d| d.as_str().unwrap().into()).collect();
    (pairs, distractors)
}

#[tokio::test]
async fn paraphrased_questions_find_their_notes_where_full_text_alone_does_not() {
    let app = semantic_app().await;
    let (pairs, distractors) = paraphrases();
    assert!(pairs.len() >= 30, "the issue asks for at least 30 pairs");
    let mut ids = Vec::new();
    for pair in &pairs {
        ids.push(create(&app, ADA, &pair.note).await);
    }
    for distractor in &distractors {
        create(&app, ADA, distractor).await;
    }
    wait_for_embeddings(&app, (pairs.len() + distractors.len()) as i64).await;

    // Full text alone: the same local index the server searches, without vectors.
    let database = Database::open(&app.database_url, false).await.unwrap();
    let ada = database.reads.find_user(&user_id(ADA)).await.unwrap().expect("Ada exists");
    let mut misses = Vec::new();
    for (pair, id) in pairs.iter().zip(&ids) {
        let words_only = database.memory_store.search(&ada, &pair.query, 5).await.unwrap();
        assert!(
            !words_only.iter().any(|hit| hit.recalled.memory().is_some_and(|m| m.id.0 == *id)),
            "full text alone found {:?} for {:?}: not a paraphrase",
            pair.note,
            pair.query
        );
        let hybrid = search(&app, ADA, &pair.query, 5).await;
        if !hybrid.iter().any(|(found, _, _)| found == id) {
            misses.push(format!("{:?} -> {:?}, got {:?}", pair.query, pair.note, hybrid));
        }
    }
    assert!(misses.is_empty(), "hybrid search missed {} of {}:\n{}", misses.len(), pairs.len(), misses.join("\n"));
}

#[tokio::test]
async fn a_question_in_chat_finds_the_note_it_means_and_never_another_users() {
    let app = semantic_app().await;
    assert_eq!(app.send_text(ADA, "Lea starts piano with Mrs. Brandt in September").await, "Memory saved ✅");
    app.send_text(ADA, "Renew the car insurance before March").await;
    app.send_text(BOB, "Tom's guitar lessons are on Fridays at 5").await;
    app.send_text(BOB, "Sparky Ltd rewiring the kitchen, Thursday 9am").await;
    wait_for_embeddings(&app, 4).await;

    let reply = app.send_text(ADA, "music classes for my kid?").await;
    assert!(reply.contains("Lea starts piano with Mrs. Brandt in September"), "{reply}");
    assert!(!reply.contains("guitar"), "Bob's note reached Ada: {reply}");
    let reply = app.send_text(ADA, "when does the electrician come?").await;
    assert!(!reply.contains("Sparky"), "Bob's note reached Ada: {reply}");
    let reply = app.send_text(BOB, "when does the electrician come?").await;
    assert!(reply.contains("Sparky Ltd rewiring the kitchen"), "{reply}");

    for (phone, query) in [(ADA, "music lessons"), (ADA, "electrician"), (BOB, "insurance for the vehicle")] {
        for (_, text, owner) in search(&app, phone, query, 20).await {
            assert_eq!(owner, user_id(phone), "{query:?} found {text:?} of another user");
        }
    }
}

#[tokio::test]
async fn a_memory_saved_a_moment_ago_is_found_by_its_words_at_once_and_by_its_meaning_once_embedded() {
    let app = semantic_app().await;
    app.send_text(ADA, "Lea starts piano with Mrs. Brandt in September").await;
    // No waiting for the indexer: full text has it already.
    let reply = app.send_text(ADA, "/search piano Brandt").await;
    assert!(reply.contains("Lea starts piano"), "{reply}");
    wait_for_embeddings(&app, 1).await;
    let found = search(&app, ADA, "music classes for my kid?", 5).await;
    assert!(found.iter().any(|(_, text, _)| text.starts_with("Lea starts piano")), "{found:?}");
}

#[tokio::test]
async fn an_edited_memory_is_found_by_its_new_meaning_and_a_deleted_one_not_at_all() {
    let app = semantic_app().await;
    let id = create(&app, ADA, "Lea starts piano with Mrs. Brandt in September").await;
    let other = create(&app, ADA, "Dentist on Tuesday at 3pm").await;
    wait_for_embeddings(&app, 2).await;
    let seq_before = app.scalar(&format!("SELECT seq FROM memory_embeddings WHERE memory_id = {id}")).await;

    app.api_json(
        Method::PATCH,
        &format!("/memories/{id}"),
        Some(json!({ "text": "Buy a birthday cake for Grandma" })),
        200,
    )
    .await;
    eventually("the new text's embedding", || async {
        app.scalar(&format!("SELECT seq FROM memory_embeddings WHERE memory_id = {id}")).await > seq_before
    })
    .await;
    let found = search(&app, ADA, "pastry for granny's party", 5).await;
    assert_eq!(found.first().map(|f| f.0), Some(id), "{found:?}");
    assert!(!search(&app, ADA, "music classes for my kid?", 5).await.iter().any(|f| f.0 == id));

    app.api_json(Method::DELETE, &format!("/memories/{other}"), None, 204).await;
    assert_eq!(app.scalar(&format!("SELECT count(*) FROM memory_embeddings WHERE memory_id = {other}")).await, 0);
    assert!(!search(&app, ADA, "appointment with the tooth doctor", 5).await.iter().any(|f| f.0 == other));
}

#[tokio::test]
async fn memories_saved_before_semantic_search_are_found_by_words_until_reindex_embeds_them() {
    // Memories saved by a server without semantic search: none was queued for embedding.
    let dir = tempfile::tempdir().unwrap();
    let url = crate::helpers::fresh_database_url(&dir).await;
    let database = Database::open(&url, true).await.unwrap();
    let now = chrono::Utc::now();
    transact(&*database.repository, move |tx| {
        Box::pin(async move {
            let user = tx.find_or_create_user(&user_id(ADA), ADA, None, now).await?;
            for text in ["Lea starts piano with Mrs. Brandt in September", "Renew the car insurance before March"] {
                let memory = NewMemory {
                    user_id: UserId(user.id.0),
                    interaction_id: None,
                    media_asset_id: None,
                    kind: whatsapp_memory::domain::model::MemoryKind::Text,
                    text: text.into(),
                    labels: vec![],
                    created_at: now,
                };
                tx.save_memory(memory).await?;
            }
            Ok(())
        })
    })
    .await
    .unwrap();

    let app = semantic_app_over(Some(url.clone())).await;
    // Pending (no vector): found by its words, not yet by its meaning.
    assert_eq!(app.count("memory_embeddings").await, 0);
    let by_words = search(&app, ADA, "piano Brandt", 5).await;
    assert!(by_words.iter().any(|(_, text, _)| text.starts_with("Lea starts piano")), "{by_words:?}");
    assert!(search(&app, ADA, "music classes for my kid?", 5).await.is_empty(), "not embedded yet");
    let config = whatsapp_memory::config::Config::from_lookup(|k| match k {
        "DATABASE_URL" => Some(url.clone()),
        "EMBED_MODEL_DIR" => Some(model_dir()),
        _ => None,
    })
    .unwrap();
    assert_eq!(whatsapp_memory::reindex(&config).await.unwrap(), 2);
    wait_for_embeddings(&app, 2).await;
    let found = search(&app, ADA, "music classes for my kid?", 5).await;
    assert!(found.iter().any(|(_, text, _)| text.starts_with("Lea starts piano")), "{found:?}");
    assert_eq!(whatsapp_memory::reindex(&config).await.unwrap(), 0, "nothing left to embed");
}

#[tokio::test]
async fn a_second_server_on_the_same_database_finds_by_meaning_what_the_first_one_saved() {
    let first = semantic_app().await;
    let second = semantic_app_over(Some(first.database_url.clone())).await;
    // A first search loads Ada's vectors into the second server's cache...
    first.send_text(ADA, "Renew the car insurance before March").await;
    wait_for_embeddings(&first, 1).await;
    let found = search(&second, ADA, "car insurance", 5).await;
    assert_eq!(found.len(), 1, "{found:?}");
    // ...and takes in what either server embeds later, by sequence number.
    let id = create(&first, ADA, "Lea starts piano with Mrs. Brandt in September").await;
    wait_for_embeddings(&first, 2).await;
    let found = search(&second, ADA, "music classes for my kid?", 5).await;
    assert_eq!(found.first().map(|f| f.0), Some(id), "{found:?}");
}

#[tokio::test]
async fn without_its_model_the_server_starts_and_searches_by_words_queueing_nothing() {
    let app = spawn_app_with(|vars| {
        vars.insert("SEMANTIC_SEARCH".into(), "on".into());
        vars.insert("EMBED_MODEL_DIR".into(), "/nonexistent/all-minilm-l6-v2".into());
    })
    .await;
    app.send_text(ADA, "Lea starts piano with Mrs. Brandt in September").await;
    let reply = app.send_text(ADA, "/search piano").await;
    assert!(reply.contains("Lea starts piano"), "{reply}");
    assert!(search(&app, ADA, "music classes for my kid?", 5).await.is_empty());
    assert_eq!(app.count("embed_queue").await, 0, "nothing to embed with: `reindex` queues them later");
}
