//! Parser mode of `eic authorized-keys`: AWS's `eic_parse_authorized_keys`
//! flags, for an instance whose own scripts fetch the blob.

use std::path::Path;
use std::process::ExitCode;

use eic_keyblob::OcspStaples;

use super::{trust_anchors, verify_and_print, AuthorizedKeysArgs, Fetched, Log};

/// AWS's `eic_parse_authorized_keys -x -p -o -d -s -i -c -a -v [-f]`.
pub(super) fn run(args: &AuthorizedKeysArgs, log: &Log) -> ExitCode {
    let run = || -> Result<ExitCode, String> {
        let (Some(blob_file), Some(chain), Some(instance_id), Some(cn), Some(ca), Some(ocsp_dir)) = (
            &args.blob_file,
            &args.chain,
            &args.instance_id,
            &args.signer_cn,
            &args.ca,
            &args.ocsp_dir,
        ) else {
            return Err("usage: eic authorized-keys -x true|false -p BLOB -o OPENSSL -d TMPDIR -s CHAIN_PEM -i INSTANCE_ID -c SIGNER_CN -a CA_PATH -v OCSP_DIR [-f FINGERPRINT]".into());
        };
        let anchors = trust_anchors(ca)?;
        let staples = read_staples(ocsp_dir)?;
        let blob = std::fs::read_to_string(blob_file)
            .map_err(|e| format!("cannot read {}: {e}", blob_file.display()))?;
        let fingerprint = args.flag_fingerprint.as_deref().filter(|f| !f.is_empty());
        verify_and_print(
            &Fetched {
                chain,
                staples: &staples,
                blob: &blob,
            },
            &anchors,
            cn,
            instance_id,
            fingerprint,
            log,
        )
    };
    run().unwrap_or_else(|message| {
        log.failure(&message);
        ExitCode::from(1)
    })
}

fn read_staples(dir: &Path) -> Result<OcspStaples, String> {
    let mut staples = OcspStaples::new();
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.len() == 40 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
            if let Ok(der) = std::fs::read(entry.path()) {
                staples.insert(name.to_ascii_uppercase(), der);
            }
        }
    }
    Ok(staples)
}
