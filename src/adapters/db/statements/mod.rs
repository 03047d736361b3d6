//! Every statement both engines run, each written once, by concern, with PostgreSQL's
//! `$N` placeholders; SQLite's text is translated from it once (see [`sqlite_text`]).
//! Where the dialects truly differ, the two texts sit side by side as a [`Dialectal`]
//! pair with a comment saying why. Each concern's module also maps its rows to domain
//! types, once for both engines (see [`super::row::Row`]).
//!
//! A leaf for the engine modules: they use it, it uses none of them.

pub(crate) mod analytics;
pub(crate) mod indexes;
pub(crate) mod jobs;
pub(crate) mod media;
pub(crate) mod memories;
mod placeholders;
pub(crate) mod reminders;
pub(crate) mod search;
pub(crate) mod users_messages;

use std::sync::OnceLock;

use sea_orm::DbBackend;

pub(crate) use placeholders::sqlite_text;

/// The engine a statement is sent to, for the code that serves both through one pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The dialect of a sea-orm pool (only SQLite and PostgreSQL are ever opened).
    pub(crate) fn of(backend: DbBackend) -> Self {
        match backend {
            DbBackend::Postgres => Dialect::Postgres,
            _ => Dialect::Sqlite,
        }
    }

    /// `postgres`, a statement built for one call (an `IN` list, optional filters) in
    /// PostgreSQL's dialect, in this one: such a statement cannot be a cached [`Sql`].
    pub(crate) fn built(self, postgres: String) -> String {
        match self {
            Dialect::Sqlite => sqlite_text(&postgres),
            Dialect::Postgres => postgres,
        }
    }
}

/// `($1, $2, …)`: `count` placeholders for an `IN` list, numbered from 1.
pub(crate) fn placeholder_list(count: usize) -> String {
    let placeholders: Vec<String> = (1..=count).map(|i| format!("${i}")).collect();
    format!("({})", placeholders.join(", "))
}

/// One statement, written once for both engines. A `static`, so that SQLite's text is
/// translated on first use and then borrowed: the hot path allocates nothing for it,
/// and rusqlite's statement cache finds it by that same text.
pub(crate) struct Sql {
    postgres: &'static str,
    sqlite: OnceLock<String>,
}

impl Sql {
    /// A statement whose text is `postgres` on PostgreSQL and its translation on SQLite.
    pub(crate) const fn new(postgres: &'static str) -> Self {
        Self { postgres, sqlite: OnceLock::new() }
    }

    /// The text to send to PostgreSQL.
    pub(crate) fn postgres(&self) -> &'static str {
        self.postgres
    }

    /// The text to send to SQLite.
    pub(crate) fn sqlite(&self) -> &str {
        self.sqlite.get_or_init(|| sqlite_text(self.postgres))
    }

    /// The text to send to `dialect`.
    pub(crate) fn text(&self, dialect: Dialect) -> &str {
        match dialect {
            Dialect::Sqlite => self.sqlite(),
            Dialect::Postgres => self.postgres(),
        }
    }
}

/// A statement the two engines need written differently; the comment on each one says
/// why. Both texts use `$N` placeholders, so they read alike; SQLite's is translated.
pub(crate) struct Dialectal {
    sqlite: Sql,
    postgres: &'static str,
}

impl Dialectal {
    /// The pair: `sqlite`'s text (translated like any other) and `postgres`'s.
    pub(crate) const fn new(sqlite: &'static str, postgres: &'static str) -> Self {
        Self { sqlite: Sql::new(sqlite), postgres }
    }

    /// The text to send to PostgreSQL.
    pub(crate) fn postgres(&self) -> &'static str {
        self.postgres
    }

    /// The text to send to SQLite.
    pub(crate) fn sqlite(&self) -> &str {
        self.sqlite.sqlite()
    }

    /// The text to send to `dialect`.
    pub(crate) fn text(&self, dialect: Dialect) -> &str {
        match dialect {
            Dialect::Sqlite => self.sqlite(),
            Dialect::Postgres => self.postgres(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_in_list_numbers_its_placeholders_from_one() {
        assert_eq!(placeholder_list(3), "($1, $2, $3)");
        assert_eq!(sqlite_text(&placeholder_list(2)), "(?1, ?2)");
    }

    static EXAMPLE: Sql = Sql::new("UPDATE t SET a = $2::jsonb WHERE id = $1");

    #[test]
    fn sqlite_text_is_translated_once_and_then_borrowed() {
        assert_eq!(EXAMPLE.postgres(), "UPDATE t SET a = $2::jsonb WHERE id = $1");
        assert_eq!(EXAMPLE.sqlite(), "UPDATE t SET a = ?2 WHERE id = ?1");
        assert!(std::ptr::eq(EXAMPLE.sqlite(), EXAMPLE.text(Dialect::Sqlite)));
    }
}
