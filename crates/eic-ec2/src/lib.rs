//! EC2's Query protocol for DescribeInstances and
//! DescribeInstanceConnectEndpoints, as a pure core: the form body botocore
//! and the AWS SDKs send (`Action=DescribeInstances&Version=
//! 2016-11-15&InstanceId.1=…`), its validation with EC2's error codes and
//! messages, filters with EC2's wildcards, paging with a validated
//! `NextToken`, and the XML of the answer and of errors. The endpoints
//! action is what `aws ec2-instance-connect ssh` and `open-tunnel` ask to
//! find where to open their websocket ([`describe_endpoints`],
//! [`render_describe_instance_connect_endpoints`]). Beside them is eic's
//! extension DescribeInstanceHostKeys (instances' SSH ports and host keys,
//! [`render_describe_instance_host_keys`]). Nothing here does I/O or knows
//! about accounts, credentials or IAM; the server authenticates (SigV4,
//! service `ec2`), authorizes [`QueryRequest::iam_action`], throttles and
//! supplies the caller's instances and endpoints.
//!
//! The server's part, in a few lines:
//!
//! ```
//! use std::collections::BTreeMap;
//! use std::time::SystemTime;
//! use eic_ec2::{EndpointState, EndpointView, InstanceHostKeys, InstanceState, InstanceView,
//!                QueryRequest};
//!
//! fn answer(body: &[u8], mine: &BTreeMap<String, InstanceView>, endpoints: &[EndpointView],
//!           request_id: &str) -> (u16, String) {
//!     let result = (|| {
//!         let request = eic_ec2::parse_query(body)?;
//!         // ... authorize request.iam_action() for the caller here ...
//!         request.dry_run_outcome()?;
//!         match &request {
//!             QueryRequest::DescribeInstances(describe) => {
//!                 let page = eic_ec2::describe_map(describe, mine)?;
//!                 Ok(eic_ec2::render_describe_instances(request_id, &page))
//!             }
//!             QueryRequest::DescribeInstanceConnectEndpoints(describe) => {
//!                 let page = eic_ec2::describe_endpoints(describe, endpoints)?;
//!                 Ok(eic_ec2::render_describe_instance_connect_endpoints(request_id, &page))
//!             }
//!             QueryRequest::DescribeInstanceHostKeys(ids) => {
//!                 // ... the caller's instances' ports and host keys here ...
//!                 let keys: BTreeMap<&str, InstanceHostKeys> = mine
//!                     .keys()
//!                     .map(|id| (id.as_str(), InstanceHostKeys {
//!                         instance_id: id.clone(), ssh_port: 22, host_keys: Vec::new() }))
//!                     .collect();
//!                 let found = eic_ec2::describe_host_keys(ids, |id| keys.get(id))?;
//!                 Ok(eic_ec2::render_describe_instance_host_keys(request_id, &found, None))
//!             }
//!         }
//!     })();
//!     match result {
//!         Ok(xml) => (200, xml),
//!         Err(e) => {
//!             let e: eic_ec2::Ec2Error = e;
//!             (e.status(), e.render(request_id))
//!         }
//!     }
//! }
//!
//! let v = InstanceView::new("i-0123456789abcdef0", "111122223333", InstanceState::Running,
//!                           "t3.micro", "us-west-2a", SystemTime::UNIX_EPOCH);
//! let mine = BTreeMap::from([(v.instance_id.clone(), v)]);
//! let body = b"Action=DescribeInstances&Version=2016-11-15&InstanceId.1=i-0123456789abcdef0";
//! let eice = EndpointView::new("eice-0123456789abcdef0", "111122223333",
//!     "arn:aws:ec2:us-west-2:111122223333:instance-connect-endpoint/eice-0123456789abcdef0",
//!     EndpointState::CreateComplete, "eic.example", "vpc-0a1b2c3d", "subnet-0a1b2c3d",
//!     "us-west-2a", SystemTime::UNIX_EPOCH);
//! let endpoints = [eice];
//! let (status, xml) = answer(body, &mine, &endpoints, "req-1");
//! assert_eq!(status, 200);
//! assert!(xml.contains("<instanceId>i-0123456789abcdef0</instanceId>"));
//! let (status, xml) = answer(b"Action=DescribeInstances&Version=2016-11-15&InstanceId.1=i-0fffffffffffffff0",
//!                            &mine, &endpoints, "req-2");
//! assert_eq!(status, 400);
//! assert!(xml.contains("<Code>InvalidInstanceID.NotFound</Code>"));
//! let (status, xml) = answer(b"Action=DescribeInstanceHostKeys&Version=2016-11-15&InstanceId.1=i-0123456789abcdef0",
//!                            &mine, &endpoints, "req-3");
//! assert_eq!(status, 200);
//! assert!(xml.contains("<sshPort>22</sshPort><hostKeySet/>"));
//! let (status, xml) = answer(b"Action=DescribeInstanceConnectEndpoints&Version=2016-11-15\
//!                              &Filter.1.Name=state&Filter.1.Value.1=create-complete",
//!                            &mine, &endpoints, "req-4");
//! assert_eq!(status, 200);
//! assert!(xml.contains("<dnsName>eic.example</dnsName>"));
//! ```

mod describe;
mod endpoints;
mod error;
mod filter;
mod host_keys;
mod instance;
mod query;
mod render;
mod token;
mod xml;

pub use xml::escape as escape_markup;

pub use describe::{describe, describe_map, Page};
pub use endpoints::{
    describe_endpoints, render_describe_instance_connect_endpoints, EndpointFilterName,
    EndpointPage, EndpointState, EndpointView,
};
pub use error::{Ec2Error, ErrorCode};
pub use filter::{matches_all, Filter, FilterName, Filterable, Pattern};
pub use host_keys::{
    describe_host_keys, render_describe_instance_host_keys, InstanceHostKeys, SerialConsoleHostKeys,
};
pub use instance::{InstanceState, InstanceView};
pub use query::{
    is_well_formed_endpoint_id, is_well_formed_instance_id, parse_query, requested_action,
    DescribeInstanceConnectEndpointsRequest, DescribeInstanceHostKeysRequest,
    DescribeInstancesRequest, QueryRequest, ACTIONS, API_VERSION, DESCRIBE_INSTANCES,
    DESCRIBE_INSTANCE_CONNECT_ENDPOINTS, DESCRIBE_INSTANCE_HOST_KEYS, MAX_BODY_BYTES,
    MAX_ENDPOINT_IDS, MAX_ENDPOINT_MAX_RESULTS, MAX_FILTERS, MAX_FILTER_VALUES,
    MAX_FILTER_VALUE_CHARS, MAX_INSTANCE_IDS, MAX_KEY_BYTES, MAX_MAX_RESULTS, MAX_PARAMS,
    MAX_VALUE_BYTES, MIN_ENDPOINT_MAX_RESULTS, MIN_MAX_RESULTS,
};
pub use render::{iso8601_millis, render_describe_instances, CONTENT_TYPE, XMLNS};
