//! The voice-note transcription of `make bench` (see `bench/run.sh` and `bench/README.md`):
//! how long one voice note takes from its bytes to its words, exactly as the
//! transcription job does it: decode (in-process Ogg/Opus to 16 kHz) and transcribe with
//! whisper.cpp (`WhisperTranscriber`, the service's settings).
//!
//! ```text
//! cargo build --release --example transcribe_latency
//! target/release/examples/transcribe_latency --model models/ggml-tiny.en.bin \
//!     --note ../shared/samples/voice_note_basil.ogg --runs 5
//! ```
//!
//! The model is loaded (timed on its own), one untimed run warms it, then each of
//! `--runs` runs is timed. Prints `key=value` lines (and writes them to `--out`):
//! audio_seconds, load_ms, decode_ms, p50_ms, max_ms, threads and the words heard.
//! Exit codes: 0 when every run heard words (a missed latency target is reported, not
//! fatal), 3 when one heard nothing, 1 for any other error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;

use whatsapp_memory::adapters::audio::decode_for_speech;
use whatsapp_memory::adapters::whisper::{WhisperSettings, WhisperTranscriber};
use whatsapp_memory::domain::ports::{SpeechAudio, Transcriber};

#[derive(Parser)]
struct Args {
    /// A whisper.cpp ggml model.
    #[arg(long, default_value = "models/ggml-tiny.en.bin")]
    model: PathBuf,
    /// The voice note (Ogg/Opus or any format the service decodes).
    #[arg(long)]
    note: PathBuf,
    /// Timed runs after the warm-up.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// CPU threads per transcription (the service's default: cores - 1, 1 to 4).
    #[arg(long)]
    threads: Option<usize>,
    /// Also write the results here.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn milliseconds(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(3),
        Err(error) => {
            eprintln!("transcribe_latency: {error:#}");
            ExitCode::from(1)
        }
    }
}

async fn run(args: Args) -> Result<bool> {
    let bytes = std::fs::read(&args.note).with_context(|| format!("reading {}", args.note.display()))?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = args.threads.unwrap_or((cores.saturating_sub(1)).clamp(1, 4));
    let transcriber = WhisperTranscriber::new(WhisperSettings {
        model_path: args.model.clone(),
        language: "en".into(),
        threads,
        concurrency: 1,
    });
    let started = Instant::now();
    transcriber.model().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let load_ms = milliseconds(started);

    // One note, start to end: decode, then transcribe, as the job does.
    let once = || async {
        let started = Instant::now();
        let decoded = decode_for_speech(&bytes, "audio/ogg", 600.0).map_err(|e| anyhow::anyhow!("{e}"))?;
        let decode_ms = milliseconds(started);
        let audio = SpeechAudio { bytes: bytes.clone(), content_type: "audio/ogg".into(), decoded };
        let seconds = audio.decoded.duration_seconds();
        let transcript = transcriber.transcribe(&audio).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        anyhow::Ok((milliseconds(started), decode_ms, seconds, transcript.text))
    };
    let (_, _, audio_seconds, mut words) = once().await?; // warm-up
    let mut all_heard = !words.is_empty();
    let (mut times, mut decode_times) = (Vec::new(), Vec::new());
    for _ in 0..args.runs.max(1) {
        let (total, decode, _, heard) = once().await?;
        all_heard &= !heard.is_empty();
        times.push(total);
        decode_times.push(decode);
        words = heard;
    }
    times.sort_by(f64::total_cmp);
    decode_times.sort_by(f64::total_cmp);
    let report = format!(
        "audio_seconds={audio_seconds:.2}\nthreads={threads}\nload_ms={load_ms:.0}\ndecode_ms={:.1}\n\
         p50_ms={:.0}\nmax_ms={:.0}\nruns={}\nwords={words}\n",
        decode_times[decode_times.len() / 2],
        times[times.len() / 2],
        times[times.len() - 1],
        times.len(),
    );
    print!("{report}");
    if let Some(out) = &args.out {
        std::fs::write(out, &report).with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(all_heard)
}
