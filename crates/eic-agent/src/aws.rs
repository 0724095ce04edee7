//! AWS mode of `eic authorized-keys`: on a real EC2 instance with no eic
//! agent configuration, what AWS's `eic_curl_authorized_keys` and
//! `eic_parse_authorized_keys` do together (IMDSv2, the EC2 identity check,
//! the zone and domain checks, the signer chain from the system trust store
//! with required OCSP staples, the blob), in one process that spawns
//! nothing and writes no file.
//!
//! Differences from the scripts, on purpose: the user name is checked
//! against the API's `InstanceOSUser` pattern before it reaches a URL, and
//! "no keys" (the HEAD answering anything but 200) is a quiet exit 0 with no
//! log line.
//!
//! Test-only environment overrides, so that a test can stand in for EC2;
//! they are compiled out of release builds, since each one moves what this
//! mode trusts:
//! - `EIC_IMDS_ENDPOINT`: the IMDS base URL (default `http://169.254.169.254`);
//! - `EIC_SYS_ROOT`: where `hypervisor/uuid` and
//!   `devices/virtual/dmi/id/board_asset_tag` are read (default `/sys`);
//! - `EIC_TRUST_DIR`: the trust store directory (default `/etc/ssl/certs`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use eic_keyblob::OcspStaples;

use super::{
    trust_anchors, verify_and_print, Fetched, Log, MAX_RESPONSE_BYTES, REQUEST_TIMEOUT,
    TOTAL_BUDGET,
};

const DEFAULT_IMDS: &str = "http://169.254.169.254";
const DEFAULT_SYS_ROOT: &str = "/sys";
const DEFAULT_TRUST_DIR: &str = "/etc/ssl/certs";

/// The partitions' domains the official script accepts (1.1.13): a
/// publicly trusted certificate for a signer under any other domain must
/// not be enough to be believed.
const ALLOWED_DOMAINS: &[&str] = &[
    "amazonaws.com",
    "amazonaws.com.cn",
    "c2s.ic.gov",
    "sc2s.sgov.gov",
];

/// How a run ends: an exit code, and a message for the log when the end is
/// a failure worth a line.
enum Stop {
    /// Not for us (not EC2, no such user, no keys): exit 0, nothing printed.
    Quiet,
    /// Refused, logged as the scripts log it, with their exit code.
    Fail(u8, String),
}

pub(super) fn run(user: &str, fingerprint: Option<&str>, log: &Log) -> ExitCode {
    match fetch_and_verify(user, fingerprint, log) {
        Ok(code) => code,
        Err(Stop::Quiet) => ExitCode::SUCCESS,
        Err(Stop::Fail(code, message)) => {
            log.failure(&message);
            ExitCode::from(code)
        }
    }
}

fn fetch_and_verify(user: &str, fingerprint: Option<&str>, log: &Log) -> Result<ExitCode, Stop> {
    // An empty %f (an sshd without fingerprints) is no filter, as in the parser.
    let fingerprint = fingerprint.filter(|f| !f.is_empty());
    let imds = Imds::new();
    // Step 1: IMDSv2 only, as the scripts (no fallback to v1).
    let token = imds.token()?;
    // Step 2.
    let instance_id = imds.get(&token, "instance-id/")?;
    if !is_instance_id(&instance_id) {
        return Err(Stop::Quiet);
    }
    // Step 3: the same answers from a host that is not EC2 must not be
    // believed.
    if !on_ec2(&instance_id) {
        log.info("EC2 Instance Connect was invoked on a non-instance and will do nothing.");
        return Err(Stop::Quiet);
    }
    // Step 4, plus the sanitising the scripts lack: a name outside what the
    // API accepts can have no keys, and never reaches a URL.
    if user.is_empty() {
        return Err(Stop::Fail(1, "no user name given".into()));
    }
    if !eic_wire::is_valid_os_user(user) || !user_exists(user) {
        return Err(Stop::Quiet);
    }
    // Step 5: no keys is the ordinary case.
    if imds.head(&token, &format!("managed-ssh-keys/active-keys/{user}/"))? != 200 {
        return Err(Stop::Quiet);
    }
    // Steps 6 to 8.
    let zone = imds.get(&token, "placement/availability-zone/")?;
    let Some(region) = region_of(&zone) else {
        return Err(Stop::Fail(
            255,
            format!("EC2 Instance Connect found an unexpected availability zone: {zone}"),
        ));
    };
    let domain = imds.get(&token, "services/domain/")?;
    if !ALLOWED_DOMAINS.contains(&domain.as_str()) {
        return Err(Stop::Fail(
            255,
            format!("EC2 Instance Connect was invoked with an unknown domain: {domain}"),
        ));
    }
    let expected_cn = format!("managed-ssh-signer.{region}.{domain}");
    // Steps 10 to 13, into memory instead of /dev/shm.
    let chain = imds.get(&token, "managed-ssh-keys/signer-cert/")?;
    if chain.is_empty() {
        return Err(Stop::Fail(1, "IMDS served an empty signer chain".into()));
    }
    let mut staples = OcspStaples::new();
    for name in imds
        .get(&token, "managed-ssh-keys/signer-ocsp/")?
        .split_whitespace()
    {
        // The name goes into a URL and is an uppercase SHA-1: anything else
        // is not a staple the chain check could use.
        if name.len() != 40 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        let b64 = imds.get(&token, &format!("managed-ssh-keys/signer-ocsp/{name}"))?;
        // `base64 -d` in the script takes wrapped lines too.
        let b64: String = b64.split_whitespace().collect();
        let der = STANDARD
            .decode(b64.as_bytes())
            .map_err(|_| Stop::Fail(1, format!("OCSP staple {name} is not base64")))?;
        staples.insert(name.to_ascii_uppercase(), der);
    }
    let blob = match imds.fetch(&token, &format!("managed-ssh-keys/active-keys/{user}/"))? {
        (200, blob) => blob,
        // The keys expired between the HEAD and now: still "no keys".
        (404, _) => return Err(Stop::Quiet),
        (status, _) => {
            return Err(Stop::Fail(
                1,
                format!("IMDS answered {status} for the keys"),
            ))
        }
    };
    // Step 14: the parser's checks.
    let trust_dir = env_path("EIC_TRUST_DIR", DEFAULT_TRUST_DIR);
    let anchors = trust_anchors(&trust_dir).map_err(|e| Stop::Fail(1, e))?;
    verify_and_print(
        &Fetched {
            chain: &chain,
            staples: &staples,
            blob: &blob,
        },
        &anchors,
        &expected_cn,
        &instance_id,
        fingerprint,
        log,
    )
    .map_err(|e| Stop::Fail(1, e))
}

/// IMDS over one keep-alive agent, each request capped at a second and all
/// of them together at the run's five.
struct Imds {
    agent: ureq::Agent,
    base: String,
    deadline: Instant,
}

impl Imds {
    fn new() -> Imds {
        let base = test_override("EIC_IMDS_ENDPOINT")
            .and_then(|v| v.into_string().ok())
            .unwrap_or_else(|| DEFAULT_IMDS.into());
        Imds {
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                // IMDS is link-local: a proxy from the environment would see
                // the token and could answer in IMDS's name.
                .proxy(None)
                .build()
                .new_agent(),
            base: base.trim_end_matches('/').to_owned(),
            deadline: Instant::now() + TOTAL_BUDGET,
        }
    }

    fn timeout(&self) -> Result<std::time::Duration, Stop> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Stop::Fail(1, "IMDS did not answer within 5 seconds".into()));
        }
        Ok(left.min(REQUEST_TIMEOUT))
    }

    fn token(&self) -> Result<String, Stop> {
        let url = format!("{}/latest/api/token", self.base);
        let mut response = self
            .agent
            .put(&url)
            .header("X-aws-ec2-metadata-token-ttl-seconds", "5")
            .config()
            .timeout_global(Some(self.timeout()?))
            .build()
            .send_empty()
            .map_err(|e| unreachable_imds(&url, e))?;
        if response.status() != 200 {
            return Err(Stop::Fail(
                1,
                format!("IMDS refused a token: {}", response.status()),
            ));
        }
        let token = read_text(&mut response, &url)?
            .trim_end_matches('\n')
            .to_owned();
        if token.is_empty() {
            return Err(Stop::Fail(
                255,
                "EC2 Instance Connect could not get an IMDSv2 token".into(),
            ));
        }
        Ok(token)
    }

    /// `GET /latest/meta-data/<path>` as the script's `$(curl -f …)`:
    /// anything but 200 fails, and trailing newlines are dropped.
    fn get(&self, token: &str, path: &str) -> Result<String, Stop> {
        match self.fetch(token, path)? {
            (200, text) => Ok(text.trim_end_matches('\n').to_owned()),
            (status, _) => Err(Stop::Fail(
                1,
                format!(
                    "IMDS answered {status} for {}/latest/meta-data/{path}",
                    self.base
                ),
            )),
        }
    }

    /// `GET /latest/meta-data/<path>`: the status, and the body of a 200
    /// as served (the blob's signatures cover its line ends).
    fn fetch(&self, token: &str, path: &str) -> Result<(u16, String), Stop> {
        let url = format!("{}/latest/meta-data/{path}", self.base);
        let mut response = self
            .agent
            .get(&url)
            .header("X-aws-ec2-metadata-token", token)
            .config()
            .timeout_global(Some(self.timeout()?))
            .build()
            .call()
            .map_err(|e| unreachable_imds(&url, e))?;
        let status = response.status().as_u16();
        if status != 200 {
            return Ok((status, String::new()));
        }
        Ok((status, read_text(&mut response, &url)?))
    }

    fn head(&self, token: &str, path: &str) -> Result<u16, Stop> {
        let url = format!("{}/latest/meta-data/{path}", self.base);
        let response = self
            .agent
            .head(&url)
            .header("X-aws-ec2-metadata-token", token)
            .config()
            .timeout_global(Some(self.timeout()?))
            .build()
            .call()
            .map_err(|e| unreachable_imds(&url, e))?;
        Ok(response.status().as_u16())
    }
}

fn unreachable_imds(url: &str, e: ureq::Error) -> Stop {
    Stop::Fail(1, format!("cannot reach IMDS at {url}: {e}"))
}

fn read_text(response: &mut http::Response<ureq::Body>, url: &str) -> Result<String, Stop> {
    let body = response
        .body_mut()
        .with_config()
        .limit(MAX_RESPONSE_BYTES)
        .read_to_vec()
        .map_err(|e| Stop::Fail(1, format!("unreadable answer from {url}: {e}")))?;
    String::from_utf8(body)
        .map_err(|_| Stop::Fail(1, format!("{url} answered with text that is not UTF-8")))
}

fn env_path(name: &str, default: &str) -> PathBuf {
    test_override(name).map_or_else(|| PathBuf::from(default), PathBuf::from)
}

/// The test-only overrides exist in debug builds only: a release binary
/// never lets its environment move what it trusts.
fn test_override(name: &str) -> Option<std::ffi::OsString> {
    if cfg!(debug_assertions) {
        std::env::var_os(name)
    } else {
        None
    }
}

/// `^i-[0-9a-f]{8,32}$`.
fn is_instance_id(id: &str) -> bool {
    id.strip_prefix("i-").is_some_and(|hex| {
        (8..=32).contains(&hex.len()) && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// Xen's hypervisor uuid starts with "ec2"; on Nitro, where there is none,
/// the DMI board asset tag is the instance id.
fn on_ec2(instance_id: &str) -> bool {
    let root = env_path("EIC_SYS_ROOT", DEFAULT_SYS_ROOT);
    let uuid = root.join("hypervisor/uuid");
    if uuid.exists() {
        return std::fs::read(&uuid).is_ok_and(|bytes| bytes.starts_with(b"ec2"));
    }
    std::fs::read_to_string(root.join("devices/virtual/dmi/id/board_asset_tag"))
        .is_ok_and(|tag| tag.trim() == instance_id)
}

fn user_exists(user: &str) -> bool {
    crate::os::user_gid(user).is_some()
}

/// The region of a zone matching `^([a-z]+-){2,3}[0-9][a-z]$`: the zone
/// without its letter. Local and Wavelength zones fail, as in the script.
fn region_of(zone: &str) -> Option<&str> {
    let b = zone.as_bytes();
    let [body @ .., digit, letter] = b else {
        return None;
    };
    if !digit.is_ascii_digit() || !letter.is_ascii_lowercase() {
        return None;
    }
    let words: Vec<&[u8]> = body.split(|&c| c == b'-').collect();
    // "a-b-" splits into ["a", "b", ""]: 2 or 3 words and the empty tail.
    let (Some((tail, words)), true) = (words.split_last(), (3..=4).contains(&words.len())) else {
        return None;
    };
    let words_ok = words
        .iter()
        .all(|w| !w.is_empty() && w.iter().all(u8::is_ascii_lowercase));
    (tail.is_empty() && words_ok).then(|| &zone[..zone.len() - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_follow_the_script_regex() {
        assert_eq!(region_of("us-east-1a"), Some("us-east-1"));
        assert_eq!(region_of("us-gov-west-1b"), Some("us-gov-west-1"));
        assert_eq!(region_of("cn-north-1a"), Some("cn-north-1"));
        for bad in [
            "us-west-2-lax-1a",
            "us-east-1",
            "useast1a",
            "a-b-c-d-1a",
            "US-east-1a",
            "us--1a",
            "us-east-12a",
            "-east-1a",
            "",
        ] {
            assert_eq!(region_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn instance_ids_follow_the_script_regex() {
        assert!(is_instance_id("i-abcd1234"));
        assert!(is_instance_id("i-0123456789abcdef0"));
        for bad in ["i-abc123", "i-ABCD1234", "abcd1234", "i-abcd1234/", ""] {
            assert!(!is_instance_id(bad), "{bad}");
        }
    }
}
