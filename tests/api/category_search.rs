//! Search by meaning finds categories (issue 15): a query that names a category of things
//! ("grocery list", "home repairs") finds the notes that list them one by one ("Buy milk
//! and eggs", the plumber, the electrician), through the real server, model and database.
//! The set is `tests/fixtures/category_search.json`, and `category_search_holdout.json`
//! holds other queries over other notes that the settings were never tuned on; their
//! recall@5 is also a `make bench` figure (`examples/category_recall.rs`).

use std::collections::HashMap;

use sea_orm::{ConnectionTrait, Statement};
use serde_json::Value;
use whatsapp_memory::adapters::db::Database;

use crate::helpers::{TestApp, ADA};
use crate::semantic::{create, search, semantic_app, user_id};

const CATEGORIES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/category_search.json");
const HOLDOUT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/category_search_holdout.json");

/// The share of each query's notes found in its first five results, averaged over the
/// queries, that search must keep: measured 0.481 with the single similarity floor of
/// before, 0.567 with issue 15's first selection (cosine only) and 0.600 with hubness
/// correction (`SemanticSettings`, `bench/README.md`), less a margin of about one
/// query's notes. The target is 0.8, which all-MiniLM-L6-v2 does not reach;
/// raise this floor with whatever raises the figure.
const RECALL_AT_5_FLOOR: f64 = 0.58;

/// The same for the held-out set, which the settings were never tuned on: measured 0.825
/// end to end, less a margin of one query's notes.
const HOLDOUT_RECALL_AT_5_FLOOR: f64 = 0.77;

struct Category {
    query: String,
    notes: Vec<String>,
}

fn category_set(path: &str) -> (Vec<Category>, Vec<String>) {
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let strings = |v: &Value| v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect::<Vec<_>>();
    let queries = fixture["queries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| Category { query: q["query"].as_str().unwrap().into(), notes: strings(&q["notes"]) })
        .collect();
    (queries, strings(&fixture["distractors"]))
}

/// Waits for the indexer to embed `count` memories: over a hundred notes take a while on
/// two cores shared with the rest of the suite, longer than `eventually` waits. Looks once
/// a second, and a look the busy database fails (the whole suite shares one PostgreSQL
/// server) only means looking again.
async fn wait_for_all_embeddings(app: &TestApp, count: i64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    let sql = Statement::from_string(app.db.get_database_backend(), "SELECT count(*) FROM memory_embeddings");
    loop {
        let embedded = match app.db.query_one_raw(sql.clone()).await {
            Ok(Some(row)) => row.try_get_by_index::<i64>(0).unwrap_or(0),
            Ok(None) | Err(_) => 0,
        };
        if embedded >= count {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {count} embeddings ({embedded} so far)");
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// Saves the set's notes and distractors for Ada, searches each query through the server,
/// and returns recall@5 and a line per query that missed some of its notes.
async fn category_recall(path: &str) -> (usize, f64, Vec<String>) {
    let app = semantic_app().await;
    let (categories, distractors) = category_set(path);
    let mut ids: HashMap<String, i64> = HashMap::new();
    for note in categories.iter().flat_map(|c| &c.notes).chain(&distractors) {
        ids.insert(note.clone(), create(&app, ADA, note).await);
    }
    wait_for_all_embeddings(&app, ids.len() as i64).await;

    let database = Database::open(&app.database_url, false).await.unwrap();
    let ada = database.reads.find_user(&user_id(ADA)).await.unwrap().expect("Ada exists");
    let (mut recall, mut misses) = (0.0, Vec::new());
    for category in &categories {
        let wanted: Vec<i64> = category.notes.iter().map(|note| ids[note]).collect();
        // The set's rule: words alone cannot find a category's notes, only meaning can.
        let words_only = database.memory_store.search(&ada, &category.query, 5).await.unwrap();
        let by_words: Vec<&str> = words_only
            .iter()
            .filter_map(|hit| hit.recalled.memory())
            .filter(|m| wanted.contains(&m.id.0))
            .map(|m| m.text.as_str())
            .collect();
        assert!(by_words.is_empty(), "full text alone found {by_words:?} for {:?}", category.query);
        let found = search(&app, ADA, &category.query, 5).await;
        let hits = wanted.iter().filter(|id| found.iter().any(|(f, _, _)| f == *id)).count();
        recall += hits as f64 / wanted.len() as f64;
        if hits < wanted.len() {
            let got: Vec<&str> = found.iter().map(|(_, text, _)| text.as_str()).collect();
            misses.push(format!("{:?} found {hits} of {:?}: {got:?}", category.query, category.notes));
        }
    }
    (categories.len(), recall / categories.len() as f64, misses)
}

#[tokio::test]
async fn a_query_naming_a_category_finds_the_notes_of_that_category() {
    let (queries, recall, misses) = category_recall(CATEGORIES).await;
    assert!(queries >= 40, "the issue asks for at least 40 category queries");
    eprintln!("category recall@5 {recall:.3} over {queries} queries");
    assert!(
        recall >= RECALL_AT_5_FLOOR,
        "category recall@5 {recall:.3} < {RECALL_AT_5_FLOOR}; misses:\n{}",
        misses.join("\n")
    );
}

#[tokio::test]
async fn category_queries_over_notes_the_settings_were_not_tuned_on_find_their_notes_too() {
    let (queries, recall, misses) = category_recall(HOLDOUT).await;
    assert!(queries >= 20);
    eprintln!("held-out category recall@5 {recall:.3} over {queries} queries");
    assert!(
        recall >= HOLDOUT_RECALL_AT_5_FLOOR,
        "held-out category recall@5 {recall:.3} < {HOLDOUT_RECALL_AT_5_FLOOR}; misses:\n{}",
        misses.join("\n")
    );
}
