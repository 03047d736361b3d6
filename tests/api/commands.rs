//! What people send, end to end: saving, searching, listing in their zone, /tz, /undo.

use chrono::{TimeZone, Utc};

use crate::helpers::*;
use sea_orm::ConnectionTrait;

#[tokio::test]
async fn search_finds_stemmed_words_regardless_of_case_and_accents() {
    let app = spawn_app().await;
    app.send_text(ADA, "Buy MILK at the Café Müller").await;
    app.send_text(ADA, "call the plumber").await;
    for query in ["/search buying", "/search milk", "/search cafe", "/search MULLER"] {
        let reply = app.send_text(ADA, query).await;
        assert!(reply.starts_with("1. ") && reply.contains("Buy MILK at the Café Müller"), "{query}: {reply}");
        assert!(!reply.contains("plumber"), "{query}: {reply}");
    }
}

#[tokio::test]
async fn a_question_ending_in_a_question_mark_searches_and_is_not_saved() {
    let app = spawn_app().await;
    app.send_text(ADA, "The car is parked on level 3").await;
    let reply = app.send_text(ADA, "where did I park the car?").await;
    assert!(reply.contains("The car is parked on level 3"), "{reply}");
    assert_eq!(app.count("memories").await, 1);
}

#[tokio::test]
async fn search_only_sees_the_senders_own_memories() {
    let app = spawn_app().await;
    app.send_text(BOB, "Bob's secret milk recipe").await;
    assert_eq!(app.send_text(ADA, "/search milk").await, "No matching memories found.");
    assert!(app.send_text(BOB, "/search milk").await.contains("Bob's secret milk recipe"));
}

#[tokio::test]
async fn results_are_escaped_in_twiml() {
    let app = spawn_app().await;
    app.send_text(ADA, "Tom & Jerry <3 \"cheese\"").await;
    let response = app.post_webhook(&text_form(ADA, "/search cheese")).await;
    let xml = response.text().await.unwrap();
    assert!(xml.contains("Tom &amp; Jerry &lt;3 &quot;cheese&quot;"), "{xml}");
}

#[tokio::test]
async fn list_last_week_is_the_previous_calendar_week_in_the_users_zone() {
    let app = spawn_app().await;
    app.send_text(ADA, "/tz America/New_York").await;
    // Sunday 22:00 in New York, already Monday 03:00 in UTC: last week for this user.
    app.clock.set(Utc.with_ymd_and_hms(2026, 11, 23, 3, 0, 0).unwrap());
    app.send_text(ADA, "sunday night note").await;
    // Monday of the week before last, local time: not last week.
    app.clock.set(Utc.with_ymd_and_hms(2026, 11, 9, 15, 0, 0).unwrap());
    app.send_text(ADA, "two weeks ago").await;
    // Tuesday of last week.
    app.clock.set(Utc.with_ymd_and_hms(2026, 11, 17, 15, 0, 0).unwrap());
    app.send_text(ADA, "dentist on tuesday").await;
    // This week.
    app.clock.set(Utc.with_ymd_and_hms(2026, 11, 24, 15, 0, 0).unwrap());
    app.send_text(ADA, "this week").await;

    app.clock.set(Utc.with_ymd_and_hms(2026, 11, 26, 15, 0, 0).unwrap());
    let reply = app.send_text(ADA, "/list last week").await;
    assert_eq!(reply, "1. 2026-11-22 22:00 · sunday night note\n2. 2026-11-17 10:00 · dentist on tuesday");
    let this_week = app.send_text(ADA, "/list this week").await;
    assert_eq!(this_week, "1. 2026-11-24 10:00 · this week");
}

#[tokio::test]
async fn list_without_a_range_shows_the_newest_first() {
    let app = spawn_app().await;
    for (minute, text) in [(1, "first"), (2, "second"), (3, "third")] {
        app.clock.set(Utc.with_ymd_and_hms(2026, 11, 26, 12, minute, 0).unwrap());
        app.send_text(ADA, text).await;
    }
    let reply = app.send_text(ADA, "/list").await;
    assert_eq!(reply, "1. 2026-11-26 12:03 · third\n2. 2026-11-26 12:02 · second\n3. 2026-11-26 12:01 · first");
}

#[tokio::test]
async fn a_long_list_fits_one_message_and_counts_the_rest() {
    let app = spawn_app().await;
    for i in 0..60 {
        app.send_text(ADA, &format!("memory number {i} {}", "padding ".repeat(8))).await;
    }
    let reply = app.send_text(ADA, "/list today").await;
    assert!(reply.chars().count() <= 1600, "{} characters", reply.chars().count());
    let shown = reply.lines().filter(|l| l.contains(" · ")).count();
    assert!(reply.ends_with(&format!("…and {} more", 60 - shown)), "{reply}");
}

#[tokio::test]
async fn an_unknown_range_is_explained_not_guessed() {
    let app = spawn_app().await;
    app.send_text(ADA, "something").await;
    let reply = app.send_text(ADA, "/list around easter").await;
    assert!(reply.starts_with("I don't understand the time range \"around easter\"."), "{reply}");
    assert!(reply.contains("last week"));
}

#[tokio::test]
async fn tz_shows_sets_and_refuses_invalid_zones() {
    let app = spawn_app().await;
    assert!(app.send_text(ADA, "/tz").await.starts_with("Your time zone is UTC (the default)."));
    assert!(app.send_text(ADA, "/tz Mars/Olympus").await.contains("is not a time zone I know"));
    assert_eq!(app.send_text(ADA, "/tz asia/tokyo").await, "Time zone set to Asia/Tokyo ✅ (it is 21:00 there now)");
    assert!(app.send_text(ADA, "/tz").await.starts_with("Your time zone is Asia/Tokyo."));
    assert_eq!(app.scalar("SELECT count(*) FROM users WHERE timezone = 'Asia/Tokyo'").await, 1);
}

#[tokio::test]
async fn undo_deletes_the_last_memory_and_it_is_no_longer_found() {
    let app = spawn_app().await;
    app.clock.set(Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap());
    app.send_text(ADA, "keep this milk").await;
    app.clock.set(Utc.with_ymd_and_hms(2026, 11, 26, 12, 1, 0).unwrap());
    app.send_text(ADA, "oops wrong milk").await;
    assert_eq!(app.send_text(ADA, "/undo").await, "Deleted your last memory: “oops wrong milk”");
    let reply = app.send_text(ADA, "/search milk").await;
    assert!(reply.contains("keep this milk") && !reply.contains("oops"), "{reply}");
    assert_eq!(app.send_text(ADA, "/undo").await, "Deleted your last memory: “keep this milk”");
    assert_eq!(app.send_text(ADA, "/undo").await, "There is no memory to undo.");
}

#[tokio::test]
async fn an_unknown_command_gets_help_and_is_not_saved() {
    let app = spawn_app().await;
    let reply = app.send_text(ADA, "/remember buy milk").await;
    assert!(reply.starts_with("I don't know the command /remember."), "{reply}");
    assert!(reply.contains("/search"));
    assert_eq!(app.count("memories").await, 0);
}

#[tokio::test]
async fn a_shared_location_is_saved_and_searchable() {
    let app = spawn_app().await;
    let form = with_field(text_form(ADA, ""), "Latitude", "52.5163");
    let form = with_field(form, "Longitude", "13.3777");
    let form = with_field(form, "Label", "Brandenburger Tor");
    let form = with_field(form, "MessageType", "location");
    let response = app.post_webhook(&form).await;
    assert_eq!(response.status(), 200);
    assert!(app.send_text(ADA, "/search brandenburger").await.contains("📍 Brandenburger Tor"));
}

#[tokio::test]
async fn a_memory_with_more_of_the_searched_words_comes_first() {
    let app = spawn_app().await;
    app.send_text(ADA, "buy eggs and milk").await;
    app.send_text(ADA, "milk is in the fridge").await;
    app.send_text(ADA, "eggs for the cake").await;
    let reply = app.send_text(ADA, "/search milk eggs").await;
    let first = reply.lines().next().unwrap();
    assert!(first.ends_with("buy eggs and milk"), "{reply}");
    assert_eq!(reply.lines().count(), 3, "{reply}");
}

#[tokio::test]
async fn an_old_memory_with_every_word_is_found_behind_many_newer_partial_matches() {
    let app = spawn_app().await;
    app.send_text(ADA, "dentist appointment on monday").await;
    // 2,400 newer memories that each hold only one of the two words: more than the
    // newest matches of either word that a search looks at.
    app.db
        .execute_unprepared(
            "INSERT INTO memories (user_id, kind, text, created_at) \
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1200) \
             SELECT (SELECT id FROM users), 'text', w || ' number ' || i, '2026-11-26T13:00:00.000000+00:00' \
             FROM n, (SELECT 'dentist bill' AS w UNION ALL SELECT 'appointment at the bank') AS words",
        )
        .await
        .unwrap();
    let reply = app.send_text(ADA, "/search dentist appointment").await;
    assert!(reply.lines().next().unwrap().ends_with("dentist appointment on monday"), "{reply}");
}

/// Before, `/search the a an of` found memories on SQLite and none on PostgreSQL (which
/// drops English stop words), and `/search and or not` differed from `/search AND`.
#[tokio::test]
async fn stop_words_are_never_searched_for_on_either_database() {
    let app = spawn_app().await;
    app.send_text(ADA, "the state of the art").await;
    app.send_text(ADA, "not now, and not later").await;
    app.send_text(ADA, "an apple a day").await;
    for query in ["/search the a an of", "/search AND", "/search and or not", "/search not"] {
        assert_eq!(app.send_text(ADA, query).await, "No matching memories found.", "{query}");
    }
    let found = app.send_text(ADA, "/search not the apple").await;
    assert!(found.contains("an apple a day") && !found.contains("state"), "{found}");
}
