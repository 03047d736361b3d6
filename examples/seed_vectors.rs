//! Gives every memory of one user a vector, for timing hybrid search at 100,000 memories
//! in `make bench` (see `bench/run.sh`). Embedding 100,000 notes with the model would take
//! about seven minutes on a 2-core machine (`examples/embed_throughput.rs` measures the
//! rate), and a scan's cost does not depend on which vectors it compares. So: `--sample`
//! of the user's own texts are embedded by the model, and each memory gets one of those
//! vectors plus noise (cosine ~0.9 to it), which keeps similarities spread as real ones
//! are (many near neighbours, most far away). Vectors are stored through the service's own
//! repository (`save_embedding`), as the indexer stores them.
//!
//! ```text
//! target/release/examples/seed_vectors --database-url sqlite://bench.db --user 15550009999
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;

use whatsapp_memory::adapters::db::Database;
use whatsapp_memory::adapters::minilm::{MiniLmEmbedder, MiniLmSettings};
use whatsapp_memory::domain::embedding::QuantizedEmbedding;
use whatsapp_memory::domain::model::MemoryId;
use whatsapp_memory::domain::ports::{transact, EmbedPurpose, TextEmbedder};

#[derive(Parser)]
struct Args {
    #[arg(long)]
    database_url: String,
    /// The user's WhatsApp id (digits, no +).
    #[arg(long)]
    user: String,
    #[arg(long, default_value = "models/all-minilm-l6-v2")]
    model_dir: PathBuf,
    /// Texts embedded by the model; the other memories reuse their vectors with noise.
    #[arg(long, default_value_t = 2000)]
    sample: usize,
    /// Also write the results here.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Memories read and stored per transaction.
const PAGE: u32 = 500;

/// A small deterministic generator of normally distributed noise.
struct Noise(u64);

impl Noise {
    fn uniform(&mut self) -> f32 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 + 0.5) / (1u64 << 24) as f32
    }

    fn normal(&mut self) -> f32 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("seed_vectors: {error:#}");
            ExitCode::from(1)
        }
    }
}

async fn run(args: Args) -> Result<()> {
    let started = Instant::now();
    let embedder = MiniLmEmbedder::load(&MiniLmSettings { model_dir: args.model_dir.clone(), index_threads: 2 })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let model = embedder.model_id();
    let database = Database::open(&args.database_url, false).await?;
    let user = database.reads.find_user(&args.user).await?.context("no such user")?;

    // The user's memories without a vector, with their texts.
    let mut memories: Vec<(MemoryId, String)> = Vec::new();
    let mut after = MemoryId(0);
    loop {
        let page = database.reads.memories_without_embedding(&model, after, PAGE).await?;
        let Some(&(last, _)) = page.last() else { break };
        after = last;
        let ids: Vec<MemoryId> = page.into_iter().filter(|(_, owner)| *owner == user.id).map(|(id, _)| id).collect();
        for record in database.reads.find_memories(&ids).await? {
            memories.push((record.memory.id, record.memory.text));
        }
    }
    anyhow::ensure!(!memories.is_empty(), "the user has no memory without a vector");

    let sample: Vec<String> = memories.iter().take(args.sample).map(|(_, text)| text.clone()).collect();
    let embedding_started = Instant::now();
    let vectors = embedder.embed(sample.clone(), EmbedPurpose::Index).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let sample_rate = sample.len() as f64 / embedding_started.elapsed().as_secs_f64();

    // Per-dimension noise of 0.0247 puts a copy at cosine ~0.9 to its source.
    let mut noise = Noise(20261127);
    let storing_started = Instant::now();
    let mut stored = 0usize;
    for chunk in memories.chunks(PAGE as usize) {
        let mut batch = Vec::with_capacity(chunk.len());
        for (i, (id, text)) in chunk.iter().enumerate() {
            let source = &vectors[(stored + i) % vectors.len()];
            let mut vector: Vec<f32> = source.iter().map(|v| v + 0.0247 * noise.normal()).collect();
            let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
            vector.iter_mut().for_each(|v| *v /= norm);
            batch.push((*id, text.clone(), QuantizedEmbedding::quantize(&vector)));
        }
        let model = model.clone();
        let saved = transact(&*database.repository, move |tx| {
            Box::pin(async move {
                let mut saved = 0;
                for (id, text, vector) in batch {
                    saved += usize::from(tx.save_embedding(id, &text, &model, &vector).await?);
                }
                Ok(saved)
            })
        })
        .await?;
        stored += saved;
    }

    let lines = [
        format!("model={model}"),
        format!("memories={}", memories.len()),
        format!("stored={stored}"),
        format!("sample={}", sample.len()),
        format!("sample_notes_per_s={sample_rate:.1}"),
        format!("store_s={:.1}", storing_started.elapsed().as_secs_f64()),
        format!("elapsed_s={:.1}", started.elapsed().as_secs_f64()),
    ];
    let text = lines.join("\n") + "\n";
    print!("{text}");
    if let Some(out) = &args.out {
        std::fs::write(out, &text).with_context(|| format!("writing {}", out.display()))?;
    }
    anyhow::ensure!(stored == memories.len(), "{} of {} vectors stored", stored, memories.len());
    Ok(())
}
