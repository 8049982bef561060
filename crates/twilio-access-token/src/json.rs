//! JSON output that matches JavaScript's `JSON.stringify`, which twilio-node uses.

use std::fmt::Write as _;

use serde_json::{Map, Value};

/// The largest integer a JavaScript number represents exactly: 2^53 - 1.
pub(crate) const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Appends `text` as a JSON string: `"` and `\` escaped, `\b \f \n \r \t` as short escapes, the
/// other characters below U+0020 as `\u00xx`, and everything else as raw UTF-8.
pub(crate) fn write_str(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    let bytes = text.as_bytes();
    let mut start = 0;
    for (index, &byte) in bytes.iter().enumerate() {
        let escape: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..index]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(byte >> 4)]);
            out.push(HEX[usize::from(byte & 0xf)]);
        } else {
            out.extend_from_slice(escape);
        }
        start = index + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Appends an unsigned integer in decimal.
pub(crate) fn write_u64(out: &mut Vec<u8>, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut position = digits.len();
    loop {
        position -= 1;
        digits[position] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[position..]);
}

/// Appends a JSON value with keys in insertion order and numbers formatted as JavaScript does.
///
/// The caller must have checked the value with [`find_unsafe_integer`]: integers outside
/// JavaScript's safe range would be written exactly here but rounded by twilio-node.
pub(crate) fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(number) => write_number(out, number),
        Value::String(text) => write_str(out, text),
        Value::Array(items) => {
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        Value::Object(map) => write_object(out, map),
    }
}

/// Appends a JSON object with keys in insertion order.
pub(crate) fn write_object(out: &mut Vec<u8>, map: &Map<String, Value>) {
    out.push(b'{');
    for (index, (key, item)) in map.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        write_str(out, key);
        out.push(b':');
        write_value(out, item);
    }
    out.push(b'}');
}

fn write_number(out: &mut Vec<u8>, number: &serde_json::Number) {
    if let Some(value) = number.as_u64() {
        write_u64(out, value);
    } else if let Some(value) = number.as_i64() {
        out.push(b'-');
        write_u64(out, value.unsigned_abs());
    } else if let Some(value) = number.as_f64() {
        out.extend_from_slice(format_js_number(value).as_bytes());
    }
}

/// Formats a finite `f64` as JavaScript's `Number.prototype.toString` does: the shortest digits
/// that round-trip, in plain notation from 1e-6 up to 1e21 and in exponent notation (`1e+21`,
/// `1.5e-7`) outside that range, with no trailing `.0` and `-0` written as `0`.
pub(crate) fn format_js_number(value: f64) -> String {
    if value == 0.0 {
        return "0".to_owned();
    }
    let magnitude = value.abs();
    if (1e-6..1e21).contains(&magnitude) {
        return format!("{value}");
    }
    let mut text = String::new();
    let _ = write!(text, "{value:e}");
    match text.split_once('e') {
        Some((mantissa, exponent)) if !exponent.starts_with('-') => {
            format!("{mantissa}e+{exponent}")
        }
        _ => text,
    }
}

/// Returns the path and text of the first integer in `value` that JavaScript cannot hold
/// exactly (outside ±(2^53 - 1)).
pub(crate) fn find_unsafe_integer(value: &Value, path: &str) -> Option<(String, String)> {
    match value {
        Value::Number(number) => {
            let unsafe_integer = match (number.as_u64(), number.as_i64()) {
                (Some(unsigned), _) => unsigned > MAX_SAFE_INTEGER,
                (None, Some(signed)) => signed.unsigned_abs() > MAX_SAFE_INTEGER,
                (None, None) => false,
            };
            unsafe_integer.then(|| (path.to_owned(), number.to_string()))
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(index, item)| find_unsafe_integer(item, &format!("{path}[{index}]"))),
        Value::Object(map) => map
            .iter()
            .find_map(|(key, item)| find_unsafe_integer(item, &format!("{path}.{key}"))),
        Value::Null | Value::Bool(_) | Value::String(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(text: &str) -> String {
        let mut out = Vec::new();
        write_str(&mut out, text);
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn strings_escaped_like_json_stringify() {
        assert_eq!(string("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(string("\n\r\t\u{8}\u{c}"), r#""\n\r\t\b\f""#);
        assert_eq!(string("\u{0}\u{1f}\u{7f}"), "\"\\u0000\\u001f\u{7f}\"");
        assert_eq!(string("é🎉\u{2028}/<>&"), "\"é🎉\u{2028}/<>&\"");
    }

    #[test]
    fn strings_agree_with_serde_json() {
        let sample: String = (0u32..0x300).filter_map(char::from_u32).collect();
        assert_eq!(
            string(&sample),
            serde_json::to_string(&sample).expect("serializes")
        );
    }

    #[test]
    fn numbers_formatted_like_javascript() {
        let cases = [
            (1.0, "1"),
            (0.5, "0.5"),
            (-0.0, "0"),
            (-7.25, "-7.25"),
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (1.5e-7, "1.5e-7"),
            (0.000001, "0.000001"),
            (123456789.125, "123456789.125"),
            (0.1 + 0.2, "0.30000000000000004"),
            (f64::MAX, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
        ];
        for (value, expected) in cases {
            assert_eq!(format_js_number(value), expected, "{value:?}");
        }
    }

    #[test]
    fn integers_written_exactly() {
        let mut out = Vec::new();
        write_value(
            &mut out,
            &serde_json::json!([0, -7, 9007199254740991_u64, u64::MAX]),
        );
        assert_eq!(out, b"[0,-7,9007199254740991,18446744073709551615]");
    }

    #[test]
    fn unsafe_integers_found_with_path() {
        let value = serde_json::json!({"a": [1, {"big": 9007199254740992_u64}]});
        assert_eq!(
            find_unsafe_integer(&value, "params"),
            Some(("params.a[1].big".to_owned(), "9007199254740992".to_owned()))
        );
        let negative = serde_json::json!({"n": -9007199254740992_i64});
        assert!(find_unsafe_integer(&negative, "p").is_some());
        let safe = serde_json::json!({"n": -9007199254740991_i64, "f": 1e300});
        assert_eq!(find_unsafe_integer(&safe, "p"), None);
    }
}
