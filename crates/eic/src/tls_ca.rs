//! The instance-facing listener's TLS trust anchor. The listener serves
//! plain http until `[instance_api] tls` lands, so there is none yet.

use crate::config::Config;
use crate::data_dir::DataDir;

pub struct TrustAnchor {
    pub pem: String,
    pub fingerprint: String,
}

pub fn instance_api_trust(
    _config: &Config,
    _data_dir: &DataDir,
) -> anyhow::Result<Option<TrustAnchor>> {
    Ok(None)
}
