//! Prints the soak's table (one row per window) and its verdicts, and writes the same as
//! `key=value` lines for `bench/run.sh`.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

use super::mix::{Kind, Mix};
use super::sampler::Sample;
use super::verdict::{Check, Figures};
use super::window::Window;
use crate::pct_ms;

/// Everything the report shows.
pub struct Outcome<'a> {
    /// The run in one line: length, windows, rate, connections, users.
    pub headline: String,
    /// The weights the run drew from, shown as shares.
    pub mix: &'a Mix,
    /// Seconds per window, to turn counts into rates.
    pub window_secs: f64,
    /// Every window's counts, all workers merged and latencies sorted.
    pub windows: &'a [Window],
    /// Index 0: at the start; index k: at the end of window k.
    pub samples: &'a [Sample],
    /// Sorted latencies of each kind over the whole run ([`Kind::index`]).
    pub by_kind_ns: &'a [Vec<u64>],
    /// The rules' outcomes, in order.
    pub checks: &'a [Check],
}

/// The figures the rules judge, one per window.
pub fn figures(windows: &[Window], samples: &[Sample]) -> Vec<Figures> {
    windows
        .iter()
        .enumerate()
        .map(|(i, w)| Figures {
            errors: w.errors(),
            p99_ms: w.pct_ms(99.0),
            rss_kb: samples.get(i + 1).and_then(|s| s.memory).map(|m| m.rss_kb),
        })
        .collect()
}

/// Megabytes, or "n/a".
fn mb(kb: Option<u64>) -> String {
    kb.map_or_else(|| "n/a".into(), |kb| format!("{:.1}", kb as f64 / 1024.0))
}

/// A count that may be missing, or "n/a".
fn count(n: Option<i64>) -> String {
    n.map_or_else(|| "n/a".into(), |n| n.to_string())
}

/// Requests due but unanswered at a window's end, or "n/a".
fn behind(s: &Sample) -> String {
    s.behind.map_or_else(|| "n/a".into(), |b| b.to_string())
}

/// The printed report: headline, mix, one row per window, latency by kind, failures, rules.
pub fn text(o: &Outcome) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "{}", o.headline);
    let _ = writeln!(t, "  mix: {}", o.mix.describe());
    let start = o.samples.first().and_then(|s| s.memory);
    let _ = writeln!(
        t,
        "  server at the start: RSS {} MB (anon {} MB)",
        mb(start.map(|m| m.rss_kb)),
        mb(start.map(|m| m.anon_kb))
    );
    let _ = writeln!(
        t,
        "  {:>6} {:>9} {:>8} {:>7} {:>7} {:>8} {:>8} {:>9} {:>8} {:>8} {:>8} {:>10}",
        "window",
        "requests",
        "req/s",
        "behind",
        "errors",
        "p50 ms",
        "p99 ms",
        "max ms",
        "RSS MB",
        "anon MB",
        "jobs",
        "embed queue"
    );
    for (i, w) in o.windows.iter().enumerate() {
        let s = o.samples.get(i + 1).cloned().unwrap_or_default();
        let _ = writeln!(
            t,
            "  {:>6} {:>9} {:>8.1} {:>7} {:>7} {:>8.2} {:>8.2} {:>9.2} {:>8} {:>8} {:>8} {:>10}",
            i + 1,
            w.sent,
            w.sent as f64 / o.window_secs,
            behind(&s),
            w.errors(),
            w.pct_ms(50.0),
            w.pct_ms(99.0),
            w.pct_ms(100.0),
            mb(s.memory.map(|m| m.rss_kb)),
            mb(s.memory.map(|m| m.anon_kb)),
            count(s.jobs_waiting),
            count(s.embed_queue)
        );
    }
    let _ = writeln!(t, "  by kind (whole run):");
    for kind in Kind::ALL {
        let lat = &o.by_kind_ns[kind.index()];
        let sent: u64 = o.windows.iter().map(|w| w.by_kind[kind.index()]).sum();
        if sent == 0 {
            continue;
        }
        let _ = writeln!(
            t,
            "    {:<11} {:>9} sent  p50 {:>7.2}  p99 {:>8.2}  max {:>9.2} ms",
            kind.name(),
            sent,
            pct_ms(lat, 50.0),
            pct_ms(lat, 99.0),
            pct_ms(lat, 100.0)
        );
    }
    for (i, w) in o.windows.iter().enumerate() {
        if w.errors() > 0 {
            let reasons: Vec<String> = w.failures.iter().map(|(f, n)| format!("{n} {}", f.label())).collect();
            let _ = writeln!(
                t,
                "  window {}: {} (e.g. {})",
                i + 1,
                reasons.join(", "),
                w.first_failure.as_deref().unwrap_or("?")
            );
        }
    }
    for c in o.checks {
        let _ = writeln!(t, "  {:<11} {:<11} {}", c.rule, c.verdict(), c.detail);
    }
    t
}

/// `key=value` lines: totals, the rules' verdicts and one line per window.
pub fn key_values(o: &Outcome) -> String {
    let sent: u64 = o.windows.iter().map(|w| w.sent).sum();
    let ok: u64 = o.windows.iter().map(|w| w.ok).sum();
    let errors: u64 = o.windows.iter().map(Window::errors).sum();
    let failed: Vec<String> =
        o.checks.iter().filter(|c| c.pass == Some(false)).map(|c| format!("{}: {}", c.rule, c.detail)).collect();
    let mut t = String::new();
    let _ = writeln!(t, "windows={}", o.windows.len());
    let _ = writeln!(t, "window_s={}", o.window_secs);
    let _ = writeln!(t, "sent={sent}\nok={ok}\nerrors={errors}");
    let rss = |i: usize| o.samples.get(i).and_then(|s| s.memory).map(|m| m.rss_kb);
    let _ = writeln!(t, "rss_start_mb={}", mb(rss(0)));
    let _ = writeln!(t, "rss_window1_mb={}", mb(rss(1)));
    let _ = writeln!(t, "rss_end_mb={}", mb(rss(o.windows.len())));
    for c in o.checks {
        let key = c.rule.replace(' ', "_").to_lowercase();
        let _ = writeln!(t, "check_{key}={} ({})", c.verdict(), c.detail);
    }
    let _ = writeln!(t, "failed={}", failed.join("; "));
    let _ = writeln!(t, "pass={}", failed.is_empty());
    for (i, w) in o.windows.iter().enumerate() {
        let s = o.samples.get(i + 1).cloned().unwrap_or_default();
        let _ = writeln!(
            t,
            "window_{}=sent {} behind {} errors {} p50_ms {:.2} p99_ms {:.2} rss_mb {} jobs {} embed_queue {}",
            i + 1,
            w.sent,
            behind(&s),
            w.errors(),
            w.pct_ms(50.0),
            w.pct_ms(99.0),
            mb(s.memory.map(|m| m.rss_kb)),
            count(s.jobs_waiting),
            count(s.embed_queue)
        );
    }
    t
}

/// Writes `--out`.
pub fn write(path: &Path, o: &Outcome) -> Result<()> {
    std::fs::write(path, key_values(o)).with_context(|| format!("cannot write {}", path.display()))
}
