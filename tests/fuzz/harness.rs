//! The loop every fuzz target shares: replay the target's corpus, then run generated
//! cases, each held to three properties (no panic escapes, no more than the target's time,
//! no allocation above its cap) plus the target's own, and keep what fails in the corpus.
//!
//! `make test` runs a bounded number of cases per target with a fixed seed (the same cases
//! every time: a red build means a change broke something, not that the dice rolled);
//! `make fuzz` runs each target for `FUZZ_SECONDS` with fresh random seeds.

use std::cell::Cell;
use std::fmt::Debug;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::Once;
use std::time::{Duration, Instant};

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestError, TestRunner};

use crate::alloc::peak_allocation;

/// One MiB, for allocation caps.
pub const MIB: usize = 1024 * 1024;

/// How long a case may take, and by which clock.
#[derive(Debug, Clone, Copy)]
pub enum TimeLimit {
    /// CPU time of the fuzzing thread: what the case costs, whatever else loads the
    /// machine (other builds and tests share these two cores).
    Cpu(Duration),
    /// Wall time, for targets whose work runs in a child process.
    Wall(Duration),
}

/// What every case of a target must stay within.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub time: TimeLimit,
    /// The most bytes the case may hold at once (the fuzzing thread's allocations).
    pub max_alloc_bytes: usize,
}

impl Limits {
    /// One second of CPU and `max_alloc_bytes`.
    pub fn one_cpu_second(max_alloc_bytes: usize) -> Self {
        Self { time: TimeLimit::Cpu(Duration::from_secs(1)), max_alloc_bytes }
    }
}

/// An input that can be kept in the corpus as a file and read back.
pub trait CorpusInput: Debug + Clone + Sized {
    /// The corpus file's extension: `txt` for text, `json`, `bin`.
    const EXTENSION: &'static str;
    fn to_bytes(&self) -> Vec<u8>;
    /// `None` for a file that no longer fits the input's shape (it is reported).
    fn from_bytes(bytes: &[u8]) -> Option<Self>;
}

impl CorpusInput for Vec<u8> {
    const EXTENSION: &'static str = "bin";
    fn to_bytes(&self) -> Vec<u8> {
        self.clone()
    }
    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        Some(bytes.to_vec())
    }
}

impl CorpusInput for String {
    const EXTENSION: &'static str = "txt";
    fn to_bytes(&self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }
    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        String::from_utf8(bytes.to_vec()).ok()
    }
}

/// Implements [`CorpusInput`] as JSON for a serde type.
#[macro_export]
macro_rules! json_corpus_input {
    ($type:ty) => {
        impl $crate::harness::CorpusInput for $type {
            const EXTENSION: &'static str = "json";
            fn to_bytes(&self) -> Vec<u8> {
                serde_json::to_vec_pretty(self).expect("a fuzz input serialises")
            }
            fn from_bytes(bytes: &[u8]) -> Option<Self> {
                serde_json::from_slice(bytes).ok()
            }
        }
    };
}

/// How a run is bounded: by cases (`make test`) or by time (`make fuzz`).
#[derive(Debug, Clone, Copy)]
enum Budget {
    Cases(u32),
    Time(Duration),
}

fn budget(bounded_cases: u32) -> Budget {
    if let Some(seconds) = std::env::var("FUZZ_SECONDS").ok().and_then(|s| s.parse::<u64>().ok()) {
        return Budget::Time(Duration::from_secs(seconds));
    }
    let cases = std::env::var("FUZZ_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(bounded_cases);
    Budget::Cases(cases)
}

/// The seed of the first batch: `FUZZ_SEED` when given (to reproduce a run), a fixed one
/// for bounded runs, a fresh one for timed runs.
fn first_seed(target: &str, budget: Budget) -> u64 {
    if let Some(seed) = std::env::var("FUZZ_SEED").ok().and_then(|s| s.parse().ok()) {
        return seed;
    }
    match budget {
        Budget::Cases(_) => fnv1a(target.as_bytes()),
        Budget::Time(_) => {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            fnv1a(format!("{target}{}", now.as_nanos()).as_bytes())
        }
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |hash, &byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
}

/// The folder of the target's corpus: seeds worth replaying and every failure found.
pub fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz").join("corpus").join(target)
}

/// The thread's CPU time so far.
fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `now` is a valid timespec for the call to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

thread_local! {
    /// Set while a case runs: its panics are expected findings, reported with the input
    /// rather than printed (again and again while shrinking) by the default hook.
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

fn quiet_panics_in_cases() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                default(info);
            }
        }));
    });
}

/// Whether an error tells a person something: one line, not empty, not a dump.
///
/// # Errors
/// The error as said, when it is not.
pub fn clearly_said(error: &impl std::fmt::Display) -> Result<(), String> {
    let said = error.to_string();
    if said.trim().is_empty() || said.len() > 300 || said.contains('\n') {
        return Err(format!("an unclear error: {said:?}"));
    }
    Ok(())
}

/// Runs one case under the limits: `Err` says which property it broke.
///
/// # Errors
/// The broken property: a panic, the time or allocation cap, or the target's own.
pub fn check<I>(input: &I, limits: Limits, property: &impl Fn(&I) -> Result<(), String>) -> Result<(), String> {
    quiet_panics_in_cases();
    let (cpu, wall) = (thread_cpu_time(), Instant::now());
    QUIET.with(|quiet| quiet.set(true));
    let (outcome, peak) = peak_allocation(|| catch_unwind(AssertUnwindSafe(|| property(input))));
    QUIET.with(|quiet| quiet.set(false));
    let elapsed = match limits.time {
        TimeLimit::Cpu(_) => thread_cpu_time().saturating_sub(cpu),
        TimeLimit::Wall(_) => wall.elapsed(),
    };
    match outcome {
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-string panic".into());
            return Err(format!("panicked: {message}"));
        }
        Ok(Err(broken)) => return Err(broken),
        Ok(Ok(())) => {}
    }
    let (TimeLimit::Cpu(limit) | TimeLimit::Wall(limit)) = limits.time;
    if elapsed > limit {
        return Err(format!(
            "took {} ms ({:?}; the limit is {} ms)",
            elapsed.as_millis(),
            limits.time,
            limit.as_millis()
        ));
    }
    if peak > limits.max_alloc_bytes {
        return Err(format!("held {} MiB at once (the cap is {} MiB)", peak / MIB, limits.max_alloc_bytes / MIB));
    }
    Ok(())
}

/// Replays `target`'s corpus, then runs `bounded_cases` generated cases (or, under `make
/// fuzz`, as many as fit in `FUZZ_SECONDS`), each through [`check`]. A failing case is
/// shrunk, written to the corpus and reported with the file's path.
///
/// # Panics
/// On the first failing case (that is the test failing).
pub fn fuzz<S>(
    target: &str,
    bounded_cases: u32,
    limits: Limits,
    strategy: S,
    property: impl Fn(&S::Value) -> Result<(), String>,
) where
    S: Strategy,
    S::Value: CorpusInput,
{
    let started = Instant::now();
    let replayed = replay_corpus(target, limits, &property);
    let budget = budget(bounded_cases);
    let seed = first_seed(target, budget);
    let cases = Cell::new(0u64);
    let mut batch = 0u64;
    loop {
        let batch_cases = match budget {
            Budget::Cases(cases) => cases,
            Budget::Time(_) => 200,
        };
        let config = Config {
            cases: batch_cases,
            failure_persistence: None,
            rng_seed: RngSeed::Fixed(seed.wrapping_add(batch)),
            max_shrink_iters: 4096,
            max_shrink_time: 120_000,
            ..Config::default()
        };
        let mut runner = TestRunner::new(config);
        let outcome = runner.run(&strategy, |input| {
            cases.set(cases.get() + 1);
            check(&input, limits, &property).map_err(TestCaseError::fail)
        });
        match outcome {
            Ok(()) => {}
            Err(TestError::Fail(reason, input)) => {
                let path = keep_in_corpus(target, &input);
                panic!(
                    "fuzz target {target}: {reason}\n  the shrunk input is kept in {} (seed {}, batch {batch}); \
                     every run replays it from now on",
                    path.display(),
                    seed.wrapping_add(batch)
                );
            }
            Err(TestError::Abort(reason)) => panic!("fuzz target {target} stopped: {reason}"),
        }
        batch += 1;
        match budget {
            Budget::Cases(_) => break,
            Budget::Time(limit) if started.elapsed() >= limit => break,
            Budget::Time(_) => {}
        }
    }
    eprintln!(
        "fuzz {target}: {} cases in {:.1} s ({replayed} corpus files replayed, first seed {seed}): no failure",
        cases.get(),
        started.elapsed().as_secs_f64()
    );
}

/// Runs every file of the target's corpus; returns how many there were.
fn replay_corpus<I: CorpusInput>(target: &str, limits: Limits, property: &impl Fn(&I) -> Result<(), String>) -> usize {
    let Ok(entries) = std::fs::read_dir(corpus_dir(target)) else {
        return 0;
    };
    let mut files: Vec<PathBuf> = entries.filter_map(|entry| entry.ok().map(|entry| entry.path())).collect();
    files.sort();
    for file in &files {
        let bytes = std::fs::read(file).unwrap_or_else(|error| panic!("{}: {error}", file.display()));
        let input = I::from_bytes(&bytes)
            .unwrap_or_else(|| panic!("{} is not an input of fuzz target {target} any more", file.display()));
        if let Err(reason) = check(&input, limits, property) {
            panic!("fuzz target {target}, corpus file {}: {reason}", file.display());
        }
    }
    files.len()
}

/// Writes a failing input to the target's corpus, named by its hash.
fn keep_in_corpus<I: CorpusInput>(target: &str, input: &I) -> PathBuf {
    let dir = corpus_dir(target);
    let bytes = input.to_bytes();
    let path = dir.join(format!("crash-{:016x}.{}", fnv1a(&bytes), I::EXTENSION));
    if let Err(error) = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, &bytes)) {
        eprintln!("could not keep the failing input in {}: {error}", path.display());
    }
    path
}
