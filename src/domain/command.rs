//! Turns the text of an inbound message into what the user asked for.
//! Pure and total: every input maps to exactly one [`Command`].

/// What an inbound text asks the service to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Remember this text.
    Save(String),
    /// Find memories matching these words (from `/search …` or a question ending in `?`).
    Search(String),
    /// List memories, optionally within a natural time range ("last week").
    List(Option<String>),
    /// Show the commands.
    Help,
    /// Show the user's time zone.
    ShowTimezone,
    /// Set the user's time zone to this IANA name (not yet validated).
    SetTimezone(String),
    /// Delete the last memory saved.
    Undo,
    /// "remind me …" or `/remind …`: the words after it, when and what.
    Remind(String),
    /// `/reminders`: list the upcoming ones.
    ListReminders,
    /// `/reminders cancel N` or `/cancel N`: the argument as written.
    CancelReminder(String),
    /// "snooze" or "snooze 30m": put off the reminder that just fired.
    Snooze(chrono::TimeDelta),
    /// A `/word` we do not know: answered with help, never saved.
    Unknown(String),
    /// Nothing but white space.
    Empty,
}

/// Parses one message text. A `/command` is matched case-insensitively on its first
/// word; a text that *ends* with `?` is a question (a `?` elsewhere is just text).
pub fn parse_command(text: &str) -> Command {
    let text = text.trim();
    if text.is_empty() {
        return Command::Empty;
    }
    if let Some(request) = strip_remind_me(text) {
        return Command::Remind(request.to_string());
    }
    if let Some(delay) = super::reminder::parse_snooze(text) {
        return Command::Snooze(delay);
    }
    if let Some(rest) = text.strip_prefix('/') {
        let (word, args) = match rest.find(char::is_whitespace) {
            Some(i) => (&rest[..i], rest[i..].trim()),
            None => (rest, ""),
        };
        return match word.to_lowercase().as_str() {
            "help" | "start" => Command::Help,
            "search" | "find" => Command::Search(args.to_string()),
            "list" => Command::List((!args.is_empty()).then(|| args.to_string())),
            "tz" | "timezone" => {
                if args.is_empty() {
                    Command::ShowTimezone
                } else {
                    Command::SetTimezone(args.to_string())
                }
            }
            "undo" => Command::Undo,
            "remind" => Command::Remind(args.to_string()),
            "reminders" => match args.split_once(char::is_whitespace) {
                Some((verb, n)) if verb.eq_ignore_ascii_case("cancel") => Command::CancelReminder(n.trim().to_string()),
                _ if args.eq_ignore_ascii_case("cancel") => Command::CancelReminder(String::new()),
                _ => Command::ListReminders,
            },
            "cancel" => Command::CancelReminder(args.to_string()),
            _ => Command::Unknown(word.to_string()),
        };
    }
    if let Some(question) = text.strip_suffix('?') {
        let question = question.trim_end_matches('?').trim();
        if !question.is_empty() {
            return Command::Search(question.to_string());
        }
    }
    Command::Save(text.to_string())
}

/// The words after "remind me" (any case) at the start of a message.
fn strip_remind_me(text: &str) -> Option<&str> {
    let head = text.get(..9)?;
    let rest = &text[9..];
    (head.eq_ignore_ascii_case("remind me") && (rest.is_empty() || rest.starts_with(char::is_whitespace)))
        .then(|| rest.trim())
}

/// The help text, shared by `/help` and unknown commands.
pub const HELP_TEXT: &str = "I remember what you send me.\n\
• Send any text to save it as a memory.\n\
• Ask a question ending in ? to search.\n\
• /search <words> – find memories\n\
• /list [range] – list memories, e.g. /list last week\n\
• /tz [Area/City] – show or set your time zone\n\
• /undo – delete the last memory saved\n\
• remind me tomorrow at 9 to call mom – a reminder (/remind works too)\n\
• /reminders – upcoming reminders; /cancel 2 cancels one\n\
• /help – this message";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_saved_trimmed() {
        assert_eq!(parse_command("  buy milk \n"), Command::Save("buy milk".into()));
    }

    #[test]
    fn a_question_mark_inside_the_text_does_not_make_a_search() {
        assert_eq!(parse_command("is it ? no, buy milk"), Command::Save("is it ? no, buy milk".into()));
    }

    #[test]
    fn a_text_ending_with_a_question_mark_is_a_search_without_it() {
        assert_eq!(parse_command("where did I park?"), Command::Search("where did I park".into()));
        assert_eq!(parse_command("milk??  "), Command::Search("milk".into()));
    }

    #[test]
    fn a_lone_question_mark_is_saved_not_searched() {
        assert_eq!(parse_command("?"), Command::Save("?".into()));
    }

    #[test]
    fn commands_are_case_insensitive_and_take_their_arguments() {
        assert_eq!(parse_command("/SEARCH  milk eggs"), Command::Search("milk eggs".into()));
        assert_eq!(parse_command("/list last week"), Command::List(Some("last week".into())));
        assert_eq!(parse_command("/list"), Command::List(None));
        assert_eq!(parse_command("/Help"), Command::Help);
        assert_eq!(parse_command("/undo"), Command::Undo);
    }

    #[test]
    fn tz_without_argument_shows_and_with_argument_sets() {
        assert_eq!(parse_command("/tz"), Command::ShowTimezone);
        assert_eq!(parse_command("/tz Europe/Berlin"), Command::SetTimezone("Europe/Berlin".into()));
    }

    #[test]
    fn an_unknown_command_is_not_saved() {
        assert_eq!(parse_command("/remember this"), Command::Unknown("remember".into()));
    }

    #[test]
    fn reminder_requests_and_commands_are_recognised() {
        assert_eq!(
            parse_command("Remind me tomorrow at 9 to call mom"),
            Command::Remind("tomorrow at 9 to call mom".into())
        );
        assert_eq!(parse_command("remind me"), Command::Remind(String::new()));
        assert_eq!(parse_command("/remind Friday 18:30 bins"), Command::Remind("Friday 18:30 bins".into()));
        assert_eq!(parse_command("/reminders"), Command::ListReminders);
        assert_eq!(parse_command("/reminders cancel 2"), Command::CancelReminder("2".into()));
        assert_eq!(parse_command("/cancel 2"), Command::CancelReminder("2".into()));
        assert_eq!(parse_command("snooze 30m"), Command::Snooze(chrono::TimeDelta::minutes(30)));
        assert_eq!(parse_command("snooze"), Command::Snooze(chrono::TimeDelta::minutes(10)));
        // Not a reminder: saved as written.
        assert_eq!(parse_command("reminded me of home"), Command::Save("reminded me of home".into()));
        assert_eq!(parse_command("snooze the alarm at 7"), Command::Save("snooze the alarm at 7".into()));
    }

    #[test]
    fn whitespace_only_is_empty() {
        assert_eq!(parse_command(" \n\t"), Command::Empty);
    }

    #[test]
    fn search_without_words_keeps_an_empty_query_for_the_caller_to_explain() {
        assert_eq!(parse_command("/search"), Command::Search(String::new()));
    }
}
