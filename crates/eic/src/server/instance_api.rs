//! The instance-facing listener (role `instance-api`): each instance,
//! authenticated by its own credential, reads its own live keys, signed in
//! AWS's managed-ssh-keys format.
//!
//! Two shapes of the same data:
//! - `/latest/meta-data/…`: the paths AWS's instance metadata serves
//!   (`managed-ssh-keys/active-keys/<user>/`, `signer-cert/`,
//!   `signer-ocsp/[<sha1>]`, `instance-id/`, `placement/availability-zone/`,
//!   `services/domain/`), for clients written against IMDS;
//! - `/eic/v1/authorized-keys/<user>`: blob, chain and staples in one JSON
//!   answer, which `eic authorized-keys` uses: one round trip, and the blob
//!   and the chain it was signed under can never come from different leaves.
//!
//! The credential goes in `Authorization: Bearer …` or in IMDSv2's
//! `X-aws-ec2-metadata-token` header. Anything unauthenticated is 401; an
//! instance sees only itself.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use eic_store::{Clock, KeyTarget, Store};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::json;

use super::fleet;
use super::reload::LiveCatalog;
use crate::audit::{format_iso8601, AuditLog, EVENT_SOURCE};
use crate::config::{FleetConfig, InstanceState};
use crate::enrollment;
use crate::instance_credentials::InstanceCredentials;
use crate::instances::Instances;
use crate::registry::Instance;
use crate::signing::Signing;

pub struct InstanceApi {
    /// The static instances (a reload swaps them) beside the fleet's.
    pub catalog: Arc<LiveCatalog>,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub instances: Arc<Instances>,
    pub store: Arc<dyn Store>,
    pub credentials: InstanceCredentials,
    pub signing: Arc<Signing>,
    pub audit: Arc<AuditLog>,
    pub clock: Arc<dyn Clock>,
    pub domain: String,
    pub region: String,
    pub fleet: FleetConfig,
}

impl InstanceApi {
    pub async fn handle(
        self: Arc<Self>,
        peer: SocketAddr,
        request: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, Infallible> {
        if request.method() == Method::POST {
            return Ok(self.post(peer, request).await);
        }
        let path = request.uri().path();
        let key_fetch = path.starts_with("/eic/v1/authorized-keys/")
            || path.starts_with("/latest/meta-data/managed-ssh-keys/active-keys/");
        let response = self
            .route(peer, &request)
            .await
            .unwrap_or_else(|status| text(status, ""));
        if key_fetch {
            self.metrics.key_fetch(response.status().as_u16());
        }
        Ok(response)
    }

    /// The fleet's requests (server/fleet.rs): a join, which carries its
    /// own token, and a heartbeat, which is authenticated as fetches are.
    async fn post(&self, peer: SocketAddr, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = request.uri().path().to_owned();
        let heartbeat_of = match path.as_str() {
            enrollment::JOIN_PATH => None,
            enrollment::HEARTBEAT_PATH => match self.credential_holder(&request) {
                Ok(instance_id) => Some(instance_id),
                Err(status) => return text(status, ""),
            },
            _ => return text(StatusCode::NOT_FOUND, ""),
        };
        let body = match Limited::new(request.into_body(), enrollment::MAX_BODY_BYTES)
            .collect()
            .await
        {
            Ok(body) => body.to_bytes(),
            Err(_) => {
                return json_response(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    Bytes::from_static(
                        br#"{"message":"the request body is over 64 KiB or was cut off"}"#,
                    ),
                )
            }
        };
        let result = match &heartbeat_of {
            None => self.join(peer, &body).await,
            Some(instance_id) => self.heartbeat(peer, instance_id, &body).await,
        };
        let (status, body) = fleet::status_and_body(result);
        json_response(status, body)
    }

    async fn route(
        &self,
        peer: SocketAddr,
        request: &Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, StatusCode> {
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return Err(StatusCode::METHOD_NOT_ALLOWED);
        }
        let instance = self.authenticate(request)?;
        let head = request.method() == Method::HEAD;
        let path = request.uri().path();
        let reply = |r: Response<Full<Bytes>>| Ok(if head { strip_body(r) } else { r });

        if let Some(user) = path.strip_prefix("/eic/v1/authorized-keys/") {
            let user = valid_user(user)?;
            let keys = self.live_keys(&instance, user, peer).await?;
            let (leaf, blob) = self
                .signing
                .blob(&instance.id, user, &keys)
                .map_err(internal)?;
            let body = json!({"blob": &*blob, "chain": leaf.chain_pem, "staples": leaf.staples});
            let mut response = text(StatusCode::OK, &body.to_string());
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            return reply(response);
        }
        let Some(rest) = path.strip_prefix("/latest/meta-data/") else {
            return Err(StatusCode::NOT_FOUND);
        };
        match rest.trim_end_matches('/') {
            "instance-id" => reply(text(StatusCode::OK, &instance.id)),
            "placement/availability-zone" => {
                reply(text(StatusCode::OK, &instance.availability_zone))
            }
            "services/domain" => reply(text(StatusCode::OK, &self.domain)),
            "managed-ssh-keys/signer-cert" => {
                reply(text(StatusCode::OK, &self.signing.current().chain_pem))
            }
            "managed-ssh-keys/signer-ocsp" => {
                let names: Vec<String> = self.signing.current().staples.keys().cloned().collect();
                reply(text(StatusCode::OK, &names.join("\n")))
            }
            other => {
                if let Some(name) = other.strip_prefix("managed-ssh-keys/signer-ocsp/") {
                    let leaf = self.signing.current();
                    let staple = leaf.staples.get(name).ok_or(StatusCode::NOT_FOUND)?;
                    return reply(text(StatusCode::OK, staple));
                }
                if let Some(user) = other.strip_prefix("managed-ssh-keys/active-keys/") {
                    let user = valid_user(user)?;
                    let keys = self.live_keys(&instance, user, peer).await?;
                    let (_, blob) = self
                        .signing
                        .blob(&instance.id, user, &keys)
                        .map_err(internal)?;
                    return reply(text(StatusCode::OK, &blob));
                }
                Err(StatusCode::NOT_FOUND)
            }
        }
    }

    fn authenticate(&self, request: &Request<Incoming>) -> Result<Arc<Instance>, StatusCode> {
        let instance_id = self.credential_holder(request)?;
        let instance = self
            .instances
            .get(
                &self.catalog.current().registry,
                &instance_id,
                self.clock.now(),
            )
            .map_err(|e| {
                tracing::error!(
                    error = &e as &dyn std::error::Error,
                    "fleet unavailable; fetch refused"
                );
                StatusCode::SERVICE_UNAVAILABLE
            })?;
        // A terminated instance's credential dies with it.
        instance
            .filter(|i| i.state != InstanceState::Terminated)
            .ok_or(StatusCode::UNAUTHORIZED)
    }

    /// The instance whose current credential the request carries. A
    /// heartbeat needs no more: the fleet refuses a terminated instance's.
    fn credential_holder(&self, request: &Request<Incoming>) -> Result<String, StatusCode> {
        let headers = request.headers();
        let credential = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_credential)
            .or_else(|| {
                headers
                    .get("x-aws-ec2-metadata-token")
                    .and_then(|v| v.to_str().ok())
            })
            .ok_or(StatusCode::UNAUTHORIZED)?;
        self.credentials
            .verify(credential.trim())
            .map_err(|e| {
                tracing::error!(
                    error = &e as &dyn std::error::Error,
                    "instance credential generations unknown; fetch refused"
                );
                StatusCode::SERVICE_UNAVAILABLE
            })?
            .ok_or(StatusCode::UNAUTHORIZED)
    }

    /// The live keys, 404 when there are none; every fetch is audited.
    async fn live_keys(
        &self,
        instance: &Instance,
        user: &str,
        peer: SocketAddr,
    ) -> Result<Vec<eic_store::PushedKey>, StatusCode> {
        let now = self.clock.now();
        let keys = self
            .store
            .live_keys(&instance.id, &KeyTarget::OsUser(user.to_owned()), now)
            .await
            .map_err(|e| {
                tracing::error!(
                    error = &e as &dyn std::error::Error,
                    "key store unavailable for an instance fetch"
                );
                StatusCode::SERVICE_UNAVAILABLE
            })?;
        let served: Vec<_> = keys
            .iter()
            .map(|k| json!({"fingerprint": k.fingerprint, "requestId": k.request_id, "caller": k.caller_arn}))
            .collect();
        let event = json!({
            "eventVersion": "1.08",
            "userIdentity": {"type": "Instance", "instanceId": instance.id, "accountId": instance.account},
            "eventTime": format_iso8601(now),
            "eventSource": EVENT_SOURCE,
            "eventName": "GetAuthorizedKeys",
            "sourceIPAddress": peer.ip().to_string(),
            "requestParameters": {"instanceId": instance.id, "osUser": user},
            "responseElements": {"keys": served},
            "eventID": uuid::Uuid::new_v4().to_string(),
            "readOnly": true,
            "eventType": "AwsServiceEvent",
            "recipientAccountId": instance.account,
        });
        // Fail closed: keys are handed out only once the fetch is on record.
        self.audit.record_work(&event).map(drop).map_err(|e| {
            tracing::error!(error = %e, "audit log write failed; key fetch refused");
            StatusCode::SERVICE_UNAVAILABLE
        })?;
        if keys.is_empty() {
            return Err(StatusCode::NOT_FOUND);
        }
        Ok(keys)
    }
}

/// The user part of the path: exactly what the API accepts as an OS user.
/// The credential of `Authorization: Bearer …`; the scheme's name is
/// case-insensitive (RFC 9110, section 11.1).
fn bearer_credential(value: &str) -> Option<&str> {
    let (scheme, credential) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credential.trim_start())
}

fn valid_user(segment: &str) -> Result<&str, StatusCode> {
    let user = segment.strip_suffix('/').unwrap_or(segment);
    if eic_wire::is_valid_os_user(user) {
        Ok(user)
    } else {
        Err(StatusCode::NOT_FOUND)
    }
}

fn internal(e: anyhow::Error) -> StatusCode {
    tracing::error!(error = %e, "cannot sign a key blob");
    StatusCode::INTERNAL_SERVER_ERROR
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain"),
    );
    response
}

fn json_response(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn strip_body(response: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    let (parts, _) = response.into_parts();
    Response::from_parts(parts, Full::new(Bytes::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for header in ["Bearer abc", "bearer abc", "BEARER  abc"] {
            assert_eq!(bearer_credential(header), Some("abc"), "{header}");
        }
        assert_eq!(bearer_credential("Basic abc"), None);
        assert_eq!(bearer_credential("Bearerabc"), None);
    }
}
