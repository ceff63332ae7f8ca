//! MySQL/MariaDB schema objects from the server's own `SHOW CREATE` statements: sequences,
//! tables (keys, indexes, checks, partitions, generated and invisible columns are in their
//! `CREATE TABLE`), routines, views in the order they read each other, triggers and events,
//! each created under the `sql_mode`, character set and collation it was defined with (`||`
//! is OR by default and CONCAT under `PIPES_AS_CONCAT`: a trigger recreated under another
//! mode changes its meaning).

use std::collections::{BTreeSet, HashMap};

use sqlx::mysql::MySqlConnection;
use sqlx::Executor;
use upkeep_core::{Attribute, Engine, ObjectKey, ObjectKind, Phase, SchemaObject, TableName};

use super::{err, text};
use crate::quote;
use crate::{DbError, Target};

fn ident(name: &str) -> String {
    quote::ident(Engine::Mysql, name)
}

/// `DEFINER=`u`@`h`` and the statement without it.
pub(crate) fn split_definer(sql: &str) -> (Option<String>, String) {
    let Some(start) = sql.find("DEFINER=") else {
        return (None, sql.to_owned());
    };
    let rest = &sql[start + "DEFINER=".len()..];
    // `user`@`host`, each quoted with backticks (doubled inside).
    let mut end = 0;
    let mut quoted = false;
    let bytes = rest.as_bytes();
    while end < bytes.len() {
        let b = bytes[end];
        if b == b'`' {
            if quoted && bytes.get(end + 1) == Some(&b'`') {
                end += 2;
                continue;
            }
            quoted = !quoted;
        } else if !quoted && b.is_ascii_whitespace() {
            break;
        }
        end += 1;
    }
    let definer = rest[..end].to_owned();
    let without = format!("{}{}", &sql[..start], rest[end..].trim_start());
    (Some(definer), without)
}

/// What a routine, trigger or event was defined under, from its `SHOW CREATE` row.
struct DefinedUnder {
    sql_mode: String,
    charset: String,
    collation: String,
    time_zone: Option<String>,
}

impl DefinedUnder {
    /// `statement` run under these settings, and the session's own restored after it.
    fn wrap(&self, statement: &str) -> Vec<String> {
        let mut out = vec![
            "SET @upkeep_sql_mode = @@SESSION.sql_mode, @upkeep_time_zone = @@SESSION.time_zone"
                .to_owned(),
            format!(
                "SET SESSION sql_mode = {}",
                quote::literal(Engine::Mysql, &self.sql_mode)
            ),
            format!(
                "SET NAMES {} COLLATE {}",
                quote::literal(Engine::Mysql, &self.charset),
                quote::literal(Engine::Mysql, &self.collation)
            ),
        ];
        if let Some(tz) = &self.time_zone {
            out.push(format!(
                "SET SESSION time_zone = {}",
                quote::literal(Engine::Mysql, tz)
            ));
        }
        out.push(statement.to_owned());
        out.push(
            "SET SESSION sql_mode = @upkeep_sql_mode, time_zone = @upkeep_time_zone".to_owned(),
        );
        out.push("SET NAMES utf8mb4".to_owned());
        out
    }

    fn describe(&self) -> String {
        let mut d = format!(
            "sql_mode={} character_set_client={} collation_connection={}",
            self.sql_mode, self.charset, self.collation
        );
        if let Some(tz) = &self.time_zone {
            d.push_str(&format!(" time_zone={tz}"));
        }
        d
    }
}

/// A `SHOW CREATE` row's text by column name.
fn column(row: &sqlx::mysql::MySqlRow, name: &str) -> Option<String> {
    use sqlx::Row;
    let i = row
        .columns()
        .iter()
        .position(|c| sqlx::Column::name(c).eq_ignore_ascii_case(name))?;
    text(row, i)
}

fn definer_attr(definer: Option<String>) -> Option<Attribute> {
    definer.map(|d| Attribute {
        value: d,
        sql: Vec::new(),
    })
}

/// Reads every object of the connection's database.
pub(crate) async fn schema_objects(
    conn: &mut MySqlConnection,
    target: &Target,
) -> Result<Vec<SchemaObject>, DbError> {
    let e = |what: &'static str| err(target, what);
    let database = conn
        .fetch_one("SELECT DATABASE()")
        .await
        .map_err(e("reading the database's name"))?;
    let database = text(&database, 0).unwrap_or_default();
    let mut out: Vec<SchemaObject> = Vec::new();

    // Sequences, before the tables whose defaults call NEXTVAL on them.
    let names = conn
        .fetch_all(
            "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME",
        )
        .await
        .map_err(e("listing tables"))?;
    let mut tables = Vec::new();
    for row in &names {
        let (name, kind) = (
            text(row, 0).unwrap_or_default(),
            text(row, 1).unwrap_or_default(),
        );
        match kind.as_str() {
            "SEQUENCE" => {
                let q = ident(&name);
                let row = conn
                    .fetch_one(format!("SHOW CREATE SEQUENCE {q}").as_str())
                    .await
                    .map_err(e("reading a sequence"))?;
                let create = text(&row, 1).unwrap_or_default();
                let mut o = SchemaObject::new(ObjectKind::Sequence, name.clone());
                o.definition = create.clone();
                o.sql = vec![create];
                let key = o.key.clone();
                out.push(o);
                let row = conn
                    .fetch_one(format!("SELECT next_not_cached_value FROM {q}").as_str())
                    .await
                    .map_err(e("reading a sequence's position"))?;
                if let Some(next) = text(&row, 0).filter(|v| v.parse::<i64>().is_ok()) {
                    let mut v = SchemaObject::new(ObjectKind::SequenceValue, name.clone());
                    v.phase = Phase::PostData;
                    v.definition = next.clone();
                    v.sql = vec![format!("SELECT SETVAL({q}, {next}, 0)")];
                    v.needs.push(key);
                    out.push(v);
                }
            }
            "BASE TABLE" | "SYSTEM VERSIONED" => tables.push(name),
            _ => {}
        }
    }
    let sequences: Vec<ObjectKey> = out
        .iter()
        .filter(|o| o.key.kind == ObjectKind::Sequence)
        .map(|o| o.key.clone())
        .collect();
    for name in &tables {
        let row = conn
            .fetch_one(format!("SHOW CREATE TABLE {}", ident(name)).as_str())
            .await
            .map_err(e("reading a table's definition"))?;
        // A default calling NEXTVAL names its sequence with this database's name
        // (`` `shop`.`seq` ``): unqualified, it is the restored database's own.
        let create = text(&row, 1)
            .unwrap_or_default()
            .replace(&format!("{}.", ident(&database)), "");
        let mut o = SchemaObject::new(ObjectKind::Table, name.clone());
        o.table = Some(TableName::unqualified(name.clone()));
        // The counter moves with every insert: not part of the definition.
        o.definition = without_auto_increment(&create);
        o.needs = sequences
            .iter()
            .filter(|s| create.contains(&ident(&s.name)))
            .cloned()
            .collect();
        o.sql = vec![create];
        out.push(o);
    }

    // Routines before views: a view may call a function, and a routine's body is not checked
    // when it is created.
    let routines = conn
        .fetch_all(
            "SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES \
             WHERE ROUTINE_SCHEMA = DATABASE() ORDER BY ROUTINE_NAME, ROUTINE_TYPE",
        )
        .await
        .map_err(e("listing routines"))?;
    for r in routines {
        let (kind, name) = (
            text(&r, 0).unwrap_or_default(),
            text(&r, 1).unwrap_or_default(),
        );
        let row = conn
            .fetch_one(format!("SHOW CREATE {kind} {}", ident(&name)).as_str())
            .await
            .map_err(e("reading a routine"))?;
        let create = column(&row, &format!("Create {}", title(&kind))).unwrap_or_default();
        let under = defined_under(&row);
        let object_kind = if kind == "PROCEDURE" {
            ObjectKind::Procedure
        } else {
            ObjectKind::Function
        };
        out.push(wrapped(
            object_kind,
            name,
            None,
            Phase::PreData,
            &create,
            &under,
        ));
    }

    // Views, each after the views it reads.
    let views = conn
        .fetch_all(
            "SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = DATABASE() \
             ORDER BY TABLE_NAME",
        )
        .await
        .map_err(e("listing views"))?;
    let mut view_defs: Vec<(String, String)> = Vec::new();
    for v in views {
        let name = text(&v, 0).unwrap_or_default();
        let row = conn
            .fetch_one(format!("SHOW CREATE VIEW {}", ident(&name)).as_str())
            .await
            .map_err(e("reading a view"))?;
        view_defs.push((name, column(&row, "Create View").unwrap_or_default()));
    }
    let routine_keys: Vec<ObjectKey> = out
        .iter()
        .filter(|o| matches!(o.key.kind, ObjectKind::Function | ObjectKind::Procedure))
        .map(|o| o.key.clone())
        .collect();
    for (name, create) in order_views(&view_defs, &database) {
        let (definer, plain) = split_definer(&create);
        let mut o = SchemaObject::new(ObjectKind::View, name.clone());
        o.relation = Some(TableName::unqualified(name.clone()));
        o.phase = Phase::PostData;
        o.definition = plain.clone();
        o.sql = vec![create.clone()];
        o.sql_without_owner = vec![plain];
        o.owner = definer_attr(definer);
        o.needs = view_defs
            .iter()
            .filter(|(other, _)| *other != name && reads(&create, &database, other))
            .map(|(other, _)| ObjectKey {
                kind: ObjectKind::View,
                name: other.clone(),
            })
            .chain(
                routine_keys
                    .iter()
                    .filter(|k| reads(&create, &database, &k.name))
                    .cloned(),
            )
            .collect();
        out.push(o);
    }

    // Triggers, in their order of action per table and event.
    let triggers = conn
        .fetch_all(
            "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS \
             WHERE TRIGGER_SCHEMA = DATABASE() \
             ORDER BY EVENT_OBJECT_TABLE, EVENT_MANIPULATION, ACTION_TIMING, ACTION_ORDER",
        )
        .await
        .map_err(e("listing triggers"))?;
    for t in triggers {
        let (name, table) = (
            text(&t, 0).unwrap_or_default(),
            text(&t, 1).unwrap_or_default(),
        );
        let row = conn
            .fetch_one(format!("SHOW CREATE TRIGGER {}", ident(&name)).as_str())
            .await
            .map_err(e("reading a trigger"))?;
        let create = column(&row, "SQL Original Statement").unwrap_or_default();
        let under = defined_under(&row);
        let mut o = wrapped(
            ObjectKind::Trigger,
            format!("{name} on {table}"),
            Some(TableName::unqualified(table.clone())),
            Phase::PostData,
            &create,
            &under,
        );
        o.needs.push(ObjectKey {
            kind: ObjectKind::Table,
            name: table,
        });
        out.push(o);
    }

    // Events: the scheduler's, after everything else.
    let events = conn
        .fetch_all(
            "SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = DATABASE() \
             ORDER BY EVENT_NAME",
        )
        .await
        .map_err(e("listing events"))?;
    for ev in events {
        let name = text(&ev, 0).unwrap_or_default();
        let row = conn
            .fetch_one(format!("SHOW CREATE EVENT {}", ident(&name)).as_str())
            .await
            .map_err(e("reading an event"))?;
        let create = column(&row, "Create Event").unwrap_or_default();
        let mut under = defined_under(&row);
        under.time_zone = column(&row, "time_zone");
        out.push(wrapped(
            ObjectKind::Event,
            name,
            None,
            Phase::PostData,
            &create,
            &under,
        ));
    }
    Ok(out)
}

/// "PROCEDURE" → "Procedure", as `SHOW CREATE` names its column.
fn title(word: &str) -> String {
    let lower = word.to_ascii_lowercase();
    let mut chars = lower.chars();
    chars
        .next()
        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

fn defined_under(row: &sqlx::mysql::MySqlRow) -> DefinedUnder {
    DefinedUnder {
        sql_mode: column(row, "sql_mode").unwrap_or_default(),
        charset: column(row, "character_set_client").unwrap_or_else(|| "utf8mb4".into()),
        collation: column(row, "collation_connection")
            .unwrap_or_else(|| "utf8mb4_general_ci".into()),
        time_zone: None,
    }
}

/// A routine, trigger or event: created under its own settings, with its definer as its
/// owner.
fn wrapped(
    kind: ObjectKind,
    name: String,
    table: Option<TableName>,
    phase: Phase,
    create: &str,
    under: &DefinedUnder,
) -> SchemaObject {
    let (definer, plain) = split_definer(create);
    let mut o = SchemaObject::new(kind, name);
    o.table = table;
    o.phase = phase;
    o.definition = format!("{plain} ({})", under.describe());
    o.sql = under.wrap(create);
    o.sql_without_owner = under.wrap(&plain);
    o.owner = definer_attr(definer);
    o
}

/// `CREATE TABLE …` without its `AUTO_INCREMENT=N` table option.
pub(crate) fn without_auto_increment(create: &str) -> String {
    let Some(at) = create.rfind(" AUTO_INCREMENT=") else {
        return create.to_owned();
    };
    let rest = &create[at + " AUTO_INCREMENT=".len()..];
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    format!("{}{}", &create[..at], &rest[digits..])
}

/// Whether a view's definition reads `name`: SHOW CREATE VIEW quotes every name it reads
/// (`` `name` ``, or `` `db`.`name` `` in another database). A column of the same name gives
/// an order that is still valid.
fn reads(create: &str, database: &str, name: &str) -> bool {
    let _ = database;
    create
        .split_once(" AS ")
        .is_some_and(|(_, body)| body.contains(&ident(name)))
}

/// The views in an order that creates them: each after those it reads, else by name.
fn order_views<'a>(views: &'a [(String, String)], database: &str) -> Vec<(String, String)> {
    let mut needs: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    for (name, create) in views {
        needs.insert(
            name,
            views
                .iter()
                .filter(|(other, _)| other != name && reads(create, database, other))
                .map(|(other, _)| other.as_str())
                .collect(),
        );
    }
    let mut done: BTreeSet<&'a str> = BTreeSet::new();
    let mut out = Vec::with_capacity(views.len());
    while out.len() < views.len() {
        let next = views
            .iter()
            .find(|(name, _)| {
                !done.contains(name.as_str())
                    && needs[name.as_str()].iter().all(|n| done.contains(n))
            })
            // A cycle cannot be created; should one show, the rest go by name.
            .or_else(|| views.iter().find(|(name, _)| !done.contains(name.as_str())))
            .expect("a view is left");
        done.insert(&next.0);
        out.push(next.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definers_are_split_off() {
        assert_eq!(
            split_definer("CREATE DEFINER=`ro``ot`@`%` TRIGGER t BEFORE INSERT"),
            (
                Some("`ro``ot`@`%`".to_owned()),
                "CREATE TRIGGER t BEFORE INSERT".to_owned()
            )
        );
        assert_eq!(
            split_definer("CREATE TABLE t (a int)"),
            (None, "CREATE TABLE t (a int)".to_owned())
        );
    }

    #[test]
    fn counters_are_not_definitions() {
        assert_eq!(
            without_auto_increment(
                "CREATE TABLE `t` (\n  `id` int\n) ENGINE=InnoDB AUTO_INCREMENT=42 DEFAULT CHARSET=utf8mb4"
            ),
            "CREATE TABLE `t` (\n  `id` int\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
        );
    }

    #[test]
    fn views_come_after_the_views_they_read() {
        let v = |n: &str, body: &str| (n.to_owned(), format!("CREATE VIEW `{n}` AS {body}"));
        let views = [
            v("a_top", "select * from `z_base`"),
            v("m_mid", "select `a_top`.`id` from `db`.`a_top`"),
            v("z_base", "select 1"),
        ];
        let names: Vec<String> = order_views(&views, "db")
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["z_base", "a_top", "m_mid"]);
    }
}
