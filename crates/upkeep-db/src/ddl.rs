//! DDL from the neutral model: a table's native column types in each engine (the core's type
//! mapping), CREATE TABLE, and the indexes and foreign keys added after a bulk load.

use upkeep_core::{Column, Engine, LogicalType, Table};

use crate::quote;

/// The native type of `column` in `engine`: its own declared type when it was read from that
/// engine, else the mapping of its logical type.
pub fn native_type(engine: Engine, column: &Column, same_engine: bool) -> String {
    if same_engine && !column.native_type.is_empty() {
        return column.native_type.clone();
    }
    use LogicalType as L;
    let len = column.length;
    let (p, s) = (column.precision, column.scale);
    match engine {
        Engine::Postgres => match column.logical {
            L::Bool => "boolean".into(),
            L::Int => {
                if column.unsigned {
                    "numeric(20,0)".into()
                } else {
                    "bigint".into()
                }
            }
            L::Decimal => match (p, s) {
                (Some(p), Some(s)) if p <= 1000 => format!("numeric({p},{s})"),
                _ => "numeric".into(),
            },
            L::Float32 => "real".into(),
            L::Float64 => "double precision".into(),
            L::Text => len
                .filter(|&n| n <= 10_485_760)
                .map_or("text".into(), |n| format!("varchar({n})")),
            L::FixedText => len.map_or("char(1)".into(), |n| format!("char({n})")),
            L::Bytes => "bytea".into(),
            L::Date => "date".into(),
            L::Time => "time(6)".into(),
            L::Timestamp => "timestamp(6)".into(),
            L::TimestampTz => "timestamptz(6)".into(),
            L::Uuid => "uuid".into(),
            L::Json => "jsonb".into(),
            L::Other => "text".into(),
        },
        Engine::Mysql => match column.logical {
            L::Bool => "tinyint(1)".into(),
            L::Int => {
                if column.unsigned {
                    "bigint unsigned".into()
                } else {
                    "bigint".into()
                }
            }
            L::Decimal => match (p, s) {
                (Some(p), Some(s)) if p <= 65 && s <= 30 => format!("decimal({p},{s})"),
                _ => "decimal(65,30)".into(),
            },
            L::Float32 => "float".into(),
            L::Float64 => "double".into(),
            L::Text => len
                .filter(|&n| n <= 16_383)
                .map_or("longtext".into(), |n| format!("varchar({n})")),
            L::FixedText => len
                .filter(|&n| n <= 255)
                .map_or("varchar(255)".into(), |n| format!("char({n})")),
            L::Bytes => "longblob".into(),
            L::Date => "date".into(),
            L::Time => "time(6)".into(),
            L::Timestamp => "datetime(6)".into(),
            L::TimestampTz => "timestamp(6) NULL".into(),
            L::Uuid => "uuid".into(),
            L::Json => "json".into(),
            L::Other => "longtext".into(),
        },
        Engine::Sqlite => match column.logical {
            L::Bool => "BOOLEAN".into(),
            L::Int => "INTEGER".into(),
            L::Decimal => match (p, s) {
                (Some(p), Some(s)) => format!("DECIMAL({p},{s})"),
                _ => "DECIMAL".into(),
            },
            L::Float32 => "FLOAT".into(),
            L::Float64 => "DOUBLE".into(),
            L::Text => len.map_or("TEXT".into(), |n| format!("VARCHAR({n})")),
            L::FixedText => len.map_or("CHAR".into(), |n| format!("CHAR({n})")),
            L::Bytes => "BLOB".into(),
            L::Date => "DATE".into(),
            L::Time => "TIME".into(),
            L::Timestamp => "DATETIME".into(),
            // SQLite has no zone type: the canonical UTC text (`…Z`) is kept as TEXT.
            L::TimestampTz => "TEXT".into(),
            L::Uuid => "UUID".into(),
            L::Json => "JSON".into(),
            L::Other => "TEXT".into(),
        },
    }
}

/// CREATE TABLE with columns, primary and unique keys (and, for SQLite, which cannot add
/// them later, foreign keys and checks).
pub fn create_table(engine: Engine, table: &Table, same_engine: bool) -> String {
    let mut parts: Vec<String> = table
        .columns
        .iter()
        .map(|c| {
            let mut def = format!(
                "{} {}",
                quote::ident(engine, &c.name),
                native_type(engine, c, same_engine)
            );
            if !c.nullable {
                def.push_str(" NOT NULL");
            }
            def
        })
        .collect();
    if let Some(pk) = &table.primary_key {
        parts.push(format!(
            "PRIMARY KEY ({})",
            quote::ident_list(engine, &pk.columns)
        ));
    }
    for u in &table.unique {
        parts.push(format!(
            "UNIQUE ({})",
            quote::ident_list(engine, &u.columns)
        ));
    }
    if engine == Engine::Sqlite {
        for fk in &table.foreign_keys {
            parts.push(foreign_key_clause(engine, fk));
        }
    }
    let suffix = if engine == Engine::Mysql {
        " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
    } else {
        ""
    };
    format!(
        "CREATE TABLE {} (\n  {}\n){suffix}",
        quote::table(engine, &table.name),
        parts.join(",\n  ")
    )
}

fn foreign_key_clause(engine: Engine, fk: &upkeep_core::ForeignKey) -> String {
    let mut s = format!(
        "FOREIGN KEY ({}) REFERENCES {} ({})",
        quote::ident_list(engine, &fk.columns),
        quote::table(engine, &fk.references),
        quote::ident_list(engine, &fk.referenced_columns)
    );
    if let Some(a) = &fk.on_delete {
        s.push_str(&format!(" ON DELETE {a}"));
    }
    if let Some(a) = &fk.on_update {
        s.push_str(&format!(" ON UPDATE {a}"));
    }
    s
}

/// Statements that add a table's secondary indexes and (except SQLite) foreign keys, to run
/// after its data is loaded.
pub fn post_load(engine: Engine, table: &Table) -> Vec<String> {
    let mut out = Vec::new();
    for idx in table.indexes.iter().filter(|i| !i.columns.is_empty()) {
        out.push(format!(
            "CREATE {}INDEX {} ON {} ({})",
            if idx.unique { "UNIQUE " } else { "" },
            quote::ident(engine, &idx.name),
            quote::table(engine, &table.name),
            quote::ident_list(engine, &idx.columns)
        ));
    }
    if engine != Engine::Sqlite {
        for fk in &table.foreign_keys {
            out.push(format!(
                "ALTER TABLE {} ADD {}",
                quote::table(engine, &table.name),
                foreign_key_clause(engine, fk)
            ));
        }
    }
    out
}
