//! The Instance Connect Endpoint's listener (role `tunnel`): `GET
//! /openTunnel`, presigned with SigV4, upgraded to a WebSocket that relays
//! raw TCP to an instance's private address, as the CLI v2's `aws
//! ec2-instance-connect open-tunnel` and Teleport use it.
//!
//! A tunnel is opened in this order, each step refusing before the upgrade
//! with a status and a JSON `Message` the CLI logs: method and path, the
//! WebSocket handshake headers, the presigned signature (service
//! `ec2-instance-connect`; its lifetime capped), the key's standing, the
//! principal's token bucket (the pushes' own), the parameters,
//! `ec2-instance-connect:OpenTunnel` on the endpoint's ARN with the
//! `remotePort`, `privateIpAddress` and `maxTunnelDuration` condition keys,
//! the endpoint (in the caller's account), the address (a running instance
//! of the endpoint's VPC in the caller's account: eic is not an open
//! proxy), the port (the endpoint's allowed ports), the caps on open
//! tunnels (per principal, per endpoint, on this node), the audit event
//! (room for its closing event held), and the TCP connection to the
//! instance. Only then does the client get its 101; the relay runs in a
//! task of its own ([`crate::tunnel::relay`]) and its end is audited with
//! the bytes each way and how it ended.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpStream;
use tokio::sync::{watch, Semaphore};
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

use eic_sigv4::{PresignLifetime, RequestParts, SigV4ErrorKind};

use super::api::Api;
use super::authz::TunnelAsked;
use super::websocket::{self, HandshakeError};
use crate::audit::{
    self, Admission, ApiCall, ApiCallKind, CallParameters, Identity, LastingAdmission,
};
use crate::config::TunnelConfig;
use crate::registry::{Endpoint, Instance, Principal, Registry};
use crate::tunnel::relay::{self, Outcome, RelayLimits};
use crate::tunnel::request::{self, OpenTunnelRequest, Refusal, MAX_TUNNEL_DURATION};

/// Every code a tunnel's refusal carries, for the metrics' closed set.
pub const REFUSAL_CODES: [&str; 18] = [
    "UnknownOperationException",
    "UpgradeRequired",
    "ValidationException",
    "MissingAuthenticationToken",
    "IncompleteSignature",
    "SignatureDoesNotMatch",
    "UnrecognizedClientException",
    "ExpiredToken",
    "AuthFailure",
    "ThrottlingException",
    "AccessDeniedException",
    "InvalidInstanceConnectEndpointId.NotFound",
    "InvalidParameter",
    "IncorrectInstanceState",
    "InstanceUnavailable",
    "TooManyTunnels",
    "ServiceUnavailable",
    "InstanceConnectionFailed",
];

/// CloudTrail's event source for the endpoint, as at AWS.
pub const EVENT_SOURCE: &str = "ec2-instance-connect.amazonaws.com";
const EVENT_NAME: &str = "OpenTunnel";

/// A presigned URL without `X-Amz-Expires` is good for this long (the CLI
/// signs each connection for 60 s; Teleport gives no expiry at all).
const PRESIGN_DEFAULT: Duration = Duration::from_secs(60);
/// The longest `X-Amz-Expires` honoured: a URL is a bearer credential for
/// its lifetime, and a client signs one per connection.
const PRESIGN_MAX: Duration = Duration::from_secs(300);

/// The tunnel role's settings, from `[tunnel]`.
#[derive(Debug, Clone)]
pub struct TunnelSettings {
    pub idle_timeout: Duration,
    pub connect_timeout: Duration,
    pub max_per_principal: usize,
    pub max_per_endpoint: usize,
    /// Tunnels open at once on this node (each holds two descriptors).
    pub max_tunnels: usize,
}

impl TunnelSettings {
    pub fn from_config(config: &TunnelConfig, max_tunnels: usize) -> TunnelSettings {
        TunnelSettings {
            idle_timeout: Duration::from_secs(config.idle_timeout_secs),
            connect_timeout: Duration::from_secs(config.connect_timeout_secs),
            max_per_principal: config.max_tunnels_per_principal,
            max_per_endpoint: config.max_tunnels_per_endpoint,
            max_tunnels,
        }
    }
}

pub struct TunnelRole {
    api: Arc<Api>,
    settings: TunnelSettings,
    open: Arc<OpenTunnels>,
    /// One permit per open tunnel; a drain waits for all of them.
    tunnels: Arc<Semaphore>,
    stop: watch::Receiver<bool>,
}

/// A tunnel that passed every check: what its task needs.
struct Opened {
    instance: TcpStream,
    limits: RelayLimits,
    event: TunnelEvent,
    /// The room for the closing event, the caps' counts and the node's
    /// tunnel permit, all held while the tunnel is open.
    admission: LastingAdmission,
    _counted: Counted,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

/// What the opening and closing events say.
struct TunnelEvent {
    request_id: String,
    principal: Arc<Principal>,
    access_key_id: Option<String>,
    temporary: bool,
    source_ip: IpAddr,
    user_agent: Option<String>,
    parameters: serde_json::Value,
    instance_id: String,
}

/// What is known of a call as its checks run, for the refusal's event.
#[derive(Default)]
struct Call {
    access_key_id: Option<String>,
    temporary: bool,
    principal: Option<Arc<Principal>>,
    parameters: Option<serde_json::Value>,
    /// The refusal's event is written already (after the OpenTunnel event).
    audited: bool,
}

impl TunnelRole {
    pub fn new(api: Arc<Api>, settings: TunnelSettings, stop: watch::Receiver<bool>) -> TunnelRole {
        TunnelRole {
            api,
            tunnels: Arc::new(Semaphore::new(settings.max_tunnels)),
            settings,
            open: Arc::default(),
            stop,
        }
    }

    /// Answers one request on the tunnel listener: a 101 and a relay, or a
    /// refusal.
    pub async fn handle(
        self: Arc<Self>,
        peer: SocketAddr,
        mut request: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, Infallible> {
        let started = std::time::Instant::now();
        let request_id = uuid::Uuid::new_v4().to_string();
        let mut call = Call::default();
        let span = tracing::info_span!("request", request_id = %request_id);
        let opened = tracing::Instrument::instrument(
            self.open(peer, &request, &request_id, &mut call),
            span.clone(),
        )
        .await;
        let code = opened.as_ref().err().map_or(crate::metrics::OK, |r| r.code);
        self.api
            .metrics
            .request(EVENT_NAME, code, started.elapsed());
        let opened = match opened {
            Ok(opened) => opened,
            Err(refusal) => {
                if !call.audited {
                    self.audit_refusal(peer.ip(), request.headers(), &request_id, &call, &refusal);
                }
                tracing::debug!(request_id, code = refusal.code, error_message = %refusal.message, "tunnel refused");
                return Ok(refusal_response(&refusal, &request_id));
            }
        };
        let mut response = websocket::switching_protocols(request.headers());
        let upgrade = hyper::upgrade::on(&mut request);
        let role = self.clone();
        self.api.metrics.tunnel_opened();
        let relay_span = span.clone();
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                let Opened {
                    instance,
                    limits,
                    event,
                    admission,
                    _counted,
                    _permit,
                } = opened;
                let outcome = match upgrade.await {
                    Ok(upgraded) => {
                        let websocket = WebSocketStream::from_raw_socket(
                            TokioIo::new(upgraded),
                            Role::Server,
                            Some(relay::websocket_config()),
                        )
                        .await;
                        relay::relay(websocket, instance, limits, role.stop.clone()).await
                    }
                    Err(e) => Outcome {
                        ending: relay::Ending::ClientGone(format!("upgrade failed: {e}")),
                        bytes_to_instance: 0,
                        bytes_to_client: 0,
                        duration: Duration::ZERO,
                    },
                };
                role.api
                    .metrics
                    .tunnel_closed(outcome.bytes_to_instance, outcome.bytes_to_client);
                role.audit_close(&event, &outcome);
                drop(admission);
            },
            relay_span,
        ));
        let headers = response.headers_mut();
        if let Ok(id) = HeaderValue::from_str(&request_id) {
            headers.insert("x-amzn-requestid", id);
        }
        Ok(response)
    }

    /// Waits until every tunnel has ended (each was told to stop), or
    /// `timeout` passed.
    pub async fn drained(&self, timeout: Duration) {
        let all = u32::try_from(self.settings.max_tunnels).unwrap_or(u32::MAX);
        if tokio::time::timeout(timeout, self.tunnels.acquire_many(all))
            .await
            .is_err()
        {
            tracing::warn!("tunnels did not end within the drain timeout");
        }
    }

    async fn open(
        &self,
        peer: SocketAddr,
        request: &Request<Incoming>,
        request_id: &str,
        call: &mut Call,
    ) -> Result<Opened, Refusal> {
        if request.method() != http::Method::GET || request.uri().path() != "/openTunnel" {
            return Err(Refusal::new(
                StatusCode::NOT_FOUND,
                "UnknownOperationException",
                "The endpoint serves GET /openTunnel only.",
            ));
        }
        check_handshake(request.headers())?;
        let api = &self.api;
        let now = api.clock.now();
        let catalog = api.catalog.current();
        let query = request.uri().query().unwrap_or("");
        let http = RequestParts {
            method: "GET",
            path: "/openTunnel",
            query,
            headers: request.headers(),
            body: b"",
        };
        let lifetime = PresignLifetime {
            default: PRESIGN_DEFAULT,
            max: PRESIGN_MAX,
        };
        let (principal, key_active) = api
            .verify_presigned_caller(
                &catalog,
                &http,
                lifetime,
                &mut call.access_key_id,
                &mut call.temporary,
            )
            .map_err(|e| {
                let (status, code) = match e.kind {
                    SigV4ErrorKind::MissingAuthenticationToken => {
                        (StatusCode::FORBIDDEN, "MissingAuthenticationToken")
                    }
                    SigV4ErrorKind::IncompleteSignature => {
                        (StatusCode::BAD_REQUEST, "IncompleteSignature")
                    }
                    SigV4ErrorKind::InvalidSignature => {
                        (StatusCode::FORBIDDEN, "SignatureDoesNotMatch")
                    }
                    SigV4ErrorKind::UnrecognizedClient => {
                        (StatusCode::FORBIDDEN, "UnrecognizedClientException")
                    }
                    SigV4ErrorKind::ExpiredToken => (StatusCode::FORBIDDEN, "ExpiredToken"),
                };
                Refusal::new(status, code, e.message)
            })?;
        call.principal = Some(principal.clone());
        if !key_active {
            return Err(Refusal::new(
                StatusCode::FORBIDDEN,
                "AuthFailure",
                "The access key is not active.",
            ));
        }
        api.throttle(
            &format!("principal:{}", principal.arn),
            now,
            catalog.throttling.principal,
        )
        .await
        .map_err(|e| {
            // Throttled (429), or the store that keeps the buckets failed.
            let status =
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            Refusal::new(status, e.code.as_str(), e.message)
        })?;

        let asked = request::parse(query)?;
        let duration = asked.max_duration.unwrap_or(MAX_TUNNEL_DURATION);
        call.parameters = Some(json!({
            "instanceConnectEndpointId": asked.endpoint_id,
            "remotePort": asked.remote_port,
            "privateIpAddress": asked.private_ip.to_string(),
            "maxTunnelDuration": duration.as_secs(),
        }));
        let endpoint = catalog
            .registry
            .endpoint(&asked.endpoint_id)
            .filter(|e| e.account == principal.account);
        catalog
            .authorizer
            .authorize_open_tunnel(
                &principal,
                &TunnelAsked {
                    asked: &asked,
                    duration,
                    visible_endpoint: endpoint.map(Arc::as_ref),
                },
                peer.ip(),
                true,
                now,
            )
            .map_err(|message| {
                Refusal::new(StatusCode::FORBIDDEN, "AccessDeniedException", message)
            })?;
        let Some(endpoint) = endpoint else {
            return Err(Refusal::new(
                StatusCode::NOT_FOUND,
                "InvalidInstanceConnectEndpointId.NotFound",
                format!(
                    "The instance connect endpoint '{}' does not exist.",
                    asked.endpoint_id
                ),
            ));
        };
        let instance = self.target(&catalog.registry, &principal, endpoint, &asked)?;
        if !endpoint.allowed_ports.contains(&asked.remote_port) {
            return Err(Refusal::new(
                StatusCode::FORBIDDEN,
                "InvalidParameter",
                format!(
                    "{} does not allow port {}; it allows {}.",
                    endpoint.id,
                    asked.remote_port,
                    ports_text(&endpoint.allowed_ports)
                ),
            ));
        }
        let counted = self.count(&principal, endpoint)?;
        let permit = self.tunnels.clone().try_acquire_owned().map_err(|_| {
            Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "This endpoint node has as many tunnels open as it can hold; try again.",
            )
        })?;

        let event = TunnelEvent {
            request_id: request_id.to_owned(),
            principal: principal.clone(),
            access_key_id: call.access_key_id.clone(),
            temporary: call.temporary,
            source_ip: peer.ip(),
            user_agent: audit::user_agent(request.headers()).map(str::to_owned),
            parameters: call.parameters.clone().unwrap_or_default(),
            instance_id: instance.id.clone(),
        };
        // Audited before the connection: a tunnel is never open without its
        // event, and its closing event has room kept for it.
        let admission = self.audit_open(&event).map_err(|e| {
            tracing::error!(request_id, error = %e, "audit log write failed; tunnel refused");
            Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "The tunnel cannot be audited now; try again.",
            )
        })?;
        let address = SocketAddr::new(asked.private_ip, asked.remote_port);
        let connected =
            tokio::time::timeout(self.settings.connect_timeout, TcpStream::connect(address)).await;
        let instance_stream = match connected {
            Ok(Ok(stream)) => stream,
            failed => {
                let reason = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".to_owned(),
                };
                let refusal = Refusal::new(
                    StatusCode::BAD_GATEWAY,
                    "InstanceConnectionFailed",
                    format!(
                        "Could not connect to {} at {address}: {reason}.",
                        instance.id
                    ),
                );
                self.audit_outcome(&event, &refusal);
                call.audited = true;
                drop(admission);
                return Err(refusal);
            }
        };
        let _ = instance_stream.set_nodelay(true);
        Ok(Opened {
            instance: instance_stream,
            limits: RelayLimits {
                max_duration: duration,
                idle_timeout: self.settings.idle_timeout,
            },
            event,
            admission,
            _counted: counted,
            _permit: permit,
        })
    }

    /// The running instance of the endpoint's VPC, in the caller's account,
    /// that has the address asked for; anything else is refused, whether
    /// or not something answers there.
    fn target(
        &self,
        registry: &Registry,
        principal: &Principal,
        endpoint: &Endpoint,
        asked: &OpenTunnelRequest,
    ) -> Result<Arc<Instance>, Refusal> {
        let found = self
            .api
            .instances
            .by_address(
                registry,
                &principal.account,
                &endpoint.vpc_id,
                asked.private_ip,
                self.api.clock.now(),
            )
            .map_err(|e| {
                tracing::error!(
                    error = &e as &dyn std::error::Error,
                    "fleet unavailable; tunnel refused"
                );
                Refusal::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    "The fleet cannot be read now; try again.",
                )
            })?;
        let Some(instance) = found else {
            return Err(Refusal::new(
                StatusCode::FORBIDDEN,
                "InvalidParameter",
                format!(
                    "{} is not the address of an instance in {} that {} reaches.",
                    asked.private_ip, endpoint.vpc_id, endpoint.id
                ),
            ));
        };
        if instance.state != crate::config::InstanceState::Running {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "IncorrectInstanceState",
                format!("Instance {} is not running.", instance.id),
            ));
        }
        if instance.availability != crate::config::Availability::Available {
            return Err(Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "InstanceUnavailable",
                format!("Instance {} is unavailable.", instance.id),
            ));
        }
        Ok(instance)
    }

    /// Counts the tunnel against its principal's and endpoint's caps.
    fn count(&self, principal: &Principal, endpoint: &Endpoint) -> Result<Counted, Refusal> {
        let caps = [
            (
                format!("principal:{}", principal.arn),
                self.settings.max_per_principal,
                "The caller",
            ),
            (
                format!("endpoint:{}", endpoint.id),
                self.settings.max_per_endpoint,
                "The endpoint",
            ),
        ];
        let mut open = self.open.by_key.lock().unwrap_or_else(|p| p.into_inner());
        for (key, cap, whose) in &caps {
            if open.get(key).copied().unwrap_or(0) >= *cap {
                return Err(Refusal::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "TooManyTunnels",
                    format!("{whose} has {cap} tunnels open, the most allowed; close one first."),
                ));
            }
        }
        for (key, _, _) in &caps {
            *open.entry(key.clone()).or_default() += 1;
        }
        Ok(Counted {
            open: self.open.clone(),
            keys: caps.map(|(key, _, _)| key),
        })
    }

    /// The OpenTunnel event of a call, as every one of its events shares it.
    fn api_call<'a>(
        &'a self,
        identity: Identity<'a>,
        source_ip: IpAddr,
        user_agent: Option<&'a str>,
        parameters: Option<&serde_json::Value>,
        request_id: &'a str,
        error: Option<&'a Refusal>,
    ) -> ApiCall<'a> {
        ApiCall {
            time: self.api.clock.now(),
            event_source: EVENT_SOURCE,
            read_only: false,
            region: &self.api.region,
            event_name: Some(EVENT_NAME),
            identity,
            source_ip,
            user_agent,
            request_parameters: parameters.cloned().map(CallParameters::Tunnel),
            request_id,
            error: error.map(|r| (r.code, r.message.as_str())),
        }
    }

    /// The OpenTunnel event of an opened tunnel, or of its refusal after it
    /// was admitted.
    fn tunnel_call<'a>(
        &'a self,
        event: &'a TunnelEvent,
        error: Option<&'a Refusal>,
    ) -> ApiCall<'a> {
        self.api_call(
            Identity::of(
                Some(&event.principal),
                event.access_key_id.as_deref(),
                event.temporary,
            ),
            event.source_ip,
            event.user_agent.as_deref(),
            Some(&event.parameters),
            &event.request_id,
            error,
        )
    }

    /// The OpenTunnel event, as admitted work: room for the closing event
    /// is held by the returned admission.
    fn audit_open(&self, event: &TunnelEvent) -> Result<LastingAdmission, audit::AuditError> {
        let audit = &self.api.audit;
        Ok(audit
            .record_api_work(&self.tunnel_call(event, None))?
            .lasting(audit))
    }

    /// A refusal after the OpenTunnel event: a second event with the same
    /// request id, always written.
    fn audit_outcome(&self, event: &TunnelEvent, refusal: &Refusal) {
        let call = self.tunnel_call(event, Some(refusal));
        if let Err(e) = self
            .api
            .audit
            .record_api_call(&call, ApiCallKind::Other(Admission::Outcome))
        {
            tracing::error!(request_id = event.request_id, error = %e, "audit log write failed");
        }
    }

    /// A refusal before anything was admitted: rate-limited per caller.
    fn audit_refusal(
        &self,
        source_ip: IpAddr,
        headers: &HeaderMap,
        request_id: &str,
        call: &Call,
        refusal: &Refusal,
    ) {
        let principal = call.principal.as_deref();
        let api_call = self.api_call(
            Identity::of(principal, call.access_key_id.as_deref(), call.temporary),
            source_ip,
            audit::user_agent(headers),
            call.parameters.as_ref(),
            request_id,
            Some(refusal),
        );
        let admission = Admission::Refusal {
            principal: principal.map(|p| p.arn.as_str()),
            source_ip,
            code: refusal.code,
        };
        if let Err(e) = self
            .api
            .audit
            .record_api_call(&api_call, ApiCallKind::Other(admission))
        {
            tracing::error!(request_id, error = %e, "audit log write failed");
        }
    }

    /// The tunnel's end: CloudTrail's shape for an event of the service's
    /// own (`AwsServiceEvent`), under the OpenTunnel's request id, with the
    /// bytes each way, the duration and how it ended.
    fn audit_close(&self, event: &TunnelEvent, outcome: &Outcome) {
        let principal = &event.principal;
        let record = json!({
            "eventVersion": "1.08",
            "userIdentity": {"type": "AWSService", "invokedBy": EVENT_SOURCE},
            "eventTime": audit::format_iso8601(self.api.clock.now()),
            "eventSource": EVENT_SOURCE,
            "eventName": "CloseTunnel",
            "awsRegion": self.api.region,
            "sourceIPAddress": event.source_ip.to_string(),
            "requestID": event.request_id,
            "eventID": uuid::Uuid::new_v4().to_string(),
            "readOnly": false,
            "eventType": "AwsServiceEvent",
            "managementEvent": true,
            "recipientAccountId": principal.account,
            "eventCategory": "Management",
            "serviceEventDetails": {
                "principalArn": principal.arn,
                "instanceId": event.instance_id,
                "tunnel": event.parameters,
                "bytesToInstance": outcome.bytes_to_instance,
                "bytesToClient": outcome.bytes_to_client,
                "durationMillis": u64::try_from(outcome.duration.as_millis()).unwrap_or(u64::MAX),
                "ending": outcome.ending.name(),
                "closeCode": outcome.ending.close_code(),
            },
        });
        if let Err(e) = self.api.audit.record(&record, Admission::Outcome) {
            tracing::error!(request_id = event.request_id, error = %e, "audit log write failed for a tunnel's end");
        }
        tracing::info!(
            request_id = event.request_id,
            instance_id = event.instance_id,
            ending = outcome.ending.name(),
            bytes_to_instance = outcome.bytes_to_instance,
            bytes_to_client = outcome.bytes_to_client,
            "tunnel closed"
        );
    }
}

/// Open tunnels by `principal:<arn>` and `endpoint:<id>`, on this node.
#[derive(Default)]
struct OpenTunnels {
    by_key: Mutex<HashMap<String, usize>>,
}

/// One tunnel's place in [`OpenTunnels`], given back on drop.
struct Counted {
    open: Arc<OpenTunnels>,
    keys: [String; 2],
}

impl Drop for Counted {
    fn drop(&mut self) {
        let mut open = self.open.by_key.lock().unwrap_or_else(|p| p.into_inner());
        for key in &self.keys {
            if let Some(n) = open.get_mut(key) {
                *n -= 1;
                if *n == 0 {
                    open.remove(key);
                }
            }
        }
    }
}

/// The client's WebSocket handshake, refused in the Endpoint's shape.
fn check_handshake(headers: &HeaderMap) -> Result<(), Refusal> {
    let upgrade_required =
        |message: &str| Refusal::new(StatusCode::UPGRADE_REQUIRED, "UpgradeRequired", message);
    websocket::check(headers).map_err(|e| match e {
        HandshakeError::NotWebSocket => {
            upgrade_required("/openTunnel is a WebSocket: send Upgrade: websocket.")
        }
        HandshakeError::Version => upgrade_required("Only WebSocket version 13 is supported."),
        HandshakeError::Key => Refusal::validation("Sec-WebSocket-Key must be 16 bytes in base64."),
    })
}

fn refusal_response(refusal: &Refusal, request_id: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(refusal.body())));
    *response.status_mut() = refusal.status;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-requestid", id);
    }
    response
}

fn ports_text(ports: &[u16]) -> String {
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
