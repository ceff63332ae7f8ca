//! Logical types: the engine-neutral meaning of a column, as the content digest spec defines it.

use serde::{Deserialize, Serialize};

/// The logical type of a column (`content-digest.md`, "Canonical text by logical type").
///
/// Which logical type a column gets is decided once, by the schema model; every reader and
/// writer works from it, so the same data gives the same canonical bytes in every engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogicalType {
    Bool,
    Int,
    Decimal,
    /// A 4-byte float: its shortest text is taken in 32-bit width.
    Float32,
    Float64,
    Text,
    /// `char(n)`: trailing spaces are not part of the value.
    FixedText,
    Bytes,
    Date,
    Time,
    Timestamp,
    #[serde(rename = "timestamptz")]
    TimestampTz,
    Uuid,
    Json,
    Other,
}

impl LogicalType {
    /// The name used in the spec and in reports (`float` for both widths).
    pub fn spec_name(self) -> &'static str {
        match self {
            Self::Bool => "bool",
            Self::Int => "int",
            Self::Decimal => "decimal",
            Self::Float32 | Self::Float64 => "float",
            Self::Text | Self::FixedText => "text",
            Self::Bytes => "bytes",
            Self::Date => "date",
            Self::Time => "time",
            Self::Timestamp => "timestamp",
            Self::TimestampTz => "timestamptz",
            Self::Uuid => "uuid",
            Self::Json => "json",
            Self::Other => "other",
        }
    }

    /// Logical type of a SQLite column from its declared type, by the spec's affinity-like rules.
    pub fn from_sqlite_declared(declared: &str) -> Self {
        let t = declared.trim().to_ascii_uppercase();
        // The later rules name whole types; ignore a size suffix such as `DATETIME(6)`.
        let base = t.split('(').next().unwrap_or("").trim();
        if t.contains("BOOL") {
            Self::Bool
        } else if t.contains("INT") {
            Self::Int
        } else if t.contains("CHAR") || t.contains("CLOB") || t.contains("TEXT") {
            Self::Text
        } else if t.contains("BLOB") {
            Self::Bytes
        } else if t.contains("REAL") || t.contains("FLOA") || t.contains("DOUB") {
            Self::Float64
        } else if t.contains("DEC") || t.contains("NUMERIC") {
            Self::Decimal
        } else {
            match base {
                "DATETIME" | "TIMESTAMP" => Self::Timestamp,
                "DATE" => Self::Date,
                "TIME" => Self::Time,
                "UUID" => Self::Uuid,
                "JSON" => Self::Json,
                _ => Self::Other,
            }
        }
    }
}

impl std::fmt::Display for LogicalType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Float32 => f.write_str("float(32)"),
            Self::Float64 => f.write_str("float(64)"),
            Self::FixedText => f.write_str("text(fixed)"),
            other => f.write_str(other.spec_name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::LogicalType as L;

    #[test]
    fn sqlite_declared_types_follow_the_spec_order() {
        let cases = [
            ("BOOLEAN", L::Bool),
            ("INTEGER", L::Int),
            ("BIGINT UNSIGNED", L::Int),
            ("VARCHAR(20)", L::Text),
            ("CHARACTER(10)", L::Text),
            ("BLOB", L::Bytes),
            ("DOUBLE PRECISION", L::Float64),
            ("FLOAT", L::Float64),
            ("DECIMAL(10,2)", L::Decimal),
            ("NUMERIC", L::Decimal),
            ("DATETIME", L::Timestamp),
            ("TIMESTAMP", L::Timestamp),
            ("DATE", L::Date),
            ("TIME", L::Time),
            ("UUID", L::Uuid),
            ("json", L::Json),
            ("", L::Other),
            ("GEOMETRY", L::Other),
            // The spec's rule is a substring rule, as SQLite's affinity is: POINT contains INT.
            ("POINT", L::Int),
        ];
        for (declared, expected) in cases {
            assert_eq!(L::from_sqlite_declared(declared), expected, "{declared}");
        }
    }
}
