use std::fmt;

/// Which statement a [`PolicyError`] is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementRef {
    index: usize,
    sid: Option<String>,
}

impl StatementRef {
    pub(crate) fn new(index: usize, sid: Option<String>) -> Self {
        StatementRef { index, sid }
    }

    /// Zero-based position in the `Statement` list (0 for a lone object).
    pub fn index(&self) -> usize {
        self.index
    }

    /// The statement's `Sid`, if it has a valid one.
    pub fn sid(&self) -> Option<&str> {
        self.sid.as_deref()
    }
}

impl fmt::Display for StatementRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.sid {
            Some(sid) => write!(f, "statement \"{sid}\""),
            None => write!(f, "Statement[{}]", self.index),
        }
    }
}

/// Why a policy was rejected: where (statement and field) and what is wrong.
///
/// `Display` reads like
/// `invalid policy: statement "AllowSSH", field Condition.StringEqualz: unknown condition operator "StringEqualz" (did you mean "StringEquals"?)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    statement: Option<StatementRef>,
    field: String,
    message: String,
}

impl PolicyError {
    pub(crate) fn document(field: impl Into<String>, message: impl Into<String>) -> Self {
        PolicyError {
            statement: None,
            field: field.into(),
            message: message.into(),
        }
    }

    pub(crate) fn in_statement(
        statement: StatementRef,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        PolicyError {
            statement: Some(statement),
            field: field.into(),
            message: message.into(),
        }
    }

    /// The statement at fault; `None` for errors in the document as a whole.
    pub fn statement(&self) -> Option<&StatementRef> {
        self.statement.as_ref()
    }

    /// The field path within the statement (e.g. `Condition.StringEqualz`,
    /// `Action[1]`) or the top-level field; empty when the JSON itself is bad.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// What is wrong, without the location.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid policy: ")?;
        if let Some(statement) = &self.statement {
            write!(f, "{statement}, ")?;
        }
        if !self.field.is_empty() {
            write!(f, "field {}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for PolicyError {}

/// A "did you mean" hint for near misses such as `StringEqualz` or `stringequals`.
pub(crate) fn suggestion<'a>(given: &str, candidates: impl Iterator<Item = &'a str>) -> String {
    // Element names are short; skipping long input keeps hostile policies cheap.
    if given.len() > 64 {
        return String::new();
    }
    let given_lower = given.to_lowercase();
    candidates
        .map(|c| (edit_distance(&given_lower, &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| format!(" (did you mean \"{c}\"?)"))
        .unwrap_or_default()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut row = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            row.push((prev[j] + cost).min(prev[j + 1] + 1).min(row[j] + 1));
        }
        prev = row;
    }
    prev[b.len()]
}
