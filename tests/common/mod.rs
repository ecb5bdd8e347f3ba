//! Helpers shared by the integration tests.
#![allow(dead_code)]

use serde_json::Value;

/// Bytes of `tests/fixtures/<name>`.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `tests/fixtures/<name>` parsed as JSON.
pub fn fixture_value(name: &str) -> Value {
    serde_json::from_slice(&fixture(name)).unwrap()
}

/// Numbers compared as numbers: `1` and `1.0` are the same value.
pub fn normalize(value: &Value) -> Value {
    match value {
        Value::Number(n) => n
            .as_f64()
            .and_then(serde_json::Number::from_f64)
            .map_or_else(|| value.clone(), Value::Number),
        Value::Array(items) => Value::Array(items.iter().map(normalize).collect()),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), normalize(v))).collect())
        }
        other => other.clone(),
    }
}

/// Asserts two JSON documents are equal up to number representation, and
/// names the first differing path on failure.
pub fn assert_same_json(actual: &Value, expected: &Value, what: &str) {
    let (a, e) = (normalize(actual), normalize(expected));
    if a != e {
        panic!(
            "{what}: JSON differs at {}",
            first_difference(&a, &e, String::new())
        );
    }
}

fn first_difference(a: &Value, e: &Value, path: String) -> String {
    match (a, e) {
        (Value::Object(a), Value::Object(e)) => {
            for key in a.keys().chain(e.keys()) {
                match (a.get(key), e.get(key)) {
                    (Some(x), Some(y)) if x == y => {}
                    (Some(x), Some(y)) => return first_difference(x, y, format!("{path}.{key}")),
                    (x, y) => return format!("{path}.{key}: {x:?} vs {y:?}"),
                }
            }
            path
        }
        (Value::Array(a), Value::Array(e)) if a.len() == e.len() => {
            for (i, (x, y)) in a.iter().zip(e).enumerate() {
                if x != y {
                    return first_difference(x, y, format!("{path}[{i}]"));
                }
            }
            path
        }
        _ => format!("{path}: {a} vs {e}"),
    }
}
