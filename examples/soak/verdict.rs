//! The soak's three rules (issue 14): no errors, resident memory flat after the first
//! window, and p99 latency steady. Pure functions of the per-window figures, so that the
//! rules are tested apart from any server.

/// Resident memory may grow this much after the first window (5 %).
pub const RSS_GROWTH_LIMIT: f64 = 0.05;
/// A later window's p99 may be this many times the second window's ...
pub const P99_FACTOR: f64 = 2.0;
/// ... or this many milliseconds above it, whichever is more: at a p99 of 1-2 ms, a few
/// milliseconds of scheduling noise on a shared 2-core host double it without anything
/// drifting.
pub const P99_SLACK_MS: f64 = 5.0;

/// What the rules look at in one window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Figures {
    /// Requests that failed in the window.
    pub errors: u64,
    /// 99th percentile latency of the window's answered requests.
    pub p99_ms: f64,
    /// `VmRSS` at the window's end; `None` when the server could not be read.
    pub rss_kb: Option<u64>,
}

/// One rule's outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    /// The rule's name, as the report and `--out` print it.
    pub rule: &'static str,
    /// `None`: the run was too short to apply it.
    pub pass: Option<bool>,
    /// The figures behind the verdict, for a person to read.
    pub detail: String,
}

impl Check {
    /// "PASS", "FAIL" or "not checked".
    pub fn verdict(&self) -> &'static str {
        match self.pass {
            Some(true) => "PASS",
            Some(false) => "FAIL",
            None => "not checked",
        }
    }
}

/// Applies the three rules to the windows, in order.
pub fn judge(windows: &[Figures]) -> Vec<Check> {
    vec![no_errors(windows), memory_flat(windows), p99_steady(windows)]
}

/// Every request answered as its kind expects.
fn no_errors(windows: &[Figures]) -> Check {
    let errors: u64 = windows.iter().map(|w| w.errors).sum();
    Check { rule: "errors", pass: Some(errors == 0), detail: format!("{errors} failed requests (target 0)") }
}

/// `VmRSS` at the end of the run at most 5 % above its value at the end of window 1.
fn memory_flat(windows: &[Figures]) -> Check {
    let rule = "RSS growth";
    if windows.len() < 2 {
        return Check { rule, pass: None, detail: "needs 2 windows or more".into() };
    }
    let (Some(first), Some(last)) = (windows[0].rss_kb, windows[windows.len() - 1].rss_kb) else {
        return Check { rule, pass: Some(false), detail: "the server's memory could not be read (is it gone?)".into() };
    };
    let growth = last as f64 / first.max(1) as f64 - 1.0;
    Check {
        rule,
        pass: Some(last as f64 <= first as f64 * (1.0 + RSS_GROWTH_LIMIT)),
        detail: format!(
            "{:.1} MB at the end vs {:.1} MB after window 1: {:+.1} % (limit +{:.0} %)",
            last as f64 / 1024.0,
            first as f64 / 1024.0,
            growth * 100.0,
            RSS_GROWTH_LIMIT * 100.0
        ),
    }
}

/// Every window from the third on has a p99 within `P99_FACTOR` times (or `P99_SLACK_MS`
/// above) the second's: the first is warm-up (models load, caches fill), the second the
/// reference.
fn p99_steady(windows: &[Figures]) -> Check {
    let rule = "p99 steady";
    if windows.len() < 3 {
        return Check { rule, pass: None, detail: "needs 3 windows or more".into() };
    }
    let reference = windows[1].p99_ms;
    let limit = (reference * P99_FACTOR).max(reference + P99_SLACK_MS);
    let (worst_at, worst) = windows[2..]
        .iter()
        .enumerate()
        .map(|(i, w)| (i + 3, w.p99_ms))
        .fold((3, f64::MIN), |best, next| if next.1 > best.1 { next } else { best });
    Check {
        rule,
        pass: Some(worst <= limit),
        detail: format!(
            "worst later p99 {worst:.2} ms (window {worst_at}) vs window 2's {reference:.2} ms (limit {limit:.2} ms: x{P99_FACTOR} or +{P99_SLACK_MS} ms)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steady(n: usize) -> Vec<Figures> {
        (0..n).map(|_| Figures { errors: 0, p99_ms: 4.0, rss_kb: Some(300_000) }).collect()
    }

    #[test]
    fn a_steady_run_passes_every_rule() {
        assert!(judge(&steady(10)).iter().all(|c| c.pass == Some(true)));
    }

    #[test]
    fn one_error_fails_the_run() {
        let mut w = steady(10);
        w[7].errors = 1;
        assert_eq!(judge(&w)[0].pass, Some(false));
    }

    #[test]
    fn memory_may_grow_five_percent_after_the_first_window_not_more() {
        let mut w = steady(10);
        w[0].rss_kb = Some(100_000);
        w[9].rss_kb = Some(105_000);
        assert_eq!(memory_flat(&w).pass, Some(true));
        w[9].rss_kb = Some(105_100);
        assert_eq!(memory_flat(&w).pass, Some(false));
        // Growth during the first window is warm-up, not a leak.
        let mut w = steady(10);
        w[0].rss_kb = Some(400_000);
        w[9].rss_kb = Some(400_000);
        assert_eq!(memory_flat(&w).pass, Some(true));
        w[9].rss_kb = None;
        assert_eq!(memory_flat(&w).pass, Some(false));
    }

    #[test]
    fn p99_may_double_or_rise_five_ms_but_not_more() {
        let mut w = steady(10);
        w[0].p99_ms = 500.0; // warm-up is not judged
        w[1].p99_ms = 10.0;
        w[5].p99_ms = 20.0;
        assert_eq!(p99_steady(&w).pass, Some(true));
        w[5].p99_ms = 20.5;
        let check = p99_steady(&w);
        assert_eq!(check.pass, Some(false));
        assert!(check.detail.contains("window 6"), "{}", check.detail);
        // A small reference gets the absolute slack.
        let mut w = steady(10);
        w[1].p99_ms = 1.0;
        w[9].p99_ms = 5.9;
        assert_eq!(p99_steady(&w).pass, Some(true));
        w[9].p99_ms = 6.1;
        assert_eq!(p99_steady(&w).pass, Some(false));
    }

    #[test]
    fn short_runs_say_what_they_could_not_check() {
        let checks = judge(&steady(2));
        assert_eq!(checks[1].pass, Some(true));
        assert_eq!(checks[2].pass, None);
        assert_eq!(judge(&steady(1))[1].pass, None);
    }
}
