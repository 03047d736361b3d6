//! SQL that both engines run as it is written here, and the stored forms of values that
//! both write. A leaf: engine modules use it, it uses none of them.

use crate::domain::ports::JobPriority;

/// The queries that pick the next job to claim, in the order to try them: a reply due
/// now, then a job whose worker died (lease expired), then follow-up work due now, then
/// background work due now. Each
/// is one ordered range of an index (`idx_jobs_claim`, `idx_jobs_lease`), so a claim costs
/// the same with ten jobs queued or a hundred thousand. `now` is the dialect's placeholder
/// for the current time; `lock` is appended to each (PostgreSQL's row lock).
pub(super) fn claim_candidates(now: &str, lock: &str) -> [String; 4] {
    let due = |priority: JobPriority| {
        format!(
            "SELECT id FROM jobs WHERE state = 'queued' AND priority = {} AND due_at <= {now} \
             ORDER BY state, priority, due_at, id LIMIT 1{lock}",
            priority.as_i16()
        )
    };
    [
        due(JobPriority::Reply),
        format!(
            "SELECT id FROM jobs WHERE state = 'running' AND lease_until < {now} \
             ORDER BY state, lease_until LIMIT 1{lock}"
        ),
        due(JobPriority::FollowUp),
        due(JobPriority::Background),
    ]
}

/// The stored form of a memory's labels: a JSON array, or NULL for none.
pub(super) fn labels_json(labels: &[String]) -> Option<String> {
    (!labels.is_empty()).then(|| serde_json::Value::from(labels.to_vec()).to_string())
}

/// Replaces an image's perceptual hash and its six bands (`$1` the hash, `$2`..`$7` the
/// bands, `$8` the asset), written once for both engines (SQLite numbers them `?n`).
pub(super) const REHASHED_IMAGE_UPDATE: &str =
    "UPDATE media_assets SET ahash = $1, band0 = $2, band1 = $3, band2 = $4, \
     band3 = $5, band4 = $6, band5 = $7 WHERE id = $8";

/// Takes an image off the re-hash queue (`$1` the asset).
pub(super) const IMAGE_REHASH_DEQUEUE: &str = "DELETE FROM image_rehash_queue WHERE media_id = $1";
