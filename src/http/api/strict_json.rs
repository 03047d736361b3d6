//! Request fields read exactly as the schema types them. poem-openapi reads a JSON number
//! or boolean where a `string` is declared as its text (`{"text": 123}` would be saved as
//! "123", `labels: [false]` as `["false"]`) and `null` as "left out"; these readers
//! refuse both, so a client's type error is a 400 naming the field, never a coerced value.

use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult};
use serde_json::Value;

/// The reason given for a JSON value of the wrong type at `place` (a field, an item).
fn wrong_type(place: &str, value: &Value, expected: &str) -> String {
    let found = match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    format!("{place} must be {expected}, not {found}")
}

/// The optional string field `field`: absent is `None`; a string is taken; anything
/// else, `null` included (the schema does not declare the field nullable), is refused.
///
/// # Errors
/// When the value is present and not a string.
pub fn optional_string(field: &str, value: Option<Value>) -> ParseResult<Option<String>> {
    match value {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(other) => Err(ParseError::custom(wrong_type(&format!("`{field}`"), &other, "a string"))),
    }
}

/// The optional enumeration field `field`: absent is `None`; one of its strings is taken;
/// `null` or anything else is refused (the schema does not declare the field nullable).
///
/// # Errors
/// When the value is present and not one of the enumeration's strings.
pub fn optional_enum<T: ParseFromJSON>(field: &str, value: Option<Value>) -> ParseResult<Option<T>> {
    match value {
        None => Ok(None),
        Some(Value::Null) => Err(ParseError::custom(wrong_type(&format!("`{field}`"), &Value::Null, "a string"))),
        Some(other) => T::parse_from_json(Some(other.clone())).map(Some).map_err(|_| {
            ParseError::custom(format!("`{field}` must be one of the values the schema lists, not {other}"))
        }),
    }
}

/// The optional array of strings `field`: absent is `None`; every item must be a string.
///
/// # Errors
/// When the value is present and not an array of strings.
pub fn optional_strings(field: &str, value: Option<Value>) -> ParseResult<Option<Vec<String>>> {
    match value {
        None => Ok(None),
        Some(Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .map(|(index, item)| match item {
                Value::String(text) => Ok(text),
                other => Err(ParseError::custom(wrong_type(&format!("`{field}` item {index}"), &other, "a string"))),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(other) => Err(ParseError::custom(wrong_type(&format!("`{field}`"), &other, "an array of strings"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strings_and_absent_fields_are_taken() {
        assert_eq!(optional_string("text", None).unwrap(), None);
        assert_eq!(optional_string("text", Some(json!("milk"))).unwrap(), Some("milk".into()));
        assert_eq!(optional_strings("labels", Some(json!(["a", "b"]))).unwrap(), Some(vec!["a".into(), "b".into()]));
        assert_eq!(optional_strings("labels", Some(json!([]))).unwrap(), Some(vec![]));
    }

    #[test]
    fn numbers_booleans_and_null_are_not_strings() {
        for value in [json!(123), json!(true), json!(null), json!(["x"]), json!({})] {
            let message = optional_string("text", Some(value.clone())).unwrap_err().into_message();
            assert!(message.contains("`text` must be a string, not "), "{value}: {message}");
        }
    }

    #[test]
    fn label_items_must_be_strings() {
        // poem-openapi leads the message with its own type name, which the problem detail drops.
        let message = |value| optional_strings("labels", Some(value)).unwrap_err().into_message();
        assert!(message(json!([1, 2])).ends_with("`labels` item 0 must be a string, not a number"));
        assert!(message(json!(["a", false])).ends_with("`labels` item 1 must be a string, not a boolean"));
        assert!(message(json!(null)).ends_with("`labels` must be an array of strings, not null"));
        assert!(message(json!("a")).ends_with("`labels` must be an array of strings, not a string"));
    }

    #[derive(Debug, PartialEq, poem_openapi::Enum)]
    #[oai(rename_all = "lowercase")]
    enum Kind {
        Text,
    }

    #[test]
    fn an_enumeration_takes_its_strings_and_refuses_null() {
        assert_eq!(optional_enum::<Kind>("memory_type", None).unwrap(), None);
        assert_eq!(optional_enum::<Kind>("memory_type", Some(json!("text"))).unwrap(), Some(Kind::Text));
        let message = |value| optional_enum::<Kind>("memory_type", Some(value)).unwrap_err().into_message();
        assert!(message(json!(null)).ends_with("`memory_type` must be a string, not null"));
        assert!(message(json!("hologram"))
            .ends_with("`memory_type` must be one of the values the schema lists, not \"hologram\""));
        assert!(message(json!(3)).ends_with("`memory_type` must be one of the values the schema lists, not 3"));
    }
}
