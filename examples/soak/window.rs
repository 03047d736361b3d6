//! Per-window counts of the soak (a window is a minute by default): how many requests were
//! due, how many failed and why, and their latencies, so that drift shows minute by minute.

use std::collections::BTreeMap;

use super::mix::Kind;
use crate::{contains, pct_ms, NO_MATCH_MARKER, SAVED_MARKER};

/// Why an answer counts as an error.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Failure {
    /// An HTTP status other than the one the kind expects.
    Status(u16),
    /// The expected status, but not the answer the kind expects (e.g. a redelivery that
    /// did not say "Memory saved" again).
    WrongAnswer,
    /// The connection failed or closed before a full answer.
    Transport,
    /// No full answer within the timeout.
    Timeout,
}

impl Failure {
    /// A short label for the report.
    pub fn label(self) -> String {
        match self {
            Failure::Status(s) => format!("HTTP {s}"),
            Failure::WrongAnswer => "wrong answer".into(),
            Failure::Transport => "transport".into(),
            Failure::Timeout => "timeout".into(),
        }
    }
}

/// Checks one answer against what its kind must get: `Ok` or why not.
pub fn judge(kind: Kind, status: u16, body: &[u8]) -> Result<(), Failure> {
    let want = match kind {
        Kind::ApiCreate => 201,
        _ => 200,
    };
    if status != want {
        return Err(Failure::Status(status));
    }
    let right = match kind {
        Kind::Text | Kind::Duplicate => contains(body, SAVED_MARKER),
        Kind::Search | Kind::List | Kind::Question => contains(body, b"<Message") || contains(body, NO_MATCH_MARKER),
        // Media is answered later, through the REST API: an empty TwiML now.
        Kind::Photo | Kind::Voice => contains(body, b"<Response/>") && !contains(body, b"<Message"),
        Kind::ApiCreate => contains(body, b"\"id\""),
        Kind::ApiSearch => contains(body, b"\"results\""),
    };
    if right {
        Ok(())
    } else {
        Err(Failure::WrongAnswer)
    }
}

/// One window's counts.
#[derive(Default)]
pub struct Window {
    /// Requests due in this window that were sent.
    pub sent: u64,
    /// Of those, answered as their kind expects.
    pub ok: u64,
    /// The others, by reason.
    pub failures: BTreeMap<Failure, u64>,
    /// Requests sent, by kind ([`Kind::index`]).
    pub by_kind: [u64; Kind::ALL.len()],
    /// Latency of every answered request in nanoseconds, from when it was due if no
    /// connection was free then (a stalled server delays the requests queued behind it
    /// too, and that wait counts: no coordinated omission), else from when it left.
    pub latencies_ns: Vec<u64>,
    /// The first failure's details, for the report.
    pub first_failure: Option<String>,
}

impl Window {
    /// Counts one request that got an answer (or failed to).
    pub fn record(
        &mut self,
        kind: Kind,
        latency_ns: Option<u64>,
        verdict: Result<(), Failure>,
        detail: impl FnOnce() -> String,
    ) {
        self.sent += 1;
        self.by_kind[kind.index()] += 1;
        if let Some(ns) = latency_ns {
            self.latencies_ns.push(ns);
        }
        match verdict {
            Ok(()) => self.ok += 1,
            Err(f) => {
                *self.failures.entry(f).or_default() += 1;
                if self.first_failure.is_none() {
                    self.first_failure = Some(format!("{} {}: {}", kind.name(), f.label(), detail()));
                }
            }
        }
    }

    /// Adds another worker's counts for the same window.
    pub fn absorb(&mut self, other: Window) {
        self.sent += other.sent;
        self.ok += other.ok;
        for (f, n) in other.failures {
            *self.failures.entry(f).or_default() += n;
        }
        for (mine, theirs) in self.by_kind.iter_mut().zip(other.by_kind) {
            *mine += theirs;
        }
        self.latencies_ns.extend(other.latencies_ns);
        if self.first_failure.is_none() {
            self.first_failure = other.first_failure;
        }
    }

    /// Requests that failed, for any reason.
    pub fn errors(&self) -> u64 {
        self.failures.values().sum()
    }

    /// Sorts the latencies, once all workers are absorbed.
    pub fn finish(&mut self) {
        self.latencies_ns.sort_unstable();
    }

    /// Percentile of the sorted latencies, in milliseconds.
    pub fn pct_ms(&self, p: f64) -> f64 {
        pct_ms(&self.latencies_ns, p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_needs_its_own_status_and_answer() {
        let saved = "<Response><Message>Memory saved ✅</Message></Response>".as_bytes();
        assert_eq!(judge(Kind::Text, 200, saved), Ok(()));
        assert_eq!(judge(Kind::Duplicate, 200, saved), Ok(()));
        assert_eq!(
            judge(Kind::Duplicate, 200, b"<Response><Message>1. milk</Message></Response>"),
            Err(Failure::WrongAnswer)
        );
        assert_eq!(judge(Kind::Search, 200, b"<Response><Message>1. milk</Message></Response>"), Ok(()));
        assert_eq!(judge(Kind::Photo, 200, b"<?xml version=\"1.0\"?><Response/>"), Ok(()));
        assert_eq!(judge(Kind::Voice, 200, saved), Err(Failure::WrongAnswer));
        assert_eq!(judge(Kind::ApiCreate, 201, b"{\"id\": 3}"), Ok(()));
        assert_eq!(judge(Kind::ApiCreate, 200, b"{\"id\": 3}"), Err(Failure::Status(200)));
        assert_eq!(judge(Kind::ApiSearch, 200, b"{\"query\":\"milk\",\"results\":[]}"), Ok(()));
        assert_eq!(judge(Kind::Text, 503, b""), Err(Failure::Status(503)));
    }

    #[test]
    fn windows_add_up_and_keep_the_first_failure() {
        let mut a = Window::default();
        a.record(Kind::Text, Some(2_000_000), Ok(()), String::new);
        let mut b = Window::default();
        b.record(Kind::ApiSearch, None, Err(Failure::Timeout), || "no answer".into());
        b.record(Kind::Text, Some(1_000_000), Ok(()), String::new);
        a.absorb(b);
        a.finish();
        assert_eq!((a.sent, a.ok, a.errors()), (3, 2, 1));
        assert_eq!(a.by_kind[Kind::Text.index()], 2);
        assert_eq!(a.pct_ms(50.0), 1.0);
        assert_eq!(a.first_failure.as_deref(), Some("api_search timeout: no answer"));
    }
}
