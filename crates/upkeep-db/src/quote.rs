//! Quoting of identifiers and literals, per engine. Every name that reaches SQL goes through
//! here: names with spaces, quotes, mixed case, unicode and reserved words all work.

use upkeep_core::{Engine, TableName};

/// Quotes an identifier for `engine`.
pub fn ident(engine: Engine, name: &str) -> String {
    match engine {
        Engine::Mysql => format!("`{}`", name.replace('`', "``")),
        Engine::Postgres | Engine::Sqlite => format!("\"{}\"", name.replace('"', "\"\"")),
    }
}

/// Quotes a table name, with its namespace when it has one.
pub fn table(engine: Engine, name: &TableName) -> String {
    match &name.schema {
        Some(s) => format!("{}.{}", ident(engine, s), ident(engine, &name.name)),
        None => ident(engine, &name.name),
    }
}

/// A string literal for `engine`.
pub fn literal(engine: Engine, value: &str) -> String {
    match engine {
        Engine::Mysql => {
            let mut s = String::with_capacity(value.len() + 2);
            s.push('\'');
            for c in value.chars() {
                match c {
                    '\'' => s.push_str("''"),
                    '\\' => s.push_str("\\\\"),
                    '\0' => s.push_str("\\0"),
                    c => s.push(c),
                }
            }
            s.push('\'');
            s
        }
        Engine::Postgres | Engine::Sqlite => format!("'{}'", value.replace('\'', "''")),
    }
}

/// A comma-separated list of quoted identifiers.
pub fn ident_list<S: AsRef<str>>(engine: Engine, names: impl IntoIterator<Item = S>) -> String {
    names
        .into_iter()
        .map(|n| ident(engine, n.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn awkward_names_are_quoted() {
        assert_eq!(
            ident(Engine::Postgres, "Mixed \"Q\""),
            "\"Mixed \"\"Q\"\"\""
        );
        assert_eq!(ident(Engine::Mysql, "a`b"), "`a``b`");
        assert_eq!(
            table(
                Engine::Postgres,
                &TableName::new(Some("s".into()), "select")
            ),
            "\"s\".\"select\""
        );
        assert_eq!(literal(Engine::Mysql, "it's \\"), "'it''s \\\\'");
        assert_eq!(literal(Engine::Postgres, "it's \\"), "'it''s \\'");
    }
}
