//! EC2's Query protocol for DescribeInstances, as a pure core: the form
//! body botocore and the AWS SDKs send (`Action=DescribeInstances&Version=
//! 2016-11-15&InstanceId.1=…`), its validation with EC2's error codes and
//! messages, filters with EC2's wildcards, paging with a validated
//! `NextToken`, and the XML of the answer and of errors. Nothing here does
//! I/O or knows about accounts, credentials or IAM; the server authenticates
//! (SigV4, service `ec2`), authorizes `ec2:DescribeInstances`, throttles and
//! supplies the caller's instances.
//!
//! The server's part, in a few lines:
//!
//! ```
//! use std::collections::BTreeMap;
//! use std::time::SystemTime;
//! use eic_ec2::{InstanceState, InstanceView, QueryRequest};
//!
//! fn answer(body: &[u8], mine: &BTreeMap<String, InstanceView>, request_id: &str) -> (u16, String) {
//!     let result = (|| {
//!         let request = eic_ec2::parse_query(body)?;
//!         // ... authorize request.iam_action() for the caller here ...
//!         request.dry_run_outcome()?;
//!         let QueryRequest::DescribeInstances(describe) = &request;
//!         let page = eic_ec2::describe_map(describe, mine)?;
//!         Ok(eic_ec2::render_describe_instances(request_id, &page))
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
//! let (status, xml) = answer(body, &mine, "req-1");
//! assert_eq!(status, 200);
//! assert!(xml.contains("<instanceId>i-0123456789abcdef0</instanceId>"));
//! let (status, xml) = answer(b"Action=DescribeInstances&Version=2016-11-15&InstanceId.1=i-0fffffffffffffff0",
//!                            &mine, "req-2");
//! assert_eq!(status, 400);
//! assert!(xml.contains("<Code>InvalidInstanceID.NotFound</Code>"));
//! ```

mod describe;
mod error;
mod filter;
mod instance;
mod query;
mod render;
mod token;
mod xml;

pub use describe::{describe, describe_map, Page};
pub use error::{Ec2Error, ErrorCode};
pub use filter::{matches_all, Filter, FilterName, Pattern};
pub use instance::{InstanceState, InstanceView};
pub use query::{
    is_well_formed_instance_id, parse_query, DescribeInstancesRequest, QueryRequest, API_VERSION,
    MAX_BODY_BYTES, MAX_FILTERS, MAX_FILTER_VALUES, MAX_FILTER_VALUE_CHARS, MAX_INSTANCE_IDS,
    MAX_KEY_BYTES, MAX_MAX_RESULTS, MAX_PARAMS, MAX_VALUE_BYTES, MIN_MAX_RESULTS,
};
pub use render::{iso8601_millis, render_describe_instances, CONTENT_TYPE, XMLNS};
