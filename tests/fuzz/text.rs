//! Text from a message: command parsing, time ranges, and the TwiML answer any text
//! becomes (well-formed XML, the text intact, each message within WhatsApp's limit).

use chrono::{DateTime, Utc};
use chrono_tz::{Tz, TZ_VARIANTS};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use serde::{Deserialize, Serialize};
use whatsapp_memory::adapters::twilio::twiml::messaging_response;
use whatsapp_memory::domain::command::{parse_command, Command};
use whatsapp_memory::domain::reply::{MAX_ECHO_CHARS, MAX_MESSAGE_CHARS};
use whatsapp_memory::domain::time_range::{parse_time_range, TimeRangeError};

use crate::harness::{fuzz, Limits, MIB};
use crate::json_corpus_input;

/// Characters parsers trip on: controls, white space of other scripts, characters XML
/// forbids (U+FFFE, U+FFFF) and the edges of the planes.
const SPECIAL: &[&str] = &[
    "\u{0}",
    "\u{1}",
    "\u{7}",
    "\t",
    "\n",
    "\r",
    "\r\n",
    "\u{b}",
    "\u{c}",
    "\u{1b}",
    "\u{7f}",
    "\u{85}",
    "\u{9f}",
    "\u{a0}",
    "\u{200b}",
    "\u{2028}",
    "\u{3000}",
    "\u{d7ff}",
    "\u{e000}",
    "\u{fdd0}",
    "\u{fffd}",
    "\u{fffe}",
    "\u{ffff}",
    "\u{1f600}",
    "\u{10ffff}",
    "&",
    "<",
    ">",
    "\"",
    "'",
    "]]>",
    "&amp;",
    "<![CDATA[",
    "?",
    "/",
    " ",
    "é",
    "İ",
    "ß",
    "ﬁ",
];

/// Words the command and time-range parsers know, so generated text reaches past the
/// first comparison.
const WORDS: &[&str] = &[
    "/help",
    "/start",
    "/search",
    "/find",
    "/list",
    "/tz",
    "/timezone",
    "/undo",
    "/SEARCH",
    "/LiSt",
    "/",
    "//",
    "today",
    "yesterday",
    "this",
    "last",
    "past",
    "on",
    "since",
    "from",
    "to",
    "-",
    "until",
    "through",
    "week",
    "month",
    "year",
    "h",
    "hour",
    "hours",
    "day",
    "days",
    "weeks",
    "months",
    "monday",
    "mon",
    "tues",
    "thurs",
    "friday",
    "sun",
    "january",
    "jan",
    "may",
    "sept",
    "december",
    "0",
    "1",
    "3",
    "12",
    "24h",
    "0h",
    "1000",
    "1001",
    "9999",
    "00001",
    "2026",
    "0000",
    "2026-11-03",
    "2026-11-07",
    "2024-02-29",
    "2026-02-29",
    "0000-01-01",
    "9999-12-31",
    "2026-13-01",
    "Europe/Berlin",
    "Pacific/Apia",
    "Etc/GMT+12",
    "milk",
    "where?",
    "??",
    ".",
];

/// Text as people type it and as attackers craft it.
pub fn message_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => select(WORDS).prop_map(str::to_string),
        3 => select(SPECIAL).prop_map(str::to_string),
        2 => any::<char>().prop_map(String::from),
        2 => Just(" ".to_string()),
        1 => "[a-zA-Z0-9 ]{1,12}",
    ];
    prop_oneof![
        2 => any::<String>(),
        3 => vec(piece, 0..12).prop_map(|pieces| pieces.concat()),
    ]
}

#[test]
fn command_parsing_is_total_and_keeps_what_the_user_wrote() {
    fuzz("command", 2000, Limits::one_cpu_second(MIB), message_text(), |text: &String| {
        let trimmed = text.trim();
        match parse_command(text) {
            Command::Empty if trimmed.is_empty() => Ok(()),
            Command::Empty => Err(format!("{trimmed:?} is not empty")),
            Command::Save(saved) if saved == trimmed => Ok(()),
            Command::Save(saved) => Err(format!("saved {saved:?}, not the trimmed text {trimmed:?}")),
            Command::Search(query) | Command::SetTimezone(query) | Command::List(Some(query))
                if !trimmed.contains(query.as_str()) =>
            {
                Err(format!("argument {query:?} is not part of the text"))
            }
            Command::List(Some(range)) if range.is_empty() || range.trim() != range => {
                Err(format!("list range {range:?} is empty or untrimmed"))
            }
            Command::Unknown(word) if !trimmed.starts_with('/') || word.chars().any(char::is_whitespace) => {
                Err(format!("unknown command {word:?} is not a /word"))
            }
            _ => Ok(()),
        }
    });
}

/// A time phrase read at an instant in a zone.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhraseAt {
    phrase: String,
    /// Seconds since the Unix epoch.
    now: i64,
    zone: String,
}

json_corpus_input!(PhraseAt);

fn phrase_at() -> impl Strategy<Value = PhraseAt> {
    let min = DateTime::<Utc>::MIN_UTC.timestamp();
    let max = DateTime::<Utc>::MAX_UTC.timestamp();
    let now = prop_oneof![
        4 => 946_684_800i64..4_102_444_800, // 2000 to 2100
        1 => min..min + 40 * 86_400,
        1 => max - 40 * 86_400..=max,
        1 => min..=max,
    ];
    let zone = select(TZ_VARIANTS.to_vec()).prop_map(|tz| tz.name().to_string());
    (message_text(), now, zone).prop_map(|(phrase, now, zone)| PhraseAt { phrase, now, zone })
}

#[test]
fn time_ranges_never_run_backwards_and_errors_quote_briefly() {
    fuzz("time_range", 3000, Limits::one_cpu_second(MIB), phrase_at(), |input: &PhraseAt| {
        let now = DateTime::<Utc>::from_timestamp(input.now, 0).ok_or("the instant is out of chrono's range")?;
        let zone: Tz = input.zone.parse().map_err(|_| format!("unknown zone {}", input.zone))?;
        match parse_time_range(&input.phrase, now, zone) {
            Ok(range) if range.start > range.end => Err(format!("{range:?} runs backwards")),
            Ok(range) if input.phrase.trim().eq_ignore_ascii_case("today") && !range.contains(now) => {
                Err(format!("today {range:?} does not contain now"))
            }
            Ok(_) => Ok(()),
            Err(error @ TimeRangeError::Unknown { .. }) => {
                let TimeRangeError::Unknown { phrase } = &error;
                if phrase.chars().count() > MAX_ECHO_CHARS {
                    return Err(format!("the error quotes {} characters", phrase.chars().count()));
                }
                if error.to_string().is_empty() {
                    return Err("an empty error".into());
                }
                Ok(())
            }
        }
    });
}

/// Whether XML 1.0 allows `c` in a document at all.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
}

/// Text long enough to be split into several messages, with line breaks near the edges.
fn reply_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => message_text(),
        1 => (message_text(), 1..400usize).prop_map(|(text, times)| text.repeat(times)),
        1 => (vec(select(SPECIAL), 1..8), 1600..1700usize)
            .prop_map(|(tail, at)| format!("{}{}", "a".repeat(at), tail.concat())),
    ]
}

#[test]
fn any_text_becomes_well_formed_twiml_that_carries_it() {
    fuzz("twiml", 1500, Limits::one_cpu_second(4 * MIB), reply_text(), |text: &String| {
        let xml = messaging_response(text);
        let document = roxmltree::Document::parse(&xml).map_err(|error| format!("not well-formed XML: {error}"))?;
        let response = document.root_element();
        if response.tag_name().name() != "Response" {
            return Err(format!("the root is <{}>", response.tag_name().name()));
        }
        let mut carried = String::new();
        for node in response.children() {
            if !node.is_element() || node.tag_name().name() != "Message" {
                return Err(format!("<Response> holds {node:?}"));
            }
            let body: String = node.children().filter_map(|child| child.text()).collect();
            let chars = body.chars().count();
            if chars == 0 || chars > MAX_MESSAGE_CHARS {
                return Err(format!("a <Message> of {chars} characters"));
            }
            carried.push_str(&body);
        }
        let expected: String = text.chars().filter(|c| is_xml_char(*c)).collect();
        if carried != expected {
            return Err(format!("the messages carry {carried:?}, not {expected:?}"));
        }
        Ok(())
    });
}
