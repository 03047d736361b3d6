//! What an operator sees, from the real binary: `/metrics` after a scripted mix of
//! traffic moves each counter by exactly what happened; JSON logs parse line by line,
//! one request id ties the webhook's line to the SQLite writer thread's line about the
//! same message (its sid too), and no secret or unmasked number is ever logged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use crate::fake_twilio::{self, FakeTwilio};
use crate::helpers::*;
use crate::process::serve_command;

const PHOTO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/samples/photo_penne.jpg");
const METRICS_TOKEN: &str = "metrics-token-0123456789abcdef";

/// A `serve` process logging JSON to a file.
struct Server {
    child: Child,
    address: String,
    log: PathBuf,
}

impl Server {
    fn start(database_url: &str, twilio: &FakeTwilio, dir: &Path) -> Server {
        let log = dir.join("server.log");
        let (mut command, port) = serve_command(database_url, twilio, &dir.join("media"));
        let child = command
            .env("OCR", "off")
            .env("TRANSCRIBER", "none")
            .env("SEMANTIC_SEARCH", "off")
            .env("METRICS_TOKEN", METRICS_TOKEN)
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info,whatsapp_memory=debug")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("the binary starts");
        Server { child, address: format!("http://127.0.0.1:{port}"), log }
    }

    async fn wait_until_ready(&self) {
        let client = reqwest::Client::new();
        let url = format!("{}/readyz", self.address);
        eventually("the server to be ready", || async {
            client.get(&url).send().await.map(|r| r.status() == 200).unwrap_or(false)
        })
        .await;
    }

    /// Posts `form` to the webhook, signed, with `request_id` as `X-Request-Id`.
    async fn post(&self, twilio: &FakeTwilio, form: &[(String, String)], request_id: &str) -> reqwest::Response {
        let signature = whatsapp_memory::adapters::twilio::signature::compute_signature(
            &whatsapp_memory::config::Secret::new(twilio.auth_token()),
            &format!("{PUBLIC_BASE_URL}/webhook"),
            form,
        );
        let response = reqwest::Client::new()
            .post(format!("{}/webhook", self.address))
            .header("X-Twilio-Signature", signature)
            .header("X-Request-Id", request_id)
            .form(form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response
    }

    async fn scrape(&self) -> Scrape {
        let response = reqwest::Client::new()
            .get(format!("{}/metrics", self.address))
            .bearer_auth(METRICS_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        Scrape::parse(&response.text().await.unwrap())
    }

    fn log_lines(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("a log line is not JSON ({e}): {line}")))
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Prometheus text exposition: every sample by name and labels.
struct Scrape(Vec<(String, BTreeMap<String, String>, f64)>);

impl Scrape {
    fn parse(text: &str) -> Scrape {
        let mut samples = Vec::new();
        for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
            let (series, value) = line.rsplit_once(' ').expect("a sample line");
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => (name, labels.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split("\",")
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (key, value) = pair.split_once('=').expect("key=value");
                    (key.to_string(), value.trim_matches('"').to_string())
                })
                .collect();
            samples.push((name.to_string(), labels, value.parse().expect("a number")));
        }
        Scrape(samples)
    }

    /// The sum of the samples of `name` that carry every label of `labels` (0 if none).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .iter()
            .filter(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v)))
            .map(|(_, _, value)| value)
            .sum()
    }

    fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _, _)| n == name)
    }
}

fn photo_form(twilio: &FakeTwilio, phone: &str, photo: &[u8]) -> Vec<(String, String)> {
    let form = with_field(text_form(phone, ""), "NumMedia", "1");
    let form = with_field(form, "MessageType", "image");
    let form = with_field(form, "MediaUrl0", &twilio.add_media(photo.to_vec(), "image/jpeg"));
    with_field(form, "MediaContentType0", "image/jpeg")
}

const CAROL: &str = "+447700900123";
const DAVE: &str = "+33612345678";

#[tokio::test]
async fn a_scrape_counts_exactly_what_happened_and_json_logs_tie_a_request_to_its_writer_line() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = fresh_database_url(&dir).await;
    let twilio = fake_twilio::start().await;
    let photo = std::fs::read(PHOTO).unwrap();
    let server = Server::start(&database_url, &twilio, dir.path());
    server.wait_until_ready().await;

    let refused = reqwest::Client::new().get(format!("{}/metrics", server.address)).send().await.unwrap();
    assert_eq!(refused.status(), 401, "/metrics without the token");
    let before = server.scrape().await;
    assert!(before.has("whatsapp_memory_build_info"));
    assert!(before.has("whatsapp_memory_db_pool_connections"));

    // A text, and Twilio delivering it again.
    let text = text_form(ADA, "buy milk and eggs");
    let sid = text.iter().find(|(k, _)| k == "MessageSid").unwrap().1.clone();
    let answered = server.post(&twilio, &text, "obs-text-1").await;
    assert_eq!(answered.headers()["x-request-id"], "obs-text-1");
    server.post(&twilio, &text, "obs-text-2").await;
    // A photo, saved and confirmed.
    server.post(&twilio, &photo_form(&twilio, BOB, &photo), "obs-photo-1").await;
    eventually("the first confirmation", || async { twilio.sent().len() == 1 }).await;
    // A photo whose confirmation Twilio refuses.
    twilio.fail_next_sends(1, 400);
    server.post(&twilio, &photo_form(&twilio, CAROL, &photo), "obs-photo-2").await;
    eventually("the refused confirmation", || async {
        server.scrape().await.value("whatsapp_memory_job_runs_total", &[("kind", "whatsapp.send")]) >= 2.0
    })
    .await;
    // A photo Twilio no longer has: its job dies, and the user is told.
    twilio.fail_next_media(1, 404);
    server.post(&twilio, &photo_form(&twilio, DAVE, &photo), "obs-photo-3").await;
    eventually("the dead job's notice", || async { twilio.sent().len() == 2 }).await;
    eventually("every job settled", || async {
        server.scrape().await.value("whatsapp_memory_job_runs_total", &[("kind", "whatsapp.send")]) >= 3.0
    })
    .await;

    let after = server.scrape().await;
    let moved = |name: &str, labels: &[(&str, &str)]| after.value(name, labels) - before.value(name, labels);
    let inbound = "whatsapp_memory_inbound_messages_total";
    assert_eq!(moved(inbound, &[("kind", "text"), ("outcome", "saved")]), 1.0);
    assert_eq!(moved(inbound, &[("kind", "text"), ("outcome", "duplicate")]), 1.0);
    assert_eq!(moved(inbound, &[("kind", "media"), ("outcome", "saved")]), 3.0);
    assert_eq!(moved(inbound, &[]), 5.0);
    let runs = "whatsapp_memory_job_runs_total";
    assert_eq!(moved(runs, &[("kind", "media.ingest"), ("outcome", "done")]), 2.0);
    assert_eq!(moved(runs, &[("kind", "media.ingest"), ("outcome", "dead")]), 1.0);
    assert_eq!(moved(runs, &[("kind", "whatsapp.send"), ("outcome", "done")]), 3.0);
    assert_eq!(moved(runs, &[]), 6.0);
    let outbound = "whatsapp_memory_outbound_requests_total";
    let twilio_call = |operation: &'static str, outcome: &'static str| {
        moved(outbound, &[("service", "twilio"), ("operation", operation), ("outcome", outcome)])
    };
    assert_eq!(twilio_call("fetch_media", "ok"), 2.0);
    assert_eq!(twilio_call("fetch_media", "4xx"), 1.0);
    assert_eq!(twilio_call("send_message", "ok"), 2.0);
    assert_eq!(twilio_call("send_message", "4xx"), 1.0);
    assert_eq!(after.value("whatsapp_memory_jobs", &[("kind", "media.ingest"), ("state", "dead")]), 1.0);
    assert_eq!(after.value("whatsapp_memory_jobs", &[("state", "queued")]), 0.0);
    let webhook = [("route", "/webhook"), ("method", "POST"), ("status", "200")];
    assert_eq!(moved("whatsapp_memory_http_requests_total", &webhook), 5.0);
    assert_eq!(
        moved("whatsapp_memory_http_request_duration_seconds_count", &[("route", "/webhook"), ("method", "POST")]),
        5.0
    );
    assert!(moved("whatsapp_memory_job_duration_seconds_count", &[("kind", "media.ingest")]) == 3.0);

    // Logs: every line JSON; the request id on the webhook's line and on the writer's.
    let lines = server.log_lines();
    let in_request = |line: &serde_json::Value, id: &str| {
        line["spans"].as_array().is_some_and(|spans| spans.iter().any(|span| span["request_id"] == id))
    };
    assert!(
        lines.iter().any(|line| in_request(line, "obs-text-1") && line["fields"]["message"] == "request answered"),
        "no line of the webhook request names its id"
    );
    if database_url.starts_with("sqlite:") {
        let writer_line = lines
            .iter()
            .find(|line| line["threadName"] == "sqlite-writer" && in_request(line, "obs-text-1"))
            .expect("a line written on the SQLite writer thread names the request id");
        let names_sid = writer_line["spans"].as_array().unwrap().iter().any(|span| span["sid"] == sid.as_str());
        assert!(names_sid, "the writer's line names the message's sid: {writer_line}");
    }

    // Nothing secret, no whole phone number.
    let log = std::fs::read_to_string(&server.log).unwrap();
    for secret in [twilio.auth_token(), API_KEY, METRICS_TOKEN] {
        assert!(!log.contains(secret), "a secret was logged");
    }
    for phone in [ADA, BOB, CAROL, DAVE] {
        assert!(!log.contains(phone.trim_start_matches('+')), "{phone} was logged unmasked");
    }
}

#[tokio::test]
async fn metrics_can_have_a_listener_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(&dir).await;
    let media = dir.path().join("media").display().to_string();
    let config = whatsapp_memory::config::Config::from_lookup(|k| {
        Some(match k {
            "DATABASE_URL" => url.clone(),
            "STORAGE_DIR" => media.clone(),
            "APP_PORT" => "0".into(),
            "METRICS_ADDR" => "127.0.0.1:0".into(),
            "API_KEYS" => API_KEY.into(),
            "TRANSCRIBER" => "none".into(),
            "SEMANTIC_SEARCH" | "OCR" => "off".into(),
            _ => return None,
        })
    })
    .unwrap();
    let app = whatsapp_memory::Application::build(&config).await.unwrap();
    let (main, metrics) = (app.local_addr(), app.metrics_addr().expect("a listener for /metrics"));
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    let on_main = reqwest::get(format!("http://{main}/metrics")).await.unwrap();
    assert_eq!(on_main.status(), 404, "not on the main port when METRICS_ADDR is set");
    let scraped = reqwest::get(format!("http://{metrics}/metrics")).await.unwrap();
    assert_eq!(scraped.status(), 200);
    assert!(scraped.text().await.unwrap().contains("whatsapp_memory_build_info"));
    let webhook = reqwest::get(format!("http://{metrics}/webhook")).await.unwrap();
    assert_eq!(webhook.status(), 404, "the metrics listener serves /metrics alone");
}
