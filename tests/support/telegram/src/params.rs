//! Method parameters as the Bot API receives them.
//!
//! Telegram accepts the same parameter in a JSON body, a query string, a urlencoded form or a multipart part, and
//! clients mix them: teloxide sends JSON for most methods but multipart for anything that may carry a file, where
//! every value (including `chat_id` and nested objects such as `reply_parameters`) arrives as text. Keeping the
//! parameters exactly as received (a JSON map whose values are strings for non-JSON encodings) lets assertions see the
//! wire, while these accessors read a value the same way whichever encoding carried it.

use serde_json::{Map, Value};

pub(crate) type Params = Map<String, Value>;

/// A string parameter, or a number/bool rendered as text (Telegram is lenient about scalar types).
pub(crate) fn text(params: &Params, name: &str) -> Option<String> {
    match params.get(name)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// An integer parameter given as a JSON number or as decimal text (multipart, query strings).
pub(crate) fn int(params: &Params, name: &str) -> Option<i64> {
    match params.get(name)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub(crate) fn boolean(params: &Params, name: &str) -> Option<bool> {
    match params.get(name)? {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.as_str() {
            "true" | "True" | "1" => Some(true),
            "false" | "False" | "0" => Some(false),
            _ => None,
        },
        Value::Number(n) => Some(n.as_i64() != Some(0)),
        _ => None,
    }
}

/// An object/array parameter, which non-JSON encodings carry as JSON text.
pub(crate) fn json(params: &Params, name: &str) -> Option<Value> {
    match params.get(name)? {
        Value::Null => None,
        Value::String(s) => serde_json::from_str(s).ok(),
        other => Some(other.clone()),
    }
}

/// Decodes `%XX` escapes (and `+` in forms). teloxide builds URLs with `Url::path_segments_mut().push`, which
/// escapes `/` inside a file path as `%2F`, so the download route must decode before looking the path up.
pub(crate) fn percent_decode(s: &str, plus_as_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' if plus_as_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Adds `a=b&c=d` pairs as string values; later duplicates win, as in Telegram.
pub(crate) fn parse_form(form: &str, into: &mut Params) {
    for pair in form.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        into.insert(percent_decode(k, true), Value::String(percent_decode(v, true)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_handles_escaped_slashes_and_truncated_escapes() {
        assert_eq!(percent_decode("documents%2Ffile_1.pdf", false), "documents/file_1.pdf");
        assert_eq!(percent_decode("a+b%20c", true), "a b c");
        assert_eq!(percent_decode("a+b", false), "a+b");
        assert_eq!(percent_decode("100%", false), "100%");
        assert_eq!(percent_decode("%4", false), "%4");
        assert_eq!(percent_decode("%zz", false), "%zz");
    }

    #[test]
    fn scalar_accessors_read_json_and_text_alike() {
        let mut p = Params::new();
        parse_form(
            "chat_id=-1001&reply_parameters=%7B%22message_id%22%3A7%7D&flag=true",
            &mut p,
        );
        p.insert("n".into(), Value::from(5));
        assert_eq!(int(&p, "chat_id"), Some(-1001));
        assert_eq!(int(&p, "n"), Some(5));
        assert_eq!(json(&p, "reply_parameters"), Some(serde_json::json!({"message_id": 7})));
        assert_eq!(boolean(&p, "flag"), Some(true));
        assert_eq!(text(&p, "n").as_deref(), Some("5"));
    }
}
