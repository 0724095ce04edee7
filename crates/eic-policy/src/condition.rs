//! The `Condition` element: operators, their values, and evaluation.

use std::cmp::Ordering;

use crate::context::RequestContext;
use crate::error::suggestion;
use crate::json::Json;
use crate::scalar::{self, Cidr};
use crate::template::{parse_parts, Glob, Part, Template};

/// An error inside the `Condition` element: the field path below
/// `Condition` and a message.
pub(crate) type FieldError = (String, String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Qualifier {
    None,
    ForAnyValue,
    ForAllValues,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    fn holds(self, ord: Ordering) -> bool {
        match self {
            Cmp::Eq => ord == Ordering::Equal,
            Cmp::Lt => ord == Ordering::Less,
            Cmp::Le => ord != Ordering::Greater,
            Cmp::Gt => ord == Ordering::Greater,
            Cmp::Ge => ord != Ordering::Less,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    String,
    StringIgnoreCase,
    StringLike,
    Numeric(Cmp),
    Date(Cmp),
    Bool,
    Ip,
    Arn,
    Null,
}

/// Every operator IAM defines, without qualifier or `IfExists`:
/// (name, kind, negated).
const OPERATORS: &[(&str, Kind, bool)] = &[
    ("StringEquals", Kind::String, false),
    ("StringNotEquals", Kind::String, true),
    ("StringEqualsIgnoreCase", Kind::StringIgnoreCase, false),
    ("StringNotEqualsIgnoreCase", Kind::StringIgnoreCase, true),
    ("StringLike", Kind::StringLike, false),
    ("StringNotLike", Kind::StringLike, true),
    ("NumericEquals", Kind::Numeric(Cmp::Eq), false),
    ("NumericNotEquals", Kind::Numeric(Cmp::Eq), true),
    ("NumericLessThan", Kind::Numeric(Cmp::Lt), false),
    ("NumericLessThanEquals", Kind::Numeric(Cmp::Le), false),
    ("NumericGreaterThan", Kind::Numeric(Cmp::Gt), false),
    ("NumericGreaterThanEquals", Kind::Numeric(Cmp::Ge), false),
    ("DateEquals", Kind::Date(Cmp::Eq), false),
    ("DateNotEquals", Kind::Date(Cmp::Eq), true),
    ("DateLessThan", Kind::Date(Cmp::Lt), false),
    ("DateLessThanEquals", Kind::Date(Cmp::Le), false),
    ("DateGreaterThan", Kind::Date(Cmp::Gt), false),
    ("DateGreaterThanEquals", Kind::Date(Cmp::Ge), false),
    ("Bool", Kind::Bool, false),
    ("IpAddress", Kind::Ip, false),
    ("NotIpAddress", Kind::Ip, true),
    ("ArnEquals", Kind::Arn, false),
    ("ArnLike", Kind::Arn, false),
    ("ArnNotEquals", Kind::Arn, true),
    ("ArnNotLike", Kind::Arn, true),
    ("Null", Kind::Null, false),
];

/// The policy values of one condition, parsed for their operator.
#[derive(Debug, Clone, PartialEq)]
enum Values {
    Strings {
        ignore_case: bool,
        values: Vec<Template>,
    },
    Globs(Vec<Glob>),
    Numbers(Cmp, Vec<f64>),
    Dates(Cmp, Vec<i128>),
    Bools(Vec<Template>),
    Cidrs(Vec<Cidr>),
    Arns(Vec<ArnPattern>),
    /// `Null`: `true` asks for the key to be absent.
    Absent(Vec<bool>),
}

/// One operator/key pair of a `Condition` block.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Condition {
    key: Box<str>,
    qualifier: Qualifier,
    if_exists: bool,
    negated: bool,
    values: Values,
}

/// Parses a whole `Condition` element into a flat list: operators and the
/// keys within them are all ANDed, so nesting carries no meaning.
pub(crate) fn parse_block(block: &Json, variables: bool) -> Result<Vec<Condition>, FieldError> {
    let Json::Object(operators) = block else {
        return Err((
            String::new(),
            format!(
                "must be an object of condition operators, not {}",
                block.kind()
            ),
        ));
    };
    let mut out = Vec::new();
    for (op_name, keys) in operators {
        let op = parse_operator(op_name).map_err(|m| (op_name.clone(), m))?;
        let Json::Object(keys) = keys else {
            return Err((
                op_name.clone(),
                format!("must be an object of condition keys, not {}", keys.kind()),
            ));
        };
        for (key, value) in keys {
            let path = format!("{op_name}.{key}");
            validate_key(key).map_err(|m| (path.clone(), m))?;
            let raw = scalars(value).map_err(|(i, m)| (indexed(&path, i), m))?;
            let values =
                parse_values(op.kind, &raw, variables).map_err(|(i, m)| (indexed(&path, i), m))?;
            out.push(Condition {
                key: key.to_lowercase().into(),
                qualifier: op.qualifier,
                if_exists: op.if_exists,
                negated: op.negated,
                values,
            });
        }
    }
    Ok(out)
}

fn indexed(path: &str, index: Option<usize>) -> String {
    match index {
        Some(i) => format!("{path}[{i}]"),
        None => path.to_owned(),
    }
}

struct Operator {
    kind: Kind,
    negated: bool,
    qualifier: Qualifier,
    if_exists: bool,
}

fn parse_operator(name: &str) -> Result<Operator, String> {
    let (qualifier, base) = match name.split_once(':') {
        None => (Qualifier::None, name),
        Some(("ForAnyValue", base)) => (Qualifier::ForAnyValue, base),
        Some(("ForAllValues", base)) => (Qualifier::ForAllValues, base),
        Some((other, _)) => {
            return Err(format!(
                "unknown set qualifier \"{other}\"{}; \
                 the qualifiers are ForAnyValue and ForAllValues",
                suggestion(other, ["ForAnyValue", "ForAllValues"].into_iter())
            ))
        }
    };
    let (base, if_exists) = match base.strip_suffix("IfExists") {
        Some(b) => (b, true),
        None => (base, false),
    };
    if base == "BinaryEquals" {
        return Err(
            "BinaryEquals is not supported: no EC2 Instance Connect condition key \
             is binary"
                .into(),
        );
    }
    let Some(&(_, kind, negated)) = OPERATORS.iter().find(|(n, _, _)| *n == base) else {
        return Err(format!(
            "unknown condition operator \"{base}\"{}",
            suggestion(base, OPERATORS.iter().map(|(n, _, _)| *n))
        ));
    };
    if kind == Kind::Null && if_exists {
        return Err(
            "Null takes no IfExists suffix: it already tests whether the key exists".into(),
        );
    }
    if kind == Kind::Null && qualifier != Qualifier::None {
        return Err(
            "Null takes no set qualifier: it tests whether the key exists, not its values".into(),
        );
    }
    Ok(Operator {
        kind,
        negated,
        qualifier,
        if_exists,
    })
}

fn validate_key(key: &str) -> Result<(), String> {
    match key.split_once(':') {
        Some((prefix, name)) if !prefix.is_empty() && !name.is_empty() => Ok(()),
        _ => Err(format!(
            "condition key \"{key}\" needs a service prefix, as in \"ec2:osuser\" or \"aws:SourceIp\""
        )),
    }
}

/// The value(s) of a condition key as strings, and whether the policy gave
/// a list: IAM accepts a string, a boolean or a number, or an array of them.
fn scalars(value: &Json) -> Result<(Vec<String>, bool), (Option<usize>, String)> {
    fn one(value: &Json) -> Option<String> {
        match value {
            Json::String(s) => Some(s.clone()),
            Json::Bool(b) => Some(b.to_string()),
            Json::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
    let bad = |v: &Json| {
        format!(
            "a condition value must be a string, boolean or number, not {}",
            v.kind()
        )
    };
    match value {
        Json::Array(items) if items.is_empty() => Err((
            None,
            "has an empty list of values, which could never match".into(),
        )),
        Json::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| one(v).ok_or_else(|| (Some(i), bad(v))))
            .collect::<Result<_, _>>()
            .map(|values| (values, true)),
        v => one(v)
            .map(|s| (vec![s], false))
            .ok_or_else(|| (None, bad(v))),
    }
}

/// Parses every value with `f`; an error names the value's position when the
/// policy gave a list.
fn each<T>(
    raw: &(Vec<String>, bool),
    f: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, (Option<usize>, String)> {
    let (values, listed) = raw;
    values
        .iter()
        .enumerate()
        .map(|(i, s)| f(s).map_err(|m| (listed.then_some(i), m)))
        .collect()
}

fn parse_values(
    kind: Kind,
    raw: &(Vec<String>, bool),
    variables: bool,
) -> Result<Values, (Option<usize>, String)> {
    let parts = |s: &str| parse_parts(s, variables);
    Ok(match kind {
        Kind::String | Kind::StringIgnoreCase => Values::Strings {
            ignore_case: kind == Kind::StringIgnoreCase,
            values: each(raw, |s| parts(s).map(Template::new))?,
        },
        Kind::StringLike => Values::Globs(each(raw, |s| parts(s).map(Glob::plain))?),
        Kind::Numeric(cmp) => Values::Numbers(
            cmp,
            each(raw, |s| {
                scalar::parse_number(s).ok_or_else(|| {
                    format!(
                        "\"{s}\" is not a number: write digits with an optional sign \
                         and decimal point, e.g. \"10\" or \"-2.5\""
                    )
                })
            })?,
        ),
        Kind::Date(cmp) => Values::Dates(
            cmp,
            each(raw, |s| {
                scalar::parse_date(s).ok_or_else(|| {
                    format!(
                        "\"{s}\" is not a date: use ISO 8601 \
                         (e.g. \"2020-01-01T00:00:00Z\") or epoch seconds"
                    )
                })
            })?,
        ),
        Kind::Bool => Values::Bools(each(raw, |s| {
            let t = Template::new(parts(s)?);
            match t.as_static() {
                Some(v) if parse_bool(v).is_none() => Err(format!(
                    "\"{v}\" is not a boolean: use \"true\" or \"false\""
                )),
                _ => Ok(t),
            }
        })?),
        Kind::Ip => Values::Cidrs(each(raw, |s| {
            Cidr::parse(s).ok_or_else(|| {
                format!(
                    "\"{s}\" is not an IP address or CIDR range \
                     (e.g. \"203.0.113.0/24\" or \"2001:db8::/32\")"
                )
            })
        })?),
        Kind::Arn => Values::Arns(each(raw, |s| parts(s).map(ArnPattern::new))?),
        Kind::Null => Values::Absent(each(raw, |s| {
            parse_bool(s).ok_or_else(|| {
                format!(
                    "\"{s}\" is not a boolean: Null takes \"true\" (key absent) \
                     or \"false\" (key present)"
                )
            })
        })?),
    })
}

fn parse_bool(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// An `ArnEquals`/`ArnLike` value: IAM checks each of the six colon-separated
/// components of an ARN on its own, so a wildcard never spans a colon except
/// in the last, resource, component.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ArnPattern {
    /// Components before the last literal colon considered (at most five).
    leading: Vec<Glob>,
    /// The final component, matched against the rest of the value.
    last: Glob,
}

impl ArnPattern {
    fn new(parts: Vec<Part>) -> ArnPattern {
        let mut leading = Vec::new();
        let mut current: Vec<Part> = Vec::new();
        for part in parts {
            let Part::Text(text) = part else {
                current.push(part);
                continue;
            };
            let mut rest: &str = &text;
            // Only literal policy colons split components; a colon inside a
            // substituted value stays within its component.
            while leading.len() < 5 {
                let Some((head, tail)) = rest.split_once(':') else {
                    break;
                };
                if !head.is_empty() {
                    current.push(Part::Text(head.into()));
                }
                leading.push(Glob::plain(std::mem::take(&mut current)));
                rest = tail;
            }
            if !rest.is_empty() {
                current.push(Part::Text(rest.into()));
            }
        }
        ArnPattern {
            leading,
            last: Glob::plain(current),
        }
    }

    /// A pattern with fewer than six components matches its last component
    /// against the rest of the value, so `*` alone matches any ARN.
    fn matches(&self, value: &str, ctx: &RequestContext) -> bool {
        let mut rest = value;
        for component in &self.leading {
            let Some((head, tail)) = rest.split_once(':') else {
                return false;
            };
            if !component.matches(head, ctx) {
                return false;
            }
            rest = tail;
        }
        self.last.matches(rest, ctx)
    }
}

/// Case-insensitive equality without allocating.
fn eq_ignore_case(a: &str, b: &str) -> bool {
    a.chars()
        .flat_map(char::to_lowercase)
        .eq(b.chars().flat_map(char::to_lowercase))
}

impl Condition {
    pub(crate) fn evaluate(&self, ctx: &RequestContext) -> bool {
        let present = ctx.lookup(&self.key);
        if let Values::Absent(wanted) = &self.values {
            return wanted.contains(&present.is_none());
        }
        let Some(values) = present else {
            // IAM's documented rules for a key missing from the request.
            return self.if_exists
                || match self.qualifier {
                    Qualifier::ForAllValues => true,
                    Qualifier::ForAnyValue => false,
                    Qualifier::None => self.negated,
                };
        };
        // Per request value: does it match any policy value (negated: none)?
        let value_ok = |v: &String| self.matches_any(v, ctx) != self.negated;
        match self.qualifier {
            Qualifier::ForAllValues => values.iter().all(value_ok),
            Qualifier::ForAnyValue => values.iter().any(value_ok),
            // Without a qualifier a multi-valued key passes a positive
            // operator when any value matches, and a negated operator when
            // no value matches; for a single value both read the same.
            Qualifier::None if self.negated => values.iter().all(value_ok),
            Qualifier::None => values.iter().any(value_ok),
        }
    }

    /// Whether one request value matches any policy value under the
    /// positive form of the operator. A policy value whose variables cannot
    /// be resolved matches nothing; a request value that does not parse as
    /// the operator's type matches nothing.
    fn matches_any(&self, value: &str, ctx: &RequestContext) -> bool {
        match &self.values {
            Values::Strings {
                ignore_case: true,
                values,
            } => values
                .iter()
                .any(|t| t.resolve(ctx).is_some_and(|p| eq_ignore_case(&p, value))),
            Values::Strings { values, .. } => values
                .iter()
                .any(|t| t.resolve(ctx).is_some_and(|p| p == value)),
            Values::Globs(globs) => globs.iter().any(|g| g.matches(value, ctx)),
            Values::Numbers(cmp, numbers) => scalar::parse_number(value).is_some_and(|v| {
                numbers
                    .iter()
                    .any(|n| v.partial_cmp(n).is_some_and(|o| cmp.holds(o)))
            }),
            Values::Dates(cmp, dates) => {
                scalar::parse_date(value).is_some_and(|v| dates.iter().any(|d| cmp.holds(v.cmp(d))))
            }
            Values::Bools(templates) => parse_bool(value).is_some_and(|v| {
                templates
                    .iter()
                    .any(|t| t.resolve(ctx).and_then(|p| parse_bool(&p)) == Some(v))
            }),
            Values::Cidrs(cidrs) => scalar::parse_request_ip(value)
                .is_some_and(|ip| cidrs.iter().any(|c| c.contains(ip))),
            Values::Arns(patterns) => patterns.iter().any(|p| p.matches(value, ctx)),
            // Handled before any value is looked at.
            Values::Absent(_) => false,
        }
    }
}
