//! The descriptor budget: every listener's connection cap, counted in file
//! descriptors, against RLIMIT_NOFILE.
//!
//! A cap the process cannot honour is no cap: once descriptors run out,
//! every listener fails its accepts ("Too many open files"), so a flood on
//! one role stops the others. At start the soft limit is raised to the hard
//! one; caps the operator set must then fit or the server refuses to
//! start; caps left at their defaults are lowered, in proportion, to fit.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

use crate::config::Config;

/// Descriptors held besides connections: listeners, the key log's
/// segments and directory, the audit log, Redis connections, the runtime's
/// epoll and event descriptors, console probes, command backends starting.
pub const BASE_DESCRIPTORS: u64 = 256;
/// A cap lowered to fit is never lowered below this many connections.
const MIN_CAP: u64 = 16;

/// The connection caps in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    pub api: usize,
    pub instance_api: usize,
    pub serial: usize,
    /// Tunnels (and the HTTP connections that open them) on the tunnel
    /// listener.
    pub tunnel: usize,
    /// Connections to the browser console (a terminal's WebSocket, and its
    /// SSH connection to the instance).
    pub console: usize,
}

/// A listener's cap: what the config says (`Some`), or its default.
#[derive(Debug, Clone, Copy)]
struct Cap {
    connections: u64,
    descriptors_each: u64,
    explicit: bool,
}

impl Cap {
    fn new(configured: Option<usize>, default: usize, descriptors_each: usize) -> Cap {
        Cap {
            connections: configured.unwrap_or(default) as u64,
            descriptors_each: descriptors_each as u64,
            explicit: configured.is_some(),
        }
    }

    fn descriptors(&self) -> u64 {
        self.connections.saturating_mul(self.descriptors_each)
    }
}

pub const DEFAULT_HTTP_CONNECTIONS: usize = 10_000;
pub const DEFAULT_SERIAL_CONNECTIONS: usize = 1_000;
/// A tunnel holds the client's connection and the instance's, and as many
/// handshakes as tunnels may be under way beside them.
pub const FDS_PER_TUNNEL: usize = 3;
/// The console's connections: pages and terminals, each terminal also
/// holding its SSH connection.
pub const DEFAULT_CONSOLE_CONNECTIONS: usize = 1_000;
pub const FDS_PER_CONSOLE_CONNECTION: usize = 2;

/// The caps for `config` within `limit` descriptors, or why they cannot fit.
pub fn plan(config: &Config, limit: u64) -> anyhow::Result<Caps> {
    let mut caps = [
        (
            "api",
            Cap::new(config.api.max_connections, DEFAULT_HTTP_CONNECTIONS, 1),
        ),
        (
            "instance-api",
            match &config.instance_api {
                Some(c) => Cap::new(c.max_connections, DEFAULT_HTTP_CONNECTIONS, 1),
                None => Cap::new(Some(0), 0, 1),
            },
        ),
        (
            "serial-console",
            match &config.serial_console {
                Some(c) => Cap::new(
                    c.max_connections,
                    DEFAULT_SERIAL_CONNECTIONS,
                    eic_serial::FDS_PER_CONNECTION,
                ),
                None => Cap::new(Some(0), 0, eic_serial::FDS_PER_CONNECTION),
            },
        ),
        (
            "tunnel",
            match &config.tunnel {
                Some(c) => Cap::new(c.max_connections, DEFAULT_HTTP_CONNECTIONS, FDS_PER_TUNNEL),
                None => Cap::new(Some(0), 0, FDS_PER_TUNNEL),
            },
        ),
        (
            "console",
            match &config.console {
                Some(_) => Cap::new(
                    None,
                    DEFAULT_CONSOLE_CONNECTIONS,
                    FDS_PER_CONSOLE_CONNECTION,
                ),
                None => Cap::new(Some(0), 0, FDS_PER_CONSOLE_CONNECTION),
            },
        ),
    ];
    let available = limit.saturating_sub(BASE_DESCRIPTORS);
    let total: u64 = caps.iter().map(|(_, c)| c.descriptors()).sum();
    if total > available {
        let fixed: u64 = caps
            .iter()
            .filter(|(_, c)| c.explicit)
            .map(|(_, c)| c.descriptors())
            .sum();
        let flexible = total - fixed;
        let room = available.saturating_sub(fixed);
        let shares: Vec<String> = caps
            .iter()
            .map(|(name, c)| format!("{name} {}×{}", c.connections, c.descriptors_each))
            .collect();
        let too_many = || {
            anyhow::anyhow!(
                "the connection caps need {total} file descriptors ({}, plus {BASE_DESCRIPTORS} for the rest) but RLIMIT_NOFILE allows {limit}: lower the caps (max_connections under [api], [instance_api], [serial_console], [tunnel]) or raise the limit (LimitNOFILE= in the systemd unit, ulimit -n)",
                shares.join(", ")
            )
        };
        if flexible == 0 || room == 0 {
            return Err(too_many());
        }
        // Each default keeps MIN_CAP connections; what is left of the room
        // is shared in proportion to what each default asked beyond that,
        // so the floors cannot push the sum past the room.
        let lowered = |c: &Cap| !c.explicit && c.connections > 0;
        let floors: u64 = caps
            .iter()
            .filter(|(_, c)| lowered(c))
            .map(|(_, c)| MIN_CAP * c.descriptors_each)
            .sum();
        let beyond = |c: &Cap| c.connections.saturating_sub(MIN_CAP) * c.descriptors_each;
        let asked_beyond: u64 = caps
            .iter()
            .filter(|(_, c)| lowered(c))
            .map(|(_, c)| beyond(c))
            .sum();
        let spare = room.saturating_sub(floors);
        for (_, cap) in caps.iter_mut().filter(|(_, c)| lowered(c)) {
            let share = beyond(cap)
                .checked_mul(spare)
                .map_or(0, |n| n / asked_beyond.max(1));
            cap.connections = MIN_CAP + share / cap.descriptors_each;
        }
        if caps.iter().map(|(_, c)| c.descriptors()).sum::<u64>() > available {
            return Err(too_many());
        }
        let lowered: Vec<String> = caps
            .iter()
            .filter(|(_, c)| !c.explicit && c.connections > 0)
            .map(|(name, c)| format!("{name} {}", c.connections))
            .collect();
        tracing::warn!(
            limit,
            caps = lowered.join(", "),
            "connection caps left at their defaults were lowered to fit RLIMIT_NOFILE; raise the limit (LimitNOFILE=) or set max_connections"
        );
    }
    let [api, instance_api, serial, tunnel, console] = caps.map(|(_, c)| c.connections as usize);
    Ok(Caps {
        api,
        instance_api,
        serial,
        tunnel,
        console,
    })
}

/// Raises the soft RLIMIT_NOFILE to the hard limit and plans the caps
/// within it.
pub fn fit(config: &Config) -> anyhow::Result<Caps> {
    let current = getrlimit(Resource::Nofile);
    let limit = match (current.current, current.maximum) {
        (Some(soft), Some(hard)) if soft < hard => {
            match setrlimit(
                Resource::Nofile,
                Rlimit {
                    current: Some(hard),
                    maximum: Some(hard),
                },
            ) {
                Ok(()) => hard,
                Err(e) => {
                    tracing::warn!(error = %e, soft, hard, "cannot raise the soft RLIMIT_NOFILE");
                    soft
                }
            }
        }
        (Some(soft), _) => soft,
        (None, _) => u64::MAX,
    };
    plan(config, limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        let text = format!(
            "region = \"us-west-2\"\ndata_dir = \"/tmp/x\"\n[api]\nlisten = \"127.0.0.1:0\"\n{extra}\n[instance_api]\nlisten = \"127.0.0.1:0\"\n[serial_console]\nlisten = \"127.0.0.1:0\"\n"
        );
        toml::from_str(&text).unwrap()
    }

    #[test]
    fn defaults_fit_a_large_limit_unchanged() {
        let caps = plan(&config(""), 1 << 20).unwrap();
        assert_eq!(
            caps,
            Caps {
                api: DEFAULT_HTTP_CONNECTIONS,
                instance_api: DEFAULT_HTTP_CONNECTIONS,
                serial: DEFAULT_SERIAL_CONNECTIONS,
                tunnel: 0,
                console: 0,
            }
        );
    }

    #[test]
    fn a_tunnel_counts_three_descriptors() {
        let tunnel = "[tunnel]\nlisten = \"127.0.0.1:0\"\ntls = \"auto\"\nmax_connections = 300\n";
        let with = |limit| plan(&config(&format!("max_connections = 100\n{tunnel}")), limit);
        let caps = with(1 << 20).unwrap();
        assert_eq!(caps.tunnel, 300);
        // api 100 + 300 tunnels × 3 + the base, and room for the defaults
        // to give way into; one descriptor short of the explicit caps is
        // refused.
        assert!(with(100 + 900 + BASE_DESCRIPTORS + 2_000).is_ok());
        let short = with(100 + 899 + BASE_DESCRIPTORS).unwrap_err().to_string();
        assert!(short.contains("tunnel 300×3"), "{short}");
    }

    #[test]
    fn defaults_are_lowered_to_fit_a_small_limit() {
        let caps = plan(&config(""), 1024).unwrap();
        let used = caps.api + caps.instance_api + caps.serial * eic_serial::FDS_PER_CONNECTION;
        assert!(used as u64 + BASE_DESCRIPTORS <= 1024, "{caps:?}");
        assert!(caps.serial >= MIN_CAP as usize && caps.api > caps.serial);
    }

    #[test]
    fn every_default_keeps_its_floor_within_a_small_limit() {
        let tunnel = "[tunnel]\nlisten = \"127.0.0.1:0\"\ntls = \"auto\"\n";
        for limit in [1024, 1100, 2048, 5000] {
            let caps = plan(&config(tunnel), limit).unwrap();
            let used = caps.api
                + caps.instance_api
                + caps.serial * eic_serial::FDS_PER_CONNECTION
                + caps.tunnel * FDS_PER_TUNNEL;
            assert!(used as u64 + BASE_DESCRIPTORS <= limit, "{limit}: {caps:?}");
            let floor = MIN_CAP as usize;
            assert!(
                [caps.api, caps.instance_api, caps.serial, caps.tunnel]
                    .iter()
                    .all(|c| *c >= floor),
                "{limit}: {caps:?}"
            );
        }
    }

    #[test]
    fn explicit_caps_that_do_not_fit_refuse_the_start() {
        let error = plan(&config("max_connections = 5000"), 1024).unwrap_err();
        assert!(
            error.to_string().contains("RLIMIT_NOFILE allows 1024"),
            "{error}"
        );
        // An explicit cap that fits stays as it is; the defaults give way.
        let caps = plan(&config("max_connections = 100"), 1024).unwrap();
        assert_eq!(caps.api, 100);
    }
}
