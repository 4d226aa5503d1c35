//! A strict JSON reader for the bodies the policy inspects. It keeps every object's members
//! in order, refuses duplicate keys at any depth and trailing data after the value.
//!
//! Why not `serde_json::Value` or derived structs: dockerd decodes with Go's `encoding/json`,
//! where duplicate keys and duplicate objects *merge* and keys match case-insensitively;
//! `Value` keeps only the last duplicate and derive matches case-sensitively, so either would
//! decide on something other than what dockerd executes. Here serde_json does the tokenizing
//! (escapes in keys and strings are decoded, so `"Privil\u0065ged"` arrives as `Privileged`)
//! and a visitor keeps the members as a list, so nothing is lost before the policy looks.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// The deepest nesting of arrays and objects a body may have. Docker's own bodies nest about
/// six levels (`NetworkingConfig.EndpointsConfig.NAME.IPAMConfig...`). The reader, the checks
/// and the serialiser recurse once per level on a session thread's small stack
/// (`conn::SESSION_THREAD_STACK`): without a cap, a body of a few hundred `[` overflowed it
/// in debug builds (serde_json's own limit, 128, leaves too little room there).
pub const MAX_DEPTH: usize = 32;

/// Refuses a body nested deeper than `MAX_DEPTH`, before any recursive code sees it: a byte
/// scan that counts `[` and `{` outside strings.
fn check_depth(body: &[u8]) -> Result<(), String> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &byte in body {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(format!("JSON nested deeper than {MAX_DEPTH} levels"));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// A JSON value with object members in document order.
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    /// Parses a whole body: exactly one JSON value, optionally surrounded by whitespace,
    /// nested at most `MAX_DEPTH` arrays and objects deep.
    pub fn parse(body: &[u8]) -> Result<Json, String> {
        check_depth(body)?;
        let mut deserializer = serde_json::Deserializer::from_slice(body);
        let value = Json::deserialize(&mut deserializer).map_err(|e| e.to_string())?;
        deserializer
            .end()
            .map_err(|_| "trailing data after the JSON value".to_string())?;
        Ok(value)
    }

    pub fn as_object(&self) -> Option<&[(String, Json)]> {
        match self {
            Json::Object(members) => Some(members),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    /// The member `key` (spelled exactly) of an object.
    #[cfg(test)]
    pub fn get(&self, key: &str) -> Option<&Json> {
        self.as_object()?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// What Go would decode as "not set": null, false, 0, "", [] or {}.
    pub fn is_empty_value(&self) -> bool {
        match self {
            Json::Null => true,
            Json::Bool(b) => !b,
            Json::Number(n) => n.as_f64() == Some(0.0),
            Json::String(s) => s.is_empty(),
            Json::Array(items) => items.is_empty(),
            Json::Object(members) => members.is_empty(),
        }
    }

    /// Serialises the value deterministically: members in order, no whitespace, strings
    /// escaped as serde_json escapes them. Numbers are written as serde_json holds them, which
    /// is the original text for integers; callers that must keep a body's meaning exactly
    /// compare the number literals (see `number_literals`).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_to(&mut out);
        out
    }

    fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            Json::Null => out.extend_from_slice(b"null"),
            Json::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Json::Number(n) => out.extend_from_slice(n.to_string().as_bytes()),
            Json::String(s) => write_string(s, out),
            Json::Array(items) => {
                out.push(b'[');
                for (n, item) in items.iter().enumerate() {
                    if n > 0 {
                        out.push(b',');
                    }
                    item.write_to(out);
                }
                out.push(b']');
            }
            Json::Object(members) => {
                out.push(b'{');
                for (n, (key, value)) in members.iter().enumerate() {
                    if n > 0 {
                        out.push(b',');
                    }
                    write_string(key, out);
                    out.push(b':');
                    value.write_to(out);
                }
                out.push(b'}');
            }
        }
    }

    /// A short name of the JSON type, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Number(_) => "a number",
            Json::String(_) => "a string",
            Json::Array(_) => "an array",
            Json::Object(_) => "an object",
        }
    }
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    // Serialising a str into a Vec cannot fail.
    serde_json::to_writer(&mut *out, s).unwrap_or_default();
}

/// The number literals of a JSON text in document order, outside strings. Two documents whose
/// members are in the same order have the same literals exactly when every number kept its
/// spelling (`-0` and `1.0` are not what serde_json writes back, and Go reads them differently
/// from `-0.0` and `1` into integer fields).
pub fn number_literals(text: &[u8]) -> Vec<&[u8]> {
    let mut literals = Vec::new();
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'"' => {
                i += 1;
                while i < text.len() && text[i] != b'"' {
                    i += if text[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < text.len()
                    && matches!(text[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    i += 1;
                }
                literals.push(&text[start..i]);
            }
            _ => i += 1,
        }
    }
    literals
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Json, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Json, E> {
        serde_json::Number::from_f64(v)
            .map(Json::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Json, E> {
        Ok(Json::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut members: Vec<(String, Json)> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if members.iter().any(|(k, _)| *k == key) {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
            let value = map.next_value()?;
            members.push((key, value));
        }
        Ok(Json::Object(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_keep_their_order_and_escapes_are_decoded() {
        let v = Json::parse(br#"{"b":1,"Privil\u0065ged":true,"a":[null,"x"]}"#).unwrap();
        let keys: Vec<&str> = v
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(keys, ["b", "Privileged", "a"]);
        assert_eq!(v.get("Privileged"), Some(&Json::Bool(true)));
    }

    #[test]
    fn nesting_is_capped_before_any_recursion() {
        let nested = |depth: usize| {
            format!(
                "{{\"Cmd\":{}{}, \"Note\":\"[[[[\\\"\"}}",
                "[".repeat(depth),
                "]".repeat(depth)
            )
        };
        assert!(Json::parse(nested(MAX_DEPTH - 1).as_bytes()).is_ok());
        let err = Json::parse(nested(MAX_DEPTH).as_bytes()).unwrap_err();
        assert!(err.contains("nested deeper than 32"), "{err}");
        // Far beyond any stack: refused by the scan, not by a recursion that overflows.
        assert!(Json::parse(nested(100_000).as_bytes()).is_err());
        // Brackets inside strings, escaped quotes included, do not count.
        let in_strings = format!(
            "{{\"Cmd\":[\"{}\\\"{}\"]}}",
            "[".repeat(100),
            "{".repeat(100)
        );
        assert!(Json::parse(in_strings.as_bytes()).is_ok());
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        for body in [
            r#"{"Privileged":false,"Privileged":true}"#,
            r#"{"HostConfig":{"Privileged":true},"HostConfig":{"Memory":1}}"#,
            r#"{"HostConfig":{"Sysctls":{"a":"1","a":"2"}}}"#,
            r#"[{"x":1,"x":1}]"#,
        ] {
            let err = Json::parse(body.as_bytes()).unwrap_err();
            assert!(err.contains("duplicate key"), "{body}: {err}");
        }
        // Different spellings are different keys here; the policy refuses the non-canonical one.
        assert!(Json::parse(br#"{"Privileged":false,"privileged":true}"#).is_ok());
    }

    #[test]
    fn serialising_keeps_order_escapes_and_integer_spellings() {
        let text =
            r#"{"b":1,"a":[null,true,false,-12,18446744073709551615],"s":"q\"\\\u0001é","o":{}}"#;
        let value = Json::parse(text.as_bytes()).unwrap();
        let out = value.to_bytes();
        assert_eq!(String::from_utf8(out.clone()).unwrap(), text);
        assert_eq!(Json::parse(&out).unwrap(), value);
        assert_eq!(number_literals(text.as_bytes()), number_literals(&out));
        // What does not survive textually is detected.
        for odd in ["-0", "1e2", "1E+2", "0.10"] {
            let doc = format!("{{\"x\":{odd}}}");
            let out = Json::parse(doc.as_bytes()).unwrap().to_bytes();
            assert_ne!(
                number_literals(doc.as_bytes()),
                number_literals(&out),
                "{odd}"
            );
        }
        assert_eq!(number_literals(br#"{"a1":"-2 \" 3","b":-4}"#), [&b"-4"[..]]);
    }

    #[test]
    fn trailing_data_and_bad_json_are_refused() {
        for body in [
            &br#"{"Image":"x"}}"#[..],
            br#"{"Image":"x"}]"#,
            br#"{"Image":"x"} {"Privileged":true}"#,
            br#"{"Image":"x"}garbage"#,
            br#"{"Image":"x""#,
            b"",
            br#"{"Image":"\ud800"}"#,
            b"{\"Image\":\"\xff\"}",
        ] {
            assert!(
                Json::parse(body).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        assert!(Json::parse(b" {\"Image\":\"x\"}\r\n ").is_ok());
    }
}
