//! Engine-specific statements about schema objects that tools need: dropping what a restore
//! recreates, and the roles a PostgreSQL privilege list names.

use upkeep_core::{Engine, ObjectKind, SchemaObject};

use crate::quote;

/// The statement that drops `object` with what depends on it, when it is one a restore with
/// `--clean` replaces (tables, views, sequences, routines, types); `None` otherwise (an index
/// or trigger goes with its table, a schema or extension is created only when missing).
pub fn drop_statement(engine: Engine, object: &SchemaObject) -> Option<String> {
    use ObjectKind as K;
    let name = &object.key.name;
    match engine {
        // PostgreSQL keys are names as the server spells them (quoted where needed).
        Engine::Postgres => {
            let word = match object.kind() {
                K::Table => "TABLE",
                K::View => "VIEW",
                K::MaterializedView => "MATERIALIZED VIEW",
                K::Sequence => "SEQUENCE",
                K::Function => "FUNCTION",
                K::Procedure => "PROCEDURE",
                K::Aggregate => "AGGREGATE",
                K::Type => "TYPE",
                K::Domain => "DOMAIN",
                K::Collation => "COLLATION",
                _ => return None,
            };
            Some(format!("DROP {word} IF EXISTS {name} CASCADE"))
        }
        Engine::Mysql => {
            let word = match object.kind() {
                K::Table => "TABLE",
                K::View => "VIEW",
                K::Sequence => "SEQUENCE",
                K::Function => "FUNCTION",
                K::Procedure => "PROCEDURE",
                K::Event => "EVENT",
                _ => return None,
            };
            Some(format!(
                "DROP {word} IF EXISTS {}",
                quote::ident(Engine::Mysql, name)
            ))
        }
        Engine::Sqlite => {
            let word = match object.kind() {
                K::Table => "TABLE",
                K::View => "VIEW",
                _ => return None,
            };
            Some(format!(
                "DROP {word} IF EXISTS {}",
                quote::ident(Engine::Sqlite, name)
            ))
        }
    }
}

/// The roles a PostgreSQL privilege list (`grantee=privileges/grantor` items, as an object's
/// privileges attribute holds them) grants to; PUBLIC (an empty grantee) is none.
pub fn acl_roles(acl: &str) -> Vec<String> {
    let mut out: Vec<String> =
        acl.split([',', '\n'])
            .filter_map(|item| {
                // Column privileges are listed on lines of their own as `column:items`.
                let item = item.split_once(':').map_or(item, |(before, after)| {
                    if before.contains('=') {
                        item
                    } else {
                        after
                    }
                });
                let (grantee, _) = item.split_once('=')?;
                let grantee = grantee.trim_matches('"').replace("\"\"", "\"");
                (!grantee.is_empty()).then_some(grantee)
            })
            .collect();
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn roles_of_an_acl() {
        assert_eq!(
            super::acl_roles("=r/postgres,\"app user\"=arw/postgres,postgres=arwdDxt/postgres\nname:reader=r/postgres"),
            ["app user", "postgres", "reader"]
        );
    }
}
