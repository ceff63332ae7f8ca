//! PostgreSQL schema introspection from the system catalogs.

use std::collections::HashMap;

use sqlx::postgres::{PgConnection, PgRow};
use sqlx::Row;
use upkeep_core::{
    Check, Column, ForeignKey, Identity, Index, Key, LogicalType, Schema, Sequence, Table,
    TableKind, TableName, View,
};

use super::err;
use crate::{DbError, Target};

const USER_NAMESPACES: &str = "n.nspname NOT IN ('pg_catalog', 'information_schema') \
     AND n.nspname !~ '^pg_(toast|temp_|toast_temp_)'";

fn ns(schema: String) -> Option<String> {
    (schema != "public").then_some(schema)
}

fn s(row: &PgRow, i: usize) -> String {
    row.try_get::<Option<String>, _>(i)
        .ok()
        .flatten()
        .unwrap_or_default()
}

fn os(row: &PgRow, i: usize) -> Option<String> {
    row.try_get::<Option<String>, _>(i).ok().flatten()
}

pub(crate) async fn introspect(
    conn: &mut PgConnection,
    target: &Target,
) -> Result<Schema, DbError> {
    let e = || err(target, "reading the schema");
    let tables_sql = format!(
        "SELECT c.oid::int8, n.nspname::text, c.relname::text, c.relkind::text, c.reltuples::float8, \
                obj_description(c.oid, 'pg_class'), pn.nspname::text, pc.relname::text \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         LEFT JOIN pg_inherits i ON c.relispartition AND i.inhrelid = c.oid \
         LEFT JOIN pg_class pc ON pc.oid = i.inhparent LEFT JOIN pg_namespace pn ON pn.oid = pc.relnamespace \
         WHERE c.relkind IN ('r', 'p') AND {USER_NAMESPACES} \
           AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e') \
         ORDER BY 2, 3"
    );
    let mut tables: Vec<Table> = Vec::new();
    let mut by_oid: HashMap<i64, usize> = HashMap::new();
    for row in sqlx::query(&tables_sql)
        .fetch_all(&mut *conn)
        .await
        .map_err(e())?
    {
        let oid: i64 = row.try_get(0).map_err(e())?;
        let reltuples: f64 = row.try_get(4).unwrap_or(-1.0);
        by_oid.insert(oid, tables.len());
        tables.push(Table {
            name: TableName::new(ns(s(&row, 1)), s(&row, 2)),
            kind: if s(&row, 3) == "p" {
                TableKind::Partitioned
            } else {
                TableKind::Table
            },
            columns: Vec::new(),
            primary_key: None,
            unique: Vec::new(),
            indexes: Vec::new(),
            foreign_keys: Vec::new(),
            checks: Vec::new(),
            // reltuples is -1 until the table is first vacuumed or analyzed.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            estimated_rows: (reltuples >= 0.0).then_some(reltuples as u64),
            comment: os(&row, 5),
            partition_of: os(&row, 7)
                .map(|parent| TableName::new(os(&row, 6).and_then(ns), parent)),
        });
    }

    let columns_sql = "SELECT a.attrelid::int8, a.attname::text, format_type(a.atttypid, a.atttypmod), \
                a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attidentity::text, a.attgenerated::text, \
                bt.typname::text, bt.typtype::text, bt.typcategory::text, \
                CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END, \
                format_type(bt.oid, NULL) \
         FROM pg_attribute a \
         JOIN pg_type t ON t.oid = a.atttypid \
         JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END \
         LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
         WHERE a.attnum > 0 AND NOT a.attisdropped \
           AND a.attrelid IN (SELECT c.oid FROM pg_class c WHERE c.relkind IN ('r', 'p')) \
         ORDER BY a.attrelid, a.attnum";
    for row in sqlx::query(columns_sql)
        .fetch_all(&mut *conn)
        .await
        .map_err(e())?
    {
        let oid: i64 = row.try_get(0).map_err(e())?;
        let Some(&ti) = by_oid.get(&oid) else {
            continue;
        };
        let base = s(&row, 7);
        let typtype = s(&row, 8);
        let category = s(&row, 9);
        let typmod: i32 = row.try_get(10).unwrap_or(-1);
        let logical = pg_logical(&base, &typtype, &category);
        let identity = match s(&row, 5).as_str() {
            "a" => Some(Identity::Always),
            "d" => Some(Identity::ByDefault),
            _ => None,
        };
        let generated_flag = s(&row, 6);
        let default = os(&row, 4);
        let (default, generated) = if generated_flag == "s" {
            (None, default)
        } else {
            (default, None)
        };
        let identity = identity.or_else(|| {
            default
                .as_deref()
                .is_some_and(|d| d.starts_with("nextval("))
                .then_some(Identity::ByDefault)
        });
        let (length, precision, scale) = typmod_parts(&base, typmod);
        tables[ti].columns.push(Column {
            name: s(&row, 1),
            native_type: s(&row, 2),
            logical,
            nullable: !row.try_get::<bool, _>(3).unwrap_or(false),
            default,
            identity,
            generated,
            length,
            precision,
            scale,
            unsigned: false,
        });
    }

    let constraints_sql = "SELECT con.conrelid::int8, con.conname::text, con.contype::text, \
                ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, o) \
                      JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.o), \
                fn.nspname::text, fc.relname::text, \
                ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(n, o) \
                      JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.o), \
                con.confdeltype::text, con.confupdtype::text, pg_get_constraintdef(con.oid) \
         FROM pg_constraint con \
         LEFT JOIN pg_class fc ON fc.oid = con.confrelid \
         LEFT JOIN pg_namespace fn ON fn.oid = fc.relnamespace \
         WHERE con.contype IN ('p', 'u', 'f', 'c') AND con.conrelid <> 0 \
         ORDER BY con.conrelid, con.contype, con.conname";
    for row in sqlx::query(constraints_sql)
        .fetch_all(&mut *conn)
        .await
        .map_err(e())?
    {
        let oid: i64 = row.try_get(0).map_err(e())?;
        let Some(&ti) = by_oid.get(&oid) else {
            continue;
        };
        let name = Some(s(&row, 1));
        let columns: Vec<String> = row.try_get(3).unwrap_or_default();
        let t = &mut tables[ti];
        match s(&row, 2).as_str() {
            "p" => t.primary_key = Some(Key { name, columns }),
            "u" => t.unique.push(Key { name, columns }),
            "f" => t.foreign_keys.push(ForeignKey {
                name,
                columns,
                references: TableName::new(ns(s(&row, 4)), s(&row, 5)),
                referenced_columns: row.try_get(6).unwrap_or_default(),
                on_delete: fk_action(&s(&row, 7)),
                on_update: fk_action(&s(&row, 8)),
            }),
            "c" => {
                let def = s(&row, 9);
                t.checks.push(Check {
                    name,
                    expression: def.strip_prefix("CHECK ").unwrap_or(&def).to_owned(),
                });
            }
            _ => {}
        }
    }

    let indexes_sql = "SELECT i.indrelid::int8, ic.relname::text, i.indisunique, pg_get_indexdef(i.indexrelid), \
                CASE WHEN i.indexprs IS NULL AND i.indpred IS NULL THEN \
                  ARRAY(SELECT a.attname::text FROM unnest(i.indkey) WITH ORDINALITY k(n, o) \
                        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o) \
                ELSE ARRAY[]::text[] END \
         FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid \
         WHERE NOT EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = i.indexrelid \
                           AND con.contype IN ('p', 'u', 'x')) \
         ORDER BY i.indrelid, ic.relname";
    for row in sqlx::query(indexes_sql)
        .fetch_all(&mut *conn)
        .await
        .map_err(e())?
    {
        let oid: i64 = row.try_get(0).map_err(e())?;
        let Some(&ti) = by_oid.get(&oid) else {
            continue;
        };
        tables[ti].indexes.push(Index {
            name: s(&row, 1),
            unique: row.try_get(2).unwrap_or(false),
            definition: os(&row, 3),
            columns: row.try_get(4).unwrap_or_default(),
        });
    }

    let sequences_sql = format!(
        "SELECT n.nspname::text, c.relname::text, s.last_value, s.increment_by, \
                tn.nspname::text, tc.relname::text, a.attname::text \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_sequences s ON s.schemaname = n.nspname AND s.sequencename = c.relname \
         LEFT JOIN pg_depend d ON d.objid = c.oid AND d.classid = 'pg_class'::regclass \
              AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') \
         LEFT JOIN pg_class tc ON tc.oid = d.refobjid \
         LEFT JOIN pg_namespace tn ON tn.oid = tc.relnamespace \
         LEFT JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid \
         WHERE c.relkind = 'S' AND {USER_NAMESPACES} ORDER BY 1, 2"
    );
    let mut sequences = Vec::new();
    for row in sqlx::query(&sequences_sql)
        .fetch_all(&mut *conn)
        .await
        .map_err(e())?
    {
        let owned_by = match (os(&row, 5), os(&row, 6)) {
            (Some(t), Some(c)) => Some((TableName::new(os(&row, 4).and_then(ns), t), c)),
            _ => None,
        };
        sequences.push(Sequence {
            name: TableName::new(ns(s(&row, 0)), s(&row, 1)),
            last_value: row.try_get::<Option<i64>, _>(2).ok().flatten(),
            increment: row.try_get::<Option<i64>, _>(3).ok().flatten(),
            owned_by,
        });
    }

    let views_sql = format!(
        "SELECT n.nspname::text, c.relname::text, pg_get_viewdef(c.oid) \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('v', 'm') AND {USER_NAMESPACES} ORDER BY 1, 2"
    );
    let views = sqlx::query(&views_sql)
        .fetch_all(&mut *conn)
        .await
        .map_err(e())?
        .iter()
        .map(|row| View {
            name: TableName::new(ns(s(row, 0)), s(row, 1)),
            definition: s(row, 2),
        })
        .collect();

    Ok(Schema {
        tables,
        views,
        sequences,
    })
}

/// The logical type of a PostgreSQL base type (domains are resolved to their base first).
pub(crate) fn pg_logical(base: &str, typtype: &str, category: &str) -> LogicalType {
    use LogicalType as L;
    if category == "A" {
        return L::Other;
    }
    if typtype == "e" {
        return L::Text;
    }
    match base {
        "bool" => L::Bool,
        "int2" | "int4" | "int8" => L::Int,
        "numeric" => L::Decimal,
        "float4" => L::Float32,
        "float8" => L::Float64,
        "text" | "varchar" | "citext" | "name" | "char" | "xml" => L::Text,
        "bpchar" => L::FixedText,
        "bytea" => L::Bytes,
        "date" => L::Date,
        "time" => L::Time,
        "timestamp" => L::Timestamp,
        "timestamptz" => L::TimestampTz,
        "uuid" => L::Uuid,
        "json" | "jsonb" => L::Json,
        _ => L::Other,
    }
}

fn typmod_parts(base: &str, typmod: i32) -> (Option<u32>, Option<u32>, Option<u32>) {
    if typmod < 0 {
        return (None, None, None);
    }
    let m = u32::try_from(typmod).unwrap_or(0);
    match base {
        "varchar" | "bpchar" => (Some(m.saturating_sub(4)), None, None),
        "numeric" => {
            let v = m.saturating_sub(4);
            (None, Some(v >> 16), Some(v & 0xffff))
        }
        "time" | "timestamp" | "timestamptz" => (None, Some(m), None),
        _ => (None, None, None),
    }
}

fn fk_action(code: &str) -> Option<String> {
    match code {
        "c" => Some("CASCADE".into()),
        "n" => Some("SET NULL".into()),
        "d" => Some("SET DEFAULT".into()),
        "r" => Some("RESTRICT".into()),
        _ => None,
    }
}
