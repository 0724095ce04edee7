//! The Query protocol's form body: `Action=…&Version=2016-11-15&…`, for
//! DescribeInstances, DescribeInstanceConnectEndpoints and eic's own
//! DescribeInstanceHostKeys.
//!
//! botocore and the AWS SDK for Rust send `POST /` with
//! `application/x-www-form-urlencoded`, list members as `Name.N` counted from
//! 1, and structure members as `Name.N.Member`. Parsing is bounded before
//! anything is kept: the body's size, the number of parameters, each key's
//! and value's length; a parameter given twice is refused rather than
//! silently resolved.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use crate::endpoints::EndpointFilterName;
use crate::error::Ec2Error;
use crate::filter::{Filter, FilterName, FilterNames, Pattern};
use crate::token;

/// The API version eic speaks. Older EC2 versions exist, but no current SDK
/// sends them; any other value is `NoSuchVersion`.
pub const API_VERSION: &str = "2016-11-15";
/// A larger body is refused before decoding. The largest legitimate
/// DescribeInstances body (1,000 ids and 200 filter values of 255 characters
/// each, percent-encoded) stays well below it.
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// 1,000 instance ids + 200 filter names + 200 filter values + the five
/// scalars, rounded up.
pub const MAX_PARAMS: usize = 1_500;
/// Longest decoded value. Filter values are held to EC2's 255 characters
/// (at most 1,020 bytes) within it.
pub const MAX_VALUE_BYTES: usize = 1_024;
/// Longest parameter name (`Filter.200.Value.200` is 20).
pub const MAX_KEY_BYTES: usize = 64;
/// `InstanceId.N`: N from 1 to this.
pub const MAX_INSTANCE_IDS: usize = 1_000;
/// `InstanceConnectEndpointId.N`: N from 1 to this (EC2 states no limit; an
/// account has a handful of endpoints, and this keeps [`MAX_PARAMS`]'s sum).
pub const MAX_ENDPOINT_IDS: usize = 1_000;
/// EC2's limits on filters: values in one call, and characters in a value.
pub const MAX_FILTER_VALUES: usize = 200;
pub const MAX_FILTER_VALUE_CHARS: usize = 255;
/// `Filter.N`: N from 1 to this (a filter without values still counts).
pub const MAX_FILTERS: usize = 200;
/// `MaxResults` bounds (EC2's for DescribeInstances).
pub const MIN_MAX_RESULTS: usize = 5;
pub const MAX_MAX_RESULTS: usize = 1_000;
/// `MaxResults` bounds for DescribeInstanceConnectEndpoints (EC2's model).
pub const MIN_ENDPOINT_MAX_RESULTS: usize = 1;
pub const MAX_ENDPOINT_MAX_RESULTS: usize = 50;

/// The `Action` names eic answers.
pub const DESCRIBE_INSTANCES: &str = "DescribeInstances";
/// What `aws ec2-instance-connect ssh` and `open-tunnel` ask to find the
/// endpoint (and its DNS name) to tunnel through.
pub const DESCRIBE_INSTANCE_CONNECT_ENDPOINTS: &str = "DescribeInstanceConnectEndpoints";
/// eic's extension: the SSH port and host public keys of instances (EC2
/// has no such action).
pub const DESCRIBE_INSTANCE_HOST_KEYS: &str = "DescribeInstanceHostKeys";
pub const ACTIONS: [&str; 3] = [
    DESCRIBE_INSTANCES,
    DESCRIBE_INSTANCE_CONNECT_ENDPOINTS,
    DESCRIBE_INSTANCE_HOST_KEYS,
];

/// A parsed Query request. One variant per action eic answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryRequest {
    DescribeInstances(DescribeInstancesRequest),
    DescribeInstanceConnectEndpoints(DescribeInstanceConnectEndpointsRequest),
    DescribeInstanceHostKeys(DescribeInstanceHostKeysRequest),
}

impl QueryRequest {
    /// The `Action` parameter, e.g. for the audit log's `eventName`.
    pub fn action(&self) -> &'static str {
        match self {
            QueryRequest::DescribeInstances(_) => DESCRIBE_INSTANCES,
            QueryRequest::DescribeInstanceConnectEndpoints(_) => {
                DESCRIBE_INSTANCE_CONNECT_ENDPOINTS
            }
            QueryRequest::DescribeInstanceHostKeys(_) => DESCRIBE_INSTANCE_HOST_KEYS,
        }
    }

    /// The IAM action to authorize (neither describe action has
    /// resource-level permissions, so the resource is `*`).
    /// DescribeInstanceHostKeys shows what DescribeInstances does plus
    /// public keys, so it takes the same permission rather than one no
    /// policy grants yet.
    pub fn iam_action(&self) -> &'static str {
        match self {
            QueryRequest::DescribeInstances(_) | QueryRequest::DescribeInstanceHostKeys(_) => {
                "ec2:DescribeInstances"
            }
            QueryRequest::DescribeInstanceConnectEndpoints(_) => {
                "ec2:DescribeInstanceConnectEndpoints"
            }
        }
    }

    pub fn dry_run(&self) -> bool {
        match self {
            QueryRequest::DescribeInstances(r) => r.dry_run,
            QueryRequest::DescribeInstanceConnectEndpoints(r) => r.dry_run,
            QueryRequest::DescribeInstanceHostKeys(r) => r.dry_run,
        }
    }

    /// The instance ids the request names, in request order, each once
    /// (none for DescribeInstanceConnectEndpoints, which names endpoints).
    pub fn instance_ids(&self) -> &[String] {
        match self {
            QueryRequest::DescribeInstances(r) => &r.instance_ids,
            QueryRequest::DescribeInstanceConnectEndpoints(_) => &[],
            QueryRequest::DescribeInstanceHostKeys(r) => &r.instance_ids,
        }
    }

    /// Call once the request is authenticated and authorized: with
    /// `DryRun=true` this is the answer (`DryRunOperation`, 412), otherwise
    /// `Ok` and the request goes on. (An unauthorized dry run is answered
    /// `UnauthorizedOperation` before this, as EC2 does.)
    pub fn dry_run_outcome(&self) -> Result<(), Ec2Error> {
        if self.dry_run() {
            Err(Ec2Error::dry_run_operation())
        } else {
            Ok(())
        }
    }
}

/// DescribeInstances, validated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DescribeInstancesRequest {
    /// `InstanceId.N` in N order, each once.
    pub instance_ids: Vec<String>,
    pub filters: Vec<Filter>,
    /// `MaxResults` (never together with instance ids).
    pub max_results: Option<usize>,
    /// From a valid `NextToken`: the page starts after this instance id.
    pub after: Option<String>,
    pub dry_run: bool,
}

/// DescribeInstanceConnectEndpoints, validated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DescribeInstanceConnectEndpointsRequest {
    /// `InstanceConnectEndpointId.N` in N order, each once.
    pub endpoint_ids: Vec<String>,
    pub filters: Vec<Filter<EndpointFilterName>>,
    /// `MaxResults`, with or without endpoint ids (EC2 is not known to
    /// refuse the two together for this action, as it does for
    /// DescribeInstances).
    pub max_results: Option<usize>,
    /// From a valid `NextToken`: the page starts after this endpoint id.
    pub after: Option<String>,
    pub dry_run: bool,
}

/// DescribeInstanceHostKeys, validated: `InstanceId.N` (at least one) and
/// `DryRun`, nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribeInstanceHostKeysRequest {
    /// `InstanceId.N` in N order, each once; never empty.
    pub instance_ids: Vec<String>,
    pub dry_run: bool,
}

/// EC2's instance id shape as eic issues and accepts it: `i-` and lowercase
/// hex, 10 to 32 characters in all (the same rule as EC2 Instance Connect's
/// model and eic's registry, so every registered instance can be named).
pub fn is_well_formed_instance_id(id: &str) -> bool {
    (10..=32).contains(&id.len())
        && id
            .strip_prefix("i-")
            .is_some_and(|hex| hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

/// EC2's endpoint id shape: `eice-` and 8 or 17 lowercase hex digits, as
/// AWS issues them (the CLI's own check, `^eice-[0-9a-zA-Z_]+$`, admits
/// every such id).
pub fn is_well_formed_endpoint_id(id: &str) -> bool {
    id.strip_prefix("eice-").is_some_and(|hex| {
        matches!(hex.len(), 8 | 17) && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// Parses and validates a Query body.
pub fn parse_query(body: &[u8]) -> Result<QueryRequest, Ec2Error> {
    if body.len() > MAX_BODY_BYTES {
        return Err(Ec2Error::invalid_parameter_value(format!(
            "The request body is larger than {MAX_BODY_BYTES} bytes"
        )));
    }
    let mut params: BTreeMap<String, String> = BTreeMap::new();
    for (n, (key, value)) in form_urlencoded::parse(body).enumerate() {
        if n >= MAX_PARAMS {
            return Err(Ec2Error::invalid_parameter_value(format!(
                "The request has more than {MAX_PARAMS} parameters"
            )));
        }
        // The decoder substitutes U+FFFD for bytes that are not UTF-8 once
        // percent-decoded; no parameter eic reads may hold that character.
        if key.contains('\u{FFFD}') || value.contains('\u{FFFD}') {
            return Err(Ec2Error::malformed_query_string());
        }
        if key.len() > MAX_KEY_BYTES {
            return Err(Ec2Error::unknown_parameter(&shorten(&key)));
        }
        if value.len() > MAX_VALUE_BYTES {
            return Err(if parse_filter_key(&key).is_some() {
                filter_value_too_long()
            } else {
                Ec2Error::invalid_parameter_value(format!(
                    "The value of parameter {key} is longer than {MAX_VALUE_BYTES} bytes"
                ))
            });
        }
        match params.entry(key.into_owned()) {
            Entry::Occupied(e) => {
                return Err(Ec2Error::invalid_parameter_value(format!(
                    "The parameter {} is given more than once",
                    e.key()
                )))
            }
            Entry::Vacant(e) => {
                e.insert(value.into_owned());
            }
        }
    }
    let action = take_nonempty(&mut params, "Action").ok_or_else(Ec2Error::missing_action)?;
    if !ACTIONS.contains(&action.as_str()) {
        return Err(Ec2Error::invalid_action(&action));
    }
    let version = take_nonempty(&mut params, "Version")
        .ok_or_else(|| Ec2Error::missing_parameter("Version"))?;
    if version != API_VERSION {
        return Err(Ec2Error::no_such_version(&version));
    }
    match action.as_str() {
        DESCRIBE_INSTANCE_HOST_KEYS => {
            describe_instance_host_keys(params).map(QueryRequest::DescribeInstanceHostKeys)
        }
        DESCRIBE_INSTANCE_CONNECT_ENDPOINTS => describe_instance_connect_endpoints(params)
            .map(QueryRequest::DescribeInstanceConnectEndpoints),
        _ => describe_instances(params).map(QueryRequest::DescribeInstances),
    }
}

/// The action a body names, if eic answers it, without validating the rest:
/// what the audit event of a call refused before its body is parsed (an
/// unsigned one, say) is named.
pub fn requested_action(body: &[u8]) -> Option<&'static str> {
    let (_, action) = form_urlencoded::parse(body).find(|(key, _)| key == "Action")?;
    ACTIONS.into_iter().find(|known| *known == action)
}

fn take_nonempty(params: &mut BTreeMap<String, String>, key: &str) -> Option<String> {
    params.remove(key).filter(|v| !v.is_empty())
}

/// At most 64 characters of client text for a message.
fn shorten(text: &str) -> String {
    match text.char_indices().nth(MAX_KEY_BYTES) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_owned(),
    }
}

fn filter_value_too_long() -> Ec2Error {
    Ec2Error::filter_limit(format!(
        "The maximum length for a filter value is {MAX_FILTER_VALUE_CHARS} characters"
    ))
}

fn too_many_filter_values() -> Ec2Error {
    Ec2Error::filter_limit(format!(
        "The maximum number of filter values specified on a single call is {MAX_FILTER_VALUES}"
    ))
}

/// `N` of a list member: decimal, no sign or leading zero, at least 1.
fn list_index(s: &str) -> Option<usize> {
    if s.is_empty() || s.len() > 9 || s.starts_with('0') || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

enum FilterKey {
    Name(usize),
    Value(usize, usize),
}

/// `Filter.N.Name` / `Filter.N.Value.M` (indexes unbounded above here).
fn parse_filter_key(key: &str) -> Option<FilterKey> {
    let (n, tail) = key.strip_prefix("Filter.")?.split_once('.')?;
    let n = list_index(n)?;
    if tail == "Name" {
        return Some(FilterKey::Name(n));
    }
    Some(FilterKey::Value(
        n,
        list_index(tail.strip_prefix("Value.")?)?,
    ))
}

/// One action's list of resource ids, `NAME.N`, and the ids' shape.
struct IdList {
    /// `InstanceId`, `InstanceConnectEndpointId`.
    name: &'static str,
    /// For the message when there are too many: `instance`, `instance
    /// connect endpoint`.
    noun: &'static str,
    max: usize,
    well_formed: fn(&str) -> bool,
    malformed: fn(&str) -> Ec2Error,
}

const INSTANCE_IDS: IdList = IdList {
    name: "InstanceId",
    noun: "instance",
    max: MAX_INSTANCE_IDS,
    well_formed: is_well_formed_instance_id,
    malformed: Ec2Error::malformed_instance_id,
};

const ENDPOINT_IDS: IdList = IdList {
    name: "InstanceConnectEndpointId",
    noun: "instance connect endpoint",
    max: MAX_ENDPOINT_IDS,
    well_formed: is_well_formed_endpoint_id,
    malformed: Ec2Error::malformed_endpoint_id,
};

impl IdList {
    /// `NAME.N`'s N, or `None` for another parameter; more than `max` is
    /// refused.
    fn index(&self, key: &str) -> Option<Result<usize, Ec2Error>> {
        let n = key
            .strip_prefix(self.name)?
            .strip_prefix('.')
            .and_then(list_index)?;
        Some(if n > self.max {
            Err(Ec2Error::invalid_parameter_value(format!(
                "The request names more than {} {} IDs",
                self.max, self.noun
            )))
        } else {
            Ok(n)
        })
    }

    /// The ids in N order, each checked, each once.
    fn ids(&self, ids: BTreeMap<usize, String>) -> Result<Vec<String>, Ec2Error> {
        let mut out: Vec<String> = Vec::with_capacity(ids.len());
        for id in ids.into_values() {
            if id.is_empty() {
                return Err(Ec2Error::missing_parameter(self.name));
            }
            if !(self.well_formed)(&id) {
                return Err((self.malformed)(&id));
            }
            if !out.contains(&id) {
                out.push(id);
            }
        }
        Ok(out)
    }
}

fn describe_instance_host_keys(
    params: BTreeMap<String, String>,
) -> Result<DescribeInstanceHostKeysRequest, Ec2Error> {
    let mut ids: BTreeMap<usize, String> = BTreeMap::new();
    let mut dry_run = false;
    for (key, value) in params {
        if key == "DryRun" {
            dry_run = parse_bool("DryRun", &value)?;
        } else if let Some(n) = INSTANCE_IDS.index(&key) {
            ids.insert(n?, value);
        } else {
            return Err(Ec2Error::unknown_parameter(&key));
        }
    }
    let instance_ids = INSTANCE_IDS.ids(ids)?;
    if instance_ids.is_empty() {
        return Err(Ec2Error::missing_parameter("InstanceId"));
    }
    Ok(DescribeInstanceHostKeysRequest {
        instance_ids,
        dry_run,
    })
}

#[derive(Default)]
struct RawFilter {
    name: Option<String>,
    values: BTreeMap<usize, String>,
}

/// What DescribeInstances and DescribeInstanceConnectEndpoints share:
/// ids, `Filter.N`, `MaxResults`, `NextToken` and `DryRun`, validated.
struct Describe<N> {
    ids: Vec<String>,
    filters: Vec<Filter<N>>,
    max_results: Option<usize>,
    after: Option<String>,
    dry_run: bool,
}

/// How the two differ in those parameters.
struct DescribeAction {
    /// The action, for the paging token.
    name: &'static str,
    ids: IdList,
    max_results: RangeInclusive<usize>,
    /// What a too small `MaxResults` is told to expect.
    too_small_expect: &'static str,
    /// Whether `MaxResults` is refused together with ids.
    ids_exclude_max_results: bool,
}

fn describe_instances(
    params: BTreeMap<String, String>,
) -> Result<DescribeInstancesRequest, Ec2Error> {
    let d = describe::<FilterName>(
        params,
        DescribeAction {
            name: DESCRIBE_INSTANCES,
            ids: INSTANCE_IDS,
            max_results: MIN_MAX_RESULTS..=MAX_MAX_RESULTS,
            // EC2's words, though 5 itself is accepted.
            too_small_expect: "a value greater than 5",
            ids_exclude_max_results: true,
        },
    )?;
    Ok(DescribeInstancesRequest {
        instance_ids: d.ids,
        filters: d.filters,
        max_results: d.max_results,
        after: d.after,
        dry_run: d.dry_run,
    })
}

fn describe_instance_connect_endpoints(
    params: BTreeMap<String, String>,
) -> Result<DescribeInstanceConnectEndpointsRequest, Ec2Error> {
    let d = describe::<EndpointFilterName>(
        params,
        DescribeAction {
            name: DESCRIBE_INSTANCE_CONNECT_ENDPOINTS,
            ids: ENDPOINT_IDS,
            max_results: MIN_ENDPOINT_MAX_RESULTS..=MAX_ENDPOINT_MAX_RESULTS,
            // eic's words, in EC2's form; EC2's are not known.
            too_small_expect: "a value greater than or equal to 1",
            ids_exclude_max_results: false,
        },
    )?;
    Ok(DescribeInstanceConnectEndpointsRequest {
        endpoint_ids: d.ids,
        filters: d.filters,
        max_results: d.max_results,
        after: d.after,
        dry_run: d.dry_run,
    })
}

fn describe<N: FilterNames>(
    params: BTreeMap<String, String>,
    action: DescribeAction,
) -> Result<Describe<N>, Ec2Error> {
    let mut ids: BTreeMap<usize, String> = BTreeMap::new();
    let mut raw_filters: BTreeMap<usize, RawFilter> = BTreeMap::new();
    let mut dry_run = false;
    let mut max_results = None;
    let mut next_token = None;
    for (key, value) in params {
        match key.as_str() {
            "DryRun" => dry_run = parse_bool("DryRun", &value)?,
            "MaxResults" => max_results = Some(parse_max_results(&value, &action)?),
            "NextToken" => next_token = Some(value).filter(|v| !v.is_empty()),
            _ => {
                if let Some(n) = action.ids.index(&key) {
                    ids.insert(n?, value);
                    continue;
                }
                match parse_filter_key(&key) {
                    Some(FilterKey::Name(n)) if n <= MAX_FILTERS => {
                        raw_filters.entry(n).or_default().name = Some(value);
                    }
                    Some(FilterKey::Value(n, m)) if n <= MAX_FILTERS && m <= MAX_FILTER_VALUES => {
                        raw_filters.entry(n).or_default().values.insert(m, value);
                    }
                    Some(FilterKey::Name(_)) => {
                        return Err(Ec2Error::filter_limit(format!(
                        "The maximum number of filters specified on a single call is {MAX_FILTERS}"
                    )))
                    }
                    Some(FilterKey::Value(..)) => return Err(too_many_filter_values()),
                    None => return Err(Ec2Error::unknown_parameter(&key)),
                }
            }
        }
    }

    let ids = action.ids.ids(ids)?;

    let mut filters = Vec::with_capacity(raw_filters.len());
    let mut total_values = 0;
    for (n, raw) in raw_filters {
        let name = raw
            .name
            .ok_or_else(|| Ec2Error::missing_parameter(&format!("Filter.{n}.Name")))?;
        let name = N::parse(&name).ok_or_else(|| Ec2Error::invalid_filter(&name))?;
        total_values += raw.values.len();
        if total_values > MAX_FILTER_VALUES {
            return Err(too_many_filter_values());
        }
        let mut values = Vec::with_capacity(raw.values.len());
        for v in raw.values.into_values() {
            if v.chars().count() > MAX_FILTER_VALUE_CHARS {
                return Err(filter_value_too_long());
            }
            values.push(Pattern::new(&v));
        }
        filters.push(Filter { name, values });
    }

    if action.ids_exclude_max_results && max_results.is_some() && !ids.is_empty() {
        return Err(Ec2Error::instance_ids_with_max_results());
    }
    let after = match next_token {
        None => None,
        Some(t) => Some(
            token::decode(
                &t,
                &token::query_digest(action.name, &ids, &filters),
                action.ids.well_formed,
            )
            .ok_or_else(|| Ec2Error::invalid_next_token(&t))?,
        ),
    };
    Ok(Describe {
        ids,
        filters,
        max_results,
        after,
        dry_run,
    })
}

/// `true`/`false` in any case, as the SDKs send `true`/`false` (eic's
/// wording for anything else).
fn parse_bool(name: &str, value: &str) -> Result<bool, Ec2Error> {
    if value.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if value.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(Ec2Error::invalid_parameter_value(format!(
            "Value ( {value} ) for parameter {name} is invalid. Expecting true or false."
        )))
    }
}

/// EC2 (DescribeInstances): `Value ( 1 ) for parameter maxResults is
/// invalid. Expecting a value greater than 5.` (5 itself is accepted). The
/// wording above the maximum and for a non-number is eic's, in the same
/// form.
fn parse_max_results(value: &str, action: &DescribeAction) -> Result<usize, Ec2Error> {
    let invalid = |expect: &str| {
        Ec2Error::invalid_parameter_value(format!(
            "Value ( {value} ) for parameter maxResults is invalid. Expecting {expect}."
        ))
    };
    let n: i64 = value.parse().map_err(|_| invalid("an integer"))?;
    let (min, max) = (*action.max_results.start(), *action.max_results.end());
    if n < min as i64 {
        return Err(invalid(action.too_small_expect));
    }
    if n > max as i64 {
        return Err(invalid(&format!("a value less than or equal to {max}")));
    }
    // In range, so it fits.
    Ok(n as usize)
}
