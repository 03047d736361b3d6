//! TwiML answers to the webhook: escaped text, at most 1600 characters per `<Message>`.

use crate::domain::reply::MAX_MESSAGE_CHARS;

const PROLOGUE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>"#;

/// A TwiML document that sends `text` back to the sender: nothing for an empty text (or
/// one of nothing but characters XML cannot carry), and several `<Message>` elements when
/// it is longer than one message may be.
pub fn messaging_response(text: &str) -> String {
    let text = xml_text(text);
    if text.is_empty() {
        return format!("{PROLOGUE}<Response/>");
    }
    let mut xml = format!("{PROLOGUE}<Response>");
    for part in split_message(&text, MAX_MESSAGE_CHARS) {
        xml.push_str("<Message>");
        escape_into(&mut xml, part);
        xml.push_str("</Message>");
    }
    xml.push_str("</Response>");
    xml
}

/// Whether XML 1.0 can carry `c` at all (its `Char` production): not the C0 controls
/// other than tab, newline and carriage return, and not U+FFFE or U+FFFF. Anything else
/// would make Twilio reject the whole answer.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
}

/// `text` without the characters XML cannot carry, dropped before the text is split so
/// that every message counts only what it sends.
fn xml_text(text: &str) -> std::borrow::Cow<'_, str> {
    if text.chars().all(is_xml_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(text.chars().filter(|c| is_xml_char(*c)).collect())
}

/// Splits on character boundaries into parts of at most `max` characters, preferring to
/// break after a newline when one is in the second half of a part.
fn split_message(text: &str, max: usize) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = text;
    while rest.chars().count() > max {
        let hard_end = rest.char_indices().nth(max).map(|(i, _)| i).unwrap_or(rest.len());
        let end = match rest[..hard_end].rfind('\n') {
            Some(nl) if nl >= hard_end / 2 => nl + 1,
            _ => hard_end,
        };
        parts.push(&rest[..end]);
        rest = &rest[end..];
    }
    if !rest.is_empty() {
        parts.push(rest);
    }
    parts
}

/// XML-escapes the five special characters (Twilio's list: `& < > " '`), and a carriage
/// return, which an XML reader would otherwise turn into a newline.
fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_is_one_escaped_message() {
        assert_eq!(
            messaging_response(r#"Tom & Jerry <3 "it's""#),
            r#"<?xml version="1.0" encoding="UTF-8"?><Response><Message>Tom &amp; Jerry &lt;3 &quot;it&apos;s&quot;</Message></Response>"#
        );
    }

    #[test]
    fn no_text_means_an_empty_response() {
        assert_eq!(messaging_response(""), r#"<?xml version="1.0" encoding="UTF-8"?><Response/>"#);
    }

    #[test]
    fn long_text_is_split_into_messages_of_at_most_1600_characters() {
        let text = "é".repeat(4000);
        let xml = messaging_response(&text);
        let bodies: Vec<&str> = xml.split("<Message>").skip(1).map(|m| m.split("</Message>").next().unwrap()).collect();
        assert_eq!(bodies.len(), 3);
        assert!(bodies.iter().all(|b| b.chars().count() <= 1600));
        assert_eq!(bodies.concat(), text);
    }

    #[test]
    fn splitting_prefers_a_line_break() {
        let text = format!("{}\n{}", "a".repeat(1000), "b".repeat(1000));
        assert_eq!(split_message(&text, 1600), vec![&text[..1001], &text[1001..]]);
    }

    #[test]
    fn control_characters_that_xml_forbids_are_dropped() {
        assert!(messaging_response("a\u{1}b\nc").contains("<Message>ab\nc</Message>"));
    }

    #[test]
    fn the_noncharacters_u_fffe_and_u_ffff_are_dropped_too() {
        // Found by the twiml fuzz target (fuzz/corpus/twiml): XML 1.0 forbids both.
        assert!(messaging_response("a\u{fffe}b\u{ffff}c").contains("<Message>abc</Message>"));
    }

    #[test]
    fn a_text_of_only_characters_xml_cannot_carry_is_no_message() {
        assert_eq!(messaging_response("\u{fffe}\u{0}"), r#"<?xml version="1.0" encoding="UTF-8"?><Response/>"#);
    }

    #[test]
    fn a_carriage_return_is_kept_as_a_character_reference() {
        // A raw CR would reach Twilio's XML reader as a newline.
        assert!(messaging_response("a\r\nb").contains("<Message>a&#13;\nb</Message>"));
    }
}
