//! `loadgen soak`: minutes of mixed traffic at a fixed rate (issue 14's soak), reported
//! window by window, so that a leak, a growing queue or drifting latency shows up.
//!
//! Requests are due at fixed instants (`i / rate` seconds after the start) whatever the
//! server does; each of `--connections` workers takes the next due request, builds it,
//! waits for its instant and sends it. A request whose connection was busy past its
//! instant (every connection waiting on the server) is timed from that instant, so a stall
//! counts for every request queued behind it; one whose connection was idle is timed from
//! when it left, so the timer's millisecond granularity is not counted against the server.
//! The server's memory (and, with
//! `--verify-db`, its job and embedding queues) is read at every window's end.
//!
//! Layout: `capacity` (the mix's maximum rate, which the soak runs at half of), `mix` (kinds and weights), `traffic` (building requests), `window` (per-window
//! counts and what a right answer is), `sampler` (the server's memory and queues),
//! `verdict` (the three rules), `report` (table and `key=value` lines).

mod capacity;
mod mix;
mod report;
mod sampler;
mod traffic;
mod verdict;
mod window;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::{snippet, Conn, SidGen, Signer, Target, User, Vocabulary};
use mix::{Kind, Mix};
use traffic::{Plan, Traffic};
use window::{Failure, Window};

/// Arguments of the soak.
#[derive(Args)]
pub struct SoakArgs {
    /// The server and how to sign for it, shared with the other load modes. The soak uses
    /// --url, --sign-url, --token, --account-sid, --to-number, --timeout-ms, --rng-seed,
    /// --threads, --out, and --verify-db only to read the queues; the row checks and the
    /// other options are the timed runs' and are ignored here.
    #[command(flatten)]
    pub target: Target,
    /// Requests per second, all kinds together (`bench/run.sh`: half the rate `--capacity`
    /// measured for the same mix, or SOAK_RATE). Ignored with `--capacity`.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Instead of the soak, measure the most this mix can be answered: every connection
    /// sends its next request as soon as the last one is answered, for `--duration`
    /// seconds; prints the rate and writes `capacity_rps` to `--out`. The soak's "half the
    /// measured maximum throughput" is half of this: a text costs the server less than a
    /// search (its query is embedded) or a photo (fetched, decoded, hashed), so half the
    /// text webhook's rate was more than the mix could carry on two cores.
    #[arg(long)]
    capacity: bool,
    /// Length of the run in seconds, rounded to whole windows.
    #[arg(long, default_value_t = 600.0)]
    duration: f64,
    /// Seconds per window: each window is a row of the report, and the rules compare them
    /// (the first is warm-up, the second the reference).
    #[arg(long, default_value_t = 60.0)]
    window: f64,
    /// Keep-alive connections; a request due while every one is busy waits, and the wait
    /// counts in its latency.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Distinct senders (at most 9999), users 0000 to N-1.
    #[arg(long, default_value_t = 1000)]
    users: u32,
    /// Photos and voice notes come from the first N users only: each one's first photo is
    /// read (OCR) and first note transcribed; the rest are duplicates of those.
    #[arg(long, default_value_t = 20)]
    media_users: u32,
    /// Base of the (fake) Twilio API serving the media, the server's TWILIO_API_BASE_URL.
    #[arg(long)]
    media_base: String,
    /// An API key of the server, for the REST calls.
    #[arg(long, env = "BENCH_API_KEY", hide_env_values = true)]
    api_key: String,
    /// The server's process id, whose memory is read from /proc.
    #[arg(long)]
    server_pid: u32,
    /// Weights of the kinds instead of the defaults, e.g. `voice=0,text=700` (kinds: text,
    /// duplicate, search, list, question, photo, voice, api_create, api_search).
    #[arg(long, default_value = "")]
    mix: String,
}

/// When each request is due and which window it belongs to; shared by the workers.
struct Schedule {
    /// Index of the next request to take.
    next: AtomicU64,
    /// Requests in the whole run.
    total: u64,
    start: Instant,
    rate: f64,
    window_secs: f64,
    windows: usize,
    timeout: Duration,
    addr: std::net::SocketAddr,
    /// Answers and failures so far, for the progress lines.
    answered: AtomicU64,
    failed: AtomicU64,
}

impl Schedule {
    /// The instant request `i` is due.
    fn due(&self, i: u64) -> Instant {
        self.start + Duration::from_secs_f64(i as f64 / self.rate)
    }

    /// The window request `i` belongs to, by when it is due.
    fn window_of(&self, i: u64) -> usize {
        ((i as f64 / self.rate / self.window_secs) as usize).min(self.windows - 1)
    }
}

/// The requests' ingredients and one open connection per `--connections`.
async fn prepare(a: &SoakArgs) -> Result<(Arc<Plan>, Vec<Conn>)> {
    if a.users == 0 || a.users > 9999 {
        bail!("--users must be 1..=9999");
    }
    let t = &a.target;
    let mix = Mix::with_overrides(&a.mix)?;
    let media_base = a.media_base.trim_end_matches('/');
    url::Url::parse(media_base).with_context(|| format!("bad --media-base {media_base}"))?;
    let plan = Arc::new(Plan {
        signer: Signer::new(t)?,
        vocab: Vocabulary::new(),
        users: (0..a.users).map(User::new).collect(),
        media_users: a.media_users as usize,
        mix,
        sids: SidGen::new(5),
        media_prefix: format!("{media_base}/2010-04-01/Accounts/{}/Messages/", t.account_sid),
        rest_headers: Plan::rest_headers(&t.url, &a.api_key)?,
    });
    let mut conns = Vec::with_capacity(a.connections.max(1));
    for _ in 0..a.connections.max(1) {
        conns.push(
            Conn::connect(plan.signer.addr).await.with_context(|| format!("cannot connect to {}", plan.signer.addr))?,
        );
    }
    Ok((plan, conns))
}

/// Runs the soak (or, with `--capacity`, measures the mix's maximum rate); `Ok(false)`
/// when a rule failed.
pub async fn soak(a: SoakArgs) -> Result<bool> {
    if a.capacity {
        return capacity::measure(&a).await;
    }
    if [a.rate, a.window, a.duration].iter().any(|v| !v.is_finite() || *v <= 0.0) {
        bail!("--rate, --window and --duration must be above 0");
    }
    let windows = ((a.duration / a.window).round() as usize).max(1);
    let t = &a.target;
    let (plan, conns) = prepare(&a).await?;
    let schedule = Arc::new(Schedule {
        next: AtomicU64::new(0),
        total: (a.rate * a.window * windows as f64).round() as u64,
        start: Instant::now() + Duration::from_millis(200),
        rate: a.rate,
        window_secs: a.window,
        windows,
        timeout: Duration::from_millis(t.timeout_ms),
        addr: plan.signer.addr,
        answered: AtomicU64::new(0),
        failed: AtomicU64::new(0),
    });
    let headline = format!(
        "soak: {:.0} s in {windows} windows of {:.0} s at {:.0} requests/s, {} connections, {} users ({} sending media)",
        a.window * windows as f64,
        a.window,
        a.rate,
        conns.len(),
        a.users,
        a.media_users.min(a.users)
    );
    eprintln!("[soak] {headline}");
    let handles: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(id, conn)| tokio::spawn(worker(id, conn, plan.clone(), schedule.clone(), t.rng_seed)))
        .collect();
    let sampler = tokio::spawn(watch(a.server_pid, t.verify_db.clone(), schedule.clone()));
    let mut merged: Vec<Window> = (0..windows).map(|_| Window::default()).collect();
    let mut by_kind_ns: Vec<Vec<u64>> = vec![Vec::new(); Kind::ALL.len()];
    for h in handles {
        let (mine, lat) = h.await?;
        for (into, w) in merged.iter_mut().zip(mine) {
            into.absorb(w);
        }
        for (into, l) in by_kind_ns.iter_mut().zip(lat) {
            into.extend(l);
        }
    }
    merged.iter_mut().for_each(Window::finish);
    by_kind_ns.iter_mut().for_each(|v| v.sort_unstable());
    let samples = sampler.await?;
    let checks = verdict::judge(&report::figures(&merged, &samples));
    let outcome = report::Outcome {
        headline,
        mix: &plan.mix,
        window_secs: a.window,
        windows: &merged,
        samples: &samples,
        by_kind_ns: &by_kind_ns,
        checks: &checks,
    };
    print!("{}", report::text(&outcome));
    if let Some(path) = &t.out {
        report::write(path, &outcome)?;
    }
    Ok(checks.iter().all(|c| c.pass != Some(false)))
}

/// Samples the server at every window's end and prints a progress line meanwhile.
async fn watch(pid: u32, db: Option<std::path::PathBuf>, s: Arc<Schedule>) -> Vec<sampler::Sample> {
    let window = Duration::from_secs_f64(s.window_secs);
    let mut samples = vec![sampler::sample(pid, db.clone()).await];
    for k in 1..=s.windows {
        tokio::time::sleep_until((s.start + window * k as u32).into()).await;
        let due = ((s.rate * s.window_secs * k as f64).round() as u64).min(s.total);
        let behind = due.saturating_sub(s.answered.load(Ordering::Relaxed));
        let sample = sampler::Sample { behind: Some(behind), ..sampler::sample(pid, db.clone()).await };
        eprintln!(
            "  ... window {k}/{}: {} answered ({behind} behind), {} failed so far; server RSS {} MB",
            s.windows,
            s.answered.load(Ordering::Relaxed),
            s.failed.load(Ordering::Relaxed),
            sample.memory.map_or_else(|| "n/a".into(), |m| (m.rss_kb / 1024).to_string())
        );
        samples.push(sample);
    }
    samples
}

/// One connection's share of the run: takes the next due request until none is left.
/// Returns its per-window counts and its latencies by kind.
async fn worker(
    id: usize,
    mut conn: Conn,
    plan: Arc<Plan>,
    s: Arc<Schedule>,
    seed: u64,
) -> (Vec<Window>, Vec<Vec<u64>>) {
    let mut traffic = Traffic::new(seed, id);
    let mut windows: Vec<Window> = (0..s.windows).map(|_| Window::default()).collect();
    let mut by_kind: Vec<Vec<u64>> = vec![Vec::new(); Kind::ALL.len()];
    loop {
        let i = s.next.fetch_add(1, Ordering::Relaxed);
        if i >= s.total {
            break;
        }
        let planned = traffic.next(&plan, i);
        let due = s.due(i);
        let timed_from = if Instant::now() < due {
            tokio::time::sleep_until(due.into()).await;
            Instant::now()
        } else {
            due
        };
        let res = tokio::time::timeout(s.timeout, conn.exchange(&planned.bytes)).await;
        let latency = Instant::now().saturating_duration_since(timed_from).as_nanos() as u64;
        let w = &mut windows[s.window_of(i)];
        let (close, passed) = match res {
            Ok(Ok(ans)) => {
                let body = conn.body(&ans);
                let verdict = window::judge(planned.kind, ans.status, body);
                w.record(planned.kind, Some(latency), verdict, || snippet(body));
                by_kind[planned.kind.index()].push(latency);
                (ans.close, verdict.is_ok())
            }
            Ok(Err(e)) => {
                w.record(planned.kind, None, Err(Failure::Transport), || e.to_string());
                (true, false)
            }
            Err(_) => {
                w.record(planned.kind, None, Err(Failure::Timeout), || format!("no answer within {:?}", s.timeout));
                (true, false)
            }
        };
        s.answered.fetch_add(1, Ordering::Relaxed);
        if !passed {
            s.failed.fetch_add(1, Ordering::Relaxed);
        }
        if planned.kind == Kind::Text && passed {
            traffic.answered_text(planned);
        }
        if close {
            reconnect(&mut conn, s.addr).await;
        }
    }
    (windows, by_kind)
}

/// Opens a new connection after an error or `Connection: close`, trying for about 2 s; a
/// connection still broken makes the next request fail, which the report counts.
async fn reconnect(conn: &mut Conn, addr: std::net::SocketAddr) {
    for _ in 0..40 {
        if conn.reconnect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
