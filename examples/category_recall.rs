//! The search-by-meaning quality figures of `make bench` (see `bench/run.sh`): recall@5 of
//! the category queries (`tests/fixtures/category_search.json`: "home repairs" should find
//! the plumber and the electrician) and of the paraphrased questions
//! (`tests/fixtures/paraphrase_search.json`), as vector search ranks and selects its hits,
//! under the settings before issue 15, under its first selection (cosine only) and under
//! today's (hubness-corrected), on the tuning half (even queries), the checking half (odd),
//! the whole set, and the held-out set (`tests/fixtures/category_search_holdout.json`).
//!
//! ```text
//! cargo build --release --example category_recall
//! target/release/examples/category_recall --model-dir models/all-minilm-l6-v2
//! ```
//!
//! Each set's notes (and distractors) are embedded with the real model and searched
//! exactly as `SemanticIndex::nearest` does (int8 vectors, `SemanticSettings::rank`);
//! full text is left out because no query shares a word with its notes (the integration
//! tests check that, and measure the same sets end to end through the server). Prints
//! `key=value` lines (and writes them to `--out`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use serde_json::Value;

use whatsapp_memory::adapters::minilm::{MiniLmEmbedder, MiniLmSettings};
use whatsapp_memory::app::semantic::{HubnessCorrection, SemanticSettings};
use whatsapp_memory::domain::embedding::{QuantizedEmbedding, VectorSet};
use whatsapp_memory::domain::model::MemoryId;
use whatsapp_memory::domain::ports::{EmbedPurpose, TextEmbedder};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "models/all-minilm-l6-v2")]
    model_dir: PathBuf,
    #[arg(long, default_value = "tests/fixtures/category_search.json")]
    categories: PathBuf,
    #[arg(long, default_value = "tests/fixtures/paraphrase_search.json")]
    paraphrases: PathBuf,
    /// Category queries over other notes, never used to tune the settings.
    #[arg(long, default_value = "tests/fixtures/category_search_holdout.json")]
    holdout: PathBuf,
    /// Also write the results here.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// The selection before issue 15: one floor of 0.25 and a spread of 0.12.
const BEFORE: SemanticSettings =
    SemanticSettings { best_floor: 0.25, floor: 0.25, spread: 0.12, hubness: HubnessCorrection::OFF, cache_bytes: 0 };

/// Issue 15's first selection: a lower floor for a clear best match's relatives, ranked by
/// cosine alone (no hubness correction).
const COSINE_ONLY: SemanticSettings =
    SemanticSettings { best_floor: 0.25, floor: 0.2, spread: 0.2, hubness: HubnessCorrection::OFF, cache_bytes: 0 };

/// Results a search shows in the chat, and the recall cut-off.
const TOP: usize = 5;

/// One query and the notes it should find.
struct Query {
    text: String,
    wanted: Vec<String>,
}

/// A test set: its queries and every note searched (theirs and the distractors).
struct TestSet {
    queries: Vec<Query>,
    notes: Vec<String>,
}

fn strings(value: &Value) -> Result<Vec<String>> {
    value.as_array().context("a list")?.iter().map(|s| s.as_str().map(str::to_string).context("a string")).collect()
}

fn read(path: &PathBuf) -> Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(serde_json::from_str(&text)?)
}

fn categories(path: &PathBuf) -> Result<TestSet> {
    let fixture = read(path)?;
    let mut queries = Vec::new();
    for query in fixture["queries"].as_array().context("queries")? {
        queries
            .push(Query { text: query["query"].as_str().context("query")?.into(), wanted: strings(&query["notes"])? });
    }
    let mut notes: Vec<String> = queries.iter().flat_map(|q| q.wanted.clone()).collect();
    notes.extend(strings(&fixture["distractors"])?);
    Ok(TestSet { queries, notes })
}

fn paraphrases(path: &PathBuf) -> Result<TestSet> {
    let fixture = read(path)?;
    let mut queries = Vec::new();
    for pair in fixture["pairs"].as_array().context("pairs")? {
        let note = pair["note"].as_str().context("note")?.to_string();
        queries.push(Query { text: pair["query"].as_str().context("query")?.into(), wanted: vec![note] });
    }
    let mut notes: Vec<String> = queries.iter().flat_map(|q| q.wanted.clone()).collect();
    notes.extend(strings(&fixture["distractors"])?);
    Ok(TestSet { queries, notes })
}

/// Recall@5 (each query's share of its notes in its first five hits, averaged) and the
/// mean count of other notes among those hits.
struct Figures {
    recall: f64,
    others: f64,
}

async fn measure(embedder: &MiniLmEmbedder, set: &TestSet, settings: &[SemanticSettings]) -> Result<Vec<Figures>> {
    let vectors = embedder.embed(set.notes.clone(), EmbedPurpose::Index).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut index = VectorSet::new(embedder.dimension());
    for (i, vector) in vectors.iter().enumerate() {
        index.upsert(MemoryId(i as i64 + 1), &QuantizedEmbedding::quantize(vector));
    }
    let texts: Vec<String> = set.queries.iter().map(|q| q.text.clone()).collect();
    let queries = embedder.embed(texts, EmbedPurpose::Query).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut figures = Vec::new();
    for settings in settings {
        let (mut recall, mut others) = (0.0, 0.0);
        for (query, vector) in set.queries.iter().zip(&queries) {
            let found = settings.rank(&index, &QuantizedEmbedding::quantize(vector), TOP);
            let found: Vec<&str> = found.iter().map(|n| set.notes[n.memory.0 as usize - 1].as_str()).collect();
            let hits = query.wanted.iter().filter(|w| found.contains(&w.as_str())).count();
            recall += hits as f64 / query.wanted.len() as f64;
            others += (found.len() - hits) as f64;
        }
        let n = set.queries.len() as f64;
        figures.push(Figures { recall: recall / n, others: others / n });
    }
    Ok(figures)
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("category_recall: {error:#}");
            ExitCode::from(1)
        }
    }
}

async fn run(args: Args) -> Result<()> {
    let embedder = MiniLmEmbedder::load(&MiniLmSettings { model_dir: args.model_dir.clone(), index_threads: 1 })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let settings = [BEFORE, COSINE_ONLY, SemanticSettings::default()];
    let mut lines = vec![format!("model={}", embedder.model_id())];
    let category = categories(&args.categories)?;
    // The halves the settings were tuned on (even) and checked on (odd).
    let half = |parity: usize| TestSet {
        queries: category
            .queries
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 2 == parity)
            .map(|(_, q)| Query { text: q.text.clone(), wanted: q.wanted.clone() })
            .collect(),
        notes: category.notes.clone(),
    };
    let sets = [
        ("category_even", half(0)),
        ("category_odd", half(1)),
        ("category", category),
        ("category_holdout", categories(&args.holdout)?),
        ("paraphrase", paraphrases(&args.paraphrases)?),
    ];
    for (name, set) in sets {
        let figures = measure(&embedder, &set, &settings).await?;
        lines.push(format!("{name}_queries={}", set.queries.len()));
        for (when, f) in ["before", "cosine_only", "now"].iter().zip(&figures) {
            lines.push(format!("{name}_recall_at_5_{when}={:.3}", f.recall));
            lines.push(format!("{name}_other_hits_{when}={:.2}", f.others));
        }
    }
    let text = lines.join("\n") + "\n";
    print!("{text}");
    if let Some(out) = &args.out {
        std::fs::write(out, &text).with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}
