//! `eic agent install|uninstall`: make `eic authorized-keys` sshd's
//! AuthorizedKeysCommand through one drop-in in `sshd_config.d`.
//!
//! A drop-in rather than sshd's command line (AWS's packages put `-o` in a
//! systemd override, which silently beats the administrator's own
//! `AuthorizedKeysCommand` and `Match` blocks): sshd_config stays the one
//! place that says what sshd does, and eic never edits it. Install refuses
//! rather than clobber an AuthorizedKeysCommand configured anywhere sshd
//! reads, and leaves sshd_config's `Include` to the administrator.

use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};

use super::AgentConfig;
use crate::os::user_gid;

/// Sorted before distributions' own `*.conf` drop-ins would override it:
/// sshd keeps the first value it reads.
const DROP_IN: &str = "60-eic-instance-connect.conf";
/// The first line of every drop-in eic writes; uninstall removes only a file
/// that starts with it.
const HEADER: &str = "# Written by `eic agent install`; `eic agent uninstall` removes it.";
/// Where sshd resolves a relative `Include`.
const SSHD_DIR: &str = "/etc/ssh";
const SSHD: &str = "/usr/sbin/sshd";
/// The keywords that set who answers for authorized keys (RunAs is the old
/// spelling of User, still accepted).
const AKC_KEYWORDS: &[&str] = &[
    "authorizedkeyscommand",
    "authorizedkeyscommanduser",
    "authorizedkeyscommandrunas",
];
/// Includes nest; a loop of them must not hang the install.
const MAX_INCLUDE_FILES: usize = 256;

#[derive(Subcommand)]
pub enum AgentCommand {
    /// Install eic as sshd's AuthorizedKeysCommand.
    Install(InstallArgs),
    /// Remove the drop-in `eic agent install` wrote (the user is kept).
    Uninstall(UninstallArgs),
    /// Enroll this machine with a join token and write its agent config.
    Join(super::join::JoinArgs),
    /// Heartbeat until SIGTERM (then report stopped): the agent's long-running part.
    Run(super::heartbeat::RunArgs),
}

#[derive(Args)]
pub struct InstallArgs {
    /// The agent configuration (from `eic agent-config`); made readable by
    /// the command's user only.
    #[arg(long, value_name = "PATH")]
    agent_config: PathBuf,
    /// The directory sshd_config includes.
    #[arg(long, value_name = "DIR", default_value = "/etc/ssh/sshd_config.d")]
    sshd_config_dir: PathBuf,
    /// sshd's main configuration, which must Include the drop-in directory.
    #[arg(long, value_name = "PATH", default_value = "/etc/ssh/sshd_config")]
    sshd_config: PathBuf,
    /// The unprivileged AuthorizedKeysCommandUser (created if missing).
    #[arg(long, default_value = "eic-authorized-keys")]
    user: String,
    /// The eic binary sshd runs (default: this one).
    #[arg(long, value_name = "PATH")]
    binary: Option<PathBuf>,
}

#[derive(Args)]
pub struct UninstallArgs {
    /// The directory the drop-in was installed in.
    #[arg(long, value_name = "DIR", default_value = "/etc/ssh/sshd_config.d")]
    sshd_config_dir: PathBuf,
}

pub fn run(command: AgentCommand) -> anyhow::Result<()> {
    match command {
        AgentCommand::Install(args) => install(args),
        AgentCommand::Uninstall(args) => uninstall(args),
        AgentCommand::Join(args) => super::join::join(args),
        AgentCommand::Run(args) => super::heartbeat::run(args),
    }
}

fn install(args: InstallArgs) -> anyhow::Result<()> {
    let binary = match args.binary {
        Some(path) => path,
        None => std::env::current_exe().context("cannot tell where this eic binary is")?,
    };
    let binary = std::fs::canonicalize(&binary)
        .with_context(|| format!("cannot find {}", binary.display()))?;
    let agent_config = std::fs::canonicalize(&args.agent_config)
        .with_context(|| format!("cannot find {}", args.agent_config.display()))?;
    // A configuration `authorized-keys` would refuse makes every login
    // through it fail: better found now than at the first ssh.
    let text = std::fs::read_to_string(&agent_config)
        .with_context(|| format!("cannot read {}", agent_config.display()))?;
    toml::from_str::<AgentConfig>(&text)
        .with_context(|| format!("{} is not an agent configuration", agent_config.display()))?;
    if let Some(problem) = unsafe_for_sshd(&binary) {
        eprintln!(
            "warning: sshd will refuse to run {}: {problem}; install eic under a root-owned path \
             such as /usr/local/bin",
            binary.display()
        );
    }
    let binary = sshd_word(&binary)?;
    let config_word = sshd_word(&agent_config)?;
    // The name goes to useradd and into sshd_config as one word.
    if !eic_wire::is_valid_os_user(&args.user) || args.user.contains('$') {
        bail!("'{}' is not a user name eic will configure", args.user);
    }
    let dir = std::fs::canonicalize(&args.sshd_config_dir)
        .with_context(|| format!("cannot find {}", args.sshd_config_dir.display()))?;
    let drop_in = dir.join(DROP_IN);
    let content = format!(
        "{HEADER}\nAuthorizedKeysCommand {binary} authorized-keys --config {config_word} %u %f\n\
         AuthorizedKeysCommandUser {}\n",
        args.user
    );

    // Every check before anything changes: a refusal writes nothing.
    let main_text = std::fs::read_to_string(&args.sshd_config)
        .with_context(|| format!("cannot read {}", args.sshd_config.display()))?;
    let leading = leading_includes(&main_text);
    if !leading.iter().any(|pattern| covers(pattern, &dir)) {
        bail!(
            "{} does not Include {dir}/*.conf before its first Match block, so sshd would not read \
             the drop-in; add `Include {dir}/*.conf` at its top (eic does not edit sshd_config)",
            args.sshd_config.display(),
            dir = dir.display(),
        );
    }
    let existing = match std::fs::read_to_string(&drop_in) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", drop_in.display())),
    };
    if existing.as_deref().is_some_and(|text| !is_ours(text)) {
        bail!(
            "{} exists and was not written by eic; refusing to overwrite it",
            drop_in.display()
        );
    }
    let conflicts = akc_lines(&args.sshd_config, &main_text, &dir, &drop_in)?;
    if !conflicts.is_empty() {
        bail!(
            "sshd already has an AuthorizedKeysCommand configured; eic does not replace it \
             (remove it first, or run `eic authorized-keys` from it):\n  {}",
            conflicts.join("\n  ")
        );
    }

    let (gid, created) = match user_gid(&args.user) {
        Some(gid) => (gid, false),
        None => {
            let status = Command::new("useradd")
                .args([
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    &args.user,
                ])
                .status()
                .context("cannot run useradd")?;
            if !status.success() {
                bail!("useradd {} failed ({status})", args.user);
            }
            let gid = user_gid(&args.user)
                .with_context(|| format!("useradd succeeded but {} is unknown", args.user))?;
            (gid, true)
        }
    };
    let before = std::fs::metadata(&agent_config)
        .with_context(|| format!("cannot read {}", agent_config.display()))?;
    let config_ok = before.uid() == 0 && before.gid() == gid && before.mode() & 0o7777 == 0o640;
    let drop_in_ok = existing.as_deref() == Some(content.as_str());
    if config_ok && drop_in_ok {
        println!(
            "eic is already sshd's AuthorizedKeysCommand ({}); nothing changed",
            drop_in.display()
        );
        return Ok(());
    }
    if created {
        println!("created system user {}", args.user);
    }
    if !config_ok {
        // The file holds the instance's credential: root writes it, the
        // command's user reads it, nobody else sees it.
        std::os::unix::fs::chown(&agent_config, Some(0), Some(gid))
            .with_context(|| format!("cannot chown {}", agent_config.display()))?;
        std::fs::set_permissions(&agent_config, std::fs::Permissions::from_mode(0o640))
            .with_context(|| format!("cannot chmod {}", agent_config.display()))?;
        println!("{} is now root:{} 0640", agent_config.display(), args.user);
    }
    if !drop_in_ok {
        write_file(&drop_in, &content)?;
        if let Err(e) = check_sshd(&args.sshd_config) {
            // Back to how it was: the previous drop-in (ours) or none, and
            // the configuration's owner and mode.
            let restored = match &existing {
                Some(text) => write_file(&drop_in, text),
                None => std::fs::remove_file(&drop_in)
                    .with_context(|| format!("cannot remove {}", drop_in.display())),
            }
            .and_then(|()| {
                std::os::unix::fs::chown(&agent_config, Some(before.uid()), Some(before.gid()))?;
                std::fs::set_permissions(
                    &agent_config,
                    std::fs::Permissions::from_mode(before.mode() & 0o7777),
                )?;
                Ok(())
            });
            return match restored {
                Ok(()) => Err(e.context("rolled back: sshd rejects the configuration")),
                Err(r) => Err(e.context(format!(
                    "sshd rejects the configuration, and rolling back failed: {r:#}"
                ))),
            };
        }
        println!(
            "wrote {}; reload sshd (e.g. systemctl reload ssh) to apply",
            drop_in.display()
        );
    }
    Ok(())
}

fn uninstall(args: UninstallArgs) -> anyhow::Result<()> {
    let drop_in = args.sshd_config_dir.join(DROP_IN);
    let text = match std::fs::read_to_string(&drop_in) {
        Ok(text) => text,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            println!("nothing to uninstall: there is no {}", drop_in.display());
            return Ok(());
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", drop_in.display())),
    };
    if !is_ours(&text) {
        bail!(
            "{} was not written by eic; leaving it in place",
            drop_in.display()
        );
    }
    std::fs::remove_file(&drop_in)
        .with_context(|| format!("cannot remove {}", drop_in.display()))?;
    println!(
        "removed {}; reload sshd (e.g. systemctl reload ssh) to apply",
        drop_in.display()
    );
    let user = text.lines().find_map(|line| {
        let (word, rest) = line.split_once(' ')?;
        word.eq_ignore_ascii_case("AuthorizedKeysCommandUser")
            .then(|| rest.trim())
    });
    if let Some(user) = user {
        println!(
            "the user {user} is left in place (userdel {user} removes it if nothing else uses it)"
        );
    }
    Ok(())
}

fn is_ours(text: &str) -> bool {
    text.lines().next() == Some(HEADER)
}

/// A path as one word of an sshd_config line: sshd splits on whitespace,
/// takes quotes and expands `%` tokens, so a path with any of them would
/// not reach the command as written.
fn sshd_word(path: &Path) -> anyhow::Result<String> {
    let Some(text) = path.to_str() else {
        bail!("{} is not UTF-8", path.display());
    };
    if text
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '%' | '"' | '\'' | '\\'))
    {
        bail!("{text} contains characters sshd_config cannot carry in a command");
    }
    Ok(text.to_owned())
}

/// Why sshd's check of an AuthorizedKeysCommand (every component from the
/// file up to `/` owned by root and writable by nobody else) would fail.
fn unsafe_for_sshd(binary: &Path) -> Option<String> {
    for path in binary.ancestors() {
        let Ok(meta) = std::fs::metadata(path) else {
            return Some(format!("cannot inspect {}", path.display()));
        };
        if meta.uid() != 0 {
            return Some(format!("{} is not owned by root", path.display()));
        }
        if meta.mode() & 0o022 != 0 {
            return Some(format!("{} is writable by group or others", path.display()));
        }
    }
    None
}

/// A configuration line's keyword (`Keyword value` or `Keyword=value`);
/// empty for blank lines and comments.
fn keyword(line: &str) -> &str {
    let line = line.trim_start();
    if line.starts_with('#') {
        return "";
    }
    let end = line
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(line.len());
    &line[..end]
}

/// The patterns of a line's `Include`, quotes removed, resolved as sshd
/// resolves them.
fn include_patterns(line: &str) -> Vec<PathBuf> {
    if !keyword(line).eq_ignore_ascii_case("include") {
        return Vec::new();
    }
    let rest = line.trim_start()["include".len()..].trim_start_matches([' ', '\t', '=']);
    rest.split_whitespace()
        .map(|word| Path::new(SSHD_DIR).join(word.trim_matches('"')))
        .collect()
}

/// The Includes sshd applies unconditionally: those before the first
/// `Match` (one inside a Match block applies only to its connections).
fn leading_includes(text: &str) -> Vec<PathBuf> {
    text.lines()
        .take_while(|line| !keyword(line).eq_ignore_ascii_case("match"))
        .flat_map(include_patterns)
        .collect()
}

/// Whether an Include pattern reads the drop-in in `dir`.
fn covers(pattern: &Path, dir: &Path) -> bool {
    let (Some(parent), Some(name)) = (pattern.parent(), pattern.file_name()) else {
        return false;
    };
    let parent = std::fs::canonicalize(parent).unwrap_or_else(|_| parent.to_owned());
    parent == dir && name.to_str().is_some_and(|name| glob(name, DROP_IN))
}

/// Every AuthorizedKeysCommand setting sshd reads, except in our own
/// drop-in, as `file:line: text`.
/// A file that cannot be read may hold one, so it is an error; one that
/// does not exist (an Include without wildcards) holds none.
fn akc_lines(main: &Path, main_text: &str, dir: &Path, own: &Path) -> anyhow::Result<Vec<String>> {
    let mut found = Vec::new();
    for file in sshd_files(main, main_text, dir) {
        if file == own {
            continue;
        }
        let text = match std::fs::read_to_string(&file) {
            Ok(text) => text,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", file.display())),
        };
        for (number, line) in text.lines().enumerate() {
            if AKC_KEYWORDS.contains(&keyword(line).to_ascii_lowercase().as_str()) {
                found.push(format!(
                    "{}:{}: {}",
                    file.display(),
                    number + 1,
                    line.trim()
                ));
            }
        }
    }
    Ok(found)
}

/// Every file sshd reads: the main configuration, what it Includes
/// (nested), and the drop-in directory, where a file may be added later.
fn sshd_files(main: &Path, main_text: &str, dir: &Path) -> BTreeSet<PathBuf> {
    let mut files = BTreeSet::from([main.to_owned()]);
    let mut pending: Vec<PathBuf> = main_text.lines().flat_map(include_patterns).collect();
    pending.push(dir.join("*.conf"));
    while let Some(pattern) = pending.pop() {
        for file in expand(&pattern) {
            if files.len() >= MAX_INCLUDE_FILES || !files.insert(file.clone()) {
                continue;
            }
            if let Ok(text) = std::fs::read_to_string(&file) {
                pending.extend(text.lines().flat_map(include_patterns));
            }
        }
    }
    files
}

/// The files a pattern names; wildcards in the last component only, which
/// is how sshd_config.d is included.
fn expand(pattern: &Path) -> Vec<PathBuf> {
    let (Some(parent), Some(name)) = (
        pattern.parent(),
        pattern.file_name().and_then(|n| n.to_str()),
    ) else {
        return Vec::new();
    };
    if !name.contains(['*', '?']) {
        return vec![pattern.to_owned()];
    }
    let Ok(entries) = std::fs::read_dir(parent) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|entry| entry.file_name().to_str().is_some_and(|n| glob(name, n)))
        .map(|entry| entry.path())
        .collect()
}

/// `*` and `?` matching, as glob(3) does within one path component (on
/// bytes: a `?` may then match part of a multibyte character, which no
/// drop-in name has).
fn glob(pattern: &str, name: &str) -> bool {
    fn bytes(pattern: &[u8], name: &[u8]) -> bool {
        match (pattern.split_first(), name.split_first()) {
            (None, None) => true,
            (Some((b'*', rest)), _) => (0..=name.len()).any(|skip| bytes(rest, &name[skip..])),
            (Some((&p, rest)), Some((&n, tail))) if p == b'?' || p == n => bytes(rest, tail),
            _ => false,
        }
    }
    bytes(pattern.as_bytes(), name.as_bytes())
}

/// Written under a name sshd's `*.conf` does not match, then renamed: sshd
/// never reads half a drop-in.
fn write_file(path: &Path, content: &str) -> anyhow::Result<()> {
    let temp = path.with_extension("conf.tmp");
    std::fs::write(&temp, content).with_context(|| format!("cannot write {}", temp.display()))?;
    std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o644))
        .and_then(|()| std::fs::rename(&temp, path))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// `sshd -t`, when sshd is installed.
fn check_sshd(config: &Path) -> anyhow::Result<()> {
    if !Path::new(SSHD).exists() {
        println!("{SSHD} is not installed; the configuration was not checked");
        return Ok(());
    }
    let out = Command::new(SSHD)
        .arg("-t")
        .arg("-f")
        .arg(config)
        .output()
        .with_context(|| format!("cannot run {SSHD}"))?;
    if !out.status.success() {
        bail!(
            "{SSHD} -t -f {}: {}",
            config.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_one_component() {
        assert!(glob("*.conf", DROP_IN));
        assert!(glob("*", DROP_IN));
        assert!(glob("6?-eic-*.conf", DROP_IN));
        assert!(!glob("*.cfg", DROP_IN));
        assert!(!glob("7*", DROP_IN));
    }

    #[test]
    fn keywords_ignore_comments_and_case() {
        assert_eq!(
            keyword("  AuthorizedKeysCommand /bin/x"),
            "AuthorizedKeysCommand"
        );
        assert_eq!(
            keyword("authorizedkeyscommanduser=nobody"),
            "authorizedkeyscommanduser"
        );
        assert_eq!(keyword("# AuthorizedKeysCommand /bin/x"), "");
        assert_eq!(
            include_patterns("Include /etc/ssh/sshd_config.d/*.conf"),
            [PathBuf::from("/etc/ssh/sshd_config.d/*.conf")]
        );
        assert_eq!(
            include_patterns("include \"conf.d/*\""),
            [PathBuf::from("/etc/ssh/conf.d/*")]
        );
        assert_eq!(
            leading_includes("Match User x\nInclude /a/*.conf\n"),
            Vec::<PathBuf>::new()
        );
    }
}
