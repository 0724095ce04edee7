//! The API request pipeline, from a received request to the answer.
//!
//! Checks run in a fixed order (ARCHITECTURE.md): method and path,
//! authentication, the principal's throttle, operation, validation,
//! authorization, the instance's own state, for serial pushes the session
//! (console, session locks, console probe), the instance's throttle, then
//! the audit event, and only then the store: a key is never live without
//! its event (`tests/pipeline.rs` holds this order in a table).
//!
//! Authorization comes before any instance lookup, and is evaluated for an
//! unknown or foreign instance as for one without tags, so a caller learns
//! nothing about instances it may not touch; for the same reason only
//! callers allowed to push to an instance draw on its throttle, so nobody
//! can starve an instance they cannot use.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use eic_sigv4::{Credential, PresignLifetime, RequestParts, SigV4Error, SigV4ErrorKind, Verifier};
use eic_store::{unix_millis, BucketRate, Clock, PushedKey, Store};
use eic_wire::{parse_request, ApiError, ErrorCode, KeyTarget, Operation, PushRequest};

use super::reload::{Catalog, LiveCatalog};
use crate::audit::{
    Admission, Admitted, ApiCall, ApiCallKind, AuditError, AuditLog, CallParameters, Identity,
    Recorded, RequestParameters,
};
use crate::config::{Availability, InstanceState};
use crate::credentials::{TemporaryCredentials, TokenError};
use crate::instances::Instances;
use crate::metrics::Metrics;
use crate::registry::{supports_serial_console, Instance, Principal, Registry};
use crate::settings::SerialConsoleAccess;
use eic_store::{PortState, SessionLocks};
use tracing::Instrument;

/// How long a pushed key lets its holder in, as at AWS.
pub const KEY_LIFETIME: Duration = Duration::from_secs(60);
/// The SigV4 clock-skew window, as at AWS.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(15 * 60);

pub struct Api {
    /// Accounts, principals, policies, static instances, endpoints and
    /// throttling: loaded once per request (a reload swaps it).
    pub(super) catalog: Arc<LiveCatalog>,
    /// The service's region, fixed at start.
    pub(super) region: String,
    /// Static and enrolled instances.
    pub(super) instances: Arc<Instances>,
    verifier: Verifier,
    /// SigV4 for the EC2 Query API (service `ec2`, server/ec2.rs).
    pub(super) ec2_verifier: Verifier,
    temporary: TemporaryCredentials,
    store: Arc<dyn Store>,
    pub(super) audit: Arc<AuditLog>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) serial: SerialState,
    /// A static instance's `LaunchTime` in DescribeInstances: when this
    /// server started (the configuration knows no launch times).
    pub(super) launch_time: std::time::SystemTime,
    pub(super) metrics: Arc<Metrics>,
}

/// What the pipeline is built from.
pub struct ApiParts {
    pub catalog: Arc<LiveCatalog>,
    pub instances: Arc<Instances>,
    pub temporary: TemporaryCredentials,
    pub store: Arc<dyn Store>,
    pub audit: Arc<AuditLog>,
    pub clock: Arc<dyn Clock>,
    pub serial: SerialState,
    pub metrics: Arc<Metrics>,
}

/// What the API needs to know of serial console sessions.
pub struct SerialState {
    pub access: SerialConsoleAccess,
    /// The gateway's session locks; `None` when no gateway runs.
    pub locks: Option<Arc<dyn SessionLocks>>,
    /// The gateway's port and host key, which DescribeInstanceHostKeys
    /// serves; `None` when no gateway runs.
    pub host_keys: Option<eic_ec2::SerialConsoleHostKeys>,
}

/// A refused signature's reason, as the metrics name it.
fn sigv4_reason(kind: SigV4ErrorKind) -> &'static str {
    match kind {
        SigV4ErrorKind::MissingAuthenticationToken => "MissingAuthenticationToken",
        SigV4ErrorKind::IncompleteSignature => "IncompleteSignature",
        SigV4ErrorKind::InvalidSignature => "InvalidSignature",
        SigV4ErrorKind::UnrecognizedClient => "UnrecognizedClient",
        SigV4ErrorKind::ExpiredToken => "ExpiredToken",
    }
}

/// A console's credential outlives the 60 s of the URL it presigns, and
/// no more: a tunnel is authorized once, when it opens.
const CONSOLE_CREDENTIAL_TTL: Duration = Duration::from_secs(120);

/// How long a push waits to learn whether a console backend answers.
const BACKEND_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// A request as the listener received it.
pub struct ApiRequest<'a> {
    /// What SigV4 covers: method, path, query, headers and body.
    pub http: RequestParts<'a>,
    pub source_ip: IpAddr,
    /// Whether the request came over TLS (`aws:SecureTransport`).
    pub secure_transport: bool,
}

/// What to send back: the status, the request id (also in the body), the
/// JSON body, and the error code for `x-amzn-ErrorType`.
pub struct ApiResponse {
    pub status: u16,
    pub request_id: String,
    pub body: Vec<u8>,
    pub error: Option<ErrorCode>,
}

/// Where a push came from, as authorization and the audit log see it.
pub struct Origin<'a> {
    pub source_ip: IpAddr,
    pub user_agent: Option<&'a str>,
    pub secure_transport: bool,
}

impl ApiRequest<'_> {
    fn origin(&self) -> Origin<'_> {
        Origin {
            source_ip: self.source_ip,
            user_agent: crate::audit::user_agent(self.http.headers),
            secure_transport: self.secure_transport,
        }
    }
}

impl ApiResponse {
    pub fn error(request_id: String, error: &ApiError) -> ApiResponse {
        ApiResponse {
            status: error.status(),
            request_id,
            body: error.to_body(),
            error: Some(error.code),
        }
    }
}

/// What is known about a call as it goes through the pipeline; the audit
/// event is written from it whatever the outcome.
#[derive(Default)]
struct Call<'a> {
    operation: Option<Operation>,
    access_key_id: Option<String>,
    principal: Option<Arc<Principal>>,
    temporary: bool,
    push: Option<PushRequest>,
    /// Set once the success event is in the audit log: the room held for
    /// its outcome line, released after the answer is known.
    admitted: Option<Admitted<'a>>,
}

impl Api {
    pub fn new(parts: ApiParts) -> Api {
        // Regions are fixed at start (a reload may not change them).
        let catalog = parts.catalog.current();
        let regions = &catalog.registry.regions;
        let verifier = Verifier::new("ec2-instance-connect", regions.clone(), MAX_CLOCK_SKEW);
        let ec2_verifier = Verifier::new("ec2", regions.clone(), MAX_CLOCK_SKEW);
        let launch_time = parts.clock.now();
        Api {
            region: catalog.registry.region.clone(),
            catalog: parts.catalog,
            instances: parts.instances,
            verifier,
            ec2_verifier,
            launch_time,
            temporary: parts.temporary,
            store: parts.store,
            audit: parts.audit,
            clock: parts.clock,
            serial: parts.serial,
            metrics: parts.metrics,
        }
    }

    /// Whether this node can take a push now: its store answers and has
    /// room, and its audit log can admit the push's events.
    pub async fn ready(&self) -> anyhow::Result<()> {
        self.store.ready().await?;
        Ok(self.audit.ready()?)
    }

    pub async fn handle(&self, request: ApiRequest<'_>) -> ApiResponse {
        let started = std::time::Instant::now();
        let request_id = uuid::Uuid::new_v4().to_string();
        let mut call = Call::default();
        let span = tracing::info_span!("request", request_id = %request_id);
        let outcome = self
            .process(&request, &request_id, &mut call)
            .instrument(span.clone())
            .await;
        let _in_request = span.enter();
        self.record_outcome(
            &request.origin(),
            &request_id,
            &call,
            outcome.as_ref().err(),
            started,
        );
        match outcome {
            Ok(()) => ApiResponse {
                status: 200,
                body: format!(r#"{{"RequestId":"{request_id}","Success":true}}"#).into_bytes(),
                request_id,
                error: None,
            },
            Err(error) => {
                tracing::debug!(request_id, code = %error.code, error_message = %error.message, "request refused");
                ApiResponse::error(request_id, &error)
            }
        }
    }

    async fn process<'a>(
        &'a self,
        request: &ApiRequest<'_>,
        request_id: &str,
        call: &mut Call<'a>,
    ) -> Result<(), ApiError> {
        if request.http.method != "POST" || request.http.path != "/" {
            return Err(ApiError::new(
                ErrorCode::UnknownOperationException,
                "Operations are sent as POST / with an X-Amz-Target header.",
            ));
        }
        let now = self.clock.now();
        let catalog = self.catalog.current();
        let principal = self.authenticate(&catalog, request, call)?;

        self.throttle(
            &format!("principal:{}", principal.arn),
            now,
            catalog.throttling.principal,
        )
        .await?;

        let target = request
            .http
            .headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok());
        let operation = Operation::from_target(target)?;
        call.operation = Some(operation);
        let push = parse_request(operation, request.http.body)?;
        call.push = Some(push);
        self.push_key(&catalog, &principal, &request.origin(), request_id, call)
            .await
    }

    /// A short-lived credential of `principal_arn`, which the browser
    /// console signs with what it asks of another role as its signed-in
    /// principal (a tunnel through an endpoint). It is good on every node
    /// that shares this one's `credentials.key`.
    pub fn credential_for(&self, principal_arn: &str) -> crate::credentials::Issued {
        self.temporary
            .issue(principal_arn, CONSOLE_CREDENTIAL_TTL, self.clock.now())
    }

    /// A push by the browser console for its signed-in principal, through
    /// the same steps as a signed request's after authentication: the
    /// principal's throttle, authorization, the instance, the audit event,
    /// then the store. Gives the request id, or the refusal (audited).
    pub async fn push_for_console(
        &self,
        principal: Arc<Principal>,
        push: PushRequest,
        origin: &Origin<'_>,
    ) -> Result<String, ApiError> {
        let started = std::time::Instant::now();
        let request_id = uuid::Uuid::new_v4().to_string();
        let mut call = Call {
            operation: Some(push.operation),
            principal: Some(principal.clone()),
            push: Some(push),
            ..Call::default()
        };
        let catalog = self.catalog.current();
        let span = tracing::info_span!("request", request_id = %request_id);
        let outcome = async {
            self.throttle(
                &format!("principal:{}", principal.arn),
                self.clock.now(),
                catalog.throttling.principal,
            )
            .await?;
            self.push_key(&catalog, &principal, origin, &request_id, &mut call)
                .await
        }
        .instrument(span)
        .await;
        self.record_outcome(origin, &request_id, &call, outcome.as_ref().err(), started);
        outcome.map(|()| request_id)
    }

    /// Counts a finished call and audits its refusal; so is a store failure
    /// after the success event was written, as a second event with the same
    /// requestID. Refusals are rate-limited and kept off the disk reserve
    /// (audit.rs); the outcome of a push whose success event is written
    /// always is.
    fn record_outcome(
        &self,
        origin: &Origin<'_>,
        request_id: &str,
        call: &Call,
        error: Option<&ApiError>,
        started: std::time::Instant,
    ) {
        self.metrics.request(
            call.operation
                .map_or(crate::metrics::UNKNOWN_OPERATION, Operation::name),
            error.map_or(crate::metrics::OK, |e| e.code.as_str()),
            started.elapsed(),
        );
        let Some(error) = error else {
            return;
        };
        let admission = if call.admitted.is_some() {
            Admission::Outcome
        } else {
            Admission::Refusal {
                principal: call.principal.as_deref().map(|p| p.arn.as_str()),
                source_ip: origin.source_ip,
                code: error.code.as_str(),
            }
        };
        if let Err(e) = self.audit(
            origin,
            request_id,
            call,
            Some(error),
            ApiCallKind::Other(admission),
        ) {
            tracing::error!(request_id, error = %e, path = %self.audit.path().display(), "audit log write failed");
        }
    }

    /// Everything after the caller is known and its throttle passed.
    async fn push_key<'a>(
        &'a self,
        catalog: &Catalog,
        principal: &Arc<Principal>,
        origin: &Origin<'_>,
        request_id: &str,
        call: &mut Call<'a>,
    ) -> Result<(), ApiError> {
        let now = self.clock.now();
        let Some(push) = call.push.as_ref() else {
            return Err(ApiError::plain(ErrorCode::ServiceException));
        };

        let instance = self
            .instances
            .in_account(
                &catalog.registry,
                &push.instance_id,
                &principal.account,
                now,
            )
            .map_err(|e| {
                tracing::error!(
                    error = &e as &dyn std::error::Error,
                    "fleet unavailable; push refused"
                );
                ApiError::plain(ErrorCode::ServiceException)
            })?;
        let instance = instance.as_ref();
        catalog.authorizer.authorize(
            principal,
            push,
            instance.map(Arc::as_ref),
            origin.source_ip,
            origin.secure_transport,
            now,
        )?;
        let instance = self.check_instance(&catalog.registry, push, principal, instance)?;
        if let KeyTarget::SerialPort(port) = push.target {
            self.check_serial_session(instance, port).await?;
        }
        self.throttle(
            &format!("instance:{}", instance.id),
            now,
            catalog.throttling.instance,
        )
        .await?;

        let pushed_at_ms = unix_millis(now);
        let key = PushedKey {
            request_id: request_id.to_owned(),
            instance_id: instance.id.clone(),
            target: push.target.clone(),
            public_key: push.key.line.clone(),
            fingerprint: push.key.fingerprint.clone(),
            caller_arn: principal.arn.clone(),
            pushed_at_ms,
            expires_at_ms: pushed_at_ms + KEY_LIFETIME.as_millis() as u64,
        };
        // Audited before it is stored: a key is never live without its
        // event, and when the audit log cannot be written nothing is pushed.
        let recorded = self
            .audit(origin, request_id, call, None, ApiCallKind::Work)
            .map_err(|e| {
                tracing::error!(request_id, error = %e, path = %self.audit.path().display(), "audit log write failed; push refused");
                ApiError::plain(ErrorCode::ServiceException)
            })?;
        if let Recorded::Admitted(admitted) = recorded {
            call.admitted = Some(admitted);
        }
        self.store.push(key).await.map_err(|e| {
            tracing::error!(
                request_id,
                error = &e as &dyn std::error::Error,
                "push not stored"
            );
            ApiError::plain(ErrorCode::ServiceException)
        })
    }

    /// SigV4, then the access key's or session token's standing.
    fn authenticate(
        &self,
        catalog: &Catalog,
        request: &ApiRequest<'_>,
        call: &mut Call<'_>,
    ) -> Result<Arc<Principal>, ApiError> {
        let (principal, key_active) = self
            .verify_caller(
                catalog,
                &self.verifier,
                &request.http,
                &mut call.access_key_id,
                &mut call.temporary,
            )
            .map_err(|e| {
                let code = match e.kind {
                    SigV4ErrorKind::MissingAuthenticationToken => {
                        ErrorCode::MissingAuthenticationTokenException
                    }
                    SigV4ErrorKind::IncompleteSignature => ErrorCode::IncompleteSignatureException,
                    SigV4ErrorKind::InvalidSignature => ErrorCode::InvalidSignatureException,
                    SigV4ErrorKind::UnrecognizedClient => ErrorCode::UnrecognizedClientException,
                    SigV4ErrorKind::ExpiredToken => ErrorCode::ExpiredTokenException,
                };
                ApiError::new(code, e.message)
            })?;
        call.principal = Some(principal.clone());
        // Checked only after the signature, so only the key's holder learns
        // that it is inactive.
        if !key_active {
            return Err(ApiError::plain(ErrorCode::AuthException));
        }
        Ok(principal)
    }

    /// SigV4 with `verifier` (one per service) and the credentials lookup
    /// shared by every API: long-term access keys and temporary
    /// credentials. Gives the principal and whether its key is active;
    /// records the access key id and whether it was temporary as soon as
    /// they are known.
    pub(super) fn verify_caller(
        &self,
        catalog: &Catalog,
        verifier: &Verifier,
        http: &RequestParts<'_>,
        access_key: &mut Option<String>,
        temporary: &mut bool,
    ) -> Result<(Arc<Principal>, bool), SigV4Error> {
        let now = self.clock.now();
        let verified = verifier
            .verify(http, now, |access_key_id, session_token| {
                self.credential(
                    &catalog.registry,
                    access_key_id,
                    session_token,
                    now,
                    access_key,
                    temporary,
                )
            })
            .inspect_err(|e| self.metrics.sigv4_failure(sigv4_reason(e.kind)))?;
        Ok(verified.principal)
    }

    /// As [`Api::verify_caller`], for a URL presigned for EC2 Instance
    /// Connect (the Endpoint's `/openTunnel`).
    pub(super) fn verify_presigned_caller(
        &self,
        catalog: &Catalog,
        http: &RequestParts<'_>,
        lifetime: PresignLifetime,
        access_key: &mut Option<String>,
        temporary: &mut bool,
    ) -> Result<(Arc<Principal>, bool), SigV4Error> {
        let now = self.clock.now();
        let verified = self.verifier.verify_presigned(
            http,
            now,
            lifetime,
            |access_key_id, session_token| {
                self.credential(
                    &catalog.registry,
                    access_key_id,
                    session_token,
                    now,
                    access_key,
                    temporary,
                )
            },
        )?;
        Ok(verified.principal)
    }

    /// The secret and principal of an access key id, or of temporary
    /// credentials with their session token.
    fn credential(
        &self,
        registry: &Registry,
        access_key_id: &str,
        session_token: Option<&str>,
        now: std::time::SystemTime,
        access_key: &mut Option<String>,
        temporary: &mut bool,
    ) -> Result<Credential<(Arc<Principal>, bool)>, SigV4Error> {
        *access_key = Some(access_key_id.to_owned());
        match session_token {
            None => {
                let key = registry
                    .access_key(access_key_id)
                    .ok_or_else(SigV4Error::unrecognized_client)?;
                Ok(Credential {
                    secret: key.secret.expose().clone(),
                    principal: (key.principal.clone(), key.active),
                })
            }
            Some(token) => {
                let (arn, secret) =
                    self.temporary
                        .resolve(access_key_id, token, now)
                        .map_err(|e| match e {
                            TokenError::Invalid => SigV4Error::unrecognized_client(),
                            TokenError::Expired => SigV4Error::new(
                                SigV4ErrorKind::ExpiredToken,
                                "The security token included in the request is expired",
                            ),
                        })?;
                // A principal removed from the configuration takes its
                // temporary credentials with it.
                let principal = registry
                    .principal(&arn)
                    .ok_or_else(SigV4Error::unrecognized_client)?;
                *temporary = true;
                Ok(Credential {
                    secret,
                    principal: (principal.clone(), true),
                })
            }
        }
    }

    pub(super) async fn throttle(
        &self,
        bucket: &str,
        now: std::time::SystemTime,
        rate: BucketRate,
    ) -> Result<(), ApiError> {
        let allowed = self
            .store
            .take_token(bucket, rate, now)
            .await
            .map_err(|e| {
                tracing::error!(
                    error = &e as &dyn std::error::Error,
                    "throttle state unavailable"
                );
                ApiError::plain(ErrorCode::ServiceException)
            })?;
        if allowed {
            Ok(())
        } else {
            Err(ApiError::plain(ErrorCode::ThrottlingException))
        }
    }

    /// Takes the one use of `name` (a console sign-in link's nonce) from
    /// the store every node shares: true the first time within
    /// `lifetime`, false after.
    pub(super) async fn redeem_once(
        &self,
        name: &str,
        lifetime: Duration,
        now: std::time::SystemTime,
    ) -> Result<bool, ApiError> {
        // A bucket of one that refills only after the link has expired.
        let once = BucketRate {
            rate: 1.0 / lifetime.as_secs_f64().max(1.0),
            burst: 1.0,
        };
        self.store.take_token(name, once, now).await.map_err(|e| {
            tracing::error!(
                error = &e as &dyn std::error::Error,
                "store unavailable; sign-in refused"
            );
            ApiError::new(
                ErrorCode::ServiceException,
                "The store cannot be reached now; try again.",
            )
        })
    }

    /// A console event (sign-in, sign-out) for `principal`, in the audit
    /// log's CloudTrail shape.
    pub(super) fn audit_console_event(
        &self,
        name: &str,
        principal: &Principal,
        response: Option<serde_json::Value>,
    ) {
        let event = serde_json::json!({
            "eventVersion": "1.08",
            "userIdentity": {
                "type": "IAMUser",
                "arn": principal.arn,
                "accountId": principal.account,
                "userName": principal.name,
            },
            "eventTime": crate::audit::format_iso8601(self.clock.now()),
            "eventSource": "console.eic.local",
            "eventName": name,
            "awsRegion": self.region,
            "responseElements": response,
            "eventID": uuid::Uuid::new_v4().to_string(),
            "readOnly": false,
            "eventType": "AwsConsoleSignIn",
        });
        if let Err(e) = self.audit.record(&event, Admission::Outcome) {
            tracing::error!(error = %e, event = name, "audit log write failed for a console event");
        }
    }

    /// The instance's own conditions, in the order AWS reports them.
    fn check_instance<'i>(
        &self,
        registry: &Registry,
        push: &PushRequest,
        principal: &Principal,
        instance: Option<&'i Arc<Instance>>,
    ) -> Result<&'i Arc<Instance>, ApiError> {
        let Some(instance) = instance else {
            return Err(ApiError::new(
                ErrorCode::EC2InstanceNotFoundException,
                format!("Instance {} not found.", push.instance_id),
            ));
        };
        if let Some(zone) = &push.availability_zone {
            if *zone != instance.availability_zone {
                return Err(ApiError::new(
                    ErrorCode::EC2InstanceNotFoundException,
                    format!(
                        "Instance {} not found in availability zone {zone}.",
                        push.instance_id
                    ),
                ));
            }
        }
        if push.operation == Operation::SendSerialConsoleSSHPublicKey {
            let enabled = match registry.account(&principal.account) {
                Some(a) => self
                    .serial
                    .access
                    .enabled(&principal.account, a.serial_console_access)
                    .map_err(|e| {
                        tracing::error!(
                            error = &e as &dyn std::error::Error,
                            "serial console access unknown; push refused"
                        );
                        ApiError::plain(ErrorCode::ServiceException)
                    })?,
                None => false,
            };
            if !enabled {
                return Err(ApiError::plain(
                    ErrorCode::SerialConsoleAccessDisabledException,
                ));
            }
            if !supports_serial_console(&instance.instance_type) {
                return Err(ApiError::new(
                    ErrorCode::EC2InstanceTypeInvalidException,
                    format!(
                        "The instance type {} is not supported for connecting via the serial console. Only Nitro instance types are currently supported.",
                        instance.instance_type
                    ),
                ));
            }
        }
        if instance.state != InstanceState::Running {
            return Err(ApiError::new(
                ErrorCode::EC2InstanceStateInvalidException,
                format!(
                    "Unable to connect because instance {} is {}. Connecting to a stopped or terminated instance is not supported. If the instance is stopped, start your instance, and try to connect again.",
                    instance.id,
                    instance.state.name()
                ),
            ));
        }
        if instance.availability == Availability::Unavailable {
            return Err(ApiError::plain(ErrorCode::EC2InstanceUnavailableException));
        }
        Ok(instance)
    }

    /// Whether a session could open now: a console is configured, no
    /// session holds the port (or is tearing down), and the console answers.
    async fn check_serial_session(&self, instance: &Instance, port: u8) -> Result<(), ApiError> {
        let Some(backend) = &instance.serial_console else {
            return Err(ApiError::new(
                ErrorCode::SerialConsoleSessionUnsupportedException,
                format!("Instance {} has no serial console configured.", instance.id),
            ));
        };
        let unavailable = |why: String| {
            tracing::warn!(instance = %instance.id, reason = %why, "serial console unavailable");
            ApiError::plain(ErrorCode::SerialConsoleSessionUnavailableException)
        };
        let Some(locks) = &self.serial.locks else {
            return Err(unavailable("no serial console gateway runs".into()));
        };
        let state = locks.port_state(&instance.id, port).await.map_err(|e| {
            tracing::warn!(instance = %instance.id, error = &e as &dyn std::error::Error, "serial console unavailable: session locks unavailable");
            ApiError::plain(ErrorCode::SerialConsoleSessionUnavailableException)
        })?;
        match state {
            PortState::Free => {}
            // AWS's own words for an open session.
            PortState::InSession => {
                return Err(ApiError::plain(
                    ErrorCode::SerialConsoleSessionLimitExceededException,
                ))
            }
            PortState::TearingDown => {
                return Err(ApiError::new(
                    ErrorCode::SerialConsoleSessionLimitExceededException,
                    format!(
                        "The instance {} is in its serial console teardown period after a session ended; try again in up to {} seconds.",
                        instance.id,
                        locks.teardown().as_secs()
                    ),
                ))
            }
        }
        eic_serial::probe_backend(backend, BACKEND_PROBE_TIMEOUT)
            .await
            .map_err(unavailable)
    }

    fn audit(
        &self,
        origin: &Origin<'_>,
        request_id: &str,
        call: &Call<'_>,
        error: Option<&ApiError>,
        kind: ApiCallKind<'_>,
    ) -> Result<Recorded<'_>, AuditError> {
        let request_parameters = call.push.as_ref().map(|push| {
            CallParameters::Push(RequestParameters {
                instance_id: &push.instance_id,
                os_user: match &push.target {
                    KeyTarget::OsUser(user) => Some(user.as_str()),
                    KeyTarget::SerialPort(_) => None,
                },
                serial_port: match push.target {
                    KeyTarget::OsUser(_) => None,
                    KeyTarget::SerialPort(port) => Some(port),
                },
                availability_zone: push.availability_zone.as_deref(),
                ssh_public_key_fingerprint: &push.key.fingerprint,
            })
        });
        let principal = call.principal.as_deref();
        self.audit.record_api_call(
            &ApiCall {
                time: self.clock.now(),
                event_source: crate::audit::EVENT_SOURCE,
                read_only: false,
                region: &self.region,
                event_name: call.operation.map(Operation::name),
                identity: Identity::of(principal, call.access_key_id.as_deref(), call.temporary),
                source_ip: origin.source_ip,
                user_agent: origin.user_agent,
                request_parameters,
                request_id,
                error: error.map(|e| (e.code.as_str(), e.message.as_str())),
            },
            kind,
        )
    }
}
