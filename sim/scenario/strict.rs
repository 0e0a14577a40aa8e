//! Strictness the JSON parser does not give on its own: refusing input that
//! serde would accept or explain badly.
//!
//! - **Arrays for objects.** serde's derived structs also accept a JSON array,
//!   read by position (`["api", 2]` for `{"name": "api", "instances": 2}`),
//!   and internally tagged enums accept `["fixed", 1000]`. The format never
//!   means that, so after a successful parse the input is compared with the
//!   parsed value serialized back: wherever the input has an array and the
//!   parsed value an object, the input is refused with that path
//!   (`refuse_arrays_for_objects`). This needs no schema, so it covers every
//!   field, present and future, of any type that is `Serialize`.
//! - **Encodings.** A UTF-8 byte order mark, UTF-16 or UTF-32 text and NUL
//!   bytes make the parser say "expected value", which reads like a NaN or a
//!   trailing comma; `check_encoding` names the real problem first.
//! - **Type names.** serde's messages name the Rust type expected (`expected
//!   struct RawService`); `plain_expected` says "an object" instead.

use super::check::{item, join};
use serde::Serialize;
use serde_json::Value;

/// What a file that is not UTF-8 JSON text is, if it is recognisably
/// something else: a BOM, UTF-16/32, or NUL bytes. `None` when the bytes
/// may be JSON.
pub fn check_encoding(bytes: &[u8]) -> Option<String> {
    if bytes.starts_with(&[0xEF, 0xBB, 0xBF]) {
        return Some(
            "starts with a UTF-8 byte order mark (BOM); JSON must be UTF-8 without one: save it without the BOM".to_string(),
        );
    }
    let utf16_or_32 = bytes.starts_with(&[0xFF, 0xFE])
        || bytes.starts_with(&[0xFE, 0xFF])
        || bytes.starts_with(&[0, 0, 0xFE, 0xFF])
        || unmarked_utf16_or_32(bytes);
    if utf16_or_32 {
        return Some("is UTF-16 or UTF-32 text; JSON must be UTF-8: save it as UTF-8".to_string());
    }
    let position = bytes.iter().position(|&byte| byte == 0)?;
    let line = 1 + bytes[..position]
        .iter()
        .filter(|&&byte| byte == b'\n')
        .count();
    let line_start = bytes[..position]
        .iter()
        .rposition(|&byte| byte == b'\n')
        .map_or(0, |newline| newline + 1);
    let column = 1 + position - line_start;
    Some(format!(
        "contains a NUL byte at line {line} column {column}; JSON text cannot contain NUL bytes"
    ))
}

/// Without a BOM, ASCII in UTF-16 or UTF-32 has NULs beside every
/// character, in a pattern the first four bytes show (JSON starts with ASCII).
fn unmarked_utf16_or_32(bytes: &[u8]) -> bool {
    let Some(first) = bytes.first_chunk::<4>() else {
        return false;
    };
    let zero = first.map(|byte| byte == 0);
    matches!(
        zero,
        [false, true, false, true]
            | [true, false, true, false]
            | [false, true, true, true]
            | [true, true, true, false]
    )
}

/// Refuses an array in `input` where `parsed` (what serde made of it) has
/// an object. The error is `(path, message)`, path in `a.b[2].c` form,
/// empty at the top level.
pub fn refuse_arrays_for_objects<T: Serialize>(
    input: &Value,
    parsed: &T,
) -> Result<(), (String, String)> {
    // A value that cannot be serialized back has nothing to compare.
    let Ok(output) = serde_json::to_value(parsed) else {
        return Ok(());
    };
    compare("", input, &output)
}

fn compare(path: &str, input: &Value, output: &Value) -> Result<(), (String, String)> {
    match (input, output) {
        (Value::Array(_), Value::Object(_)) => {
            Err((path.to_string(), ARRAY_FOR_OBJECT.to_string()))
        }
        (Value::Array(inputs), Value::Array(outputs)) => {
            for (index, (input, output)) in inputs.iter().zip(outputs).enumerate() {
                compare(&item(path, index), input, output)?;
            }
            Ok(())
        }
        (Value::Object(inputs), Value::Object(outputs)) => {
            for (key, input) in inputs {
                if let Some(output) = outputs.get(key) {
                    compare(&join(path, key), input, output)?;
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The message for an array where an object belongs.
pub const ARRAY_FOR_OBJECT: &str = "must be an object, not an array";

/// serde's message without Rust type names: `expected struct RawService`
/// becomes `expected an object`; an array read as a struct (`invalid type:
/// sequence, expected struct X`, `invalid length 2, expected struct X with
/// 3 elements`) becomes `must be an object, not an array`. A trailing ` at
/// line L column C` is kept.
pub fn plain_expected(message: &str) -> String {
    let (text, position) = match message.rfind(" at line ") {
        Some(at) => message.split_at(at),
        None => (message, ""),
    };
    let names_a_type = TYPE_WORDS.iter().any(|(words, _)| text.contains(words));
    if names_a_type
        && (text.starts_with("invalid type: sequence,") || text.starts_with("invalid length "))
    {
        return format!("{ARRAY_FOR_OBJECT}{position}");
    }
    let mut plain = String::with_capacity(text.len());
    let mut rest = text;
    'scan: while !rest.is_empty() {
        for (words, replacement) in TYPE_WORDS {
            if let Some(after) = rest.strip_prefix(words) {
                let name_length = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                    .unwrap_or(after.len());
                let starts_upper = after.starts_with(|c: char| c.is_ascii_uppercase());
                if name_length > 0 && starts_upper {
                    plain.push_str(replacement);
                    rest = skip_element_count(&after[name_length..]);
                    continue 'scan;
                }
            }
        }
        let mut chars = rest.chars();
        plain.push(chars.next().expect("not empty"));
        rest = chars.as_str();
    }
    plain.push_str(position);
    plain
}

/// serde's phrases that precede a Rust type name, longest first, and what
/// to say instead.
const TYPE_WORDS: [(&str, &str); 7] = [
    ("internally tagged enum ", "an object with a \"kind\""),
    ("adjacently tagged enum ", "an object"),
    ("struct variant ", "an object"),
    ("tuple variant ", "an array"),
    ("tuple struct ", "an array"),
    ("struct ", "an object"),
    ("enum ", "one of its names"),
];

/// Drops serde's ` with N elements` after a type name.
fn skip_element_count(text: &str) -> &str {
    let Some(after) = text.strip_prefix(" with ") else {
        return text;
    };
    let digits = after
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(after.len());
    match after[digits..]
        .strip_prefix(" elements")
        .or(after[digits..].strip_prefix(" element"))
    {
        Some(rest) if digits > 0 => rest,
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_become_plain_words() {
        assert_eq!(
            plain_expected(
                "invalid type: string \"x\", expected struct RawNetwork at line 3 column 4"
            ),
            "invalid type: string \"x\", expected an object at line 3 column 4"
        );
        assert_eq!(
            plain_expected("invalid type: integer `3`, expected internally tagged enum PolicySpec"),
            "invalid type: integer `3`, expected an object with a \"kind\""
        );
        assert_eq!(
            plain_expected(
                "invalid length 1, expected struct RawService with 12 elements at line 1 column 9"
            ),
            "must be an object, not an array at line 1 column 9"
        );
        assert_eq!(
            plain_expected("invalid type: sequence, expected struct RawLimits"),
            "must be an object, not an array"
        );
        // Words that merely look like the phrases stay.
        assert_eq!(plain_expected("expected u32"), "expected u32");
        assert_eq!(
            plain_expected("a struct in lowercase"),
            "a struct in lowercase"
        );
    }

    #[test]
    fn encodings_are_named() {
        assert!(check_encoding(b"\xEF\xBB\xBF{}")
            .unwrap()
            .contains("byte order mark"));
        assert!(check_encoding(b"\xFF\xFE{\0}\0")
            .unwrap()
            .contains("UTF-16"));
        assert!(check_encoding(b"{\0\"\0").unwrap().contains("UTF-16"));
        assert_eq!(
            check_encoding(b"{\n  \"a\":\0 1}").unwrap(),
            "contains a NUL byte at line 2 column 7; JSON text cannot contain NUL bytes"
        );
        assert_eq!(check_encoding(b"{}"), None);
        assert_eq!(check_encoding(b""), None);
        assert_eq!(check_encoding(b"x"), None);
    }

    #[derive(Serialize)]
    struct Inner {
        a: u32,
    }

    #[derive(Serialize)]
    struct Outer {
        list: Vec<Inner>,
        one: Inner,
    }

    #[test]
    fn arrays_where_objects_were_parsed_are_refused_with_their_path() {
        let parsed = Outer {
            list: vec![Inner { a: 1 }, Inner { a: 2 }],
            one: Inner { a: 3 },
        };
        let fine = serde_json::json!({"list": [{"a": 1}, {"a": 2}], "one": {"a": 3}});
        assert_eq!(refuse_arrays_for_objects(&fine, &parsed), Ok(()));
        let nested = serde_json::json!({"list": [{"a": 1}, [2]], "one": {"a": 3}});
        assert_eq!(
            refuse_arrays_for_objects(&nested, &parsed),
            Err(("list[1]".to_string(), ARRAY_FOR_OBJECT.to_string()))
        );
        let top = serde_json::json!([[[1], [2]], [3]]);
        assert_eq!(
            refuse_arrays_for_objects(&top, &parsed),
            Err((String::new(), ARRAY_FOR_OBJECT.to_string()))
        );
    }
}
