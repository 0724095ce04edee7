use std::str::FromStr;

use crate::condition::{self, Condition};
use crate::context::RequestContext;
use crate::error::{suggestion, PolicyError, StatementRef};
use crate::json::Json;
use crate::template::{parse_parts, Glob, Part};

/// The policy language version (the `Version` element).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// `2008-10-17`, also what IAM assumes when `Version` is missing:
    /// policy variables are plain text.
    V20081017,
    /// `2012-10-17`: policy variables are substituted.
    V20121017,
}

/// A parsed identity-based policy or permissions boundary, ready to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    version: Version,
    statements: Vec<Statement>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    Allow,
    Deny,
}

/// `Action`/`NotAction` or `Resource`/`NotResource`.
#[derive(Debug, Clone, PartialEq)]
struct Targets {
    negated: bool,
    patterns: Vec<Glob>,
}

impl Targets {
    fn matches(&self, value: &str, ctx: &RequestContext) -> bool {
        self.patterns.iter().any(|p| p.matches(value, ctx)) != self.negated
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Statement {
    effect: Effect,
    actions: Targets,
    resources: Targets,
    conditions: Vec<Condition>,
}

impl Statement {
    fn applies(&self, ctx: &RequestContext) -> bool {
        self.actions.matches(ctx.action_lower(), ctx)
            && self.resources.matches(ctx.resource(), ctx)
            && self.conditions.iter().all(|c| c.evaluate(ctx))
    }
}

/// What one set of policies says about a request.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Verdict {
    pub(crate) denied: bool,
    pub(crate) allowed: bool,
}

/// Scans every statement of every policy: any matching Deny is final, any
/// matching Allow counts only if no Deny matches.
pub(crate) fn verdict(policies: &[Policy], ctx: &RequestContext) -> Verdict {
    let mut verdict = Verdict::default();
    for statement in policies.iter().flat_map(|p| &p.statements) {
        if verdict.allowed && statement.effect == Effect::Allow {
            continue;
        }
        if statement.applies(ctx) {
            match statement.effect {
                Effect::Deny => {
                    verdict.denied = true;
                    return verdict;
                }
                Effect::Allow => verdict.allowed = true,
            }
        }
    }
    verdict
}

const TOP_LEVEL: [&str; 3] = ["Version", "Id", "Statement"];
const STATEMENT_FIELDS: [&str; 7] = [
    "Sid",
    "Effect",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
];

impl Policy {
    /// Parses a policy document in IAM's JSON grammar.
    ///
    /// Anything IAM would reject, and anything this crate would otherwise
    /// have to ignore, is an error naming the statement and field.
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let doc: Json = serde_json::from_str(text)
            .map_err(|e| PolicyError::document("", format!("not valid JSON: {e}")))?;
        let Json::Object(members) = doc else {
            return Err(PolicyError::document(
                "",
                format!("a policy must be a JSON object, not {}", doc.kind()),
            ));
        };
        let mut version = None;
        let mut statement = None;
        for (name, value) in &members {
            match name.as_str() {
                "Version" => version = Some(parse_version(value)?),
                "Id" if matches!(value, Json::String(_)) => {}
                "Id" => {
                    return Err(PolicyError::document(
                        "Id",
                        format!("must be a string, not {}", value.kind()),
                    ))
                }
                "Statement" => statement = Some(value),
                other => {
                    return Err(PolicyError::document(
                        other,
                        format!(
                            "unknown top-level field \"{other}\"{}; a policy has only Version, Id and Statement",
                            suggestion(other, TOP_LEVEL.into_iter())
                        ),
                    ))
                }
            }
        }
        // IAM's rule: without a Version element the 2008 language applies.
        let version = version.unwrap_or(Version::V20081017);
        let variables = version == Version::V20121017;
        let items: Vec<&Json> = match statement {
            None => return Err(PolicyError::document("Statement", "is missing")),
            Some(Json::Array(items)) if items.is_empty() => {
                return Err(PolicyError::document(
                    "Statement",
                    "is an empty list; a policy needs at least one statement",
                ))
            }
            Some(Json::Array(items)) => items.iter().collect(),
            Some(one @ Json::Object(_)) => vec![one],
            Some(other) => {
                return Err(PolicyError::document(
                    "Statement",
                    format!(
                        "must be an object or an array of objects, not {}",
                        other.kind()
                    ),
                ))
            }
        };
        let mut statements = Vec::with_capacity(items.len());
        let mut sids: Vec<(String, usize)> = Vec::new();
        for (index, item) in items.into_iter().enumerate() {
            let (statement, sid) = parse_statement(index, item, variables)?;
            if let Some(sid) = sid {
                if let Some((_, first)) = sids.iter().find(|(s, _)| *s == sid) {
                    return Err(PolicyError::in_statement(
                        StatementRef::new(index, Some(sid.clone())),
                        "Sid",
                        format!("repeats the Sid of Statement[{first}]; Sids must be unique within a policy"),
                    ));
                }
                sids.push((sid, index));
            }
            statements.push(statement);
        }
        Ok(Policy {
            version,
            statements,
        })
    }

    /// The policy language version in force for this policy.
    pub fn version(&self) -> Version {
        self.version
    }
}

impl FromStr for Policy {
    type Err = PolicyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Policy::parse(s)
    }
}

fn parse_version(value: &Json) -> Result<Version, PolicyError> {
    match value {
        Json::String(v) if v == "2012-10-17" => Ok(Version::V20121017),
        Json::String(v) if v == "2008-10-17" => Ok(Version::V20081017),
        Json::String(v) => Err(PolicyError::document(
            "Version",
            format!("unknown policy language version \"{v}\"; use \"2012-10-17\""),
        )),
        other => Err(PolicyError::document(
            "Version",
            format!("must be the string \"2012-10-17\", not {}", other.kind()),
        )),
    }
}

fn parse_statement(
    index: usize,
    item: &Json,
    variables: bool,
) -> Result<(Statement, Option<String>), PolicyError> {
    let unnamed = StatementRef::new(index, None);
    let Json::Object(members) = item else {
        return Err(PolicyError::in_statement(
            unnamed,
            "",
            format!("a statement must be an object, not {}", item.kind()),
        ));
    };
    // The Sid is read first so that every later error can name the statement by it.
    let sid = match members.iter().find(|(name, _)| name == "Sid") {
        None => None,
        Some((_, Json::String(sid))) if sid.is_empty() => None,
        Some((_, Json::String(sid))) if sid.chars().all(|c| c.is_ascii_alphanumeric()) => {
            Some(sid.clone())
        }
        Some((_, Json::String(sid))) => {
            return Err(PolicyError::in_statement(
                unnamed,
                "Sid",
                format!("\"{sid}\" may contain only ASCII letters and digits"),
            ))
        }
        Some((_, other)) => {
            return Err(PolicyError::in_statement(
                unnamed,
                "Sid",
                format!("must be a string, not {}", other.kind()),
            ))
        }
    };
    let at = StatementRef::new(index, sid.clone());
    let err = |field: &str, message: String| PolicyError::in_statement(at.clone(), field, message);

    let mut effect = None;
    let mut actions: Option<Targets> = None;
    let mut resources: Option<Targets> = None;
    let mut conditions = Vec::new();
    for (name, value) in members {
        match name.as_str() {
            "Sid" => {}
            "Effect" => {
                effect = Some(match value {
                    Json::String(e) if e == "Allow" => Effect::Allow,
                    Json::String(e) if e == "Deny" => Effect::Deny,
                    Json::String(e) => {
                        return Err(err(
                            "Effect",
                            format!(
                            "unknown Effect \"{e}\"; use \"Allow\" or \"Deny\" (case-sensitive)"
                        ),
                        ))
                    }
                    other => {
                        return Err(err(
                            "Effect",
                            format!("must be \"Allow\" or \"Deny\", not {}", other.kind()),
                        ))
                    }
                });
            }
            "Action" | "NotAction" => {
                if actions.is_some() {
                    return Err(err(
                        name,
                        "a statement takes Action or NotAction, not both".into(),
                    ));
                }
                let patterns = parse_list(value, parse_action)
                    .map_err(|(suffix, m)| err(&format!("{name}{suffix}"), m))?;
                actions = Some(Targets {
                    negated: name == "NotAction",
                    patterns,
                });
            }
            "Resource" | "NotResource" => {
                if resources.is_some() {
                    return Err(err(
                        name,
                        "a statement takes Resource or NotResource, not both".into(),
                    ));
                }
                let patterns = parse_list(value, |s| parse_resource(s, variables))
                    .map_err(|(suffix, m)| err(&format!("{name}{suffix}"), m))?;
                resources = Some(Targets {
                    negated: name == "NotResource",
                    patterns,
                });
            }
            "Condition" => {
                conditions = condition::parse_block(value, variables).map_err(|(field, m)| {
                    if field.is_empty() {
                        err("Condition", m)
                    } else {
                        err(&format!("Condition.{field}"), m)
                    }
                })?;
            }
            "Principal" | "NotPrincipal" => {
                return Err(err(
                    name,
                    format!(
                        "{name} is not allowed in an identity-based policy or permissions \
                         boundary: the principal is whoever the policy is attached to"
                    ),
                ))
            }
            other => {
                return Err(err(
                    other,
                    format!(
                        "unknown statement field \"{other}\"{}; a statement has Sid, Effect, \
                         Action or NotAction, Resource or NotResource, and Condition",
                        suggestion(other, STATEMENT_FIELDS.into_iter())
                    ),
                ))
            }
        }
    }
    let Some(effect) = effect else {
        return Err(err(
            "Effect",
            "is missing; use \"Allow\" or \"Deny\"".into(),
        ));
    };
    let Some(actions) = actions else {
        return Err(err(
            "Action",
            "is missing; a statement needs Action or NotAction".into(),
        ));
    };
    let Some(resources) = resources else {
        return Err(err(
            "Resource",
            "is missing; a statement needs Resource or NotResource".into(),
        ));
    };
    Ok((
        Statement {
            effect,
            actions,
            resources,
            conditions,
        },
        sid,
    ))
}

/// A string or a non-empty array of strings. Errors carry the index suffix
/// (`[2]`) of the offending entry, or an empty suffix.
fn parse_list(
    value: &Json,
    parse: impl Fn(&str) -> Result<Glob, String>,
) -> Result<Vec<Glob>, (String, String)> {
    match value {
        Json::String(s) => Ok(vec![parse(s).map_err(|m| (String::new(), m))?]),
        Json::Array(items) if items.is_empty() => Err((
            String::new(),
            "is an empty list, which could never match".into(),
        )),
        Json::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Json::String(s) => parse(s).map_err(|m| (format!("[{i}]"), m)),
                other => Err((
                    format!("[{i}]"),
                    format!("must be a string, not {}", other.kind()),
                )),
            })
            .collect(),
        other => Err((
            String::new(),
            format!(
                "must be a string or an array of strings, not {}",
                other.kind()
            ),
        )),
    }
}

fn parse_action(s: &str) -> Result<Glob, String> {
    let well_formed = s == "*"
        || matches!(s.split_once(':'), Some((service, name))
            if !service.is_empty() && !name.is_empty() && !name.contains(':'))
            && !s.chars().any(char::is_whitespace);
    if !well_formed {
        return Err(format!(
            "action \"{s}\" must be \"*\" or \"service:ActionName\", \
             e.g. \"ec2-instance-connect:SendSSHPublicKey\""
        ));
    }
    // IAM matches actions case-insensitively; folding the pattern here and
    // the request's action once per request keeps matching case-exact.
    Ok(Glob::plain(vec![Part::Text(s.to_lowercase().into())]))
}

fn parse_resource(s: &str, variables: bool) -> Result<Glob, String> {
    if s != "*" && !s.starts_with("arn:") {
        return Err(format!(
            "resource \"{s}\" must be \"*\" or an ARN, \
             e.g. \"arn:aws:ec2:us-west-2:111122223333:instance/*\""
        ));
    }
    Glob::arn_resource(parse_parts(s, variables)?)
}
