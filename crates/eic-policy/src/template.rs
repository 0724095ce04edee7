//! Policy variables (`${aws:username}`, `${key, 'default'}`, `${*}` …) and
//! the patterns built from policy text that may contain them.
//!
//! Text from the policy keeps its wildcard meaning; text substituted from the
//! request context, and the `${*}` `${?}` `${$}` escapes, are always literal.
//! Templates without variables are compiled once at parse time, so the common
//! case allocates nothing per request.

use std::borrow::Cow;

use crate::context::RequestContext;
use crate::glob::{self, Tok};

/// A `${key}` or `${key, 'default'}` reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Var {
    key: Box<str>,
    default: Option<Box<str>>,
}

impl Var {
    /// The substituted text, or `None` when the variable cannot be resolved:
    /// the key is absent with no default, or it holds several values, which
    /// cannot be spliced into one string.
    fn resolve<'a>(&'a self, ctx: &'a RequestContext) -> Option<&'a str> {
        match ctx.lookup(&self.key) {
            Some([value]) => Some(value),
            Some(_) => None,
            None => self.default.as_deref(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Part {
    /// Policy text; `*` and `?` in it are wildcards where the operator has them.
    Text(Box<str>),
    /// `${*}`, `${?}` or `${$}`: one literal character.
    Escaped(&'static str),
    Var(Var),
}

/// Splits policy text into literal text, escapes and variables.
///
/// With `variables` false (policy language 2008-10-17, or elements that do
/// not take variables) the whole string is text, as IAM treats it.
pub(crate) fn parse_parts(s: &str, variables: bool) -> Result<Vec<Part>, String> {
    if !variables {
        return Ok(vec![Part::Text(s.into())]);
    }
    let mut parts = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        if start > 0 {
            parts.push(Part::Text(rest[..start].into()));
        }
        let body_start = start + 2;
        let Some(len) = rest[body_start..].find('}') else {
            return Err(format!(
                "policy variable \"{}\" has no closing '}}'",
                &rest[start..]
            ));
        };
        let body = &rest[body_start..body_start + len];
        parts.push(parse_variable(body)?);
        rest = &rest[body_start + len + 1..];
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest.into()));
    }
    Ok(parts)
}

fn parse_variable(body: &str) -> Result<Part, String> {
    match body {
        "*" => return Ok(Part::Escaped("*")),
        "?" => return Ok(Part::Escaped("?")),
        "$" => return Ok(Part::Escaped("$")),
        _ => {}
    }
    let (key, default) = match body.split_once(',') {
        None => (body.trim(), None),
        Some((key, default)) => {
            let default = default.trim();
            let quoted = default
                .strip_prefix('\'')
                .and_then(|d| d.strip_suffix('\''));
            match quoted {
                Some(d) => (key.trim(), Some(d.into())),
                None => {
                    return Err(format!(
                        "policy variable \"${{{body}}}\" has a malformed default: \
                         write it as ${{{}, 'default'}}",
                        key.trim()
                    ))
                }
            }
        }
    };
    if key.is_empty() {
        return Err(format!("policy variable \"${{{body}}}\" names no key"));
    }
    Ok(Part::Var(Var {
        key: key.to_lowercase().into(),
        default,
    }))
}

/// A value compared as a whole string (`StringEquals`, `Bool`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Template {
    Static(Box<str>),
    Dynamic(Vec<Part>),
}

impl Template {
    pub(crate) fn new(parts: Vec<Part>) -> Template {
        if parts.iter().any(|p| matches!(p, Part::Var(_))) {
            return Template::Dynamic(parts);
        }
        let mut text = String::new();
        for part in &parts {
            match part {
                Part::Text(t) => text.push_str(t),
                Part::Escaped(e) => text.push_str(e),
                Part::Var(_) => {}
            }
        }
        Template::Static(text.into())
    }

    pub(crate) fn as_static(&self) -> Option<&str> {
        match self {
            Template::Static(s) => Some(s),
            Template::Dynamic(_) => None,
        }
    }

    /// The value with variables substituted, or `None` if one is unresolvable.
    pub(crate) fn resolve<'a>(&'a self, ctx: &'a RequestContext) -> Option<Cow<'a, str>> {
        match self {
            Template::Static(s) => Some(Cow::Borrowed(s)),
            Template::Dynamic(parts) => {
                let mut out = String::new();
                for part in parts {
                    match part {
                        Part::Text(t) => out.push_str(t),
                        Part::Escaped(e) => out.push_str(e),
                        Part::Var(v) => out.push_str(v.resolve(ctx)?),
                    }
                }
                Some(Cow::Owned(out))
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GlobPart {
    Tok(Tok<Box<str>>),
    Var(Var),
}

/// A wildcard pattern, possibly with policy variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Glob {
    Static(Vec<Tok<Box<str>>>),
    Dynamic(Vec<GlobPart>),
}

impl Glob {
    /// A pattern in which `*` and `?` match any character, colons included
    /// (`Action`, `StringLike`, and components of `ArnLike`).
    pub(crate) fn plain(parts: Vec<Part>) -> Glob {
        let mut out = Builder::default();
        for part in parts {
            match part {
                Part::Text(text) => {
                    for c in text.chars() {
                        match c {
                            '*' => out.tok(Tok::Star { colon: true }),
                            '?' => out.tok(Tok::One { colon: true }),
                            c => out.lit.push(c),
                        }
                    }
                }
                Part::Escaped(e) => out.lit.push_str(e),
                Part::Var(v) => out.var(v),
            }
        }
        out.finish()
    }

    /// A `Resource`/`NotResource` ARN pattern.
    ///
    /// IAM matches wildcards within the colon-separated segments of an ARN,
    /// except that a `*` ending a segment may expand across colons; after
    /// the fifth colon (the resource part, which may itself contain colons)
    /// every wildcard matches anything. Variables are only allowed in the
    /// resource part, as IAM documents.
    pub(crate) fn arn_resource(parts: Vec<Part>) -> Result<Glob, String> {
        let mut out = Builder::default();
        let mut colons = 0usize;
        for (index, part) in parts.iter().enumerate() {
            match part {
                Part::Text(text) => {
                    let mut chars = text.chars().peekable();
                    while let Some(c) = chars.next() {
                        let in_resource_part = colons >= 5;
                        match c {
                            ':' => {
                                colons += 1;
                                out.lit.push(c);
                            }
                            '*' => {
                                let ends_segment = match chars.peek() {
                                    Some(next) => *next == ':',
                                    None => match parts.get(index + 1) {
                                        None => true,
                                        Some(Part::Text(t)) => t.starts_with(':'),
                                        Some(_) => false,
                                    },
                                };
                                out.tok(Tok::Star {
                                    colon: in_resource_part || ends_segment,
                                });
                            }
                            '?' => out.tok(Tok::One {
                                colon: in_resource_part,
                            }),
                            c => out.lit.push(c),
                        }
                    }
                }
                Part::Escaped(_) | Part::Var(_) if colons < 5 => {
                    return Err(
                        "policy variables are only allowed in the resource part of an ARN \
                         (after the fifth colon)"
                            .to_owned(),
                    );
                }
                Part::Escaped(e) => out.lit.push_str(e),
                Part::Var(v) => out.var(v.clone()),
            }
        }
        Ok(out.finish())
    }

    pub(crate) fn matches(&self, text: &str, ctx: &RequestContext) -> bool {
        match self {
            Glob::Static(toks) => glob::matches(toks, text),
            Glob::Dynamic(parts) => {
                let mut toks: Vec<Tok<&str>> = Vec::with_capacity(parts.len());
                for part in parts {
                    toks.push(match part {
                        GlobPart::Tok(Tok::Lit(s)) => Tok::Lit(s),
                        GlobPart::Tok(Tok::One { colon }) => Tok::One { colon: *colon },
                        GlobPart::Tok(Tok::Star { colon }) => Tok::Star { colon: *colon },
                        GlobPart::Var(v) => match v.resolve(ctx) {
                            Some(value) => Tok::Lit(value),
                            None => return false,
                        },
                    });
                }
                glob::matches(&toks, text)
            }
        }
    }
}

#[derive(Default)]
struct Builder {
    parts: Vec<GlobPart>,
    lit: String,
    dynamic: bool,
}

impl Builder {
    fn flush(&mut self) {
        if !self.lit.is_empty() {
            let lit = std::mem::take(&mut self.lit);
            self.parts.push(GlobPart::Tok(Tok::Lit(lit.into())));
        }
    }

    fn tok(&mut self, tok: Tok<Box<str>>) {
        self.flush();
        self.parts.push(GlobPart::Tok(tok));
    }

    fn var(&mut self, var: Var) {
        self.flush();
        self.dynamic = true;
        self.parts.push(GlobPart::Var(var));
    }

    fn finish(mut self) -> Glob {
        self.flush();
        if self.dynamic {
            return Glob::Dynamic(self.parts);
        }
        let toks = self
            .parts
            .into_iter()
            .filter_map(|p| match p {
                GlobPart::Tok(t) => Some(t),
                GlobPart::Var(_) => None,
            })
            .collect();
        Glob::Static(toks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> RequestContext {
        RequestContext::new("a:b", "r")
            .with("aws:username", "alice")
            .with_values("multi:key", ["x", "y"])
    }

    #[test]
    fn parses_variables_defaults_and_escapes() {
        let parts = parse_parts("a${aws:UserName}b${x:y, 'dflt'}${*}${?}${$}", true).unwrap();
        let t = Template::new(parts);
        assert_eq!(t.resolve(&ctx()).unwrap(), "aalicebdflt*?$");
    }

    #[test]
    fn unresolvable_variables() {
        let t = Template::new(parse_parts("${missing:key}", true).unwrap());
        assert_eq!(t.resolve(&ctx()), None);
        let t = Template::new(parse_parts("${multi:key}", true).unwrap());
        assert_eq!(t.resolve(&ctx()), None);
        let g = Glob::plain(parse_parts("*${missing:key}", true).unwrap());
        assert!(!g.matches("anything", &ctx()));
    }

    #[test]
    fn version_2008_keeps_variables_literal() {
        let t = Template::new(parse_parts("${aws:username}", false).unwrap());
        assert_eq!(t.as_static(), Some("${aws:username}"));
    }

    #[test]
    fn malformed_variables() {
        assert!(parse_parts("${aws:username", true)
            .unwrap_err()
            .contains("no closing"));
        assert!(parse_parts("${}", true)
            .unwrap_err()
            .contains("names no key"));
        assert!(parse_parts("${a:b, dflt}", true)
            .unwrap_err()
            .contains("malformed default"));
    }

    #[test]
    fn substituted_text_is_literal() {
        let c = RequestContext::new("a:b", "r").with("aws:username", "*");
        let g = Glob::plain(parse_parts("home/${aws:username}", true).unwrap());
        assert!(g.matches("home/*", &c));
        assert!(!g.matches("home/bob", &c));
        let g = Glob::plain(parse_parts("a${*}", true).unwrap());
        assert!(g.matches("a*", &c));
        assert!(!g.matches("ab", &c));
    }

    #[test]
    fn arn_segment_rules() {
        let g = |p: &str| Glob::arn_resource(parse_parts(p, true).unwrap()).unwrap();
        let c = ctx();
        let arn = "arn:aws:ec2:us-east-2:999999999999:instance/i-1";
        assert!(g("arn:aws:ec2:*:*:instance/*").matches(arn, &c));
        // A segment-final `*` may expand across colons.
        assert!(g("arn:aws:ec2:*:instance/*").matches(arn, &c));
        // A `*` inside a segment may not.
        assert!(!g("arn:aws:ec2:us-*2:instance/*").matches(arn, &c));
        assert!(g("arn:aws:ec2:us-*-2:*:instance/*").matches(arn, &c));
        assert!(!g("arn:aws:ec2:us?east-2:999999999999?instance/i-1").matches(arn, &c));
        assert!(g("arn:aws:s3:::bucket/a?b*").matches("arn:aws:s3:::bucket/a:b:c", &c));
        assert!(Glob::arn_resource(parse_parts("arn:aws:${x:y}:", true).unwrap()).is_err());
    }
}
