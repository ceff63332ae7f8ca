//! SQLite's schema objects: the statements sqlite_schema keeps, as they were written.

use rusqlite::Connection;
use upkeep_core::{Engine, TableName};

use super::map_err;
use crate::quote;
use crate::{DbError, Target};

/// SQLite's objects: the statements `sqlite_schema` keeps, as they were written, in the order
/// they were created (tables before the data; indexes, views and triggers after it), and
/// AUTOINCREMENT counters (`sqlite_sequence`) after the data.
pub(crate) fn schema_objects(
    conn: &Connection,
    target: &Target,
) -> Result<Vec<upkeep_core::SchemaObject>, DbError> {
    use upkeep_core::{ObjectKey, ObjectKind, Phase, SchemaObject};
    let path = target.sqlite_path().expect("a SQLite target has a path");
    let e = |err| map_err(err, path, "reading the schema's objects");
    let mut stmt = conn
        .prepare(
            "SELECT type, name, tbl_name, sql FROM sqlite_schema WHERE sql IS NOT NULL \
             AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY rowid",
        )
        .map_err(e)?;
    let rows: Vec<(String, String, String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .map_err(e)?
        .collect::<Result<_, _>>()
        .map_err(e)?;
    let squeeze = |sql: &str| sql.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out = Vec::new();
    // Virtual tables keep their rows in shadow tables of their own module: named, not
    // recreated.
    let virtual_tables: Vec<String> = rows
        .iter()
        .filter(|(kind, _, _, sql)| {
            kind == "table" && sql.to_ascii_uppercase().starts_with("CREATE VIRTUAL")
        })
        .map(|(_, name, _, _)| name.clone())
        .collect();
    for (kind, name, table, sql) in &rows {
        let shadow = virtual_tables
            .iter()
            .any(|v| name != v && name.starts_with(&format!("{v}_")));
        let table_key = ObjectKey {
            kind: ObjectKind::Table,
            name: table.clone(),
        };
        let mut o = match kind.as_str() {
            "table" if virtual_tables.contains(name) || shadow => {
                let mut o = SchemaObject::new(ObjectKind::Other, format!("virtual table {name}"));
                o.definition = squeeze(sql);
                o
            }
            "table" => {
                let mut o = SchemaObject::new(ObjectKind::Table, name.clone());
                o.table = Some(TableName::unqualified(name.clone()));
                o.sql = vec![sql.clone()];
                o
            }
            "index" => {
                let mut o = SchemaObject::new(ObjectKind::Index, format!("{name} on {table}"));
                o.table = Some(TableName::unqualified(table.clone()));
                o.phase = Phase::PostData;
                o.sql = vec![sql.clone()];
                o.needs.push(table_key);
                o
            }
            "view" => {
                let mut o = SchemaObject::new(ObjectKind::View, name.clone());
                o.relation = Some(TableName::unqualified(name.clone()));
                o.phase = Phase::PostData;
                o.sql = vec![sql.clone()];
                o
            }
            "trigger" => {
                let mut o = SchemaObject::new(ObjectKind::Trigger, format!("{name} on {table}"));
                o.phase = Phase::PostData;
                o.sql = vec![sql.clone()];
                if rows.iter().any(|(k, n, _, _)| k == "table" && n == table) {
                    o.table = Some(TableName::unqualified(table.clone()));
                    o.needs.push(table_key);
                }
                o
            }
            _ => continue,
        };
        if o.definition.is_empty() {
            o.definition = squeeze(sql);
        }
        out.push(o);
    }
    let has_seq: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name = 'sqlite_sequence'",
            [],
            |r| r.get(0),
        )
        .map_err(e)?;
    if has_seq > 0 {
        let mut stmt = conn
            .prepare("SELECT name, seq FROM sqlite_sequence ORDER BY name")
            .map_err(e)?;
        let seqs: Vec<(String, i64)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(e)?
            .collect::<Result<_, _>>()
            .map_err(e)?;
        for (name, seq) in seqs {
            let lit = quote::literal(Engine::Sqlite, &name);
            let mut v = SchemaObject::new(ObjectKind::SequenceValue, name.clone());
            v.table = Some(TableName::unqualified(name.clone()));
            v.phase = Phase::PostData;
            v.definition = seq.to_string();
            v.sql = vec![
                format!("DELETE FROM sqlite_sequence WHERE name = {lit}"),
                format!("INSERT INTO sqlite_sequence (name, seq) VALUES ({lit}, {seq})"),
            ];
            v.needs.push(ObjectKey {
                kind: ObjectKind::Table,
                name,
            });
            out.push(v);
        }
    }
    Ok(out)
}
