//! SQLite DDL: the statements sqlite_schema keeps, as they were written.

use rusqlite::Connection;
use upkeep_core::{Engine, TableName};

use super::map_err;
use crate::native::NativeDdl;
use crate::quote;
use crate::{DbError, Target};

pub(crate) fn native_ddl(
    conn: &Connection,
    target: &Target,
    tables: &[TableName],
    all: bool,
) -> Result<NativeDdl, DbError> {
    let path = target.sqlite_path().expect("a SQLite target has a path");
    let e = |err| map_err(err, path, "reading the schema's DDL");
    let mut ddl = NativeDdl::new(Engine::Sqlite);
    let mut stmt = conn
        .prepare("SELECT type, name, tbl_name, sql FROM sqlite_schema WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY rowid")
        .map_err(e)?;
    let rows: Vec<(String, String, String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .map_err(e)?
        .collect::<Result<_, _>>()
        .map_err(e)?;
    let chosen = |t: &str| tables.iter().any(|x| x.name == t);
    for (kind, name, table, sql) in rows {
        match kind.as_str() {
            "table" if chosen(&name) => ddl.pre_data.push(sql),
            "index" | "trigger" if chosen(&table) => ddl.post_data.push(sql),
            "view" if all => ddl.post_data.push(sql),
            _ => {}
        }
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
            .prepare("SELECT name, seq FROM sqlite_sequence")
            .map_err(e)?;
        let seqs: Vec<(String, i64)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(e)?
            .collect::<Result<_, _>>()
            .map_err(e)?;
        for (name, seq) in seqs.into_iter().filter(|(n, _)| chosen(n)) {
            let lit = quote::literal(Engine::Sqlite, &name);
            ddl.post_data
                .push(format!("DELETE FROM sqlite_sequence WHERE name = {lit}"));
            ddl.post_data.push(format!(
                "INSERT INTO sqlite_sequence (name, seq) VALUES ({lit}, {seq})"
            ));
        }
    }
    Ok(ddl)
}
