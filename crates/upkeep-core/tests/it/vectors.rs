//! Every vector in `fixtures/digest/content-digest-vectors.json` (the spec's vectors) must encode and digest exactly as
//! the reference implementation says. The file is required: a missing spec fails the test.

use std::path::PathBuf;

use serde_json::Value;
use upkeep_core::{canonical, Digest, LogicalType};

fn spec_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("UPKEEP_SPEC_DIR") {
        return PathBuf::from(dir);
    }
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.join("../../fixtures/digest")
}

fn vectors() -> Value {
    let path = spec_dir().join("content-digest-vectors.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {} ({e}); set UPKEEP_SPEC_DIR to a folder holding them",
            path.display()
        )
    });
    serde_json::from_str(&text).expect("vectors are JSON")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Encodes a vector's value the way a reader meets it: as text (or raw bytes), through the same
/// `write_from_text` the MySQL and SQLite readers use.
fn encode(v: &Value) -> Vec<u8> {
    let ty = v["type"].as_str().unwrap();
    let value = &v["value"];
    if value.is_null() {
        return vec![0];
    }
    let width = v.get("width").and_then(Value::as_u64).unwrap_or(64);
    let fixed = v
        .get("fixed_char")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let logical = match (ty, width, fixed) {
        ("bool", ..) => LogicalType::Bool,
        ("int", ..) => LogicalType::Int,
        ("decimal", ..) => LogicalType::Decimal,
        ("float", 32, _) => LogicalType::Float32,
        ("float", ..) => LogicalType::Float64,
        ("text", _, true) => LogicalType::FixedText,
        ("text", ..) => LogicalType::Text,
        ("bytes", ..) => LogicalType::Bytes,
        ("date", ..) => LogicalType::Date,
        ("time", ..) => LogicalType::Time,
        ("timestamp", ..) => LogicalType::Timestamp,
        ("timestamptz", ..) => LogicalType::TimestampTz,
        ("uuid", ..) => LogicalType::Uuid,
        ("json", ..) => LogicalType::Json,
        ("other", ..) => LogicalType::Other,
        other => panic!("unknown vector type {other:?}"),
    };
    let text: Vec<u8> = match value {
        Value::Bool(b) => b.to_string().into_bytes(),
        Value::Number(n) => n.to_string().into_bytes(),
        Value::String(s) => s.clone().into_bytes(),
        Value::Object(o) if o.contains_key("hex") => unhex(o["hex"].as_str().unwrap()),
        Value::Object(o) if o.contains_key("float") => {
            o["float"].as_str().unwrap().as_bytes().to_vec()
        }
        other => panic!("unexpected vector value {other}"),
    };
    let mut canonical_text = Vec::new();
    canonical::write_from_text(logical, &text, &mut canonical_text)
        .unwrap_or_else(|e| panic!("{ty} {value}: {e}"));
    let mut out = vec![1];
    out.extend_from_slice(&u32::try_from(canonical_text.len()).unwrap().to_le_bytes());
    out.extend_from_slice(&canonical_text);
    out
}

#[test]
fn every_value_vector_encodes_as_the_reference() {
    let v = vectors();
    assert_eq!(v["version"], 1);
    let values = v["values"].as_array().unwrap();
    assert!(
        values.len() > 40,
        "the vector file lists {} values",
        values.len()
    );
    let mut failures = Vec::new();
    for case in values {
        let got = hex(&encode(case));
        let want = case["encoding_hex"].as_str().unwrap();
        if got != want {
            failures.push(format!("{case}: got {got}"));
        }
    }
    assert!(failures.is_empty(), "mismatches:\n{}", failures.join("\n"));
}

#[test]
fn every_row_and_table_vector_digests_as_the_reference() {
    let v = vectors();
    let rows: Vec<Vec<u8>> = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let encoded: Vec<u8> = r["encodings_hex"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|e| unhex(e.as_str().unwrap()))
                .collect();
            assert_eq!(
                hex(&upkeep_core::row_hash(&encoded)),
                r["row_hash_hex"].as_str().unwrap()
            );
            encoded
        })
        .collect();
    assert!(!rows.is_empty(), "the spec has row vectors");
    let tables = v["tables"].as_array().unwrap();
    assert!(!tables.is_empty(), "the spec has table vectors");
    for table in tables {
        let mut d = Digest::default();
        for i in table["rows"].as_array().unwrap() {
            d.add_row(&rows[usize::try_from(i.as_u64().unwrap()).unwrap()]);
        }
        assert_eq!(d.to_string(), table["digest"].as_str().unwrap());
    }
}
