//! The shop schema and its deterministic rows.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use upkeep_core::{
    canonical, BatchBuilder, Column, ForeignKey, Index, Key, LogicalType, Table, TableKind,
    TableName,
};

/// Rows are generated in blocks of this many, each from its own seeded generator, so that any
/// worker can produce any block and the data does not depend on the number of jobs.
pub(crate) const BLOCK_ROWS: u64 = 8192;

fn col(name: &str, logical: LogicalType, nullable: bool) -> Column {
    let mut c = Column::new(name, logical);
    c.nullable = nullable;
    c
}

fn sized(mut c: Column, length: Option<u32>, precision: Option<u32>, scale: Option<u32>) -> Column {
    c.length = length;
    c.precision = precision;
    c.scale = scale;
    c
}

fn table(name: &str, columns: Vec<Column>, pk: &[&str]) -> Table {
    Table {
        name: TableName::unqualified(name),
        kind: TableKind::Table,
        columns,
        primary_key: Some(Key {
            name: None,
            columns: pk.iter().map(|s| (*s).to_owned()).collect(),
        }),
        unique: Vec::new(),
        indexes: Vec::new(),
        foreign_keys: Vec::new(),
        checks: Vec::new(),
        estimated_rows: None,
        comment: None,
        partition_of: None,
    }
}

fn fk(columns: &[&str], references: &str) -> ForeignKey {
    ForeignKey {
        name: None,
        columns: columns.iter().map(|s| (*s).to_owned()).collect(),
        references: TableName::unqualified(references),
        referenced_columns: vec!["id".into()],
        on_delete: None,
        on_update: None,
    }
}

/// The four tables, in load order.
pub fn shop_schema() -> Vec<Table> {
    use LogicalType as L;
    let mut customers = table(
        "customers",
        vec![
            col("id", L::Int, false),
            sized(col("name", L::Text, false), Some(100), None, None),
            sized(col("email", L::Text, false), Some(200), None, None),
            sized(col("country", L::FixedText, true), Some(2), None, None),
            sized(col("created_at", L::Timestamp, true), None, Some(6), None),
            sized(col("balance", L::Decimal, true), None, Some(12), Some(2)),
            col("active", L::Bool, false),
        ],
        &["id"],
    );
    customers.unique.push(Key {
        name: None,
        columns: vec!["email".into()],
    });
    let mut orders = table(
        "orders",
        vec![
            col("id", L::Int, false),
            col("customer_id", L::Int, false),
            sized(col("status", L::Text, false), Some(16), None, None),
            sized(col("ordered_at", L::TimestampTz, true), None, Some(6), None),
            sized(col("total", L::Decimal, true), None, Some(14), Some(2)),
            col("note", L::Text, true),
        ],
        &["id"],
    );
    orders.foreign_keys.push(fk(&["customer_id"], "customers"));
    orders.indexes.push(Index {
        name: "orders_customer_id_idx".into(),
        columns: vec!["customer_id".into()],
        unique: false,
        definition: None,
    });
    let mut lines = table(
        "order_lines",
        vec![
            col("order_id", L::Int, false),
            col("line_no", L::Int, false),
            col("product_id", L::Int, false),
            sized(col("sku", L::Text, false), Some(32), None, None),
            col("quantity", L::Int, false),
            sized(
                col("unit_price", L::Decimal, false),
                None,
                Some(10),
                Some(2),
            ),
            col("discount", L::Float32, true),
        ],
        &["order_id", "line_no"],
    );
    lines.foreign_keys.push(ForeignKey {
        referenced_columns: vec!["id".into()],
        ..fk(&["order_id"], "orders")
    });
    let mut documents = table(
        "documents",
        vec![
            col("id", L::Int, false),
            col("customer_id", L::Int, false),
            sized(col("title", L::Text, false), Some(200), None, None),
            col("body", L::Text, true),
            col("attachment", L::Bytes, true),
            col("metadata", L::Json, true),
            col("uid", L::Uuid, false),
        ],
        &["id"],
    );
    documents
        .foreign_keys
        .push(fk(&["customer_id"], "customers"));
    documents.indexes.push(Index {
        name: "documents_customer_id_idx".into(),
        columns: vec!["customer_id".into()],
        unique: false,
        definition: None,
    });
    vec![customers, orders, lines, documents]
}

/// Row counts for `rows` order lines: four lines per order, a customer per 50 lines, a
/// document per 100.
pub(crate) fn row_counts(rows: u64) -> [u64; 4] {
    [
        (rows / 50).max(1),
        rows.div_ceil(4).max(1),
        rows,
        (rows / 100).max(1),
    ]
}

const FIRST: [&str; 16] = [
    "Ann", "Bo", "Chen", "Dmitri", "Eva", "Fatima", "Gustav", "Hana", "Ivan", "Jun", "Kofi",
    "Lena", "Mateo", "Nora", "Olu", "Zoë",
];
const LAST: [&str; 12] = [
    "Smith", "García", "Müller", "Wang", "Kowalski", "Okafor", "Rossi", "Tanaka", "Dubois",
    "Silva", "Ivanova", "张",
];
const COUNTRIES: [&str; 10] = ["DE", "FR", "US", "CN", "BR", "NG", "JP", "PL", "IT", "GB"];
const STATUS: [&str; 5] = ["new", "paid", "shipped", "delivered", "returned"];
const WORDS: [&str; 16] = [
    "invoice", "delivery", "contract", "warranty", "café", "naïve", "résumé", "order", "payment",
    "customer", "service", "quality", "数据", "report", "🙂", "terms",
];

fn text(b: &mut BatchBuilder, s: &str) {
    b.push_value(s.as_bytes());
}

fn int(b: &mut BatchBuilder, v: i64) {
    let (m, buf) = b.begin_value();
    canonical::write_i64(v, buf);
    b.finish_value(m);
}

/// A decimal with two places from a count of cents.
fn cents(b: &mut BatchBuilder, v: i64) {
    let (m, buf) = b.begin_value();
    let digits = v.unsigned_abs().to_string();
    let (int_part, frac) = if digits.len() > 2 {
        digits.split_at(digits.len() - 2)
    } else {
        ("0", digits.as_str())
    };
    let frac = format!("{frac:0>2}");
    canonical::write_decimal_parts(v < 0, int_part.as_bytes(), frac.as_bytes(), -2, buf);
    b.finish_value(m);
}

fn timestamp(b: &mut BatchBuilder, secs: i64, micros: u32, tz: bool) {
    let (m, buf) = b.begin_value();
    let dt = chrono_like(secs, micros);
    canonical::write_naive_datetime(&dt, buf).expect("generated timestamps are within 2015-2026");
    if tz {
        buf.push(b'Z');
    }
    b.finish_value(m);
}

fn chrono_like(secs: i64, micros: u32) -> chrono::NaiveDateTime {
    chrono::DateTime::from_timestamp(secs, micros * 1000)
        .expect("a valid epoch")
        .naive_utc()
}

fn sentence(rng: &mut ChaCha8Rng, words: usize) -> String {
    let mut s = String::new();
    for i in 0..words {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(WORDS[rng.gen_range(0..WORDS.len())]);
    }
    s
}

/// Writes rows `[first, first + count)` of table `index` (in [`shop_schema`] order).
pub(crate) fn fill_block(
    index: usize,
    seed: u64,
    first: u64,
    count: u64,
    counts: &[u64; 4],
    b: &mut BatchBuilder,
) {
    let block = first / BLOCK_ROWS;
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ ((index as u64 + 1) << 56) ^ block);
    let base_time: i64 = 1_420_070_400; // 2015-01-01
    for row in first..first + count {
        let id = i64::try_from(row + 1).expect("row ids fit i64");
        match index {
            0 => {
                int(b, id);
                text(
                    b,
                    &format!(
                        "{} {}",
                        FIRST[rng.gen_range(0..FIRST.len())],
                        LAST[rng.gen_range(0..LAST.len())]
                    ),
                );
                text(b, &format!("customer{id}@example.com"));
                if rng.gen_bool(0.05) {
                    b.push_null()
                } else {
                    text(b, COUNTRIES[rng.gen_range(0..COUNTRIES.len())])
                }
                timestamp(
                    b,
                    base_time + rng.gen_range(0..340_000_000),
                    rng.gen_range(0..1_000_000),
                    false,
                );
                cents(b, rng.gen_range(-50_000..5_000_000));
                text(b, if rng.gen_bool(0.9) { "true" } else { "false" });
            }
            1 => {
                int(b, id);
                int(b, rng.gen_range(1..=i64::try_from(counts[0]).unwrap_or(1)));
                text(b, STATUS[rng.gen_range(0..STATUS.len())]);
                timestamp(
                    b,
                    base_time + rng.gen_range(0..340_000_000),
                    rng.gen_range(0..1_000_000),
                    true,
                );
                cents(b, rng.gen_range(100..10_000_000));
                if rng.gen_bool(0.8) {
                    b.push_null()
                } else {
                    text(b, &sentence(&mut rng, 6))
                }
            }
            2 => {
                let row = i64::try_from(row).expect("row numbers fit i64");
                int(b, row / 4 + 1);
                int(b, row % 4 + 1);
                let product = rng.gen_range(1..100_000);
                int(b, product);
                text(
                    b,
                    &format!(
                        "SKU-{product:06}-{}",
                        ["S", "M", "L", "XL"][rng.gen_range(0..4)]
                    ),
                );
                int(b, rng.gen_range(1..20));
                cents(b, rng.gen_range(50..500_000));
                if rng.gen_bool(0.7) {
                    b.push_null();
                } else {
                    let (m, buf) = b.begin_value();
                    canonical::write_f32(f32::from(rng.gen_range(1u8..50)) / 100.0, buf);
                    b.finish_value(m);
                }
            }
            _ => {
                int(b, id);
                int(b, rng.gen_range(1..=i64::try_from(counts[0]).unwrap_or(1)));
                text(b, &sentence(&mut rng, 4));
                let words = rng.gen_range(20..300);
                text(b, &sentence(&mut rng, words));
                if rng.gen_bool(0.3) {
                    b.push_null();
                } else {
                    let len = rng.gen_range(0..4096);
                    let bytes: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
                    b.push_value(&bytes);
                }
                let meta = format!(
                    "{{\"pages\":{},\"lang\":\"{}\",\"tags\":[\"{}\",\"{}\"],\"score\":{}.{}}}",
                    rng.gen_range(1..400),
                    ["en", "de", "zh", "pt"][rng.gen_range(0..4)],
                    WORDS[rng.gen_range(0..WORDS.len())],
                    WORDS[rng.gen_range(0..WORDS.len())],
                    rng.gen_range(0..100),
                    rng.gen_range(1..10)
                );
                let (m, buf) = b.begin_value();
                canonical::write_json_text(meta.as_bytes(), buf).expect("generated JSON is valid");
                b.finish_value(m);
                // A version-4 UUID: MariaDB's UUID type refuses other variants.
                let mut uid: [u8; 16] = rng.gen();
                uid[6] = (uid[6] & 0x0f) | 0x40;
                uid[8] = (uid[8] & 0x3f) | 0x80;
                let (m, buf) = b.begin_value();
                canonical::write_uuid(&uid, buf);
                b.finish_value(m);
            }
        }
        b.end_row();
    }
}
