//! MySQL/MariaDB DDL from the server's own SHOW CREATE statements.

use sqlx::mysql::MySqlConnection;
use sqlx::Executor;
use upkeep_core::{Engine, TableName};

use super::{err, text};
use crate::native::NativeDdl;
use crate::quote;
use crate::{DbError, Target};

/// `DEFINER=`user`@`host`` ties an object to an account the target may not have.
fn strip_definer(sql: &str) -> String {
    let Some(start) = sql.find("DEFINER=") else {
        return sql.to_owned();
    };
    let rest = &sql[start..];
    // DEFINER=`u`@`h` followed by a space.
    let end = rest.find(|c: char| c.is_whitespace()).unwrap_or(rest.len());
    format!("{}{}", &sql[..start], rest[end..].trim_start())
}

pub(crate) async fn native_ddl(
    conn: &mut MySqlConnection,
    target: &Target,
    tables: &[TableName],
    all: bool,
) -> Result<NativeDdl, DbError> {
    let e = || err(target, "reading the schema's DDL");
    let mut ddl = NativeDdl::new(Engine::Mysql);
    if all {
        // MariaDB sequences, before the tables whose defaults may call NEXTVAL on them; their
        // positions after the data, as mariadb-dump writes them.
        let sequences = conn
            .fetch_all(
                "SELECT TABLE_NAME FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'SEQUENCE' ORDER BY TABLE_NAME",
            )
            .await
            .map_err(e())?;
        for seq in sequences {
            let name = quote::ident(Engine::Mysql, &text(&seq, 0).unwrap_or_default());
            let row = conn
                .fetch_one(format!("SHOW CREATE SEQUENCE {name}").as_str())
                .await
                .map_err(e())?;
            ddl.pre_data.push(text(&row, 1).unwrap_or_default());
            let row = conn
                .fetch_one(format!("SELECT next_not_cached_value FROM {name}").as_str())
                .await
                .map_err(e())?;
            let next = text(&row, 0).unwrap_or_default();
            if next.parse::<i64>().is_ok() {
                ddl.post_data
                    .push(format!("SELECT SETVAL({name}, {next}, 0)"));
            }
        }
    }
    for t in tables {
        let row = conn
            .fetch_one(format!("SHOW CREATE TABLE {}", quote::table(Engine::Mysql, t)).as_str())
            .await
            .map_err(e())?;
        ddl.pre_data.push(text(&row, 1).unwrap_or_default());
    }
    if all {
        let views = conn
            .fetch_all("SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME")
            .await
            .map_err(e())?;
        for v in views {
            let name = text(&v, 0).unwrap_or_default();
            let row = conn
                .fetch_one(
                    format!("SHOW CREATE VIEW {}", quote::ident(Engine::Mysql, &name)).as_str(),
                )
                .await
                .map_err(e())?;
            ddl.post_data
                .push(strip_definer(&text(&row, 1).unwrap_or_default()));
        }
        let routines = conn
            .fetch_all(
                "SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES \
                 WHERE ROUTINE_SCHEMA = DATABASE() ORDER BY ROUTINE_NAME",
            )
            .await
            .map_err(e())?;
        for r in routines {
            let (kind, name) = (
                text(&r, 0).unwrap_or_default(),
                text(&r, 1).unwrap_or_default(),
            );
            let row = conn
                .fetch_one(
                    format!("SHOW CREATE {kind} {}", quote::ident(Engine::Mysql, &name)).as_str(),
                )
                .await
                .map_err(e())?;
            ddl.pre_data
                .push(strip_definer(&text(&row, 2).unwrap_or_default()));
        }
    }
    let triggers = conn
        .fetch_all(
            "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS \
             WHERE TRIGGER_SCHEMA = DATABASE() ORDER BY ACTION_ORDER, TRIGGER_NAME",
        )
        .await
        .map_err(e())?;
    for trg in triggers {
        let table = text(&trg, 1).unwrap_or_default();
        if !tables.iter().any(|t| t.name == table) {
            continue;
        }
        let name = text(&trg, 0).unwrap_or_default();
        let row = conn
            .fetch_one(
                format!("SHOW CREATE TRIGGER {}", quote::ident(Engine::Mysql, &name)).as_str(),
            )
            .await
            .map_err(e())?;
        ddl.post_data
            .push(strip_definer(&text(&row, 2).unwrap_or_default()));
    }
    Ok(ddl)
}

#[cfg(test)]
mod tests {
    #[test]
    fn definers_are_dropped() {
        assert_eq!(
            super::strip_definer("CREATE DEFINER=`root`@`%` TRIGGER t BEFORE INSERT"),
            "CREATE TRIGGER t BEFORE INSERT"
        );
        assert_eq!(
            super::strip_definer("CREATE TABLE t (a int)"),
            "CREATE TABLE t (a int)"
        );
    }
}
