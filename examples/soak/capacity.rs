//! `loadgen soak --capacity`: the most requests per second the server answers for the
//! soak's own mix, every connection sending its next request as soon as the last one is
//! answered. The soak then runs at half of it ("half the measured maximum throughput").

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::traffic::{Plan, Traffic};
use super::{prepare, reconnect, window, SoakArgs};
use crate::Conn;

/// What the connections counted together.
#[derive(Default)]
struct Counts {
    next: AtomicU64,
    answered: AtomicU64,
    failed: AtomicU64,
}

/// Sends the mix closed-loop for `--duration` seconds; `Ok(false)` when a request failed
/// (a rate measured on refusals would be meaningless).
pub async fn measure(a: &SoakArgs) -> Result<bool> {
    if !a.duration.is_finite() || a.duration <= 0.0 {
        bail!("--duration must be above 0");
    }
    let (plan, conns) = prepare(a).await?;
    let counts = Arc::new(Counts::default());
    let timeout = Duration::from_millis(a.target.timeout_ms);
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(a.duration);
    eprintln!("[soak] capacity: the mix closed-loop over {} connections for {:.0} s", conns.len(), a.duration);
    let handles: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(id, conn)| {
            let (plan, counts) = (plan.clone(), counts.clone());
            tokio::spawn(worker(id, conn, plan, counts, deadline, timeout, a.target.rng_seed))
        })
        .collect();
    for handle in handles {
        handle.await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let answered = counts.answered.load(Ordering::Relaxed);
    let failed = counts.failed.load(Ordering::Relaxed);
    let rps = answered as f64 / elapsed;
    println!("capacity: {answered} requests answered in {elapsed:.1} s: {rps:.1} requests/s ({failed} failed)");
    if let Some(path) = &a.target.out {
        let text = format!("capacity_rps={rps:.1}\nanswered={answered}\nfailed={failed}\nelapsed_s={elapsed:.1}\n");
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(failed == 0)
}

/// One connection: the next request of the mix, as soon as the previous is answered.
async fn worker(
    id: usize,
    mut conn: Conn,
    plan: Arc<Plan>,
    counts: Arc<Counts>,
    deadline: Instant,
    timeout: Duration,
    seed: u64,
) {
    let mut traffic = Traffic::new(seed, id);
    let addr = plan.signer.addr;
    while Instant::now() < deadline {
        let i = counts.next.fetch_add(1, Ordering::Relaxed);
        let planned = traffic.next(&plan, i);
        let (close, passed) = match tokio::time::timeout(timeout, conn.exchange(&planned.bytes)).await {
            Ok(Ok(answer)) => {
                let passed = window::judge(planned.kind, answer.status, conn.body(&answer)).is_ok();
                (answer.close, passed)
            }
            _ => (true, false),
        };
        counts.answered.fetch_add(u64::from(passed), Ordering::Relaxed);
        counts.failed.fetch_add(u64::from(!passed), Ordering::Relaxed);
        if passed && planned.kind == super::mix::Kind::Text {
            traffic.answered_text(planned);
        }
        if close {
            reconnect(&mut conn, addr).await;
        }
    }
}
