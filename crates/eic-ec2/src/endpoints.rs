//! DescribeInstanceConnectEndpoints: what `aws ec2-instance-connect ssh`
//! and `open-tunnel` ask to find the endpoint to tunnel through and its
//! `dnsName`, where they then open the websocket. The CLI filters `state`
//! (create-complete and the update states) and, without an endpoint id,
//! `vpc-id`, then prefers the endpoint whose `subnetId` is the instance's.
//!
//! The answer is EC2's, element names from botocore's model
//! (`Ec2InstanceConnectEndpoint`'s `locationName`s):
//!
//! ```text
//! <DescribeInstanceConnectEndpointsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
//!   <requestId>…</requestId>
//!   <instanceConnectEndpointSet><item>
//!     <ownerId>…</ownerId><instanceConnectEndpointId>eice-…</instanceConnectEndpointId>
//!     <instanceConnectEndpointArn>…</instanceConnectEndpointArn><state>create-complete</state>
//!     <dnsName>…</dnsName><networkInterfaceIdSet/><vpcId>…</vpcId>
//!     <availabilityZone>…</availabilityZone><createdAt>…Z</createdAt><subnetId>…</subnetId>
//!     <preserveClientIp>false</preserveClientIp><securityGroupIdSet/><tagSet/>
//!   </item></instanceConnectEndpointSet>
//!   <nextToken>…</nextToken>
//! </DescribeInstanceConnectEndpointsResponse>
//! ```
//!
//! The three sets are always sent, empty or not, as EC2 sends them;
//! `stateMessage`, `fipsDnsName` and `ipAddressType` only when known.

use std::time::SystemTime;

use crate::error::Ec2Error;
use crate::filter::{fixed_name, parse_name, Filter, FilterNames};
use crate::query::{DescribeInstanceConnectEndpointsRequest, DESCRIBE_INSTANCE_CONNECT_ENDPOINTS};
use crate::render::{iso8601_millis, XMLNS};
use crate::token;
use crate::xml::{Xml, PROLOG};

/// An endpoint's lifecycle state, EC2's `Ec2InstanceConnectEndpointState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EndpointState {
    CreateInProgress,
    CreateComplete,
    CreateFailed,
    DeleteInProgress,
    DeleteComplete,
    DeleteFailed,
    UpdateInProgress,
    UpdateComplete,
    UpdateFailed,
}

impl EndpointState {
    pub const ALL: [EndpointState; 9] = [
        EndpointState::CreateInProgress,
        EndpointState::CreateComplete,
        EndpointState::CreateFailed,
        EndpointState::DeleteInProgress,
        EndpointState::DeleteComplete,
        EndpointState::DeleteFailed,
        EndpointState::UpdateInProgress,
        EndpointState::UpdateComplete,
        EndpointState::UpdateFailed,
    ];

    /// `state`, and what the `state` filter matches.
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointState::CreateInProgress => "create-in-progress",
            EndpointState::CreateComplete => "create-complete",
            EndpointState::CreateFailed => "create-failed",
            EndpointState::DeleteInProgress => "delete-in-progress",
            EndpointState::DeleteComplete => "delete-complete",
            EndpointState::DeleteFailed => "delete-failed",
            EndpointState::UpdateInProgress => "update-in-progress",
            EndpointState::UpdateComplete => "update-complete",
            EndpointState::UpdateFailed => "update-failed",
        }
    }
}

/// One endpoint as DescribeInstanceConnectEndpoints shows it. The server
/// builds these (from its configuration: the `dnsName` is where eic's
/// tunnel listens); nothing here knows where they come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointView {
    /// `eice-` and lowercase hex (see [`crate::is_well_formed_endpoint_id`]).
    pub endpoint_id: String,
    /// The owning account.
    pub owner_id: String,
    /// `arn:aws:ec2:REGION:ACCOUNT:instance-connect-endpoint/eice-…`; the
    /// server knows the region, this crate does not.
    pub arn: String,
    pub state: EndpointState,
    /// Why the endpoint is in its state, e.g. a failure.
    pub state_message: Option<String>,
    /// The host the CLI opens `wss://DNS_NAME/openTunnel` on.
    pub dns_name: String,
    /// What the CLI uses instead with `use_fips_endpoint`.
    pub fips_dns_name: Option<String>,
    pub vpc_id: String,
    pub subnet_id: String,
    pub availability_zone: String,
    pub created_at: SystemTime,
    pub preserve_client_ip: bool,
    pub security_group_ids: Vec<String>,
    pub network_interface_ids: Vec<String>,
    /// `(key, value)` in the order shown.
    pub tags: Vec<(String, String)>,
    /// `ipv4`, `dualstack` or `ipv6`.
    pub ip_address_type: Option<String>,
}

impl EndpointView {
    /// A view with the fields every endpoint has, and nothing else
    /// (`preserveClientIp` false, as EC2's default).
    #[allow(clippy::too_many_arguments)] // one per field EC2 always shows
    pub fn new(
        endpoint_id: impl Into<String>,
        owner_id: impl Into<String>,
        arn: impl Into<String>,
        state: EndpointState,
        dns_name: impl Into<String>,
        vpc_id: impl Into<String>,
        subnet_id: impl Into<String>,
        availability_zone: impl Into<String>,
        created_at: SystemTime,
    ) -> EndpointView {
        EndpointView {
            endpoint_id: endpoint_id.into(),
            owner_id: owner_id.into(),
            arn: arn.into(),
            state,
            state_message: None,
            dns_name: dns_name.into(),
            fips_dns_name: None,
            vpc_id: vpc_id.into(),
            subnet_id: subnet_id.into(),
            availability_zone: availability_zone.into(),
            created_at,
            preserve_client_ip: false,
            security_group_ids: Vec::new(),
            network_interface_ids: Vec::new(),
            tags: Vec::new(),
            ip_address_type: None,
        }
    }
}

/// The filters eic answers for endpoints: those EC2 documents for the
/// action, and `availability-zone` and `ip-address-type`, which it does
/// not. Any other name is `InvalidParameterValue: The filter 'x' is
/// invalid`, as for DescribeInstances.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EndpointFilterName {
    InstanceConnectEndpointId,
    State,
    VpcId,
    SubnetId,
    AvailabilityZone,
    IpAddressType,
    /// `tag:KEY`: the tag KEY's value (the key itself is exact).
    Tag(String),
    /// `tag-key`: any tag's key.
    TagKey,
    /// `tag-value`: any tag's value.
    TagValue,
}

impl EndpointFilterName {
    /// Every fixed name (`tag:KEY` aside).
    pub const FIXED: [(&'static str, EndpointFilterName); 8] = [
        (
            "instance-connect-endpoint-id",
            EndpointFilterName::InstanceConnectEndpointId,
        ),
        ("state", EndpointFilterName::State),
        ("vpc-id", EndpointFilterName::VpcId),
        ("subnet-id", EndpointFilterName::SubnetId),
        ("availability-zone", EndpointFilterName::AvailabilityZone),
        ("ip-address-type", EndpointFilterName::IpAddressType),
        ("tag-key", EndpointFilterName::TagKey),
        ("tag-value", EndpointFilterName::TagValue),
    ];

    /// The name as sent, `None` when eic does not know it.
    pub fn parse(name: &str) -> Option<EndpointFilterName> {
        parse_name(&EndpointFilterName::FIXED, name, EndpointFilterName::Tag)
    }

    /// The name as EC2 spells it.
    pub fn as_string(&self) -> String {
        match self {
            EndpointFilterName::Tag(key) => format!("tag:{key}"),
            other => fixed_name(&EndpointFilterName::FIXED, other),
        }
    }
}

impl FilterNames for EndpointFilterName {
    fn parse(name: &str) -> Option<Self> {
        EndpointFilterName::parse(name)
    }

    fn as_string(&self) -> String {
        EndpointFilterName::as_string(self)
    }
}

impl Filter<EndpointFilterName> {
    /// Whether `endpoint` passes this filter.
    pub fn matches(&self, endpoint: &EndpointView) -> bool {
        let any = |text: &str| self.accepts(text);
        match &self.name {
            EndpointFilterName::InstanceConnectEndpointId => any(&endpoint.endpoint_id),
            EndpointFilterName::State => any(endpoint.state.as_str()),
            EndpointFilterName::VpcId => any(&endpoint.vpc_id),
            EndpointFilterName::SubnetId => any(&endpoint.subnet_id),
            EndpointFilterName::AvailabilityZone => any(&endpoint.availability_zone),
            EndpointFilterName::IpAddressType => {
                endpoint.ip_address_type.as_deref().is_some_and(any)
            }
            EndpointFilterName::Tag(key) => endpoint.tags.iter().any(|(k, v)| k == key && any(v)),
            EndpointFilterName::TagKey => endpoint.tags.iter().any(|(k, _)| any(k)),
            EndpointFilterName::TagValue => endpoint.tags.iter().any(|(_, v)| any(v)),
        }
    }
}

/// One page of the answer, in endpoint id order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointPage<'a> {
    pub endpoints: Vec<&'a EndpointView>,
    /// Present when more endpoints match after this page.
    pub next_token: Option<String>,
}

/// Answers `request` over the caller's endpoints.
///
/// `endpoints` must hold only what the caller may see (its account's), as
/// for [`crate::describe`]; its order does not matter, and of two with one
/// id the first is kept. An account has a handful of endpoints, so they are
/// simply sorted, not kept in a heap as instances are.
///
/// Every requested id must exist (else
/// `InvalidInstanceConnectEndpointId.NotFound` naming the missing ones, in
/// request order); then the filters select among them (or among all,
/// without ids), and `MaxResults` pages what is selected, with a
/// `NextToken` when more follow.
pub fn describe_endpoints<'a, I>(
    request: &DescribeInstanceConnectEndpointsRequest,
    endpoints: I,
) -> Result<EndpointPage<'a>, Ec2Error>
where
    I: IntoIterator<Item = &'a EndpointView>,
{
    let mut all: Vec<&EndpointView> = endpoints.into_iter().collect();
    all.sort_by(|a, b| a.endpoint_id.cmp(&b.endpoint_id));
    all.dedup_by(|a, b| a.endpoint_id == b.endpoint_id);
    let missing: Vec<&str> = request
        .endpoint_ids
        .iter()
        .map(String::as_str)
        .filter(|id| {
            all.binary_search_by(|e| e.endpoint_id.as_str().cmp(id))
                .is_err()
        })
        .collect();
    if !missing.is_empty() {
        return Err(Ec2Error::endpoint_not_found(&missing));
    }
    let after = request.after.as_deref();
    let mut selected = all.into_iter().filter(|e| {
        (request.endpoint_ids.is_empty() || request.endpoint_ids.contains(&e.endpoint_id))
            && after.is_none_or(|a| e.endpoint_id.as_str() > a)
            && request.filters.iter().all(|f| f.matches(e))
    });
    let endpoints: Vec<&EndpointView> = match request.max_results {
        Some(limit) => selected.by_ref().take(limit).collect(),
        None => selected.by_ref().collect(),
    };
    let next_token = match (selected.next(), endpoints.last()) {
        (Some(_), Some(last)) => Some(token::encode(
            &token::query_digest(
                DESCRIBE_INSTANCE_CONNECT_ENDPOINTS,
                &request.endpoint_ids,
                &request.filters,
            ),
            &last.endpoint_id,
        )),
        _ => None,
    };
    Ok(EndpointPage {
        endpoints,
        next_token,
    })
}

/// The 200 body for `page`.
pub fn render_describe_instance_connect_endpoints(
    request_id: &str,
    page: &EndpointPage<'_>,
) -> String {
    let mut x = Xml::with_capacity(256 + 1024 * page.endpoints.len());
    x.raw(PROLOG);
    x.raw("<DescribeInstanceConnectEndpointsResponse xmlns=\"");
    x.raw(XMLNS);
    x.raw("\">");
    x.text_element("requestId", request_id);
    if page.endpoints.is_empty() {
        x.raw("<instanceConnectEndpointSet/>");
    } else {
        x.open("instanceConnectEndpointSet");
        for e in &page.endpoints {
            endpoint(&mut x, e);
        }
        x.close("instanceConnectEndpointSet");
    }
    if let Some(token) = &page.next_token {
        x.text_element("nextToken", token);
    }
    x.raw("</DescribeInstanceConnectEndpointsResponse>");
    x.finish()
}

fn endpoint(x: &mut Xml, e: &EndpointView) {
    let opt = |x: &mut Xml, name: &str, value: Option<&str>| {
        if let Some(value) = value {
            x.text_element(name, value);
        }
    };
    x.open("item");
    x.text_element("ownerId", &e.owner_id);
    x.text_element("instanceConnectEndpointId", &e.endpoint_id);
    x.text_element("instanceConnectEndpointArn", &e.arn);
    x.text_element("state", e.state.as_str());
    opt(x, "stateMessage", e.state_message.as_deref());
    x.text_element("dnsName", &e.dns_name);
    opt(x, "fipsDnsName", e.fips_dns_name.as_deref());
    x.item_set("networkInterfaceIdSet", &e.network_interface_ids);
    x.text_element("vpcId", &e.vpc_id);
    x.text_element("availabilityZone", &e.availability_zone);
    x.text_element("createdAt", &iso8601_millis(e.created_at));
    x.text_element("subnetId", &e.subnet_id);
    x.text_element(
        "preserveClientIp",
        if e.preserve_client_ip {
            "true"
        } else {
            "false"
        },
    );
    x.item_set("securityGroupIdSet", &e.security_group_ids);
    if e.tags.is_empty() {
        x.raw("<tagSet/>");
    } else {
        x.open("tagSet");
        for (key, value) in &e.tags {
            x.open("item");
            x.text_element("key", key);
            x.text_element("value", value);
            x.close("item");
        }
        x.close("tagSet");
    }
    opt(x, "ipAddressType", e.ip_address_type.as_deref());
    x.close("item");
}
