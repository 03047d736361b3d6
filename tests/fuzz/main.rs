//! Property-based fuzzing of every parser that sees untrusted bytes: the webhook's form
//! and signature, commands, time ranges and reminder phrases, the TwiML writer, audio
//! containers, image sniffing and decoding, the preparation of images for OCR, and PDF
//! text extraction.
//!
//! Stable Rust has no libFuzzer, so this is proptest with generated and mutated inputs.
//! Every case must not panic, must finish within its time limit and must not hold more
//! memory than the service's caps allow; each target adds what its output must satisfy.
//! `make test` runs a bounded number of cases per target (a fixed seed); `make fuzz` runs
//! each for `FUZZ_SECONDS` (default 600) and keeps what fails in `fuzz/corpus/<target>/`,
//! which every later run replays.

mod alloc;
mod audio;
mod harness;
mod images;
mod mutate;
mod ocr;
// The OCR tests' file builders (PDFs written byte by byte, PNG checksums); this binary
// uses a few of them, so the rest would warn as unused.
#[allow(dead_code)]
#[path = "../api/ocr_fixtures.rs"]
mod ocr_fixtures;
mod pdf;
mod reminders;
mod text;
mod webhook;

#[global_allocator]
static ALLOCATOR: alloc::CountingAllocator = alloc::CountingAllocator;
