//! From Tesseract's TSV to the text worth keeping: words recognised with enough confidence,
//! grouped back into their lines, so specks, icons and photo texture do not become "text".

use crate::domain::ports::RecognizedText;

/// Words Tesseract is less sure of than this (0 to 100) are dropped. On the real LambdaTest
/// screenshot every word of its text scored 82 or more, and the icons and logos read as
/// words ("e@kroe", "O88", "==") scored below 65.
pub const MIN_WORD_CONFIDENCE: f32 = 70.0;

/// One recognised word and where it is.
#[derive(Debug, Clone, PartialEq)]
struct Word {
    /// Block, paragraph and line numbers: the words of one line share them.
    line: (u32, u32, u32),
    confidence: f32,
    text: String,
}

/// A word row of the TSV (level 5), or `None` for the other levels and malformed rows.
fn word(row: &str) -> Option<Word> {
    let columns: Vec<&str> = row.split('\t').collect();
    if columns.len() < 12 || columns[0] != "5" {
        return None;
    }
    let number = |i: usize| columns[i].parse::<u32>().ok();
    Some(Word {
        line: (number(2)?, number(3)?, number(4)?),
        confidence: columns[10].parse().ok()?,
        text: columns[11].trim().to_string(),
    })
}

/// Whether a word is worth keeping: confident, and more than punctuation (a lone letter
/// must be very sure of itself: a stray mark often reads as one).
fn worth_keeping(word: &Word) -> bool {
    let alphanumeric = word.text.chars().filter(|c| c.is_alphanumeric()).count();
    let numeric = word.text.chars().any(|c| c.is_numeric());
    word.confidence >= MIN_WORD_CONFIDENCE
        && (alphanumeric >= 2 || (alphanumeric == 1 && (numeric || word.confidence >= 90.0)))
}

/// Whether a line holds a real word (three letters or digits or more): lines of nothing
/// but one- and two-character scraps are what texture and shadows read as.
fn has_a_real_word(line: &[Word]) -> bool {
    line.iter().any(|word| word.text.chars().filter(|c| c.is_alphanumeric()).count() >= 3)
}

/// The confident words of `tsv`, a line of text per line of the image.
pub fn kept_text(tsv: &str) -> RecognizedText {
    let mut lines: Vec<Vec<Word>> = Vec::new();
    for word in tsv.lines().filter_map(word).filter(worth_keeping) {
        match lines.last_mut() {
            Some(line) if line[0].line == word.line => line.push(word),
            _ => lines.push(vec![word]),
        }
    }
    lines.retain(|line| has_a_real_word(line));
    let words: Vec<&Word> = lines.iter().flatten().collect();
    let text: String = lines
        .iter()
        .map(|line| line.iter().map(|word| word.text.as_str()).collect::<Vec<_>>().join(" ") + "\n")
        .collect();
    let confidence =
        if words.is_empty() { 0.0 } else { words.iter().map(|w| w.confidence).sum::<f32>() / words.len() as f32 };
    RecognizedText { text, confidence }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(block: u32, line: u32, confidence: f32, text: &str) -> String {
        format!("5\t1\t{block}\t1\t{line}\t1\t0\t0\t10\t10\t{confidence}\t{text}")
    }

    #[test]
    fn confident_words_are_kept_in_their_lines_and_noise_is_dropped() {
        let tsv = [
            "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext".to_string(),
            "1\t1\t0\t0\t0\t0\t0\t0\t1080\t2400\t-1\t".to_string(),
            row(1, 1, 96.0, "WIFI"),
            row(1, 1, 93.0, "Bluebird-5G"),
            row(1, 2, 91.0, "maple-42"),
            row(1, 2, 40.0, "e@kroe"),
            row(2, 1, 88.0, "=="),
            row(2, 1, 75.0, "a"),
            row(2, 1, 80.0, "Seat"),
            row(2, 1, 80.0, "7"),
            row(3, 1, 95.0, "GA"),
            row(3, 1, 85.0, "4"),
        ]
        .join("\n");
        let found = kept_text(&tsv);
        assert_eq!(found.text, "WIFI Bluebird-5G\nmaple-42\nSeat 7\n", "a line of scraps is dropped");
        assert!((found.confidence - 88.0).abs() < 0.01, "{}", found.confidence);
    }

    #[test]
    fn no_confident_word_is_no_text() {
        let found = kept_text(&row(1, 1, 12.0, "xqzz"));
        assert_eq!(found, RecognizedText { text: String::new(), confidence: 0.0 });
        assert_eq!(kept_text("garbage\nrows").text, "");
    }
}
