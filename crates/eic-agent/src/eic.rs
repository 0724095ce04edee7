//! eic mode of `eic authorized-keys --config AGENT.toml USER [FINGERPRINT]`:
//! one request to eic's instance-facing listener with this instance's
//! credential, which answers blob, chain and staples together. An https
//! endpoint is trusted under the config's `tls_ca` only.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use eic_keyblob::OcspStaples;
use serde::Deserialize;

use super::http::{Client, Trust};
use super::{
    pem_certificates, verify_and_print, AgentConfig, Fetched, Log, REQUEST_TIMEOUT, TOTAL_BUDGET,
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
    let timeout = REQUEST_TIMEOUT.min(TOTAL_BUDGET);
    let https = config.endpoint.starts_with("https://");
    let client = match (&config.tls_ca, https) {
        (Some(ca), true) => Client::new(Trust::Anchors(ca.clone()), false, timeout)
            .map_err(|e| format!("{}: tls_ca: {e:#}", config_path.display()))?,
        (None, true) => {
            return Err(format!(
                "{} has an https endpoint but no tls_ca (the CA of the instance-api listener's certificate, which eic agent-config writes): refusing to trust anything else",
                config_path.display()
            ))
        }
        // A TLS CA given for a plain endpoint: the config was meant for
        // TLS, and fetching without it would be a silent downgrade.
        (Some(_), false) => {
            return Err(format!(
                "{} has a tls_ca but a plain http endpoint: refusing to fetch keys without TLS",
                config_path.display()
            ))
        }
        (None, false) => Client::plain_http(timeout),
    };
    let url = format!(
        "{}/eic/v1/authorized-keys/{user}",
        config.endpoint.trim_end_matches('/')
    );
    let request = http::Request::get(&url)
        .header(
            "Authorization",
            format!("Bearer {}", config.credential.expose()),
        )
        .body(Vec::new())
        .map_err(|e| format!("{url}: {e}"))?;
    let response = client
        .send(request)
        .map_err(|e| format!("{}: {e:#}", config.endpoint))?
        .response;
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
    let body: KeysResponse = serde_json::from_slice(response.body())
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
