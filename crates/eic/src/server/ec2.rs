//! EC2's Query API on the API listener: DescribeInstances, and eic's own
//! DescribeInstanceHostKeys (instances' SSH ports and host keys, for
//! `eic ssh`), through the pure core `eic-ec2`.
//!
//! The order, the same for both: SigV4 (service `ec2`, the same
//! credentials as the Instance Connect API), the principal's throttle (the
//! same bucket as pushes), the form body, authorization of
//! `ec2:DescribeInstances` on `*`, DryRun, then the caller's account's
//! instances only: another account's instance is
//! `InvalidInstanceID.NotFound` exactly like an unknown one. Every call,
//! allowed or refused, is audited with eventSource `ec2.amazonaws.com`.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use eic_ec2::{Ec2Error, Filterable, InstanceHostKeys, InstanceView, QueryRequest};
use eic_sigv4::SigV4ErrorKind;
use eic_store::fleet::{Enrollment, FleetState};
use eic_wire::ErrorCode;

use super::api::{Api, ApiRequest};
use super::reload::Catalog;
use crate::audit::{Admission, ApiCall, ApiCallKind, CallParameters, Identity, EC2_EVENT_SOURCE};
use crate::config::InstanceState;
use crate::registry::{Instance, Principal, Registry};

/// What to send back: status, request id (also in the XML) and the XML.
pub struct Ec2Response {
    pub status: u16,
    pub request_id: String,
    pub body: String,
}

/// Whether a request is for the EC2 Query API: `POST /` without
/// `X-Amz-Target`, with a form body.
pub fn is_ec2_query(method: &str, path: &str, headers: &http::HeaderMap) -> bool {
    method == "POST"
        && path == "/"
        && !headers.contains_key("x-amz-target")
        && headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                v.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
}

/// Who called, as far as it is known, for the audit event.
#[derive(Default)]
struct Caller {
    access_key_id: Option<String>,
    principal: Option<Arc<Principal>>,
    temporary: bool,
    /// The event's `requestParameters`, once the body parsed.
    parameters: Option<serde_json::Value>,
}

/// How many instance ids and filters an event lists at most, so no caller
/// makes an audit line large (the rest are counted).
const AUDITED_ITEMS: usize = 20;

/// CloudTrail's `requestParameters`: instance ids, and for
/// DescribeInstances filter names (not their values, which are compiled
/// patterns by now) and `maxResults`; at most [`AUDITED_ITEMS`] of each.
fn audited_parameters(query: &QueryRequest) -> serde_json::Value {
    use serde_json::{json, Map, Value};
    let mut parameters = Map::new();
    let ids = query.instance_ids();
    if !ids.is_empty() {
        let items: Vec<Value> = ids
            .iter()
            .take(AUDITED_ITEMS)
            .map(|id| json!({ "instanceId": id }))
            .collect();
        parameters.insert(
            "instancesSet".into(),
            json!({ "items": items, "count": ids.len() }),
        );
    }
    let (filters, max_results): (Vec<String>, _) = match query {
        QueryRequest::DescribeInstances(request) => (
            request.filters.iter().map(|f| f.name.as_string()).collect(),
            request.max_results,
        ),
        QueryRequest::DescribeInstanceConnectEndpoints(request) => {
            if !request.endpoint_ids.is_empty() {
                let items: Vec<Value> = request
                    .endpoint_ids
                    .iter()
                    .take(AUDITED_ITEMS)
                    .map(|id| json!({ "instanceConnectEndpointId": id }))
                    .collect();
                parameters.insert(
                    "instanceConnectEndpointIdSet".into(),
                    json!({ "items": items, "count": request.endpoint_ids.len() }),
                );
            }
            (
                request.filters.iter().map(|f| f.name.as_string()).collect(),
                request.max_results,
            )
        }
        QueryRequest::DescribeInstanceHostKeys(_) => (Vec::new(), None),
    };
    if !filters.is_empty() {
        let items: Vec<Value> = filters
            .iter()
            .take(AUDITED_ITEMS)
            .map(|name| json!({ "name": name }))
            .collect();
        parameters.insert(
            "filterSet".into(),
            json!({ "items": items, "count": filters.len() }),
        );
    }
    if let Some(n) = max_results {
        parameters.insert("maxResults".into(), json!(n));
    }
    Value::Object(parameters)
}

/// A fleet that cannot answer fails the call as EC2's InternalError (500,
/// retried by the SDKs).
fn fleet_unavailable(e: eic_store::StoreError) -> Ec2Error {
    tracing::error!(
        error = &e as &dyn std::error::Error,
        "fleet unavailable; EC2 request refused"
    );
    Ec2Error::internal_error()
}

/// What DescribeInstanceHostKeys shows of an instance. A terminated one
/// is still found (as DescribeInstances finds it) but shows no keys: its
/// sshd is gone, and its address may be another machine's by now.
fn host_keys_of(instance: &Instance) -> InstanceHostKeys {
    InstanceHostKeys {
        instance_id: instance.id.clone(),
        ssh_port: instance.ssh_port,
        host_keys: if instance.state == InstanceState::Terminated {
            Vec::new()
        } else {
            instance.host_keys.clone()
        },
    }
}

impl Api {
    pub async fn handle_ec2(&self, request: ApiRequest<'_>) -> Ec2Response {
        let started = std::time::Instant::now();
        let request_id = uuid::Uuid::new_v4().to_string();
        let mut caller = Caller::default();
        let span = tracing::info_span!("request", request_id = %request_id);
        let outcome = tracing::Instrument::instrument(
            self.answer_ec2(&request, &request_id, &mut caller),
            span.clone(),
        )
        .await;
        let _in_request = span.enter();
        let error = outcome.as_ref().err();
        self.metrics.request(
            eic_ec2::requested_action(request.http.body)
                .unwrap_or(crate::metrics::UNKNOWN_OPERATION),
            error.map_or(crate::metrics::OK, |e| e.code.as_str()),
            started.elapsed(),
        );
        let admission = match error {
            None => Admission::Outcome,
            Some(e) => Admission::Refusal {
                principal: caller.principal.as_deref().map(|p| p.arn.as_str()),
                source_ip: request.source_ip,
                code: e.code.as_str(),
            },
        };
        let principal = caller.principal.as_deref();
        let recorded = self.audit.record_api_call(
            &ApiCall {
                time: self.clock.now(),
                event_source: EC2_EVENT_SOURCE,
                read_only: true,
                region: &self.region,
                // Named before the body is validated, so a refusal of an
                // unsigned call is named too; an action eic does not answer
                // is filed under DescribeInstances, as before there were two.
                event_name: Some(
                    eic_ec2::requested_action(request.http.body)
                        .unwrap_or(eic_ec2::DESCRIBE_INSTANCES),
                ),
                identity: Identity::of(
                    principal,
                    caller.access_key_id.as_deref(),
                    caller.temporary,
                ),
                source_ip: request.source_ip,
                user_agent: crate::audit::user_agent(request.http.headers),
                request_parameters: caller.parameters.take().map(CallParameters::Describe),
                request_id: &request_id,
                error: error.map(|e| (e.code.as_str(), e.message.as_str())),
            },
            ApiCallKind::Other(admission),
        );
        if let Err(e) = recorded {
            tracing::error!(request_id, error = %e, path = %self.audit.path().display(), "audit log write failed");
        }
        match outcome {
            Ok(body) => Ec2Response {
                status: 200,
                request_id,
                body,
            },
            Err(e) => {
                tracing::debug!(request_id, code = e.code.as_str(), error_message = %e.message, "EC2 request refused");
                Ec2Response {
                    status: e.status(),
                    body: e.render(&request_id),
                    request_id,
                }
            }
        }
    }

    /// What every action shares, then the action.
    async fn answer_ec2(
        &self,
        request: &ApiRequest<'_>,
        request_id: &str,
        caller: &mut Caller,
    ) -> Result<String, Ec2Error> {
        let now = self.clock.now();
        let catalog = self.catalog.current();
        let principal = self
            .authenticate_ec2(&catalog, request, now, caller)
            .await?;
        let query = eic_ec2::parse_query(request.http.body)?;
        caller.parameters = Some(audited_parameters(&query));
        let action = query.iam_action();
        if let Some(reason) = catalog.authorizer.authorize_unscoped(
            &principal,
            action,
            request.source_ip,
            request.secure_transport,
            now,
        ) {
            return Err(Ec2Error::unauthorized_operation(
                &principal.arn,
                action,
                &reason,
            ));
        }
        query.dry_run_outcome()?;
        match &query {
            QueryRequest::DescribeInstances(describe) => self.describe_instances(
                &catalog.registry,
                describe,
                &principal.account,
                request_id,
                now,
            ),
            QueryRequest::DescribeInstanceHostKeys(ids) => self.describe_instance_host_keys(
                &catalog.registry,
                ids,
                &principal.account,
                request_id,
                now,
            ),
            QueryRequest::DescribeInstanceConnectEndpoints(describe) => self
                .describe_instance_connect_endpoints(
                    &catalog.registry,
                    describe,
                    &principal.account,
                    request_id,
                ),
        }
    }

    /// SigV4 with service `ec2`, then the principal's token bucket.
    async fn authenticate_ec2(
        &self,
        catalog: &Catalog,
        request: &ApiRequest<'_>,
        now: std::time::SystemTime,
        caller: &mut Caller,
    ) -> Result<Arc<Principal>, Ec2Error> {
        let (principal, key_active) = self
            .verify_caller(
                catalog,
                &self.ec2_verifier,
                &request.http,
                &mut caller.access_key_id,
                &mut caller.temporary,
            )
            .map_err(|e| match e.kind {
                SigV4ErrorKind::MissingAuthenticationToken => {
                    Ec2Error::missing_authentication_token()
                }
                SigV4ErrorKind::IncompleteSignature => Ec2Error::incomplete_signature(e.message),
                SigV4ErrorKind::InvalidSignature
                    if e.message.starts_with("Signature expired")
                        || e.message.starts_with("Signature not yet current") =>
                {
                    Ec2Error::request_expired()
                }
                SigV4ErrorKind::ExpiredToken => Ec2Error::request_expired(),
                SigV4ErrorKind::InvalidSignature | SigV4ErrorKind::UnrecognizedClient => {
                    Ec2Error::auth_failure()
                }
            })?;
        caller.principal = Some(principal.clone());
        if !key_active {
            return Err(Ec2Error::auth_failure());
        }

        self.throttle(
            &format!("principal:{}", principal.arn),
            now,
            catalog.throttling.principal,
        )
        .await
        .map_err(|e| match e.code {
            ErrorCode::ThrottlingException => Ec2Error::request_limit_exceeded(),
            _ => Ec2Error::internal_error(),
        })?;
        Ok(principal)
    }

    fn describe_instances(
        &self,
        registry: &Registry,
        describe: &eic_ec2::DescribeInstancesRequest,
        account: &str,
        request_id: &str,
        now: std::time::SystemTime,
    ) -> Result<String, Ec2Error> {
        // Ids name what to look at: only those are looked up, so asking for
        // one instance costs the same in a fleet of any size. Without ids,
        // one pass over the account keeps only the views a page can show.
        let chosen = if describe.instance_ids.is_empty() {
            // A pass over a large fleet is CPU-bound for tens of
            // milliseconds: off the runtime's worker, so the tasks that keep
            // the fleet's shared view fresh (and other requests) still run.
            let pass = || self.select(registry, describe, account);
            let on_workers = tokio::runtime::Handle::try_current()
                .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
            if on_workers {
                tokio::task::block_in_place(pass)
            } else {
                pass()
            }
            .map_err(fleet_unavailable)?
        } else {
            let mut found = Vec::with_capacity(describe.instance_ids.len());
            for id in &describe.instance_ids {
                if let Some(instance) = self
                    .instances
                    .in_account(registry, id, account, now)
                    .map_err(fleet_unavailable)?
                {
                    found.push(self.view(&instance));
                }
            }
            found
        };
        let mine: BTreeMap<String, InstanceView> = chosen
            .into_iter()
            .map(|v| (v.instance_id.clone(), v))
            .collect();
        let page = eic_ec2::describe_map(describe, &mine)?;
        Ok(eic_ec2::render_describe_instances(request_id, &page))
    }

    /// Only the ids asked for are looked up, as DescribeInstances by id
    /// does; `serialConsole` when this server runs the gateway.
    /// The account's configured endpoints, all `create-complete` since
    /// the server started (the configuration is their creation).
    fn describe_instance_connect_endpoints(
        &self,
        registry: &Registry,
        request: &eic_ec2::DescribeInstanceConnectEndpointsRequest,
        account: &str,
        request_id: &str,
    ) -> Result<String, Ec2Error> {
        let views: Vec<eic_ec2::EndpointView> = registry
            .endpoints_in_account(account)
            .map(|e| {
                let mut view = eic_ec2::EndpointView::new(
                    &e.id,
                    &e.account,
                    &e.arn,
                    eic_ec2::EndpointState::CreateComplete,
                    &e.dns_name,
                    &e.vpc_id,
                    &e.subnet_id,
                    &e.availability_zone,
                    self.launch_time,
                );
                view.fips_dns_name = e.fips_dns_name.clone();
                view.tags = e.tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                view.ip_address_type = Some("ipv4".into());
                view
            })
            .collect();
        let page = eic_ec2::describe_endpoints(request, &views)?;
        Ok(eic_ec2::render_describe_instance_connect_endpoints(
            request_id, &page,
        ))
    }

    fn describe_instance_host_keys(
        &self,
        registry: &Registry,
        request: &eic_ec2::DescribeInstanceHostKeysRequest,
        account: &str,
        request_id: &str,
        now: std::time::SystemTime,
    ) -> Result<String, Ec2Error> {
        let mut found: HashMap<&str, InstanceHostKeys> =
            HashMap::with_capacity(request.instance_ids.len());
        for id in &request.instance_ids {
            if let Some(instance) = self
                .instances
                .in_account(registry, id, account, now)
                .map_err(fleet_unavailable)?
            {
                found.insert(id.as_str(), host_keys_of(&instance));
            }
        }
        let instances = eic_ec2::describe_host_keys(request, |id| found.get(id))?;
        Ok(eic_ec2::render_describe_instance_host_keys(
            request_id,
            &instances,
            self.serial.host_keys.as_ref(),
        ))
    }

    /// The views of `account`'s instances that match the request's
    /// filters and token, at most the `MaxResults` + 1 smallest ids (which
    /// `describe` pages as it would the whole account), made one at a time
    /// and dropped at once when they cannot be shown: no map of the whole
    /// account is built.
    fn select(
        &self,
        registry: &Registry,
        describe: &eic_ec2::DescribeInstancesRequest,
        account: &str,
    ) -> Result<Vec<InstanceView>, eic_store::StoreError> {
        let keep = describe.max_results.map(|k| k.saturating_add(1));
        let after = describe.after.as_deref();
        let mut chosen: BTreeMap<String, InstanceView> = BTreeMap::new();
        let beyond_page = |chosen: &BTreeMap<String, InstanceView>, id: &str| {
            after.is_some_and(|a| id <= a)
                || keep.is_some_and(|keep| {
                    chosen.len() >= keep
                        && chosen
                            .last_key_value()
                            .is_some_and(|(last, _)| id >= last.as_str())
                })
        };
        // Only for an instance that passed the filters.
        let offer = |chosen: &mut BTreeMap<String, InstanceView>, view: InstanceView| {
            chosen.insert(view.instance_id.clone(), view);
            if keep.is_some_and(|keep| chosen.len() > keep) {
                chosen.pop_last();
            }
        };
        for instance in registry.instances_in_account(account) {
            if !beyond_page(&chosen, &instance.id) {
                let view = self.view(instance);
                if eic_ec2::matches_all(&describe.filters, &view) {
                    offer(&mut chosen, view);
                }
            }
        }
        // Most of a large fleet is refused by the cursor or a filter: both
        // read the record, and a view is made only of what a page keeps.
        for enrolled in self.instances.fleet().all_enrolled()? {
            let e = &enrolled.enrollment;
            if e.account == account
                && !beyond_page(&chosen, &e.instance_id)
                && eic_ec2::matches_all(&describe.filters, &EnrolledRecord::new(e, &self.region))
            {
                offer(&mut chosen, enrolled_view(e, &self.region));
            }
        }
        Ok(chosen.into_values().collect())
    }

    /// What DescribeInstances shows of an instance.
    pub(super) fn view(&self, instance: &Instance) -> InstanceView {
        let state = match instance.state {
            InstanceState::Pending => eic_ec2::InstanceState::Pending,
            InstanceState::Running => eic_ec2::InstanceState::Running,
            InstanceState::Stopping => eic_ec2::InstanceState::Stopping,
            InstanceState::Stopped => eic_ec2::InstanceState::Stopped,
            InstanceState::ShuttingDown => eic_ec2::InstanceState::ShuttingDown,
            InstanceState::Terminated => eic_ec2::InstanceState::Terminated,
        };
        let mut view = InstanceView::new(
            instance.id.as_str(),
            instance.account.as_str(),
            state,
            instance.instance_type.as_str(),
            instance.availability_zone.as_str(),
            instance.launch_time.unwrap_or(self.launch_time),
        );
        view.private_ip = instance.private_ip_address;
        view.private_dns_name = instance
            .private_ip_address
            .map(|ip| private_dns_name(&self.region, ip));
        view.public_ip = instance.public_ip_address;
        view.ipv6 = instance.ipv6_address;
        view.vpc_id = instance.vpc_id.clone();
        view.subnet_id = instance.subnet_id.clone();
        view.tags = instance.tags.clone();
        view
    }
}

/// EC2's own naming for a private address (us-east-1 has its own).
fn private_dns_name(region: &str, ip: std::net::Ipv4Addr) -> String {
    let [a, b, c, d] = ip.octets();
    match region {
        "us-east-1" => format!("ip-{a}-{b}-{c}-{d}.ec2.internal"),
        region => format!("ip-{a}-{b}-{c}-{d}.{region}.compute.internal"),
    }
}

/// An enrolled instance's EC2 state is the stored one (connection-lost is
/// still running, as EC2 shows an instance whose status checks fail).
fn enrolled_state(state: FleetState) -> eic_ec2::InstanceState {
    match state {
        FleetState::Running => eic_ec2::InstanceState::Running,
        FleetState::Stopped => eic_ec2::InstanceState::Stopped,
        FleetState::Terminated => eic_ec2::InstanceState::Terminated,
    }
}

/// An enrolled instance's view, from its record.
fn enrolled_view(e: &Enrollment, region: &str) -> InstanceView {
    let mut view = InstanceView::new(
        e.instance_id.as_str(),
        e.account.as_str(),
        enrolled_state(e.state),
        e.instance_type.as_str(),
        e.availability_zone.as_str(),
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(e.enrolled_at_ms),
    );
    let addresses = &e.facts.addresses;
    view.private_ip = addresses.private_ipv4;
    view.private_dns_name = addresses
        .private_ipv4
        .map(|ip| private_dns_name(region, ip));
    view.public_ip = addresses.public_ipv4;
    view.ipv6 = addresses.ipv6;
    if let Some(network) = &e.network {
        view.vpc_id = Some(network.vpc_id.clone());
        view.subnet_id = Some(network.subnet_id.clone());
    }
    view.tags = e.tags.to_map();
    view
}

/// An enrolled instance's record as the filters read it: what
/// [`enrolled_view`] would show, without making the view.
struct EnrolledRecord<'a> {
    enrollment: &'a Enrollment,
    region: &'a str,
}

impl<'a> EnrolledRecord<'a> {
    fn new(enrollment: &'a Enrollment, region: &'a str) -> Self {
        EnrolledRecord { enrollment, region }
    }
}

impl Filterable for EnrolledRecord<'_> {
    fn instance_id(&self) -> &str {
        &self.enrollment.instance_id
    }
    fn state(&self) -> eic_ec2::InstanceState {
        enrolled_state(self.enrollment.state)
    }
    fn instance_type(&self) -> &str {
        &self.enrollment.instance_type
    }
    fn availability_zone(&self) -> &str {
        &self.enrollment.availability_zone
    }
    fn image_id(&self) -> Option<&str> {
        None
    }
    fn private_ip(&self) -> Option<std::net::Ipv4Addr> {
        self.enrollment.facts.addresses.private_ipv4
    }
    fn public_ip(&self) -> Option<std::net::Ipv4Addr> {
        self.enrollment.facts.addresses.public_ipv4
    }
    fn ipv6(&self) -> Option<std::net::Ipv6Addr> {
        self.enrollment.facts.addresses.ipv6
    }
    fn private_dns_name(&self) -> Option<Cow<'_, str>> {
        self.private_ip()
            .map(|ip| Cow::Owned(private_dns_name(self.region, ip)))
    }
    fn public_dns_name(&self) -> Option<&str> {
        None
    }
    fn vpc_id(&self) -> Option<&str> {
        self.enrollment.network.as_ref().map(|n| n.vpc_id.as_str())
    }
    fn subnet_id(&self) -> Option<&str> {
        self.enrollment
            .network
            .as_ref()
            .map(|n| n.subnet_id.as_str())
    }
    fn tag(&self, key: &str) -> Option<&str> {
        self.enrollment.tags.get(key)
    }
    fn tags(&self) -> impl Iterator<Item = (&str, &str)> {
        self.enrollment.tags.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::{enrolled_view, is_ec2_query, EnrolledRecord};
    use eic_ec2::{matches_all, Filter, FilterName};
    use eic_store::fleet::{Addresses, Enrollment, FleetState, MachineFacts, Network, Tags};
    use proptest::prelude::*;

    fn enrollment(
        state: FleetState,
        private: Option<[u8; 4]>,
        public: Option<[u8; 4]>,
        v6: bool,
        network: bool,
        tags: &[(&str, &str)],
    ) -> Enrollment {
        Enrollment {
            instance_id: "i-0123456789abcdef0".into(),
            account: "111122223333".into(),
            token_id: "t".into(),
            availability_zone: "us-west-2a".into(),
            instance_type: "t3.micro".into(),
            network: network.then(|| Network {
                vpc_id: "vpc-0a1".into(),
                subnet_id: "subnet-0b2".into(),
            }),
            facts: MachineFacts {
                addresses: Addresses {
                    private_ipv4: private.map(Into::into),
                    public_ipv4: public.map(Into::into),
                    ipv6: v6.then(|| "::1".parse().unwrap()),
                    ssh_port: 22,
                },
                ..MachineFacts::default()
            },
            tags: Tags::from(
                tags.iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect::<std::collections::BTreeMap<_, _>>(),
            ),
            state,
            enrolled_at_ms: 1_700_000_000_000,
            updated_at_ms: 1_700_000_000_000,
        }
    }

    proptest! {
        /// The pass over a fleet filters records before it makes views:
        /// each filter must answer the same for both.
        #[test]
        fn a_record_passes_a_filter_exactly_when_its_view_does(
            state in prop_oneof![Just(FleetState::Running), Just(FleetState::Stopped), Just(FleetState::Terminated)],
            private in proptest::option::of(Just([127, 0, 0, 7])),
            public in proptest::option::of(Just([127, 0, 0, 9])),
            v6: bool,
            network: bool,
            tagged: bool,
            name in proptest::sample::select(
                FilterName::FIXED.iter().map(|(_, n)| n.clone())
                    .chain([FilterName::Tag("team".into()), FilterName::Tag("env".into())])
                    .collect::<Vec<_>>()),
            value in proptest::option::of(proptest::sample::select(vec![
                "*", "i-0123456789abcdef0", "running", "stopped", "terminated", "16", "48",
                "t3.*", "us-west-2?", "127.0.0.7", "127.0.0.9", "::1", "vpc-0a1", "subnet-0b2",
                "ip-127-0-0-7.us-west-2.compute.internal", "blue", "team", "env", "x",
            ])),
            region in proptest::sample::select(vec!["us-west-2", "us-east-1"]),
        ) {
            let tags: &[(&str, &str)] = if tagged { &[("team", "blue"), ("env", "x")] } else { &[] };
            let e = enrollment(state, private, public, v6, network, tags);
            let values: Vec<&str> = value.into_iter().collect();
            let filters = [Filter::new(name, &values)];
            prop_assert_eq!(
                matches_all(&filters, &EnrolledRecord::new(&e, region)),
                matches_all(&filters, &enrolled_view(&e, region))
            );
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, http::HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn only_a_form_post_to_the_root_without_a_target_is_ec2() {
        let form = "application/x-www-form-urlencoded; charset=utf-8";
        assert!(is_ec2_query(
            "POST",
            "/",
            &headers(&[("content-type", form)])
        ));
        assert!(is_ec2_query(
            "POST",
            "/",
            &headers(&[("content-type", "Application/X-WWW-Form-Urlencoded")])
        ));
        assert!(!is_ec2_query(
            "GET",
            "/",
            &headers(&[("content-type", form)])
        ));
        assert!(!is_ec2_query(
            "POST",
            "/x",
            &headers(&[("content-type", form)])
        ));
        assert!(!is_ec2_query(
            "POST",
            "/",
            &headers(&[("content-type", form), ("x-amz-target", "A.B")])
        ));
        assert!(!is_ec2_query(
            "POST",
            "/",
            &headers(&[("content-type", "application/x-amz-json-1.1")])
        ));
        assert!(!is_ec2_query("POST", "/", &headers(&[])));
    }
}
