//! IAM policy parsing and evaluation for eic, the self-hosted EC2 Instance
//! Connect. Pure: no I/O, no clocks, no globals. Callers put everything a
//! policy may look at (`aws:CurrentTime` included) into a [`RequestContext`].
//!
//! ```
//! use eic_policy::{denial_message, evaluate, Policy, RequestContext};
//!
//! let policy = Policy::parse(
//!     r#"{
//!         "Version": "2012-10-17",
//!         "Statement": {
//!             "Effect": "Allow",
//!             "Action": "ec2-instance-connect:SendSSHPublicKey",
//!             "Resource": "arn:aws:ec2:*:111122223333:instance/*",
//!             "Condition": {"StringEquals": {"ec2:osuser": "ec2-user", "aws:ResourceTag/Team": "dev"}}
//!         }
//!     }"#,
//! )?;
//! let mut ctx = RequestContext::new(
//!     "ec2-instance-connect:SendSSHPublicKey",
//!     "arn:aws:ec2:us-west-2:111122223333:instance/i-0123456789abcdef0",
//! )
//! .with("ec2:osuser", "root")
//! .with("aws:SourceIp", "203.0.113.7");
//! ctx.set_resource_tag("Team", "dev");
//!
//! let decision = evaluate(&[policy], None, &ctx);
//! assert!(!decision.is_allowed());
//! let message = denial_message(
//!     "arn:aws:iam::111122223333:user/alice",
//!     ctx.action(),
//!     ctx.resource(),
//!     decision,
//! );
//! assert!(message.unwrap().ends_with(
//!     "because no identity-based policy allows the ec2-instance-connect:SendSSHPublicKey action"
//! ));
//! # Ok::<(), eic_policy::PolicyError>(())
//! ```
//!
//! # Evaluation order
//!
//! [`evaluate`] follows AWS's policy evaluation logic for a request within one
//! account that is governed by identity-based policies and, optionally, a
//! permissions boundary:
//!
//! 1. Every statement of every identity policy and boundary policy is
//!    checked. A statement applies when the action matches `Action` (or none
//!    of `NotAction`), the resource matches `Resource` (or none of
//!    `NotResource`), and every condition holds. An applicable `Deny`
//!    anywhere is an explicit deny; it is reported against the identity
//!    policies if one of them denies, else against the boundary.
//! 2. Without an applicable `Allow` in an identity policy the request is
//!    implicitly denied ("no identity-based policy allows").
//! 3. With a boundary, the request must also be allowed by a boundary
//!    statement, else it is implicitly denied ("no permissions boundary
//!    allows"). A boundary never grants anything by itself.
//! 4. Otherwise it is allowed.
//!
//! Conditions follow IAM's documented rules: operators in a block, and keys
//! within an operator, are ANDed; the values of one key are ORed (NORed for
//! negated operators such as `StringNotEquals`). A key missing from the
//! request fails a positive operator and passes a negated one; `…IfExists`
//! passes on a missing key; `ForAllValues:` passes and `ForAnyValue:` fails on
//! a missing or empty key; `Null` tests presence. Condition key names are
//! case-insensitive, values case-sensitive except for the `IgnoreCase`
//! operators; action names are case-insensitive; ARNs are case-sensitive.
//!
//! # Deliberate deviations and readings of ambiguous documentation
//!
//! - Only identity-based policies and boundaries exist here, so `Principal`
//!   and `NotPrincipal` are parse errors rather than silently ignored.
//! - `BinaryEquals` is rejected as unsupported: no EC2 Instance Connect key is
//!   binary, and accepting it would mean evaluating something never tested.
//! - Duplicate JSON keys are rejected; a JSON parser that kept the last one
//!   could turn a `Deny` into an `Allow` unnoticed.
//! - Operator, qualifier and element names and `Effect` values are
//!   case-sensitive; errors suggest the intended spelling.
//! - A policy variable that cannot be resolved (absent key without default,
//!   or a multi-valued key) makes that one policy value match nothing. So a
//!   negated operator whose only value is unresolvable passes, which keeps
//!   `Deny … StringNotEquals ${aws:PrincipalTag/x}` denying principals that
//!   lack the tag.
//! - Without a set qualifier, a multi-valued key passes a positive operator if
//!   any value matches and a negated operator if no value matches.
//! - Numbers compare as `f64`; dates compare at nanosecond precision, and a
//!   time without a zone is UTC. An IPv4-mapped IPv6 request address is
//!   matched as the IPv4 address it carries.
//! - In `Resource`, wildcards stay within one ARN segment except that a `*`
//!   ending a segment may span colons, and everything after the fifth colon
//!   (the resource part) matches freely. `ArnLike` compares the six
//!   components separately; a pattern with fewer components matches its last
//!   one against the rest of the ARN, so `*` matches any ARN.
//! - Empty lists (`"Action": []`, a condition key with `[]`) are rejected
//!   rather than read as "match nothing".
//!
//! Wildcard matching never backtracks exponentially (see the `glob` module),
//! and patterns without policy variables are compiled once at parse time.

mod condition;
mod context;
mod error;
mod glob;
mod json;
mod policy;
mod scalar;
mod template;

pub use context::RequestContext;
pub use error::{PolicyError, StatementRef};
pub use policy::{Policy, Version};

/// Which kind of policy decided a denial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyType {
    /// The identity-based policies attached to the principal.
    Identity,
    /// The principal's permissions boundary.
    PermissionsBoundary,
}

/// The outcome of [`evaluate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// A `Deny` statement applied.
    ExplicitDeny(PolicyType),
    /// No `Allow` statement of that policy type applied.
    ImplicitDeny(PolicyType),
}

impl Decision {
    pub fn is_allowed(self) -> bool {
        self == Decision::Allow
    }
}

/// Decides a request against the principal's identity policies and, if it
/// has one, its permissions boundary (a set of policies, all of which count).
pub fn evaluate(
    identity_policies: &[Policy],
    boundary: Option<&[Policy]>,
    ctx: &RequestContext,
) -> Decision {
    let identity = policy::verdict(identity_policies, ctx);
    if identity.denied {
        return Decision::ExplicitDeny(PolicyType::Identity);
    }
    let boundary = boundary.map(|b| policy::verdict(b, ctx));
    if boundary.is_some_and(|b| b.denied) {
        return Decision::ExplicitDeny(PolicyType::PermissionsBoundary);
    }
    if !identity.allowed {
        return Decision::ImplicitDeny(PolicyType::Identity);
    }
    if boundary.is_some_and(|b| !b.allowed) {
        return Decision::ImplicitDeny(PolicyType::PermissionsBoundary);
    }
    Decision::Allow
}

/// IAM's `AccessDeniedException` message for a denial, e.g.
/// `User: arn:aws:iam::111122223333:user/alice is not authorized to perform:
/// ec2-instance-connect:SendSSHPublicKey on resource:
/// arn:aws:ec2:us-west-2:111122223333:instance/i-0123 because no
/// identity-based policy allows the ec2-instance-connect:SendSSHPublicKey
/// action`. `None` for [`Decision::Allow`].
pub fn denial_message(
    principal_arn: &str,
    action: &str,
    resource: &str,
    decision: Decision,
) -> Option<String> {
    let reason = match decision {
        Decision::Allow => return None,
        Decision::ExplicitDeny(PolicyType::Identity) => {
            "with an explicit deny in an identity-based policy".to_owned()
        }
        Decision::ExplicitDeny(PolicyType::PermissionsBoundary) => {
            "with an explicit deny in a permissions boundary".to_owned()
        }
        Decision::ImplicitDeny(PolicyType::Identity) => {
            format!("because no identity-based policy allows the {action} action")
        }
        Decision::ImplicitDeny(PolicyType::PermissionsBoundary) => {
            format!("because no permissions boundary allows the {action} action")
        }
    };
    Some(format!(
        "User: {principal_arn} is not authorized to perform: {action} on resource: {resource} {reason}"
    ))
}
