//! Schema objects as their engine defines them, for a same-engine restore and for the schema
//! proof: what creates each object, what it needs, when it is created, and its definition as
//! the engine reports it.
//!
//! An engine adapter lists a database's objects in an order that creates them (what an
//! object needs comes before it). A backup stores the list; a restore runs the objects of the
//! [`Phase::PreData`] phase, loads the data, runs those of [`Phase::PostData`], then lists
//! the target's objects the same way and compares ([`prove`]): every object present with an
//! equal definition, or named.

use serde::{Deserialize, Serialize};

use crate::TableName;

/// What kind of object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    Schema,
    Extension,
    Collation,
    Type,
    Domain,
    Sequence,
    Function,
    Procedure,
    Aggregate,
    Table,
    /// A column default set after its table (it may call a function that needs the table).
    Default,
    /// A sequence's owning column (`ALTER SEQUENCE … OWNED BY`).
    SequenceOwner,
    /// A sequence's position (`setval`).
    SequenceValue,
    View,
    MaterializedView,
    PrimaryKey,
    Unique,
    Check,
    Exclusion,
    ForeignKey,
    Index,
    /// A partition's index attached to its partitioned table's index.
    IndexAttach,
    Trigger,
    Rule,
    Policy,
    Statistics,
    Event,
    /// An object of a kind upkeep does not recreate: listed so that the proof names it.
    Other,
}

impl ObjectKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Schema => "schema",
            Self::Extension => "extension",
            Self::Collation => "collation",
            Self::Type => "type",
            Self::Domain => "domain",
            Self::Sequence => "sequence",
            Self::Function => "function",
            Self::Procedure => "procedure",
            Self::Aggregate => "aggregate",
            Self::Table => "table",
            Self::Default => "default",
            Self::SequenceOwner => "sequence owner",
            Self::SequenceValue => "sequence value",
            Self::View => "view",
            Self::MaterializedView => "materialized view",
            Self::PrimaryKey => "primary key",
            Self::Unique => "unique constraint",
            Self::Check => "check constraint",
            Self::Exclusion => "exclusion constraint",
            Self::ForeignKey => "foreign key",
            Self::Index => "index",
            Self::IndexAttach => "index attachment",
            Self::Trigger => "trigger",
            Self::Rule => "rule",
            Self::Policy => "policy",
            Self::Statistics => "statistics",
            Self::Event => "event",
            Self::Other => "object",
        }
    }

    /// Built on one table's rows alone (a key, check, exclusion or index): the restore builds
    /// these per table, in parallel, as soon as the table is loaded.
    pub fn is_table_build(self) -> bool {
        matches!(
            self,
            Self::PrimaryKey | Self::Unique | Self::Check | Self::Exclusion | Self::Index
        )
    }
}

impl std::fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// When an object is created: before the data is loaded, or after.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    #[default]
    PreData,
    PostData,
}

/// An object's kind and name: unique within a database.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectKey {
    pub kind: ObjectKind,
    /// Qualified as the engine spells it (`public.orders`, `public.orders_pkey on
    /// public.orders`, `public.total(integer)`).
    pub name: String,
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind, self.name)
    }
}

/// One schema object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaObject {
    #[serde(flatten)]
    pub key: ObjectKey,
    /// The table it belongs to (its constraints, indexes, triggers, defaults…), which decides
    /// whether a restore of some tables takes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<TableName>,
    /// A view's or materialized view's own name, which `--exclude` patterns match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relation: Option<TableName>,
    #[serde(default)]
    pub phase: Phase,
    /// The statements that create it, in order; empty for an object upkeep does not recreate
    /// ([`ObjectKind::Other`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sql: Vec<String>,
    /// Where its owner is part of its creation (a MySQL definer), the statements that create
    /// it without one, for a restore without owners.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sql_without_owner: Vec<String>,
    /// The object's definition as the engine reports it, which the proof compares.
    pub definition: String,
    /// The objects it needs, which come before it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub needs: Vec<ObjectKey>,
    /// Its owner, with the statement that sets it (restored unless `--no-owner`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Attribute>,
    /// Its privileges, with the statements that grant them (unless `--no-privileges`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privileges: Option<Attribute>,
    /// Its comment, with the statement that sets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<Attribute>,
}

/// An attribute of an object set by statements of its own (owner, privileges, comment): its
/// value as the engine reports it, and the statements.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attribute {
    pub value: String,
    pub sql: Vec<String>,
}

impl SchemaObject {
    pub fn new(kind: ObjectKind, name: impl Into<String>) -> Self {
        Self {
            key: ObjectKey {
                kind,
                name: name.into(),
            },
            table: None,
            relation: None,
            phase: Phase::PreData,
            sql: Vec::new(),
            sql_without_owner: Vec::new(),
            definition: String::new(),
            needs: Vec::new(),
            owner: None,
            privileges: None,
            comment: None,
        }
    }

    pub fn kind(&self) -> ObjectKind {
        self.key.kind
    }
}

/// Which of an object's attributes a restore sets, and so which the proof compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attributes {
    pub owners: bool,
    pub privileges: bool,
}

impl Default for Attributes {
    fn default() -> Self {
        Self {
            owners: true,
            privileges: true,
        }
    }
}

/// The statements that create `object`, with the attributes asked for.
pub fn creation_sql(object: &SchemaObject, attributes: Attributes) -> Vec<String> {
    let mut out = if attributes.owners || object.sql_without_owner.is_empty() {
        object.sql.clone()
    } else {
        object.sql_without_owner.clone()
    };
    if let Some(c) = &object.comment {
        out.extend(c.sql.iter().cloned());
    }
    if let (true, Some(o)) = (attributes.owners, &object.owner) {
        out.extend(o.sql.iter().cloned());
    }
    if let (true, Some(p)) = (attributes.privileges, &object.privileges) {
        out.extend(p.sql.iter().cloned());
    }
    out
}

/// The objects `selected` says to take and everything they need, in the list's order.
pub fn with_needs(
    objects: &[SchemaObject],
    selected: impl Fn(&SchemaObject) -> bool,
) -> Vec<&SchemaObject> {
    let index: std::collections::HashMap<&ObjectKey, usize> = objects
        .iter()
        .enumerate()
        .map(|(i, o)| (&o.key, i))
        .collect();
    let mut take = vec![false; objects.len()];
    let mut stack: Vec<usize> = (0..objects.len())
        .filter(|&i| selected(&objects[i]))
        .collect();
    while let Some(i) = stack.pop() {
        if std::mem::replace(&mut take[i], true) {
            continue;
        }
        stack.extend(
            objects[i]
                .needs
                .iter()
                .filter_map(|k| index.get(k).copied()),
        );
    }
    objects
        .iter()
        .zip(take)
        .filter(|(_, t)| *t)
        .map(|(o, _)| o)
        .collect()
}

/// Which objects go with a selection of tables.
#[derive(Clone, Copy)]
pub enum Selection<'a> {
    /// Every object (no `--tables` or `--exclude`).
    All,
    /// `--tables`: the tables' objects and what they need, and no object of another table
    /// (a foreign key to a table not taken is left out).
    Tables(&'a std::collections::HashSet<&'a TableName>),
    /// `--exclude` alone: every object but those of the tables left out, the views the
    /// patterns name, and whatever needs them.
    Except(
        &'a std::collections::HashSet<&'a TableName>,
        &'a dyn Fn(&TableName) -> bool,
    ),
}

/// The objects a selection takes, in the list's order, with the positions of the sequences
/// taken.
pub fn select_objects<'a>(
    objects: &'a [SchemaObject],
    selection: Selection<'_>,
) -> Vec<&'a SchemaObject> {
    let tables = match selection {
        Selection::All => return objects.iter().collect(),
        Selection::Tables(t) | Selection::Except(t, _) => t,
    };
    let owner_of: std::collections::HashMap<&ObjectKey, Option<&TableName>> =
        objects.iter().map(|o| (&o.key, o.table.as_ref())).collect();
    // An object of another table, or one that needs an object of another table.
    let foreign = |o: &SchemaObject| {
        o.table.as_ref().is_some_and(|t| !tables.contains(t))
            || o.needs.iter().any(|k| {
                owner_of
                    .get(k)
                    .copied()
                    .flatten()
                    .is_some_and(|t| !tables.contains(t))
            })
    };
    let mut chosen: Vec<&SchemaObject> = match selection {
        Selection::Except(_, excluded) => {
            // Dropped: other tables' objects, excluded views, and what needs them.
            let mut dropped: std::collections::HashSet<&ObjectKey> = objects
                .iter()
                .filter(|o| foreign(o) || o.relation.as_ref().is_some_and(excluded))
                .map(|o| &o.key)
                .collect();
            // The list is in creation order: a need comes before what needs it.
            for o in objects {
                if o.needs.iter().any(|k| dropped.contains(k)) {
                    dropped.insert(&o.key);
                }
            }
            objects
                .iter()
                .filter(|o| !dropped.contains(&o.key))
                .collect()
        }
        _ => with_needs(objects, |o| {
            o.table.as_ref().is_some_and(|t| tables.contains(t)) && !foreign(o)
        })
        .into_iter()
        .filter(|o| !foreign(o))
        .collect(),
    };
    let taken: std::collections::HashSet<&ObjectKey> = chosen.iter().map(|o| &o.key).collect();
    let positions: Vec<&SchemaObject> = objects
        .iter()
        .filter(|o| {
            matches!(
                o.kind(),
                ObjectKind::SequenceValue | ObjectKind::SequenceOwner
            ) && !taken.contains(&o.key)
                && !o.needs.is_empty()
                && o.needs.iter().all(|k| taken.contains(k))
        })
        .collect();
    chosen.extend(positions);
    // Back in the list's order.
    let order: std::collections::HashMap<&ObjectKey, usize> = objects
        .iter()
        .enumerate()
        .map(|(i, o)| (&o.key, i))
        .collect();
    chosen.sort_by_key(|o| order.get(&o.key).copied().unwrap_or(usize::MAX));
    chosen
}

/// What the proof found for one object of the source.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum ObjectStatus {
    /// Present in the target with the same definition (and owner, privileges and comment,
    /// where they were restored).
    Equal,
    /// Recreated in another engine's terms with the same meaning.
    Translated { detail: String },
    /// Recreated with less than the source had (a default, identity, a check…).
    Weakened { detail: String },
    /// Present, but defined otherwise.
    Different {
        attribute: String,
        expected: String,
        found: String,
    },
    /// Not in the target.
    Missing,
    /// Not recreated by this restore, and why.
    NotCarried { reason: String },
}

impl ObjectStatus {
    /// Whether the object is in the target as the source had it.
    pub fn is_equal(&self) -> bool {
        matches!(self, Self::Equal)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectCheck {
    #[serde(flatten)]
    pub key: ObjectKey,
    #[serde(flatten)]
    pub status: ObjectStatus,
}

/// Compares the source's objects with the target's, after a same-engine restore: each source
/// object present and defined alike, else named. `attributes` says which of owners and
/// privileges the restore set (the others are not compared).
pub fn prove(
    source: &[&SchemaObject],
    target: &[SchemaObject],
    attributes: Attributes,
) -> Vec<ObjectCheck> {
    let found: std::collections::HashMap<&ObjectKey, &SchemaObject> =
        target.iter().map(|o| (&o.key, o)).collect();
    source
        .iter()
        .map(|s| {
            let status = match found.get(&s.key) {
                None if s.kind() == ObjectKind::Other => ObjectStatus::NotCarried {
                    reason: format!("upkeep does not recreate it ({})", s.definition),
                },
                None => ObjectStatus::Missing,
                Some(t) => compare(s, t, attributes),
            };
            ObjectCheck {
                key: s.key.clone(),
                status,
            }
        })
        .collect()
}

fn compare(s: &SchemaObject, t: &SchemaObject, attributes: Attributes) -> ObjectStatus {
    let differ = |attribute: &str, expected: &str, found: &str| ObjectStatus::Different {
        attribute: attribute.to_owned(),
        expected: expected.to_owned(),
        found: found.to_owned(),
    };
    if !same_definition(&s.definition, &t.definition) {
        return differ("definition", &s.definition, &t.definition);
    }
    let value = |a: &Option<Attribute>| a.as_ref().map(|a| a.value.clone()).unwrap_or_default();
    if value(&s.comment) != value(&t.comment) {
        return differ("comment", &value(&s.comment), &value(&t.comment));
    }
    if attributes.owners && s.owner.is_some() && value(&s.owner) != value(&t.owner) {
        return differ("owner", &value(&s.owner), &value(&t.owner));
    }
    if attributes.privileges && value(&s.privileges) != value(&t.privileges) {
        return differ("privileges", &value(&s.privileges), &value(&t.privileges));
    }
    ObjectStatus::Equal
}

/// Definitions are equal when their text is, up to white space, or when they differ only in
/// casts and parentheses: PostgreSQL does not deparse every expression to a fixed point (a
/// `varchar` compared `IN (…)` comes back with its casts moved after one round trip).
pub fn same_definition(a: &str, b: &str) -> bool {
    let squeeze = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    if squeeze(a) == squeeze(b) {
        return true;
    }
    strip_casts(a) == strip_casts(b)
}

/// The text without `::type` casts (a type name, maybe qualified, quoted, of several words,
/// with a modifier or `[]`), parentheses and white space.
fn strip_casts(s: &str) -> String {
    const MULTI_WORD: [&str; 6] = [
        " varying",
        " precision",
        " with time zone",
        " without time zone",
        " zone",
        " time zone",
    ];
    let chars: Vec<char> = s.chars().collect();
    let rest = |i: usize| chars[i..].iter().collect::<String>();
    let mut out = String::with_capacity(s.len());
    let mut quoted = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        if c == '\'' {
            quoted = !quoted;
            out.push(c);
            continue;
        }
        if quoted {
            out.push(c);
            continue;
        }
        if c == ':' && chars.get(i) == Some(&':') {
            i += 1;
            let mut depth = 0usize;
            while i < chars.len() {
                let n = chars[i];
                if n == '(' {
                    depth += 1;
                } else if n == ')' && depth > 0 {
                    depth -= 1;
                } else if depth == 0 && n == ' ' {
                    let tail = rest(i);
                    match MULTI_WORD.iter().find(|w| tail.starts_with(*w)) {
                        Some(w) => {
                            i += w.chars().count();
                            continue;
                        }
                        None => break,
                    }
                } else if depth == 0
                    && !(n.is_alphanumeric() || matches!(n, '_' | '.' | '"' | '[' | ']'))
                {
                    break;
                }
                i += 1;
            }
            continue;
        }
        if c == '(' || c == ')' || c.is_whitespace() {
            continue;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_that_differ_in_casts_only_are_the_same() {
        assert!(same_definition(
            "CHECK (((kind)::text = ANY ((ARRAY['a'::character varying, 'b'::character varying])::text[])))",
            "CHECK (((kind)::text = ANY (ARRAY[('a'::character varying)::text, ('b'::character varying)::text])))"
        ));
        assert!(same_definition("a  b\n c", "a b c"));
        assert!(!same_definition("CHECK ((x > 0))", "CHECK ((x > 1))"));
        assert!(!same_definition("'a::b'", "'a'"));
    }

    #[test]
    fn needs_are_taken_along() {
        let mut a = SchemaObject::new(ObjectKind::Type, "public.mood");
        a.definition = "enum".into();
        let mut b = SchemaObject::new(ObjectKind::Table, "public.t");
        b.needs.push(a.key.clone());
        let c = SchemaObject::new(ObjectKind::Table, "public.u");
        let all = [a, b, c];
        let taken: Vec<&str> = with_needs(&all, |o| o.key.name == "public.t")
            .iter()
            .map(|o| o.key.name.as_str())
            .collect();
        assert_eq!(taken, ["public.mood", "public.t"]);
    }

    #[test]
    fn the_proof_names_what_is_missing_or_different() {
        let mut t = SchemaObject::new(ObjectKind::Table, "public.t");
        t.definition = "(id integer)".into();
        let mut v = SchemaObject::new(ObjectKind::View, "public.v");
        v.definition = "SELECT 1".into();
        let mut v2 = v.clone();
        v2.definition = "SELECT 2".into();
        let checks = prove(&[&t, &v], &[v2], Attributes::default());
        assert_eq!(checks[0].status, ObjectStatus::Missing);
        assert!(matches!(checks[1].status, ObjectStatus::Different { .. }));
    }
}
