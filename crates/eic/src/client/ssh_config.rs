//! `eic ssh-config`: the ssh_config block after which plain `ssh
//! USER@i-…`, scp, sftp, `rsync -e ssh`, git and editors' remote modes
//! reach instances with no wrapper. `ProxyCommand eic proxy` pushes the
//! block's key and connects; `KnownHostsCommand eic known-hosts` (OpenSSH
//! 8.5 and later) gives the host keys the instance registered, so ssh
//! verifies the host with no prompt.
//!
//! The key is made once (ed25519, mode 0600); it works only within 60 s of
//! each push, which is the model.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, Context};
use clap::Args;

use super::session_key::SessionKey;
use super::ssh::DEFAULT_USER;
use super::AwsArgs;

const BEGIN: &str = "# BEGIN eic ssh-config";
const END: &str = "# END eic ssh-config";

#[derive(Args, Debug)]
pub struct SshConfigArgs {
    #[command(flatten)]
    pub aws: AwsArgs,
    /// The OS user when ssh is given none.
    #[arg(long, default_value = DEFAULT_USER)]
    pub user: String,
    /// The key ssh offers, made if missing (default: ~/.ssh/eic/id_ed25519).
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Write the block into the ssh_config file (replacing an earlier one) instead of printing it.
    #[arg(long)]
    pub install: bool,
    /// The file --install writes (default: ~/.ssh/config).
    #[arg(long, value_name = "FILE", requires = "install")]
    pub ssh_config: Option<PathBuf>,
}

pub fn run(args: SshConfigArgs) -> ExitCode {
    match write(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("eic ssh-config: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn write(args: &SshConfigArgs) -> anyhow::Result<()> {
    let key = match &args.key {
        Some(key) => key.clone(),
        None => default_key()?,
    };
    ensure_key(&key)?;
    let eic = std::env::current_exe().context("cannot tell where this eic is")?;
    let block = block(&eic, &args.aws, &args.user, &key)?;
    if !args.install {
        print!("{block}");
        return Ok(());
    }
    let path = match &args.ssh_config {
        Some(path) => path.clone(),
        None => home()?.join(".ssh").join("config"),
    };
    let old = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let new = install(&old, &block)?;
    if let Some(dir) = path.parent() {
        create_private_dir(dir)?;
    }
    crate::data_dir::replace_private(&path, new.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!("eic ssh-config: wrote the block into {}", path.display());
    Ok(())
}

/// `~/.ssh/eic/id_ed25519`.
pub fn default_key() -> anyhow::Result<PathBuf> {
    Ok(home()?.join(".ssh").join("eic").join("id_ed25519"))
}

fn home() -> anyhow::Result<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| anyhow!("HOME is not set; give --key (and --ssh-config)"))
}

/// Makes the key if there is none; an existing one is kept as it is.
fn ensure_key(key: &Path) -> anyhow::Result<()> {
    if key.exists() {
        anyhow::ensure!(
            key.with_extension("pub").exists(),
            "{} has no {}.pub beside it",
            key.display(),
            key.display()
        );
        return Ok(());
    }
    if let Some(dir) = key.parent() {
        create_private_dir(dir)?;
    }
    SessionKey::generate()?.save(key)?;
    eprintln!("eic ssh-config: made the key {}", key.display());
    Ok(())
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot make {}", dir.display()))
}

/// The block. Every value must be a plain word: the ProxyCommand line goes
/// to a shell, and a word with a space, a quote or a `%` would need
/// quoting that is easy to get wrong, so such values are refused.
pub fn block(eic: &Path, aws: &AwsArgs, user: &str, key: &Path) -> anyhow::Result<String> {
    let eic = word(&eic.display().to_string())?;
    let key_text = word(&key.display().to_string())?;
    let public = word(&key.with_extension("pub").display().to_string())?;
    let user = word(user)?;
    let aws: Vec<String> = aws
        .to_flags()
        .iter()
        .map(|f| word(f))
        .collect::<anyhow::Result<_>>()?;
    let aws = if aws.is_empty() {
        String::new()
    } else {
        format!("{} ", aws.join(" "))
    };
    Ok(format!(
        "{BEGIN} (run eic ssh-config --install again to change it)\n\
         Host i-*\n\
         \x20   User {user}\n\
         \x20   IdentityFile {key_text}\n\
         \x20   IdentitiesOnly yes\n\
         \x20   ProxyCommand {eic} proxy {aws}--user %r --public-key {public} %h %p\n\
         \x20   KnownHostsCommand {eic} known-hosts {aws}%H\n\
         \x20   StrictHostKeyChecking yes\n\
         \x20   UpdateHostKeys no\n\
         \x20   CheckHostIP no\n\
         {END}\n"
    ))
}

pub(super) fn word(text: &str) -> anyhow::Result<String> {
    let plain = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-:@+=,~".contains(&b));
    if plain {
        Ok(text.to_owned())
    } else {
        Err(anyhow!(
            "{text:?} cannot go into an ssh_config line unquoted (use a path and values without spaces, quotes or %)"
        ))
    }
}

/// `config` with `block` first (ssh takes the first value it finds, so the
/// block wins over a later `Host *`), replacing an earlier eic block.
pub fn install(config: &str, block: &str) -> anyhow::Result<String> {
    let mut rest = String::new();
    let mut inside = false;
    for line in config.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with(BEGIN) {
            anyhow::ensure!(!inside, "the ssh_config has an eic block inside another");
            inside = true;
        } else if trimmed.starts_with(END) {
            anyhow::ensure!(
                inside,
                "the ssh_config has an eic block end without its start"
            );
            inside = false;
        } else if !inside {
            rest.push_str(line);
            rest.push('\n');
        }
    }
    anyhow::ensure!(!inside, "the ssh_config has an eic block without its end");
    let rest = rest.trim_start_matches('\n');
    Ok(if rest.is_empty() {
        block.to_owned()
    } else {
        format!("{block}\n{rest}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aws() -> AwsArgs {
        AwsArgs {
            endpoint_url: Some("http://127.0.0.1:8080".into()),
            region: Some("us-west-2".into()),
            profile: None,
        }
    }

    #[test]
    fn the_block_wires_proxy_and_known_hosts() {
        let b = block(
            Path::new("/usr/bin/eic"),
            &aws(),
            "ec2-user",
            Path::new("/home/me/.ssh/eic/id_ed25519"),
        )
        .unwrap();
        assert!(b.contains("\nHost i-*\n"));
        assert!(b.contains(
            "    ProxyCommand /usr/bin/eic proxy --endpoint-url http://127.0.0.1:8080 --region us-west-2 --user %r --public-key /home/me/.ssh/eic/id_ed25519.pub %h %p\n"
        ));
        assert!(b.contains(
            "    KnownHostsCommand /usr/bin/eic known-hosts --endpoint-url http://127.0.0.1:8080 --region us-west-2 %H\n"
        ));
        assert!(b.contains("    IdentityFile /home/me/.ssh/eic/id_ed25519\n"));
        assert!(b.contains("    StrictHostKeyChecking yes\n"));
    }

    #[test]
    fn words_a_shell_would_split_are_refused() {
        for bad in ["/a b/eic", "x;rm -rf /", "50%", "'q'", ""] {
            assert!(
                block(Path::new(bad), &AwsArgs::default(), "u", Path::new("/k")).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn installing_replaces_the_old_block_and_keeps_the_rest() {
        let first = install(
            "Host *\n    ServerAliveInterval 30\n",
            "# BEGIN eic ssh-config\nA\n# END eic ssh-config\n",
        )
        .unwrap();
        assert_eq!(
            first,
            "# BEGIN eic ssh-config\nA\n# END eic ssh-config\n\nHost *\n    ServerAliveInterval 30\n"
        );
        let second = install(&first, "# BEGIN eic ssh-config\nB\n# END eic ssh-config\n").unwrap();
        assert_eq!(
            second,
            "# BEGIN eic ssh-config\nB\n# END eic ssh-config\n\nHost *\n    ServerAliveInterval 30\n"
        );
        assert_eq!(install("", "X\n").unwrap(), "X\n");
        assert!(install("# BEGIN eic ssh-config\nA\n", "X\n").is_err());
        assert!(install("# END eic ssh-config\n", "X\n").is_err());
    }
}
