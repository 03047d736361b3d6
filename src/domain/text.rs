//! What the service keeps of text from outside: control characters other than newline
//! and tab are dropped at the edge, so both databases store the same thing.
//!
//! PostgreSQL's `text` and `jsonb` cannot hold U+0000 at all: a message carrying one would
//! fail to store (and fail again on every redelivery). Rather than answer differently per
//! engine, every text field of every input goes through [`clean_text`] before anything
//! else sees it.

use std::borrow::Cow;

/// Whether `c` is dropped from input: a Unicode control character (C0, DEL or C1)
/// other than newline and tab. A carriage return becomes a newline instead (see
/// [`clean_text`]).
pub fn is_unwanted_control(c: char) -> bool {
    c.is_control() && c != '\n' && c != '\t'
}

/// `text` without control characters other than newline and tab: `\r\n` and a lone `\r`
/// become `\n`, every other control character (U+0000–U+001F, U+007F–U+009F) is dropped.
/// Borrows when there is nothing to change, which is almost always.
pub fn clean_text(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unwanted_control) {
        return Cow::Borrowed(text);
    }
    let mut cleaned = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() != Some(&'\n') {
                    cleaned.push('\n');
                }
            }
            c if is_unwanted_control(c) => {}
            c => cleaned.push(c),
        }
    }
    Cow::Owned(cleaned)
}

/// [`clean_text`] for an owned string, reusing it when nothing changes.
pub fn clean_string(text: String) -> String {
    match clean_text(&text) {
        Cow::Borrowed(_) => text,
        Cow::Owned(cleaned) => cleaned,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_without_control_characters_is_borrowed_unchanged() {
        let text = "buy milk\n\tand eggs 🥚 Café";
        assert!(matches!(clean_text(text), Cow::Borrowed(t) if t == text));
    }

    #[test]
    fn nul_and_other_c0_characters_are_dropped() {
        assert_eq!(clean_text("buy\u{0}milk\u{1}\u{1b}[31m"), "buymilk[31m");
    }

    #[test]
    fn del_and_c1_characters_are_dropped() {
        assert_eq!(clean_text("a\u{7f}b\u{80}c\u{9f}d\u{a0}e"), "abcd\u{a0}e");
    }

    #[test]
    fn carriage_returns_become_newlines() {
        assert_eq!(clean_text("one\r\ntwo\rthree\n"), "one\ntwo\nthree\n");
    }

    #[test]
    fn an_owned_clean_string_is_returned_as_it_is() {
        assert_eq!(clean_string("plain".to_string()), "plain");
        assert_eq!(clean_string("pla\u{0}in".to_string()), "plain");
    }
}
