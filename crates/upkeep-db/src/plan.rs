//! Chunk planning: split a table into key ranges that partition its rows, and render a range
//! as a WHERE predicate.

use upkeep_core::{Engine, KeyRange, LogicalType, Table, TableKind};

use crate::database::Session;
use crate::quote;
use crate::{DbError, Target};

/// How finely to split tables.
#[derive(Clone, Copy, Debug)]
pub struct PlanOptions {
    /// Aim for about this many rows per chunk.
    pub chunk_rows: u64,
    /// Split a table of at least `chunk_rows` rows into at least this many chunks, so that all
    /// workers share a single large table.
    pub min_chunks: usize,
}

impl Default for PlanOptions {
    fn default() -> Self {
        Self {
            chunk_rows: 250_000,
            min_chunks: 1,
        }
    }
}

const MAX_CHUNKS: u64 = 4096;

pub(crate) async fn plan_table(
    session: &mut Session,
    target: &Target,
    table: &Table,
    options: &PlanOptions,
) -> Result<Vec<KeyRange>, DbError> {
    let engine = target.engine();
    let Some(key) = table.split_key() else {
        return Ok(vec![KeyRange::ALL]);
    };
    let first = table
        .column(&key.columns[0])
        .expect("key columns are table columns");
    let integer_lead = first.logical == LogicalType::Int;
    // SQLite keys other than the rowid may hold NULLs and mixed storage classes: only the
    // rowid alias splits safely (SQLite reads in one transaction anyway).
    if engine == Engine::Sqlite
        && !(key.columns.len() == 1 && first.native_type.eq_ignore_ascii_case("INTEGER"))
    {
        return Ok(vec![KeyRange::ALL]);
    }
    let name = from_clause(engine, table);
    let rows = match (engine, table.estimated_rows) {
        (Engine::Sqlite, _) | (_, None) => {
            let sql = format!("SELECT CAST(count(*) AS {}) FROM {name}", text_type(engine));
            let r = session.query_text(target, &sql, "planning chunks").await?;
            r.first()
                .and_then(|row| row[0].as_deref())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        }
        (_, Some(n)) => n,
    };
    let chunk_rows = options.chunk_rows.max(1);
    let mut n = rows.div_ceil(chunk_rows);
    if rows >= chunk_rows {
        n = n.max(u64::try_from(options.min_chunks).unwrap_or(1));
    }
    let n = n.min(MAX_CHUNKS);
    if n <= 1 {
        return Ok(vec![KeyRange::ALL]);
    }
    let bounds: Vec<Vec<String>> = if integer_lead {
        let col = quote::ident(engine, &first.name);
        let t = text_type(engine);
        let sql = format!("SELECT CAST(min({col}) AS {t}), CAST(max({col}) AS {t}) FROM {name}");
        let r = session.query_text(target, &sql, "planning chunks").await?;
        let parse = |i: usize| {
            r.first()
                .and_then(|row| row[i].as_deref())
                .and_then(|v| v.parse::<i128>().ok())
        };
        let (Some(lo), Some(hi)) = (parse(0), parse(1)) else {
            return Ok(vec![KeyRange::ALL]);
        };
        // Bounds sit on a grid of a power-of-two step, so that they stay where they were when
        // rows are added or removed: backups of a changed table then cut the same chunks.
        let span = hi - lo + 1;
        let step = (span / i128::from(n)).max(1);
        let step = 1i128 << (128 - (step - 1).leading_zeros()).min(100);
        let mut out: Vec<Vec<String>> = Vec::new();
        let mut b = (lo.div_euclid(step) + 1) * step;
        while b <= hi {
            out.push(vec![b.to_string()]);
            b += step;
        }
        out
    } else {
        let step = rows.div_ceil(n).max(1);
        sampled_bounds(session, target, table, &key.columns, step).await?
    };
    Ok(ranges_from_bounds(bounds))
}

fn ranges_from_bounds(bounds: Vec<Vec<String>>) -> Vec<KeyRange> {
    if bounds.is_empty() {
        return vec![KeyRange::ALL];
    }
    let mut ranges = Vec::with_capacity(bounds.len() + 1);
    let mut lower = None;
    for b in bounds {
        ranges.push(KeyRange {
            lower: lower.take(),
            upper: Some(b.clone()),
        });
        lower = Some(b);
    }
    ranges.push(KeyRange { lower, upper: None });
    ranges
}

/// Every `step`-th key in key order, as SQL literals.
async fn sampled_bounds(
    session: &mut Session,
    target: &Target,
    table: &Table,
    key: &[String],
    step: u64,
) -> Result<Vec<Vec<String>>, DbError> {
    let engine = target.engine();
    let inner: Vec<String> = key
        .iter()
        .enumerate()
        .map(|(i, k)| format!("{} AS upkeep_k{i}", quote::ident(engine, k)))
        .collect();
    let order = quote::ident_list(engine, key);
    let lits: Vec<String> = key
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let col = table.column(k).expect("key columns are table columns");
            match engine {
                Engine::Postgres => format!("quote_literal(upkeep_k{i}::text)"),
                Engine::Mysql if col.logical == LogicalType::Bytes => {
                    format!("CONCAT('X''', HEX(upkeep_k{i}), '''')")
                }
                Engine::Mysql => format!("QUOTE(upkeep_k{i})"),
                Engine::Sqlite => format!("quote(upkeep_k{i})"),
            }
        })
        .collect();
    let sql = format!(
        "SELECT {} FROM (SELECT {}, row_number() OVER (ORDER BY {order}) AS upkeep_rn FROM {}) upkeep_s \
         WHERE upkeep_rn % {step} = 0 ORDER BY upkeep_rn",
        lits.join(", "),
        inner.join(", "),
        from_clause(engine, table)
    );
    let rows = session.query_text(target, &sql, "planning chunks").await?;
    let mut bounds = Vec::with_capacity(rows.len());
    for row in rows {
        let mut b = Vec::with_capacity(key.len());
        for (i, v) in row.into_iter().enumerate() {
            let Some(v) = v else { return Ok(Vec::new()) };
            b.push(match engine {
                Engine::Postgres => {
                    let col = table
                        .column(&key[i])
                        .expect("key columns are table columns");
                    format!("{v}::{}", col.native_type)
                }
                _ => v,
            });
        }
        bounds.push(b);
    }
    Ok(bounds)
}

/// The FROM of a read of `table`: PostgreSQL reads a plain table without its inheritance
/// children.
pub(crate) fn from_clause(engine: Engine, table: &Table) -> String {
    let name = quote::table(engine, &table.name);
    if engine == Engine::Postgres && table.kind == TableKind::Table {
        format!("ONLY {name}")
    } else {
        name
    }
}

fn text_type(engine: Engine) -> &'static str {
    match engine {
        Engine::Mysql => "CHAR",
        _ => "TEXT",
    }
}

/// The WHERE predicate selecting `range` of `key` (the bounds cover a prefix of the key).
pub(crate) fn range_predicate(engine: Engine, key: &[String], range: &KeyRange) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(lo) = &range.lower {
        parts.push(compare(engine, key, lo, true));
    }
    if let Some(hi) = &range.upper {
        parts.push(compare(engine, key, hi, false));
    }
    (!parts.is_empty()).then(|| parts.join(" AND "))
}

fn compare(engine: Engine, key: &[String], values: &[String], lower: bool) -> String {
    let cols: Vec<String> = key[..values.len()]
        .iter()
        .map(|k| quote::ident(engine, k))
        .collect();
    let op = if lower { ">=" } else { "<" };
    if cols.len() == 1 {
        return format!("{} {op} {}", cols[0], values[0]);
    }
    match engine {
        Engine::Mysql => {
            // MariaDB's range optimizer handles the expanded form better than row comparisons.
            let strict = if lower { ">" } else { "<" };
            let last = cols.len() - 1;
            let mut expr = format!("{} {op} {}", cols[last], values[last]);
            for i in (0..last).rev() {
                expr = format!(
                    "({c} {strict} {v} OR ({c} = {v} AND {expr}))",
                    c = cols[i],
                    v = values[i]
                );
            }
            expr
        }
        _ => format!("({}) {op} ({})", cols.join(", "), values.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_partition_the_key_space() {
        let r = ranges_from_bounds(vec![vec!["10".into()], vec!["20".into()]]);
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].lower, None);
        assert_eq!(r[1].lower, r[0].upper);
        assert_eq!(r[2].upper, None);
    }

    #[test]
    fn composite_predicates() {
        let key = vec!["a".to_owned(), "b".to_owned()];
        let range = KeyRange {
            lower: Some(vec!["1".into(), "'x'".into()]),
            upper: None,
        };
        assert_eq!(
            range_predicate(Engine::Postgres, &key, &range).unwrap(),
            "(\"a\", \"b\") >= (1, 'x')"
        );
        assert_eq!(
            range_predicate(Engine::Mysql, &key, &range).unwrap(),
            "(`a` > 1 OR (`a` = 1 AND `b` >= 'x'))"
        );
        assert_eq!(range_predicate(Engine::Sqlite, &key, &KeyRange::ALL), None);
    }
}
