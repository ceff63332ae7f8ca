//! Table selection by `--tables` / `--exclude` glob patterns.

use crate::TableName;

/// Glob patterns (`*`, `?`) matched against a table's displayed name (`schema.table`, or just
/// `table` in the default namespace). A pattern without a dot also matches the bare table name
/// in any namespace.
#[derive(Clone, Debug, Default)]
pub struct TableFilter {
    include: Vec<Pattern>,
    exclude: Vec<Pattern>,
}

#[derive(Clone, Debug)]
struct Pattern {
    text: String,
    regex: regex::Regex,
}

impl Pattern {
    fn new(text: &str) -> Self {
        let mut re = String::from("^");
        for ch in text.chars() {
            match ch {
                '*' => re.push_str(".*"),
                '?' => re.push('.'),
                c => re.push_str(&regex::escape(&c.to_string())),
            }
        }
        re.push('$');
        let regex = regex::Regex::new(&re).expect("an escaped glob is a valid regex");
        Self {
            text: text.to_owned(),
            regex,
        }
    }

    fn matches(&self, name: &TableName) -> bool {
        self.regex.is_match(&name.to_string())
            || (!self.text.contains('.') && self.regex.is_match(&name.name))
    }

    fn is_glob(&self) -> bool {
        self.text.contains(['*', '?'])
    }
}

impl TableFilter {
    pub fn new<S: AsRef<str>>(include: &[S], exclude: &[S]) -> Self {
        Self {
            include: include.iter().map(|p| Pattern::new(p.as_ref())).collect(),
            exclude: exclude.iter().map(|p| Pattern::new(p.as_ref())).collect(),
        }
    }

    /// Whether an `--exclude` pattern names `name` (a table or a view).
    pub fn excludes(&self, name: &TableName) -> bool {
        self.exclude.iter().any(|p| p.matches(name))
    }

    pub fn matches(&self, name: &TableName) -> bool {
        (self.include.is_empty() || self.include.iter().any(|p| p.matches(name)))
            && !self.exclude.iter().any(|p| p.matches(name))
    }

    /// Include patterns naming one table (no wildcard) that match none of `names`: a typo in a
    /// cron job's table list must fail, not quietly check less.
    pub fn unmatched_names<'a>(&'a self, names: &[&TableName]) -> Vec<&'a str> {
        self.include
            .iter()
            .filter(|p| !p.is_glob() && !names.iter().any(|n| p.matches(n)))
            .map(|p| p.text.as_str())
            .collect()
    }

    /// The items (tables, manifest entries…) whose names this filter selects, in their order.
    /// A pattern naming one table that matches none, and a selection of nothing, are errors.
    pub fn select<'i, T>(
        &self,
        items: &'i [T],
        name: impl Fn(&T) -> &TableName,
    ) -> Result<Vec<&'i T>, Unselected> {
        let names: Vec<&TableName> = items.iter().map(&name).collect();
        if let Some(missing) = self.unmatched_names(&names).first() {
            return Err(Unselected::Missing((*missing).to_owned()));
        }
        let selected: Vec<&T> = items.iter().filter(|i| self.matches(name(i))).collect();
        if selected.is_empty() {
            return Err(Unselected::Empty);
        }
        Ok(selected)
    }
}

/// Why [`TableFilter::select`] selected nothing usable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unselected {
    /// This pattern names one table, and there is none of that name.
    Missing(String),
    /// No table matches the patterns.
    Empty,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_keeps_order_and_names_what_is_missing() {
        let names = [
            TableName::unqualified("b"),
            TableName::unqualified("a"),
            TableName::unqualified("c"),
        ];
        let by_name = |n: &TableName| n.clone();
        let pick = |inc: &[&str], exc: &[&str]| {
            TableFilter::new(inc, exc)
                .select(&names, |n| n)
                .map(|v| v.into_iter().map(by_name).collect::<Vec<_>>())
        };
        assert_eq!(
            pick(&[], &["a"]).unwrap(),
            [names[0].clone(), names[2].clone()]
        );
        assert_eq!(pick(&["a", "x"], &[]), Err(Unselected::Missing("x".into())));
        assert_eq!(pick(&["z*"], &[]), Err(Unselected::Empty));
        assert_eq!(pick(&["a"], &["a"]), Err(Unselected::Empty));
    }

    #[test]
    fn globs_and_namespaces() {
        let f = TableFilter::new(&["order*", "sales.x"], &["orders_old"]);
        assert!(f.matches(&TableName::unqualified("orders")));
        assert!(f.matches(&TableName::new(Some("shop".into()), "order_lines")));
        assert!(!f.matches(&TableName::unqualified("orders_old")));
        assert!(f.matches(&TableName::new(Some("sales".into()), "x")));
        assert!(!f.matches(&TableName::unqualified("x")));
        let all = TableFilter::default();
        assert!(all.matches(&TableName::unqualified("anything")));
        let names = [TableName::unqualified("a")];
        let refs: Vec<&TableName> = names.iter().collect();
        assert_eq!(
            TableFilter::new(&["a", "b", "c*"], &[]).unmatched_names(&refs),
            vec!["b"]
        );
    }
}
