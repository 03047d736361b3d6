//! Load generator behind `make bench` (see `bench/run.sh` and `bench/README.md`).
//!
//! It drives a running `whatsapp-memory serve` through `POST /webhook` exactly as Twilio
//! would: every request is a new message (a text, or a photo for `media`) with a unique
//! `MessageSid`, form-encoded and signed with `X-Twilio-Signature`. It then checks in the
//! SQLite file that every `200` answer left its rows behind.
//!
//! ```text
//! cargo build --release --example loadgen
//! L=target/release/examples/loadgen
//! # 15 s throughput run: 16 connections, 50 users, rows checked afterwards
//! $L webhook --url http://127.0.0.1:8080/webhook --token "$TWILIO_AUTH_TOKEN" \
//!     --duration 15 --connections 16 --users 50 --verify-db /abs/path/bench.db
//! # 100,000 memories for one user, then 2,000 `/search` messages from that user
//! $L seed   --url ... --token ... --count 100000 --verify-db /abs/path/bench.db
//! $L search --url ... --token ... --count 2000 --connections 1 --verify-db ...
//! # 15 s of photo messages whose MediaUrl0 points at a fake Twilio (bench/fake_twilio.py)
//! $L media  --url ... --token ... --media-base http://127.0.0.1:9100 --verify-db ...
//! # 10 minutes of mixed traffic at 2,000 requests/s, memory and p99 per minute
//! $L soak   --url ... --token ... --media-base ... --api-key ... --server-pid PID --rate 2000
//! # helpers used by bench/run.sh so that it needs no other tool
//! $L free-port
//! $L wait-ready --url http://127.0.0.1:8080/readyz --timeout 60
//! $L verify --db /abs/path/bench.db --expect-inbound 45000 --expect-memories 45000
//! $L sample-jpeg --out photo.jpg   # a stand-in photo when the real sample is missing
//! ```
//!
//! The generator shares the machine's 2 cores with the server, so it is kept lean: every
//! request is built and signed before the timed window, as one byte string that is written
//! as is to a kept-alive connection; answers are parsed in place by a minimal HTTP/1.1
//! reader; the runtime is single-threaded by default (`--threads`). All connections are
//! opened first and every worker starts at the same instant (a barrier).
//!
//! Exit codes: 0 when everything was answered `200` and the rows match, 3 when a check
//! failed (a non-`200` answer, a transport error or a row count that does not match), 1 for
//! any other error.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use clap::{Args, Parser, Subcommand};
use hmac::{Hmac, Mac};
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use sea_orm::ConnectionTrait as _;
use sha1::Sha1;
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Barrier;

/// The soak (`loadgen soak`): its own modules under `examples/soak/`.
mod soak;

/// Exit code for a failed check, distinct from a crash so that `bench/run.sh` can say which.
const EXIT_CHECK_FAILED: u8 = 3;
/// What the service answers to a saved text memory.
const SAVED_MARKER: &[u8] = "Memory saved".as_bytes();
/// What the service answers to a search without results.
const NO_MATCH_MARKER: &[u8] = b"No matching memories found";
/// Users are `whatsapp:+1555000NNNN`; the seeded search user is NNNN = 9999 by default, out
/// of the range the throughput run uses, so that it holds exactly the seeded memories.
const WA_PREFIX: &str = "1555000";

#[derive(Parser)]
#[command(about = "Signed Twilio webhook load generator for whatsapp-memory (make bench)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Throughput run: new signed text messages from N users for a fixed time.
    Webhook(WebhookArgs),
    /// Sends COUNT text memories for one user, as fast as the server takes them.
    Seed(SeedArgs),
    /// Sends `/search <words>` messages for one user and reports their latency.
    Search(SearchArgs),
    /// Throughput run with photos: each message carries one media URL on a fake Twilio,
    /// so the service's workers fetch, decode and reply while the webhook is loaded.
    Media(MediaArgs),
    /// Throughput run of Meta's Cloud API webhook: signed JSON deliveries of one new text
    /// each to `/whatsapp/cloud`, answered 200 once stored; rows checked once processed.
    Cloud(CloudArgs),
    /// Compares row counts in the SQLite file with expected numbers.
    Verify(VerifyArgs),
    /// Prints a free TCP port on 127.0.0.1, so that bench/run.sh needs no other tool.
    FreePort,
    /// Waits until GET URL answers 200 (exit 1 after --timeout seconds).
    WaitReady(WaitReadyArgs),
    /// Soak: minutes of mixed traffic (texts, redeliveries, commands, photos, voice notes,
    /// REST) at a fixed rate, with errors, latency and the server's memory per window.
    Soak(soak::SoakArgs),
    /// Writes a photo-like JPEG, for when the real sample photo is missing.
    SampleJpeg(SampleJpegArgs),
}

/// Where and how to send webhooks; shared by the three load modes.
#[derive(Args, Clone)]
struct Target {
    /// Webhook URL the requests are sent to.
    #[arg(long, default_value = "http://127.0.0.1:8080/webhook")]
    url: String,
    /// URL that the signature covers (PUBLIC_BASE_URL + "/webhook"); defaults to --url.
    #[arg(long)]
    sign_url: Option<String>,
    /// Twilio auth token the server checks signatures with.
    #[arg(long, env = "TWILIO_AUTH_TOKEN", hide_env_values = true)]
    token: String,
    /// AccountSid sent in every message.
    #[arg(long, env = "TWILIO_ACCOUNT_SID", default_value = "AC00000000000000000000000000000000")]
    account_sid: String,
    /// The service's WhatsApp number (the `To` of every message).
    #[arg(long, env = "TWILIO_WHATSAPP_NUMBER", default_value = "+14155238886")]
    to_number: String,
    /// A request without a full answer after this long counts as an error.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    /// Seed of the text generator (the vocabulary itself is fixed).
    #[arg(long, default_value_t = 42)]
    rng_seed: u64,
    /// Runtime threads of the generator; 1 leaves the most CPU to the server.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// SQLite file of the server: rows are counted before and after the run and must grow
    /// by exactly the number of 200 answers; it is also probed for committed sids meanwhile.
    #[arg(long, conflicts_with = "verify_url")]
    verify_db: Option<PathBuf>,
    /// The same checks on a PostgreSQL server's database (`postgres://…`), instead of
    /// --verify-db.
    #[arg(long)]
    verify_url: Option<String>,
    /// Writes every sid answered `200` in the timed window to this file, one a line
    /// (`SM…`), for checks the script makes itself (two servers on one database).
    #[arg(long)]
    acked_out: Option<PathBuf>,
    /// During the run, check every Nth answered sid in the database right after its 200
    /// (0 = never): a missing row means the answer came before the commit.
    #[arg(long, default_value_t = 250)]
    probe_every: usize,
    /// Writes key=value results to this file, for bench/run.sh.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Do not fail on non-200 answers or transport errors (row checks still apply).
    #[arg(long)]
    allow_errors: bool,
}

impl Target {
    /// The database to check, when one is named.
    fn store(&self) -> Option<Store> {
        match (&self.verify_db, &self.verify_url) {
            (Some(path), _) => Some(Store::Sqlite(path.clone())),
            (None, Some(url)) => Some(Store::Postgres(url.clone())),
            (None, None) => None,
        }
    }
}

/// Arguments of the throughput run.
#[derive(Args)]
struct WebhookArgs {
    #[command(flatten)]
    target: Target,
    /// Length of the timed window, in seconds.
    #[arg(long, default_value_t = 15.0)]
    duration: f64,
    /// Concurrent keep-alive connections, one worker each.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Distinct senders (at most 9999).
    #[arg(long, default_value_t = 50)]
    users: u32,
    /// Requests are pre-built for this rate over --duration; a worker that runs out stops
    /// early and the run says so.
    #[arg(long, default_value_t = 20_000)]
    max_rate: u64,
}

/// Arguments of the Cloud API throughput run (the same shape as `webhook`'s).
#[derive(Args)]
struct CloudArgs {
    #[command(flatten)]
    target: Target,
    /// META_APP_SECRET of the server: deliveries are signed with it (X-Hub-Signature-256).
    #[arg(long, env = "META_APP_SECRET", hide_env_values = true)]
    app_secret: String,
    /// Length of the timed window, in seconds.
    #[arg(long, default_value_t = 15.0)]
    duration: f64,
    /// Concurrent keep-alive connections, one worker each.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Distinct senders (at most 9999).
    #[arg(long, default_value_t = 50)]
    users: u32,
    /// Requests are pre-built for this rate over --duration (as for `webhook`).
    #[arg(long, default_value_t = 20_000)]
    max_rate: u64,
    /// After the run, how long the server's workers may take to process the stored
    /// deliveries before the rows are counted.
    #[arg(long, default_value_t = 180)]
    drain_timeout: u64,
}

/// Arguments of the seeding run.
#[derive(Args)]
struct SeedArgs {
    #[command(flatten)]
    target: Target,
    /// Memories to send.
    #[arg(long, default_value_t = 100_000)]
    count: usize,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// The user's number is 1555000NNNN with NNNN = this.
    #[arg(long, default_value_t = 9999)]
    user: u32,
}

/// Arguments of the search latency run.
#[derive(Args)]
struct SearchArgs {
    #[command(flatten)]
    target: Target,
    /// Timed searches.
    #[arg(long, default_value_t = 2_000)]
    count: usize,
    /// Untimed searches first, per connection (their rows are still checked).
    #[arg(long, default_value_t = 50)]
    warmup: usize,
    /// Concurrent connections; 1 measures one search at a time.
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// The user's number is 1555000NNNN with NNNN = this.
    #[arg(long, default_value_t = 9999)]
    user: u32,
    /// Require that the user holds exactly this many memories before searching.
    #[arg(long)]
    expect_user_memories: Option<i64>,
}

/// Arguments of the media run.
#[derive(Args)]
struct MediaArgs {
    #[command(flatten)]
    target: Target,
    /// Length of the timed window, in seconds.
    #[arg(long, default_value_t = 15.0)]
    duration: f64,
    /// Concurrent keep-alive connections, one worker each.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Distinct senders (at most 9999).
    #[arg(long, default_value_t = 50)]
    users: u32,
    /// Requests are pre-built for this rate over --duration (as for `webhook`).
    #[arg(long, default_value_t = 10_000)]
    max_rate: u64,
    /// Base of the (fake) Twilio API the server fetches media from, i.e. its
    /// TWILIO_API_BASE_URL: every MediaUrl0 is {base}/2010-04-01/Accounts/{sid}/Messages/MM…/Media/ME….
    #[arg(long)]
    media_base: String,
    /// MediaContentType0 of every message.
    #[arg(long, default_value = "image/jpeg")]
    content_type: String,
}

/// Arguments of the stand-alone row check.
#[derive(Args)]
struct VerifyArgs {
    /// SQLite file of the server.
    #[arg(long)]
    db: PathBuf,
    /// Expected number of inbound interactions.
    #[arg(long)]
    expect_inbound: Option<i64>,
    /// Expected number of memories, all users.
    #[arg(long)]
    expect_memories: Option<i64>,
    /// With --expect-user-memories: the user's number is 1555000NNNN with NNNN = this.
    #[arg(long, default_value_t = 9999)]
    user: u32,
    /// Expected number of memories of --user.
    #[arg(long)]
    expect_user_memories: Option<i64>,
}

/// Arguments of the stand-in photo.
#[derive(Args)]
struct SampleJpegArgs {
    /// Where to write it.
    #[arg(long)]
    out: PathBuf,
    /// Width in pixels (the real sample is 998 x 1280).
    #[arg(long, default_value_t = 998)]
    width: u32,
    /// Height in pixels.
    #[arg(long, default_value_t = 1280)]
    height: u32,
}

/// Arguments of the readiness wait.
#[derive(Args)]
struct WaitReadyArgs {
    /// URL that must answer 200.
    #[arg(long, default_value = "http://127.0.0.1:8080/readyz")]
    url: String,
    /// Seconds to wait at most.
    #[arg(long, default_value_t = 60.0)]
    timeout: f64,
}

/// Picks the runtime size before anything runs: one thread by default leaves the server the most CPU.
fn main() -> ExitCode {
    let cli = Cli::parse();
    let threads = match &cli.command {
        Command::Webhook(a) => a.target.threads,
        Command::Seed(a) => a.target.threads,
        Command::Search(a) => a.target.threads,
        Command::Media(a) => a.target.threads,
        Command::Soak(a) => a.target.threads,
        _ => 1,
    };
    let runtime = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()
    };
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(EXIT_CHECK_FAILED),
        Err(e) => {
            eprintln!("loadgen: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one subcommand; `Ok(false)` means a check failed.
async fn run(command: Command) -> Result<bool> {
    match command {
        Command::Webhook(a) => webhook(a).await,
        Command::Seed(a) => seed(a).await,
        Command::Search(a) => search(a).await,
        Command::Media(a) => media(a).await,
        Command::Cloud(a) => cloud(a).await,
        Command::Verify(a) => verify(a),
        Command::FreePort => {
            let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
            println!("{}", listener.local_addr()?.port());
            Ok(true)
        }
        Command::WaitReady(a) => wait_ready(a).await,
        Command::SampleJpeg(a) => sample_jpeg(a),
        Command::Soak(a) => soak::soak(a).await,
    }
}

// ---------------------------------------------------------------------------------------
// The four load modes
// ---------------------------------------------------------------------------------------

/// The issue's throughput run: a timed window over many users, every message new and signed.
async fn webhook(a: WebhookArgs) -> Result<bool> {
    if a.users == 0 || a.users > 9999 {
        bail!("--users must be 1..=9999");
    }
    let duration = Duration::from_secs_f64(a.duration);
    let t = &a.target;
    let signer = Signer::new(t)?;
    let vocab = Vocabulary::new();
    let mut rng = Rng::new(t.rng_seed);
    let users: Vec<User> = (0..a.users).map(User::new).collect();
    let total = ((a.max_rate as f64 * a.duration).ceil() as usize).max(a.connections);
    eprintln!("[webhook] signing {total} requests before the timed window...");
    let sids = SidGen::new(1);
    let reqs = prebuild(total, a.connections, |i| {
        let user = &users[rng.below(users.len() as u64) as usize];
        let body = vocab.sentence(&mut rng);
        signer.request(sids.sid(i as u64), user, &body)
    });
    let label = format!("webhook: {} connections, {} users, {:.1} s", a.connections, a.users, a.duration);
    let run = LoadRun {
        label,
        expect: Expect::Saved,
        deadline: Some(duration),
        warmup: 0,
        memories_per_ok: Some(1),
        user_for_count: None,
        check_media: false,
    };
    execute(&signer, t, run, reqs).await
}

/// The Cloud API throughput run: as `webhook`, through `/whatsapp/cloud`. The answer comes
/// once the delivery is stored; the rows (one inbound interaction and one memory per 200)
/// are counted after the server's workers processed every stored delivery.
async fn cloud(a: CloudArgs) -> Result<bool> {
    if a.users == 0 || a.users > 9999 {
        bail!("--users must be 1..=9999");
    }
    let duration = Duration::from_secs_f64(a.duration);
    let t = &a.target;
    let signer = Signer::new(t)?;
    let mac =
        Hmac::<Sha256>::new_from_slice(a.app_secret.as_bytes()).map_err(|e| anyhow::anyhow!("bad secret: {e}"))?;
    let vocab = Vocabulary::new();
    let mut rng = Rng::new(t.rng_seed);
    let users: Vec<User> = (0..a.users).map(User::new).collect();
    let total = ((a.max_rate as f64 * a.duration).ceil() as usize).max(a.connections);
    eprintln!("[cloud] signing {total} deliveries before the timed window...");
    let sids = SidGen::new(5);
    let reqs = prebuild(total, a.connections, |i| {
        let user = &users[rng.below(users.len() as u64) as usize];
        let body = vocab.sentence(&mut rng);
        signer.cloud_request(&mac, sids.sid(i as u64), user, &body)
    });
    let label = format!("cloud: {} connections, {} users, {:.1} s", a.connections, a.users, a.duration);
    let run = LoadRun {
        label,
        expect: Expect::Received,
        deadline: Some(duration),
        warmup: 0,
        memories_per_ok: Some(1),
        user_for_count: None,
        check_media: false,
    };
    execute_drained(&signer, t, run, reqs, Duration::from_secs(a.drain_timeout)).await
}

/// Fills one user's memory through the real write path, so that search runs on realistic data.
async fn seed(a: SeedArgs) -> Result<bool> {
    let t = &a.target;
    let signer = Signer::new(t)?;
    let vocab = Vocabulary::new();
    let mut rng = Rng::new(t.rng_seed ^ 0x5eed);
    let user = User::new(a.user);
    eprintln!("[seed] signing {} requests for {}...", a.count, user.wa_id);
    let sids = SidGen::new(2);
    let reqs = prebuild(a.count, a.connections, |i| {
        let body = vocab.sentence(&mut rng);
        signer.request(sids.sid(i as u64), &user, &body)
    });
    let run = LoadRun {
        label: format!("seed: {} memories for {}, {} connections", a.count, user.wa_id, a.connections),
        expect: Expect::Saved,
        deadline: None,
        warmup: 0,
        memories_per_ok: Some(1),
        user_for_count: Some(user.wa_id.clone()),
        check_media: false,
    };
    execute(&signer, t, run, reqs).await
}

/// Times `/search` for the seeded user, through the webhook as a person would search.
async fn search(a: SearchArgs) -> Result<bool> {
    let t = &a.target;
    let signer = Signer::new(t)?;
    let vocab = Vocabulary::new();
    let mut rng = Rng::new(t.rng_seed ^ 0x5ea4c4);
    let user = User::new(a.user);
    if let (Some(db), Some(want)) = (t.store(), a.expect_user_memories) {
        let have = db.counts(Some(&user.wa_id)).await?.user_memories;
        if have != Some(want) {
            eprintln!("[search] FAIL: {} holds {} memories, expected {want}", user.wa_id, fmt_opt(have));
            return Ok(false);
        }
    }
    let per_conn = a.count.div_ceil(a.connections.max(1)) + a.warmup;
    let total = per_conn * a.connections;
    let sids = SidGen::new(3);
    let reqs = prebuild(total, a.connections, |i| {
        let (words, kind) = vocab.query(&mut rng);
        let mut req = signer.request(sids.sid(i as u64), &user, &format!("/search {words}"));
        req.query = Some((words.into_boxed_str(), kind));
        req
    });
    let run = LoadRun {
        label: format!(
            "search: {} queries as {}, {} connection(s), {} warm-up each",
            per_conn.saturating_sub(a.warmup) * a.connections,
            user.wa_id,
            a.connections,
            a.warmup
        ),
        expect: Expect::Search,
        deadline: None,
        warmup: a.warmup,
        memories_per_ok: Some(0),
        user_for_count: Some(user.wa_id.clone()),
        check_media: false,
    };
    execute(&signer, t, run, reqs).await
}

/// The text run's load with photos: each message carries one new media URL on the fake
/// Twilio (all serving the same bytes), so the workers fetch, decode and reply meanwhile.
async fn media(a: MediaArgs) -> Result<bool> {
    if a.users == 0 || a.users > 9999 {
        bail!("--users must be 1..=9999");
    }
    let base = a.media_base.trim_end_matches('/');
    let parsed = url::Url::parse(base).with_context(|| format!("bad --media-base {base}"))?;
    if parsed.host_str().is_none() {
        bail!("--media-base needs a host");
    }
    let duration = Duration::from_secs_f64(a.duration);
    let t = &a.target;
    let signer = Signer::new(t)?;
    let mut rng = Rng::new(t.rng_seed ^ 0x9e0_7a55);
    let users: Vec<User> = (0..a.users).map(User::new).collect();
    let total = ((a.max_rate as f64 * a.duration).ceil() as usize).max(a.connections);
    eprintln!("[media] signing {total} requests before the timed window...");
    let sids = SidGen::new(4);
    let media_prefix = format!("{base}/2010-04-01/Accounts/{}/Messages/", t.account_sid);
    let mut url = String::with_capacity(media_prefix.len() + 80);
    let reqs = prebuild(total, a.connections, |i| {
        let user = &users[rng.below(users.len() as u64) as usize];
        let sid = sids.sid(i as u64);
        url.clear();
        let _ = write!(url, "{media_prefix}MM{sid:032x}/Media/ME{sid:032x}");
        signer.media_request(sid, user, &url, &a.content_type)
    });
    let label = format!(
        "media: {} connections, {} users, {:.1} s, one photo per message from {base}",
        a.connections, a.users, a.duration
    );
    let run = LoadRun {
        label,
        expect: Expect::NoReply,
        deadline: Some(duration),
        warmup: 0,
        memories_per_ok: None,
        user_for_count: None,
        check_media: true,
    };
    execute(&signer, t, run, reqs).await
}

/// Splits `total` requests built by `make` over `workers` lists, round-robin.
fn prebuild(total: usize, workers: usize, mut make: impl FnMut(usize) -> Prepared) -> Vec<Vec<Prepared>> {
    let started = Instant::now();
    let workers = workers.max(1);
    let mut lists: Vec<Vec<Prepared>> = (0..workers).map(|_| Vec::with_capacity(total / workers + 1)).collect();
    for i in 0..total {
        lists[i % workers].push(make(i));
    }
    eprintln!("  signed {total} requests in {:.1} s", started.elapsed().as_secs_f64());
    lists
}

/// One load run, as `execute` needs it.
struct LoadRun {
    /// Headline of the printed report.
    label: String,
    /// What a correct answer contains.
    expect: Expect,
    /// Timed window; `None` sends every prepared request.
    deadline: Option<Duration>,
    /// Requests per worker sent before the barrier and left out of the statistics.
    warmup: usize,
    /// Memories each `200` must add (1 for a text, 0 for a search); `None` for photos,
    /// whose memories the workers save later.
    memories_per_ok: Option<i64>,
    /// Also count this user's memories.
    user_for_count: Option<String>,
    /// After the run, look every answered sid up: its inbound interaction and its one
    /// `media.ingest` job must be there (and count the jobs by state).
    check_media: bool,
}

/// Opens the connections, runs the workers, prints and writes the results, checks rows.
async fn execute(signer: &Signer, t: &Target, run: LoadRun, lists: Vec<Vec<Prepared>>) -> Result<bool> {
    execute_drained(signer, t, run, lists, Duration::ZERO).await
}

/// Waits up to `timeout` for the server to have processed every stored Cloud API delivery.
fn wait_for_deliveries(path: &Path, timeout: Duration) -> Result<()> {
    let db = open_read_only(path)?;
    let started = Instant::now();
    loop {
        let pending: i64 = db.query_row(
            "SELECT COUNT(*) FROM jobs WHERE kind = 'meta.delivery' AND state IN ('queued', 'running')",
            [],
            |r| r.get(0),
        )?;
        if pending == 0 {
            eprintln!("  deliveries processed {:.1} s after the run", started.elapsed().as_secs_f64());
            return Ok(());
        }
        if started.elapsed() > timeout {
            bail!("{pending} deliveries still unprocessed {} s after the run", timeout.as_secs());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// As [`execute`]; with a non-zero `drain`, the rows are counted only once the server has
/// processed every stored delivery (and no commit probe runs: a delivery is stored as a
/// job, its interaction comes later).
async fn execute_drained(
    signer: &Signer,
    t: &Target,
    run: LoadRun,
    lists: Vec<Vec<Prepared>>,
    drain: Duration,
) -> Result<bool> {
    let store = t.store();
    let before = match &store {
        Some(db) => Some(db.counts(run.user_for_count.as_deref()).await?),
        None => None,
    };
    let workers = lists.len();
    let mut conns = Vec::with_capacity(workers);
    for _ in 0..workers {
        conns.push(Conn::connect(signer.addr).await.with_context(|| format!("cannot connect to {}", signer.addr))?);
    }
    let barrier = Arc::new(Barrier::new(workers + 1));
    let progress = Arc::new(AtomicU64::new(0));
    let planned: usize = lists.iter().map(|l| l.len().saturating_sub(run.warmup)).sum();
    let settings = Arc::new(WorkerSettings {
        deadline: run.deadline,
        timeout: Duration::from_millis(t.timeout_ms),
        expect: run.expect,
        warmup: run.warmup,
        addr: signer.addr,
        collect_sids: (run.check_media && store.is_some()) || t.acked_out.is_some(),
    });
    let mut handles = Vec::with_capacity(workers);
    for (i, (conn, list)) in conns.into_iter().zip(lists).enumerate() {
        // Worker 0 alone probes the database, so that the probe costs one connection little.
        let probe = match (&store, i, t.probe_every) {
            (Some(db), 0, n) if n > 0 && drain.is_zero() => Some(Probe::open(db, n).await?),
            _ => None,
        };
        handles.push(tokio::spawn(worker(conn, list, barrier.clone(), settings.clone(), progress.clone(), probe)));
    }
    barrier.wait().await;
    let started = Instant::now();
    let reporter = tokio::spawn(report_progress(progress.clone(), planned, run.deadline));
    let mut stats = Vec::with_capacity(workers);
    for h in handles {
        stats.push(h.await?);
    }
    reporter.abort();
    let wall = started.elapsed();
    let total = Totals::merge(stats, wall);
    if let (Some(db), false) = (&t.verify_db, drain.is_zero()) {
        wait_for_deliveries(db, drain)?;
    }
    let after = match &store {
        Some(db) => Some(db.counts(run.user_for_count.as_deref()).await?),
        None => None,
    };
    let media = match &store {
        Some(Store::Sqlite(db)) if run.check_media => Some(media_rows(db, &total.ok_sids)?),
        Some(Store::Postgres(_)) if run.check_media => bail!("the media run checks an SQLite file only"),
        _ => None,
    };
    if let Some(path) = &t.acked_out {
        let mut lines = String::with_capacity(total.ok_sids.len() * 35);
        for sid in &total.ok_sids {
            let _ = writeln!(lines, "SM{sid:032x}");
        }
        std::fs::write(path, lines).with_context(|| format!("cannot write {}", path.display()))?;
    }
    report(t, &run, &total, before.zip(after), media)
}

/// Prints a progress line every 5 s on stderr, so that a long seed is seen to move.
async fn report_progress(progress: Arc<AtomicU64>, planned: usize, deadline: Option<Duration>) {
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    tick.tick().await;
    loop {
        tick.tick().await;
        let done = progress.load(Ordering::Relaxed);
        let secs = start.elapsed().as_secs_f64();
        match deadline {
            Some(d) => {
                eprintln!("  ... {secs:.0}/{:.0} s, {done} answers ({:.0}/s)", d.as_secs_f64(), done as f64 / secs)
            }
            None => eprintln!("  ... {done}/{planned} answers ({:.0}/s)", done as f64 / secs),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Workers
// ---------------------------------------------------------------------------------------

/// What every worker of a run shares.
struct WorkerSettings {
    deadline: Option<Duration>,
    timeout: Duration,
    expect: Expect,
    warmup: usize,
    addr: SocketAddr,
    /// Keep the sid of every timed `200`, for the row check after the run.
    collect_sids: bool,
}

/// What a correct answer looks like.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// A saved text: the TwiML contains "Memory saved".
    Saved,
    /// A search: numbered results, or "No matching memories found.".
    Search,
    /// Media, answered later: an empty TwiML `<Response/>`.
    NoReply,
    /// A Cloud API delivery, stored: `EVENT_RECEIVED`.
    Received,
}

/// One worker's counts; merged into [`Totals`] at the end.
#[derive(Default)]
struct WorkerStats {
    /// Latency of every answered timed request, in nanoseconds.
    latencies_ns: Vec<u64>,
    /// Sids answered `200` in the timed window, when [`WorkerSettings::collect_sids`].
    ok_sids: Vec<u128>,
    /// Search latencies by kind of query.
    by_kind: BTreeMap<QueryKind, Vec<u64>>,
    /// The slowest searches: latency and words.
    slowest: Vec<(u64, Box<str>)>,
    ok: u64,
    warmup_ok: u64,
    unexpected_body: u64,
    search_hits: u64,
    search_misses: u64,
    statuses: BTreeMap<u16, u64>,
    io_errors: u64,
    timeouts: u64,
    ran_out: bool,
    probes: u64,
    probe_missing: u64,
    first_error: Option<String>,
    start: Option<Instant>,
    end: Option<Instant>,
}

impl WorkerStats {
    /// Keeps the 5 slowest searches (a copy of the words only when one makes the list).
    fn note_slow(&mut self, ns: u64, words: &str) {
        if self.slowest.len() < 5 {
            self.slowest.push((ns, words.into()));
        } else if let Some(min) = self.slowest.iter_mut().min_by_key(|e| e.0) {
            if ns > min.0 {
                *min = (ns, words.into());
            }
        }
    }

    /// Keeps the first error text only; a closure so that the common path formats nothing.
    fn note_error(&mut self, msg: impl FnOnce() -> String) {
        if self.first_error.is_none() {
            self.first_error = Some(msg());
        }
    }
}

/// Sends one worker's requests back to back on one connection.
async fn worker(
    mut conn: Conn,
    list: Vec<Prepared>,
    barrier: Arc<Barrier>,
    s: Arc<WorkerSettings>,
    progress: Arc<AtomicU64>,
    mut probe: Option<Probe>,
) -> WorkerStats {
    let mut st = WorkerStats { latencies_ns: Vec::with_capacity(list.len()), ..WorkerStats::default() };
    if s.collect_sids {
        st.ok_sids.reserve(list.len());
    }
    let warm = s.warmup.min(list.len());
    for req in &list[..warm] {
        if let Ok(Ok(ans)) = tokio::time::timeout(s.timeout, conn.exchange(&req.bytes)).await {
            if ans.status == 200 {
                st.warmup_ok += 1;
            }
            if ans.close && conn.reconnect(s.addr).await.is_err() {
                break;
            }
        } else {
            let _ = conn.reconnect(s.addr).await;
        }
    }
    barrier.wait().await;
    let start = Instant::now();
    let deadline = s.deadline.map(|d| start + d);
    let mut now = start;
    let mut sent = 0usize;
    for req in &list[warm..] {
        if deadline.is_some_and(|d| now >= d) {
            break;
        }
        sent += 1;
        let t0 = now;
        let res = tokio::time::timeout(s.timeout, conn.exchange(&req.bytes)).await;
        now = Instant::now();
        let reconnect = match res {
            Ok(Ok(ans)) => {
                let ns = (now - t0).as_nanos() as u64;
                st.latencies_ns.push(ns);
                if let Some((words, kind)) = &req.query {
                    st.by_kind.entry(*kind).or_default().push(ns);
                    st.note_slow(ns, words);
                }
                progress.fetch_add(1, Ordering::Relaxed);
                if ans.status == 200 {
                    st.ok += 1;
                    if s.collect_sids {
                        st.ok_sids.push(req.sid);
                    }
                    match classify(s.expect, conn.body(&ans)) {
                        Outcome::Saved | Outcome::Queued => {}
                        Outcome::SearchHit => st.search_hits += 1,
                        Outcome::SearchMiss => st.search_misses += 1,
                        Outcome::Unexpected => {
                            st.unexpected_body += 1;
                            st.note_error(|| format!("unexpected 200 body: {}", snippet(conn.body(&ans))));
                        }
                    }
                    if let Some(p) = probe.as_mut() {
                        p.maybe_check(st.ok, req.sid, &mut st).await;
                    }
                } else {
                    *st.statuses.entry(ans.status).or_default() += 1;
                    st.note_error(|| format!("HTTP {}: {}", ans.status, snippet(conn.body(&ans))));
                }
                ans.close
            }
            Ok(Err(e)) => {
                st.io_errors += 1;
                st.note_error(|| format!("transport error: {e}"));
                true
            }
            Err(_) => {
                st.timeouts += 1;
                st.note_error(|| format!("no answer within {:?}", s.timeout));
                true
            }
        };
        if reconnect && !reconnect_with_retries(&mut conn, s.addr, deadline, &mut st).await {
            break;
        }
        if deadline.is_some() {
            // The clock is read once per request; keep `now` fresh after a reconnect.
            now = Instant::now();
        }
    }
    if deadline.is_some_and(|d| now < d) && sent == list.len() - warm {
        st.ran_out = true;
    }
    st.start = Some(start);
    st.end = Some(now);
    st
}

/// Re-opens a connection after an error or `Connection: close`; gives up after ~2 s.
async fn reconnect_with_retries(
    conn: &mut Conn,
    addr: SocketAddr,
    deadline: Option<Instant>,
    st: &mut WorkerStats,
) -> bool {
    for _ in 0..40 {
        match conn.reconnect(addr).await {
            Ok(()) => return true,
            Err(e) => {
                st.io_errors += 1;
                st.note_error(|| format!("reconnect failed: {e}"));
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    false
}

/// How one `200` body reads.
enum Outcome {
    Saved,
    /// Media taken for later: no message now.
    Queued,
    SearchHit,
    SearchMiss,
    Unexpected,
}

/// Reads a `200` body: a 200 that does not say what it should is a wrong answer too.
fn classify(expect: Expect, body: &[u8]) -> Outcome {
    match expect {
        Expect::Saved if contains(body, SAVED_MARKER) => Outcome::Saved,
        Expect::Search if contains(body, NO_MATCH_MARKER) => Outcome::SearchMiss,
        Expect::Search if contains(body, b"<Message") || contains(body, b"1.") => Outcome::SearchHit,
        Expect::NoReply if contains(body, b"<Response/>") && !contains(body, b"<Message") => Outcome::Queued,
        Expect::Received if contains(body, b"EVENT_RECEIVED") => Outcome::Queued,
        _ => Outcome::Unexpected,
    }
}

/// Byte substring test; bodies are a few hundred bytes, so a scan is enough.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The first 200 characters of a body, for an error message.
fn snippet(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(200)]).replace(['\r', '\n'], " ")
}

/// Checks, right after a `200`, that the request's sid is already in `interactions`: the
/// issue demands that every message is committed before its answer.
struct Probe {
    db: ProbeConnection,
    every: u64,
    hex: String,
}

/// The probe's own connection, kept for the whole run.
enum ProbeConnection {
    Sqlite(Connection),
    Postgres(sea_orm::DatabaseConnection),
}

impl Probe {
    /// Opens its own read-only connection, kept for the whole run.
    async fn open(store: &Store, every: usize) -> Result<Self> {
        let db = match store {
            Store::Sqlite(path) => ProbeConnection::Sqlite(open_read_only(path)?),
            Store::Postgres(url) => ProbeConnection::Postgres(connect_postgres(url).await?),
        };
        Ok(Self { db, every: every as u64, hex: String::with_capacity(34) })
    }

    /// Looks the sid up after every `every`th `200`; a miss is counted as a failed check.
    async fn maybe_check(&mut self, ok_so_far: u64, sid: u128, st: &mut WorkerStats) {
        if !ok_so_far.is_multiple_of(self.every) {
            return;
        }
        self.hex.clear();
        let _ = write!(self.hex, "SM{sid:032x}");
        let found: Result<Option<()>, String> = match &self.db {
            ProbeConnection::Sqlite(db) => db
                .query_row("SELECT 1 FROM interactions WHERE twilio_message_sid = ?1", [&self.hex], |_| Ok(()))
                .optional()
                .map_err(|e| e.to_string()),
            ProbeConnection::Postgres(db) => db
                .query_one_raw(sea_orm::Statement::from_sql_and_values(
                    sea_orm::DbBackend::Postgres,
                    "SELECT 1 FROM interactions WHERE twilio_message_sid = $1",
                    [self.hex.clone().into()],
                ))
                .await
                .map(|row| row.map(drop))
                .map_err(|e| e.to_string()),
        };
        st.probes += 1;
        match found {
            Ok(Some(())) => {}
            Ok(None) => {
                st.probe_missing += 1;
                let sid = self.hex.clone();
                st.note_error(|| format!("{sid} answered 200 but not in interactions yet"));
            }
            Err(e) => {
                st.probe_missing += 1;
                st.note_error(|| format!("probe query failed: {e}"));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------------------

/// All workers' counts together.
struct Totals {
    lat_ns: Vec<u64>,
    /// Sids answered `200`, when collected.
    ok_sids: Vec<u128>,
    ok: u64,
    warmup_ok: u64,
    unexpected_body: u64,
    search_hits: u64,
    search_misses: u64,
    statuses: BTreeMap<u16, u64>,
    io_errors: u64,
    timeouts: u64,
    ran_out: usize,
    probes: u64,
    probe_missing: u64,
    first_errors: Vec<String>,
    /// Search latencies by kind of query, sorted.
    by_kind: BTreeMap<QueryKind, Vec<u64>>,
    /// The slowest searches, slowest first.
    slowest: Vec<(u64, Box<str>)>,
    /// From the barrier to the last answer.
    elapsed: Duration,
}

impl Totals {
    /// Adds the workers up; the window runs from the first worker's start to the last answer.
    fn merge(stats: Vec<WorkerStats>, wall: Duration) -> Self {
        let mut t = Totals {
            lat_ns: Vec::with_capacity(stats.iter().map(|s| s.latencies_ns.len()).sum()),
            ok_sids: Vec::with_capacity(stats.iter().map(|s| s.ok_sids.len()).sum()),
            ok: 0,
            warmup_ok: 0,
            unexpected_body: 0,
            search_hits: 0,
            search_misses: 0,
            statuses: BTreeMap::new(),
            io_errors: 0,
            timeouts: 0,
            ran_out: 0,
            probes: 0,
            probe_missing: 0,
            first_errors: Vec::new(),
            by_kind: BTreeMap::new(),
            slowest: Vec::new(),
            elapsed: wall,
        };
        let start = stats.iter().filter_map(|s| s.start).min();
        let end = stats.iter().filter_map(|s| s.end).max();
        if let (Some(s), Some(e)) = (start, end) {
            t.elapsed = e - s;
        }
        for s in stats {
            t.lat_ns.extend_from_slice(&s.latencies_ns);
            t.ok_sids.extend_from_slice(&s.ok_sids);
            t.ok += s.ok;
            t.warmup_ok += s.warmup_ok;
            t.unexpected_body += s.unexpected_body;
            t.search_hits += s.search_hits;
            t.search_misses += s.search_misses;
            for (k, v) in s.statuses {
                *t.statuses.entry(k).or_default() += v;
            }
            t.io_errors += s.io_errors;
            t.timeouts += s.timeouts;
            t.ran_out += usize::from(s.ran_out);
            t.probes += s.probes;
            t.probe_missing += s.probe_missing;
            for (k, v) in s.by_kind {
                t.by_kind.entry(k).or_default().extend(v);
            }
            t.slowest.extend(s.slowest);
            if let Some(e) = s.first_error {
                if t.first_errors.len() < 5 && !t.first_errors.contains(&e) {
                    t.first_errors.push(e);
                }
            }
        }
        t.lat_ns.sort_unstable();
        for v in t.by_kind.values_mut() {
            v.sort_unstable();
        }
        t.slowest.sort_unstable_by_key(|e| std::cmp::Reverse(e.0));
        t.slowest.truncate(5);
        t
    }

    /// Answers other than `200`, all statuses together.
    fn non_200(&self) -> u64 {
        self.statuses.values().sum()
    }

    /// Percentile of all answered requests, in milliseconds.
    fn pct_ms(&self, p: f64) -> f64 {
        pct_ms(&self.lat_ns, p)
    }

    /// Mean latency in milliseconds, next to the percentiles as a sanity check.
    fn mean_ms(&self) -> f64 {
        if self.lat_ns.is_empty() {
            return 0.0;
        }
        self.lat_ns.iter().sum::<u64>() as f64 / self.lat_ns.len() as f64 / 1e6
    }

    /// `200` answers per second of the window: failures do not count as throughput.
    fn rps(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Prints the report, checks the rows, writes `--out`; `Ok(false)` when a check failed.
fn report(
    t: &Target,
    run: &LoadRun,
    tot: &Totals,
    counts: Option<(DbCounts, DbCounts)>,
    media: Option<MediaRows>,
) -> Result<bool> {
    let mut pass = true;
    let mut kv: Vec<(&str, String)> = Vec::new();
    println!("{}", run.label);
    let answered = tot.lat_ns.len() as u64;
    println!(
        "  answers      {answered} in {:.2} s: {} x 200, {} non-200 {:?}, {} transport errors, {} timeouts",
        tot.elapsed.as_secs_f64(),
        tot.ok,
        tot.non_200(),
        tot.statuses,
        tot.io_errors,
        tot.timeouts
    );
    println!("  throughput   {:.1} requests/s (200 answers)", tot.rps());
    println!(
        "  latency ms   p50 {:.3}  p90 {:.3}  p95 {:.3}  p99 {:.3}  max {:.3}  mean {:.3}",
        tot.pct_ms(50.0),
        tot.pct_ms(90.0),
        tot.pct_ms(95.0),
        tot.pct_ms(99.0),
        tot.pct_ms(100.0),
        tot.mean_ms()
    );
    if run.expect == Expect::Search {
        let n = (tot.search_hits + tot.search_misses).max(1);
        println!(
            "  results      {} searches found something, {} found nothing ({:.0}% hits)",
            tot.search_hits,
            tot.search_misses,
            100.0 * tot.search_hits as f64 / n as f64
        );
        for kind in QueryKind::ALL {
            let v = tot.by_kind.get(&kind).map_or(&[][..], Vec::as_slice);
            println!(
                "  {:<12} n {:<5} p50 {:.3}  p95 {:.3}  p99 {:.3} ms",
                kind.name(),
                v.len(),
                pct_ms(v, 50.0),
                pct_ms(v, 95.0),
                pct_ms(v, 99.0)
            );
            kv.push((kind.name(), format!("n={} p50={:.3} p95={:.3}", v.len(), pct_ms(v, 50.0), pct_ms(v, 95.0))));
        }
        let slow: Vec<String> = tot.slowest.iter().map(|(ns, q)| format!("{:.1} ms {q:?}", *ns as f64 / 1e6)).collect();
        println!("  slowest      {}", slow.join(", "));
    }
    if tot.ran_out > 0 {
        println!(
            "  NOTE         {} worker(s) used up their pre-built requests before the deadline: raise --max-rate",
            tot.ran_out
        );
    }
    let errors = tot.non_200() + tot.io_errors + tot.timeouts;
    if errors > 0 || tot.unexpected_body > 0 {
        println!(
            "  {}      {errors} failed requests, {} unexpected 200 bodies",
            if t.allow_errors { "WARN" } else { "FAIL" },
            tot.unexpected_body
        );
        if !t.allow_errors {
            pass = false;
        }
    }
    for e in &tot.first_errors {
        println!("    e.g. {e}");
    }

    let mut verify = "skipped".to_string();
    if let Some((b, a)) = &counts {
        let want = (tot.ok + tot.warmup_ok) as i64;
        let d_in = a.inbound - b.inbound;
        let d_mem = a.memories - b.memories;
        let mut problems = Vec::new();
        if d_in != want {
            problems.push(format!("inbound interactions grew by {d_in}, but {want} requests were answered 200"));
        }
        if let Some(per_ok) = run.memories_per_ok {
            let want_mem = want * per_ok;
            if d_mem != want_mem {
                problems.push(format!("memories grew by {d_mem}, expected {want_mem} for {want} answers"));
            }
        }
        if let Some(m) = &media {
            if m.checked != tot.ok {
                problems
                    .push(format!("{} answered sids checked, but {} requests were answered 200", m.checked, tot.ok));
            }
            if m.missing_interaction > 0 {
                problems.push(format!("{} answered sids have no inbound interaction", m.missing_interaction));
            }
            if m.missing_job > 0 {
                problems.push(format!("{} answered sids have no media.ingest job", m.missing_job));
            }
            if m.extra_jobs > 0 {
                problems.push(format!("{} answered sids have more than one media.ingest job", m.extra_jobs));
            }
        }
        if a.inbound_sids != a.inbound {
            problems.push(format!("{} inbound interactions but only {} distinct sids", a.inbound, a.inbound_sids));
        }
        if tot.probe_missing > 0 {
            problems.push(format!(
                "{} of {} probed sids were not committed when their 200 arrived",
                tot.probe_missing, tot.probes
            ));
        }
        println!(
            "  rows         inbound interactions {} -> {} (+{d_in}), memories {} -> {} (+{d_mem}), outbound interactions {}, user memories {}; {} commit probes",
            b.inbound,
            a.inbound,
            b.memories,
            a.memories,
            a.outbound,
            fmt_opt(a.user_memories),
            tot.probes
        );
        if let Some(m) = &media {
            let states: Vec<String> = m.states.iter().map(|(k, v)| format!("{k} {v}")).collect();
            println!(
                "  media jobs   {} of kind media.ingest: {}; {} answered sids looked up",
                m.jobs_total,
                states.join(", "),
                m.checked
            );
            let (other_total, other_done) = m.other_jobs;
            println!("  other jobs   {other_total} (replies to send), {other_done} done");
        }
        if problems.is_empty() {
            println!("  verify       OK: every 200 answer has its committed rows");
            verify = "ok".into();
        } else {
            for p in &problems {
                println!("  VERIFY FAILED: {p}");
            }
            verify = "failed".into();
            pass = false;
        }
        kv.push(("inbound_delta", d_in.to_string()));
        kv.push(("memories_delta", d_mem.to_string()));
        kv.push(("inbound_total", a.inbound.to_string()));
        kv.push(("memories_total", a.memories.to_string()));
        kv.push(("outbound_total", a.outbound.to_string()));
        kv.push(("user_memories", fmt_opt(a.user_memories)));
        kv.push(("probes", tot.probes.to_string()));
        kv.push(("probe_missing", tot.probe_missing.to_string()));
    }
    if let Some(m) = &media {
        let state = |name: &str| m.states.get(name).copied().unwrap_or(0).to_string();
        kv.push(("media_jobs_total", m.jobs_total.to_string()));
        kv.push(("media_jobs_queued", state("queued")));
        kv.push(("media_jobs_running", state("running")));
        kv.push(("media_jobs_done", state("done")));
        kv.push(("media_jobs_dead", state("dead")));
        kv.push(("media_checked", m.checked.to_string()));
        kv.push(("media_missing_interaction", m.missing_interaction.to_string()));
        kv.push(("media_missing_job", m.missing_job.to_string()));
        kv.push(("media_extra_jobs", m.extra_jobs.to_string()));
        kv.push(("send_jobs_total", m.other_jobs.0.to_string()));
        kv.push(("send_jobs_done", m.other_jobs.1.to_string()));
    }

    if let Some(path) = &t.out {
        kv.extend([
            ("answered", answered.to_string()),
            ("ok", tot.ok.to_string()),
            ("warmup_ok", tot.warmup_ok.to_string()),
            ("non_200", tot.non_200().to_string()),
            ("io_errors", tot.io_errors.to_string()),
            ("timeouts", tot.timeouts.to_string()),
            ("errors", errors.to_string()),
            ("unexpected_body", tot.unexpected_body.to_string()),
            ("elapsed_s", format!("{:.3}", tot.elapsed.as_secs_f64())),
            ("rps", format!("{:.1}", tot.rps())),
            ("p50_ms", format!("{:.3}", tot.pct_ms(50.0))),
            ("p90_ms", format!("{:.3}", tot.pct_ms(90.0))),
            ("p95_ms", format!("{:.3}", tot.pct_ms(95.0))),
            ("p99_ms", format!("{:.3}", tot.pct_ms(99.0))),
            ("max_ms", format!("{:.3}", tot.pct_ms(100.0))),
            ("mean_ms", format!("{:.3}", tot.mean_ms())),
            ("search_hits", tot.search_hits.to_string()),
            ("search_misses", tot.search_misses.to_string()),
            ("ran_out", tot.ran_out.to_string()),
            ("verify", verify),
            ("pass", pass.to_string()),
        ]);
        let mut text = String::new();
        for (k, v) in kv {
            let _ = writeln!(text, "{k}={v}");
        }
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(pass)
}

/// Nearest-rank percentile of sorted nanoseconds, in milliseconds (0 for no samples).
fn pct_ms(sorted_ns: &[u64], p: f64) -> f64 {
    if sorted_ns.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted_ns.len() as f64).ceil() as usize;
    sorted_ns[rank.clamp(1, sorted_ns.len()) - 1] as f64 / 1e6
}

/// A count that could not be read prints as "n/a" rather than failing the report.
fn fmt_opt(v: Option<i64>) -> String {
    v.map_or_else(|| "n/a".into(), |v| v.to_string())
}

// ---------------------------------------------------------------------------------------
// Rows in the SQLite file
// ---------------------------------------------------------------------------------------

/// Row counts that a run must change by exactly its number of `200` answers.
struct DbCounts {
    inbound: i64,
    inbound_sids: i64,
    outbound: i64,
    memories: i64,
    /// Memories of one user, when asked for and the `users` table reads as expected.
    user_memories: Option<i64>,
}

/// Read-only, so that the check can never change what it checks; a busy timeout rides
/// out a checkpoint of the live server.
fn open_read_only(path: &Path) -> Result<Connection> {
    let db = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .with_context(|| format!("cannot open {} read-only", path.display()))?;
    db.busy_timeout(Duration::from_secs(5))?;
    Ok(db)
}

/// Where the server keeps its rows.
#[derive(Clone)]
enum Store {
    /// Its SQLite file, opened read-only.
    Sqlite(PathBuf),
    /// A PostgreSQL database, by URL.
    Postgres(String),
}

impl Store {
    /// Counts the rows a run must change.
    async fn counts(&self, user_wa_id: Option<&str>) -> Result<DbCounts> {
        match self {
            Store::Sqlite(path) => db_counts(path, user_wa_id),
            Store::Postgres(url) => postgres_counts(url, user_wa_id).await,
        }
    }
}

/// One connection to the PostgreSQL database at `url`.
async fn connect_postgres(url: &str) -> Result<sea_orm::DatabaseConnection> {
    let mut options = sea_orm::ConnectOptions::new(url.to_string());
    options.max_connections(1).sqlx_logging(false);
    sea_orm::Database::connect(options).await.with_context(|| "cannot connect to the PostgreSQL database to check")
}

/// [`db_counts`] on PostgreSQL: the same counts, the same statements but for placeholders.
async fn postgres_counts(url: &str, user_wa_id: Option<&str>) -> Result<DbCounts> {
    use sea_orm::{DbBackend, Statement};
    let db = connect_postgres(url).await?;
    let counts = |sql: &'static str, values: Vec<sea_orm::Value>| {
        let db = &db;
        async move {
            let row = db
                .query_one_raw(Statement::from_sql_and_values(DbBackend::Postgres, sql, values))
                .await
                .with_context(|| format!("cannot run {sql}"))?
                .context("no row")?;
            let first: i64 = row.try_get_by_index(0)?;
            let second: i64 = row.try_get_by_index(1).unwrap_or(0);
            anyhow::Ok((first, second))
        }
    };
    let (inbound, inbound_sids) = counts(
        "SELECT COUNT(*), COUNT(DISTINCT twilio_message_sid) FROM interactions WHERE direction = 'inbound'",
        vec![],
    )
    .await?;
    let (outbound, _) = counts("SELECT COUNT(*) FROM interactions WHERE direction = 'outbound'", vec![]).await?;
    let (memories, _) = counts("SELECT COUNT(*) FROM memories", vec![]).await?;
    let user_memories = match user_wa_id {
        Some(wa) => counts(
            "SELECT COUNT(*) FROM memories WHERE user_id IN (SELECT id FROM users WHERE wa_id IN ($1, '+' || $1))",
            vec![wa.into()],
        )
        .await
        .ok()
        .map(|(n, _)| n),
        None => None,
    };
    Ok(DbCounts { inbound, inbound_sids, outbound, memories, user_memories })
}

/// Counts the rows a run must change, from the schema in `migration/`.
fn db_counts(path: &Path, user_wa_id: Option<&str>) -> Result<DbCounts> {
    let db = open_read_only(path)?;
    let (inbound, inbound_sids): (i64, i64) = db
        .query_row(
            "SELECT COUNT(*), COUNT(DISTINCT twilio_message_sid) FROM interactions \
             WHERE direction = 'inbound'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .context("counting inbound interactions")?;
    let outbound: i64 = db
        .query_row("SELECT COUNT(*) FROM interactions WHERE direction = 'outbound'", [], |r| r.get(0))
        .context("counting outbound interactions")?;
    let memories: i64 = db.query_row("SELECT COUNT(*) FROM memories", [], |r| r.get(0)).context("counting memories")?;
    // `users.wa_id` may be stored with or without the leading "+".
    let user_memories = user_wa_id.and_then(|wa| {
        db.query_row(
            "SELECT COUNT(*) FROM memories WHERE user_id IN \
             (SELECT id FROM users WHERE wa_id IN (?1, '+' || ?1))",
            [wa],
            |r| r.get(0),
        )
        .ok()
    });
    Ok(DbCounts { inbound, inbound_sids, outbound, memories, user_memories })
}

/// What the media run's answered sids left in the file, read right after the run.
struct MediaRows {
    /// Answered sids looked up.
    checked: u64,
    /// Answered sids without an inbound interaction.
    missing_interaction: u64,
    /// Answered sids whose interaction has no `media.ingest` job.
    missing_job: u64,
    /// Answered sids whose interaction has more than one (one photo each: one job).
    extra_jobs: u64,
    /// All `media.ingest` jobs, and how many are in each state.
    jobs_total: i64,
    states: BTreeMap<String, i64>,
    /// Every other job (the replies' sends): total and done.
    other_jobs: (i64, i64),
}

/// Looks every answered sid up: its inbound interaction, then the `media.ingest` job whose
/// payload names that interaction (the webhook writes both in one transaction).
fn media_rows(path: &Path, sids: &[u128]) -> Result<MediaRows> {
    let db = open_read_only(path)?;
    let mut interactions: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
    {
        let mut stmt = db.prepare(
            "SELECT twilio_message_sid, id FROM interactions \
             WHERE direction = 'inbound' AND twilio_message_sid IS NOT NULL",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        for row in rows {
            let (sid, id) = row.context("reading inbound interactions")?;
            interactions.insert(sid, id);
        }
    }
    let mut jobs_per_interaction: std::collections::HashMap<i64, u32> = std::collections::HashMap::new();
    let mut states = BTreeMap::new();
    let mut jobs_total = 0;
    {
        let mut stmt = db
            .prepare("SELECT json_extract(payload, '$.interaction_id'), state FROM jobs WHERE kind = 'media.ingest'")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, Option<i64>>(0)?, r.get::<_, String>(1)?)))?;
        for row in rows {
            let (interaction, state) = row.context("reading media jobs")?;
            jobs_total += 1;
            *states.entry(state).or_insert(0) += 1;
            if let Some(id) = interaction {
                *jobs_per_interaction.entry(id).or_insert(0) += 1;
            }
        }
    }
    let other_jobs = db
        .query_row(
            "SELECT COUNT(*), COALESCE(SUM(state = 'done'), 0) FROM jobs WHERE kind <> 'media.ingest'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .context("counting other jobs")?;
    let mut m =
        MediaRows { checked: 0, missing_interaction: 0, missing_job: 0, extra_jobs: 0, jobs_total, states, other_jobs };
    let mut hex = String::with_capacity(34);
    for sid in sids {
        hex.clear();
        let _ = write!(hex, "SM{sid:032x}");
        m.checked += 1;
        match interactions.get(&hex).map(|id| jobs_per_interaction.get(id)) {
            None => m.missing_interaction += 1,
            Some(None) => m.missing_job += 1,
            Some(Some(1)) => {}
            Some(Some(_)) => m.extra_jobs += 1,
        }
    }
    Ok(m)
}

/// The stand-alone check, for a database left behind by `BENCH_KEEP=1`.
fn verify(a: VerifyArgs) -> Result<bool> {
    let user = User::new(a.user);
    let c = db_counts(&a.db, Some(&user.wa_id))?;
    println!(
        "rows: inbound interactions {} ({} distinct sids), outbound {}, memories {}, memories of {} {}",
        c.inbound,
        c.inbound_sids,
        c.outbound,
        c.memories,
        user.wa_id,
        fmt_opt(c.user_memories)
    );
    let mut ok = c.inbound == c.inbound_sids;
    for (what, want, have) in [
        ("inbound interactions", a.expect_inbound, Some(c.inbound)),
        ("memories", a.expect_memories, Some(c.memories)),
        ("user memories", a.expect_user_memories, c.user_memories),
    ] {
        if let Some(want) = want {
            if have != Some(want) {
                println!("VERIFY FAILED: {what}: {}, expected {want}", fmt_opt(have));
                ok = false;
            }
        }
    }
    if ok {
        println!("verify OK");
    }
    Ok(ok)
}

// ---------------------------------------------------------------------------------------
// Requests: form encoding and Twilio's signature
// ---------------------------------------------------------------------------------------

/// One pre-built request: the exact bytes to write, and its sid for the commit probe.
struct Prepared {
    bytes: Box<[u8]>,
    sid: u128,
    /// For a search: its words and kind, to break latency down by kind of query.
    query: Option<(Box<str>, QueryKind)>,
}

/// A sender: `whatsapp:+1555000NNNN`.
struct User {
    wa_id: String,
    from: String,
    profile: String,
}

impl User {
    /// User NNNN: numbers from one fake range, so that bench rows are easy to tell apart.
    fn new(n: u32) -> Self {
        let wa_id = format!("{WA_PREFIX}{n:04}");
        Self { from: format!("whatsapp:+{wa_id}"), profile: format!("Bench User {n:04}"), wa_id }
    }
}

/// Unique `MessageSid`s: "SM" + 32 hex digits from a per-process nonce, the mode and a
/// counter, so that no two runs or modes against one database ever collide.
struct SidGen {
    base: u128,
}

impl SidGen {
    /// A new nonce per process; `mode` keeps webhook, seed and search sids apart.
    fn new(mode: u8) -> Self {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        let nonce = nanos ^ (u64::from(std::process::id()) << 40);
        Self { base: (u128::from(nonce) << 64) | (u128::from(mode) << 56) }
    }

    /// The `i`th sid of this generator, as a number (formatted as "SM" + 32 hex digits).
    fn sid(&self, i: u64) -> u128 {
        self.base | u128::from(i)
    }
}

/// Builds signed `POST /webhook` requests for one server.
struct Signer {
    addr: SocketAddr,
    /// "POST /webhook HTTP/1.1 ... Host: ..." up to the signature header.
    head: String,
    sign_url: String,
    mac: Hmac<Sha1>,
    account_sid: String,
    to: String,
}

impl Signer {
    /// Resolves the address once and keys the HMAC once; only plain HTTP is spoken.
    fn new(t: &Target) -> Result<Self> {
        let url = url::Url::parse(&t.url).with_context(|| format!("bad --url {}", t.url))?;
        if url.scheme() != "http" {
            bail!("--url must be plain http:// (the generator speaks HTTP/1.1 without TLS)");
        }
        let host = url.host_str().context("--url has no host")?;
        let port = url.port_or_known_default().unwrap_or(80);
        let addr = resolve(host, port)?;
        let mut path = url.path().to_string();
        if let Some(q) = url.query() {
            path.push('?');
            path.push_str(q);
        }
        let host_header = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: TwilioProxy/1.1\r\n\
             Accept: */*\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        );
        Ok(Self {
            addr,
            head,
            sign_url: t.sign_url.clone().unwrap_or_else(|| t.url.clone()),
            mac: Hmac::<Sha1>::new_from_slice(t.token.as_bytes()).map_err(|e| anyhow::anyhow!("bad token: {e}"))?,
            account_sid: t.account_sid.clone(),
            to: format!("whatsapp:{}", t.to_number),
        })
    }

    /// A text message as Twilio's WhatsApp sender posts it, signed.
    fn request(&self, sid: u128, user: &User, body: &str) -> Prepared {
        self.build(sid, user, body, None)
    }

    /// A photo without a caption, as Twilio posts it: `NumMedia=1`, `MediaUrl0` and
    /// `MediaContentType0`, an empty `Body`, signed like any message.
    fn media_request(&self, sid: u128, user: &User, url: &str, content_type: &str) -> Prepared {
        self.build(sid, user, "", Some((url, content_type)))
    }

    /// Form-encodes and signs one message: HMAC-SHA1 over the URL followed by every
    /// parameter name and value, names sorted, no separators.
    fn build(&self, sid: u128, user: &User, body: &str, media: Option<(&str, &str)>) -> Prepared {
        let sid_s = format!("SM{sid:032x}");
        let mut params: Vec<(&str, &str)> = vec![
            ("MessageSid", &sid_s),
            ("SmsMessageSid", &sid_s),
            ("SmsSid", &sid_s),
            ("AccountSid", &self.account_sid),
            ("From", &user.from),
            ("To", &self.to),
            ("WaId", &user.wa_id),
            ("ProfileName", &user.profile),
            ("Body", body),
            ("NumSegments", "1"),
            ("SmsStatus", "received"),
            ("ApiVersion", "2010-04-01"),
        ];
        match media {
            None => params.extend([("NumMedia", "0"), ("MessageType", "text")]),
            // Twilio's MessageType is the type's top level: "image", "audio", "video".
            Some((url, content_type)) => params.extend([
                ("NumMedia", "1"),
                ("MessageType", content_type.split('/').next().unwrap_or("document")),
                ("MediaUrl0", url),
                ("MediaContentType0", content_type),
            ]),
        }
        params.sort_unstable_by(|a, b| a.0.cmp(b.0).then(a.1.cmp(b.1)));
        let mut mac = self.mac.clone();
        mac.update(self.sign_url.as_bytes());
        for (k, v) in &params {
            mac.update(k.as_bytes());
            mac.update(v.as_bytes());
        }
        let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        let form =
            url::form_urlencoded::Serializer::new(String::with_capacity(512)).extend_pairs(params.iter()).finish();
        let mut req = String::with_capacity(self.head.len() + 80 + form.len());
        req.push_str(&self.head);
        let _ = write!(req, "X-Twilio-Signature: {signature}\r\nContent-Length: {}\r\n\r\n{form}", form.len());
        Prepared { bytes: req.into_bytes().into_boxed_slice(), sid, query: None }
    }
}

impl Signer {
    /// A Cloud API delivery of one text message as Meta posts it to `/whatsapp/cloud`,
    /// signed with `mac` (the app secret's HMAC-SHA256 of the exact body).
    fn cloud_request(&self, mac: &Hmac<Sha256>, sid: u128, user: &User, text: &str) -> Prepared {
        let body = serde_json::json!({
            "object": "whatsapp_business_account",
            "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
                "contacts": [{"profile": {"name": user.profile}, "wa_id": user.wa_id, "user_id": format!("US.{}", user.wa_id)}],
                "messages": [{"from": user.wa_id, "id": format!("wamid.{sid:032x}"), "timestamp": "1764158400",
                    "type": "text", "text": {"body": text}}],
            }}]}],
        })
        .to_string();
        let mut mac = mac.clone();
        mac.update(body.as_bytes());
        let signature: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
        let head = self.head.replace("application/x-www-form-urlencoded", "application/json");
        let mut req = String::with_capacity(head.len() + 120 + body.len());
        req.push_str(&head);
        let _ = write!(req, "X-Hub-Signature-256: sha256={signature}\r\nContent-Length: {}\r\n\r\n{body}", body.len());
        Prepared { bytes: req.into_bytes().into_boxed_slice(), sid, query: None }
    }
}

/// Resolves once, before the run, so that no request waits on name resolution.
fn resolve(host: &str, port: u16) -> Result<SocketAddr> {
    use std::net::ToSocketAddrs;
    (host, port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {host}"))?
        .next()
        .with_context(|| format!("{host} resolves to nothing"))
}

// ---------------------------------------------------------------------------------------
// A minimal HTTP/1.1 client: one request at a time on a kept-alive connection
// ---------------------------------------------------------------------------------------

/// A kept-alive connection plus the buffer its answers are read into (reused, so that a
/// request allocates nothing).
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// One parsed answer; its body is `buf[body_start..body_end]` of the connection.
struct Answer {
    status: u16,
    body_start: usize,
    body_end: usize,
    /// The server will close the connection (or already has).
    close: bool,
}

impl Conn {
    /// Connects with Nagle off: a request is one write and must leave at once.
    async fn connect(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self { stream, buf: Vec::with_capacity(16 * 1024) })
    }

    /// Replaces the socket after an error or `Connection: close`, keeping the buffer.
    async fn reconnect(&mut self, addr: SocketAddr) -> io::Result<()> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        self.stream = stream;
        Ok(())
    }

    /// The body of the last answer, borrowed from the read buffer.
    fn body(&self, a: &Answer) -> &[u8] {
        &self.buf[a.body_start..a.body_end]
    }

    /// Reads more bytes into the buffer; end of stream is an error while an answer is due.
    async fn fill(&mut self) -> io::Result<()> {
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(16 * 1024);
        }
        if self.stream.read_buf(&mut self.buf).await? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed before a full answer"));
        }
        Ok(())
    }

    /// Writes one request and reads its full answer (Content-Length, chunked, or
    /// until close).
    async fn exchange(&mut self, req: &[u8]) -> io::Result<Answer> {
        self.stream.write_all(req).await?;
        self.buf.clear();
        let mut searched = 0;
        let head_end = loop {
            self.fill().await?;
            if let Some(p) = find(&self.buf[searched..], b"\r\n\r\n") {
                break searched + p + 4;
            }
            searched = self.buf.len().saturating_sub(3);
            if self.buf.len() > 64 * 1024 {
                return Err(bad("response head over 64 KiB"));
            }
        };
        let head = &self.buf[..head_end];
        let status = parse_status(head)?;
        let mut content_length = None;
        let mut chunked = false;
        let mut close = head.starts_with(b"HTTP/1.0");
        for line in head.split(|&b| b == b'\n').skip(1) {
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                continue;
            };
            let name = &line[..colon];
            let value = line[colon + 1..].trim_ascii();
            if name.eq_ignore_ascii_case(b"content-length") {
                content_length = std::str::from_utf8(value).ok().and_then(|v| v.parse::<usize>().ok());
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                chunked = contains_ci(value, b"chunked");
            } else if name.eq_ignore_ascii_case(b"connection") {
                if contains_ci(value, b"close") {
                    close = true;
                } else if contains_ci(value, b"keep-alive") {
                    close = false;
                }
            }
        }
        if (100..200).contains(&status) || status == 204 || status == 304 {
            return Ok(Answer { status, body_start: head_end, body_end: head_end, close });
        }
        if chunked {
            let body_end = loop {
                if let Some(end) = chunked_end(&self.buf[head_end..])? {
                    break head_end + end;
                }
                self.fill().await?;
            };
            return Ok(Answer { status, body_start: head_end, body_end, close });
        }
        if let Some(len) = content_length {
            while self.buf.len() < head_end + len {
                self.fill().await?;
            }
            return Ok(Answer { status, body_start: head_end, body_end: head_end + len, close });
        }
        // No length: the body runs until the server closes.
        loop {
            if self.buf.capacity() - self.buf.len() < 4096 {
                self.buf.reserve(16 * 1024);
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                break;
            }
        }
        Ok(Answer { status, body_start: head_end, body_end: self.buf.len(), close: true })
    }
}

/// A malformed answer, as an I/O error so that it counts as a transport failure.
fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

/// Position of a byte substring.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// ASCII case-insensitive substring test, for header values.
fn contains_ci(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle))
}

/// The status code of "HTTP/1.1 200 OK".
fn parse_status(head: &[u8]) -> io::Result<u16> {
    if head.len() < 12 || !head.starts_with(b"HTTP/1.") {
        return Err(bad("not an HTTP/1 response"));
    }
    std::str::from_utf8(&head[9..12]).ok().and_then(|s| s.parse().ok()).ok_or_else(|| bad("bad status line"))
}

/// Where a chunked body ends (after its last chunk and trailers), once it is complete.
/// The returned range still holds the chunk framing, which the body checks tolerate.
fn chunked_end(data: &[u8]) -> io::Result<Option<usize>> {
    let mut pos = 0;
    loop {
        let Some(eol) = find(&data[pos..], b"\r\n") else {
            return Ok(None);
        };
        let line = &data[pos..pos + eol];
        let hex = line.split(|&b| b == b';').next().unwrap_or(line).trim_ascii();
        let size = std::str::from_utf8(hex)
            .ok()
            .and_then(|h| usize::from_str_radix(h, 16).ok())
            .ok_or_else(|| bad("bad chunk size"))?;
        pos += eol + 2;
        if size == 0 {
            // Trailers, if any, end with an empty line.
            loop {
                let Some(eol) = find(&data[pos..], b"\r\n") else {
                    return Ok(None);
                };
                pos += eol + 2;
                if eol == 0 {
                    return Ok(Some(pos));
                }
            }
        }
        if data.len() < pos + size + 2 {
            return Ok(None);
        }
        pos += size + 2;
    }
}

/// A photo-like JPEG (smooth gradients, a few shapes and some grain), so that decoding
/// and hashing cost about what a real photo of that size costs.
fn sample_jpeg(a: SampleJpegArgs) -> Result<bool> {
    let (w, h) = (a.width.max(8), a.height.max(8));
    let mut rng = Rng::new(0x000b_a5ed);
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        let (fx, fy) = (x as f64 / w as f64, y as f64 / h as f64);
        let (cx, cy) = (fx - 0.5, fy - 0.55);
        let plate = if cx * cx + cy * cy * 0.6 < 0.09 { 70.0 } else { 0.0 };
        let grain = rng.below(24) as f64 - 12.0;
        let px = |base: f64| (base + plate + grain).clamp(0.0, 255.0) as u8;
        image::Rgb([px(200.0 * (1.0 - fy) + 40.0), px(120.0 + 80.0 * fx), px(60.0 + 90.0 * fy * fx)])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
        .encode_image(&img)
        .context("encoding the sample JPEG")?;
    std::fs::write(&a.out, &out).with_context(|| format!("cannot write {}", a.out.display()))?;
    eprintln!("wrote a {w}x{h} JPEG of {} KB to {}", out.len() / 1024, a.out.display());
    Ok(true)
}

/// Polls the readiness URL so that the run starts only once migrations are done.
async fn wait_ready(a: WaitReadyArgs) -> Result<bool> {
    let url = url::Url::parse(&a.url).with_context(|| format!("bad --url {}", a.url))?;
    let host = url.host_str().context("--url has no host")?;
    let port = url.port_or_known_default().unwrap_or(80);
    let addr = resolve(host, port)?;
    let req = format!("GET {} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n", url.path());
    let until = Instant::now() + Duration::from_secs_f64(a.timeout);
    let mut last = String::from("no attempt");
    while Instant::now() < until {
        let attempt = async {
            let mut c = Conn::connect(addr).await?;
            c.exchange(req.as_bytes()).await
        };
        match tokio::time::timeout(Duration::from_secs(2), attempt).await {
            Ok(Ok(ans)) if ans.status == 200 => return Ok(true),
            Ok(Ok(ans)) => last = format!("HTTP {}", ans.status),
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => last = "timed out".into(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("{} not ready after {} s: {last}", a.url, a.timeout);
    Ok(false)
}

// ---------------------------------------------------------------------------------------
// Texts: a fixed vocabulary, Zipf-like word frequencies
// ---------------------------------------------------------------------------------------

/// Words people actually write in memos; they get the top frequency ranks, so that a
/// search for "milk" finds many memories and one for a rare word finds a few.
const COMMON_WORDS: &str = "milk dentist passport birthday appointment keys parking pharmacy doctor insurance \
     flight hotel train invoice rent bread eggs coffee tea cheese butter apples bananas \
     groceries laundry plumber electrician garage car bike tyres gym yoga swimming \
     school homework teacher meeting project deadline report budget presentation email \
     phone charger laptop book library movie concert tickets restaurant pizza sushi \
     recipe garden plants dog cat vet mum dad sister brother grandma friend neighbour \
     wedding gift party holiday beach mountain camping tent umbrella jacket shoes shirt \
     repair window lamp battery bill bank tax receipt warranty lunch dinner breakfast \
     salad soup wine juice chocolate cake café jalapeño vitamins medicine allergy museum \
     guitar piano lesson football tennis password wifi landlord boiler mortgage pension \
     visa embassy airport luggage";

/// Opening phrases, so that memories read like notes to self.
const OPENERS: &[&str] = &[
    "Remember",
    "Note to self:",
    "Buy",
    "Call",
    "Don't forget",
    "Idea:",
    "Meeting with",
    "Pick up",
    "Book",
    "Ask about",
    "Check",
    "Bring",
    "Todo:",
    "",
    "",
    "",
];

/// Glue between content words; never used as a query.
const JOINERS: &[&str] = &["and", "at", "for", "with", "the", "from", "before", "after", "near", "about", "&", "or"];

/// ~2,100 words, most frequent first, and a Zipf-Mandelbrot table to draw them: with a
/// rank offset of 10, the top word is in about one memory in ten and a rare one in a few
/// dozen of 100,000.
struct Vocabulary {
    words: Vec<String>,
    /// The first `common` words are [`COMMON_WORDS`].
    common: usize,
    cdf: Vec<f64>,
}

impl Vocabulary {
    /// Always the same list (fixed seed), so that `seed` and `search` agree.
    fn new() -> Self {
        const ONSETS: &[&str] = &[
            "b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z", "br", "cl", "st",
            "tr", "sh", "ch", "gr", "pl",
        ];
        const VOWELS: &[&str] = &["a", "e", "i", "o", "u", "ai", "ou", "ea", "io"];
        const CODAS: &[&str] = &["", "", "n", "r", "s", "l", "t", "m", "nd", "x"];
        let mut rng = Rng::new(0x000b_0cab);
        let mut words: Vec<String> = COMMON_WORDS.split_whitespace().map(String::from).collect();
        let common = words.len();
        let mut seen: HashSet<String> = words.iter().cloned().collect();
        while words.len() < common + 2000 {
            let syllables = 2 + rng.below(2);
            let mut w = String::new();
            for _ in 0..syllables {
                w.push_str(ONSETS[rng.below(ONSETS.len() as u64) as usize]);
                w.push_str(VOWELS[rng.below(VOWELS.len() as u64) as usize]);
            }
            w.push_str(CODAS[rng.below(CODAS.len() as u64) as usize]);
            if seen.insert(w.clone()) {
                words.push(w);
            }
        }
        let mut acc = 0.0;
        let cdf = (0..words.len())
            .map(|rank| {
                acc += 1.0 / (rank as f64 + 11.0);
                acc
            })
            .collect::<Vec<_>>();
        let total = acc;
        let cdf = cdf.into_iter().map(|c| c / total).collect();
        Self { words, common, cdf }
    }

    /// One word, drawn with the Zipf-Mandelbrot frequencies.
    fn zipf(&self, rng: &mut Rng) -> &str {
        let u = rng.unit();
        let i = self.cdf.partition_point(|&c| c < u);
        &self.words[i.min(self.words.len() - 1)]
    }

    /// A memo of 4-11 content words, with an opener, joiners and sometimes a time. Never
    /// a leading "/" or a trailing "?": the service would read those as commands.
    fn sentence(&self, rng: &mut Rng) -> String {
        let mut s = String::with_capacity(96);
        s.push_str(OPENERS[rng.below(OPENERS.len() as u64) as usize]);
        let n = 4 + rng.below(8);
        for i in 0..n {
            if i > 0 && rng.below(4) == 0 {
                if !s.is_empty() {
                    s.push(' ');
                }
                s.push_str(JOINERS[rng.below(JOINERS.len() as u64) as usize]);
            }
            if !s.is_empty() {
                s.push(' ');
            }
            s.push_str(self.zipf(rng));
        }
        match rng.below(10) {
            0 => {
                let _ = write!(s, " at {}pm", 1 + rng.below(11));
            }
            1 => {
                let _ = write!(s, " on {} May", 1 + rng.below(30));
            }
            2 => {
                let _ = write!(s, " #{}", rng.below(1000));
            }
            3 => s.push_str(" 50% off!"),
            4 | 5 => s.push('.'),
            _ => {}
        }
        s
    }

    /// One or two words: the first is half the time a common memo word, half the time
    /// any word of the vocabulary (mostly rare ones); three queries in ten add a second
    /// word drawn like memo words.
    fn query(&self, rng: &mut Rng) -> (String, QueryKind) {
        let (first, mut kind) = if rng.below(2) == 0 {
            (&self.words[rng.below(self.common as u64) as usize], QueryKind::CommonWord)
        } else {
            (&self.words[rng.below(self.words.len() as u64) as usize], QueryKind::AnyWord)
        };
        let mut q = first.clone();
        if rng.below(10) < 3 {
            q.push(' ');
            q.push_str(self.zipf(rng));
            kind = QueryKind::TwoWords;
        }
        (q, kind)
    }
}

/// The kinds of search query, reported separately because their cost differs widely.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum QueryKind {
    /// One of [`COMMON_WORDS`]: matches many memories.
    CommonWord,
    /// Any vocabulary word, mostly rare: matches a few dozen to a few hundred.
    AnyWord,
    /// Two words.
    TwoWords,
}

impl QueryKind {
    /// Every kind, in report order.
    const ALL: [QueryKind; 3] = [QueryKind::CommonWord, QueryKind::AnyWord, QueryKind::TwoWords];

    /// The key used in the report and in `--out`.
    fn name(self) -> &'static str {
        match self {
            QueryKind::CommonWord => "common_word",
            QueryKind::AnyWord => "any_word",
            QueryKind::TwoWords => "two_words",
        }
    }
}

/// splitmix64: deterministic and dependency-free, good enough for picking words.
struct Rng(u64);

impl Rng {
    /// A generator from a seed, so that runs are reproducible.
    fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_end_where_they_should() {
        assert_eq!(chunked_end(b"5\r\nhello\r\n0\r\n\r\n").unwrap(), Some(15));
        assert_eq!(chunked_end(b"5\r\nhello\r\n0\r\n").unwrap(), None);
        assert_eq!(chunked_end(b"5\r\nhel").unwrap(), None);
        assert_eq!(chunked_end(b"0\r\nX-T: 1\r\n\r\n").unwrap(), Some(13));
    }

    #[test]
    fn memos_are_saved_not_read_as_commands() {
        // The service reads "/word ..." as a command and "...?" as a search.
        let vocab = Vocabulary::new();
        let mut rng = Rng::new(1);
        for _ in 0..10_000 {
            let s = vocab.sentence(&mut rng);
            assert!(!s.starts_with('/') && !s.trim_end().ends_with('?') && !s.trim().is_empty(), "{s}");
        }
    }

    #[test]
    fn status_lines_parse() {
        assert_eq!(parse_status(b"HTTP/1.1 200 OK\r\n\r\n").unwrap(), 200);
        assert!(parse_status(b"SSH-2.0\r\n\r\n").is_err());
    }
}
