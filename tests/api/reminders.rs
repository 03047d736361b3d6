//! Reminders end to end: taken from chat, listed, cancelled, snoozed, and delivered by
//! the job queue through the loopback Twilio fake, once, on time or marked late, and
//! under WhatsApp's 24-hour rule. The test clock stands at Thu 26 Nov 2026 12:00 UTC
//! and is moved by hand; the workers poll it.

use std::time::Duration;

use chrono::TimeDelta;
use sea_orm::ConnectionTrait;

use crate::fake_twilio::{self, FakeTwilio};
use crate::helpers::{eventually, spawn_app_with, TestApp, ADA};

/// An approved Content template sid, as configured.
const TEMPLATE_SID: &str = "HX0123456789abcdef0123456789abcdef";

async fn app(template: bool) -> (TestApp, FakeTwilio) {
    let twilio = fake_twilio::start().await;
    let mut vars = crate::media::twilio_vars(&twilio);
    if template {
        vars.push(("TWILIO_REMINDER_CONTENT_SID".into(), TEMPLATE_SID.into()));
    }
    let app = spawn_app_with(move |all| all.extend(vars)).await;
    (app, twilio)
}

/// The reminders Twilio accepted (free-form), by body.
fn reminders_sent(twilio: &FakeTwilio) -> Vec<String> {
    twilio.sent().into_iter().map(|m| m.body).filter(|b| b.starts_with("⏰ Reminder")).collect()
}

/// Waits until `n` reminders were sent, then a little longer to see no more come.
async fn expect_sent(twilio: &FakeTwilio, n: usize) -> Vec<String> {
    eventually(&format!("{n} reminder(s) sent"), || async { reminders_sent(twilio).len() >= n }).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let sent = reminders_sent(twilio);
    assert_eq!(sent.len(), n, "{sent:?}");
    sent
}

#[tokio::test]
async fn a_reminder_is_confirmed_listed_searchable_and_delivered_once_on_time() {
    let (app, twilio) = app(false).await;
    let reply = app.send_text(ADA, "remind me in 2 hours to take the cake out").await;
    assert_eq!(reply, "⏰ I'll remind you Thu 26 Nov 14:00: take the cake out");
    assert_eq!(app.count("reminders").await, 1);
    assert_eq!(app.scalar("SELECT count(*) FROM memories WHERE kind = 'reminder'").await, 1);
    let list = app.send_text(ADA, "/reminders").await;
    assert!(list.contains("1. Thu 26 Nov 14:00: take the cake out"), "{list}");
    assert!(app.send_text(ADA, "/search cake").await.contains("take the cake out"));

    app.clock.advance(TimeDelta::minutes(119));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(reminders_sent(&twilio).is_empty(), "not before it is due");
    app.clock.advance(TimeDelta::minutes(1));
    let sent = expect_sent(&twilio, 1).await;
    assert_eq!(sent, ["⏰ Reminder: take the cake out"]);
    eventually("the occurrence recorded", || async {
        app.scalar("SELECT count(*) FROM reminders WHERE status = 'done'").await == 1
    })
    .await;
    assert!(app.send_text(ADA, "/reminders").await.contains("You have no reminders"));
}

#[tokio::test]
async fn a_reminder_sent_late_says_when_it_was_due_and_one_too_late_is_dropped_and_told() {
    let (app, twilio) = app(false).await;
    app.send_text(ADA, "remind me at 13:00 to call mom").await;
    app.send_text(ADA, "remind me at 14:00 to call dad").await;
    // The server "was down": the workers see 13:20, twenty minutes after the first.
    app.clock.advance(TimeDelta::minutes(80));
    let sent = expect_sent(&twilio, 1).await;
    assert_eq!(sent, ["⏰ Reminder: call mom (late: was due 13:00)"]);
    // A day and more late: dropped, and the next reply says so.
    app.clock.advance(TimeDelta::hours(25));
    eventually("the late reminder dropped", || async {
        app.scalar("SELECT count(*) FROM reminders WHERE status = 'undeliverable'").await == 1
    })
    .await;
    assert_eq!(reminders_sent(&twilio).len(), 1);
    let reply = app.send_text(ADA, "buy milk").await;
    assert!(reply.contains("I missed a reminder") && reply.contains("call dad"), "{reply}");
    assert!(!app.send_text(ADA, "buy eggs").await.contains("missed"), "told once");
}

#[tokio::test]
async fn cancel_and_snooze_work() {
    let (app, twilio) = app(false).await;
    app.send_text(ADA, "remind me at 13:00 to water the plants").await;
    app.send_text(ADA, "remind me at 12:30 to stretch").await;
    let cancelled = app.send_text(ADA, "/cancel 2").await;
    assert_eq!(cancelled, "⏰ Cancelled: water the plants (was Thu 26 Nov 13:00)");
    assert!(app.send_text(ADA, "/reminders cancel 5").await.contains("There is no reminder 5"));
    assert!(app.send_text(ADA, "snooze").await.contains("no reminder to snooze"));

    app.clock.advance(TimeDelta::minutes(30));
    assert_eq!(expect_sent(&twilio, 1).await, ["⏰ Reminder: stretch"]);
    app.clock.advance(TimeDelta::minutes(5));
    assert_eq!(app.send_text(ADA, "snooze 30m").await, "⏰ Snoozed until Thu 26 Nov 13:05: stretch");
    app.clock.advance(TimeDelta::minutes(31));
    assert_eq!(expect_sent(&twilio, 2).await, ["⏰ Reminder: stretch", "⏰ Reminder: stretch"]);
    assert!(!reminders_sent(&twilio).iter().any(|b| b.contains("water")), "the cancelled one never fires");
}

#[tokio::test]
async fn a_recurring_reminder_schedules_its_next_occurrence() {
    let (app, twilio) = app(false).await;
    let reply = app.send_text(ADA, "remind me every day at 13:00 to take the pills").await;
    assert_eq!(reply, "⏰ I'll remind you every day at 13:00 (next: Thu 26 Nov 13:00): take the pills");
    app.clock.advance(TimeDelta::hours(1));
    expect_sent(&twilio, 1).await;
    app.clock.advance(TimeDelta::hours(23));
    app.send_text(ADA, "ok").await; // keeps the 24-hour window open
    app.clock.advance(TimeDelta::hours(1));
    expect_sent(&twilio, 2).await;
    let list = app.send_text(ADA, "/reminders").await;
    assert!(list.contains("Sat 28 Nov 13:00 (every day at 13:00): take the pills"), "{list}");
}

#[tokio::test]
async fn outside_the_24_hour_window_a_reminder_is_marked_undeliverable_without_a_template() {
    let (app, twilio) = app(false).await;
    app.send_text(ADA, "remind me in 2 days to renew the passport").await;
    app.clock.advance(TimeDelta::days(2));
    eventually("the reminder marked undeliverable", || async {
        app.scalar("SELECT count(*) FROM reminders WHERE status = 'undeliverable'").await == 1
    })
    .await;
    assert!(reminders_sent(&twilio).is_empty() && twilio.templates().is_empty());
    let reply = app.send_text(ADA, "hello").await;
    assert!(reply.contains("could not reach you") && reply.contains("renew the passport"), "{reply}");
}

#[tokio::test]
async fn outside_the_24_hour_window_a_reminder_is_sent_as_the_template() {
    let (app, twilio) = app(true).await;
    app.send_text(ADA, "remind me in 2 days to renew the passport").await;
    app.clock.advance(TimeDelta::days(2));
    eventually("the template sent", || async { !twilio.templates().is_empty() }).await;
    let templates = twilio.templates();
    assert_eq!(templates.len(), 1);
    assert_eq!(templates[0].content_sid, TEMPLATE_SID);
    assert_eq!(templates[0].variables, serde_json::json!({"1": "renew the passport", "2": "Sat 28 Nov 12:00"}));
    assert!(reminders_sent(&twilio).is_empty());
    eventually("the occurrence recorded as sent", || async {
        app.scalar("SELECT count(*) FROM reminders WHERE status = 'done'").await == 1
    })
    .await;
}

#[tokio::test]
async fn twilio_error_63016_on_a_free_form_send_falls_back_to_the_template() {
    let (app, twilio) = app(true).await;
    app.send_text(ADA, "remind me in 1 hour to stretch").await;
    twilio.set_window_closed(true);
    app.clock.advance(TimeDelta::hours(1));
    eventually("the template sent", || async { !twilio.templates().is_empty() }).await;
    assert!(reminders_sent(&twilio).is_empty());
    assert_eq!(twilio.templates()[0].variables["1"], "stretch");
}

#[tokio::test]
async fn a_request_without_an_understandable_time_is_answered_with_an_example_and_not_saved() {
    let (app, _twilio) = app(false).await;
    let reply = app.send_text(ADA, "remind me whenever to call mom").await;
    assert!(reply.contains("couldn't tell when") && reply.contains("remind me tomorrow at 9 to call mom"), "{reply}");
    let past = app.send_text(ADA, "remind me today at 9 to call mom").await;
    assert!(past.contains("has already passed"), "{past}");
    assert_eq!(app.count("memories").await, 0);
    assert_eq!(app.count("reminders").await, 0);
}

/// A worker that sent an occurrence and died before recording it: Twilio holds the
/// message, and the job comes back for a second attempt, which must find it there.
#[tokio::test]
async fn an_occurrence_retried_after_a_crash_is_not_delivered_twice() {
    let (app, twilio) = app(false).await;
    app.send_text(ADA, "remind me in 1 hour to stretch").await;
    // The first attempt's send, accepted by Twilio; its worker died before recording it.
    let accepted = app
        .client
        .post(twilio.messages_url())
        .basic_auth(twilio.account_sid(), Some(twilio.auth_token()))
        .form(&[
            ("To", format!("whatsapp:{ADA}")),
            ("From", "whatsapp:+14155238886".into()),
            ("Body", "⏰ Reminder: stretch".into()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 201);
    app.db.execute_unprepared("UPDATE jobs SET attempts = 1 WHERE kind = 'reminder.fire'").await.unwrap();
    app.clock.advance(TimeDelta::hours(1));
    eventually("the occurrence recorded", || async {
        app.scalar("SELECT count(*) FROM reminders WHERE status = 'done'").await == 1
    })
    .await;
    assert_eq!(expect_sent(&twilio, 1).await.len(), 1, "sent once, by the first attempt");
}

#[tokio::test]
async fn the_rest_api_takes_lists_reads_and_cancels_reminders_that_are_then_delivered() {
    use reqwest::Method;
    let (app, twilio) = app(false).await;
    app.send_text(ADA, "/tz Europe/Berlin").await;
    let path = "/reminders?user_id=%2B15551234567";
    let at = app
        .api_json(
            Method::POST,
            path,
            Some(serde_json::json!({"text": "call mom", "at": "2026-11-26T14:00:00+01:00"})),
            201,
        )
        .await;
    assert_eq!(at["next_at"], "2026-11-26T13:00:00+00:00");
    assert_eq!((at["local_time"].as_str(), at["status"].as_str()), (Some("14:00"), Some("pending")));
    let weekly = app
        .api_json(
            Method::POST,
            path,
            Some(serde_json::json!({"text": "bins", "at": "2026-11-27T07:00:00Z", "repeat": "weekly"})),
            201,
        )
        .await;
    assert_eq!((weekly["repeat"].as_str(), weekly["local_time"].as_str()), (Some("weekly:fri"), Some("08:00")));
    let words = app
        .api_json(Method::POST, path, Some(serde_json::json!({"text": "stretch", "when": "every day at 21:00"})), 201)
        .await;
    assert_eq!(
        (words["next_at"].as_str(), words["repeat"].as_str()),
        (Some("2026-11-26T20:00:00+00:00"), Some("daily"))
    );
    for bad in [
        serde_json::json!({"text": "x", "at": "2026-11-26T11:00:00Z"}),
        serde_json::json!({"text": "x", "at": "tomorrow"}),
        serde_json::json!({"text": "x", "when": "whenever"}),
        serde_json::json!({"text": "x"}),
        serde_json::json!({"text": "", "when": "tomorrow at 9"}),
        serde_json::json!({"text": "x", "at": "2026-11-27T07:00:00Z", "repeat": "hourly"}),
        serde_json::json!({"text": 5, "when": "tomorrow at 9"}),
    ] {
        app.api_json(Method::POST, path, Some(bad), 400).await;
    }
    let list = app.api_json(Method::GET, path, None, 200).await;
    let texts: Vec<_> = list["reminders"].as_array().unwrap().iter().map(|r| r["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["call mom", "stretch", "bins"]);

    let id = words["id"].as_i64().unwrap();
    app.api_json(Method::DELETE, &format!("/reminders/{id}"), None, 204).await;
    assert_eq!(app.api_json(Method::GET, &format!("/reminders/{id}"), None, 200).await["status"], "cancelled");
    app.api_json(Method::GET, "/reminders/999999", None, 404).await;
    app.api_json(Method::DELETE, "/reminders/999999", None, 404).await;

    app.clock.advance(TimeDelta::hours(1));
    assert_eq!(expect_sent(&twilio, 1).await, ["⏰ Reminder: call mom"]);
}

/// Databases keep microseconds; a job's payload kept nanoseconds, and the occurrence did
/// not match its own reminder (found by the bench, whose clock is the system's).
#[tokio::test]
async fn a_reminder_taken_at_a_fraction_of_a_second_is_still_delivered() {
    let (app, twilio) = app(false).await;
    app.clock.advance(TimeDelta::nanoseconds(123_456_789));
    app.send_text(ADA, "remind me in 1 hour to stretch").await;
    app.clock.advance(TimeDelta::hours(1));
    assert_eq!(expect_sent(&twilio, 1).await, ["⏰ Reminder: stretch"]);
}
