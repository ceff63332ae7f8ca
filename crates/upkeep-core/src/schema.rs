//! The engine-neutral schema model: what introspection produces for every engine and what
//! every tool reads. Plain serializable data.

use serde::{Deserialize, Serialize};

use crate::LogicalType;

/// The database engine a schema was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    Postgres,
    Mysql,
    Sqlite,
}

impl Engine {
    pub fn name(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Mysql => "mysql",
            Self::Sqlite => "sqlite",
        }
    }
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A table's name: its namespace (PostgreSQL schema, MySQL database) and its own name.
///
/// `schema` is `None` for the connection's default namespace (PostgreSQL `public`, the URL's
/// MySQL database, SQLite `main`), so that the same table has the same name in every engine.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TableName {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    pub name: String,
}

impl TableName {
    pub fn new(schema: Option<String>, name: impl Into<String>) -> Self {
        Self {
            schema,
            name: name.into(),
        }
    }

    pub fn unqualified(name: impl Into<String>) -> Self {
        Self {
            schema: None,
            name: name.into(),
        }
    }
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.schema {
            Some(s) => write!(f, "{s}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// A database's schema.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Schema {
    pub tables: Vec<Table>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub views: Vec<View>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sequences: Vec<Sequence>,
}

impl Schema {
    pub fn table(&self, name: &TableName) -> Option<&Table> {
        self.tables.iter().find(|t| &t.name == name)
    }
}

/// How a table stores its rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableKind {
    #[default]
    Table,
    /// A PostgreSQL partitioned table: stores nothing itself, its rows are its partitions'.
    Partitioned,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Table {
    pub name: TableName,
    #[serde(default)]
    pub kind: TableKind,
    pub columns: Vec<Column>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_key: Option<Key>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unique: Vec<Key>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub indexes: Vec<Index>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub foreign_keys: Vec<ForeignKey>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Check>,
    /// The engine's row estimate from its statistics (not a count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_rows: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// A PostgreSQL partition: the partitioned table it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_of: Option<TableName>,
}

impl Table {
    /// Positions of the columns read as `json`.
    pub fn json_columns(&self) -> Vec<usize> {
        self.columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.logical == LogicalType::Json)
            .map(|(i, _)| i)
            .collect()
    }

    /// This table with its `json` columns read as text: the JSON as the server prints it, as
    /// backups store it (see [`crate::canonicalize_json`]).
    pub fn with_json_as_text(&self) -> Table {
        let mut t = self.clone();
        for c in &mut t.columns {
            if c.logical == LogicalType::Json {
                c.logical = LogicalType::Text;
            }
        }
        t
    }

    /// The columns a writer gives values for: all but the generated ones, which the engine
    /// computes.
    pub fn written_columns(&self) -> impl Iterator<Item = &Column> + '_ {
        self.columns.iter().filter(|c| c.generated.is_none())
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The key a reader can split the table on: the primary key, else the first unique key
    /// whose columns are all NOT NULL. `None` when the table has neither.
    pub fn split_key(&self) -> Option<&Key> {
        self.primary_key.as_ref().or_else(|| {
            self.unique.iter().find(|k| {
                k.columns
                    .iter()
                    .all(|c| self.column(c).is_some_and(|col| !col.nullable))
            })
        })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    /// The type as the engine declares it (`numeric(12,2)`, `varchar(20)`, `bigint unsigned`).
    pub native_type: String,
    pub logical: LogicalType,
    pub nullable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    /// The expression of a generated column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated: Option<String>,
    /// Length, precision and scale where the type has them; used to map the column to another
    /// engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<u32>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unsigned: bool,
}

impl Column {
    /// A nullable column of a logical type with no engine details (for generated schemas).
    pub fn new(name: impl Into<String>, logical: LogicalType) -> Self {
        Self {
            name: name.into(),
            native_type: String::new(),
            logical,
            nullable: true,
            default: None,
            identity: None,
            generated: None,
            length: None,
            precision: None,
            scale: None,
            unsigned: false,
        }
    }
}

/// An identity or auto-increment column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Identity {
    /// PostgreSQL `GENERATED ALWAYS AS IDENTITY`.
    Always,
    /// PostgreSQL `GENERATED BY DEFAULT AS IDENTITY`, `serial`.
    ByDefault,
    /// MySQL `AUTO_INCREMENT`, SQLite `AUTOINCREMENT` or a rowid alias.
    AutoIncrement,
}

/// A primary or unique key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Key {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub columns: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    pub name: String,
    pub columns: Vec<String>,
    pub unique: bool,
    /// The engine's own definition (`CREATE INDEX …`) where it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignKey {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub columns: Vec<String>,
    pub references: TableName,
    pub referenced_columns: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_delete: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_update: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub expression: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    pub name: TableName,
    pub definition: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sequence {
    pub name: TableName,
    /// The last value handed out, if any has been.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_value: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub increment: Option<i64>,
    /// The column the sequence belongs to (`serial`, identity, auto-increment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owned_by: Option<(TableName, String)>,
}

/// A half-open range of a table's split key, `[lower, upper)`; `None` is unbounded.
///
/// Bounds are SQL literals of the key's leading columns, rendered by the engine that planned
/// them, and are shown as they are in reports.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lower: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upper: Option<Vec<String>>,
}

impl KeyRange {
    pub const ALL: Self = Self {
        lower: None,
        upper: None,
    };
}

impl std::fmt::Display for KeyRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |b: &Option<Vec<String>>, open: &str| match b {
            None => open.to_owned(),
            Some(v) if v.len() == 1 => v[0].clone(),
            Some(v) => format!("({})", v.join(", ")),
        };
        write!(
            f,
            "[{} .. {})",
            show(&self.lower, "-∞"),
            show(&self.upper, "+∞")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_key_prefers_primary_then_not_null_unique() {
        let mut t = Table {
            name: TableName::unqualified("t"),
            kind: TableKind::Table,
            columns: vec![Column::new("a", LogicalType::Int), {
                let mut c = Column::new("b", LogicalType::Text);
                c.nullable = false;
                c
            }],
            primary_key: None,
            unique: vec![
                Key {
                    name: None,
                    columns: vec!["a".into()],
                },
                Key {
                    name: None,
                    columns: vec!["b".into()],
                },
            ],
            indexes: vec![],
            foreign_keys: vec![],
            checks: vec![],
            estimated_rows: None,
            comment: None,
            partition_of: None,
        };
        assert_eq!(t.split_key().unwrap().columns, vec!["b"]);
        t.primary_key = Some(Key {
            name: None,
            columns: vec!["a".into()],
        });
        assert_eq!(t.split_key().unwrap().columns, vec!["a"]);
        assert_eq!(KeyRange::ALL.to_string(), "[-∞ .. +∞)");
    }
}
