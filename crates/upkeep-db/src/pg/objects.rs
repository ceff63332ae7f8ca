//! PostgreSQL's schema objects from the catalogs, in an order that creates them: each object
//! with the statements that create it (the server's own `pg_get_*def` where it has one), its
//! definition for the proof, and what it needs, from `pg_depend` (as pg_dump sorts).
//!
//! The session's `search_path` is empty while the objects are read, so that every name in
//! every definition comes out schema-qualified: a definition means the same in any session.

use std::collections::{BTreeMap, HashMap, HashSet};

use sqlx::postgres::{PgConnection, PgRow};
use sqlx::Row;
use upkeep_core::{Attribute, Engine, ObjectKey, ObjectKind, Phase, SchemaObject, TableName};

use super::err;
use crate::quote;
use crate::{DbError, Target};

/// Namespaces of the user's objects.
const USER_NS: &str =
    "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_|toast_temp_)'";

fn s(row: &PgRow, i: usize) -> String {
    row.try_get::<Option<String>, _>(i)
        .ok()
        .flatten()
        .unwrap_or_default()
}

fn os(row: &PgRow, i: usize) -> Option<String> {
    row.try_get::<Option<String>, _>(i).ok().flatten()
}

fn oid(row: &PgRow, i: usize) -> u32 {
    row.try_get::<i64, _>(i)
        .ok()
        .and_then(|v| u32::try_from(v).ok())
        .unwrap_or(0)
}

fn ident(name: &str) -> String {
    quote::ident(Engine::Postgres, name)
}

fn literal(value: &str) -> String {
    quote::literal(Engine::Postgres, value)
}

/// The neutral name of a table (`public` is the default namespace).
fn table_name(schema: &str, name: &str) -> TableName {
    TableName::new((schema != "public").then(|| schema.to_owned()), name)
}

/// An object being collected, with the catalog rows that stand for it in `pg_depend`.
struct Found {
    object: SchemaObject,
    /// (catalog, oid) pairs that resolve to this object.
    addresses: Vec<(&'static str, u32)>,
}

#[derive(Default)]
struct Collector {
    found: Vec<Found>,
    /// Objects that belong to an extension: (catalog, oid) → the extension's position.
    members: HashMap<(String, u32), usize>,
}

impl Collector {
    fn add(&mut self, object: SchemaObject, addresses: Vec<(&'static str, u32)>) -> usize {
        self.found.push(Found { object, addresses });
        self.found.len() - 1
    }
}

/// Reads every user object of the database. The caller chooses among them.
pub(crate) async fn schema_objects(
    conn: &mut PgConnection,
    target: &Target,
) -> Result<Vec<SchemaObject>, DbError> {
    let context = "reading the schema's objects";
    let previous: String = sqlx::query_scalar("SELECT current_setting('search_path')")
        .fetch_one(&mut *conn)
        .await
        .map_err(err(target, context))?;
    sqlx::query("SELECT set_config('search_path', '', false)")
        .execute(&mut *conn)
        .await
        .map_err(err(target, context))?;
    let result = collect(conn, target).await;
    sqlx::query("SELECT set_config('search_path', $1, false)")
        .bind(&previous)
        .execute(&mut *conn)
        .await
        .map_err(err(target, context))?;
    result
}

async fn collect(conn: &mut PgConnection, target: &Target) -> Result<Vec<SchemaObject>, DbError> {
    let mut c = Collector::default();
    extensions(conn, target, &mut c).await?;
    schemas(conn, target, &mut c).await?;
    collations(conn, target, &mut c).await?;
    types(conn, target, &mut c).await?;
    functions(conn, target, &mut c).await?;
    let tables = tables(conn, target, &mut c).await?;
    sequences(conn, target, &mut c, &tables).await?;
    views(conn, target, &mut c).await?;
    constraints(conn, target, &mut c, &tables).await?;
    indexes(conn, target, &mut c, &tables).await?;
    triggers_rules_policies(conn, target, &mut c, &tables).await?;
    statistics(conn, target, &mut c, &tables).await?;
    others(conn, target, &mut c).await?;
    let edges = dependencies(conn, target, &c).await?;
    Ok(order(c, &edges))
}

fn rows_err<'a>(target: &'a Target, what: &'a str) -> impl Fn(sqlx::Error) -> DbError + 'a {
    err(target, what)
}

/// Grants from an ACL: `REVOKE ALL … FROM PUBLIC` (and from the owner, whose privileges the
/// ACL lists), then one GRANT per privilege. `on` is `TABLE public.t`, `FUNCTION f(int)`…
async fn privileges(
    conn: &mut PgConnection,
    target: &Target,
    acl: Option<String>,
    on: &str,
    owner: &str,
) -> Result<Option<Attribute>, DbError> {
    let Some(acl) = acl else {
        return Ok(None);
    };
    let rows = sqlx::query(
        "SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END, \
                a.privilege_type, a.is_grantable \
         FROM aclexplode($1::aclitem[]) a ORDER BY 1, 2",
    )
    .bind(&acl)
    .fetch_all(&mut *conn)
    .await
    .map_err(rows_err(target, "reading privileges"))?;
    let mut sql = vec![
        format!("REVOKE ALL ON {on} FROM PUBLIC"),
        format!("REVOKE ALL ON {on} FROM {}", ident(owner)),
    ];
    for r in rows {
        let grantable = r.try_get::<bool, _>(2).unwrap_or(false);
        sql.push(format!(
            "GRANT {} ON {on} TO {}{}",
            s(&r, 1),
            s(&r, 0),
            if grantable { " WITH GRANT OPTION" } else { "" }
        ));
    }
    Ok(Some(Attribute {
        value: sorted_acl(&acl),
        sql,
    }))
}

/// An ACL's items, sorted: the order of items is the server's own business.
fn sorted_acl(acl: &str) -> String {
    let inner = acl.trim_start_matches('{').trim_end_matches('}');
    let mut items: Vec<&str> = inner.split(',').filter(|s| !s.is_empty()).collect();
    items.sort_unstable();
    items.join(",")
}

fn owner_attr(owner: &str, alter: &str) -> Option<Attribute> {
    Some(Attribute {
        value: owner.to_owned(),
        sql: vec![format!("ALTER {alter} OWNER TO {}", ident(owner))],
    })
}

fn comment_attr(comment: Option<String>, on: &str) -> Option<Attribute> {
    comment.map(|c| Attribute {
        sql: vec![format!("COMMENT ON {on} IS {}", literal(&c))],
        value: c,
    })
}

async fn extensions(
    conn: &mut PgConnection,
    target: &Target,
    c: &mut Collector,
) -> Result<(), DbError> {
    let rows = sqlx::query(
        "SELECT e.oid::int8, quote_ident(e.extname), quote_ident(n.nspname), n.oid::int8 FROM pg_extension e \
         JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname <> 'plpgsql' ORDER BY 2",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(rows_err(target, "reading extensions"))?;
    for r in &rows {
        let (name, schema) = (s(r, 1), s(r, 2));
        let mut o = SchemaObject::new(ObjectKind::Extension, name.clone());
        // The target installs its own default version: the version is not compared.
        o.definition = format!("in schema {schema}");
        o.sql = vec![format!(
            "CREATE EXTENSION IF NOT EXISTS {name} WITH SCHEMA {schema}"
        )];
        c.add(o, vec![("pg_extension", oid(r, 0))]);
    }
    // Every object an extension created is the extension's.
    let members = sqlx::query(
        "SELECT d.classid::regclass::text, d.objid::int8, quote_ident(e.extname) FROM pg_depend d \
         JOIN pg_extension e ON e.oid = d.refobjid \
         WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(rows_err(target, "reading extension members"))?;
    for m in members {
        let ext = s(&m, 2);
        if let Some(i) = c
            .found
            .iter()
            .position(|f| f.object.key.kind == ObjectKind::Extension && f.object.key.name == ext)
        {
            c.members.insert((s(&m, 0), oid(&m, 1)), i);
        }
    }
    Ok(())
}

fn is_member(c: &Collector, catalog: &str, id: u32) -> bool {
    c.members.contains_key(&(catalog.to_owned(), id))
}

async fn schemas(
    conn: &mut PgConnection,
    target: &Target,
    c: &mut Collector,
) -> Result<(), DbError> {
    let rows = sqlx::query(&format!(
        "SELECT n.oid::int8, quote_ident(n.nspname), pg_get_userbyid(n.nspowner)::text, n.nspacl::text, \
                obj_description(n.oid, 'pg_namespace') \
         FROM pg_namespace n WHERE {USER_NS} ORDER BY 2"
    ))
    .fetch_all(&mut *conn)
    .await
    .map_err(rows_err(target, "reading schemas"))?;
    for r in &rows {
        let id = oid(r, 0);
        if is_member(c, "pg_namespace", id) {
            continue;
        }
        let (q, owner) = (s(r, 1), s(r, 2));
        let mut o = SchemaObject::new(ObjectKind::Schema, q.clone());
        o.definition = "schema".into();
        o.sql = vec![format!("CREATE SCHEMA IF NOT EXISTS {q}")];
        o.owner = owner_attr(&owner, &format!("SCHEMA {q}"));
        o.privileges = privileges(conn, target, os(r, 3), &format!("SCHEMA {q}"), &owner).await?;
        o.comment = comment_attr(os(r, 4), &format!("SCHEMA {q}"));
        c.add(o, vec![("pg_namespace", id)]);
    }
    Ok(())
}

async fn collations(
    conn: &mut PgConnection,
    target: &Target,
    c: &mut Collector,
) -> Result<(), DbError> {
    // to_jsonb: the columns that name a collation's locale differ between versions.
    let rows = sqlx::query(&format!(
        "SELECT co.oid::int8, quote_ident(n.nspname), quote_ident(co.collname), to_jsonb(co)::text, \
                pg_get_userbyid(co.collowner)::text, obj_description(co.oid, 'pg_collation') \
         FROM pg_collation co JOIN pg_namespace n ON n.oid = co.collnamespace \
         WHERE {USER_NS} ORDER BY 2, 3"
    ))
    .fetch_all(&mut *conn)
    .await
    .map_err(rows_err(target, "reading collations"))?;
    for r in &rows {
        let id = oid(r, 0);
        if is_member(c, "pg_collation", id) {
            continue;
        }
        let name = format!("{}.{}", s(r, 1), s(r, 2));
        let json: serde_json::Value = serde_json::from_str(&s(r, 3)).unwrap_or_default();
        let text = |k: &str| {
            json[k]
                .as_str()
                .map(str::to_owned)
                .filter(|v| !v.is_empty())
        };
        let provider = match text("collprovider").as_deref() {
            Some("i") => "icu",
            Some("c") => "libc",
            Some("b") => "builtin",
            _ => "default",
        };
        let mut options = vec![format!("provider = {provider}")];
        let locale = text("colllocale").or_else(|| text("colliculocale"));
        match locale {
            Some(l) => options.push(format!("locale = {}", literal(&l))),
            None => {
                if let Some(v) = text("collcollate") {
                    options.push(format!("lc_collate = {}", literal(&v)));
                }
                if let Some(v) = text("collctype") {
                    options.push(format!("lc_ctype = {}", literal(&v)));
                }
            }
        }
        if let Some(rules) = text("collicurules") {
            options.push(format!("rules = {}", literal(&rules)));
        }
        if json["collisdeterministic"] == serde_json::Value::Bool(false) {
            options.push("deterministic = false".into());
        }
        let create = format!("CREATE COLLATION {name} ({})", options.join(", "));
        let mut o = SchemaObject::new(ObjectKind::Collation, name.clone());
        o.definition = create.clone();
        o.sql = vec![create];
        o.owner = owner_attr(&s(r, 4), &format!("COLLATION {name}"));
        o.comment = comment_attr(os(r, 5), &format!("COLLATION {name}"));
        c.add(o, vec![("pg_collation", id)]);
    }
    Ok(())
}

async fn types(conn: &mut PgConnection, target: &Target, c: &mut Collector) -> Result<(), DbError> {
    let rows = sqlx::query(&format!(
        "SELECT t.oid::int8, quote_ident(n.nspname), quote_ident(t.typname), t.typtype::text, t.typarray::int8, \
                pg_get_userbyid(t.typowner)::text, t.typacl::text, obj_description(t.oid, 'pg_type'), \
                t.typrelid::int8, format_type(t.typbasetype, t.typtypmod), t.typnotnull, t.typdefault, \
                (SELECT array_agg(quote_literal(e.enumlabel) ORDER BY e.enumsortorder)::text[] \
                 FROM pg_enum e WHERE e.enumtypid = t.oid), \
                (SELECT string_agg(quote_ident(a.attname) || ' ' || format_type(a.atttypid, a.atttypmod) \
                        || CASE WHEN a.attcollation <> ct.typcollation AND a.attcollation <> 0 THEN \
                           ' COLLATE ' || a.attcollation::regcollation::text ELSE '' END, ', ' ORDER BY a.attnum) \
                 FROM pg_attribute a JOIN pg_type ct ON ct.oid = a.atttypid \
                 WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped), \
                (SELECT concat_ws(', ', 'subtype = ' || format_type(r.rngsubtype, NULL), \
                        CASE WHEN r.rngcollation <> 0 THEN 'collation = ' || r.rngcollation::regcollation::text END, \
                        CASE WHEN r.rngcanonical <> 0 THEN 'canonical = ' || r.rngcanonical::regproc::text END, \
                        CASE WHEN r.rngsubdiff <> 0 THEN 'subtype_diff = ' || r.rngsubdiff::regproc::text END) \
                 FROM pg_range r WHERE r.rngtypid = t.oid), \
                (SELECT array_agg('CONSTRAINT ' || quote_ident(co.conname) || ' ' || pg_get_constraintdef(co.oid) ORDER BY co.conname)::text[] \
                 FROM pg_constraint co WHERE co.contypid = t.oid), \
                (SELECT array_agg(co.oid::int8) FROM pg_constraint co WHERE co.contypid = t.oid), \
                (SELECT r.rngmultitypid::int8 FROM pg_range r WHERE r.rngtypid = t.oid) \
         FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
         WHERE {USER_NS} AND t.typtype IN ('e', 'c', 'r', 'd', 'b') \
           AND (t.typtype <> 'c' OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c') \
           AND (t.typtype <> 'b' OR t.typelem = 0 OR t.typcategory <> 'A') \
         ORDER BY t.oid"
    ))
    .fetch_all(&mut *conn)
    .await
    .map_err(rows_err(target, "reading types"))?;
    for r in &rows {
        let id = oid(r, 0);
        if is_member(c, "pg_type", id) {
            continue;
        }
        let name = format!("{}.{}", s(r, 1), s(r, 2));
        let owner = s(r, 5);
        let kind_code = s(r, 3);
        let mut addresses = vec![("pg_type", id), ("pg_type", oid(r, 4))];
        let (kind, create) = match kind_code.as_str() {
            "e" => {
                let labels: Vec<String> = r.try_get(12).unwrap_or_default();
                (
                    ObjectKind::Type,
                    format!("CREATE TYPE {name} AS ENUM ({})", labels.join(", ")),
                )
            }
            "c" => {
                addresses.push(("pg_class", oid(r, 8)));
                (
                    ObjectKind::Type,
                    format!("CREATE TYPE {name} AS ({})", s(r, 13)),
                )
            }
            "r" => {
                if let Ok(m) = r.try_get::<i64, _>(17) {
                    addresses.push(("pg_type", u32::try_from(m).unwrap_or(0)));
                }
                (
                    ObjectKind::Type,
                    format!("CREATE TYPE {name} AS RANGE ({})", s(r, 14)),
                )
            }
            "d" => {
                let mut stmt = format!("CREATE DOMAIN {name} AS {}", s(r, 9));
                if let Some(d) = os(r, 11) {
                    stmt.push_str(&format!(" DEFAULT {d}"));
                }
                if r.try_get::<bool, _>(10).unwrap_or(false) {
                    stmt.push_str(" NOT NULL");
                }
                let checks: Vec<String> = r.try_get(15).unwrap_or_default();
                for check in checks {
                    stmt.push(' ');
                    stmt.push_str(&check);
                }
                let cons: Vec<i64> = r.try_get(16).unwrap_or_default();
                addresses.extend(
                    cons.into_iter()
                        .filter_map(|o| u32::try_from(o).ok())
                        .map(|o| ("pg_constraint", o)),
                );
                (ObjectKind::Domain, stmt)
            }
            _ => {
                // A base type needs C functions of its own: not recreated, but named.
                let mut o = SchemaObject::new(ObjectKind::Other, format!("type {name}"));
                o.definition = "a base type".into();
                c.add(o, addresses);
                continue;
            }
        };
        let word = if kind == ObjectKind::Domain {
            "DOMAIN"
        } else {
            "TYPE"
        };
        let mut o = SchemaObject::new(kind, name.clone());
        o.definition = create.clone();
        o.sql = vec![create];
        o.owner = owner_attr(&owner, &format!("{word} {name}"));
        o.privileges = privileges(conn, target, os(r, 6), &format!("TYPE {name}"), &owner).await?;
        o.comment = comment_attr(os(r, 7), &format!("{word} {name}"));
        c.add(o, addresses);
    }
    Ok(())
}

/// Functions, procedures and aggregates; those a type made for itself (a range's
/// constructors, an internal dependency) come with it.
async fn functions(
    conn: &mut PgConnection,
    target: &Target,
    c: &mut Collector,
) -> Result<(), DbError> {
    let rows = sqlx::query(&format!(
        "SELECT p.oid::int8, p.oid::regprocedure::text, p.prokind::text, \
                CASE WHEN p.prokind IN ('f', 'p', 'w') THEN pg_get_functiondef(p.oid) END, \
                pg_get_userbyid(p.proowner)::text, p.proacl::text, obj_description(p.oid, 'pg_proc'), \
                CASE WHEN p.prokind = 'a' THEN concat_ws(', ', \
                    'SFUNC = ' || a.aggtransfn::regproc::text, \
                    'STYPE = ' || format_type(a.aggtranstype, NULL), \
                    CASE WHEN a.aggtransspace <> 0 THEN 'SSPACE = ' || a.aggtransspace END, \
                    CASE WHEN a.aggfinalfn <> 0 THEN 'FINALFUNC = ' || a.aggfinalfn::regproc::text END, \
                    CASE WHEN a.aggfinalextra THEN 'FINALFUNC_EXTRA' END, \
                    CASE WHEN a.aggfinalfn <> 0 THEN 'FINALFUNC_MODIFY = ' || CASE a.aggfinalmodify \
                         WHEN 'r' THEN 'READ_ONLY' WHEN 's' THEN 'SHAREABLE' ELSE 'READ_WRITE' END END, \
                    CASE WHEN a.aggcombinefn <> 0 THEN 'COMBINEFUNC = ' || a.aggcombinefn::regproc::text END, \
                    CASE WHEN a.aggserialfn <> 0 THEN 'SERIALFUNC = ' || a.aggserialfn::regproc::text END, \
                    CASE WHEN a.aggdeserialfn <> 0 THEN 'DESERIALFUNC = ' || a.aggdeserialfn::regproc::text END, \
                    CASE WHEN a.agginitval IS NOT NULL THEN 'INITCOND = ' || quote_literal(a.agginitval) END, \
                    CASE WHEN a.aggmtransfn <> 0 THEN 'MSFUNC = ' || a.aggmtransfn::regproc::text END, \
                    CASE WHEN a.aggminvtransfn <> 0 THEN 'MINVFUNC = ' || a.aggminvtransfn::regproc::text END, \
                    CASE WHEN a.aggmtransfn <> 0 THEN 'MSTYPE = ' || format_type(a.aggmtranstype, NULL) END, \
                    CASE WHEN a.aggmfinalfn <> 0 THEN 'MFINALFUNC = ' || a.aggmfinalfn::regproc::text END, \
                    CASE WHEN a.aggmfinalextra THEN 'MFINALFUNC_EXTRA' END, \
                    CASE WHEN a.aggminitval IS NOT NULL THEN 'MINITCOND = ' || quote_literal(a.aggminitval) END, \
                    CASE WHEN a.aggsortop <> 0 THEN 'SORTOP = ' || a.aggsortop::regoperator::text END, \
                    CASE WHEN a.aggkind = 'h' THEN 'HYPOTHETICAL' END, \
                    CASE p.proparallel WHEN 's' THEN 'PARALLEL = SAFE' WHEN 'r' THEN 'PARALLEL = RESTRICTED' END) END, \
                pg_get_function_arguments(p.oid), quote_ident(n.nspname) || '.' || quote_ident(p.proname) \
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
         LEFT JOIN pg_aggregate a ON a.aggfnoid = p.oid \
         WHERE {USER_NS} \
           AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass \
                           AND d.objid = p.oid AND d.deptype = 'i') \
         ORDER BY p.oid"
    ))
    .fetch_all(&mut *conn)
    .await
    .map_err(rows_err(target, "reading functions"))?;
    for r in &rows {
        let id = oid(r, 0);
        if is_member(c, "pg_proc", id) {
            continue;
        }
        let signature = s(r, 1);
        let owner = s(r, 4);
        let (kind, word, create) = match s(r, 2).as_str() {
            "p" => (ObjectKind::Procedure, "PROCEDURE", s(r, 3)),
            "a" => (
                ObjectKind::Aggregate,
                "AGGREGATE",
                format!("CREATE AGGREGATE {}({}) ({})", s(r, 9), s(r, 8), s(r, 7)),
            ),
            _ => (ObjectKind::Function, "FUNCTION", s(r, 3)),
        };
        let create = create.trim_end().to_owned();
        let mut o = SchemaObject::new(kind, signature.clone());
        o.definition = create.clone();
        o.sql = vec![create];
        o.owner = owner_attr(&owner, &format!("{word} {signature}"));
        let on = if kind == ObjectKind::Procedure {
            format!("PROCEDURE {signature}")
        } else {
            format!("FUNCTION {signature}")
        };
        o.privileges = privileges(conn, target, os(r, 5), &on, &owner).await?;
        o.comment = comment_attr(os(r, 6), &format!("{word} {signature}"));
        c.add(o, vec![("pg_proc", id)]);
    }
    Ok(())
}

/// A table of the database: its position in the collector and its neutral name.
struct TableInfo {
    at: usize,
    name: TableName,
    qualified: String,
    partitioned: bool,
}

async fn tables(
    conn: &mut PgConnection,
    target: &Target,
    c: &mut Collector,
) -> Result<HashMap<u32, TableInfo>, DbError> {
    let rows = sqlx::query(&format!(
        "SELECT c.oid::int8, n.nspname::text, c.relname::text, c.relkind::text, c.relpersistence::text, \
                c.relispartition, \
                CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END, \
                CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END, \
                (SELECT string_agg(i.inhparent::regclass::text, ', ' ORDER BY i.inhseqno) \
                 FROM pg_inherits i WHERE i.inhrelid = c.oid), \
                array_to_string(c.reloptions, ', '), c.relrowsecurity, c.relforcerowsecurity, \
                pg_get_userbyid(c.relowner)::text, c.relacl::text, obj_description(c.oid, 'pg_class'), \
                c.reltype::int8, (SELECT typarray FROM pg_type WHERE oid = c.reltype)::int8, c.oid::regclass::text \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p', 'f') AND {USER_NS} ORDER BY c.oid"
    ))
    .fetch_all(&mut *conn)
    .await
    .map_err(rows_err(target, "reading tables"))?;
    let oids: Vec<i64> = rows
        .iter()
        .filter_map(|r| r.try_get::<i64, _>(0).ok())
        .collect();
    let columns = sqlx::query(
        "SELECT a.attrelid::int8, quote_ident(a.attname), format_type(a.atttypid, a.atttypmod), a.attnotnull, \
                a.attidentity::text, a.attgenerated::text, \
                CASE WHEN a.attgenerated <> '' THEN pg_get_expr(d.adbin, d.adrelid) END, \
                CASE WHEN a.attcollation <> t.typcollation AND a.attcollation <> 0 \
                     THEN a.attcollation::regcollation::text END, \
                a.attislocal, a.attinhcount, \
                CASE WHEN a.attgenerated = '' THEN pg_get_expr(d.adbin, d.adrelid) END, d.oid::int8, \
                col_description(a.attrelid, a.attnum), a.attacl::text, \
                CASE WHEN a.attstattarget > 0 THEN a.attstattarget END, \
                (SELECT 'SEQUENCE NAME ' || seqrelid::regclass::text || ' START WITH ' || seqstart || ' INCREMENT BY ' || seqincrement \
                        || ' MINVALUE ' || seqmin || ' MAXVALUE ' || seqmax || ' CACHE ' || seqcache \
                        || CASE WHEN seqcycle THEN ' CYCLE' ELSE ' NO CYCLE' END \
                 FROM pg_sequence WHERE seqrelid = pg_get_serial_sequence(a.attrelid::regclass::text, a.attname)::regclass) \
         FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
         LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
         WHERE a.attrelid = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped \
         ORDER BY a.attrelid, a.attnum",
    )
    .bind(&oids)
    .fetch_all(&mut *conn)
    .await
    .map_err(rows_err(target, "reading columns"))?;
    let mut columns_of: BTreeMap<u32, Vec<&PgRow>> = BTreeMap::new();
    for col in &columns {
        columns_of.entry(oid(col, 0)).or_default().push(col);
    }
    let mut out = HashMap::new();
    let mut defaults = Vec::new();
    for r in &rows {
        let id = oid(r, 0);
        if is_member(c, "pg_class", id) {
            continue;
        }
        let (schema, relname) = (s(r, 1), s(r, 2));
        let name = s(r, 17);
        if s(r, 3) == "f" {
            let mut o = SchemaObject::new(ObjectKind::Other, format!("foreign table {name}"));
            o.definition = "a foreign table".into();
            c.add(o, vec![("pg_class", id)]);
            continue;
        }
        let partition = r.try_get::<bool, _>(5).unwrap_or(false);
        let parents = os(r, 8);
        let cols = columns_of.remove(&id).unwrap_or_default();
        let mut defs = Vec::new();
        let mut after = Vec::new();
        let mut comments = Vec::new();
        let mut column_acls = Vec::new();
        for col in &cols {
            let cname = s(col, 1);
            let local = col.try_get::<bool, _>(8).unwrap_or(true);
            let inherited = col.try_get::<i32, _>(9).unwrap_or(0) > 0;
            let not_null = col.try_get::<bool, _>(3).unwrap_or(false);
            let mut def = format!("{cname} {}", s(col, 2));
            if let Some(coll) = os(col, 7) {
                def.push_str(&format!(" COLLATE {coll}"));
            }
            match (s(col, 4).as_str(), os(col, 6)) {
                ("a", _) => {
                    def.push_str(&format!(" GENERATED ALWAYS AS IDENTITY ({})", s(col, 15)))
                }
                ("d", _) => def.push_str(&format!(
                    " GENERATED BY DEFAULT AS IDENTITY ({})",
                    s(col, 15)
                )),
                (_, Some(expr)) => def.push_str(&format!(" GENERATED ALWAYS AS ({expr}) STORED")),
                _ => {}
            }
            if not_null {
                def.push_str(" NOT NULL");
            }
            // Partitions and children take inherited columns from their parent; a NOT NULL
            // of their own is added after.
            if (partition || (inherited && !local)) && not_null {
                after.push(format!(
                    "ALTER TABLE ONLY {name} ALTER COLUMN {cname} SET NOT NULL"
                ));
            }
            if let Some(default) = os(col, 10) {
                defaults.push((
                    id,
                    cname.clone(),
                    default,
                    oid(col, 11),
                    name.clone(),
                    table_name(&schema, &relname),
                ));
            }
            if let Some(stat) = col.try_get::<Option<i32>, _>(14).ok().flatten() {
                after.push(format!(
                    "ALTER TABLE ONLY {name} ALTER COLUMN {cname} SET STATISTICS {stat}"
                ));
            }
            if let Some(cm) = os(col, 12) {
                comments.push((format!("COLUMN {name}.{cname}"), cm));
            }
            if let Some(acl) = os(col, 13) {
                column_acls.push((cname.clone(), acl));
            }
            // The column list itself: the definition names every column either way.
            if !(partition || (inherited && !local)) {
                defs.push(def);
            }
        }
        let all_columns: Vec<String> = cols
            .iter()
            .map(|col| {
                let mut d = format!("{} {}", s(col, 1), s(col, 2));
                if let Some(coll) = os(col, 7) {
                    d.push_str(&format!(" COLLATE {coll}"));
                }
                if col.try_get::<bool, _>(3).unwrap_or(false) {
                    d.push_str(" NOT NULL");
                }
                match (s(col, 4).as_str(), os(col, 6)) {
                    ("a", _) => d.push_str(" IDENTITY ALWAYS"),
                    ("d", _) => d.push_str(" IDENTITY BY DEFAULT"),
                    (_, Some(expr)) => d.push_str(&format!(" GENERATED ({expr})")),
                    _ => {}
                }
                d
            })
            .collect();
        let unlogged = if s(r, 4) == "u" { "UNLOGGED " } else { "" };
        let mut create = if partition {
            let parent = parents.clone().unwrap_or_default();
            format!(
                "CREATE {unlogged}TABLE {name} PARTITION OF {parent} {}",
                s(r, 7)
            )
        } else {
            let mut stmt = format!(
                "CREATE {unlogged}TABLE {name} (\n  {}\n)",
                defs.join(",\n  ")
            );
            if let Some(p) = &parents {
                stmt.push_str(&format!(" INHERITS ({p})"));
            }
            stmt
        };
        if let Some(key) = os(r, 6) {
            create.push_str(&format!(" PARTITION BY {key}"));
        }
        let options = s(r, 9);
        if !options.is_empty() {
            create.push_str(&format!(" WITH ({options})"));
        }
        let rls = r.try_get::<bool, _>(10).unwrap_or(false);
        let force = r.try_get::<bool, _>(11).unwrap_or(false);
        let mut definition = format!("{unlogged}TABLE ({})", all_columns.join(", "));
        if partition {
            definition.push_str(&format!(" PARTITION OF {} {}", s(r, 8), s(r, 7)));
        } else if let Some(p) = &parents {
            definition.push_str(&format!(" INHERITS ({p})"));
        }
        if let Some(key) = os(r, 6) {
            definition.push_str(&format!(" PARTITION BY {key}"));
        }
        if !options.is_empty() {
            definition.push_str(&format!(" WITH ({options})"));
        }
        let owner = s(r, 12);
        let mut o = SchemaObject::new(ObjectKind::Table, name.clone());
        o.table = Some(table_name(&schema, &relname));
        o.definition = definition;
        o.sql = std::iter::once(create).chain(after).collect();
        o.owner = owner_attr(&owner, &format!("TABLE {name}"));
        let mut grants =
            privileges(conn, target, os(r, 13), &format!("TABLE {name}"), &owner).await?;
        for (cname, acl) in column_acls {
            if let Some(col) = privileges(
                conn,
                target,
                Some(acl.clone()),
                &format!("TABLE {name}"),
                &owner,
            )
            .await?
            {
                // Column privileges: GRANT priv (col) ON TABLE …
                let g = grants.get_or_insert_with(|| Attribute {
                    value: String::new(),
                    sql: Vec::new(),
                });
                g.value.push_str(&format!("\n{cname}:{}", col.value));
                g.sql.extend(
                    col.sql
                        .into_iter()
                        .filter(|q| q.starts_with("GRANT"))
                        .map(|q| q.replacen(" ON TABLE ", &format!(" ({cname}) ON TABLE "), 1)),
                );
            }
        }
        o.privileges = grants;
        let mut all_comments = Vec::new();
        if let Some(cm) = os(r, 14) {
            all_comments.push((format!("TABLE {name}"), cm));
        }
        all_comments.extend(comments);
        if !all_comments.is_empty() {
            o.comment = Some(Attribute {
                value: all_comments
                    .iter()
                    .map(|(on, cm)| format!("{on}: {cm}"))
                    .collect::<Vec<_>>()
                    .join("\n"),
                sql: all_comments
                    .iter()
                    .map(|(on, cm)| format!("COMMENT ON {on} IS {}", literal(cm)))
                    .collect(),
            });
        }
        let at = c.add(
            o,
            vec![
                ("pg_class", id),
                ("pg_type", oid(r, 15)),
                ("pg_type", oid(r, 16)),
            ],
        );
        if rls || force {
            let mut sec =
                SchemaObject::new(ObjectKind::Policy, format!("row level security on {name}"));
            sec.table = Some(table_name(&schema, &relname));
            sec.phase = Phase::PostData;
            sec.definition = format!("enabled {rls}, forced {force}");
            sec.sql = [
                rls.then(|| format!("ALTER TABLE {name} ENABLE ROW LEVEL SECURITY")),
                force.then(|| format!("ALTER TABLE {name} FORCE ROW LEVEL SECURITY")),
            ]
            .into_iter()
            .flatten()
            .collect();
            sec.needs.push(c.found[at].object.key.clone());
            c.add(sec, Vec::new());
        }
        out.insert(
            id,
            TableInfo {
                at,
                name: table_name(&schema, &relname),
                qualified: name,
                partitioned: s(r, 3) == "p",
            },
        );
    }
    for (table, column, expr, def_oid, qname, tname) in defaults {
        let Some(info) = out.get(&table) else {
            continue;
        };
        let mut o = SchemaObject::new(ObjectKind::Default, format!("{qname}.{column}"));
        o.table = Some(tname);
        o.definition = expr.clone();
        o.sql = vec![format!(
            "ALTER TABLE ONLY {qname} ALTER COLUMN {column} SET DEFAULT {expr}"
        )];
        o.needs.push(c.found[info.at].object.key.clone());
        c.add(o, vec![("pg_attrdef", def_oid)]);
    }
    Ok(out)
}

async fn sequences(
    conn: &mut PgConnection,
    target: &Target,
    c: &mut Collector,
    tables: &HashMap<u32, TableInfo>,
) -> Result<(), DbError> {
    let rows = sqlx::query(&format!(
        "SELECT c.oid::int8, n.nspname::text, c.relname::text, format_type(s.seqtypid, NULL), \
                s.seqincrement::text, s.seqmin::text, s.seqmax::text, s.seqstart::text, s.seqcache::text, s.seqcycle, \
                pg_get_userbyid(c.relowner)::text, c.relacl::text, obj_description(c.oid, 'pg_class'), \
                (SELECT d.refobjid::int8 FROM pg_depend d WHERE d.objid = c.oid AND d.classid = 'pg_class'::regclass \
                   AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')), \
                (SELECT d.deptype::text FROM pg_depend d WHERE d.objid = c.oid AND d.classid = 'pg_class'::regclass \
                   AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')), \
                (SELECT quote_ident(a.attname) FROM pg_depend d JOIN pg_attribute a ON a.attrelid = d.refobjid \
                   AND a.attnum = d.refobjsubid WHERE d.objid = c.oid AND d.classid = 'pg_class'::regclass \
                   AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')), c.oid::regclass::text \
         FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE {USER_NS} ORDER BY c.oid"
    ))
    .fetch_all(&mut *conn)
    .await
    .map_err(rows_err(target, "reading sequences"))?;
    for r in &rows {
        let id = oid(r, 0);
        if is_member(c, "pg_class", id) {
            continue;
        }
        let name = s(r, 16);
        let owner_table = r
            .try_get::<Option<i64>, _>(13)
            .ok()
            .flatten()
            .and_then(|o| u32::try_from(o).ok())
            .and_then(|o| tables.get(&o));
        let identity = s(r, 14) == "i";
        let position = sqlx::query(&format!("SELECT last_value::text, is_called FROM {name}"))
            .fetch_optional(&mut *conn)
            .await
            .ok()
            .flatten();
        let value = position
            .as_ref()
            .map(|p| (s(p, 0), p.try_get::<bool, _>(1).unwrap_or(false)));
        let seq_key = if identity {
            // An identity column's sequence is its table's: it is created with it.
            owner_table.map(|t| c.found[t.at].object.key.clone())
        } else {
            let create = format!(
                "CREATE SEQUENCE {name} AS {} INCREMENT BY {} MINVALUE {} MAXVALUE {} START WITH {} CACHE {}{}",
                s(r, 3),
                s(r, 4),
                s(r, 5),
                s(r, 6),
                s(r, 7),
                s(r, 8),
                if r.try_get::<bool, _>(9).unwrap_or(false) { " CYCLE" } else { " NO CYCLE" }
            );
            let owner = s(r, 10);
            let mut o = SchemaObject::new(ObjectKind::Sequence, name.clone());
            o.definition = create.clone();
            o.sql = vec![create];
            o.owner = owner_attr(&owner, &format!("SEQUENCE {name}"));
            o.privileges =
                privileges(conn, target, os(r, 11), &format!("SEQUENCE {name}"), &owner).await?;
            o.comment = comment_attr(os(r, 12), &format!("SEQUENCE {name}"));
            let at = c.add(o, vec![("pg_class", id)]);
            if let (Some(t), Some(col)) = (owner_table, os(r, 15)) {
                let mut owned = SchemaObject::new(ObjectKind::SequenceOwner, name.clone());
                owned.table = Some(t.name.clone());
                owned.definition = format!("{}.{col}", t.qualified);
                owned.sql = vec![format!(
                    "ALTER SEQUENCE {name} OWNED BY {}.{col}",
                    t.qualified
                )];
                owned.needs = vec![
                    c.found[at].object.key.clone(),
                    c.found[t.at].object.key.clone(),
                ];
                c.add(owned, Vec::new());
            }
            Some(c.found[at].object.key.clone())
        };
        if identity {
            if let Some(t) = owner_table {
                c.members.insert(("pg_class".into(), id), t.at);
            }
        }
        if let (Some((last, called)), Some(needs)) = (value, seq_key) {
            let mut v = SchemaObject::new(ObjectKind::SequenceValue, name.clone());
            v.table = owner_table.map(|t| t.name.clone());
            v.phase = Phase::PostData;
            v.definition = format!("{last} {}", if called { "called" } else { "not called" });
            v.sql = vec![format!(
                "SELECT pg_catalog.setval({}, {last}, {called})",
                literal(&name)
            )];
            v.needs.push(needs);
            c.add(v, Vec::new());
        }
    }
    Ok(())
}

async fn views(conn: &mut PgConnection, target: &Target, c: &mut Collector) -> Result<(), DbError> {
    let rows = sqlx::query(&format!(
        "SELECT c.oid::int8, n.nspname::text, c.relname::text, c.relkind::text, pg_get_viewdef(c.oid), \
                array_to_string(c.reloptions, ', '), c.relispopulated, pg_get_userbyid(c.relowner)::text, \
                c.relacl::text, obj_description(c.oid, 'pg_class'), \
                (SELECT r.oid::int8 FROM pg_rewrite r WHERE r.ev_class = c.oid AND r.rulename = '_RETURN'), \
                c.reltype::int8, (SELECT typarray FROM pg_type WHERE oid = c.reltype)::int8, \
                (SELECT string_agg('COMMENT ON COLUMN ' || c.oid::regclass::text || '.' || quote_ident(a.attname) \
                        || ' IS ' || quote_literal(col_description(c.oid, a.attnum)), E'\\n' ORDER BY a.attnum) \
                 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND col_description(c.oid, a.attnum) IS NOT NULL), \
                c.oid::regclass::text \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('v', 'm') AND {USER_NS} ORDER BY c.oid"
    ))
    .fetch_all(&mut *conn)
    .await
    .map_err(rows_err(target, "reading views"))?;
    for r in &rows {
        let id = oid(r, 0);
        if is_member(c, "pg_class", id) {
            continue;
        }
        let name = s(r, 14);
        let body = s(r, 4);
        let body = body.trim_end().trim_end_matches(';');
        let options = s(r, 5);
        let with = if options.is_empty() {
            String::new()
        } else {
            format!(" WITH ({options})")
        };
        let materialized = s(r, 3) == "m";
        let owner = s(r, 7);
        let (kind, word, create, definition) = if materialized {
            let populated = r.try_get::<bool, _>(6).unwrap_or(true);
            let data = if populated {
                "WITH DATA"
            } else {
                "WITH NO DATA"
            };
            (
                ObjectKind::MaterializedView,
                "MATERIALIZED VIEW",
                format!("CREATE MATERIALIZED VIEW {name}{with} AS\n{body}\n{data}"),
                format!("{with} AS {body} {data}"),
            )
        } else {
            (
                ObjectKind::View,
                "VIEW",
                format!("CREATE VIEW {name}{with} AS\n{body}"),
                format!("{with} AS {body}"),
            )
        };
        let mut o = SchemaObject::new(kind, name.clone());
        o.relation = Some(table_name(&s(r, 1), &s(r, 2)));
        o.definition = definition;
        o.sql = vec![create];
        if materialized {
            o.phase = Phase::PostData;
        }
        o.owner = owner_attr(&owner, &format!("{word} {name}"));
        o.privileges = privileges(conn, target, os(r, 8), &format!("TABLE {name}"), &owner).await?;
        let mut comments: Vec<String> = Vec::new();
        let mut values = Vec::new();
        if let Some(cm) = os(r, 9) {
            values.push(cm.clone());
            comments.push(format!("COMMENT ON {word} {name} IS {}", literal(&cm)));
        }
        if let Some(cols) = os(r, 13) {
            values.push(cols.clone());
            comments.extend(cols.lines().map(str::to_owned));
        }
        if !comments.is_empty() {
            o.comment = Some(Attribute {
                value: values.join("\n"),
                sql: comments,
            });
        }
        let mut addresses = vec![
            ("pg_class", id),
            ("pg_type", oid(r, 11)),
            ("pg_type", oid(r, 12)),
        ];
        if let Ok(rule) = r.try_get::<i64, _>(10) {
            addresses.push(("pg_rewrite", u32::try_from(rule).unwrap_or(0)));
        }
        c.add(o, addresses);
    }
    Ok(())
}

/// The relation an object is on (a table, a view, a materialized view of ours): its neutral
/// name when it is a data table, its key, and its name as the server spells it.
fn on_table(
    c: &Collector,
    tables: &HashMap<u32, TableInfo>,
    rel: u32,
) -> Option<(Option<TableName>, ObjectKey, String)> {
    if let Some(t) = tables.get(&rel) {
        return Some((
            Some(t.name.clone()),
            c.found[t.at].object.key.clone(),
            t.qualified.clone(),
        ));
    }
    c.found
        .iter()
        .find(|f| {
            f.addresses.contains(&("pg_class", rel))
                && matches!(
                    f.object.key.kind,
                    ObjectKind::View | ObjectKind::MaterializedView
                )
        })
        .map(|f| (None, f.object.key.clone(), f.object.key.name.clone()))
}

async fn constraints(
    conn: &mut PgConnection,
    target: &Target,
    c: &mut Collector,
    tables: &HashMap<u32, TableInfo>,
) -> Result<(), DbError> {
    let rows = sqlx::query(
        "SELECT con.oid::int8, con.conrelid::int8, quote_ident(con.conname), con.contype::text, \
                pg_get_constraintdef(con.oid), con.conislocal, con.conparentid::int8, con.conindid::int8, \
                obj_description(con.oid, 'pg_constraint'), \
                (SELECT quote_ident(pc.conname) FROM pg_constraint pc WHERE pc.oid = con.conparentid), \
                (SELECT pc.conrelid::regclass::text FROM pg_constraint pc WHERE pc.oid = con.conparentid), \
                CASE WHEN con.conindid <> 0 THEN con.conindid::regclass::text END, \
                (SELECT CASE WHEN pc.conindid <> 0 THEN pc.conindid::regclass::text END FROM pg_constraint pc \
                 WHERE pc.oid = con.conparentid) \
         FROM pg_constraint con WHERE con.conrelid <> 0 AND con.contype IN ('p', 'u', 'f', 'c', 'x') \
         ORDER BY con.conrelid, con.conname",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(rows_err(target, "reading constraints"))?;
    let mut attaches = Vec::new();
    for r in &rows {
        let rel = oid(r, 1);
        let Some(info) = tables.get(&rel) else {
            continue;
        };
        let contype = s(r, 3);
        let local = r.try_get::<bool, _>(5).unwrap_or(true);
        let parent = oid(r, 6);
        // Checks inherited from a parent, and a partition's copy of its parent's foreign
        // key, come with the parent's.
        if (contype == "c" && !local) || (contype == "f" && parent != 0) {
            continue;
        }
        let (qcname, def) = (s(r, 2), s(r, 4));
        let table = &info.qualified;
        let kind = match contype.as_str() {
            "p" => ObjectKind::PrimaryKey,
            "u" => ObjectKind::Unique,
            "f" => ObjectKind::ForeignKey,
            "c" => ObjectKind::Check,
            _ => ObjectKind::Exclusion,
        };
        // Keys and exclusions of a partitioned table are built ONLY on it; its partitions'
        // are built on each and attached.
        let only =
            if info.partitioned && kind != ObjectKind::Check && kind != ObjectKind::ForeignKey {
                "ONLY "
            } else {
                ""
            };
        let mut o = SchemaObject::new(kind, format!("{qcname} on {table}"));
        o.table = Some(info.name.clone());
        o.phase = Phase::PostData;
        o.definition = def.clone();
        o.sql = vec![format!(
            "ALTER TABLE {only}{table} ADD CONSTRAINT {qcname} {def}"
        )];
        o.comment = comment_attr(os(r, 8), &format!("CONSTRAINT {qcname} ON {table}"));
        o.needs.push(c.found[info.at].object.key.clone());
        let key = o.key.clone();
        let mut addresses = vec![("pg_constraint", oid(r, 0))];
        if matches!(
            kind,
            ObjectKind::PrimaryKey | ObjectKind::Unique | ObjectKind::Exclusion
        ) {
            addresses.push(("pg_class", oid(r, 7)));
        }
        c.add(o, addresses);
        if parent != 0 {
            if let (Some(pname), Some(ptable), Some(index), Some(pindex)) =
                (os(r, 9), os(r, 10), os(r, 11), os(r, 12))
            {
                // The index of the parent's key takes this key's index.
                attaches.push((
                    pindex,
                    index,
                    key,
                    ObjectKey {
                        kind,
                        name: format!("{pname} on {ptable}"),
                    },
                    info.name.clone(),
                ));
            }
        }
    }
    for (parent_index, child_index, child, parent, table) in attaches {
        let mut a = SchemaObject::new(
            ObjectKind::IndexAttach,
            format!("{child_index} to {parent_index}"),
        );
        a.table = Some(table);
        a.phase = Phase::PostData;
        a.definition = "attached".into();
        a.sql = vec![format!(
            "ALTER INDEX {parent_index} ATTACH PARTITION {child_index}"
        )];
        a.needs = vec![child, parent];
        c.add(a, Vec::new());
    }
    Ok(())
}

async fn indexes(
    conn: &mut PgConnection,
    target: &Target,
    c: &mut Collector,
    tables: &HashMap<u32, TableInfo>,
) -> Result<(), DbError> {
    let rows = sqlx::query(
        "SELECT i.indexrelid::int8, i.indrelid::int8, quote_ident(ic.relname), i.indexrelid::regclass::text, \
                pg_get_indexdef(i.indexrelid), i.indisvalid, obj_description(i.indexrelid, 'pg_class'), \
                (SELECT inh.inhparent::regclass::text FROM pg_inherits inh WHERE inh.inhrelid = i.indexrelid), \
                (SELECT pi.indrelid::regclass::text FROM pg_inherits inh JOIN pg_index pi ON pi.indexrelid = inh.inhparent \
                 WHERE inh.inhrelid = i.indexrelid), i.indisclustered \
         FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_namespace n ON n.oid = ic.relnamespace \
         WHERE NOT EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = i.indexrelid \
                           AND con.contype IN ('p', 'u', 'x')) \
         ORDER BY i.indexrelid",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(rows_err(target, "reading indexes"))?;
    for r in &rows {
        let rel = oid(r, 1);
        let Some((table, owner_key, qtable)) = on_table(c, tables, rel) else {
            continue;
        };
        let name = s(r, 3);
        let def = s(r, 4);
        let valid = r.try_get::<bool, _>(5).unwrap_or(true);
        let mut o = SchemaObject::new(ObjectKind::Index, format!("{name} on {qtable}"));
        o.table = table.clone();
        o.phase = Phase::PostData;
        o.definition = if valid {
            def.clone()
        } else {
            format!("{def} (INVALID)")
        };
        o.sql = vec![def];
        if r.try_get::<bool, _>(9).unwrap_or(false) {
            o.sql
                .push(format!("ALTER TABLE {qtable} CLUSTER ON {}", s(r, 2)));
            o.definition.push_str(" (CLUSTER)");
        }
        o.comment = comment_attr(os(r, 6), &format!("INDEX {name}"));
        o.needs.push(owner_key);
        let key = o.key.clone();
        c.add(o, vec![("pg_class", oid(r, 0))]);
        if let (Some(parent), Some(parent_table)) = (os(r, 7), os(r, 8)) {
            let mut a = SchemaObject::new(ObjectKind::IndexAttach, format!("{name} to {parent}"));
            a.table = table;
            a.phase = Phase::PostData;
            a.definition = "attached".into();
            a.sql = vec![format!("ALTER INDEX {parent} ATTACH PARTITION {name}")];
            a.needs = vec![
                key,
                ObjectKey {
                    kind: ObjectKind::Index,
                    name: format!("{parent} on {parent_table}"),
                },
            ];
            c.add(a, Vec::new());
        }
    }
    Ok(())
}

async fn triggers_rules_policies(
    conn: &mut PgConnection,
    target: &Target,
    c: &mut Collector,
    tables: &HashMap<u32, TableInfo>,
) -> Result<(), DbError> {
    // A partitioned table's triggers are cloned onto its partitions (a 'P' dependency on
    // the parent's trigger): those come with the parent's.
    let rows = sqlx::query(
        "SELECT t.oid::int8, t.tgrelid::int8, quote_ident(t.tgname), pg_get_triggerdef(t.oid), t.tgenabled::text, \
                obj_description(t.oid, 'pg_trigger') \
         FROM pg_trigger t WHERE NOT t.tgisinternal \
           AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_trigger'::regclass \
                           AND d.objid = t.oid AND d.deptype = 'P') \
         ORDER BY t.tgrelid, t.tgname",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(rows_err(target, "reading triggers"))?;
    for r in &rows {
        let Some((table, owner_key, qtable)) = on_table(c, tables, oid(r, 1)) else {
            continue;
        };
        let name = s(r, 2);
        let mut o = SchemaObject::new(ObjectKind::Trigger, format!("{name} on {qtable}"));
        o.table = table;
        o.phase = Phase::PostData;
        let enabled = s(r, 4);
        o.definition = format!("{} (enabled {enabled})", s(r, 3));
        o.sql = vec![s(r, 3)];
        match enabled.as_str() {
            "D" => o
                .sql
                .push(format!("ALTER TABLE {qtable} DISABLE TRIGGER {name}")),
            "R" => o.sql.push(format!(
                "ALTER TABLE {qtable} ENABLE REPLICA TRIGGER {name}"
            )),
            "A" => o
                .sql
                .push(format!("ALTER TABLE {qtable} ENABLE ALWAYS TRIGGER {name}")),
            _ => {}
        }
        o.comment = comment_attr(os(r, 5), &format!("TRIGGER {name} ON {qtable}"));
        o.needs.push(owner_key);
        c.add(o, vec![("pg_trigger", oid(r, 0))]);
    }
    let rows = sqlx::query(
        "SELECT r.oid::int8, r.ev_class::int8, quote_ident(r.rulename), pg_get_ruledef(r.oid), r.ev_enabled::text, \
                obj_description(r.oid, 'pg_rewrite'), r.ev_class::regclass::text \
         FROM pg_rewrite r WHERE r.rulename <> '_RETURN' ORDER BY r.ev_class, r.rulename",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(rows_err(target, "reading rules"))?;
    for r in &rows {
        let rel = oid(r, 1);
        // Rules on views and other relations of ours too.
        let owner = c
            .found
            .iter()
            .position(|f| f.addresses.contains(&("pg_class", rel)));
        let Some(owner) = owner else { continue };
        let qtable = s(r, 6);
        let name = s(r, 2);
        let def = s(r, 3);
        let def = def.trim_end().trim_end_matches(';').to_owned();
        let mut o = SchemaObject::new(ObjectKind::Rule, format!("{name} on {qtable}"));
        o.table = tables.get(&rel).map(|t| t.name.clone());
        o.phase = Phase::PostData;
        let enabled = s(r, 4);
        o.definition = format!("{def} (enabled {enabled})");
        o.sql = vec![def];
        if enabled == "D" {
            o.sql
                .push(format!("ALTER TABLE {qtable} DISABLE RULE {name}"));
        }
        o.comment = comment_attr(os(r, 5), &format!("RULE {name} ON {qtable}"));
        o.needs.push(c.found[owner].object.key.clone());
        c.add(o, vec![("pg_rewrite", oid(r, 0))]);
    }
    let rows = sqlx::query(
        "SELECT p.oid::int8, p.polrelid::int8, quote_ident(p.polname), p.polpermissive, p.polcmd::text, \
                CASE WHEN p.polroles = '{0}' THEN 'PUBLIC' ELSE \
                  (SELECT string_agg(quote_ident(pg_get_userbyid(r)), ', ' ORDER BY 1) FROM unnest(p.polroles) r) END, \
                pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid), \
                obj_description(p.oid, 'pg_policy') \
         FROM pg_policy p ORDER BY p.polrelid, p.polname",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(rows_err(target, "reading policies"))?;
    for r in &rows {
        let Some(info) = tables.get(&oid(r, 1)) else {
            continue;
        };
        let name = s(r, 2);
        let cmd = match s(r, 4).as_str() {
            "r" => "SELECT",
            "a" => "INSERT",
            "w" => "UPDATE",
            "d" => "DELETE",
            _ => "ALL",
        };
        let mut stmt = format!(
            "CREATE POLICY {name} ON {} AS {} FOR {cmd} TO {}",
            info.qualified,
            if r.try_get::<bool, _>(3).unwrap_or(true) {
                "PERMISSIVE"
            } else {
                "RESTRICTIVE"
            },
            s(r, 5)
        );
        if let Some(q) = os(r, 6) {
            stmt.push_str(&format!(" USING ({q})"));
        }
        if let Some(q) = os(r, 7) {
            stmt.push_str(&format!(" WITH CHECK ({q})"));
        }
        let mut o = SchemaObject::new(ObjectKind::Policy, format!("{name} on {}", info.qualified));
        o.table = Some(info.name.clone());
        o.phase = Phase::PostData;
        o.definition = stmt.clone();
        o.sql = vec![stmt];
        o.comment = comment_attr(os(r, 8), &format!("POLICY {name} ON {}", info.qualified));
        o.needs.push(c.found[info.at].object.key.clone());
        c.add(o, vec![("pg_policy", oid(r, 0))]);
    }
    Ok(())
}

async fn statistics(
    conn: &mut PgConnection,
    target: &Target,
    c: &mut Collector,
    tables: &HashMap<u32, TableInfo>,
) -> Result<(), DbError> {
    let rows = sqlx::query(
        "SELECT s.oid::int8, s.stxrelid::int8, s.oid::regclass::text, pg_get_statisticsobjdef(s.oid), \
                obj_description(s.oid, 'pg_statistic_ext'), \
                (SELECT quote_ident(n.nspname) || '.' || quote_ident(s.stxname) FROM pg_namespace n WHERE n.oid = s.stxnamespace) \
         FROM pg_statistic_ext s ORDER BY s.oid",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(rows_err(target, "reading statistics"))?;
    for r in &rows {
        let Some((table, owner_key, _)) = on_table(c, tables, oid(r, 1)) else {
            continue;
        };
        let name = s(r, 5);
        let def = s(r, 3);
        let mut o = SchemaObject::new(ObjectKind::Statistics, name.clone());
        o.table = table;
        o.phase = Phase::PostData;
        o.definition = def.clone();
        o.sql = vec![def];
        o.comment = comment_attr(os(r, 4), &format!("STATISTICS {name}"));
        o.needs.push(owner_key);
        c.add(o, vec![("pg_statistic_ext", oid(r, 0))]);
    }
    Ok(())
}

/// Objects of kinds upkeep does not recreate, so that the proof names them rather than
/// passing over them: operators, casts, text search configurations, foreign data, event
/// triggers, publications, languages, large objects…
async fn others(
    conn: &mut PgConnection,
    target: &Target,
    c: &mut Collector,
) -> Result<(), DbError> {
    let rows = sqlx::query(
        "SELECT kind, name, catalog, oid::int8 FROM ( \
           SELECT 'operator' AS kind, o.oid::regoperator::text AS name, 'pg_operator' AS catalog, o.oid FROM pg_operator o WHERE o.oid >= 16384 \
           UNION ALL SELECT 'operator class', opcname, 'pg_opclass', oid FROM pg_opclass WHERE oid >= 16384 \
           UNION ALL SELECT 'operator family', opfname, 'pg_opfamily', oid FROM pg_opfamily WHERE oid >= 16384 \
           UNION ALL SELECT 'cast', format_type(castsource, NULL) || ' AS ' || format_type(casttarget, NULL), 'pg_cast', oid FROM pg_cast WHERE oid >= 16384 \
           UNION ALL SELECT 'conversion', conname, 'pg_conversion', oid FROM pg_conversion WHERE oid >= 16384 \
           UNION ALL SELECT 'text search configuration', cfgname, 'pg_ts_config', oid FROM pg_ts_config WHERE oid >= 16384 \
           UNION ALL SELECT 'text search dictionary', dictname, 'pg_ts_dict', oid FROM pg_ts_dict WHERE oid >= 16384 \
           UNION ALL SELECT 'text search parser', prsname, 'pg_ts_parser', oid FROM pg_ts_parser WHERE oid >= 16384 \
           UNION ALL SELECT 'text search template', tmplname, 'pg_ts_template', oid FROM pg_ts_template WHERE oid >= 16384 \
           UNION ALL SELECT 'language', lanname, 'pg_language', oid FROM pg_language WHERE oid >= 16384 \
           UNION ALL SELECT 'foreign data wrapper', fdwname, 'pg_foreign_data_wrapper', oid FROM pg_foreign_data_wrapper WHERE oid >= 16384 \
           UNION ALL SELECT 'foreign server', srvname, 'pg_foreign_server', oid FROM pg_foreign_server WHERE oid >= 16384 \
           UNION ALL SELECT 'event trigger', evtname, 'pg_event_trigger', oid FROM pg_event_trigger \
           UNION ALL SELECT 'publication', pubname, 'pg_publication', oid FROM pg_publication \
           UNION ALL SELECT 'transform', trftype::regtype::text, 'pg_transform', oid FROM pg_transform WHERE oid >= 16384 \
           UNION ALL SELECT 'access method', amname, 'pg_am', oid FROM pg_am WHERE oid >= 16384 \
           UNION ALL SELECT 'large objects', count(*)::text, 'pg_largeobject_metadata', 0 FROM pg_largeobject_metadata HAVING count(*) > 0 \
         ) o ORDER BY 1, 2",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(rows_err(target, "reading other objects"))?;
    for r in &rows {
        let (catalog, id) = (s(r, 2), oid(r, 3));
        if id != 0 && c.members.contains_key(&(catalog.clone(), id)) {
            continue;
        }
        let kind = s(r, 0);
        let mut o = SchemaObject::new(ObjectKind::Other, format!("{kind} {}", s(r, 1)));
        o.definition = format!("a {kind}");
        c.add(o, Vec::new());
    }
    Ok(())
}

/// Edges between collected objects: (needing, needed).
async fn dependencies(
    conn: &mut PgConnection,
    target: &Target,
    c: &Collector,
) -> Result<Vec<(usize, usize)>, DbError> {
    let mut at: HashMap<(&str, u32), usize> = HashMap::new();
    for (i, f) in c.found.iter().enumerate() {
        for &(catalog, id) in &f.addresses {
            if id != 0 {
                at.entry((catalog, id)).or_insert(i);
            }
        }
    }
    let resolve = |catalog: &str, id: u32| -> Option<usize> {
        at.get(&(catalog, id))
            .copied()
            .or_else(|| c.members.get(&(catalog.to_owned(), id)).copied())
    };
    let rows = sqlx::query(
        "SELECT classid::regclass::text, objid::int8, refclassid::regclass::text, refobjid::int8 \
         FROM pg_depend WHERE deptype IN ('n', 'a') AND objid >= 16384",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(rows_err(target, "reading dependencies"))?;
    let mut edges = HashSet::new();
    for r in &rows {
        let (Some(a), Some(b)) = (resolve(&s(r, 0), oid(r, 1)), resolve(&s(r, 2), oid(r, 3)))
        else {
            continue;
        };
        if a == b {
            continue;
        }
        // A sequence owned by a column is tied to its table ('a'), but created before it:
        // the ownership is an object of its own.
        let (ka, kb) = (c.found[a].object.key.kind, c.found[b].object.key.kind);
        if ka == ObjectKind::Sequence && kb == ObjectKind::Table {
            continue;
        }
        edges.insert((a, b));
    }
    let mut edges: Vec<(usize, usize)> = edges.into_iter().collect();
    edges.sort_unstable();
    Ok(edges)
}

/// The order in which pg_dump would create objects of equal standing.
fn priority(kind: ObjectKind) -> u8 {
    use ObjectKind as K;
    match kind {
        K::Schema => 1,
        K::Extension => 2,
        K::Collation => 3,
        K::Type | K::Domain => 4,
        K::Function | K::Procedure => 5,
        K::Aggregate => 6,
        K::Sequence => 7,
        K::Table => 8,
        K::SequenceOwner => 9,
        K::Default => 10,
        K::View => 11,
        K::SequenceValue => 12,
        K::MaterializedView => 13,
        K::PrimaryKey | K::Unique | K::Exclusion | K::Check => 14,
        K::Index => 15,
        K::IndexAttach => 16,
        K::Rule => 17,
        K::Trigger => 18,
        K::ForeignKey => 19,
        K::Policy => 20,
        K::Statistics => 21,
        K::Event | K::Other => 22,
    }
}

fn base_phase(kind: ObjectKind) -> Phase {
    use ObjectKind as K;
    match kind {
        K::SequenceValue
        | K::MaterializedView
        | K::PrimaryKey
        | K::Unique
        | K::Exclusion
        | K::Check
        | K::Index
        | K::IndexAttach
        | K::Rule
        | K::Trigger
        | K::ForeignKey
        | K::Policy
        | K::Statistics => Phase::PostData,
        _ => Phase::PreData,
    }
}

/// Sorts the objects so that each comes after what it needs (Kahn's algorithm, ties broken
/// by kind as pg_dump does, then by name), and puts after the data whatever needs something
/// created after the data. A cycle (which the separate defaults and sequence ownerships
/// avoid) is broken at its object of the earliest kind.
fn order(c: Collector, edges: &[(usize, usize)]) -> Vec<SchemaObject> {
    let n = c.found.len();
    let mut objects: Vec<SchemaObject> = c.found.into_iter().map(|f| f.object).collect();
    let index: HashMap<ObjectKey, usize> = objects
        .iter()
        .enumerate()
        .map(|(i, o)| (o.key.clone(), i))
        .collect();
    let mut needs: Vec<HashSet<usize>> = vec![HashSet::new(); n];
    for &(a, b) in edges {
        needs[a].insert(b);
    }
    for (i, o) in objects.iter().enumerate() {
        for k in &o.needs {
            if let Some(&j) = index.get(k) {
                if j != i {
                    needs[i].insert(j);
                }
            }
        }
    }
    let mut needed_by: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, ns) in needs.iter().enumerate() {
        for &j in ns {
            needed_by[j].push(i);
        }
    }
    let sort_key = |i: usize| {
        (
            priority(objects[i].key.kind),
            objects[i].key.name.clone(),
            i,
        )
    };
    let mut waiting: Vec<usize> = needs.iter().map(HashSet::len).collect();
    let mut ready: std::collections::BTreeSet<(u8, String, usize)> =
        (0..n).filter(|&i| waiting[i] == 0).map(sort_key).collect();
    let mut done = vec![false; n];
    let mut sorted = Vec::with_capacity(n);
    while sorted.len() < n {
        let next = match ready.pop_first() {
            Some((_, _, i)) => i,
            None => {
                // A cycle: take the earliest-kind object left.
                let i = (0..n)
                    .filter(|&i| !done[i])
                    .min_by_key(|&i| sort_key(i))
                    .expect("objects are left");
                tracing::debug!(object = %objects[i].key, "breaking a dependency cycle");
                i
            }
        };
        if done[next] {
            continue;
        }
        done[next] = true;
        sorted.push(next);
        for &m in &needed_by[next] {
            waiting[m] = waiting[m].saturating_sub(1);
            if waiting[m] == 0 && !done[m] {
                ready.insert(sort_key(m));
            }
        }
    }
    // Phases: an object needing something created after the data comes after it too.
    let mut phase: Vec<Phase> = objects.iter().map(|o| base_phase(o.key.kind)).collect();
    for &i in &sorted {
        let latest = needs[i].iter().map(|&j| phase[j]).max().unwrap_or_default();
        phase[i] = phase[i].max(latest);
    }
    // Record every need by key, so that a selection can take them along.
    for (i, o) in objects.iter_mut().enumerate() {
        o.phase = phase[i];
    }
    let keys: Vec<ObjectKey> = objects.iter().map(|o| o.key.clone()).collect();
    for (i, o) in objects.iter_mut().enumerate() {
        let mut ks: Vec<ObjectKey> = needs[i].iter().map(|&j| keys[j].clone()).collect();
        ks.sort();
        o.needs = ks;
    }
    let mut slots: Vec<Option<SchemaObject>> = objects.into_iter().map(Some).collect();
    sorted.into_iter().filter_map(|i| slots[i].take()).collect()
}
