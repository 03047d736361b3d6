//! The reminder lines of `make bench` (see `bench/run.sh`): how late reminders arrive
//! when many are due in one minute, and what 100,000 pending reminders cost while idle.
//!
//! ```text
//! cargo build --release --example reminder_delivery
//! target/release/examples/reminder_delivery            # a fresh SQLite file in a temp dir
//! target/release/examples/reminder_delivery --database-url postgres://postgres@127.0.0.1:5432/wm_bench
//! ```
//!
//! In process, over the real repository, job queue and `ReminderDelivery` handler (two
//! workers, the default 500 ms poll), with a `MessageSender` that records when each
//! message reached it (the network is not what is measured). 1. `--due` reminders
//! (default 1,000) are taken through `reminders::create`, due spread evenly over one minute
//! (`--spread-seconds`, default 60; 0 puts them all in the same second) starting 5 s after
//! seeding; lateness is the send instant minus the due instant; p50/p99/max are printed.
//! 2. `--pending` reminders (default 100,000) due in a year are added, the workers left idle
//! for `--idle-seconds` (default 10), and the process's CPU time over that window is printed
//! as a percentage of one core.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use async_trait::async_trait;
use chrono::{DateTime, NaiveTime, TimeDelta, Utc};
use clap::Parser;

use whatsapp_memory::adapters::clock::SystemClock;
use whatsapp_memory::adapters::db::Database;
use whatsapp_memory::app::jobs::{JobRunner, JobSignal, WorkerSettings};
use whatsapp_memory::app::outbox::Outbox;
use whatsapp_memory::app::reminder_delivery::ReminderDelivery;
use whatsapp_memory::app::reminders::{self, ReminderSettings, REMINDER_JOB_KIND};
use whatsapp_memory::domain::model::{Channel, InboundMessage, MessageSid};
use whatsapp_memory::domain::ports::{transact, MessageSender, Repository, SendError, SentMessage};
use whatsapp_memory::domain::reminder::Schedule;

#[derive(Parser)]
struct Args {
    #[arg(long)]
    database_url: Option<String>,
    #[arg(long, default_value_t = 1000)]
    due: usize,
    #[arg(long, default_value_t = 60)]
    spread_seconds: u64,
    #[arg(long, default_value_t = 100_000)]
    pending: usize,
    #[arg(long, default_value_t = 10)]
    idle_seconds: u64,
    /// Also write the figures as `key=value` lines here (for bench/run.sh).
    #[arg(long)]
    out: Option<std::path::PathBuf>,
}

/// Records when each message reached it.
#[derive(Default)]
struct RecordingSender(Mutex<Vec<(String, DateTime<Utc>)>>);

#[async_trait]
impl MessageSender for RecordingSender {
    async fn send(&self, _to: &str, body: &str) -> Result<SentMessage, SendError> {
        let mut sent = self.0.lock().unwrap();
        sent.push((body.to_string(), Utc::now()));
        Ok(SentMessage { sid: format!("SM{:032}", sent.len()), status: "queued".into() })
    }

    async fn find_sent(&self, _: &str, _: &str, _: DateTime<Utc>) -> Result<Option<SentMessage>, SendError> {
        Ok(None)
    }
}

/// Takes `count` reminders due at `due(i)`, in transactions of 500.
async fn seed(repository: &Arc<dyn Repository>, count: usize, due: impl Fn(usize) -> DateTime<Utc>) -> Result<()> {
    let now = Utc::now();
    for start in (0..count).step_by(500) {
        let dues: Vec<(usize, DateTime<Utc>)> = (start..count.min(start + 500)).map(|i| (i, due(i))).collect();
        transact(&**repository, move |tx| {
            Box::pin(async move {
                let user = tx.find_or_create_user("15550001234", "+15550001234", None, now).await?;
                for (i, at) in dues {
                    let schedule = Schedule { first: at, time: NaiveTime::MIN, repeat: None };
                    let what = format!("reminder {i}");
                    reminders::create(tx, &user, None, &what, &schedule, chrono_tz::UTC, now, Outbox::NONE).await?;
                }
                Ok(())
            })
        })
        .await?;
    }
    Ok(())
}

/// The user wrote just now: reminders are inside WhatsApp's 24-hour window.
async fn user_writes(repository: &Arc<dyn Repository>) -> Result<()> {
    let now = Utc::now();
    transact(&**repository, move |tx| {
        Box::pin(async move {
            let user = tx.find_or_create_user("15550001234", "+15550001234", None, now).await?;
            let message = InboundMessage {
                sid: MessageSid(format!("SM{:032x}", now.timestamp_nanos_opt().unwrap_or_default())),
                wa_id: "15550001234".into(),
                phone_number: "+15550001234".into(),
                profile_name: None,
                body: "hi".into(),
                message_type: "text".into(),
                media: vec![],
                location: None,
                raw_form: serde_json::json!({}),
                received_at: now,
                channel: Channel::Twilio,
            };
            tx.insert_inbound(user.id, &message).await.map(drop)
        })
    })
    .await?;
    Ok(())
}

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let url = args.database_url.unwrap_or_else(|| format!("sqlite://{}/reminders.db?mode=rwc", dir.path().display()));
    let database = Database::open(&url, true).await?;
    let repository = database.repository.clone();
    user_writes(&repository).await?;

    let start = Utc::now() + TimeDelta::seconds(5);
    let step_ms = (args.spread_seconds * 1000) as f64 / args.due.max(1) as f64;
    seed(&repository, args.due, |i| start + TimeDelta::milliseconds((i as f64 * step_ms) as i64)).await?;
    println!("seeded {} reminders due from {start} over {} s", args.due, args.spread_seconds);

    let sender = Arc::new(RecordingSender::default());
    let clock = Arc::new(SystemClock);
    let handler =
        ReminderDelivery::new(repository.clone(), Some(sender.clone()), clock.clone(), ReminderSettings::default());
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let workers = JobRunner::new(repository.clone(), clock, WorkerSettings::default(), Arc::new(JobSignal::default()))
        .handle(REMINDER_JOB_KIND, Arc::new(handler))
        .start(shutdown);

    let deadline = std::time::Instant::now() + Duration::from_secs(args.spread_seconds + 120);
    while sender.0.lock().unwrap().len() < args.due && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sent = sender.0.lock().unwrap().clone();
    let mut lateness: Vec<f64> = sent
        .iter()
        .map(|(body, at)| {
            let i: usize = body.trim_start_matches("⏰ Reminder: reminder ").parse().unwrap_or_default();
            let due = start + TimeDelta::milliseconds((i as f64 * step_ms) as i64);
            (*at - due).num_microseconds().unwrap_or_default() as f64 / 1e6
        })
        .collect();
    lateness.sort_by(f64::total_cmp);
    let unique: std::collections::HashSet<_> = sent.iter().map(|(body, _)| body.clone()).collect();
    println!(
        "reminders sent: {} of {} ({} distinct); lateness p50 {:.3} s, p99 {:.3} s, max {:.3} s",
        sent.len(),
        args.due,
        unique.len(),
        percentile(&lateness, 0.50),
        percentile(&lateness, 0.99),
        lateness.last().copied().unwrap_or_default()
    );

    let (p50, p99, max) =
        (percentile(&lateness, 0.50), percentile(&lateness, 0.99), lateness.last().copied().unwrap_or_default());
    let far = Utc::now() + TimeDelta::days(365);
    let seeding = std::time::Instant::now();
    seed(&repository, args.pending, |i| far + TimeDelta::seconds(i as i64)).await?;
    println!("seeded {} pending reminders in {:.1} s", args.pending, seeding.elapsed().as_secs_f64());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (cpu, wall) = (cpu_seconds(), std::time::Instant::now());
    tokio::time::sleep(Duration::from_secs(args.idle_seconds)).await;
    let idle_percent = 100.0 * (cpu_seconds() - cpu) / wall.elapsed().as_secs_f64();
    println!(
        "idle with {} pending reminders: {idle_percent:.2} % of one core over {:.0} s",
        args.pending,
        wall.elapsed().as_secs_f64()
    );
    if let Some(path) = &args.out {
        let backend = if url.starts_with("sqlite:") { "SQLite" } else { "PostgreSQL" };
        std::fs::write(
            path,
            format!(
                "backend={backend}\ndue={}\nsent={}\ndistinct={}\nspread_s={}\np50_s={p50:.3}\np99_s={p99:.3}\n\
                 max_s={max:.3}\npending={}\nidle_cpu_percent={idle_percent:.2}\n",
                args.due,
                sent.len(),
                unique.len(),
                args.spread_seconds,
                args.pending
            ),
        )?;
    }
    let _ = stop.send(true);
    let _ = workers.await;
    if sent.len() != args.due || unique.len() != args.due {
        anyhow::bail!("not every reminder was sent exactly once");
    }
    Ok(())
}
