//! Mem0 as a memory layer, against the loopback fake Mem0: the indexing outbox through an
//! outage, rate limits and refused keys; hybrid search; deletion and erasure; the start-up
//! key check; and nothing at all without a key.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use reqwest::Method;

use crate::fake_mem0::{self, FakeMem0, Mode};
use crate::fake_twilio;
use crate::helpers::{eventually, spawn_app, spawn_app_with, start_error_with, TestApp, ADA};
use crate::media::{media_form, twilio_vars, PHOTO};

const MEM0_KEY: &str = "m0-test-key-0123456789abcdef";
/// Ada's WhatsApp id: Mem0's `user_id` for her.
const ADA_WA_ID: &str = "15551234567";

async fn spawn_with_mem0(fake: &FakeMem0, extra: &[(&str, &str)]) -> TestApp {
    let extra: Vec<(String, String)> = extra.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    spawn_with_mem0_and(fake, extra).await
}

/// As [`spawn_with_mem0`], with owned extra variables.
async fn spawn_with_mem0_and(fake: &FakeMem0, extra: Vec<(String, String)>) -> TestApp {
    let base = fake.base_url().to_string();
    spawn_app_with(move |vars| {
        vars.insert("MEM0_API_KEY".into(), MEM0_KEY.into());
        vars.insert("MEM0_BASE_URL".into(), base);
        vars.extend(extra);
    })
    .await
}

async fn in_state(app: &TestApp, state: &str) -> i64 {
    app.scalar(&format!(
        "SELECT count(*) FROM mem0_index AS i JOIN memories AS m ON m.id = i.memory_id WHERE i.state = '{state}'"
    ))
    .await
}

/// Waits until `count` memories are in `state`, moving the test clock on so that jobs
/// retried with back-off come due (the app's clock is pinned).
async fn until_in_state(app: &TestApp, state: &str, count: i64) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        if in_state(app, state).await == count {
            return;
        }
        app.clock.advance(chrono::Duration::seconds(3));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("timed out waiting for {count} memories {state} in Mem0 (now {})", in_state(app, state).await);
}

async fn memory_id_of(app: &TestApp, text: &str) -> i64 {
    app.scalar(&format!("SELECT id FROM memories WHERE text = '{text}'")).await
}

fn mem0_id_of(fake: &FakeMem0, text: &str) -> String {
    fake.memories().into_iter().find(|m| m.text == text).map(|m| m.id).expect("Mem0 holds the memory")
}

#[tokio::test]
async fn mem0_down_while_100_memories_are_saved_delays_no_reply_and_indexes_each_once_when_back() {
    let fake = fake_mem0::start(MEM0_KEY).await;
    let app = spawn_with_mem0(&fake, &[]).await;
    fake.set_mode(Mode::Fail(500));
    let mut slowest = Duration::ZERO;
    for i in 0..100 {
        let started = Instant::now();
        assert_eq!(app.send_text(ADA, &format!("note number {i}")).await, "Memory saved ✅");
        slowest = slowest.max(started.elapsed());
    }
    // Each reply left at once: nothing waits for Mem0 (whose calls may take 30 s).
    assert!(slowest < Duration::from_secs(3), "the slowest reply took {slowest:?}");
    assert_eq!(in_state(&app, "indexed").await, 0);
    assert_eq!(in_state(&app, "pending").await, 100);
    assert!(fake.add_attempts().len() >= 2, "the index jobs tried Mem0 while it was down");

    fake.set_mode(Mode::Normal);
    until_in_state(&app, "indexed", 100).await;
    let adds = fake.adds();
    let memories: HashSet<i64> = adds.iter().filter_map(|add| add.metadata["memory_id"].as_i64()).collect();
    assert_eq!(adds.len(), 100, "each memory is added once");
    assert_eq!(memories.len(), 100);
    assert!(adds.iter().all(|add| add.user_id == ADA_WA_ID && add.infer), "added for Ada, with inference");
    assert_eq!(app.count("mem0_links").await, 100);
    assert_eq!(fake.memories().len(), 100);
}

#[tokio::test]
async fn photos_and_rest_memories_reach_mem0_and_a_changed_text_replaces_its_copy() {
    let fake = fake_mem0::start(MEM0_KEY).await;
    let twilio = fake_twilio::start().await;
    let mut vars = twilio_vars(&twilio);
    vars.push(("MEM0_INFER".into(), "false".into()));
    let app = spawn_with_mem0_and(&fake, vars).await;
    let url = twilio.add_media(std::fs::read(PHOTO).unwrap(), "image/jpeg");
    let response = app.post_webhook(&media_form(ADA, "pasta night", &[(url, "image/jpeg")])).await;
    assert_eq!(response.status(), 200);
    let created = app
        .api_json(
            Method::POST,
            &format!("/memories?user_id={ADA_WA_ID}"),
            Some(serde_json::json!({"text": "Lea starts piano in September"})),
            201,
        )
        .await;
    assert_eq!(created["mem0"]["state"], "pending", "{created}");
    until_in_state(&app, "indexed", 2).await;
    let texts: HashSet<String> = fake.adds().into_iter().map(|add| add.text).collect();
    assert_eq!(texts, HashSet::from(["pasta night".to_string(), "Lea starts piano in September".to_string()]));

    let old_copy = mem0_id_of(&fake, "Lea starts piano in September");
    let id = created["id"].as_i64().unwrap();
    let body = serde_json::json!({"text": "Lea starts piano in October"});
    app.api_json(Method::PATCH, &format!("/memories/{id}"), Some(body), 200).await;
    eventually("the old copy deleted and the new text added", || async {
        fake.deleted().contains(&old_copy) && fake.memories().iter().any(|m| m.text == "Lea starts piano in October")
    })
    .await;
    until_in_state(&app, "indexed", 2).await;
}

#[tokio::test]
async fn hybrid_search_returns_what_only_mem0_finds_and_what_only_full_text_finds() {
    let fake = fake_mem0::start(MEM0_KEY).await;
    // Mem0's "semantics": dairies are milk and lactose.
    fake.teach("dairies", &["milk", "lactose"]);
    let app = spawn_with_mem0(&fake, &[]).await;
    app.send_text(ADA, "buy oat milk").await;
    app.send_text(ADA, "dairy farm trip on Sunday").await;
    until_in_state(&app, "indexed", 2).await;
    fake.add_foreign_fact(ADA_WA_ID, "Ada is lactose intolerant");

    // Full text finds the farm trip ("dairies" stems to "dairy"), Mem0 the oat milk.
    let reply = app.send_text(ADA, "/search dairies").await;
    assert!(reply.contains("buy oat milk"), "{reply}");
    assert!(reply.contains("dairy farm trip on Sunday"), "{reply}");
    assert!(reply.contains("💡 Ada is lactose intolerant (inferred by Mem0)"), "{reply}");

    let found = app.api_json(Method::GET, &format!("/memories?user_id={ADA_WA_ID}&query=dairies"), None, 200).await;
    let texts: Vec<&str> =
        found["results"].as_array().unwrap().iter().map(|r| r["memory"]["text"].as_str().unwrap()).collect();
    assert!(texts.contains(&"buy oat milk") && texts.contains(&"dairy farm trip on Sunday"), "{found}");
    for result in found["results"].as_array().unwrap() {
        assert_eq!(result["memory"]["mem0"]["state"], "indexed", "{result}");
    }
    assert_eq!(found["inferred"][0]["text"], "Ada is lactose intolerant", "{found}");
    assert!(found["inferred"][0]["mem0_id"].is_string());
}

#[tokio::test]
async fn with_mem0_hanging_search_answers_within_its_timeout_from_local_results() {
    let fake = fake_mem0::start(MEM0_KEY).await;
    let app = spawn_with_mem0(&fake, &[("MEM0_SEARCH_TIMEOUT_MS", "300")]).await;
    app.send_text(ADA, "buy oat milk").await;
    until_in_state(&app, "indexed", 1).await;
    fake.set_mode(Mode::Hang);

    let started = Instant::now();
    let reply = app.send_text(ADA, "/search milk").await;
    let chat = started.elapsed();
    assert!(reply.contains("buy oat milk"), "{reply}");
    let started = Instant::now();
    let found = app.api_json(Method::GET, &format!("/memories?user_id={ADA_WA_ID}&query=milk"), None, 200).await;
    let rest = started.elapsed();
    assert_eq!(found["results"][0]["memory"]["text"], "buy oat milk");
    // 300 ms for Mem0, and the rest of the request on a shared, loaded machine.
    assert!(chat < Duration::from_millis(2300) && rest < Duration::from_millis(2300), "chat {chat:?}, REST {rest:?}");
    assert!(chat >= Duration::from_millis(300), "Mem0 was asked and waited for: {chat:?}");
    assert_eq!(fake.searches(), 2, "both searches asked Mem0");
}

#[tokio::test]
async fn deleting_undoing_and_erasing_delete_in_mem0_too() {
    let fake = fake_mem0::start(MEM0_KEY).await;
    let app = spawn_with_mem0(&fake, &[("MEM0_INFER", "false")]).await;
    for text in ["first note", "second note", "third note"] {
        app.send_text(ADA, text).await;
    }
    until_in_state(&app, "indexed", 3).await;
    assert!(fake.adds().iter().all(|add| !add.infer), "MEM0_INFER=false stores memories as given");

    let third = mem0_id_of(&fake, "third note");
    assert_eq!(app.send_text(ADA, "/undo").await, "Deleted your last memory: “third note”");
    eventually("/undo deletes the copy in Mem0", || async { fake.deleted().contains(&third) }).await;

    let first = mem0_id_of(&fake, "first note");
    let id = memory_id_of(&app, "first note").await;
    app.api_json(Method::DELETE, &format!("/memories/{id}"), None, 204).await;
    eventually("a REST delete deletes the copy in Mem0", || async { fake.deleted().contains(&first) }).await;

    app.api_json(Method::DELETE, &format!("/users/{ADA_WA_ID}"), None, 204).await;
    eventually("erasing calls Mem0's delete-all for the user", || async {
        fake.deleted_users() == vec![ADA_WA_ID.to_string()]
    })
    .await;
    assert!(fake.memories().iter().all(|m| m.user_id != ADA_WA_ID));
    assert_eq!(app.count("mem0_index").await, 0);
    assert_eq!(app.count("mem0_links").await, 0);
}

#[tokio::test]
async fn rate_limits_wait_for_retry_after_and_a_refused_key_marks_the_memory_failed() {
    let fake = fake_mem0::start(MEM0_KEY).await;
    let app = spawn_with_mem0(&fake, &[]).await;
    fake.fail_next(1, 429);
    app.send_text(ADA, "first note").await;
    eventually("the rate-limited add", || async { fake.add_attempts().len() == 1 }).await;
    eventually("the job waiting for its retry", || async {
        app.scalar("SELECT count(*) FROM jobs WHERE kind = 'mem0.index' AND state = 'queued'").await == 1
    })
    .await;
    // Retry-After says 1 s; the default back-off would wait at least 1.5 s.
    app.clock.advance(chrono::Duration::milliseconds(1100));
    eventually("the retried add", || async { in_state(&app, "indexed").await == 1 }).await;
    assert_eq!(fake.adds().len(), 1);

    fake.set_mode(Mode::Fail(401));
    app.send_text(ADA, "second note").await;
    eventually("a refused key fails the copy at once", || async { in_state(&app, "failed").await == 1 }).await;
    let id = memory_id_of(&app, "second note").await;
    let memory = app.api_json(Method::GET, &format!("/memories/{id}"), None, 200).await;
    assert_eq!(memory["mem0"]["state"], "failed");
    assert!(memory["mem0"]["error"].as_str().unwrap().contains("Invalid API key"), "{memory}");
    let summary = app.api_json(Method::GET, "/analytics/summary", None, 200).await;
    assert_eq!(summary["mem0"], serde_json::json!({"pending": 0, "indexed": 1, "failed": 1}));
}

#[tokio::test]
async fn a_key_mem0_refuses_stops_a_production_start_and_only_warns_in_development() {
    let fake = fake_mem0::start(MEM0_KEY).await;
    let base = fake.base_url().to_string();
    let with_wrong_key = |environment: &'static str| {
        let base = base.clone();
        move |vars: &mut std::collections::HashMap<String, String>| {
            vars.insert("MEM0_API_KEY".into(), "m0-revoked-key".into());
            vars.insert("MEM0_BASE_URL".into(), base);
            vars.insert("ENV".into(), environment.into());
        }
    };
    let error = start_error_with(with_wrong_key("production")).await.expect("production refuses to start");
    assert!(error.contains("MEM0_API_KEY was refused"), "{error}");
    assert!(!error.contains("m0-revoked-key"), "the key never prints: {error}");
    assert_eq!(start_error_with(with_wrong_key("development")).await, None);
}

#[tokio::test]
async fn without_a_mem0_key_nothing_mentions_mem0() {
    let app = spawn_app().await;
    app.send_text(ADA, "buy oat milk").await;
    let id = memory_id_of(&app, "buy oat milk").await;
    let memory = app.api_json(Method::GET, &format!("/memories/{id}"), None, 200).await;
    assert!(memory.get("mem0").is_none(), "{memory}");
    let found = app.api_json(Method::GET, &format!("/memories?user_id={ADA_WA_ID}&query=milk"), None, 200).await;
    assert!(found.get("inferred").is_none(), "{found}");
    let summary = app.api_json(Method::GET, "/analytics/summary", None, 200).await;
    assert!(summary.get("mem0").is_none(), "{summary}");
    assert_eq!(app.scalar("SELECT count(*) FROM jobs WHERE kind LIKE 'mem0.%'").await, 0);
    assert_eq!(app.count("mem0_index").await, 0);
}

/// `Mem0Store` on its own, against the fake: each call as CONTRACTS.md describes it.
mod adapter {
    use std::time::Duration;

    use chrono::TimeZone;
    use whatsapp_memory::adapters::mem0::{Mem0Settings, Mem0Store};
    use whatsapp_memory::config::Secret;
    use whatsapp_memory::domain::model::{MemoryId, MemoryKind, User, UserId};
    use whatsapp_memory::domain::ports::{
        ExternalIndex, Indexing, MemoryFinder, MemoryStoreError, MemoryToIndex, Recalled,
    };

    use super::{ADA_WA_ID, MEM0_KEY};
    use crate::fake_mem0::{self, FakeMem0, Mode};

    fn store(fake: &FakeMem0, key: &str, infer: bool) -> Mem0Store {
        Mem0Store::new(Mem0Settings {
            base_url: fake.base_url().parse().unwrap(),
            api_key: Secret::new(key),
            infer,
            request_timeout: Duration::from_millis(500),
            event_wait: Duration::from_secs(5),
        })
        .unwrap()
    }

    fn ada() -> User {
        User {
            id: UserId(1),
            wa_id: ADA_WA_ID.into(),
            phone_number: "+15551234567".into(),
            display_name: None,
            timezone: None,
        }
    }

    fn memory(id: i64, text: &str) -> MemoryToIndex {
        MemoryToIndex {
            memory: MemoryId(id),
            owner: ADA_WA_ID.into(),
            kind: MemoryKind::Text,
            text: text.into(),
            created_at: chrono::Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap(),
        }
    }

    #[tokio::test]
    async fn an_inferred_add_is_pending_until_its_event_is_polled_to_success() {
        let fake = fake_mem0::start(MEM0_KEY).await;
        let mem0 = store(&fake, MEM0_KEY, true);
        mem0.check().await.unwrap();
        let Indexing::Pending(event) = mem0.index(&memory(7, "buy oat milk")).await.unwrap() else {
            panic!("an inferred add is asynchronous");
        };
        assert!(fake.memories().is_empty(), "nothing is stored before the event succeeds");
        let Indexing::Indexed(ids) = mem0.indexing_status(&event).await.unwrap() else {
            panic!("the event succeeds");
        };
        assert_eq!(ids, vec![fake.memories()[0].id.clone()]);
        let add = &fake.adds()[0];
        assert_eq!((add.user_id.as_str(), add.metadata["memory_id"].as_i64()), (ADA_WA_ID, Some(7)));

        let hits = mem0.search(&ada(), "milk", 10).await.unwrap();
        let Recalled::External(hit) = &hits[0].recalled else { panic!("a Mem0 entry") };
        assert_eq!((hit.text.as_str(), hit.source), ("buy oat milk", Some(MemoryId(7))));
    }

    #[tokio::test]
    async fn deleting_what_is_already_gone_is_done_and_delete_all_names_the_user() {
        let fake = fake_mem0::start(MEM0_KEY).await;
        let mem0 = store(&fake, MEM0_KEY, false);
        let Indexing::Indexed(ids) = mem0.index(&memory(1, "first note")).await.unwrap() else {
            panic!("an add without inference is synchronous");
        };
        mem0.delete(&ids[0]).await.unwrap();
        mem0.delete(&ids[0]).await.unwrap();
        assert_eq!(fake.deleted(), ids);
        mem0.delete_all(ADA_WA_ID).await.unwrap();
        assert_eq!(fake.deleted_users(), vec![ADA_WA_ID.to_string()]);
    }

    #[tokio::test]
    async fn failures_are_typed_and_the_key_is_never_in_them() {
        let fake = fake_mem0::start(MEM0_KEY).await;
        let wrong = store(&fake, "m0-wrong-key", true);
        let refused = wrong.check().await.unwrap_err();
        assert!(matches!(refused, MemoryStoreError::Unauthorized(_)), "{refused:?}");
        assert!(!refused.to_string().contains("m0-wrong-key"));

        let mem0 = store(&fake, MEM0_KEY, true);
        fake.fail_next(1, 429);
        let limited = mem0.index(&memory(1, "x")).await.unwrap_err();
        assert_eq!(limited.retry_after(), Some(Duration::from_secs(1)));
        fake.fail_next(1, 500);
        assert!(matches!(mem0.search(&ada(), "x", 5).await, Err(MemoryStoreError::Unavailable(_))));
        fake.set_mode(Mode::Hang);
        let hung = mem0.check().await.unwrap_err();
        assert!(hung.is_retryable() && hung.to_string().contains("timed out"), "{hung}");
        fake.set_mode(Mode::Normal);
        assert!(matches!(mem0.indexing_status("no-such-event").await, Err(MemoryStoreError::NotFound(_))));
    }
}

/// `whatsapp-memory mem0 backfill`: copies Mem0 refused for good (a key it did not take)
/// are queued again, and the running server's workers index each once; a second run has
/// nothing left to queue.
#[tokio::test]
async fn mem0_backfill_queues_failed_copies_again_and_the_running_server_indexes_them() {
    let fake = fake_mem0::start(MEM0_KEY).await;
    let app = spawn_with_mem0(&fake, &[]).await;
    fake.set_mode(Mode::Fail(401));
    for text in ["plumber Tom, 0176 555 0101", "electrician Ana comes Tuesday", "boiler service in May"] {
        app.send_text(ADA, text).await;
    }
    until_in_state(&app, "failed", 3).await;
    assert!(fake.memories().is_empty());

    fake.set_mode(Mode::Normal);
    let backfill = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_whatsapp-memory"))
            .args(["mem0", "backfill"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", &app.database_url)
            .env("MEM0_API_KEY", MEM0_KEY)
            .env("MEM0_BASE_URL", fake.base_url())
            .env("RUST_LOG", "warn")
            .output()
            .expect("the binary runs")
    };
    let first = backfill();
    let said = String::from_utf8_lossy(&first.stderr);
    assert!(first.status.success(), "{said}");
    assert!(said.contains("queued 3 memories"), "{said}");
    // The command queues them due now (the real now); the app's clock is pinned earlier.
    let app_now = whatsapp_memory::domain::ports::Clock::now(&*app.clock);
    app.clock.advance(chrono::Utc::now() - app_now + chrono::Duration::seconds(1));
    until_in_state(&app, "indexed", 3).await;
    let mut held: Vec<String> = fake.memories().into_iter().map(|m| m.text).collect();
    held.sort();
    assert_eq!(held, ["boiler service in May", "electrician Ana comes Tuesday", "plumber Tom, 0176 555 0101"]);

    let second = backfill();
    assert!(String::from_utf8_lossy(&second.stderr).contains("queued 0 memories"));
}
