//! Authorization of a push with the caller's IAM policies (and the
//! account's boundary, when it has one), through `eic-policy`.
//!
//! The request context carries what AWS puts there for this service:
//! `ec2:osuser`, the instance's tags as `aws:ResourceTag/*` and
//! `ec2:ResourceTag/*`, and the global keys. For an instance the caller
//! cannot see (unknown, or another account's), the context is built as for
//! an instance without tags in the caller's own account, so the decision and
//! its message are the same whether or not the instance exists.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use eic_policy::{denial_message, evaluate, Decision, Policy, RequestContext};
use eic_wire::{ApiError, ErrorCode, KeyTarget, PushRequest};

use crate::audit::format_iso8601;
use crate::config::{Config, ConfigError};
use crate::metrics::Metrics;
use crate::registry::{Endpoint, Instance, Principal, Registry};
use crate::tunnel::request::OpenTunnelRequest;

/// The IAM action that lets a principal play back an instance's session
/// recordings in the console.
pub const READ_RECORDING: &str = "eic:ReadRecording";

/// Who asks, from where and when: what the global condition keys
/// (`aws:SourceIp`, `aws:SecureTransport`, `aws:CurrentTime`, the
/// principal's tags) are made of.
#[derive(Clone, Copy)]
pub struct Caller<'a> {
    pub principal: &'a Principal,
    pub source_ip: IpAddr,
    pub secure_transport: bool,
    pub now: SystemTime,
}

pub struct Authorizer {
    region: String,
    /// Principal ARN → its identity policies.
    identity: HashMap<String, Vec<Policy>>,
    /// Account id → its boundary policies, if it has any.
    boundaries: HashMap<String, Vec<Policy>>,
    /// Where each decision is counted (`eic_policy_decisions_total`).
    metrics: Option<Arc<Metrics>>,
}

impl Authorizer {
    /// Parses every policy in the configuration; one that does not parse
    /// stops the server from starting, naming where it is.
    pub fn from_config(config: &Config, registry: &Registry) -> Result<Authorizer, ConfigError> {
        let parse_all = |owner: &str, texts: &[String]| -> Result<Vec<Policy>, ConfigError> {
            texts
                .iter()
                .enumerate()
                .map(|(i, text)| {
                    Policy::parse(text)
                        .map_err(|e| ConfigError::Invalid(format!("{owner}, policies[{i}]: {e}")))
                })
                .collect()
        };
        let mut identity = HashMap::new();
        for p in &config.principals {
            identity.insert(
                p.arn.clone(),
                parse_all(&format!("principal {}", p.arn), &p.policies)?,
            );
        }
        let mut boundaries = HashMap::new();
        for a in &config.accounts {
            if !a.boundary_policies.is_empty() {
                boundaries.insert(
                    a.id.clone(),
                    parse_all(&format!("account {} boundary", a.id), &a.boundary_policies)?,
                );
            }
        }
        Ok(Authorizer {
            region: registry.region.clone(),
            identity,
            boundaries,
            metrics: None,
        })
    }

    /// Allows the push or refuses it with IAM's AccessDeniedException.
    pub fn authorize(
        &self,
        principal: &Principal,
        push: &PushRequest,
        visible_instance: Option<&Instance>,
        source_ip: IpAddr,
        secure_transport: bool,
        now: SystemTime,
    ) -> Result<(), ApiError> {
        let os_user = match &push.target {
            KeyTarget::OsUser(user) => Some(user.as_str()),
            KeyTarget::SerialPort(_) => None,
        };
        let caller = Caller {
            principal,
            source_ip,
            secure_transport,
            now,
        };
        self.allows(
            &caller,
            push.operation.iam_action(),
            &push.instance_id,
            os_user,
            visible_instance,
        )
        .map_err(|message| ApiError::new(ErrorCode::AccessDeniedException, message))
    }

    /// Whether the caller may take `action` on instance `instance_id` (as
    /// `os_user`, with `visible_instance`'s tags and account when it can
    /// see it): `Err` is IAM's reason. The console asks it before it shows
    /// a button (a push's action) or plays a recording ([`READ_RECORDING`]).
    pub fn allows(
        &self,
        caller: &Caller<'_>,
        action: &str,
        instance_id: &str,
        os_user: Option<&str>,
        visible_instance: Option<&Instance>,
    ) -> Result<(), String> {
        let Caller {
            principal,
            source_ip,
            secure_transport,
            now,
        } = *caller;
        let account = visible_instance.map_or(principal.account.as_str(), |i| &i.account);
        let resource = format!(
            "arn:aws:ec2:{}:{account}:instance/{instance_id}",
            self.region
        );
        let mut ctx = RequestContext::new(action, resource.as_str());
        if let Some(user) = os_user {
            ctx.set("ec2:osuser", user.to_owned());
        }
        if let Some(instance) = visible_instance {
            for (tag, value) in &instance.tags {
                ctx.set_resource_tag(tag, value.clone());
            }
        }
        global_keys(&mut ctx, principal, source_ip, secure_transport, now);

        let decision = self.decide(principal, &ctx);
        match denial_message(&principal.arn, action, &resource, decision) {
            None => Ok(()),
            Some(message) => Err(message),
        }
    }

    /// Decides an action without resource-level permissions (resource
    /// `*`), such as `ec2:DescribeInstances`: `None` when allowed, else
    /// IAM's reason, e.g. `because no identity-based policy allows the
    /// ec2:DescribeInstances action`.
    pub fn authorize_unscoped(
        &self,
        principal: &Principal,
        action: &str,
        source_ip: IpAddr,
        secure_transport: bool,
        now: SystemTime,
    ) -> Option<String> {
        let mut ctx = RequestContext::new(action, "*");
        global_keys(&mut ctx, principal, source_ip, secure_transport, now);
        let decision = self.decide(principal, &ctx);
        let message = denial_message(&principal.arn, action, "*", decision)?;
        let prefix = format!(
            "User: {} is not authorized to perform: {action} on resource: * ",
            principal.arn
        );
        Some(
            message
                .strip_prefix(&prefix)
                .map_or(message.clone(), str::to_owned),
        )
    }

    /// Allows `ec2-instance-connect:OpenTunnel` on the endpoint's ARN with
    /// AWS's condition keys (`remotePort`, `privateIpAddress`,
    /// `maxTunnelDuration`: the duration asked for, or the default), or
    /// gives IAM's denial message. An endpoint the caller cannot see is
    /// authorized as one without tags in the caller's account.
    pub fn authorize_open_tunnel(
        &self,
        principal: &Principal,
        tunnel: &TunnelAsked<'_>,
        source_ip: IpAddr,
        secure_transport: bool,
        now: SystemTime,
    ) -> Result<(), String> {
        const ACTION: &str = "ec2-instance-connect:OpenTunnel";
        let TunnelAsked {
            asked,
            duration,
            visible_endpoint,
        } = *tunnel;
        let resource = match visible_endpoint {
            Some(endpoint) => endpoint.arn.clone(),
            None => format!(
                "arn:aws:ec2:{}:{}:instance-connect-endpoint/{}",
                self.region, principal.account, asked.endpoint_id
            ),
        };
        let mut ctx = RequestContext::new(ACTION, resource.as_str());
        ctx.set(
            "ec2-instance-connect:remotePort",
            asked.remote_port.to_string(),
        );
        ctx.set(
            "ec2-instance-connect:privateIpAddress",
            asked.private_ip.to_string(),
        );
        ctx.set(
            "ec2-instance-connect:maxTunnelDuration",
            duration.as_secs().to_string(),
        );
        if let Some(endpoint) = visible_endpoint {
            for (tag, value) in &endpoint.tags {
                ctx.set_resource_tag(tag, value.clone());
            }
        }
        global_keys(&mut ctx, principal, source_ip, secure_transport, now);
        let decision = self.decide(principal, &ctx);
        match denial_message(&principal.arn, ACTION, &resource, decision) {
            None => Ok(()),
            Some(message) => Err(message),
        }
    }

    fn decide(&self, principal: &Principal, ctx: &RequestContext) -> Decision {
        let identity = self
            .identity
            .get(&principal.arn)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let boundary = self.boundaries.get(&principal.account).map(Vec::as_slice);
        let decision = evaluate(identity, boundary, ctx);
        if let Some(metrics) = &self.metrics {
            metrics.policy_decision(decision);
        }
        decision
    }

    pub fn counted(self, metrics: Arc<Metrics>) -> Authorizer {
        Authorizer {
            metrics: Some(metrics),
            ..self
        }
    }
}

/// What an OpenTunnel is decided on: the request, its effective duration,
/// and the endpoint if the caller can see it.
#[derive(Clone, Copy)]
pub struct TunnelAsked<'a> {
    pub asked: &'a OpenTunnelRequest,
    pub duration: Duration,
    pub visible_endpoint: Option<&'a Endpoint>,
}

/// The global condition keys every request carries.
fn global_keys(
    ctx: &mut RequestContext,
    principal: &Principal,
    source_ip: IpAddr,
    secure_transport: bool,
    now: SystemTime,
) {
    for (tag, value) in &principal.tags {
        ctx.set(&format!("aws:PrincipalTag/{tag}"), value.clone());
    }
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    ctx.set("aws:CurrentTime", format_iso8601(now));
    ctx.set("aws:EpochTime", since_epoch.as_secs().to_string());
    ctx.set("aws:SourceIp", source_ip.to_string());
    ctx.set("aws:PrincipalArn", principal.arn.clone());
    ctx.set("aws:PrincipalAccount", principal.account.clone());
    ctx.set(
        "aws:SecureTransport",
        if secure_transport { "true" } else { "false" },
    );
    if principal.arn.contains(":user/") {
        // IAM defines aws:username for IAM users only.
        ctx.set("aws:username", principal.name.clone());
    }
}
