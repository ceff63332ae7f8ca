//! PostgreSQL DDL from the catalogs, for a same-engine restore. The server's own `pg_get_*`
//! functions render every definition, so types, defaults and expressions come out as the
//! server would print them.

use sqlx::postgres::{PgConnection, PgRow};
use sqlx::Row;
use upkeep_core::{Engine, TableName};

use super::err;
use crate::native::{selected, NativeDdl};
use crate::quote;
use crate::{DbError, Target};

const USER_NS: &str =
    "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_)'";
const NOT_EXTENSION: &str =
    "NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = {oid} AND d.deptype = 'e')";

fn s(row: &PgRow, i: usize) -> String {
    row.try_get::<Option<String>, _>(i)
        .ok()
        .flatten()
        .unwrap_or_default()
}

fn os(row: &PgRow, i: usize) -> Option<String> {
    row.try_get::<Option<String>, _>(i).ok().flatten()
}

fn qn(schema: &str, name: &str) -> String {
    format!(
        "{}.{}",
        quote::ident(Engine::Postgres, schema),
        quote::ident(Engine::Postgres, name)
    )
}

fn ns_of(schema: &str) -> Option<&str> {
    (schema != "public").then_some(schema)
}

pub(crate) async fn native_ddl(
    conn: &mut PgConnection,
    target: &Target,
    tables: &[TableName],
    all: bool,
) -> Result<NativeDdl, DbError> {
    let e = || err(target, "reading the schema's DDL");
    let mut ddl = NativeDdl::new(Engine::Postgres);
    let q = |sql: &str| {
        sql.replace("{USER_NS}", USER_NS)
            .replace("{NOT_EXT_TYPE}", &NOT_EXTENSION.replace("{oid}", "t.oid"))
    };

    // Schemas.
    for row in sqlx::query(&q("SELECT n.nspname::text FROM pg_namespace n WHERE {USER_NS} AND n.nspname <> 'public' ORDER BY 1"))
        .fetch_all(&mut *conn)
        .await
        .map_err(e())?
    {
        ddl.pre_data.push(format!("CREATE SCHEMA IF NOT EXISTS {}", quote::ident(Engine::Postgres, &s(&row, 0))));
    }
    // Extensions, before the types, tables and indexes that use them; what they create is
    // theirs and left out below. The target installs its own default version.
    for row in sqlx::query(
        "SELECT e.extname::text, n.nspname::text FROM pg_extension e \
                            JOIN pg_namespace n ON n.oid = e.extnamespace \
                            WHERE e.extname <> 'plpgsql' ORDER BY e.oid",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(e())?
    {
        ddl.pre_data.push(format!(
            "CREATE EXTENSION IF NOT EXISTS {} WITH SCHEMA {}",
            quote::ident(Engine::Postgres, &s(&row, 0)),
            quote::ident(Engine::Postgres, &s(&row, 1))
        ));
    }
    ddl.pre_data
        .push("SET check_function_bodies = false".into());

    // Enum types and domains.
    let enums = q("SELECT n.nspname::text, t.typname::text, \
                   array_agg(quote_literal(e.enumlabel) ORDER BY e.enumsortorder)::text[] \
                   FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace JOIN pg_enum e ON e.enumtypid = t.oid \
                   WHERE {USER_NS} AND {NOT_EXT_TYPE} GROUP BY 1, 2, t.oid ORDER BY t.oid");
    for row in sqlx::query(&enums)
        .fetch_all(&mut *conn)
        .await
        .map_err(e())?
    {
        let labels: Vec<String> = row.try_get(2).unwrap_or_default();
        ddl.pre_data.push(format!(
            "CREATE TYPE {} AS ENUM ({})",
            qn(&s(&row, 0), &s(&row, 1)),
            labels.join(", ")
        ));
    }
    let domains = q("SELECT n.nspname::text, t.typname::text, format_type(t.typbasetype, t.typtypmod), t.typnotnull, t.typdefault, \
                     (SELECT string_agg('CONSTRAINT ' || quote_ident(c.conname) || ' ' || pg_get_constraintdef(c.oid), ' ' ORDER BY c.conname) \
                      FROM pg_constraint c WHERE c.contypid = t.oid) \
                     FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
                     WHERE t.typtype = 'd' AND {USER_NS} AND {NOT_EXT_TYPE} ORDER BY t.oid");
    for row in sqlx::query(&domains)
        .fetch_all(&mut *conn)
        .await
        .map_err(e())?
    {
        let mut stmt = format!(
            "CREATE DOMAIN {} AS {}",
            qn(&s(&row, 0), &s(&row, 1)),
            s(&row, 2)
        );
        if let Some(d) = os(&row, 4) {
            stmt.push_str(&format!(" DEFAULT {d}"));
        }
        if row.try_get::<bool, _>(3).unwrap_or(false) {
            stmt.push_str(" NOT NULL");
        }
        if let Some(c) = os(&row, 5) {
            stmt.push_str(&format!(" {c}"));
        }
        ddl.pre_data.push(stmt);
    }

    // Sequences that are not identity sequences.
    let seqs = q("SELECT n.nspname::text, c.relname::text, format_type(s.seqtypid, NULL), s.seqincrement, s.seqmin, s.seqmax, \
                  s.seqstart, s.seqcache, s.seqcycle, c.oid::int8 \
                  FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
                  WHERE {USER_NS} AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('i', 'e')) ORDER BY c.oid");
    let mut seq_names = Vec::new();
    for row in sqlx::query(&seqs)
        .fetch_all(&mut *conn)
        .await
        .map_err(e())?
    {
        let name = qn(&s(&row, 0), &s(&row, 1));
        let num = |i| row.try_get::<i64, _>(i).unwrap_or_default();
        ddl.pre_data.push(format!(
            "CREATE SEQUENCE {name} AS {} INCREMENT BY {} MINVALUE {} MAXVALUE {} START WITH {} CACHE {}{}",
            s(&row, 2),
            num(3),
            num(4),
            num(5),
            num(6),
            num(7),
            if row.try_get::<bool, _>(8).unwrap_or(false) { " CYCLE" } else { "" }
        ));
        seq_names.push(name);
    }

    // Functions and procedures (trigger functions included), before the tables whose
    // defaults may call them.
    let funcs = format!(
        "SELECT pg_get_functiondef(p.oid) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
         WHERE {USER_NS} AND p.prokind IN ('f', 'p') AND {} ORDER BY p.oid",
        NOT_EXTENSION.replace("{oid}", "p.oid")
    );
    for row in sqlx::query(&funcs)
        .fetch_all(&mut *conn)
        .await
        .map_err(e())?
    {
        ddl.pre_data.push(s(&row, 0));
    }

    // Tables, in creation order (partitions after their parents).
    let tables_sql = format!(
        "SELECT c.oid::int8, n.nspname::text, c.relname::text, c.relkind::text, c.relispartition, \
                CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END, \
                CASE WHEN c.relispartition THEN (SELECT quote_ident(pn.nspname) || '.' || quote_ident(pc.relname) \
                     FROM pg_inherits i JOIN pg_class pc ON pc.oid = i.inhparent JOIN pg_namespace pn ON pn.oid = pc.relnamespace \
                     WHERE i.inhrelid = c.oid) END, \
                CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END, \
                obj_description(c.oid, 'pg_class') \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p') AND {USER_NS} AND {} ORDER BY c.relispartition, c.oid",
        NOT_EXTENSION.replace("{oid}", "c.oid")
    );
    let table_rows = sqlx::query(&tables_sql)
        .fetch_all(&mut *conn)
        .await
        .map_err(e())?;
    let table_rows: Vec<_> = table_rows
        .into_iter()
        .filter(|row| selected(tables, ns_of(&s(row, 1)), &s(row, 2)))
        .collect();
    let oids = table_rows
        .iter()
        .map(|row| row.try_get::<i64, _>(0))
        .collect::<Result<Vec<i64>, _>>()
        .map_err(e())?;
    let mut columns_of = columns(conn, target, &oids).await?;
    for (row, oid) in table_rows.iter().zip(&oids) {
        let (schema, name) = (s(row, 1), s(row, 2));
        let full = qn(&schema, &name);
        if row.try_get::<bool, _>(4).unwrap_or(false) {
            let mut stmt = format!(
                "CREATE TABLE {full} PARTITION OF {} {}",
                s(row, 6),
                s(row, 7)
            );
            // A partition partitioned in turn.
            if let Some(part) = os(row, 5) {
                stmt.push_str(&format!(" PARTITION BY {part}"));
            }
            ddl.pre_data.push(stmt);
        } else {
            let cols = columns_of.remove(oid).unwrap_or_default();
            let mut stmt = format!("CREATE TABLE {full} (\n  {}\n)", cols.join(",\n  "));
            if let Some(part) = os(row, 5) {
                stmt.push_str(&format!(" PARTITION BY {part}"));
            }
            ddl.pre_data.push(stmt);
        }
        if let Some(c) = os(row, 8) {
            ddl.post_data.push(format!(
                "COMMENT ON TABLE {full} IS {}",
                quote::literal(Engine::Postgres, &c)
            ));
        }
    }
    if oids.is_empty() && !all {
        return Ok(ddl);
    }
    let oid_list = if oids.is_empty() {
        "0".to_owned()
    } else {
        oids.iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };

    // After the data, as pg_restore does: primary keys, then unique, check and exclusion
    // constraints, indexes, and foreign keys last.
    let cons = format!(
        "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), con.conname::text, con.contype::text, \
                pg_get_constraintdef(con.oid) \
         FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE con.conrelid IN ({oid_list}) AND con.contype IN ('p', 'u', 'c', 'x', 'f') AND con.conislocal \
         ORDER BY CASE con.contype WHEN 'p' THEN 0 ELSE 1 END, con.conrelid, con.conname"
    );
    // Foreign keys must come after the unique constraints and indexes they reference.
    let mut foreign_keys = Vec::new();
    for row in sqlx::query(&cons)
        .fetch_all(&mut *conn)
        .await
        .map_err(e())?
    {
        let stmt = format!(
            "ALTER TABLE {} ADD CONSTRAINT {} {}",
            s(&row, 0),
            quote::ident(Engine::Postgres, &s(&row, 1)),
            s(&row, 3)
        );
        if s(&row, 2) == "f" {
            foreign_keys.push(stmt);
        } else {
            ddl.post_data.push(stmt);
        }
    }
    let idx = format!(
        "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i \
         WHERE i.indrelid IN ({oid_list}) AND NOT EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = i.indexrelid) \
         AND NOT EXISTS (SELECT 1 FROM pg_inherits inh WHERE inh.inhrelid = i.indexrelid) ORDER BY i.indexrelid"
    );
    for row in sqlx::query(&idx).fetch_all(&mut *conn).await.map_err(e())? {
        ddl.post_data.push(s(&row, 0));
    }
    ddl.post_data.extend(foreign_keys);

    // Sequence positions, ownership, identity positions.
    for name in &seq_names {
        let row = sqlx::query(&format!("SELECT last_value, is_called FROM {name}"))
            .fetch_one(&mut *conn)
            .await
            .map_err(e())?;
        let last: i64 = row.try_get(0).unwrap_or(1);
        let called: bool = row.try_get(1).unwrap_or(false);
        ddl.post_data.push(format!(
            "SELECT setval({}, {last}, {called})",
            quote::literal(Engine::Postgres, name)
        ));
    }
    let owned = q("SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), \
                   quote_ident(tn.nspname) || '.' || quote_ident(t.relname), quote_ident(a.attname), d.deptype::text, t.oid::int8 \
                   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                   JOIN pg_depend d ON d.objid = c.oid AND d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass \
                   JOIN pg_class t ON t.oid = d.refobjid JOIN pg_namespace tn ON tn.oid = t.relnamespace \
                   JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid \
                   WHERE c.relkind = 'S' AND d.deptype IN ('a', 'i') AND {USER_NS}");
    for row in sqlx::query(&owned)
        .fetch_all(&mut *conn)
        .await
        .map_err(e())?
    {
        let table_oid: i64 = row.try_get(4).unwrap_or(0);
        if !oids.contains(&table_oid) {
            continue;
        }
        if s(&row, 3) == "a" {
            ddl.post_data.push(format!(
                "ALTER SEQUENCE {} OWNED BY {}.{}",
                s(&row, 0),
                s(&row, 1),
                s(&row, 2)
            ));
        } else {
            // An identity column's sequence: restore its position.
            let pos = sqlx::query(&format!("SELECT last_value, is_called FROM {}", s(&row, 0)))
                .fetch_one(&mut *conn)
                .await
                .map_err(e())?;
            let last: i64 = pos.try_get(0).unwrap_or(1);
            let called: bool = pos.try_get(1).unwrap_or(false);
            ddl.post_data.push(format!(
                "SELECT setval(pg_get_serial_sequence({}, {}), {last}, {called})",
                quote::literal(Engine::Postgres, &s(&row, 1)),
                quote::literal(
                    Engine::Postgres,
                    &s(&row, 2).trim_matches('"').replace("\"\"", "\"")
                )
            ));
        }
    }

    // Column comments.
    let col_comments = format!(
        "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) || '.' || quote_ident(a.attname), \
                col_description(c.oid, a.attnum) \
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.oid IN ({oid_list}) AND a.attnum > 0 AND NOT a.attisdropped AND col_description(c.oid, a.attnum) IS NOT NULL"
    );
    for row in sqlx::query(&col_comments)
        .fetch_all(&mut *conn)
        .await
        .map_err(e())?
    {
        ddl.post_data.push(format!(
            "COMMENT ON COLUMN {} IS {}",
            s(&row, 0),
            quote::literal(Engine::Postgres, &s(&row, 1))
        ));
    }

    if all {
        let views = q("SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), c.relkind::text, pg_get_viewdef(c.oid) \
                       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                       WHERE c.relkind IN ('v', 'm') AND {USER_NS} ORDER BY c.oid");
        for row in sqlx::query(&views)
            .fetch_all(&mut *conn)
            .await
            .map_err(e())?
        {
            let def = s(&row, 2);
            let def = def.trim_end().trim_end_matches(';');
            if s(&row, 1) == "m" {
                ddl.post_data
                    .push(format!("CREATE MATERIALIZED VIEW {} AS {def}", s(&row, 0)));
            } else {
                ddl.post_data
                    .push(format!("CREATE VIEW {} AS {def}", s(&row, 0)));
            }
        }
    }
    // A partitioned table's row triggers are cloned onto its partitions (a 'P' dependency on
    // the parent's trigger): created on the parent, they are cloned again.
    let triggers = format!(
        "SELECT pg_get_triggerdef(t.oid) FROM pg_trigger t WHERE t.tgrelid IN ({oid_list}) AND NOT t.tgisinternal \
         AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_trigger'::regclass \
                         AND d.objid = t.oid AND d.deptype = 'P') ORDER BY t.oid"
    );
    for row in sqlx::query(&triggers)
        .fetch_all(&mut *conn)
        .await
        .map_err(e())?
    {
        ddl.post_data.push(s(&row, 0));
    }
    Ok(ddl)
}

/// Column definitions of a table, as `CREATE TABLE` wants them.
/// The column definitions of every table in `oids`, in one query.
async fn columns(
    conn: &mut PgConnection,
    target: &Target,
    oids: &[i64],
) -> Result<std::collections::HashMap<i64, Vec<String>>, DbError> {
    let sql = "SELECT a.attrelid::int8, quote_ident(a.attname), format_type(a.atttypid, a.atttypmod), a.attnotnull, \
                      pg_get_expr(d.adbin, d.adrelid), a.attidentity::text, a.attgenerated::text, \
                      CASE WHEN a.attcollation <> t.typcollation AND a.attcollation <> 0 \
                           THEN (SELECT quote_ident(cn.nspname) || '.' || quote_ident(co.collname) FROM pg_collation co \
                                 JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = a.attcollation) END \
               FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
               LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
               WHERE a.attrelid = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped \
               ORDER BY a.attrelid, a.attnum";
    let rows = sqlx::query(sql)
        .bind(oids)
        .fetch_all(&mut *conn)
        .await
        .map_err(err(target, "reading columns"))?;
    let mut out: std::collections::HashMap<i64, Vec<String>> = std::collections::HashMap::new();
    for row in &rows {
        let mut def = format!("{} {}", s(row, 1), s(row, 2));
        if let Some(coll) = os(row, 7) {
            def.push_str(&format!(" COLLATE {coll}"));
        }
        match (s(row, 5).as_str(), s(row, 6).as_str(), os(row, 4)) {
            ("a", _, _) => def.push_str(" GENERATED ALWAYS AS IDENTITY"),
            ("d", _, _) => def.push_str(" GENERATED BY DEFAULT AS IDENTITY"),
            (_, "s", Some(expr)) => def.push_str(&format!(" GENERATED ALWAYS AS ({expr}) STORED")),
            (_, _, Some(default)) => def.push_str(&format!(" DEFAULT {default}")),
            _ => {}
        }
        if row.try_get::<bool, _>(3).unwrap_or(false) {
            def.push_str(" NOT NULL");
        }
        let oid: i64 = row.try_get(0).map_err(err(target, "reading columns"))?;
        out.entry(oid).or_default().push(def);
    }
    Ok(out)
}
