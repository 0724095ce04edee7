//! The user side: `eic ssh`, `eic proxy`, `eic known-hosts` and `eic
//! ssh-config`, the commands a person runs on their own machine to log in.
//!
//! Credentials, region, profiles and endpoints come from the standard AWS
//! configuration chain through `aws-config` ([`Aws::load`]), so whatever
//! works for the AWS CLI (environment, shared files, SSO, assume-role,
//! `AWS_ENDPOINT_URL*`) works here. The calls are the ones AWS's own tools
//! make: EC2 DescribeInstances ([`lookup`]), SendSSHPublicKey or
//! SendSerialConsoleSSHPublicKey; plus eic's one extension,
//! DescribeInstanceHostKeys ([`host_keys`]), so that the host is verified
//! from what it registered and no prompt is shown.
//!
//! - [`ssh`]: `eic ssh`, a fresh key in memory, pushed, and the system ssh;
//! - [`proxy`]: `eic proxy` (ssh's ProxyCommand) and `eic known-hosts`
//!   (its KnownHostsCommand), for plain ssh, scp, sftp, rsync and git;
//! - [`ssh_config`]: `eic ssh-config`, the ssh_config block wiring them;
//! - [`tunnel`]: an Instance Connect Endpoint's tunnel (`eic open-tunnel`,
//!   and `--tunnel` of `eic ssh` and `eic proxy`);
//! - [`known_hosts`], [`session_key`]: the pure parts (known_hosts lines, the
//!   session key).

pub mod host_keys;
pub mod known_hosts;
pub mod lookup;
pub mod proxy;
pub mod session_key;
pub mod ssh;
pub mod ssh_config;
pub mod tunnel;

use std::fmt::Display;

use anyhow::{anyhow, Context};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_sdk_ec2instanceconnect::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_types::service_config::ServiceConfigKey;
use clap::Args;

/// Where the AWS configuration chain is overridden on the command line.
#[derive(Args, Clone, Debug, Default)]
pub struct AwsArgs {
    /// The eic API's URL, for EC2 and EC2 Instance Connect alike (default: the AWS configuration's endpoint, e.g. AWS_ENDPOINT_URL).
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// The region (default: AWS_REGION, AWS_DEFAULT_REGION or the profile's).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// A named profile of the shared AWS config and credentials files.
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
}

impl AwsArgs {
    /// The same overrides as flags, for a command line that runs `eic`
    /// again (ssh's ProxyCommand).
    pub fn to_flags(&self) -> Vec<String> {
        let mut flags = Vec::new();
        for (flag, value) in [
            ("--endpoint-url", &self.endpoint_url),
            ("--region", &self.region),
            ("--profile", &self.profile),
        ] {
            if let Some(value) = value {
                flags.push(flag.to_owned());
                flags.push(value.clone());
            }
        }
        flags
    }
}

/// The loaded AWS configuration and the clients made from it.
pub struct Aws {
    pub ec2: aws_sdk_ec2::Client,
    pub instance_connect: aws_sdk_ec2instanceconnect::Client,
    /// Where EC2 Query calls go, for the one eic makes without the SDK.
    pub ec2_endpoint: String,
    pub region: String,
    /// Resolved once, so an SSO or assume-role source is asked once.
    pub credentials: Credentials,
}

impl Aws {
    pub async fn load(args: &AwsArgs) -> anyhow::Result<Aws> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(profile) = &args.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(region) = &args.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(url) = &args.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let config = loader.load().await;
        let region = config
            .region()
            .ok_or_else(|| {
                anyhow!("no region: give --region, set AWS_REGION, or set region in the profile")
            })?
            .to_string();
        let provider = config.credentials_provider().ok_or_else(no_credentials)?;
        let credentials = provider
            .provide_credentials()
            .await
            .map_err(|e| no_credentials().context(DisplayErrorContext(e).to_string()))?;
        let ec2_endpoint = ec2_endpoint(&config, args, &region);
        let config = config
            .into_builder()
            .credentials_provider(SharedCredentialsProvider::new(credentials.clone()))
            .build();
        Ok(Aws {
            ec2: aws_sdk_ec2::Client::new(&config),
            instance_connect: aws_sdk_ec2instanceconnect::Client::new(&config),
            ec2_endpoint,
            region,
            credentials,
        })
    }
}

fn no_credentials() -> anyhow::Error {
    anyhow!("no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, give --profile, or configure a profile (aws configure)")
}

/// The EC2 endpoint exactly as the SDK's EC2 client resolves it: the flag,
/// then `AWS_ENDPOINT_URL_EC2` or the profile's `services` section, then
/// `AWS_ENDPOINT_URL` or the profile's `endpoint_url`, then AWS's own.
fn ec2_endpoint(config: &SdkConfig, args: &AwsArgs, region: &str) -> String {
    if let Some(url) = &args.endpoint_url {
        return url.clone();
    }
    config
        .service_config()
        .and_then(|services| {
            ServiceConfigKey::builder()
                .service_id("EC2")
                .env("AWS_ENDPOINT_URL")
                .profile("endpoint_url")
                .build()
                .ok()
                .and_then(|key| services.load_config(key))
        })
        .or_else(|| config.endpoint_url().map(str::to_owned))
        .unwrap_or_else(|| format!("https://ec2.{region}.amazonaws.com"))
}

/// An API error as a user reads it: what was being done, what it means,
/// the service's own message (IAM's, for a refusal) and its code; never a
/// raw body.
pub fn api_error<E, R>(doing: impl Display, error: SdkError<E, R>) -> anyhow::Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    match &error {
        SdkError::ServiceError(service) => {
            let e = service.err();
            explain(
                doing,
                e.code().unwrap_or("Unknown"),
                e.message().unwrap_or(""),
            )
        }
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => anyhow!(
            "{doing}: cannot reach the API ({})",
            DisplayErrorContext(&error)
        ),
        _ => anyhow!("{doing}: {}", DisplayErrorContext(&error)),
    }
}

/// `doing: what the code means: message (code)`.
pub fn explain(doing: impl Display, code: &str, message: &str) -> anyhow::Error {
    let meaning = match code {
        "InvalidInstanceID.NotFound" | "EC2InstanceNotFoundException" => "no such instance",
        "InvalidInstanceID.Malformed" => "not an instance id",
        "UnauthorizedOperation" | "AccessDeniedException" | "AccessDenied" => "not authorized",
        "EC2InstanceUnavailableException" => "the instance is unavailable",
        "EC2InstanceStateInvalidException" => "the instance is not running",
        "AuthFailure"
        | "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "InvalidClientTokenId"
        | "ExpiredToken"
        | "ExpiredTokenException" => "the credentials were refused",
        "ThrottlingException" | "RequestLimitExceeded" => "throttled, try again shortly",
        "SerialConsoleAccessDisabledException" => "serial console access is disabled",
        "SerialConsoleSessionLimitExceededException" => "the serial console is in use",
        _ => "refused",
    };
    if message.is_empty() {
        anyhow!("{doing}: {meaning} ({code})")
    } else {
        anyhow!("{doing}: {meaning}: {message} ({code})")
    }
}

/// A current-thread runtime for one command.
pub fn block_on<T>(
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let done = runtime.block_on(work);
    // A read of stdin (a tunnel's) cannot be cancelled; the process is
    // about to exit, so nothing waits for it.
    runtime.shutdown_background();
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_say_what_they_mean_with_the_service_message_and_code() {
        let e = explain(
            "pushing the key to i-0123456789abcdef0",
            "AccessDeniedException",
            "User: arn:aws:iam::111122223333:user/bob is not authorized",
        );
        assert_eq!(
            e.to_string(),
            "pushing the key to i-0123456789abcdef0: not authorized: User: arn:aws:iam::111122223333:user/bob is not authorized (AccessDeniedException)"
        );
        assert_eq!(explain("x", "Weird", "").to_string(), "x: refused (Weird)");
    }

    #[test]
    fn overrides_become_flags_again() {
        let args = AwsArgs {
            endpoint_url: Some("http://127.0.0.1:8080".into()),
            region: None,
            profile: Some("dev".into()),
        };
        assert_eq!(
            args.to_flags(),
            [
                "--endpoint-url",
                "http://127.0.0.1:8080",
                "--profile",
                "dev"
            ]
        );
    }
}
