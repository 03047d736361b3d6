//! The one translation from the SQL text this crate writes (PostgreSQL's dialect) to
//! SQLite's: `$N` placeholders become `?N`, and PostgreSQL's `::type` casts are dropped.
//! It is what lets a statement be written once for both engines.

/// SQLite's text of `sql`, a statement written for PostgreSQL.
///
/// - `$N` becomes `?N`: SQLite numbers its parameters the same way, so a placeholder
///   that appears twice (`$4, $4`) still names one value, and `$10` stays `?10`.
/// - A cast `::name` is dropped. PostgreSQL needs some (a text parameter stored in a
///   `jsonb` column must be cast to it); SQLite has no such operator, and its columns
///   take the value as it comes, which is how SQLite stored them before.
///
/// String literals (`'$.user_id'`, with `''` inside) and quoted identifiers are copied
/// untouched. Called once per statement (see [`super::Sql`]), so it allocates freely.
pub(crate) fn sqlite_text(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            // A literal or a quoted identifier runs to its closing quote; a doubled quote
            // inside closes it and opens it again, which copies it just the same.
            '\'' | '"' => {
                out.push(c);
                for inner in chars.by_ref() {
                    out.push(inner);
                    if inner == c {
                        break;
                    }
                }
            }
            '$' if chars.peek().is_some_and(char::is_ascii_digit) => {
                out.push('?');
                while let Some(digit) = chars.next_if(char::is_ascii_digit) {
                    out.push(digit);
                }
            }
            ':' if chars.peek() == Some(&':') => {
                chars.next();
                while chars.next_if(|c| c.is_ascii_alphanumeric() || *c == '_').is_some() {}
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::sqlite_text;

    #[test]
    fn numbered_placeholders_keep_their_numbers() {
        assert_eq!(sqlite_text("UPDATE t SET a = $2 WHERE id = $1"), "UPDATE t SET a = ?2 WHERE id = ?1");
    }

    #[test]
    fn two_digit_placeholders_are_not_read_as_one_digit() {
        assert_eq!(sqlite_text("VALUES ($1, $10, $11, $1)"), "VALUES (?1, ?10, ?11, ?1)");
    }

    #[test]
    fn a_repeated_placeholder_still_names_one_value() {
        assert_eq!(sqlite_text("VALUES ($4, $4, $4)"), "VALUES (?4, ?4, ?4)");
    }

    #[test]
    fn string_literals_and_quoted_identifiers_are_untouched() {
        assert_eq!(
            sqlite_text("WHERE json_extract(payload, '$.user_id') = $1 AND \"$2\" = 'it''s $3::text'"),
            "WHERE json_extract(payload, '$.user_id') = ?1 AND \"$2\" = 'it''s $3::text'"
        );
    }

    #[test]
    fn postgres_casts_are_dropped() {
        assert_eq!(
            sqlite_text("VALUES ($1, $2::jsonb) RETURNING payload::text AS payload, x::float8"),
            "VALUES (?1, ?2) RETURNING payload AS payload, x"
        );
    }

    #[test]
    fn a_dollar_sign_without_a_number_and_text_without_placeholders_pass_through() {
        assert_eq!(sqlite_text("SELECT '$' || $ FROM t"), "SELECT '$' || $ FROM t");
        assert_eq!(sqlite_text("DELETE FROM t"), "DELETE FROM t");
    }
}
