//! eic mode of `eic authorized-keys --config AGENT.toml USER [FINGERPRINT]`:
//! one request to eic's instance-facing listener with this instance's
//! credential, which answers blob, chain and staples together.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use eic_keyblob::OcspStaples;
use serde::Deserialize;

use super::{
    pem_certificates, verify_and_print, AgentConfig, Fetched, Log, MAX_RESPONSE_BYTES,
    REQUEST_TIMEOUT, TOTAL_BUDGET,
};

#[derive(Deserialize)]
struct KeysResponse {
    blob: String,
    chain: String,
    staples: BTreeMap<String, String>,
}

/// Fetches and verifies the keys of `user`; `Err` is the failure to log.
pub(super) fn run(
    config_path: &Path,
    user: &str,
    fingerprint: Option<&str>,
    log: &Log,
) -> Result<ExitCode, String> {
    let text = std::fs::read_to_string(config_path)
        .map_err(|e| format!("cannot read {}: {e}", config_path.display()))?;
    let config: AgentConfig =
        toml::from_str(&text).map_err(|e| format!("{}: {e}", config_path.display()))?;
    // A name outside what the API accepts can have no keys; it never
    // reaches a URL.
    if !eic_wire::is_valid_os_user(user) {
        return Ok(ExitCode::SUCCESS);
    }
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(REQUEST_TIMEOUT.min(TOTAL_BUDGET)))
        .http_status_as_error(false)
        .build()
        .new_agent();
    let url = format!(
        "{}/eic/v1/authorized-keys/{user}",
        config.endpoint.trim_end_matches('/')
    );
    let mut response = agent
        .get(&url)
        .header(
            "Authorization",
            &format!("Bearer {}", config.credential.expose()),
        )
        .call()
        .map_err(|e| format!("cannot reach {}: {e}", config.endpoint))?;
    match response.status().as_u16() {
        200 => {}
        // No keys is the ordinary case: no output, no noise.
        404 => return Ok(ExitCode::SUCCESS),
        401 => return Err("the server refused this instance's credential".into()),
        status => {
            // The API listener answers every path in AWS's error shape: the
            // likeliest mistake is its port in place of the instance API's.
            let hint = match response.headers().get("x-amzn-errortype") {
                Some(_) => "which is eic's API listener; the agent's endpoint must be the instance-api listener ([instance_api] listen, or --endpoint of eic agent-config)",
                None => "is it the instance-api listener of an eic server?",
            };
            return Err(format!(
                "{} answered {status} to GET {url}, {hint}",
                config.endpoint
            ));
        }
    }
    let body = response
        .body_mut()
        .with_config()
        .limit(MAX_RESPONSE_BYTES)
        .read_to_vec()
        .map_err(|e| format!("unreadable answer from the server: {e}"))?;
    let body: KeysResponse = serde_json::from_slice(&body)
        .map_err(|e| format!("unreadable answer from the server: {e}"))?;
    let anchors = pem_certificates(&config.trust_anchor);
    let mut staples = OcspStaples::new();
    for (name, b64) in &body.staples {
        let der = STANDARD
            .decode(b64.trim())
            .map_err(|_| format!("OCSP staple {name} is not base64"))?;
        staples.insert(name.clone(), der);
    }
    verify_and_print(
        &Fetched {
            chain: &body.chain,
            staples: &staples,
            blob: &body.blob,
        },
        &anchors,
        &config.signer_cn,
        &config.instance_id,
        fingerprint,
        log,
    )
}
