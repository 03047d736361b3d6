//! Group commit: units of work waiting together share one transaction, one savepoint
//! each, so a failing one rolls back alone and the others commit; and a message
//! acknowledged with a 200 is a message stored, however many arrive at once.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::Utc;
use futures::future::BoxFuture;
use sea_orm::{ConnectionTrait, Statement};
use whatsapp_memory::adapters::db::Database;
use whatsapp_memory::domain::model::{InboundMessage, MessageSid, UserId};
use whatsapp_memory::domain::ports::{Repository, RepositoryError, TextToSave, UnitOfWork, Work};

use crate::helpers::*;
use whatsapp_memory::simulate::twiml_messages;

fn work(
    f: impl for<'t> FnOnce(&'t mut dyn UnitOfWork) -> BoxFuture<'t, Result<(), RepositoryError>> + Send + 'static,
) -> Work {
    Box::new(f)
}

/// Creates the user `wa_id`, then fails as `failure` says (or not).
fn create_user(wa_id: &'static str, failure: Option<Failure>) -> Work {
    work(move |tx| {
        Box::pin(async move {
            let user = tx.find_or_create_user(wa_id, &format!("+{wa_id}"), None, Utc::now()).await?;
            match failure {
                None => Ok(()),
                Some(Failure::Refused) => Err(RepositoryError::Conflict("refused after writing".into())),
                // A statement the database rejects (no such user): on PostgreSQL the
                // transaction is then in the aborted state until its savepoint is undone.
                Some(Failure::Statement) => {
                    tx.insert_inbound(UserId(user.id.0 + 1_000_000), &text_message()).await.map(drop)
                }
                Some(Failure::Panic) => panic!("a handler bug"),
            }
        })
    })
}

#[derive(Clone, Copy)]
enum Failure {
    Refused,
    Statement,
    Panic,
}

/// A text message; the user it is stored under is the caller's choice.
fn text_message() -> InboundMessage {
    InboundMessage {
        sid: MessageSid(whatsapp_memory::simulate::new_message_sid()),
        wa_id: "15550000000".into(),
        phone_number: "+15550000000".into(),
        profile_name: None,
        body: "hello".into(),
        message_type: "text".into(),
        media: Vec::new(),
        location: None,
        raw_form: serde_json::json!({}),
        received_at: Utc::now(),
        channel: Default::default(),
    }
}

async fn users_named(db: &Database, names: &[&str]) -> HashSet<String> {
    let list = names.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", ");
    let rows = db
        .pool
        .query_all_raw(Statement::from_string(
            db.pool.get_database_backend(),
            format!("SELECT wa_id FROM users WHERE wa_id IN ({list})"),
        ))
        .await
        .unwrap();
    rows.iter().map(|row| row.try_get::<String>("", "wa_id").unwrap()).collect()
}

#[tokio::test]
async fn a_failing_unit_of_work_in_a_group_rolls_back_alone() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(&dir).await;
    let db = Database::open(&url, true).await.unwrap();
    let repository: Arc<dyn Repository> = db.repository.clone();
    // Submitted together (this runtime has one thread: all are queued before the writer
    // runs), so they share one group transaction.
    let (ok_a, refused, bad_statement, panicked, ok_b) = tokio::join!(
        repository.run_in_transaction(create_user("group_a", None)),
        repository.run_in_transaction(create_user("group_refused", Some(Failure::Refused))),
        repository.run_in_transaction(create_user("group_statement", Some(Failure::Statement))),
        repository.run_in_transaction(create_user("group_panic", Some(Failure::Panic))),
        repository.run_in_transaction(create_user("group_b", None)),
    );
    ok_a.unwrap();
    ok_b.unwrap();
    assert!(matches!(refused, Err(RepositoryError::Conflict(_))), "{refused:?}");
    assert!(bad_statement.is_err(), "the rejected statement is the work's error");
    assert!(matches!(panicked, Err(RepositoryError::Internal(_))), "{panicked:?}");
    let names = ["group_a", "group_refused", "group_statement", "group_panic", "group_b"];
    assert_eq!(users_named(&db, &names).await, HashSet::from(["group_a".to_string(), "group_b".to_string()]));

    // A failure last in the group is undone too (COMMIT must not carry it).
    let (ok_c, refused_last) = tokio::join!(
        repository.run_in_transaction(create_user("group_c", None)),
        repository.run_in_transaction(create_user("group_last", Some(Failure::Statement))),
    );
    ok_c.unwrap();
    assert!(refused_last.is_err());
    assert_eq!(users_named(&db, &["group_c", "group_last"]).await, HashSet::from(["group_c".to_string()]));
}

/// On PostgreSQL the writer task awaits the network, so a test can hold a group open and
/// look at it from outside: its members' rows are invisible until the one COMMIT.
#[tokio::test]
async fn on_postgresql_units_of_work_waiting_together_commit_in_one_transaction() {
    if std::env::var("TEST_DATABASE_URL").is_err() {
        // SQLite's writer refuses work that awaits anything but its transaction (a unit
        // test of its own shows it); its group commit is older and measured by `make bench`.
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(&dir).await;
    let db = Database::open(&url, true).await.unwrap();
    let repository: Arc<dyn Repository> = db.repository.clone();
    let (started, is_started) = tokio::sync::oneshot::channel::<()>();
    let (release, is_released) = tokio::sync::oneshot::channel::<()>();
    // Last in the group: writes, then holds the transaction open until released.
    let holder = work(move |tx| {
        Box::pin(async move {
            tx.find_or_create_user("group_holder", "+1", None, Utc::now()).await?;
            let _ = started.send(());
            let _ = is_released.await;
            Ok(())
        })
    });
    let names = ["group_first", "group_refused", "group_second", "group_holder"];
    let look_from_outside = async {
        is_started.await.unwrap();
        let while_open = users_named(&db, &names).await;
        release.send(()).unwrap();
        while_open
    };
    let (first, refused, second, held, while_open) = tokio::join!(
        repository.run_in_transaction(create_user("group_first", None)),
        repository.run_in_transaction(create_user("group_refused", Some(Failure::Statement))),
        repository.run_in_transaction(create_user("group_second", None)),
        repository.run_in_transaction(holder),
        look_from_outside,
    );
    assert!(while_open.is_empty(), "rows committed before the group's COMMIT: {while_open:?}");
    first.unwrap();
    second.unwrap();
    held.unwrap();
    assert!(refused.is_err());
    let expected: HashSet<String> =
        ["group_first", "group_second", "group_holder"].into_iter().map(String::from).collect();
    assert_eq!(users_named(&db, &names).await, expected);
}

/// A fresh PostgreSQL database opened as the server opens it (and the directory its
/// files live in), or `None` on SQLite: for what only PostgreSQL's writer does.
async fn postgres_only() -> Option<(tempfile::TempDir, Database)> {
    std::env::var("TEST_DATABASE_URL").ok()?;
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(&dir).await;
    let db = Database::open(&url, true).await.unwrap();
    Some((dir, db))
}

/// The one number `sql` answers.
async fn count(db: &Database, sql: &str) -> i64 {
    let row = db.pool.query_one_raw(Statement::from_string(db.pool.get_database_backend(), sql)).await.unwrap();
    row.unwrap().try_get_by_index::<i64>(0).unwrap()
}

/// On PostgreSQL each writer lane begins its next transaction before it waits for work
/// (BEGIN is then not in the turn); with no work it ends that empty transaction within
/// about a second and begins another. A quiet server keeps no transaction open for long,
/// and work that comes after a quiet spell commits as ever.
#[tokio::test]
async fn on_postgresql_an_idle_writer_keeps_no_transaction_open_and_commits_what_comes_next() {
    let Some((_dir, db)) = postgres_only().await else { return };
    let repository: Arc<dyn Repository> = db.repository.clone();
    repository.run_in_transaction(create_user("idle_before", None)).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    let open = count(
        &db,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND pid <> pg_backend_pid() AND xact_start < now() - interval '3 seconds'",
    )
    .await;
    assert_eq!(open, 0, "a transaction of the idle writer stayed open for more than 3 s");
    repository.run_in_transaction(create_user("idle_after", None)).await.unwrap();
    let expected: HashSet<String> = ["idle_before", "idle_after"].into_iter().map(String::from).collect();
    assert_eq!(users_named(&db, &["idle_before", "idle_after"]).await, expected);
}

/// The transaction a lane begins before its work comes can lose its connection in the
/// meantime (the database restarted, an administrator ended the session). Nothing has
/// run in it yet, so the work that comes next is not failed for it: a unit of work gets
/// a new transaction, and texts are declined to the step by step path, not refused.
#[tokio::test]
async fn on_postgresql_work_after_the_writers_connections_were_cut_still_commits() {
    let Some((_dir, db)) = postgres_only().await else { return };
    let repository: Arc<dyn Repository> = db.repository.clone();
    repository.run_in_transaction(create_user("cut_before", None)).await.unwrap();
    let cut = |db| {
        count(
            db,
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = current_database() AND state = 'idle in transaction'",
        )
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(cut(&db).await > 0, "no lane had its next transaction begun");
    repository.run_in_transaction(create_user("cut_after", None)).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(cut(&db).await > 0, "no lane had its next transaction begun");
    let text = repository.save_text_at_once(to_save("cut_before", "said after the cut")).await;
    assert!(text.is_ok(), "a text was refused for a connection lost before it came: {text:?}");
    let expected: HashSet<String> = ["cut_before", "cut_after"].into_iter().map(String::from).collect();
    assert_eq!(users_named(&db, &["cut_before", "cut_after"]).await, expected);
}

/// Many messages at once from many senders, on either database: every 200 is a stored
/// message and a stored memory, each exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_message_of_a_burst_is_stored_once() {
    let app = Arc::new(spawn_app().await);
    let forms: Vec<_> =
        (0..300).map(|i| text_form(&format!("+1555010{:04}", i % 30), &format!("burst note {i}"))).collect();
    let sids: Vec<String> = forms
        .iter()
        .map(|form| form.iter().find(|(k, _)| k == "MessageSid").map(|(_, v)| v.clone()).unwrap())
        .collect();
    let semaphore = Arc::new(tokio::sync::Semaphore::new(32));
    let tasks: Vec<_> = forms
        .into_iter()
        .map(|form| {
            let app = app.clone();
            let semaphore = semaphore.clone();
            tokio::spawn(async move {
                let _permit = semaphore.acquire().await.unwrap();
                let response = app.post_webhook(&form).await;
                let status = response.status().as_u16();
                let body = response.text().await.unwrap_or_default();
                (status, body)
            })
        })
        .collect();
    let mut acknowledged = 0;
    for task in tasks {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("Memory saved"), "{body}");
        acknowledged += 1;
    }
    assert_eq!(acknowledged, 300);
    assert_eq!(app.scalar("SELECT count(*) FROM interactions WHERE direction = 'inbound'").await, 300);
    assert_eq!(app.scalar("SELECT count(DISTINCT twilio_message_sid) FROM interactions").await, 300);
    assert_eq!(app.count("memories").await, 300);
    assert_eq!(app.scalar("SELECT count(DISTINCT text) FROM memories").await, 300);
    let listed = sids.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(", ");
    let stored = app.scalar(&format!("SELECT count(*) FROM interactions WHERE twilio_message_sid IN ({listed})")).await;
    assert_eq!(stored, 300);
}

/// Every row a saved text leaves (`body` is unique among the messages sent): the inbound
/// message with its reply, one outbound reply to it, and one text memory of it, all
/// under one user. 1 when each is there exactly once, as the step by step path stores it.
async fn stored_as_a_saved_text(app: &TestApp, body: &str, reply: &str) -> [i64; 3] {
    let inbound = format!(
        "SELECT count(*) FROM interactions WHERE body = '{body}' AND direction = 'inbound' \
         AND reply = '{reply}' AND message_type = 'text' AND raw_form IS NOT NULL \
         AND twilio_message_sid IS NOT NULL AND in_reply_to IS NULL AND delivery_status IS NULL"
    );
    let outbound = format!(
        "SELECT count(*) FROM interactions o JOIN interactions i ON o.in_reply_to = i.id \
         WHERE i.body = '{body}' AND o.direction = 'outbound' AND o.body = i.reply \
         AND o.user_id = i.user_id AND o.twilio_message_sid IS NULL AND o.message_type = 'text' \
         AND o.id > i.id"
    );
    let memory = format!(
        "SELECT count(*) FROM memories m JOIN interactions i ON m.interaction_id = i.id \
         WHERE i.body = '{body}' AND m.text = '{body}' AND m.kind = 'text' AND m.user_id = i.user_id \
         AND m.media_asset_id IS NULL AND m.labels IS NULL AND m.extracted_text IS NULL"
    );
    [app.scalar(&inbound).await, app.scalar(&outbound).await, app.scalar(&memory).await]
}

/// On PostgreSQL a text from a sender already known is stored in one statement with the
/// texts waiting beside it (`Repository::save_text_at_once`); a first message, a redelivery and a changed profile name take
/// the step by step path. Both must store the same rows, on both databases.
#[tokio::test]
async fn a_text_from_a_known_sender_is_stored_as_a_first_message_is() {
    let app = spawn_app().await;
    assert_eq!(app.send_text(ADA, "buy milk").await, "Memory saved ✅");
    let known = text_form(ADA, "buy eggs");
    let response = app.post_webhook(&known).await;
    assert_eq!(response.status(), 200);
    assert_eq!(twiml_messages(&response.text().await.unwrap()), vec!["Memory saved ✅"]);
    for body in ["buy milk", "buy eggs"] {
        assert_eq!(stored_as_a_saved_text(&app, body, "Memory saved ✅").await, [1, 1, 1], "{body}");
    }
    // A redelivery answers as before and stores nothing more.
    let response = app.post_webhook(&known).await;
    assert_eq!(twiml_messages(&response.text().await.unwrap()), vec!["Memory saved ✅"]);
    assert_eq!(stored_as_a_saved_text(&app, "buy eggs", "Memory saved ✅").await, [1, 1, 1]);
    assert_eq!(app.count("memories").await, 2);
    // A new profile name is kept, and the text saved with it.
    let renamed = with_field(text_form(ADA, "buy bread"), "ProfileName", "Ada L.");
    assert_eq!(app.post_webhook(&renamed).await.status(), 200);
    assert_eq!(stored_as_a_saved_text(&app, "buy bread", "Memory saved ✅").await, [1, 1, 1]);
    assert_eq!(app.scalar("SELECT count(*) FROM users WHERE display_name = 'Ada L.'").await, 1);
    assert_eq!(app.count("users").await, 1);
}

/// With semantic search on, a text saved at once is queued for its embedding as a
/// first message's is (or already embedded, if the indexer was idle enough).
#[tokio::test]
async fn a_text_saved_at_once_is_queued_for_its_embedding() {
    let model = concat!(env!("CARGO_MANIFEST_DIR"), "/models/all-minilm-l6-v2").to_string();
    let app = spawn_app_with(|vars| {
        vars.insert("SEMANTIC_SEARCH".into(), "on".into());
        vars.insert("EMBED_MODEL_DIR".into(), model);
    })
    .await;
    for body in ["buy milk", "buy eggs"] {
        assert_eq!(app.send_text(ADA, body).await, "Memory saved ✅");
        let indexed = format!(
            "SELECT count(*) FROM memories m WHERE m.text = '{body}' AND (m.id IN (SELECT memory_id FROM \
             embed_queue) OR m.id IN (SELECT memory_id FROM memory_embeddings))"
        );
        assert_eq!(app.scalar(&indexed).await, 1, "{body}");
    }
}

/// A text to save at once from `wa_id`, with `body` as its text and memory.
fn to_save(wa_id: &str, body: &str) -> TextToSave {
    let mut message = text_message();
    message.wa_id = wa_id.into();
    message.phone_number = format!("+{wa_id}");
    message.body = body.into();
    TextToSave { message, text: body.into(), reply: "Memory saved ✅".into(), queue_embedding: false, now: Utc::now() }
}

/// How many rows `body` left: inbound messages, outbound replies to them, memories.
async fn rows_of(db: &Database, body: &str) -> [i64; 3] {
    let count = |sql: String| async move {
        let row = db.pool.query_one_raw(Statement::from_string(db.pool.get_database_backend(), sql)).await.unwrap();
        row.unwrap().try_get_by_index::<i64>(0).unwrap()
    };
    [
        count(format!("SELECT count(*) FROM interactions WHERE body = '{body}' AND direction = 'inbound'")).await,
        count(format!(
            "SELECT count(*) FROM interactions o JOIN interactions i ON o.in_reply_to = i.id \
             WHERE i.body = '{body}' AND o.direction = 'outbound'"
        ))
        .await,
        count(format!("SELECT count(*) FROM memories WHERE text = '{body}'")).await,
    ]
}

/// Texts waiting together are stored by one statement on PostgreSQL: each from a known
/// sender once, under that sender; a stranger's, and a second copy of a sid sent at the
/// same time, are declined with nothing stored (their callers take the step by step
/// path, which creates the stranger and answers the copy as a redelivery). SQLite
/// declines every text.
#[tokio::test]
async fn texts_saved_together_store_each_once_and_decline_what_they_do_not_cover() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(&dir).await;
    let db = Database::open(&url, true).await.unwrap();
    let repository: Arc<dyn Repository> = db.repository.clone();
    repository.run_in_transaction(create_user("together_a", None)).await.unwrap();
    repository.run_in_transaction(create_user("together_b", None)).await.unwrap();
    let b = to_save("together_b", "note b");
    // Submitted together (this runtime has one thread: all are queued before the writer
    // runs), so one statement stores them.
    let (a, b, b_again, stranger) = tokio::join!(
        repository.save_text_at_once(to_save("together_a", "note a")),
        repository.save_text_at_once(b.clone()),
        repository.save_text_at_once(b),
        repository.save_text_at_once(to_save("together_stranger", "note c")),
    );
    let (a, b, b_again, stranger) = (a.unwrap(), b.unwrap(), b_again.unwrap(), stranger.unwrap());
    assert_eq!(stranger, None);
    assert_eq!(rows_of(&db, "note c").await, [0, 0, 0]);
    if std::env::var("TEST_DATABASE_URL").is_err() {
        assert_eq!((a, b, b_again), (None, None, None), "SQLite declines");
        assert_eq!(rows_of(&db, "note a").await, [0, 0, 0]);
        return;
    }
    let a = a.expect("a known sender's text is stored");
    assert_eq!(rows_of(&db, "note a").await, [1, 1, 1]);
    assert_eq!(b.is_some() as u8 + b_again.is_some() as u8, 1, "one copy of a sid stored: {b:?} {b_again:?}");
    assert_eq!(rows_of(&db, "note b").await, [1, 1, 1]);
    let owner = db
        .pool
        .query_one_raw(Statement::from_string(
            db.pool.get_database_backend(),
            format!("SELECT u.wa_id FROM interactions i JOIN users u ON u.id = i.user_id WHERE i.id = {}", a.inbound.0),
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<String>("", "wa_id")
        .unwrap();
    assert_eq!((owner.as_str(), a.user.0 > 0), ("together_a", true));
}

/// Refuses to insert a memory whose text is 'boom' (a stand-in for any value PostgreSQL
/// rejects), so a test can make the statement that stores texts together fail.
const REFUSE_BOOM: &str = "CREATE FUNCTION refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$ \
     BEGIN IF NEW.text = 'boom' THEN RAISE EXCEPTION 'boom refused'; END IF; RETURN NEW; END $$; \
     CREATE TRIGGER refuse_boom BEFORE INSERT ON memories FOR EACH ROW EXECUTE FUNCTION refuse_boom()";

/// When the statement that stores texts together fails, nothing of it stays and every
/// text in it is declined, so that each is stored step by step in its own savepoint.
#[tokio::test]
async fn when_texts_saved_together_fail_nothing_of_them_stays_and_each_is_declined() {
    if std::env::var("TEST_DATABASE_URL").is_err() {
        return; // SQLite declines every text (see the test above).
    }
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(&dir).await;
    let db = Database::open(&url, true).await.unwrap();
    let repository: Arc<dyn Repository> = db.repository.clone();
    repository.run_in_transaction(create_user("refused_a", None)).await.unwrap();
    db.pool.execute_unprepared(REFUSE_BOOM).await.unwrap();
    let (a, boom, b, created) = tokio::join!(
        repository.save_text_at_once(to_save("refused_a", "note a")),
        repository.save_text_at_once(to_save("refused_a", "boom")),
        repository.save_text_at_once(to_save("refused_a", "note b")),
        // A unit of work in the same group still runs and commits.
        repository.run_in_transaction(create_user("refused_after", None)),
    );
    assert_eq!((a.unwrap(), boom.unwrap(), b.unwrap()), (None, None, None));
    created.unwrap();
    for body in ["note a", "boom", "note b"] {
        assert_eq!(rows_of(&db, body).await, [0, 0, 0], "{body}");
    }
    assert_eq!(users_named(&db, &["refused_after"]).await.len(), 1);
}

/// Through the webhook, a burst of texts from known senders with one the database
/// refuses: that one fails alone (not acknowledged, nothing of it stored), every other
/// is acknowledged and stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_text_in_a_burst_fails_alone() {
    if std::env::var("TEST_DATABASE_URL").is_err() {
        return; // Only PostgreSQL stores texts together.
    }
    let app = Arc::new(spawn_app().await);
    let phones: Vec<String> = (0..8).map(|i| format!("+1555020{i:04}")).collect();
    for phone in &phones {
        assert_eq!(app.send_text(phone, "hello").await, "Memory saved ✅");
    }
    app.db.execute_unprepared(REFUSE_BOOM).await.unwrap();
    let bodies: Vec<String> =
        (0..64).map(|i| if i == 20 { "boom".to_string() } else { format!("burst text {i}") }).collect();
    let tasks: Vec<_> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            let (app, form) = (app.clone(), text_form(&phones[i % phones.len()], body));
            tokio::spawn(async move { app.post_webhook(&form).await.status().as_u16() })
        })
        .collect();
    for (task, body) in tasks.into_iter().zip(&bodies) {
        let status = task.await.unwrap();
        if body == "boom" {
            assert_ne!(status, 200, "the refused text is not acknowledged");
        } else {
            assert_eq!(status, 200, "{body}");
            assert_eq!(stored_as_a_saved_text(&app, body, "Memory saved ✅").await, [1, 1, 1], "{body}");
        }
    }
    assert_eq!(app.scalar("SELECT count(*) FROM interactions WHERE body = 'boom'").await, 0);
    assert_eq!(app.count("memories").await, 8 + 63);
}
