//! The fleet's side of the instance-facing listener: `POST /eic/v1/join`
//! (a machine with a join token becomes an enrolled instance) and `POST
//! /eic/v1/heartbeat` (an enrolled instance, by its own credential, says it
//! is alive, where, and whether it is shutting down), plus the sweep that
//! audits instances turning connection-lost.
//!
//! A join is the one request this listener takes from a caller nobody knows
//! yet, so it is bounded before any work: a token bucket per source address,
//! a 64 KiB body, a token whose shape is checked before the store is asked,
//! and refusals audited through the audit log's refusal budget.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use eic_store::fleet::{Enrollment, FleetState, HeartbeatOutcome, TokenRefusal};
use eic_store::{unix_millis, Fleet};
use http::StatusCode;
use serde::Serialize;
use serde_json::{json, Value};

use super::instance_api::InstanceApi;
use crate::audit::{format_iso8601, Admission, AuditLog};
use crate::enrollment::{
    self, ErrorBody, HeartbeatRequest, HeartbeatResponse, JoinRequest, JoinResponse,
};
use crate::instances::{Instances, Liveness};
use crate::join_token::JoinTokenText;
use crate::secret::Secret;

/// `eventSource` of the fleet's audit events (eic's own: EC2 has no
/// enrollment API; SSM's hybrid activations are the nearest).
pub const FLEET_EVENT_SOURCE: &str = "fleet.eic";

/// A refusal: the status and the message the agent prints, and the code
/// the audit event records.
pub(super) struct Refusal {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl Refusal {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            code,
            message: message.into(),
        }
    }

    fn unavailable(what: &str, e: &(dyn std::error::Error + 'static)) -> Refusal {
        tracing::error!(error = e, "{what}");
        Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "the server cannot reach its store; retry later",
        )
    }

    pub fn body(&self) -> String {
        serde_json::to_string(&ErrorBody {
            message: self.message.clone(),
        })
        .unwrap_or_default()
    }
}

impl InstanceApi {
    /// `POST /eic/v1/join`.
    pub(super) async fn join(&self, peer: SocketAddr, body: &[u8]) -> Result<String, Refusal> {
        let now = self.clock.now();
        let bucket = format!("join:{}", peer.ip());
        match self.store.take_token(&bucket, self.fleet.joins, now).await {
            Ok(true) => {}
            Ok(false) => {
                return Err(self.refuse_join(
                    peer,
                    None,
                    Refusal::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "Throttling",
                        "too many join attempts from this address; retry later",
                    ),
                ))
            }
            Err(e) => return Err(Refusal::unavailable("join throttle unavailable", &e)),
        }
        let request: JoinRequest = serde_json::from_slice(body).map_err(|e| {
            self.refuse_join(
                peer,
                None,
                Refusal::new(
                    StatusCode::BAD_REQUEST,
                    "InvalidJoinRequest",
                    format!(
                        "the join request is not valid: {}",
                        crate::audit::bounded(&e.to_string(), 200)
                    ),
                ),
            )
        })?;
        let invalid =
            |message: String| Refusal::new(StatusCode::BAD_REQUEST, "InvalidJoinRequest", message);
        let token = JoinTokenText::parse(request.token.expose())
            .ok_or_else(|| self.refuse_join(peer, None, token_refusal(TokenRefusal::Unknown)))?;
        let facts = enrollment::validate(&request.facts)
            .map_err(|m| self.refuse_join(peer, Some(&token.id), invalid(m)))?;
        if let Some(kind) = &request.instance_type {
            enrollment::instance_type(Some(kind))
                .map_err(|m| self.refuse_join(peer, Some(&token.id), invalid(m)))?;
        }

        let now_ms = unix_millis(now);
        let redeemed = self
            .fleet_store()
            .redeem_token(&token.id, &token.secret_sha256(), now_ms)
            .await
            .map_err(|e| Refusal::unavailable("fleet unavailable; join refused", &e))?;
        let stored =
            redeemed.map_err(|r| self.refuse_join(peer, Some(&token.id), token_refusal(r)))?;

        // The same machine joining again (it still holds the credential its
        // last join wrote) keeps its id and tags, and its zone and type
        // unless it names others; no hardware fingerprint is asked for, so
        // a changed disk or NIC never locks it out.
        let earlier = match &request.credential {
            Some(credential) => self.rejoining(credential, &stored.account)?,
            None => None,
        };
        let asked_zone =
            request
                .availability_zone
                .as_deref()
                .or(match (&stored.availability_zone, &earlier) {
                    (None, Some(e)) => Some(e.availability_zone.as_str()),
                    _ => None,
                });
        let zone = enrollment::placement(
            stored.availability_zone.as_deref(),
            asked_zone,
            &self.region,
        )
        .map_err(|m| self.refuse_join(peer, Some(&token.id), invalid(m)))?;
        let instance_type = match (&request.instance_type, &earlier) {
            (None, Some(e)) => e.instance_type.clone(),
            (asked, _) => enrollment::instance_type(asked.as_deref())
                .map_err(|m| self.refuse_join(peer, Some(&token.id), invalid(m)))?,
        };
        let instance_id = match &earlier {
            Some(e) => e.instance_id.clone(),
            None => self.new_instance_id()?,
        };
        // A token's network places its machines; a machine that joins again
        // with a token that names none stays where it was.
        let enrollment = Enrollment {
            network: stored
                .network
                .clone()
                .or_else(|| earlier.as_ref().and_then(|e| e.network.clone())),
            instance_id: instance_id.clone(),
            account: stored.account.clone(),
            token_id: stored.id.clone(),
            availability_zone: zone.clone(),
            instance_type,
            facts,
            tags: earlier
                .as_ref()
                .map(|e| e.tags.clone())
                .unwrap_or_else(|| stored.tags.clone().into()),
            state: FleetState::Running,
            enrolled_at_ms: earlier.as_ref().map_or(now_ms, |e| e.enrolled_at_ms),
            updated_at_ms: now_ms,
        };
        let event = fleet_event(FleetEvent {
            name: "JoinInstance",
            identity: json!({"type": "JoinToken", "tokenId": stored.id, "accountId": stored.account}),
            source_ip: Some(peer),
            account: &stored.account,
            parameters: json!({
                "tokenId": stored.id,
                "hostname": enrollment.facts.hostname,
                "privateIpAddress": enrollment.facts.addresses.private_ipv4,
                "publicIpAddress": enrollment.facts.addresses.public_ipv4,
                "availabilityZone": zone,
                "rejoin": earlier.is_some(),
            }),
            response: json!({"instanceId": instance_id, "usesLeft": stored.uses.saturating_sub(stored.used)}),
            error: None,
            now,
        });
        // Recorded before the machine is enrolled: an instance never exists
        // without the event that made it.
        self.audit.record_work(&event).map(drop).map_err(|e| {
            tracing::error!(error = %e, "audit log write failed; join refused");
            Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "the server cannot write its audit log; retry later",
            )
        })?;
        self.fleet_store()
            .enroll(enrollment, now_ms)
            .await
            .map_err(|e| Refusal::unavailable("fleet unavailable; join not stored", &e))?;
        // A join again retires the credential it presented.
        let credential = match earlier {
            Some(_) => self.credentials.rotate(&instance_id).await,
            None => self.credentials.credential(&instance_id),
        }
        .map_err(|e| Refusal::unavailable("credential generations unknown", &e))?;
        let response = JoinResponse {
            instance_id,
            account: stored.account,
            availability_zone: zone,
            credential,
            signer_cn: self.signing.signer_cn(),
            trust_anchor: self.signing.ca_pem(),
            heartbeat_secs: self.fleet.heartbeat_secs,
        };
        Ok(serde_json::to_string(&response).unwrap_or_default())
    }

    /// `POST /eic/v1/heartbeat` from the authenticated `instance_id`.
    pub(super) async fn heartbeat(
        &self,
        peer: SocketAddr,
        instance_id: &str,
        body: &[u8],
    ) -> Result<String, Refusal> {
        let request: HeartbeatRequest = serde_json::from_slice(body).map_err(|e| {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                "InvalidHeartbeat",
                format!(
                    "the heartbeat is not valid: {}",
                    crate::audit::bounded(&e.to_string(), 200)
                ),
            )
        })?;
        let facts = enrollment::validate(&request.facts)
            .map_err(|m| Refusal::new(StatusCode::BAD_REQUEST, "InvalidHeartbeat", m))?;
        let now = self.clock.now();
        let state = enrollment::stored(request.state);
        let outcome = self
            .fleet_store()
            .heartbeat(instance_id, state, &facts, unix_millis(now))
            .await
            .map_err(|e| Refusal::unavailable("fleet unavailable; heartbeat refused", &e))?;
        let previous = match outcome {
            HeartbeatOutcome::Unknown => {
                return Err(Refusal::new(
                    StatusCode::NOT_FOUND,
                    "NotEnrolled",
                    format!("{instance_id} is a configured instance, not an enrolled one; it has no heartbeat"),
                ))
            }
            HeartbeatOutcome::Terminated => {
                return Err(Refusal::new(
                    StatusCode::UNAUTHORIZED,
                    "Terminated",
                    format!("{instance_id} was removed from the fleet"),
                ))
            }
            HeartbeatOutcome::Recorded {
                previous,
                last_seen_ms,
            } => {
                let silent = unix_millis(now).saturating_sub(last_seen_ms);
                match previous {
                    FleetState::Running
                        if silent >= self.instances.unavailable_after().as_millis() as u64 =>
                    {
                        Liveness::ConnectionLost
                    }
                    FleetState::Running => Liveness::Running,
                    FleetState::Stopped => Liveness::Stopped,
                    FleetState::Terminated => Liveness::Terminated,
                }
            }
        };
        let current = match state {
            FleetState::Stopped => Liveness::Stopped,
            _ => Liveness::Running,
        };
        if previous != current {
            if let Some(instance) = self
                .instances
                .get(&self.catalog.current().registry, instance_id, now)
                .map_err(|e| Refusal::unavailable("fleet unavailable", &e))?
            {
                record_transition(
                    &self.audit,
                    &instance.id,
                    &instance.account,
                    previous,
                    current,
                    Some(peer),
                    now,
                );
            }
        }
        Ok(serde_json::to_string(&HeartbeatResponse {
            heartbeat_secs: self.fleet.heartbeat_secs,
        })
        .unwrap_or_default())
    }

    fn fleet_store(&self) -> &Arc<dyn Fleet> {
        self.instances.fleet()
    }

    /// The enrolled instance `credential` belongs to, when it is current,
    /// of `account`, and not terminated; a credential that is not is
    /// refused rather than ignored, so a stale config never forks a
    /// machine into two instances silently.
    fn rejoining(
        &self,
        credential: &Secret<String>,
        account: &str,
    ) -> Result<Option<Enrollment>, Refusal> {
        let refused = || {
            Refusal::new(
                StatusCode::FORBIDDEN,
                "InvalidCredential",
                "the credential of the earlier join is not valid (rotated, revoked, removed, or of another account); remove the old agent config to join as a new instance",
            )
        };
        let id = self
            .credentials
            .verify(credential.expose())
            .map_err(|e| Refusal::unavailable("credential generations unknown", &e))?
            .ok_or_else(refused)?;
        let enrolled = self
            .fleet_store()
            .enrolled(&id)
            .map_err(|e| Refusal::unavailable("fleet unavailable", &e))?
            .ok_or_else(refused)?;
        let e = &enrolled.enrollment;
        if e.account != account || e.state == FleetState::Terminated {
            return Err(refused());
        }
        Ok(Some(e.clone()))
    }

    /// `i-` and 17 random lowercase hex digits, as EC2's own ids; one that
    /// is taken (static or enrolled) is drawn again.
    fn new_instance_id(&self) -> Result<String, Refusal> {
        for _ in 0..4 {
            let mut bytes = [0u8; 9];
            getrandom::fill(&mut bytes).map_err(|e| {
                Refusal::unavailable(
                    "no randomness for an instance id",
                    &std::io::Error::other(e.to_string()),
                )
            })?;
            let mut hex = hex::encode(bytes);
            hex.truncate(17);
            let id = format!("i-{hex}");
            let taken = self
                .instances
                .get(&self.catalog.current().registry, &id, self.clock.now())
                .map_err(|e| Refusal::unavailable("fleet unavailable", &e))?
                .is_some();
            if !taken {
                return Ok(id);
            }
        }
        Err(Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "could not draw a free instance id",
        ))
    }

    /// Audits a refused join (through the refusal budget: a stranger
    /// cannot fill the disk) and hands the refusal back.
    fn refuse_join(&self, peer: SocketAddr, token_id: Option<&str>, refusal: Refusal) -> Refusal {
        let event = fleet_event(FleetEvent {
            name: "JoinInstance",
            identity: json!({"type": "JoinToken", "tokenId": token_id}),
            source_ip: Some(peer),
            account: "",
            parameters: json!({"tokenId": token_id}),
            response: Value::Null,
            error: Some((refusal.code, &refusal.message)),
            now: self.clock.now(),
        });
        let admission = Admission::Refusal {
            principal: None,
            source_ip: peer.ip(),
            code: refusal.code,
        };
        if let Err(e) = self.audit.record(&event, admission) {
            tracing::error!(error = %e, "audit log write failed for a refused join");
        }
        refusal
    }
}

fn token_refusal(refusal: TokenRefusal) -> Refusal {
    let message = match refusal {
        TokenRefusal::Unknown => "the join token is not valid",
        TokenRefusal::Revoked => "the join token was revoked",
        TokenRefusal::Expired => "the join token has expired",
        TokenRefusal::UsedUp => "the join token has no uses left",
    };
    Refusal::new(StatusCode::FORBIDDEN, "InvalidJoinToken", message)
}

/// One fleet event in CloudTrail's shape.
pub struct FleetEvent<'a> {
    pub name: &'static str,
    pub identity: Value,
    pub source_ip: Option<SocketAddr>,
    pub account: &'a str,
    pub parameters: Value,
    pub response: Value,
    pub error: Option<(&'a str, &'a str)>,
    pub now: std::time::SystemTime,
}

pub fn fleet_event(e: FleetEvent<'_>) -> impl Serialize {
    let mut event = json!({
        "eventVersion": "1.08",
        "userIdentity": e.identity,
        "eventTime": format_iso8601(e.now),
        "eventSource": FLEET_EVENT_SOURCE,
        "eventName": e.name,
        "sourceIPAddress": e.source_ip.map_or_else(|| "eic".to_owned(), |p| p.ip().to_string()),
        "requestParameters": e.parameters,
        "responseElements": e.response,
        "eventID": uuid::Uuid::new_v4().to_string(),
        "readOnly": false,
        "eventType": "AwsApiCall",
        "recipientAccountId": e.account,
    });
    if let Some((code, message)) = e.error {
        event["errorCode"] = code.into();
        event["errorMessage"] = crate::audit::bounded(message, 1024).into_owned().into();
    }
    event
}

/// Audits an instance's change of liveness.
pub fn record_transition(
    audit: &AuditLog,
    instance_id: &str,
    account: &str,
    previous: Liveness,
    current: Liveness,
    source_ip: Option<SocketAddr>,
    now: std::time::SystemTime,
) {
    let event = fleet_event(FleetEvent {
        name: "InstanceStateChange",
        identity: json!({"type": "Instance", "instanceId": instance_id, "accountId": account}),
        source_ip,
        account,
        parameters: json!({"instanceId": instance_id}),
        response: json!({"previousState": previous.name(), "currentState": current.name()}),
        error: None,
        now,
    });
    if let Err(e) = audit.record(&event, Admission::Outcome) {
        tracing::error!(error = %e, instance_id, "audit log write failed for a state change");
    }
    tracing::info!(
        instance_id,
        previous = previous.name(),
        current = current.name(),
        "instance state changed"
    );
}

/// Audits running instances whose heartbeats stopped, once per silence;
/// the heartbeat that ends it is audited where it arrives. Every node
/// sweeps, so on several nodes each records the transitions it observes.
pub async fn sweep_liveness(instances: Arc<Instances>, audit: Arc<AuditLog>, every: Duration) {
    let mut lost: HashSet<String> = HashSet::new();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = std::time::SystemTime::now();
        let Ok(all) = instances.fleet().all_enrolled() else {
            continue;
        };
        let mut still_lost = HashSet::with_capacity(lost.len());
        for enrolled in &all {
            let e = &enrolled.enrollment;
            if Liveness::of(enrolled, now, instances.unavailable_after())
                != Liveness::ConnectionLost
            {
                continue;
            }
            // Every node sweeps; the one that claims this loss records it. A
            // claim that cannot be made records it anyway: a transition
            // audited twice is better than one not audited.
            let claimed = !lost.contains(&e.instance_id)
                && instances
                    .fleet()
                    .claim_connection_lost(&e.instance_id, enrolled.last_seen_ms())
                    .await
                    .unwrap_or(true);
            if claimed {
                record_transition(
                    &audit,
                    &e.instance_id,
                    &e.account,
                    Liveness::Running,
                    Liveness::ConnectionLost,
                    None,
                    now,
                );
            }
            still_lost.insert(e.instance_id.clone());
        }
        lost = still_lost;
    }
}

/// The refusal's HTTP answer.
pub(super) fn status_and_body(result: Result<String, Refusal>) -> (StatusCode, Bytes) {
    match result {
        Ok(body) => (StatusCode::OK, Bytes::from(body)),
        Err(refusal) => (refusal.status, Bytes::from(refusal.body())),
    }
}
