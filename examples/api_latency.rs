//! The REST API's part of `make bench`: latency of `GET /memories?query=` and of the first
//! page of `GET /memories/list` for one user holding many memories (bench/run.sh seeds
//! 100,000 through the webhook first).
//!
//! ```text
//! cargo build --release --example api_latency
//! target/release/examples/api_latency --base http://127.0.0.1:8000 --key KEY --user 15550009999
//! ```
//!
//! Query words come from the user's own newest memories (read once through the API), so
//! every search has matches. Requests go one at a time over one keep-alive connection;
//! each is timed from send to the last byte of the body. 50 untimed requests of each kind
//! come first. Any answer other than 200 fails the run (exit 3).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;

#[derive(Parser)]
#[command(about = "Times GET /memories?query= and GET /memories/list for one user (make bench)")]
struct Cli {
    /// The server's base URL.
    #[arg(long)]
    base: String,
    /// An API key the server accepts.
    #[arg(long, env = "BENCH_API_KEY", hide_env_values = true)]
    key: String,
    /// The user's WhatsApp id.
    #[arg(long)]
    user: String,
    /// Timed requests of each kind.
    #[arg(long, default_value_t = 2000)]
    count: usize,
    /// Untimed requests of each kind first.
    #[arg(long, default_value_t = 50)]
    warmup: usize,
    /// Target p95 in milliseconds (reported, not fatal).
    #[arg(long, default_value_t = 5.0)]
    target_ms: f64,
    /// key=value results for bench/run.sh.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    match runtime.block_on(run(&cli)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(3),
        Err(error) => {
            eprintln!("api_latency: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Nearest-rank percentile of sorted nanoseconds, in milliseconds.
fn pct_ms(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1e6
}

/// Words of at least four letters from the user's newest memories.
async fn query_words(client: &reqwest::Client, cli: &Cli) -> Result<Vec<String>> {
    let url = format!("{}/memories/list?user_id={}&limit=100", cli.base, cli.user);
    let page: serde_json::Value =
        client.get(&url).bearer_auth(&cli.key).send().await?.error_for_status()?.json().await?;
    let mut words: Vec<String> = page["items"]
        .as_array()
        .context("a page of memories")?
        .iter()
        .filter_map(|m| m["text"].as_str())
        .flat_map(|t| t.split(|c: char| !c.is_alphabetic()).map(str::to_lowercase).collect::<Vec<_>>())
        .filter(|w| w.chars().count() >= 4)
        .collect();
    words.sort();
    words.dedup();
    if words.is_empty() {
        bail!("user {} has no memories to take query words from", cli.user);
    }
    Ok(words)
}

/// One timed GET; `None` when it did not answer 200.
async fn timed_get(client: &reqwest::Client, url: &str, key: &str) -> Result<Option<u64>> {
    let started = Instant::now();
    let response = client.get(url).bearer_auth(key).send().await?;
    let ok = response.status() == 200;
    let body = response.bytes().await?;
    let ns = started.elapsed().as_nanos() as u64;
    if !ok {
        eprintln!("api_latency: {url} answered: {}", String::from_utf8_lossy(&body));
    }
    Ok(ok.then_some(ns))
}

async fn run(cli: &Cli) -> Result<bool> {
    let client = reqwest::Client::builder().pool_max_idle_per_host(1).build()?;
    let words = query_words(&client, cli).await?;
    let mut search = Vec::with_capacity(cli.count);
    let mut list = Vec::with_capacity(cli.count);
    let mut failures = 0usize;
    for i in 0..cli.warmup + cli.count {
        let word = &words[(i * 7919) % words.len()];
        let search_url = format!("{}/memories?user_id={}&query={word}&limit=20", cli.base, cli.user);
        let list_url = format!("{}/memories/list?user_id={}&limit=20", cli.base, cli.user);
        for (url, samples) in [(search_url, &mut search), (list_url, &mut list)] {
            match timed_get(&client, &url, &cli.key).await? {
                Some(ns) if i >= cli.warmup => samples.push(ns),
                Some(_) => {}
                None => failures += 1,
            }
        }
    }
    search.sort_unstable();
    list.sort_unstable();
    let mut out = String::new();
    for (name, samples) in [("search", &search), ("list", &list)] {
        let (p50, p95, p99) = (pct_ms(samples, 50.0), pct_ms(samples, 95.0), pct_ms(samples, 99.0));
        let verdict = if p95 <= cli.target_ms { "PASS" } else { "MISS" };
        println!(
            "{name:<6} n {:<5} p50 {p50:.3}  p95 {p95:.3}  p99 {p99:.3} ms  (p95 target <= {} ms: {verdict})",
            samples.len(),
            cli.target_ms
        );
        let _ = writeln!(
            out,
            "{name}_n={}\n{name}_p50_ms={p50:.3}\n{name}_p95_ms={p95:.3}\n{name}_p99_ms={p99:.3}",
            samples.len()
        );
    }
    let _ = writeln!(out, "failures={failures}\nquery_words={}", words.len());
    if let Some(path) = &cli.out {
        std::fs::write(path, out).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(failures == 0)
}
