//! Turns what a person typed as a search into the words worth looking for, so that
//! "where did I park the car" searches for "park" and "car", not for "the".

/// Words too common to say anything about a memory. Dropped unless nothing else is left.
const STOP_WORDS: &[&str] = &[
    "a", "about", "an", "and", "are", "as", "at", "be", "been", "but", "by", "can", "could", "did", "do", "does",
    "for", "from", "had", "has", "have", "he", "her", "his", "how", "i", "if", "in", "is", "it", "its", "me", "my",
    "of", "on", "or", "our", "she", "so", "that", "the", "their", "them", "there", "they", "this", "to", "was", "we",
    "were", "what", "when", "where", "which", "who", "why", "will", "with", "would", "you", "your",
];

/// At most this many words are searched for; more would only slow the index down.
const MAX_TERMS: usize = 16;

/// The distinct, lower-cased words of `query` (letters and digits only, so they are safe
/// to quote into any full-text query language), without stop words when others remain.
pub fn search_terms(query: &str) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    for word in query.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
        let word = word.to_lowercase();
        if !words.contains(&word) {
            words.push(word);
        }
    }
    let meaningful: Vec<String> = words.iter().filter(|w| !STOP_WORDS.contains(&w.as_str())).cloned().collect();
    let mut terms = if meaningful.is_empty() { words } else { meaningful };
    terms.truncate(MAX_TERMS);
    terms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_question_keeps_only_its_meaningful_words() {
        assert_eq!(search_terms("Where did I park the car"), vec!["park", "car"]);
    }

    #[test]
    fn punctuation_and_operators_are_never_passed_through() {
        assert_eq!(search_terms(r#"milk" OR owner:u1 AND (NEAR*"#), vec!["milk", "owner", "u1", "near"]);
    }

    #[test]
    fn only_stop_words_are_kept_rather_than_searching_for_nothing() {
        assert_eq!(search_terms("the who"), vec!["the", "who"]);
    }

    #[test]
    fn non_latin_words_and_accents_survive() {
        assert_eq!(search_terms("Café Müller 東京"), vec!["café", "müller", "東京"]);
    }

    #[test]
    fn repeated_words_count_once_and_the_count_is_capped() {
        assert_eq!(search_terms("milk MILK milk"), vec!["milk"]);
        let many = (0..40).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" ");
        assert_eq!(search_terms(&many).len(), MAX_TERMS);
    }

    #[test]
    fn nothing_to_search_for_gives_no_terms() {
        assert!(search_terms(" ?! ").is_empty());
    }
}
