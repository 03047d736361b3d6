//! The words the service answers with, and how result lists are cut to fit one
//! WhatsApp message (1600 characters) with "…and N more".

use chrono_tz::Tz;

use super::model::Memory;
use super::ports::Recalled;

/// The longest body one WhatsApp message may carry through Twilio.
pub const MAX_MESSAGE_CHARS: usize = 1600;

/// The prototype's wording, which users know.
pub const MEMORY_SAVED: &str = "Memory saved ✅";
/// What an empty search or list answers.
pub const NO_MATCHES: &str = "No matching memories found.";
/// Longest a user's own words are quoted back in a reply (an unknown command, a time
/// range or zone we do not know), so the help that follows always fits the message.
pub const MAX_ECHO_CHARS: usize = 60;
/// Longest a single memory is shown in a list before it is cut with "…".
const MAX_ITEM_CHARS: usize = 300;

/// Numbers the memories, each with its date in the user's zone, and stops before the
/// message would exceed [`MAX_MESSAGE_CHARS`], saying how many were left out.
/// `total` is how many matched in all (it may exceed `memories.len()`).
pub fn format_memory_list(memories: &[Memory], total: u64, zone: Tz) -> String {
    let lines: Vec<String> = memories.iter().map(|memory| memory_line(memory, zone)).collect();
    format_numbered(&lines, total)
}

/// A search's results, as [`format_memory_list`] shows memories; a fact Mem0 inferred
/// that no single memory stands behind is shown as such, without a date of ours.
pub fn format_search_results(found: &[Recalled], zone: Tz) -> String {
    let lines: Vec<String> = found
        .iter()
        .map(|recalled| match recalled {
            Recalled::Memory(memory) => memory_line(memory, zone),
            Recalled::External(fact) => {
                format!("💡 {} (inferred by Mem0)", truncate_chars(&fact.text, MAX_ITEM_CHARS))
            }
        })
        .collect();
    format_numbered(&lines, found.len() as u64)
}

fn memory_line(memory: &Memory, zone: Tz) -> String {
    let when = memory.created_at.with_timezone(&zone).format("%Y-%m-%d %H:%M");
    format!("{} · {}", when, truncate_chars(&memory.text, MAX_ITEM_CHARS))
}

/// Numbers `lines` and stops before the message would exceed [`MAX_MESSAGE_CHARS`],
/// saying how many of `total` were left out.
fn format_numbered(lines: &[String], total: u64) -> String {
    if lines.is_empty() {
        return NO_MATCHES.to_string();
    }
    let total = total.max(lines.len() as u64);
    let mut out = String::new();
    let mut out_chars = 0usize;
    let mut shown = 0u64;
    for (i, item) in lines.iter().enumerate() {
        let line = format!("{}. {item}", i + 1);
        let line_chars = line.chars().count() + usize::from(shown > 0);
        let remaining = total - shown - 1;
        let footer_chars = if remaining > 0 { more_footer(remaining).chars().count() } else { 0 };
        if out_chars + line_chars + footer_chars > MAX_MESSAGE_CHARS {
            break;
        }
        if shown > 0 {
            out.push('\n');
        }
        out.push_str(&line);
        out_chars += line_chars;
        shown += 1;
    }
    if shown < total {
        out.push_str(&more_footer(total - shown));
    }
    out
}

fn more_footer(n: u64) -> String {
    format!("\n…and {n} more")
}

/// Cuts `text` to at most `max` characters (not bytes), marking a cut with "…".
/// The user's words as quoted back in a reply: at most [`MAX_ECHO_CHARS`], cut with "…".
pub fn echo(words: &str) -> String {
    truncate_chars(words, MAX_ECHO_CHARS)
}

pub fn truncate_chars(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::{MemoryId, MemoryKind, UserId};
    use chrono::{TimeZone, Utc};

    fn memory(id: i64, text: &str) -> Memory {
        Memory {
            id: MemoryId(id),
            user_id: UserId(1),
            kind: MemoryKind::Text,
            text: text.to_string(),
            created_at: Utc.with_ymd_and_hms(2026, 11, 26, 23, 30, 0).unwrap(),
        }
    }

    #[test]
    fn results_are_numbered_with_dates_in_the_users_zone() {
        let list = format_memory_list(&[memory(1, "buy milk"), memory(2, "call mum")], 2, chrono_tz::Europe::Berlin);
        assert_eq!(list, "1. 2026-11-27 00:30 · buy milk\n2. 2026-11-27 00:30 · call mum");
    }

    #[test]
    fn an_empty_list_says_nothing_matched() {
        assert_eq!(format_memory_list(&[], 0, chrono_tz::UTC), NO_MATCHES);
    }

    #[test]
    fn a_long_list_is_cut_to_one_message_and_says_how_many_more() {
        let many: Vec<Memory> = (0..100).map(|i| memory(i, &"x".repeat(100))).collect();
        let list = format_memory_list(&many, 250, chrono_tz::UTC);
        assert!(list.chars().count() <= MAX_MESSAGE_CHARS, "{} chars", list.chars().count());
        let shown = list.lines().filter(|l| l.contains(" · ")).count() as u64;
        assert!(shown > 5);
        assert!(list.ends_with(&format!("…and {} more", 250 - shown)), "{list}");
    }

    #[test]
    fn fewer_fetched_than_matched_still_counts_the_rest() {
        let list = format_memory_list(&[memory(1, "a")], 3, chrono_tz::UTC);
        assert!(list.ends_with("\n…and 2 more"));
    }

    #[test]
    fn one_huge_memory_is_cut_not_dropped() {
        let list = format_memory_list(&[memory(1, &"é".repeat(5000))], 1, chrono_tz::UTC);
        assert!(list.chars().count() <= MAX_MESSAGE_CHARS);
        assert!(list.contains('…'));
    }

    #[test]
    fn inferred_facts_are_shown_as_such_among_memories() {
        let fact = crate::domain::ports::ExternalMemory {
            id: "m-1".into(),
            text: "Prefers oat milk".into(),
            source: None,
            created_at: None,
        };
        let found = [Recalled::Memory(memory(1, "buy milk")), Recalled::External(fact)];
        let list = format_search_results(&found, chrono_tz::UTC);
        assert_eq!(list, "1. 2026-11-26 23:30 · buy milk\n2. 💡 Prefers oat milk (inferred by Mem0)");
        assert_eq!(format_search_results(&[], chrono_tz::UTC), NO_MATCHES);
    }

    #[test]
    fn truncation_counts_characters_not_bytes() {
        assert_eq!(truncate_chars("ééééé", 3), "éé…");
        assert_eq!(truncate_chars("abc", 3), "abc");
    }
}
