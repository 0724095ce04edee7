//! The API request pipeline, from a received request to the answer.
//!
//! Checks run in a fixed, documented order (ARCHITECTURE.md): size limits,
//! authentication, operation, throttling, validation, authorization, then
//! the instance's own state, then the store. Authorization comes before any
//! instance lookup, and is evaluated for an unknown or foreign instance as
//! for one without tags, so a caller learns nothing about instances it may
//! not touch.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use eic_sigv4::{Credential, RequestParts, SigV4ErrorKind, Verifier};
use eic_store::{unix_millis, Clock, KeyStore, KeyTarget, PushedKey};
use eic_wire::{parse_request, ApiError, ErrorCode, Operation, PushRequest, PushTarget};
use http::HeaderMap;

use crate::authz::Authorizer;
use crate::config::{Availability, InstanceState};
use crate::registry::{supports_serial_console, Instance, Principal, Registry};

/// How long a pushed key lets its holder in, as at AWS.
pub const KEY_LIFETIME: Duration = Duration::from_secs(60);
/// The SigV4 clock-skew window, as at AWS.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(15 * 60);

pub struct Api {
    registry: Arc<Registry>,
    authorizer: Authorizer,
    verifier: Verifier,
    store: Arc<dyn KeyStore>,
    clock: Arc<dyn Clock>,
}

/// A request as the listener received it.
pub struct ApiRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    pub source_ip: IpAddr,
}

/// What to send back: the status, the request id (also in the body), the
/// JSON body, and the error code for `x-amzn-ErrorType`.
pub struct ApiResponse {
    pub status: u16,
    pub request_id: String,
    pub body: Vec<u8>,
    pub error: Option<ErrorCode>,
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

impl Api {
    pub fn new(
        registry: Arc<Registry>,
        authorizer: Authorizer,
        store: Arc<dyn KeyStore>,
        clock: Arc<dyn Clock>,
    ) -> Api {
        let verifier = Verifier::new(
            "ec2-instance-connect",
            registry.regions.clone(),
            MAX_CLOCK_SKEW,
        );
        Api {
            registry,
            authorizer,
            verifier,
            store,
            clock,
        }
    }

    pub async fn handle(&self, request: ApiRequest<'_>) -> ApiResponse {
        let request_id = uuid::Uuid::new_v4().to_string();
        match self.process(&request, &request_id).await {
            Ok(()) => ApiResponse {
                status: 200,
                body: format!(r#"{{"RequestId":"{request_id}","Success":true}}"#).into_bytes(),
                request_id,
                error: None,
            },
            Err(error) => {
                tracing::info!(request_id, code = %error.code, message = %error.message, source_ip = %request.source_ip, "request refused");
                ApiResponse::error(request_id, &error)
            }
        }
    }

    async fn process(&self, request: &ApiRequest<'_>, request_id: &str) -> Result<(), ApiError> {
        if request.method != "POST" || request.path != "/" {
            return Err(ApiError::new(
                ErrorCode::UnknownOperationException,
                "Operations are sent as POST / with an X-Amz-Target header.",
            ));
        }
        let now = self.clock.now();
        let parts = RequestParts {
            method: request.method,
            path: request.path,
            query: request.query,
            headers: request.headers,
            body: request.body,
        };
        let verified = self
            .verifier
            .verify(&parts, now, |access_key_id, session_token| {
                // Temporary credentials are not issued yet: a token can only
                // be one this server does not know.
                if session_token.is_some() {
                    return None;
                }
                self.registry
                    .access_key(access_key_id)
                    .map(|key| Credential {
                        secret: key.secret.clone(),
                        principal: (key.principal.clone(), key.active),
                    })
            })
            .map_err(|e| {
                let code = match e.kind {
                    SigV4ErrorKind::MissingAuthenticationToken => {
                        ErrorCode::MissingAuthenticationTokenException
                    }
                    SigV4ErrorKind::IncompleteSignature => ErrorCode::IncompleteSignatureException,
                    SigV4ErrorKind::InvalidSignature => ErrorCode::InvalidSignatureException,
                    SigV4ErrorKind::UnrecognizedClient => ErrorCode::UnrecognizedClientException,
                };
                ApiError::new(code, e.message)
            })?;
        let (principal, key_active) = verified.principal;
        // Checked only after the signature, so only the key's holder learns
        // that it is inactive.
        if !key_active {
            return Err(ApiError::plain(ErrorCode::AuthException));
        }

        let target = request
            .headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok());
        let operation = Operation::from_target(target)?;
        let push = parse_request(operation, request.body)?;

        let instance = self
            .registry
            .instance_in_account(&push.instance_id, &principal.account);
        self.authorizer.authorize(
            &principal,
            &push,
            instance.map(Arc::as_ref),
            request.source_ip,
            now,
        )?;
        let instance = self.check_instance(&push, &principal, instance)?;

        let pushed_at_ms = unix_millis(now);
        let key = PushedKey {
            request_id: request_id.to_owned(),
            instance_id: instance.id.clone(),
            target: match &push.target {
                PushTarget::OsUser(user) => KeyTarget::OsUser(user.clone()),
                PushTarget::SerialPort(port) => KeyTarget::SerialPort(*port),
            },
            public_key: push.key.line.clone(),
            fingerprint: push.key.fingerprint.clone(),
            caller_arn: principal.arn.clone(),
            pushed_at_ms,
            expires_at_ms: pushed_at_ms + KEY_LIFETIME.as_millis() as u64,
        };
        self.store.push(key).await.map_err(|e| {
            tracing::error!(request_id, error = %e, "push not stored");
            ApiError::plain(ErrorCode::ServiceException)
        })?;
        tracing::info!(
            request_id,
            operation = operation.name(),
            principal = %principal.arn,
            instance = %push.instance_id,
            target = ?push.target,
            fingerprint = %push.key.fingerprint,
            "key pushed"
        );
        Ok(())
    }

    /// The instance's own conditions, in the order AWS reports them.
    fn check_instance<'i>(
        &self,
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
            let enabled = self
                .registry
                .account(&principal.account)
                .is_some_and(|a| a.serial_console_access);
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
}
