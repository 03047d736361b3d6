//! Reads the server's memory (and, with its SQLite file, its queues) at every window's end:
//! a leak shows as resident memory that keeps growing after the first minute, a server that
//! does not keep up as queues that keep growing.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::open_read_only;

/// The server's memory at one instant, from `/proc/PID/status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Memory {
    /// `VmRSS`: everything resident, the figure the soak's rule uses.
    pub rss_kb: u64,
    /// `RssAnon`: the heap and stacks alone (without the mapped SQLite file and
    /// libraries), printed beside it to tell a leak from a growing page cache.
    pub anon_kb: u64,
}

/// What one sample saw at a window's end.
#[derive(Clone, Debug, Default)]
pub struct Sample {
    /// `None` when the status file could not be read (the server is gone).
    pub memory: Option<Memory>,
    /// Jobs queued or running, when the SQLite file is known and readable.
    pub jobs_waiting: Option<i64>,
    /// Memories waiting for their embedding.
    pub embed_queue: Option<i64>,
    /// Requests due by then but not yet answered: above the connections' count, the
    /// server (or the generator) is not keeping up with the rate.
    pub behind: Option<u64>,
}

/// Parses `VmRSS` and `RssAnon` (in kB) out of a `/proc/PID/status` text.
pub fn parse_status(text: &str) -> Option<Memory> {
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    };
    Some(Memory { rss_kb: field("VmRSS:")?, anon_kb: field("RssAnon:").unwrap_or(0) })
}

/// The server process's memory now.
fn read_memory(pid: u32) -> Option<Memory> {
    std::fs::read_to_string(format!("/proc/{pid}/status")).ok().as_deref().and_then(parse_status)
}

/// Queued-or-running jobs and the embedding backlog, read-only.
fn read_backlog(db: &Path) -> Result<(i64, i64)> {
    let db = open_read_only(db)?;
    let jobs = db
        .query_row("SELECT count(*) FROM jobs WHERE state IN ('queued', 'running')", [], |r| r.get(0))
        .context("counting waiting jobs")?;
    let embed = db.query_row("SELECT count(*) FROM embed_queue", [], |r| r.get(0)).unwrap_or(-1);
    Ok((jobs, embed))
}

/// One sample; the database is read on the blocking pool, so that a slow count never
/// delays the requests the single-threaded generator is sending meanwhile.
pub async fn sample(pid: u32, db: Option<PathBuf>) -> Sample {
    let memory = read_memory(pid);
    let backlog = match db {
        Some(path) => tokio::task::spawn_blocking(move || read_backlog(&path)).await.ok().and_then(Result::ok),
        None => None,
    };
    Sample {
        memory,
        jobs_waiting: backlog.map(|b| b.0),
        embed_queue: backlog.map(|b| b.1).filter(|n| *n >= 0),
        behind: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_are_read_in_kilobytes() {
        let text = "Name:\twhatsapp-memory\nVmHWM:\t  400000 kB\nVmRSS:\t  312345 kB\nRssAnon:\t  200000 kB\nRssFile:\t  112345 kB\n";
        assert_eq!(parse_status(text), Some(Memory { rss_kb: 312_345, anon_kb: 200_000 }));
        assert_eq!(parse_status("Name:\tgone\n"), None);
    }

    #[test]
    fn a_process_that_is_gone_has_no_memory() {
        assert_eq!(read_memory(u32::MAX), None);
        assert!(read_memory(std::process::id()).is_some_and(|m| m.rss_kb > 0));
    }
}
