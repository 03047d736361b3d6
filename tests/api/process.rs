//! The real binary as a process: `kill -9` in the middle of the media queue loses
//! nothing, and (on PostgreSQL) two `serve` processes share one queue with no job run
//! twice. Replies are counted at the loopback fake Twilio.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures::StreamExt;

use crate::fake_meta::{self, FakeMeta};
use crate::fake_twilio::{self, FakeTwilio};
use crate::helpers::*;

const PHOTO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/samples/photo_penne.jpg");

/// A `serve` process of the real binary.
pub(crate) struct Server {
    child: Child,
    pub(crate) address: String,
}

/// `whatsapp-memory serve` over `database_url` on a free port (returned), in
/// production mode, its Twilio the fake `twilio`, its media under `storage`, and no other
/// variable from the environment; callers add theirs.
pub(crate) fn serve_command(database_url: &str, twilio: &FakeTwilio, storage: &std::path::Path) -> (Command, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_whatsapp-memory"));
    command
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("APP_PORT", port.to_string())
        .env("ENV", "production")
        .env("API_KEYS", API_KEY)
        .env("DATABASE_URL", database_url)
        .env("STORAGE_DIR", storage)
        .env("TWILIO_ACCOUNT_SID", twilio.account_sid())
        .env("TWILIO_AUTH_TOKEN", twilio.auth_token())
        .env("TWILIO_API_BASE_URL", twilio.base_url())
        .env("TWILIO_WHATSAPP_NUMBER", "+14155238886")
        .env("PUBLIC_BASE_URL", PUBLIC_BASE_URL)
        // These tests drive load through one API key and many users at once; pacing has
        // tests of its own (operations.rs), so the production rate limits stay out of it.
        .env("USER_RATE_LIMIT", "off")
        .env("API_RATE_LIMIT", "off");
    (command, port)
}

impl Server {
    fn start(database_url: &str, twilio: &FakeTwilio, storage: &std::path::Path) -> Server {
        Self::start_with(database_url, twilio, storage, 2, &[])
    }

    /// A server whose job leases last `lease_seconds`.
    fn start_with_lease(
        database_url: &str,
        twilio: &FakeTwilio,
        storage: &std::path::Path,
        lease_seconds: u32,
    ) -> Server {
        Self::start_with_vars(database_url, twilio, storage, lease_seconds, &[])
    }

    /// A server with job leases of `lease_seconds` and `extra` variables (Meta's channel).
    fn start_with(
        database_url: &str,
        twilio: &FakeTwilio,
        storage: &std::path::Path,
        lease_seconds: u32,
        extra: &[(String, String)],
    ) -> Server {
        let vars: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Self::start_with_vars(database_url, twilio, storage, lease_seconds, &vars)
    }

    /// A server whose job leases last `lease_seconds`, with `vars` set besides (they win
    /// over the defaults here and in [`serve_command`]).
    pub(crate) fn start_with_vars(
        database_url: &str,
        twilio: &FakeTwilio,
        storage: &std::path::Path,
        lease_seconds: u32,
        vars: &[(&str, &str)],
    ) -> Server {
        let (mut command, port) = serve_command(database_url, twilio, storage);
        let child = command
            .env("WORKERS", "4")
            // The queue under test is the photos' own; their OCR has tests of its own.
            .env("OCR", "off")
            .env("JOB_LEASE_SECONDS", lease_seconds.to_string())
            .env("RUST_LOG", "warn")
            .env("NO_COLOR", "1")
            .envs(vars.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the binary starts");
        Server { child, address: format!("http://127.0.0.1:{port}") }
    }

    pub(crate) async fn wait_until_ready(&self) {
        let client = reqwest::Client::new();
        let url = format!("{}/readyz", self.address);
        eventually("the server to be ready", || async {
            client.get(&url).send().await.map(|r| r.status() == 200).unwrap_or(false)
        })
        .await;
    }

    /// SIGKILL: no shutdown, no cleanup, as in a crash.
    pub(crate) fn kill_9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits for the process to end: an orderly stop, as a deployment
    /// stops it (requests and jobs in hand finish first).
    pub(crate) fn stop(&mut self) {
        let status = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status().unwrap();
        assert!(status.success(), "kill -TERM failed");
        let exit = self.child.wait().unwrap();
        assert!(exit.success(), "the server did not stop cleanly: {exit}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What Twilio would put in `X-Twilio-Signature` when posting `form` to our webhook,
/// signed with `auth_token` (the fake's).
pub(crate) fn twilio_signature(auth_token: &str, form: &[(String, String)]) -> String {
    whatsapp_memory::adapters::twilio::signature::compute_signature(
        &whatsapp_memory::config::Secret::new(auth_token),
        &format!("{PUBLIC_BASE_URL}/webhook"),
        form,
    )
}

/// Sends one photo from each of `count` users to `server`, signed as Twilio would.
async fn send_photos(server: &Server, twilio: &FakeTwilio, photo: &[u8], users: std::ops::Range<usize>) {
    let client = reqwest::Client::new();
    for user in users {
        let phone = format!("+1555000{user:04}");
        let form = with_field(text_form(&phone, ""), "NumMedia", "1");
        let form = with_field(form, "MediaUrl0", &twilio.add_media(photo.to_vec(), "image/jpeg"));
        let form = with_field(form, "MediaContentType0", "image/jpeg");
        let signature = twilio_signature(twilio.auth_token(), &form);
        let response = client
            .post(format!("{}/webhook", server.address))
            .header("X-Twilio-Signature", signature)
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
}

fn replies_per_user(twilio: &FakeTwilio) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for message in twilio.sent() {
        *counts.entry(message.to).or_default() += 1;
    }
    counts
}

#[tokio::test]
async fn kill_9_in_the_middle_of_the_queue_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = fresh_database_url(&dir).await;
    let twilio = fake_twilio::start().await;
    let photo = std::fs::read(PHOTO).unwrap();

    let mut first = Server::start(&database_url, &twilio, dir.path());
    first.wait_until_ready().await;
    send_photos(&first, &twilio, &photo, 0..50).await;
    // Some work is done, most is not: crash now.
    eventually("the first replies", || async { !twilio.sent().is_empty() }).await;
    first.kill_9();
    let sent_before_crash = twilio.sent().len();
    assert!(sent_before_crash < 50, "the crash came too late to prove anything ({sent_before_crash} sent)");

    let second = Server::start(&database_url, &twilio, dir.path());
    second.wait_until_ready().await;
    eventually("a reply to all 50 photos", || async { replies_per_user(&twilio).len() == 50 }).await;
    // Leases are 2 s: give a job wrongly run twice the time to show itself.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let replies = replies_per_user(&twilio);
    assert_eq!(replies.len(), 50);
    assert!(replies.values().all(|&n| n == 1), "a photo was answered twice: {replies:?}");
    assert!(twilio.sent().iter().all(|m| m.body == "📷 Photo saved ✅"));
}

/// Posts one Cloud API delivery of a photo (served by `meta`) from each of `count` users.
async fn send_cloud_photos(server: &Server, meta: &FakeMeta, photo: &[u8], users: std::ops::Range<usize>) {
    let client = reqwest::Client::new();
    for user in users {
        let phone = format!("+1555000{user:04}");
        let (media, sha) = meta.add_media(photo.to_vec(), "image/jpeg");
        let id = format!("wamid.KILL{user:04}");
        let body = fake_meta::delivery(
            &phone,
            vec![fake_meta::media_message(&phone, &id, "image", &media, &sha, "image/jpeg")],
            vec![],
        );
        let response = client
            .post(format!("{}/whatsapp/cloud", server.address))
            .header("content-type", "application/json")
            .header("X-Hub-Signature-256", fake_meta::signature(&body))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
}

#[tokio::test]
async fn kill_9_with_cloud_api_deliveries_queued_answers_every_photo_repeating_only_replies_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = fresh_database_url(&dir).await;
    let twilio = fake_twilio::start().await;
    let meta = fake_meta::start().await;
    let photo = std::fs::read(PHOTO).unwrap();

    let mut first = Server::start_with(&database_url, &twilio, dir.path(), 2, &meta.vars());
    first.wait_until_ready().await;
    send_cloud_photos(&first, &meta, &photo, 0..50).await;
    eventually("the first replies", || async { !meta.sent().is_empty() }).await;
    first.kill_9();
    let sent_before_crash = meta.sent().len();
    assert!(sent_before_crash < 50, "the crash came too late to prove anything ({sent_before_crash} sent)");

    let second = Server::start_with(&database_url, &twilio, dir.path(), 2, &meta.vars());
    second.wait_until_ready().await;
    let per_user = || {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for message in meta.sent() {
            *counts.entry(message.to).or_default() += 1;
        }
        counts
    };
    eventually("a reply to all 50 photos", || async { per_user().len() == 50 }).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let replies = per_user();
    // The Cloud API cannot list sent messages (`MetaSender::find_sent`), so a reply Meta
    // accepted just before the kill, whose job was not yet committed as done, is sent again
    // by the survivor: at most one per worker sending at that instant (`WORKERS` is 4). Twilio's
    // sender finds such a message and never sends it twice (the test above). Anything more
    // would be jobs run twice outside that window.
    let twice = replies.values().filter(|&&n| n == 2).count();
    assert!(
        replies.values().all(|&n| n <= 2) && twice <= 4,
        "photos answered more often than the crash window allows: {replies:?}"
    );
    assert!(meta.sent().iter().all(|m| m.body == "📷 Photo saved ✅"));
    assert!(twilio.sent().is_empty(), "Cloud API messages are answered through Meta only");
}

#[tokio::test]
async fn two_serve_processes_on_postgresql_share_one_queue() {
    if std::env::var("TEST_DATABASE_URL").is_err() {
        // SQLite is one process's file; this is PostgreSQL's scale-out case, which
        // `make test` runs against the real server.
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let database_url = fresh_database_url(&dir).await;
    let twilio = fake_twilio::start().await;
    let photo = std::fs::read(PHOTO).unwrap();
    let a = Server::start(&database_url, &twilio, dir.path());
    a.wait_until_ready().await;
    let b = Server::start(&database_url, &twilio, dir.path());
    b.wait_until_ready().await;
    let (first_half, second_half) =
        tokio::join!(send_photos(&a, &twilio, &photo, 0..30), send_photos(&b, &twilio, &photo, 30..60));
    let _ = (first_half, second_half);
    eventually("a reply to all 60 photos", || async { replies_per_user(&twilio).len() == 60 }).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let replies = replies_per_user(&twilio);
    assert!(replies.values().all(|&n| n == 1), "a job ran twice: {replies:?}");
    assert_eq!(twilio.sent().len(), 60);
}

/// What one message sent to a server was, and whether it was acknowledged (a 200).
struct Sent {
    sid: String,
    /// The sender, as the fake Twilio records a reply's recipient.
    to: String,
    photo: bool,
    acknowledged: bool,
}

/// Sends `count` messages to `server`, four at a time: even ones photos (each from a user
/// of its own, `+1555{prefix}NNNN`), odd ones texts. A server that is gone answers nothing:
/// those are not acknowledged.
async fn send_mixed(address: &str, twilio: &FakeTwilio, photo: &[u8], prefix: u32, count: usize) -> Vec<Sent> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    let forms: Vec<_> = (0..count)
        .map(|i| {
            let phone = format!("+1555{prefix}{i:04}");
            let to = format!("whatsapp:{phone}");
            if i % 2 == 0 {
                let form = with_field(text_form(&phone, ""), "NumMedia", "1");
                let form = with_field(form, "MediaUrl0", &twilio.add_media(photo.to_vec(), "image/jpeg"));
                (with_field(form, "MediaContentType0", "image/jpeg"), to, true)
            } else {
                (text_form(&phone, &format!("note {prefix} {i}")), to, false)
            }
        })
        .collect();
    let url = format!("{address}/webhook");
    futures::stream::iter(forms)
        .map(|(form, to, photo)| {
            let client = client.clone();
            let url = url.clone();
            let token = twilio.auth_token().to_string();
            async move {
                let sid = form.iter().find(|(k, _)| k == "MessageSid").map(|(_, v)| v.clone()).unwrap();
                let signature = twilio_signature(&token, &form);
                let answer = client.post(&url).header("X-Twilio-Signature", signature).form(&form).send().await;
                let acknowledged = matches!(answer, Ok(response) if response.status() == 200);
                Sent { sid, to, photo, acknowledged }
            }
        })
        .buffer_unordered(4)
        .collect()
        .await
}

async fn scalar(db: &sea_orm::DatabaseConnection, sql: &str) -> i64 {
    let row = sea_orm::ConnectionTrait::query_one_raw(
        db,
        sea_orm::Statement::from_string(sea_orm::DbBackend::Postgres, sql.to_string()),
    )
    .await
    .unwrap()
    .expect("one row");
    row.try_get_by_index::<i64>(0).unwrap()
}

/// Issue 16, item 5: two servers on one PostgreSQL database under load over both, one
/// killed (-9) mid-way while it holds leased jobs. Every message either acknowledged is
/// stored once, every job runs once, and the survivor finishes the dead one's jobs once
/// their lease has run out. The dead server's leases (8 s) outlast the survivor's (2 s),
/// which tells whose a running job is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_postgresql_one_killed_mid_way_lose_nothing_and_repeat_nothing() {
    if std::env::var("TEST_DATABASE_URL").is_err() {
        return; // PostgreSQL's scale-out case; SQLite is one process's file.
    }
    let dir = tempfile::tempdir().unwrap();
    let database_url = fresh_database_url(&dir).await;
    let twilio = fake_twilio::start().await;
    let photo = std::fs::read(PHOTO).unwrap();
    let mut doomed = Server::start_with_lease(&database_url, &twilio, dir.path(), 8);
    doomed.wait_until_ready().await;
    let survivor = Server::start_with_lease(&database_url, &twilio, dir.path(), 2);
    survivor.wait_until_ready().await;
    let db = sea_orm::Database::connect(&database_url).await.unwrap();

    // The doomed server's running jobs: leases more than 4 s ahead are its own.
    const DOOMED_RUNNING: &str =
        "SELECT count(*) FROM jobs WHERE state = 'running' AND lease_until > now() + interval '4 seconds'";
    let doomed_address = doomed.address.clone();
    let killer = async {
        eventually("the doomed server to be running jobs", || async { scalar(&db, DOOMED_RUNNING).await > 0 }).await;
        let held = sea_orm::ConnectionTrait::query_all_raw(
            &db,
            sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT id, lease_until FROM jobs WHERE state = 'running' AND lease_until > now() + interval '4 seconds'",
            ),
        );
        doomed.kill_9();
        let held: Vec<(i64, chrono::DateTime<chrono::Utc>)> = held
            .await
            .unwrap()
            .iter()
            .map(|row| (row.try_get("", "id").unwrap(), row.try_get("", "lease_until").unwrap()))
            .collect();
        held
    };
    let (to_doomed, to_survivor, held) = tokio::join!(
        send_mixed(&doomed_address, &twilio, &photo, 1, 120),
        send_mixed(&survivor.address, &twilio, &photo, 2, 120),
        killer
    );
    assert!(!held.is_empty(), "the doomed server held no job when it died");
    let acknowledged: Vec<&Sent> = to_doomed.iter().chain(&to_survivor).filter(|s| s.acknowledged).collect();
    assert!(to_doomed.iter().any(|s| s.acknowledged), "the doomed server acknowledged nothing before it died");
    assert!(to_doomed.iter().any(|s| !s.acknowledged), "the doomed server died after its load was over");
    assert!(to_survivor.iter().all(|s| s.acknowledged), "the survivor refused messages");

    // Every acknowledged message is stored once: a text as one memory, a photo as one
    // media job.
    for sent in &acknowledged {
        let sid = &sent.sid;
        let inbound =
            scalar(&db, &format!("SELECT count(*) FROM interactions WHERE twilio_message_sid = '{sid}'")).await;
        assert_eq!(inbound, 1, "{sid} acknowledged but stored {inbound} times");
        let (what, count) = if sent.photo {
            ("media jobs", format!(
                "SELECT count(*) FROM jobs WHERE kind = 'media.ingest' AND (payload->>'interaction_id')::bigint =                  (SELECT id FROM interactions WHERE twilio_message_sid = '{sid}')"
            ))
        } else {
            ("memories", format!(
                "SELECT count(*) FROM memories WHERE interaction_id =                  (SELECT id FROM interactions WHERE twilio_message_sid = '{sid}')"
            ))
        };
        assert_eq!(scalar(&db, &count).await, 1, "{sid}: {what}");
    }
    // Every job runs, once: the survivor takes over the dead server's jobs after their
    // lease and every photo (acknowledged, or committed just before the kill) gets one reply.
    eventually("every job done", || async {
        scalar(&db, "SELECT count(*) FROM jobs WHERE state <> 'done'").await == 0
    })
    .await;
    let photo_jobs = scalar(&db, "SELECT count(*) FROM jobs WHERE kind = 'media.ingest'").await;
    eventually("a reply to every photo", || async { twilio.sent().len() as i64 >= photo_jobs }).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let replies = replies_per_user(&twilio);
    assert!(replies.values().all(|&n| n == 1), "a photo was answered twice: {replies:?}");
    assert_eq!(twilio.sent().len() as i64, photo_jobs);
    for sent in acknowledged.iter().filter(|s| s.photo) {
        assert_eq!(replies.get(&sent.to), Some(&1), "{} sent an acknowledged photo", sent.to);
    }
    for (job, lease_until) in held {
        let row = sea_orm::ConnectionTrait::query_one_raw(
            &db,
            sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                format!("SELECT state, attempts, updated_at FROM jobs WHERE id = {job}"),
            ),
        )
        .await
        .unwrap()
        .expect("the job is still there");
        let state: String = row.try_get("", "state").unwrap();
        let attempts: i32 = row.try_get("", "attempts").unwrap();
        let updated_at: chrono::DateTime<chrono::Utc> = row.try_get("", "updated_at").unwrap();
        assert_eq!(state, "done");
        assert!(attempts >= 2, "job {job} was not claimed again ({attempts} attempts)");
        assert!(updated_at >= lease_until, "job {job} was taken over before its lease ran out");
    }
}

/// Before the migration lock, one of two processes migrating a fresh database together
/// died with "table users already exists" (SQLite) or a duplicate `pg_type` key.
#[tokio::test]
async fn several_processes_migrating_a_fresh_database_at_once_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = fresh_database_url(&dir).await;
    let migrators: Vec<_> = (0..6)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_whatsapp-memory"))
                .arg("migrate")
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("DATABASE_URL", &database_url)
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("the binary starts")
        })
        .collect();
    for migrator in migrators {
        let output = migrator.wait_with_output().unwrap();
        assert!(output.status.success(), "a migrator failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let db = sea_orm::Database::connect(&database_url).await.unwrap();
    let row = sea_orm::ConnectionTrait::query_one_raw(
        &db,
        sea_orm::Statement::from_string(db.get_database_backend(), "SELECT count(*) FROM seaql_migrations"),
    )
    .await
    .unwrap()
    .expect("one row");
    assert_eq!(
        row.try_get_by_index::<i64>(0).unwrap(),
        <migration::Migrator as migration::MigratorTrait>::migrations().len() as i64
    );
}
