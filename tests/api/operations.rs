//! The operator's hand tools over HTTP: the job queue (list, retry, remove) and the rate
//! limits (per WhatsApp user on the webhook, per API key on REST).

use reqwest::Method;

use crate::fake_mem0;
use crate::helpers::*;
use crate::media::{app_with_twilio, media_form, PHOTO};

const MEM0_KEY: &str = "m0-test-key-0123456789abcdef";

#[tokio::test]
async fn a_dead_job_is_listed_retried_and_succeeds() {
    let (app, twilio) = app_with_twilio().await;
    twilio.fail_next_media(1, 404);
    let url = twilio.add_media(std::fs::read(PHOTO).unwrap(), "image/jpeg");
    let response = app.post_webhook(&media_form(ADA, "pasta night", &[(url, "image/jpeg")])).await;
    assert_eq!(response.status(), 200);

    eventually("the media job to die", || async {
        let dead = app.api_json(Method::GET, "/admin/jobs?state=dead", None, 200).await;
        dead["items"].as_array().is_some_and(|items| items.len() == 1)
    })
    .await;
    let dead = app.api_json(Method::GET, "/admin/jobs?state=dead", None, 200).await;
    let job = &dead["items"][0];
    assert_eq!(job["kind"], "media.ingest");
    assert_eq!(job["last_error"], "Twilio no longer has it", "{job}");
    assert!(job.get("payload").is_none(), "a payload can carry a phone number: {job}");
    let id = job["id"].as_i64().unwrap();
    assert_eq!(app.count("memories").await, 0);

    app.api_json(Method::POST, &format!("/admin/jobs/{id}/retry"), None, 204).await;
    eventually("the retried job to succeed", || async {
        let done = app.api_json(Method::GET, "/admin/jobs?state=done&kind=media.ingest", None, 200).await;
        done["items"].as_array().is_some_and(|items| items.iter().any(|j| j["id"] == id))
    })
    .await;
    assert_eq!(app.count("memories").await, 1);
    eventually("the photo's confirmation", || async { twilio.sent().iter().any(|m| m.body == "📷 Photo saved ✅") })
        .await;

    let again = app.api_json(Method::POST, &format!("/admin/jobs/{id}/retry"), None, 409).await;
    assert!(again["detail"].as_str().unwrap().contains("only a dead job"), "{again}");
    let listed = cli(&app, &["jobs", "list", "--kind", "media.ingest"]);
    assert!(listed.status.success());
    let line = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .find(|l| l.trim_start().starts_with(&id.to_string()))
        .map(str::to_string);
    assert!(line.as_deref().is_some_and(|l| l.contains("done")), "jobs list shows the job done: {line:?}");
    assert!(cli(&app, &["jobs", "purge", &id.to_string()]).status.success());
    let again = cli(&app, &["jobs", "purge", &id.to_string()]);
    assert!(!again.status.success(), "a job already removed");
    assert!(String::from_utf8_lossy(&again.stderr).contains("no such job"));
    app.api_json(Method::DELETE, &format!("/admin/jobs/{id}"), None, 404).await;
    app.api_json(Method::POST, "/admin/jobs/999999/retry", None, 404).await;
    let anonymous = app.client.get(format!("{}/admin/jobs", app.address)).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let wrong_state = app.api(Method::GET, "/admin/jobs?state=exploded").send().await.unwrap();
    assert_eq!(wrong_state.status(), 400);
}

/// Runs `whatsapp-memory ARGS` on the test app's database.
fn cli(app: &TestApp, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_whatsapp-memory"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &app.database_url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("the binary runs")
}

#[tokio::test]
async fn fifty_messages_at_once_are_all_stored_and_the_31st_on_wait_with_one_notice() {
    let fake = fake_mem0::start(MEM0_KEY).await;
    let base = fake.base_url().to_string();
    let app = spawn_app_with(move |vars| {
        vars.insert("MEM0_API_KEY".into(), MEM0_KEY.into());
        vars.insert("MEM0_BASE_URL".into(), base);
        // A burst of 30, then one an hour: the 31st is over however slow this machine is.
        vars.insert("USER_RATE_LIMIT".into(), "30/h:30".into());
    })
    .await;
    let mut replies = Vec::new();
    for i in 0..50 {
        replies.push(app.send_text(ADA, &format!("note number {i}")).await);
    }
    assert_eq!(app.count("memories").await, 50, "nothing is lost");
    assert!(replies[..30].iter().all(|r| r == "Memory saved ✅"), "{replies:?}");
    assert!(replies[30].starts_with("Memory saved ✅\n\nYou're sending a lot at once"), "{}", replies[30]);
    assert!(replies[31..].iter().all(|r| r == "Memory saved ✅"), "one notice a minute: {replies:?}");
    // Another user is not held back.
    assert_eq!(app.send_text(BOB, "my own note").await, "Memory saved ✅");

    let jobs = app.api_json(Method::GET, "/admin/jobs?kind=mem0.index&limit=100", None, 200).await;
    let jobs = jobs["items"].as_array().unwrap();
    assert_eq!(jobs.len(), 51);
    let now = whatsapp_memory::domain::ports::Clock::now(&*app.clock);
    let later: Vec<_> = jobs
        .iter()
        .filter(|job| {
            let due: chrono::DateTime<chrono::Utc> = job["due_at"].as_str().unwrap().parse().unwrap();
            due > now + chrono::Duration::seconds(30)
        })
        .collect();
    assert_eq!(later.len(), 20, "the work of the 31st to 50th message is deferred");
    assert!(later.iter().all(|job| job["state"] == "queued"), "deferred, not run: {later:?}");
}

#[tokio::test]
async fn an_api_key_over_its_rate_gets_429_with_retry_after() {
    let app = spawn_app_with(|vars| {
        vars.insert("API_RATE_LIMIT".into(), "3/min:3".into());
    })
    .await;
    for _ in 0..3 {
        app.api_json(Method::GET, "/users", None, 200).await;
    }
    let over = app.api(Method::GET, "/users").send().await.unwrap();
    assert_eq!(over.status(), 429);
    let retry_after: u64 = over.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry_after), "{retry_after}");
    assert_eq!(over.headers()["content-type"], "application/problem+json");
    let problem: serde_json::Value = over.json().await.unwrap();
    assert_eq!(problem["status"], 429);
    // Probes carry no key and are never limited; a wrong key is still a 401, not a 429.
    for _ in 0..5 {
        assert_eq!(app.client.get(format!("{}/healthz", app.address)).send().await.unwrap().status(), 200);
    }
    // Operations that need no key are not limited by one sent anyway (schemathesis sends
    // its key everywhere; a load balancer's probe may too).
    for path in ["/healthz", "/readyz", "/whatsapp/cloud"] {
        let response = app.api(Method::GET, path).send().await.unwrap();
        assert_ne!(response.status(), 429, "{path} answered 429 for the key's rate");
    }
    let stranger =
        app.client.get(format!("{}/users", app.address)).bearer_auth("not-a-key-0123456789").send().await.unwrap();
    assert_eq!(stranger.status(), 401);
}
