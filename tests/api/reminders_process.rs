//! Reminders from the real binary as a process, on the system clock, counted at the
//! loopback fake Twilio: one due while the server is stopped arrives once after it starts,
//! marked late; `kill -9` while reminders are being sent still delivers each exactly once;
//! and (PostgreSQL) two servers on one database deliver each of 200 reminders due in the
//! same second exactly once.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use futures::StreamExt;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};

use crate::fake_twilio::{self, FakeTwilio};
use crate::helpers::*;
use crate::process::{twilio_signature, Server};

/// How every free-form reminder begins.
const REMINDER: &str = "⏰ Reminder: ";

/// A `serve` process with 2-second job leases and `vars` besides, loading no model: the
/// reminders' jobs are the only work (no embedding job per memory, no Whisper to load).
fn start_server(database_url: &str, twilio: &FakeTwilio, dir: &std::path::Path, vars: &[(&str, &str)]) -> Server {
    let mut all = vec![("SEMANTIC_SEARCH", "off"), ("TRANSCRIBER", "none")];
    all.extend_from_slice(vars);
    Server::start_with_vars(database_url, twilio, dir, 2, &all)
}

/// Writes "hello" from `phone` to `server`'s webhook, signed as Twilio would. It makes
/// `phone` a user and opens WhatsApp's 24-hour window, so reminders to it go out
/// free-form (a user who never wrote gets none: see `reminders.rs`).
async fn say_hello(server: &Server, twilio: &FakeTwilio, phone: &str) {
    let form = text_form(phone, "hello");
    let response = reqwest::Client::new()
        .post(format!("{}/webhook", server.address))
        .header("X-Twilio-Signature", twilio_signature(twilio.auth_token(), &form))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "the webhook refused {phone}'s hello");
}

/// `POST /reminders` for `phone`: `text` at `at`. Returns the created reminder.
async fn create_reminder(address: &str, phone: &str, text: &str, at: DateTime<Utc>) -> serde_json::Value {
    let response = reqwest::Client::new()
        .post(format!("{address}/reminders"))
        .query(&[("user_id", phone)])
        .bearer_auth(API_KEY)
        .json(&serde_json::json!({ "text": text, "at": at.to_rfc3339() }))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body = response.text().await.unwrap();
    assert_eq!(status, 201, "POST /reminders ({text}, at {at}): {body}");
    serde_json::from_str(&body).unwrap()
}

/// How often the fake accepted each reminder, by body.
fn reminders_by_body(twilio: &FakeTwilio) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for message in twilio.sent().into_iter().filter(|m| m.body.starts_with(REMINDER)) {
        *counts.entry(message.body).or_default() += 1;
    }
    counts
}

/// A single number from the database, e.g. a count; SQLite or PostgreSQL alike.
async fn scalar(db: &DatabaseConnection, sql: &str) -> i64 {
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql.to_string()))
        .await
        .unwrap()
        .expect("one row");
    row.try_get_by_index::<i64>(0).unwrap()
}

/// Sleeps until the system clock reads `instant` (at once when it has passed).
async fn sleep_until(instant: DateTime<Utc>) {
    if let Ok(left) = (instant - Utc::now()).to_std() {
        tokio::time::sleep(left).await;
    }
}

/// Waits for `count` distinct reminders at the fake, then a while longer (more than a
/// job lease) so that one sent twice has the time to show; returns them by body.
async fn settled_reminders(twilio: &FakeTwilio, count: usize) -> HashMap<String, usize> {
    eventually(&format!("{count} reminders delivered"), || async { reminders_by_body(twilio).len() >= count }).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    reminders_by_body(twilio)
}

/// `REMINDER_LATE_AFTER` of the late-reminder test: short, so the test takes seconds.
const LATE_AFTER_SECONDS: i64 = 4;

#[tokio::test]
async fn a_reminder_due_while_the_server_is_stopped_arrives_once_after_it_starts_marked_late() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = fresh_database_url(&dir).await;
    let twilio = fake_twilio::start().await;
    let late_after = format!("{LATE_AFTER_SECONDS}s");
    let vars = [("REMINDER_LATE_AFTER", late_after.as_str())];

    let mut first = start_server(&database_url, &twilio, dir.path(), &vars);
    first.wait_until_ready().await;
    say_hello(&first, &twilio, ADA).await;
    let due = (Utc::now() + TimeDelta::seconds(4)).trunc_subsecs(0);
    let missed = create_reminder(&first.address, ADA, "water the plants", due).await;
    first.stop();
    assert!(Utc::now() < due, "the server took too long to stop: the reminder came due while it ran");

    // Down past the due time and past REMINDER_LATE_AFTER.
    sleep_until(due + TimeDelta::seconds(LATE_AFTER_SECONDS + 1)).await;
    assert!(twilio.sent().is_empty(), "sent while no server ran: {:?}", twilio.sent());
    let second = start_server(&database_url, &twilio, dir.path(), &vars);
    second.wait_until_ready().await;
    // Its twin, due while this server runs, is not marked: the mark is about lateness.
    let on_time_at = (Utc::now() + TimeDelta::seconds(3)).trunc_subsecs(0);
    create_reminder(&second.address, ADA, "feed the cat", on_time_at).await;

    let sent = settled_reminders(&twilio, 2).await;
    let late = format!("{REMINDER}water the plants (late: was due {})", missed["local_time"].as_str().unwrap());
    let on_time = format!("{REMINDER}feed the cat");
    assert_eq!(sent, HashMap::from([(late, 1), (on_time, 1)]));
    assert_eq!(twilio.sent().len(), 2, "{:?}", twilio.sent());
    let db = sea_orm::Database::connect(&database_url).await.unwrap();
    assert_eq!(scalar(&db, "SELECT count(*) FROM reminders WHERE status = 'done'").await, 2);
}

#[tokio::test]
async fn kill_9_while_reminders_are_being_sent_delivers_each_exactly_once() {
    const USERS: usize = 24;
    let dir = tempfile::tempdir().unwrap();
    let database_url = fresh_database_url(&dir).await;
    let twilio = fake_twilio::start().await;
    let phones: Vec<String> = (0..USERS).map(|i| format!("+1555300{i:04}")).collect();

    let mut first = start_server(&database_url, &twilio, dir.path(), &[]);
    first.wait_until_ready().await;
    for phone in &phones {
        say_hello(&first, &twilio, phone).await;
    }
    let due = (Utc::now() + TimeDelta::seconds(4)).trunc_subsecs(0);
    let address = first.address.clone();
    futures::stream::iter(phones.iter().enumerate())
        .map(|(i, phone)| {
            let address = address.clone();
            async move { create_reminder(&address, phone, &format!("call back number {i}"), due).await }
        })
        .buffer_unordered(4)
        .collect::<Vec<_>>()
        .await;
    // Twilio accepts each send at once and answers 1.5 s later: a kill now lands between
    // a send being accepted and the server hearing (and recording) it.
    twilio.set_send_delay(Duration::from_millis(1500));
    eventually("the first reminders accepted", || async { twilio.sent().len() >= 6 }).await;
    first.kill_9();

    let db = sea_orm::Database::connect(&database_url).await.unwrap();
    let accepted = twilio.sent().len() as i64;
    let recorded = scalar(&db, "SELECT count(*) FROM reminders WHERE status = 'done'").await;
    assert!(recorded < accepted, "the kill did not land mid-send ({accepted} accepted, {recorded} recorded)");
    assert!(accepted < USERS as i64, "the kill came after every send ({accepted} accepted)");

    twilio.set_send_delay(Duration::ZERO);
    let second = start_server(&database_url, &twilio, dir.path(), &[]);
    second.wait_until_ready().await;
    let sent = settled_reminders(&twilio, USERS).await;
    assert_eq!(sent.len(), USERS, "{sent:?}");
    assert!(sent.values().all(|&n| n == 1), "a reminder was sent twice: {sent:?}");
    assert_eq!(twilio.sent().len(), USERS);
    let per_user = twilio.sent().into_iter().fold(HashMap::<String, usize>::new(), |mut counts, m| {
        *counts.entry(m.to).or_default() += 1;
        counts
    });
    assert!(per_user.len() == USERS && per_user.values().all(|&n| n == 1), "{per_user:?}");
    assert_eq!(scalar(&db, "SELECT count(*) FROM reminders WHERE status = 'done'").await, USERS as i64);
    // Those caught mid-send were claimed again and found their accepted send at Twilio.
    let retried = scalar(&db, "SELECT count(*) FROM jobs WHERE kind = 'reminder.fire' AND attempts > 1").await;
    assert!(retried >= accepted - recorded, "{retried} retried, {} caught mid-send", accepted - recorded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_postgresql_deliver_each_of_200_reminders_due_in_the_same_second_once() {
    if std::env::var("TEST_DATABASE_URL").is_err() {
        eprintln!("skipped: two servers sharing a queue is PostgreSQL's case; set TEST_DATABASE_URL to run it");
        return;
    }
    const REMINDERS: usize = 200;
    const USERS: usize = 20;
    // Each server sends from a number of its own, so the fake tells whose a send was.
    const FROM_A: &str = "+14155238886";
    const FROM_B: &str = "+14155238887";
    let dir = tempfile::tempdir().unwrap();
    let database_url = fresh_database_url(&dir).await;
    let twilio = fake_twilio::start().await;
    let a = start_server(&database_url, &twilio, dir.path(), &[("TWILIO_WHATSAPP_NUMBER", FROM_A)]);
    a.wait_until_ready().await;
    let b = start_server(&database_url, &twilio, dir.path(), &[("TWILIO_WHATSAPP_NUMBER", FROM_B)]);
    b.wait_until_ready().await;
    let phones: Vec<String> = (0..USERS).map(|i| format!("+1555400{i:04}")).collect();
    for phone in &phones {
        say_hello(&a, &twilio, phone).await;
    }

    let due = (Utc::now() + TimeDelta::seconds(10)).trunc_subsecs(0);
    let created: Vec<serde_json::Value> = futures::stream::iter(0..REMINDERS)
        .map(|i| {
            // Taken half by each server.
            let address = if i % 2 == 0 { a.address.clone() } else { b.address.clone() };
            let phone = phones[i % USERS].clone();
            async move { create_reminder(&address, &phone, &format!("task {i}"), due).await }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    assert!(Utc::now() < due, "taking 200 reminders took longer than planned");
    assert!(created.iter().all(|r| r["next_at"] == created[0]["next_at"]), "not all due at one instant");
    // A little time per send, so that neither server drains the queue before the other wakes.
    twilio.set_send_delay(Duration::from_millis(40));

    let sent = settled_reminders(&twilio, REMINDERS).await;
    assert_eq!(sent.len(), REMINDERS);
    assert!(sent.values().all(|&n| n == 1), "a reminder was sent twice: {sent:?}");
    let messages = twilio.sent();
    assert_eq!(messages.len(), REMINDERS);
    let by_a = messages.iter().filter(|m| m.from == format!("whatsapp:{FROM_A}")).count();
    let by_b = messages.iter().filter(|m| m.from == format!("whatsapp:{FROM_B}")).count();
    assert!(by_a > 0 && by_b > 0, "one server sent them all ({by_a} by a, {by_b} by b)");
    let db = sea_orm::Database::connect(&database_url).await.unwrap();
    assert_eq!(scalar(&db, "SELECT count(*) FROM reminders WHERE status = 'done'").await, REMINDERS as i64);
}
