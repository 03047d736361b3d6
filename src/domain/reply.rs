//! The words the service answers with, and how result lists are cut to fit one
//! WhatsApp message (1600 characters) with "…and N more".

use chrono_tz::Tz;

use super::model::Memory;

/// The longest body one WhatsApp message may carry through Twilio.
pub const MAX_MESSAGE_CHARS: usize = 1600;

/// The prototype's wording, which users know.
pub const MEMORY_SAVED: &str = "Memory saved ✅";
/// What an empty search or list answers.
pub const NO_MATCHES: &str = "No matching memories found.";
/// Longest a single memory is shown in a list before it is cut with "…".
const MAX_ITEM_CHARS: usize = 300;

/// Numbers the memories, each with its date in the user's zone, and stops before the
/// message would exceed [`MAX_MESSAGE_CHARS`], saying how many were left out.
/// `total` is how many matched in all (it may exceed `memories.len()`).
pub fn format_memory_list(memories: &[Memory], total: u64, zone: Tz) -> String {
    if memories.is_empty() {
        return NO_MATCHES.to_string();
    }
    let total = total.max(memories.len() as u64);
    let mut out = String::new();
    let mut out_chars = 0usize;
    let mut shown = 0u64;
    for (i, memory) in memories.iter().enumerate() {
        let when = memory.created_at.with_timezone(&zone).format("%Y-%m-%d %H:%M");
        let line = format!("{}. {} · {}", i + 1, when, truncate_chars(&memory.text, MAX_ITEM_CHARS));
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
    fn truncation_counts_characters_not_bytes() {
        assert_eq!(truncate_chars("ééééé", 3), "éé…");
        assert_eq!(truncate_chars("abc", 3), "abc");
    }
}
