//! Filters: names, wildcard values, matching. DescribeInstances' names are
//! here; DescribeInstanceConnectEndpoints' are in [`crate::endpoints`], over
//! the same [`Filter`] and [`Pattern`].
//!
//! EC2's rules: filters are ANDed, a filter's values are ORed; in a value
//! `*` matches any run of characters (also none) and `?` exactly one, and a
//! backslash makes the next character literal (`\*`, `\?`, `\\`). Matching
//! is case-sensitive. A filter sent with a name and no value asks only that
//! the instance has the attribute at all (botocore sends `--filters
//! Name=vpc-id` that way).

use std::borrow::Cow;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::instance::{InstanceState, InstanceView};

/// What the filters read of an instance. [`InstanceView`] answers it; so
/// can a registry's own record, which lets a pass over a large fleet skip
/// the instances a filter refuses before it makes any view.
pub trait Filterable {
    fn instance_id(&self) -> &str;
    fn state(&self) -> InstanceState;
    fn instance_type(&self) -> &str;
    fn availability_zone(&self) -> &str;
    fn image_id(&self) -> Option<&str>;
    fn private_ip(&self) -> Option<Ipv4Addr>;
    fn public_ip(&self) -> Option<Ipv4Addr>;
    fn ipv6(&self) -> Option<Ipv6Addr>;
    /// Made on demand where it is derived (from the address and region).
    fn private_dns_name(&self) -> Option<Cow<'_, str>>;
    fn public_dns_name(&self) -> Option<&str>;
    fn vpc_id(&self) -> Option<&str>;
    fn subnet_id(&self) -> Option<&str>;
    fn tag(&self, key: &str) -> Option<&str>;
    fn tags(&self) -> impl Iterator<Item = (&str, &str)>;
}

impl Filterable for InstanceView {
    fn instance_id(&self) -> &str {
        &self.instance_id
    }
    fn state(&self) -> InstanceState {
        self.state
    }
    fn instance_type(&self) -> &str {
        &self.instance_type
    }
    fn availability_zone(&self) -> &str {
        &self.availability_zone
    }
    fn image_id(&self) -> Option<&str> {
        self.image_id.as_deref()
    }
    fn private_ip(&self) -> Option<Ipv4Addr> {
        self.private_ip
    }
    fn public_ip(&self) -> Option<Ipv4Addr> {
        self.public_ip
    }
    fn ipv6(&self) -> Option<Ipv6Addr> {
        self.ipv6
    }
    fn private_dns_name(&self) -> Option<Cow<'_, str>> {
        self.private_dns_name.as_deref().map(Cow::Borrowed)
    }
    fn public_dns_name(&self) -> Option<&str> {
        self.public_dns_name.as_deref()
    }
    fn vpc_id(&self) -> Option<&str> {
        self.vpc_id.as_deref()
    }
    fn subnet_id(&self) -> Option<&str> {
        self.subnet_id.as_deref()
    }
    fn tag(&self, key: &str) -> Option<&str> {
        self.tags.get(key).map(String::as_str)
    }
    fn tags(&self) -> impl Iterator<Item = (&str, &str)> {
        self.tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// The filters eic answers. Any other name is `InvalidParameterValue: The
/// filter 'x' is invalid`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FilterName {
    InstanceId,
    InstanceStateName,
    InstanceStateCode,
    InstanceType,
    AvailabilityZone,
    ImageId,
    PrivateIpAddress,
    IpAddress,
    Ipv6Address,
    PrivateDnsName,
    DnsName,
    VpcId,
    SubnetId,
    /// `tag:KEY`: the tag KEY's value (the key itself is exact).
    Tag(String),
    /// `tag-key`: any tag's key.
    TagKey,
    /// `tag-value`: any tag's value.
    TagValue,
}

impl FilterName {
    /// Every fixed name, for documentation and tests (`tag:KEY` aside).
    pub const FIXED: [(&'static str, FilterName); 15] = [
        ("instance-id", FilterName::InstanceId),
        ("instance-state-name", FilterName::InstanceStateName),
        ("instance-state-code", FilterName::InstanceStateCode),
        ("instance-type", FilterName::InstanceType),
        ("availability-zone", FilterName::AvailabilityZone),
        ("image-id", FilterName::ImageId),
        ("private-ip-address", FilterName::PrivateIpAddress),
        ("ip-address", FilterName::IpAddress),
        ("ipv6-address", FilterName::Ipv6Address),
        ("private-dns-name", FilterName::PrivateDnsName),
        ("dns-name", FilterName::DnsName),
        ("vpc-id", FilterName::VpcId),
        ("subnet-id", FilterName::SubnetId),
        ("tag-key", FilterName::TagKey),
        ("tag-value", FilterName::TagValue),
    ];

    /// The name as sent, `None` when eic does not know it.
    pub fn parse(name: &str) -> Option<FilterName> {
        parse_name(&FilterName::FIXED, name, FilterName::Tag)
    }

    /// The name as EC2 spells it.
    pub fn as_string(&self) -> String {
        match self {
            FilterName::Tag(key) => format!("tag:{key}"),
            other => fixed_name(&FilterName::FIXED, other),
        }
    }
}

/// An action's set of filter names, for the parser and the paging token,
/// which treat every action's filters alike.
pub(crate) trait FilterNames: Sized {
    fn parse(name: &str) -> Option<Self>;
    fn as_string(&self) -> String;
}

impl FilterNames for FilterName {
    fn parse(name: &str) -> Option<Self> {
        FilterName::parse(name)
    }

    fn as_string(&self) -> String {
        FilterName::as_string(self)
    }
}

/// `tag:KEY` (a key of at least one character) or one of `fixed`.
pub(crate) fn parse_name<N: Clone>(
    fixed: &[(&str, N)],
    name: &str,
    tag: fn(String) -> N,
) -> Option<N> {
    if let Some(key) = name.strip_prefix("tag:") {
        return (!key.is_empty()).then(|| tag(key.to_owned()));
    }
    fixed
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| f.clone())
}

/// The spelling of one of `fixed`.
pub(crate) fn fixed_name<N: PartialEq>(fixed: &[(&str, N)], name: &N) -> String {
    fixed
        .iter()
        .find(|(_, f)| f == name)
        .map(|(n, _)| (*n).to_owned())
        .unwrap_or_default()
}

/// One filter value, compiled.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pattern {
    toks: Vec<Tok>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Tok {
    Lit(char),
    One,
    Star,
}

impl Pattern {
    /// Compiles a value: `*`, `?`, and `\` escaping the next character (a
    /// trailing lone `\` is literal). Runs of `*` collapse to one.
    pub fn new(value: &str) -> Pattern {
        let mut toks = Vec::with_capacity(value.len());
        let mut chars = value.chars();
        while let Some(c) = chars.next() {
            let tok = match c {
                '\\' => Tok::Lit(chars.next().unwrap_or('\\')),
                '*' => Tok::Star,
                '?' => Tok::One,
                c => Tok::Lit(c),
            };
            if tok == Tok::Star && toks.last() == Some(&Tok::Star) {
                continue;
            }
            toks.push(tok);
        }
        Pattern { toks }
    }

    /// A pattern matching exactly `text`.
    pub fn literal(text: &str) -> Pattern {
        Pattern {
            toks: text.chars().map(Tok::Lit).collect(),
        }
    }

    /// Whether `text` matches the whole pattern. The classic one-backtrack
    /// glob loop: on a mismatch, retry from just after the last `*` with it
    /// swallowing one more character. O(text × pattern) at worst, without
    /// recursion.
    pub fn matches(&self, text: &str) -> bool {
        let text: Vec<char> = text.chars().collect();
        let p = &self.toks;
        let (mut i, mut j) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        while i < text.len() {
            match p.get(j) {
                Some(Tok::Lit(c)) if *c == text[i] => {
                    i += 1;
                    j += 1;
                }
                Some(Tok::One) => {
                    i += 1;
                    j += 1;
                }
                Some(Tok::Star) => {
                    star = Some((j, i));
                    j += 1;
                }
                _ => match star {
                    Some((sj, si)) => {
                        j = sj + 1;
                        i = si + 1;
                        star = Some((sj, si + 1));
                    }
                    None => return false,
                },
            }
        }
        p[j.min(p.len())..].iter().all(|t| *t == Tok::Star)
    }

    /// The value again, in a form [`Pattern::new`] compiles back to this
    /// pattern (used for the paging token's digest).
    pub(crate) fn canonical(&self) -> String {
        let mut s = String::with_capacity(self.toks.len());
        for t in &self.toks {
            match t {
                Tok::Lit(c @ ('\\' | '*' | '?')) => {
                    s.push('\\');
                    s.push(*c);
                }
                Tok::Lit(c) => s.push(*c),
                Tok::One => s.push('?'),
                Tok::Star => s.push('*'),
            }
        }
        s
    }
}

/// One `Filter.N`: its name and values (none: "has the attribute"). `N`
/// is the action's set of names: [`FilterName`] for DescribeInstances,
/// [`crate::EndpointFilterName`] for DescribeInstanceConnectEndpoints.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Filter<N = FilterName> {
    pub name: N,
    pub values: Vec<Pattern>,
}

impl<N> Filter<N> {
    pub fn new(name: N, values: &[&str]) -> Filter<N> {
        Filter {
            name,
            values: values.iter().map(|v| Pattern::new(v)).collect(),
        }
    }

    /// Whether an attribute's `text` passes: any value matches it, or the
    /// filter has no values (the attribute is there at all).
    pub(crate) fn accepts(&self, text: &str) -> bool {
        self.values.is_empty() || self.values.iter().any(|p| p.matches(text))
    }
}

impl Filter {
    /// Whether `instance` passes this filter.
    pub fn matches(&self, instance: &impl Filterable) -> bool {
        let any = |text: &str| self.accepts(text);
        let opt = |text: Option<&str>| text.is_some_and(any);
        match &self.name {
            FilterName::InstanceId => any(instance.instance_id()),
            FilterName::InstanceStateName => any(instance.state().name()),
            FilterName::InstanceStateCode => any(&instance.state().code().to_string()),
            FilterName::InstanceType => any(instance.instance_type()),
            FilterName::AvailabilityZone => any(instance.availability_zone()),
            FilterName::ImageId => opt(instance.image_id()),
            FilterName::PrivateIpAddress => {
                opt(instance.private_ip().map(|a| a.to_string()).as_deref())
            }
            FilterName::IpAddress => opt(instance.public_ip().map(|a| a.to_string()).as_deref()),
            FilterName::Ipv6Address => opt(instance.ipv6().map(|a| a.to_string()).as_deref()),
            FilterName::PrivateDnsName => opt(instance.private_dns_name().as_deref()),
            FilterName::DnsName => opt(instance.public_dns_name()),
            FilterName::VpcId => opt(instance.vpc_id()),
            FilterName::SubnetId => opt(instance.subnet_id()),
            FilterName::Tag(key) => opt(instance.tag(key)),
            FilterName::TagKey => instance.tags().any(|(k, _)| any(k)),
            FilterName::TagValue => instance.tags().any(|(_, v)| any(v)),
        }
    }
}

/// Whether `instance` passes every filter.
pub fn matches_all(filters: &[Filter], instance: &impl Filterable) -> bool {
    filters.iter().all(|f| f.matches(instance))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn m(pattern: &str, text: &str) -> bool {
        Pattern::new(pattern).matches(text)
    }

    #[test]
    fn wildcards_as_ec2_documents_them() {
        assert!(m("web1", "web1"));
        assert!(!m("web1", "web10"));
        assert!(!m("web1", "Web1"), "case-sensitive");
        assert!(m("web*", "web"));
        assert!(m("web*", "web-frontend"));
        assert!(m("*end", "frontend"));
        assert!(m("*", ""));
        assert!(m("w?b", "wab"));
        assert!(!m("w?b", "wb"));
        assert!(!m("w?b", "waab"));
        assert!(m("a*b*c", "a-b-b-c"));
        assert!(!m("a*b*c", "a-b-b-"));
        assert!(m("??", "é✓"), "? is one character, not one byte");
        assert!(m("*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaab"));
        assert!(!m("*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaa"));
    }

    #[test]
    fn backslash_makes_the_next_character_literal() {
        assert!(m(r"\*amazon\?\\", r"*amazon?\"));
        assert!(!m(r"\*", "x"));
        assert!(m(r"a\b", "ab"));
        assert!(m("a\\", "a\\"), "a trailing backslash is itself");
        assert!(!m(r"\?", "x"));
    }

    #[test]
    fn canonical_compiles_back() {
        for v in ["a*b", r"\*x\?", "**", "a\\", r"\\", "?*?", ""] {
            let p = Pattern::new(v);
            assert_eq!(Pattern::new(&p.canonical()), p, "{v}");
        }
    }

    #[test]
    fn names() {
        for (name, f) in FilterName::FIXED {
            assert_eq!(FilterName::parse(name), Some(f.clone()));
            assert_eq!(f.as_string(), name);
        }
        assert_eq!(
            FilterName::parse("tag:Name"),
            Some(FilterName::Tag("Name".into()))
        );
        assert_eq!(FilterName::Tag("a:b".into()).as_string(), "tag:a:b");
        assert_eq!(FilterName::parse("tag:"), None);
        assert_eq!(FilterName::parse("Instance-Id"), None);
        assert_eq!(FilterName::parse("owner-id"), None);
        assert_eq!(FilterName::parse(""), None);
    }

    fn view() -> InstanceView {
        let mut v = InstanceView::new(
            "i-0123456789abcdef0",
            "111122223333",
            InstanceState::Running,
            "t3.micro",
            "us-west-2a",
            SystemTime::UNIX_EPOCH,
        );
        v.private_ip = Some("127.0.0.1".parse().unwrap());
        v.vpc_id = Some("vpc-0a1b2c3d".into());
        v.tags.insert("Name".into(), "web1".into());
        v.tags.insert("env".into(), "prod".into());
        v
    }

    #[test]
    fn each_filter_reads_its_attribute() {
        let v = view();
        let yes = |name: FilterName, value: &str| Filter::new(name, &[value]).matches(&v);
        assert!(yes(FilterName::InstanceId, "i-0123456789abcdef0"));
        assert!(yes(FilterName::InstanceStateName, "running"));
        assert!(!yes(FilterName::InstanceStateName, "stopped"));
        assert!(yes(FilterName::InstanceStateCode, "16"));
        assert!(yes(FilterName::InstanceType, "t3.*"));
        assert!(yes(FilterName::AvailabilityZone, "us-west-2?"));
        assert!(yes(FilterName::PrivateIpAddress, "127.0.0.1"));
        assert!(yes(FilterName::PrivateIpAddress, "127.0.0.*"));
        assert!(!yes(FilterName::IpAddress, "*"), "no public address");
        assert!(yes(FilterName::VpcId, "vpc-0a1b2c3d"));
        assert!(!yes(FilterName::SubnetId, "*"));
        assert!(yes(FilterName::Tag("Name".into()), "web1"));
        assert!(!yes(FilterName::Tag("Name".into()), "prod"));
        assert!(
            !yes(FilterName::Tag("name".into()), "web1"),
            "keys are exact"
        );
        assert!(yes(FilterName::TagKey, "en?"));
        assert!(!yes(FilterName::TagKey, "web1"));
        assert!(yes(FilterName::TagValue, "prod"));
    }

    #[test]
    fn values_or_filters_and() {
        let v = view();
        let f = Filter::new(FilterName::Tag("Name".into()), &["web2", "web1"]);
        assert!(f.matches(&v));
        let g = Filter::new(FilterName::InstanceStateName, &["stopped"]);
        assert!(!matches_all(&[f.clone(), g], &v));
        let h = Filter::new(FilterName::InstanceStateName, &["running"]);
        assert!(matches_all(&[f, h], &v));
        assert!(matches_all(&[], &v));
    }

    #[test]
    fn no_values_means_has_the_attribute() {
        let v = view();
        assert!(Filter::new(FilterName::VpcId, &[]).matches(&v));
        assert!(!Filter::new(FilterName::SubnetId, &[]).matches(&v));
        assert!(Filter::new(FilterName::Tag("env".into()), &[]).matches(&v));
        assert!(!Filter::new(FilterName::Tag("team".into()), &[]).matches(&v));
    }
}
