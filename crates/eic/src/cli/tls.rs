//! `eic ca-certificate`: the TLS CA that issues every `tls = "auto"`
//! certificate (the instance-facing listener's, the tunnel listener's), in
//! PEM, for `SSL_CERT_FILE` or the system trust store of the machines that
//! connect to them.

use super::ServerFiles;

pub fn ca_certificate(args: ServerFiles) -> anyhow::Result<()> {
    let (_, data_dir) = args.open()?;
    let anchor = crate::tls_ca::auto_trust(&data_dir)?;
    print!("{}", anchor.pem);
    Ok(())
}
