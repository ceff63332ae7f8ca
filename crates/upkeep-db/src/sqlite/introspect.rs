//! SQLite schema introspection from sqlite_schema and the table pragmas.

use rusqlite::Connection;
use upkeep_core::{
    Check, Column, ForeignKey, Identity, Index, Key, LogicalType, Schema, Sequence, Table,
    TableKind, TableName, View,
};

use super::map_err;
use crate::{DbError, Target};

pub(crate) fn introspect(conn: &Connection, target: &Target) -> Result<Schema, DbError> {
    let path = target.sqlite_path().expect("a SQLite target has a path");
    let e = |err| map_err(err, path, "reading the schema");
    let mut tables = Vec::new();
    let mut views = Vec::new();
    let mut stmt = conn
        .prepare(
            "SELECT type, name, coalesce(sql, '') FROM sqlite_schema \
             WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
        )
        .map_err(e)?;
    let objects: Vec<(String, String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .map_err(e)?
        .collect::<Result<_, _>>()
        .map_err(e)?;
    for (kind, name, sql) in objects {
        if kind == "view" {
            views.push(View {
                name: TableName::unqualified(name),
                definition: sql,
            });
            continue;
        }
        if sql.to_ascii_uppercase().starts_with("CREATE VIRTUAL TABLE") {
            continue;
        }
        tables.push(table(conn, &name, &sql).map_err(e)?);
    }
    let mut sequences = Vec::new();
    let has_seq: bool = conn
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name = 'sqlite_sequence'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_err(e)?
        > 0;
    if has_seq {
        let mut stmt = conn
            .prepare("SELECT name, seq FROM sqlite_sequence ORDER BY name")
            .map_err(e)?;
        let rows: Vec<(String, i64)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(e)?
            .collect::<Result<_, _>>()
            .map_err(e)?;
        for (table_name, seq) in rows {
            let owner = tables.iter().find(|t: &&Table| t.name.name == table_name);
            let col = owner.and_then(|t| t.columns.iter().find(|c| c.identity.is_some()));
            sequences.push(Sequence {
                name: TableName::unqualified(table_name.clone()),
                last_value: Some(seq),
                increment: Some(1),
                owned_by: col.map(|c| (TableName::unqualified(table_name.clone()), c.name.clone())),
            });
        }
    }
    Ok(Schema {
        tables,
        views,
        sequences,
    })
}

fn table(conn: &Connection, name: &str, sql: &str) -> rusqlite::Result<Table> {
    let mut columns = Vec::new();
    let mut pk: Vec<(i64, String)> = Vec::new();
    let mut stmt = conn.prepare(
        "SELECT name, type, \"notnull\", dflt_value, pk, hidden FROM pragma_table_xinfo(?1) ORDER BY cid",
    )?;
    let rows = stmt.query_map([name], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, Option<String>>(3)?,
            r.get::<_, i64>(4)?,
            r.get::<_, i64>(5)?,
        ))
    })?;
    for row in rows {
        let (col, declared, notnull, default, pk_pos, hidden) = row?;
        if hidden == 1 {
            // A virtual table's hidden column: not stored data.
            continue;
        }
        if pk_pos > 0 {
            pk.push((pk_pos, col.clone()));
        }
        let logical = LogicalType::from_sqlite_declared(&declared);
        let mut c = Column::new(col, logical);
        c.native_type = declared;
        c.nullable = notnull == 0 && pk_pos == 0;
        c.default = default;
        c.generated = matches!(hidden, 2 | 3).then(|| "generated".to_owned());
        columns.push(c);
    }
    pk.sort();
    let primary_key = (!pk.is_empty()).then(|| Key {
        name: None,
        columns: pk.into_iter().map(|(_, c)| c).collect(),
    });
    // A single INTEGER PRIMARY KEY is the rowid: SQLite hands out its values.
    if let Some(k) = &primary_key {
        if k.columns.len() == 1 {
            if let Some(c) = columns.iter_mut().find(|c| c.name == k.columns[0]) {
                if c.native_type.eq_ignore_ascii_case("INTEGER") {
                    c.identity = Some(Identity::AutoIncrement);
                }
            }
        }
    }

    let mut unique = Vec::new();
    let mut indexes = Vec::new();
    let mut stmt = conn.prepare(
        "SELECT name, \"unique\", origin, partial FROM pragma_index_list(?1) ORDER BY name",
    )?;
    let list: Vec<(String, i64, String, i64)> = stmt
        .query_map([name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<Result<_, _>>()?;
    for (index, is_unique, origin, partial) in list {
        let mut stmt =
            conn.prepare("SELECT coalesce(name, '') FROM pragma_index_info(?1) ORDER BY seqno")?;
        let cols: Vec<String> = stmt
            .query_map([&index], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let definition: Option<String> = conn
            .query_row(
                "SELECT sql FROM sqlite_schema WHERE type = 'index' AND name = ?1",
                [&index],
                |r| r.get(0),
            )
            .ok()
            .flatten();
        match origin.as_str() {
            "pk" => {}
            "u" => unique.push(Key {
                name: None,
                columns: cols,
            }),
            _ => {
                let plain = partial == 0 && cols.iter().all(|c| !c.is_empty());
                indexes.push(Index {
                    name: index,
                    columns: if plain { cols } else { Vec::new() },
                    unique: is_unique != 0,
                    definition,
                });
            }
        }
    }

    let mut foreign_keys: Vec<(i64, ForeignKey)> = Vec::new();
    let mut stmt = conn.prepare(
        "SELECT id, \"table\", \"from\", coalesce(\"to\", ''), on_update, on_delete \
         FROM pragma_foreign_key_list(?1) ORDER BY id, seq",
    )?;
    let fks: Vec<(i64, String, String, String, String, String)> = stmt
        .query_map([name], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })?
        .collect::<Result<_, _>>()?;
    for (id, refd, from, to, on_update, on_delete) in fks {
        let action = |a: String| (a != "NO ACTION" && a != "RESTRICT").then_some(a);
        match foreign_keys.last_mut() {
            Some((last, fk)) if *last == id => {
                fk.columns.push(from);
                fk.referenced_columns.push(to);
            }
            _ => foreign_keys.push((
                id,
                ForeignKey {
                    name: None,
                    columns: vec![from],
                    references: TableName::unqualified(refd),
                    referenced_columns: vec![to],
                    on_delete: action(on_delete),
                    on_update: action(on_update),
                },
            )),
        }
    }
    // An FK that names no columns refers to the parent's primary key.
    Ok(Table {
        name: TableName::unqualified(name),
        kind: TableKind::Table,
        columns,
        primary_key,
        unique,
        indexes,
        foreign_keys: foreign_keys.into_iter().map(|(_, fk)| fk).collect(),
        checks: checks_in(sql),
        estimated_rows: None,
        comment: None,
        partition_of: None,
    })
}

/// CHECK constraints from a CREATE TABLE statement (SQLite keeps them nowhere else).
pub(crate) fn checks_in(sql: &str) -> Vec<Check> {
    let bytes = sql.as_bytes();
    let mut checks = Vec::new();
    let mut i = 0;
    let mut quote: Option<u8> = None;
    let mut last_constraint: Option<String> = None;
    while i < bytes.len() {
        let c = bytes[i];
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            i += 1;
            continue;
        }
        match c {
            b'\'' | b'"' | b'`' => quote = Some(c),
            b'[' => quote = Some(b']'),
            _ if is_word_at(bytes, i, b"CONSTRAINT") => {
                let rest = sql[i + 10..].trim_start();
                let name: String = rest
                    .chars()
                    .take_while(|ch| !ch.is_whitespace() && *ch != '(')
                    .collect();
                last_constraint = Some(name.trim_matches(['"', '`', '[', ']']).to_owned());
                i += 10;
                continue;
            }
            _ if is_word_at(bytes, i, b"CHECK") => {
                let mut j = i + 5;
                while j < bytes.len() && bytes[j].is_ascii_whitespace() {
                    j += 1;
                }
                if bytes.get(j) == Some(&b'(') {
                    let mut depth = 0;
                    let start = j;
                    let mut q: Option<u8> = None;
                    while j < bytes.len() {
                        let ch = bytes[j];
                        match (q, ch) {
                            (Some(qq), _) if ch == qq => q = None,
                            (Some(_), _) => {}
                            (None, b'\'' | b'"' | b'`') => q = Some(ch),
                            (None, b'(') => depth += 1,
                            (None, b')') => {
                                depth -= 1;
                                if depth == 0 {
                                    break;
                                }
                            }
                            _ => {}
                        }
                        j += 1;
                    }
                    let expr = sql.get(start + 1..j).unwrap_or("").trim().to_owned();
                    checks.push(Check {
                        name: last_constraint.take(),
                        expression: expr,
                    });
                    i = j + 1;
                    continue;
                }
            }
            b',' => last_constraint = None,
            _ => {}
        }
        i += 1;
    }
    checks
}

fn is_word_at(bytes: &[u8], i: usize, word: &[u8]) -> bool {
    let end = i + word.len();
    end <= bytes.len()
        && bytes[i..end].eq_ignore_ascii_case(word)
        && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_'))
        && bytes
            .get(end)
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || *c == b'_'))
}

#[cfg(test)]
mod tests {
    use super::checks_in;

    #[test]
    fn checks_are_found_outside_quotes() {
        let sql = "CREATE TABLE t (a INT CHECK (a > 0), \"check me\" TEXT DEFAULT 'CHECK (x)', \
                   CONSTRAINT pos CHECK (length(b) < (10)), b TEXT)";
        let checks = checks_in(sql);
        assert_eq!(checks.len(), 2, "{checks:?}");
        assert_eq!(checks[0].expression, "a > 0");
        assert_eq!(checks[1].name.as_deref(), Some("pos"));
        assert_eq!(checks[1].expression, "length(b) < (10)");
    }
}
