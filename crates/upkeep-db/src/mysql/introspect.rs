//! MySQL/MariaDB schema introspection from information_schema, scoped to the URL's database.

use std::collections::HashMap;

use sqlx::mysql::{MySqlConnection, MySqlRow};
use sqlx::Executor;
use upkeep_core::{
    Check, Column, ForeignKey, Identity, Index, Key, LogicalType, Schema, Sequence, Table,
    TableKind, TableName, View,
};

use super::err;
use super::read::text;
use crate::{DbError, Target};

fn s(row: &MySqlRow, i: usize) -> String {
    text(row, i).unwrap_or_default()
}

fn num(row: &MySqlRow, i: usize) -> Option<u64> {
    text(row, i).and_then(|t| t.parse().ok())
}

pub(crate) async fn introspect(
    conn: &mut MySqlConnection,
    target: &Target,
) -> Result<Schema, DbError> {
    let e = || err(target, "reading the schema");
    let db = target.database().unwrap_or_default().to_owned();
    let ns = |schema: String| (schema != db).then_some(schema);

    let mut tables: Vec<Table> = Vec::new();
    let mut by_name: HashMap<String, usize> = HashMap::new();
    let mut sequences = Vec::new();
    let rows = conn
        .fetch_all(
            "SELECT TABLE_NAME, TABLE_ROWS, TABLE_COMMENT, AUTO_INCREMENT FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
        )
        .await
        .map_err(e())?;
    for row in rows {
        let name = s(&row, 0);
        by_name.insert(name.clone(), tables.len());
        let comment = text(&row, 2).filter(|c| !c.is_empty());
        if let Some(next) = num(&row, 3) {
            sequences.push((name.clone(), next));
        }
        tables.push(Table {
            name: TableName::unqualified(name),
            kind: TableKind::Table,
            columns: Vec::new(),
            primary_key: None,
            unique: Vec::new(),
            indexes: Vec::new(),
            foreign_keys: Vec::new(),
            checks: Vec::new(),
            estimated_rows: num(&row, 1),
            comment,
            partition_of: None,
        });
    }

    // MariaDB keeps JSON as LONGTEXT with CHECK (json_valid(`col`)); find those columns.
    let checks = match conn
        .fetch_all(
            "SELECT TABLE_NAME, CONSTRAINT_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS \
             WHERE CONSTRAINT_SCHEMA = DATABASE() ORDER BY TABLE_NAME, CONSTRAINT_NAME",
        )
        .await
    {
        Ok(rows) => rows.iter().map(|r| (s(r, 0), s(r, 1), s(r, 2))).collect(),
        // MySQL 8 has no TABLE_NAME there: join through TABLE_CONSTRAINTS.
        Err(_) => conn
            .fetch_all(
                "SELECT tc.TABLE_NAME, cc.CONSTRAINT_NAME, cc.CHECK_CLAUSE \
                 FROM information_schema.TABLE_CONSTRAINTS tc \
                 JOIN information_schema.CHECK_CONSTRAINTS cc \
                   ON cc.CONSTRAINT_SCHEMA = tc.CONSTRAINT_SCHEMA AND cc.CONSTRAINT_NAME = tc.CONSTRAINT_NAME \
                 WHERE tc.TABLE_SCHEMA = DATABASE() AND tc.CONSTRAINT_TYPE = 'CHECK'",
            )
            .await
            .map_err(e())?
            .iter()
            .map(|r| (s(r, 0), s(r, 1), s(r, 2)))
            .collect::<Vec<_>>(),
    };
    let mut json_columns: Vec<(String, String)> = Vec::new();
    for (table, name, clause) in &checks {
        let compact: String = clause.chars().filter(|c| !c.is_whitespace()).collect();
        if let Some(col) = compact
            .strip_prefix("json_valid(`")
            .and_then(|r| r.strip_suffix("`)"))
        {
            json_columns.push((table.clone(), col.replace("``", "`")));
            continue;
        }
        if let Some(&ti) = by_name.get(table) {
            tables[ti].checks.push(Check {
                name: Some(name.clone()),
                expression: clause.clone(),
            });
        }
    }

    let rows = conn
        .fetch_all(
            "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, DATA_TYPE, IS_NULLABLE, COLUMN_DEFAULT, EXTRA, \
                    GENERATION_EXPRESSION, CHARACTER_MAXIMUM_LENGTH, NUMERIC_PRECISION, NUMERIC_SCALE, \
                    DATETIME_PRECISION \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() \
             ORDER BY TABLE_NAME, ORDINAL_POSITION",
        )
        .await
        .map_err(e())?;
    for row in rows {
        let table = s(&row, 0);
        let Some(&ti) = by_name.get(&table) else {
            continue;
        };
        let name = s(&row, 1);
        let column_type = s(&row, 2);
        let data_type = s(&row, 3).to_ascii_lowercase();
        let is_json = json_columns.iter().any(|(t, c)| t == &table && c == &name);
        let logical = if is_json {
            LogicalType::Json
        } else {
            my_logical(&data_type, &column_type)
        };
        let extra = s(&row, 6).to_ascii_lowercase();
        let generated = text(&row, 7).filter(|g| !g.is_empty());
        let length = num(&row, 8).and_then(|v| u32::try_from(v).ok());
        let (precision, scale) = if matches!(data_type.as_str(), "decimal" | "numeric") {
            (
                num(&row, 9).and_then(|v| u32::try_from(v).ok()),
                num(&row, 10).and_then(|v| u32::try_from(v).ok()),
            )
        } else if matches!(data_type.as_str(), "time" | "datetime" | "timestamp") {
            (num(&row, 11).and_then(|v| u32::try_from(v).ok()), None)
        } else {
            (None, None)
        };
        tables[ti].columns.push(Column {
            name,
            native_type: column_type.clone(),
            logical,
            nullable: s(&row, 4) == "YES",
            default: text(&row, 5),
            identity: extra
                .contains("auto_increment")
                .then_some(Identity::AutoIncrement),
            generated,
            length,
            precision,
            scale,
            unsigned: column_type.contains("unsigned"),
        });
    }

    let rows = conn
        .fetch_all(
            "SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, COLUMN_NAME FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX",
        )
        .await
        .map_err(e())?;
    let mut indexes: Vec<(String, String, bool, Vec<String>)> = Vec::new();
    for row in rows {
        let (table, index, non_unique, column) =
            (s(&row, 0), s(&row, 1), s(&row, 2) != "0", s(&row, 3));
        match indexes.last_mut() {
            Some(last) if last.0 == table && last.1 == index => last.3.push(column),
            _ => indexes.push((table, index, !non_unique, vec![column])),
        }
    }
    for (table, index, unique, columns) in indexes {
        let Some(&ti) = by_name.get(&table) else {
            continue;
        };
        let t = &mut tables[ti];
        if index == "PRIMARY" {
            t.primary_key = Some(Key {
                name: None,
                columns,
            });
        } else if unique {
            t.unique.push(Key {
                name: Some(index),
                columns,
            });
        } else {
            t.indexes.push(Index {
                name: index,
                columns,
                unique: false,
                definition: None,
            });
        }
    }

    let rows = conn
        .fetch_all(
            "SELECT kcu.TABLE_NAME, kcu.CONSTRAINT_NAME, kcu.COLUMN_NAME, kcu.REFERENCED_TABLE_SCHEMA, \
                    kcu.REFERENCED_TABLE_NAME, kcu.REFERENCED_COLUMN_NAME, rc.DELETE_RULE, rc.UPDATE_RULE \
             FROM information_schema.KEY_COLUMN_USAGE kcu \
             JOIN information_schema.REFERENTIAL_CONSTRAINTS rc \
               ON rc.CONSTRAINT_SCHEMA = kcu.CONSTRAINT_SCHEMA AND rc.CONSTRAINT_NAME = kcu.CONSTRAINT_NAME \
              AND rc.TABLE_NAME = kcu.TABLE_NAME \
             WHERE kcu.TABLE_SCHEMA = DATABASE() AND kcu.REFERENCED_TABLE_NAME IS NOT NULL \
             ORDER BY kcu.TABLE_NAME, kcu.CONSTRAINT_NAME, kcu.ORDINAL_POSITION",
        )
        .await
        .map_err(e())?;
    for row in rows {
        let Some(&ti) = by_name.get(&s(&row, 0)) else {
            continue;
        };
        let name = s(&row, 1);
        let t = &mut tables[ti];
        match t.foreign_keys.last_mut() {
            Some(fk) if fk.name.as_deref() == Some(name.as_str()) => {
                fk.columns.push(s(&row, 2));
                fk.referenced_columns.push(s(&row, 5));
            }
            _ => t.foreign_keys.push(ForeignKey {
                name: Some(name),
                columns: vec![s(&row, 2)],
                references: TableName::new(ns(s(&row, 3)), s(&row, 4)),
                referenced_columns: vec![s(&row, 5)],
                on_delete: text(&row, 6).filter(|r| r != "RESTRICT" && r != "NO ACTION"),
                on_update: text(&row, 7).filter(|r| r != "RESTRICT" && r != "NO ACTION"),
            }),
        }
    }

    let views = conn
        .fetch_all(
            "SELECT TABLE_NAME, VIEW_DEFINITION FROM information_schema.VIEWS \
             WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME",
        )
        .await
        .map_err(e())?
        .iter()
        .map(|r| View {
            name: TableName::unqualified(s(r, 0)),
            definition: s(r, 1),
        })
        .collect();

    let sequences = sequences
        .into_iter()
        .filter_map(|(table, next)| {
            let t = &tables[*by_name.get(&table)?];
            let col = t
                .columns
                .iter()
                .find(|c| c.identity == Some(Identity::AutoIncrement))?;
            Some(Sequence {
                name: TableName::unqualified(format!("{table}.{}", col.name)),
                last_value: i64::try_from(next).ok().map(|n| n - 1).filter(|&n| n > 0),
                increment: Some(1),
                owned_by: Some((t.name.clone(), col.name.clone())),
            })
        })
        .collect();

    Ok(Schema {
        tables,
        views,
        sequences,
    })
}

/// The logical type of a MySQL/MariaDB column from information_schema's DATA_TYPE and
/// COLUMN_TYPE.
pub(crate) fn my_logical(data_type: &str, column_type: &str) -> LogicalType {
    use LogicalType as L;
    let column_type = column_type.to_ascii_lowercase();
    match data_type {
        "tinyint" if column_type.starts_with("tinyint(1)") => L::Bool,
        "bool" | "boolean" => L::Bool,
        "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" | "year" => L::Int,
        "decimal" | "numeric" => L::Decimal,
        "float" => L::Float32,
        "double" | "real" | "double precision" => L::Float64,
        "char" => L::FixedText,
        "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" | "enum" | "set" => L::Text,
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => L::Bytes,
        "date" => L::Date,
        "time" => L::Time,
        "datetime" => L::Timestamp,
        "timestamp" => L::TimestampTz,
        "json" => L::Json,
        "uuid" => L::Uuid,
        _ => L::Other,
    }
}
