//! The embedding figures of `make bench` (see `bench/run.sh` and `bench/README.md`): how
//! many notes per second the in-process all-MiniLM-L6-v2 embeds, one at a time and in
//! batches (as the indexer does), and how long one search query takes to embed.
//!
//! ```text
//! cargo build --release --example embed_throughput
//! target/release/examples/embed_throughput --model-dir models/all-minilm-l6-v2 --notes 1000
//! ```
//!
//! Notes are the 90 notes of `tests/fixtures/paraphrase_search.json`, cycled (each copy
//! made distinct by a number). Prints `key=value` lines (and writes them to `--out`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;

use whatsapp_memory::adapters::minilm::{MiniLmEmbedder, MiniLmSettings};
use whatsapp_memory::domain::ports::{EmbedPurpose, TextEmbedder};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "models/all-minilm-l6-v2")]
    model_dir: PathBuf,
    /// Notes embedded in each throughput run.
    #[arg(long, default_value_t = 1000)]
    notes: usize,
    /// Queries embedded one by one for the latency figures.
    #[arg(long, default_value_t = 300)]
    queries: usize,
    /// Threads of the background (indexing) pool.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    #[arg(long, default_value = "tests/fixtures/paraphrase_search.json")]
    fixture: PathBuf,
    /// Also write the results here.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("embed_throughput: {error:#}");
            ExitCode::from(1)
        }
    }
}

async fn run(args: Args) -> Result<()> {
    let fixture: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&args.fixture).context("reading the fixture")?)?;
    let mut base: Vec<String> = Vec::new();
    for pair in fixture["pairs"].as_array().context("pairs")? {
        base.push(pair["note"].as_str().context("note")?.to_string());
    }
    let queries: Vec<String> = fixture["pairs"]
        .as_array()
        .context("pairs")?
        .iter()
        .filter_map(|p| p["query"].as_str().map(str::to_string))
        .collect();
    for distractor in fixture["distractors"].as_array().context("distractors")? {
        base.push(distractor.as_str().context("distractor")?.to_string());
    }
    let notes: Vec<String> = (0..args.notes).map(|i| format!("{} #{i}", base[i % base.len()])).collect();

    let started = Instant::now();
    let embedder =
        MiniLmEmbedder::load(&MiniLmSettings { model_dir: args.model_dir.clone(), index_threads: args.threads })
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    let load_ms = started.elapsed().as_secs_f64() * 1000.0;
    embedder.embed(notes[..16].to_vec(), EmbedPurpose::Index).await.map_err(|e| anyhow::anyhow!("{e}"))?;

    // One note per call.
    let started = Instant::now();
    for note in &notes {
        embedder.embed(vec![note.clone()], EmbedPurpose::Index).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let single_rate = notes.len() as f64 / started.elapsed().as_secs_f64();

    // All at once: sorted by length and cut into batches by the adapter.
    let started = Instant::now();
    embedder.embed(notes.clone(), EmbedPurpose::Index).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let batch_rate = notes.len() as f64 / started.elapsed().as_secs_f64();

    let mut latencies = Vec::with_capacity(args.queries);
    for i in 0..args.queries {
        let query = format!("{} {i}", queries[i % queries.len()]);
        let started = Instant::now();
        embedder.embed(vec![query], EmbedPurpose::Query).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    latencies.sort_by(f64::total_cmp);

    let lines = [
        format!("model={}", embedder.model_id()),
        format!("load_ms={load_ms:.0}"),
        format!("threads={}", args.threads),
        format!("notes={}", notes.len()),
        format!("single_notes_per_s={single_rate:.1}"),
        format!("batch_notes_per_s={batch_rate:.1}"),
        format!("query_p50_ms={:.2}", percentile(&latencies, 0.50)),
        format!("query_p95_ms={:.2}", percentile(&latencies, 0.95)),
        format!("query_max_ms={:.2}", percentile(&latencies, 1.0)),
    ];
    let text = lines.join("\n") + "\n";
    print!("{text}");
    if let Some(out) = &args.out {
        std::fs::write(out, &text).with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}
