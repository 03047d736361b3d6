//! The operators' analytics: counts over the whole database, as (key, count) rows.

use super::{Dialectal, Sql};

/// How many users, interactions, memories and media assets there are, keyed by table.
pub(crate) static TABLE_TOTALS: Sql = Sql::new(
    "SELECT 'users', count(*) FROM users UNION ALL SELECT 'interactions', count(*) FROM interactions \
     UNION ALL SELECT 'memories', count(*) FROM memories UNION ALL SELECT 'media_assets', count(*) FROM media_assets",
);

/// How many memories there are of each kind.
pub(crate) static MEMORIES_BY_KIND: Sql = Sql::new("SELECT kind, count(*) FROM memories GROUP BY kind ORDER BY kind");

/// How many interactions there were on each UTC day (`YYYY-MM-DD`) since `$1`. The day
/// is the first ten characters of SQLite's RFC 3339 text (always UTC, see
/// `sqlite_timestamp`); PostgreSQL formats its `timestamptz` in UTC.
pub(crate) static INTERACTIONS_PER_DAY: Dialectal = Dialectal::new(
    "SELECT substr(occurred_at, 1, 10), count(*) FROM interactions WHERE occurred_at >= $1 GROUP BY 1",
    "SELECT to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'), count(*) FROM interactions \
     WHERE occurred_at >= $1 GROUP BY 1",
);
