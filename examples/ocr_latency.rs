//! The OCR and PDF timings of `make bench` (see `bench/run.sh` and `bench/README.md`):
//! how long one phone screenshot takes from its bytes to its text, exactly as the `ocr`
//! job does it (`TesseractRecognizer`: decode, prepare, Tesseract on one thread, filter),
//! and how long a PDF's text layer takes (`PopplerReader`: `pdftotext` in a child process).
//!
//! ```text
//! cargo build --release --example ocr_latency
//! target/release/examples/ocr_latency --image screenshot.png --pdf ten-pages.pdf --runs 5
//! ```
//!
//! One untimed run of each warms up, then each of `--runs` runs is timed. Prints
//! `key=value` lines (and writes them to `--out`): image_p50_ms, image_max_ms,
//! image_words, pdf_p50_ms, pdf_max_ms, pdf_chars. Exit codes: 0 when text was found in
//! both (a missed target is reported, not fatal), 3 when one gave no text, 1 otherwise.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;

use whatsapp_memory::adapters::pdf::PopplerReader;
use whatsapp_memory::adapters::tesseract::{TesseractRecognizer, TesseractSettings};
use whatsapp_memory::domain::ports::{DocumentContent, DocumentReader, TextRecognizer};

#[derive(Parser)]
struct Args {
    /// A screenshot (PNG or JPEG).
    #[arg(long)]
    image: PathBuf,
    /// A PDF with a text layer.
    #[arg(long)]
    pdf: PathBuf,
    /// Timed runs of each after the warm-up.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Also write the results here.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// p50 and max of `timings`, in milliseconds.
fn summary(mut timings: Vec<f64>) -> (f64, f64) {
    timings.sort_by(f64::total_cmp);
    (timings[(timings.len() - 1) / 2], timings[timings.len() - 1])
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(3),
        Err(error) => {
            eprintln!("ocr_latency: {error:#}");
            ExitCode::from(1)
        }
    }
}

async fn run(args: Args) -> Result<bool> {
    let image = std::fs::read(&args.image).with_context(|| format!("reading {}", args.image.display()))?;
    let pdf = std::fs::read(&args.pdf).with_context(|| format!("reading {}", args.pdf.display()))?;
    let recognizer = TesseractRecognizer::load(TesseractSettings {
        languages: "eng".into(),
        max_pixels: 12_000_000,
        time_cap: Duration::from_secs(60),
        concurrency: 1,
    })
    .map_err(|e| anyhow::anyhow!(e))?;
    let reader = PopplerReader::new(Duration::from_secs(60));

    let mut words = 0;
    let mut image_ms = Vec::new();
    for run in 0..=args.runs {
        let started = Instant::now();
        let found = recognizer.recognize(image.clone()).await?;
        if run > 0 {
            image_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        words = found.text.split_whitespace().count();
    }
    let mut chars = 0;
    let mut pdf_ms = Vec::new();
    for run in 0..=args.runs {
        let started = Instant::now();
        let content = reader.read_pdf(pdf.clone(), 10).await?;
        if run > 0 {
            pdf_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        chars = match content {
            DocumentContent::Text(text) => text.chars().count(),
            DocumentContent::Scanned(_) => 0,
        };
    }
    let ((image_p50, image_max), (pdf_p50, pdf_max)) = (summary(image_ms), summary(pdf_ms));
    let lines = format!(
        "image_p50_ms={image_p50:.0}\nimage_max_ms={image_max:.0}\nimage_words={words}\n\
         pdf_p50_ms={pdf_p50:.1}\npdf_max_ms={pdf_max:.1}\npdf_chars={chars}\nruns={}\n",
        args.runs
    );
    print!("{lines}");
    if let Some(out) = &args.out {
        std::fs::write(out, &lines)?;
    }
    Ok(words > 0 && chars > 0)
}
