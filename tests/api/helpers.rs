//! `spawn_app()` and the `TestApp` methods every test uses.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeZone, Utc};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use tokio::sync::OnceCell;

use whatsapp_memory::adapters::twilio::signature::compute_signature;
use whatsapp_memory::config::{Config, Secret};
use whatsapp_memory::domain::ports::Clock;
use whatsapp_memory::simulate::{new_message_sid, twiml_messages};
use whatsapp_memory::Application;

/// The auth token the test server checks signatures with.
pub const AUTH_TOKEN: &str = "test-auth-token-0123456789";
/// The public URL Twilio "calls" (what signatures cover), as behind a proxy.
pub const PUBLIC_BASE_URL: &str = "https://memory.example.com";
/// The REST API key every test server accepts.
pub const API_KEY: &str = "test-api-key-0123456789abcdef";
/// A sender.
pub const ADA: &str = "+15551234567";
/// Another sender.
pub const BOB: &str = "+4915112345678";

/// A clock the test moves by hand.
pub struct TestClock(Mutex<DateTime<Utc>>);

impl TestClock {
    /// A clock standing at `now`.
    pub fn at(now: DateTime<Utc>) -> Self {
        Self(Mutex::new(now))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: chrono::Duration) {
        let mut now = self.0.lock().unwrap();
        *now += by;
    }

    pub fn set(&self, now: DateTime<Utc>) {
        *self.0.lock().unwrap() = now;
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

/// A running server and what a test needs to talk to it and look inside its database.
pub struct TestApp {
    pub address: String,
    pub clock: Arc<TestClock>,
    pub db: DatabaseConnection,
    pub client: reqwest::Client,
    /// The URL signatures are computed over.
    pub signed_base: String,
    /// The auth token signatures are made with.
    pub auth_token: String,
    /// Where the server keeps media files.
    pub storage_dir: std::path::PathBuf,
    /// The server's database, for opening it beside the server.
    pub database_url: String,
    _dir: tempfile::TempDir,
}

static STALE_DATABASES_DROPPED: OnceCell<()> = OnceCell::const_new();

/// The prefix of the PostgreSQL databases the tests create; the creating process's id
/// follows it (`wm_test_p<pid>_<random>`), so a later run can tell what it may drop.
const TEST_DATABASE_PREFIX: &str = "wm_test_";

/// Whether a test database named `name` was left by a process that has ended, so no
/// test can still be using it. Tests run one process after another (`cargo test`) or
/// many at once (`cargo nextest`, two suites side by side): a database whose creator
/// lives is never dropped, nor one that someone is connected to. Older names without a
/// process id are dropped when nobody is connected. The server is on this host (the
/// process ids are this host's); a reused id only delays the drop to a later run.
fn left_by_an_ended_process(name: &str) -> bool {
    let Some(rest) = name.strip_prefix(TEST_DATABASE_PREFIX) else { return false };
    let Some(pid) = rest.strip_prefix('p').and_then(|r| r.split('_').next()).and_then(|p| p.parse::<u32>().ok()) else {
        return true;
    };
    pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Creates a fresh database for one test and returns its URL.
pub async fn fresh_database_url(dir: &tempfile::TempDir) -> String {
    let Ok(server) = std::env::var("TEST_DATABASE_URL") else {
        return format!("sqlite://{}/test.db?mode=rwc", dir.path().display());
    };
    let admin = Database::connect(&server).await.expect("TEST_DATABASE_URL must name a reachable PostgreSQL server");
    STALE_DATABASES_DROPPED
        .get_or_init(|| async {
            // Databases left by earlier runs (a failed test cannot clean up after itself),
            // and nobody connected to them.
            let rows = admin
                .query_all_raw(Statement::from_string(
                    admin.get_database_backend(),
                    format!(
                        "SELECT datname FROM pg_database d WHERE datname LIKE '{TEST_DATABASE_PREFIX}%' \
                         AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname)"
                    ),
                ))
                .await
                .unwrap();
            for row in rows {
                let name: String = row.try_get("", "datname").unwrap();
                if left_by_an_ended_process(&name) {
                    let _ = admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\"")).await;
                }
            }
        })
        .await;
    let name = format!("{TEST_DATABASE_PREFIX}p{}_{}", std::process::id(), &new_message_sid()[2..14]);
    admin.execute_unprepared(&format!("CREATE DATABASE \"{name}\"")).await.unwrap();
    let mut url = url::Url::parse(&server).unwrap();
    url.set_path(&name);
    url.to_string()
}

/// Starts the service with signatures ON and a public base URL, as in production.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Builds the service with variables changed by `customize`, without serving: the
/// error a start fails with, if it does.
pub async fn start_error_with(customize: impl FnOnce(&mut HashMap<String, String>)) -> Option<String> {
    let dir = tempfile::tempdir().unwrap();
    let vars = test_vars(&dir, customize).await;
    let config = Config::from_lookup(|k| vars.get(k).cloned()).expect("valid test config");
    Application::build(&config).await.err().map(|error| format!("{error:#}"))
}

/// The variables of a test server over a fresh database in `dir`, changed by `customize`.
async fn test_vars(
    dir: &tempfile::TempDir,
    customize: impl FnOnce(&mut HashMap<String, String>),
) -> HashMap<String, String> {
    let database_url = fresh_database_url(dir).await;
    let mut vars: HashMap<String, String> = [
        ("APP_PORT", "0".to_string()),
        ("ENV", "production".to_string()),
        ("DATABASE_URL", database_url.clone()),
        ("STORAGE_DIR", dir.path().join("media").display().to_string()),
        ("TWILIO_AUTH_TOKEN", AUTH_TOKEN.to_string()),
        ("PUBLIC_BASE_URL", PUBLIC_BASE_URL.to_string()),
        ("API_KEYS", API_KEY.to_string()),
        // Voice tests choose their transcriber; the others need none.
        ("TRANSCRIBER", "none".to_string()),
        // Semantic-search tests turn it on; the others rank by words alone, as they assert.
        ("SEMANTIC_SEARCH", "off".to_string()),
        // OCR tests turn it on; the others confirm photos at once, as they assert.
        ("OCR", "off".to_string()),
        // Rate-limit tests turn these on; the others send as fast as they like.
        ("USER_RATE_LIMIT", "off".to_string()),
        ("API_RATE_LIMIT", "off".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    customize(&mut vars);
    vars
}

/// Starts the service with variables changed by `customize`.
pub async fn spawn_app_with(customize: impl FnOnce(&mut HashMap<String, String>)) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let vars = test_vars(&dir, customize).await;
    let database_url = vars.get("DATABASE_URL").cloned().expect("a database URL");
    let signed_base = vars.get("PUBLIC_BASE_URL").cloned();
    let storage_dir = std::path::PathBuf::from(vars.get("STORAGE_DIR").cloned().unwrap_or_default());
    let auth_token = vars.get("TWILIO_AUTH_TOKEN").cloned().unwrap_or_else(|| AUTH_TOKEN.to_string());
    let config = Config::from_lookup(|k| vars.get(k).cloned()).expect("valid test config");
    let clock = Arc::new(TestClock(Mutex::new(Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap())));
    let app = Application::build_with_clock(&config, clock.clone()).await.expect("the app builds");
    let address = format!("http://{}", app.local_addr());
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    let db = Database::connect(&database_url).await.unwrap();
    TestApp {
        signed_base: signed_base.unwrap_or_else(|| address.clone()),
        auth_token,
        address,
        clock,
        db,
        client: reqwest::Client::new(),
        storage_dir,
        database_url,
        _dir: dir,
    }
}

/// A Twilio webhook form for a text message from `phone`, with a fresh sid.
pub fn text_form(phone: &str, body: &str) -> Vec<(String, String)> {
    let sid = new_message_sid();
    [
        ("SmsMessageSid", sid.as_str()),
        ("NumMedia", "0"),
        ("ProfileName", "Ada"),
        ("MessageType", "text"),
        ("SmsSid", sid.as_str()),
        ("WaId", phone.trim_start_matches('+')),
        ("SmsStatus", "received"),
        ("Body", body),
        ("To", "whatsapp:+14155238886"),
        ("NumSegments", "1"),
        ("ReferralNumMedia", "0"),
        ("MessageSid", sid.as_str()),
        ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
        ("From", &format!("whatsapp:{phone}")),
        ("ApiVersion", "2010-04-01"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Replaces (or adds) one field of a form.
pub fn with_field(mut form: Vec<(String, String)>, name: &str, value: &str) -> Vec<(String, String)> {
    form.retain(|(k, _)| k != name);
    form.push((name.to_string(), value.to_string()));
    form
}

/// Removes one field of a form.
pub fn without_field(mut form: Vec<(String, String)>, name: &str) -> Vec<(String, String)> {
    form.retain(|(k, _)| k != name);
    form
}

impl TestApp {
    /// Twilio's signature of `form` posted to `/webhook`.
    pub fn sign(&self, form: &[(String, String)]) -> String {
        compute_signature(&Secret::new(self.auth_token.as_str()), &format!("{}/webhook", self.signed_base), form)
    }

    /// Posts `form` to `/webhook` with a correct signature.
    pub async fn post_webhook(&self, form: &[(String, String)]) -> reqwest::Response {
        let signature = self.sign(form);
        self.post_webhook_signed(form, Some(&signature)).await
    }

    /// Posts `form` to `/webhook` with the given signature header (or none).
    pub async fn post_webhook_signed(&self, form: &[(String, String)], signature: Option<&str>) -> reqwest::Response {
        let mut request = self.client.post(format!("{}/webhook", self.address)).form(form);
        if let Some(signature) = signature {
            request = request.header("X-Twilio-Signature", signature);
        }
        request.send().await.expect("the server answers")
    }

    /// Sends a text as `phone` and returns the reply's text (all messages joined).
    pub async fn send_text(&self, phone: &str, body: &str) -> String {
        let response = self.post_webhook(&text_form(phone, body)).await;
        assert_eq!(response.status(), 200, "webhook refused {body:?}");
        twiml_messages(&response.text().await.unwrap()).join("\n")
    }

    /// A REST request to `path` with the test API key.
    pub fn api(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, format!("{}{path}", self.address)).bearer_auth(API_KEY)
    }

    /// A REST call that must answer `status`; returns the JSON body (`null` when empty).
    pub async fn api_json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
        status: u16,
    ) -> serde_json::Value {
        let mut request = self.api(method.clone(), path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the server answers");
        let got = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert_eq!(got, status, "{method} {path} answered {got}: {text}");
        if text.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"))
        }
    }

    /// A single number from the database, e.g. a count.
    pub async fn scalar(&self, sql: &str) -> i64 {
        let row = self
            .db
            .query_one_raw(Statement::from_string(self.db.get_database_backend(), sql))
            .await
            .unwrap()
            .expect("one row");
        row.try_get_by_index::<i64>(0).unwrap()
    }

    /// How many rows a table has.
    pub async fn count(&self, table: &str) -> i64 {
        self.scalar(&format!("SELECT count(*) FROM {table}")).await
    }
}

/// Moves `clock` on by 5 s every 100 ms until dropped, so that retries on the pinned
/// clock come due.
pub struct MovingClock(tokio::task::JoinHandle<()>);

impl MovingClock {
    /// Starts moving `clock`.
    pub fn start(clock: Arc<TestClock>) -> Self {
        Self(tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                clock.advance(chrono::Duration::seconds(5));
            }
        }))
    }
}

impl Drop for MovingClock {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Waits up to 60 s for `check` to hold, polling; panics with `what` otherwise. Generous,
/// because the whole suite shares two cores; a passing check returns at once.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}
