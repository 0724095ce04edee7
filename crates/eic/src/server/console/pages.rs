//! The console's HTML, rendered on the server: no template engine, every
//! value through [`esc`], no inline script or style (the pages' CSP
//! forbids both). Pure: data in, a string out.

use std::fmt::Write;

/// HTML-escapes text for element content and double-quoted attributes:
/// as the EC2 XML responses are, which also keeps control characters out.
pub use eic_ec2::escape_markup as esc;

/// Percent-encodes a query parameter's value.
pub fn query_value(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Who is signed in, for the header.
pub struct SignedIn<'a> {
    pub principal_arn: &'a str,
    pub csrf: &'a str,
}

fn layout(title: &str, signed_in: Option<&SignedIn<'_>>, main_class: &str, body: &str) -> String {
    let mut header =
        String::from(r#"<header class="top"><a class="brand" href="/">eic console</a>"#);
    if let Some(who) = signed_in {
        let current = |page: &str| {
            if title == page {
                r#" aria-current="page""#
            } else {
                ""
            }
        };
        let _ = write!(
            header,
            r#"<nav><a href="/"{}>Instances</a><a href="/recordings"{}>Recordings</a></nav><span class="principal" title="{arn}">{arn}</span><form class="signout" method="post" action="/signout"><input type="hidden" name="csrf" value="{csrf}"><button type="submit">Sign out</button></form>"#,
            current("Instances"),
            current("Recordings"),
            arn = esc(who.principal_arn),
            csrf = esc(who.csrf),
        );
    }
    header.push_str("</header>");
    let scripts = if main_class == "terminal-page" || main_class == "player-page" {
        r#"<script defer src="/assets/xterm.js"></script><script defer src="/assets/addon-fit.js"></script>"#
    } else {
        ""
    };
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>{title} · eic console</title><link rel="stylesheet" href="/assets/xterm.css"><link rel="stylesheet" href="/assets/console.css"></head><body>{header}<main class="{main_class}">{body}</main>{scripts}<script defer src="/assets/console.js"></script></body></html>"#,
        title = esc(title),
    )
}

/// What the sign-in link opens: a button, so that a link previewer that
/// fetches the URL does not spend its one use.
pub fn signin(token: &str) -> String {
    let body = format!(
        r#"<div class="card"><h1>Sign in to eic</h1><p>This one-time link signs you in to the console. It works once and expires in minutes.</p><form method="post" action="/signin"><input type="hidden" name="token" value="{}"><button class="primary" type="submit">Sign in</button></form></div>"#,
        esc(token)
    );
    layout("Sign in", None, "signin", &body)
}

/// A page with one message: signed out, or why a request was refused.
pub fn message(title: &str, text: &str, error: bool) -> String {
    let class = if error { "error" } else { "notice" };
    let body = format!(
        r#"<div class="card"><h1>{}</h1><p class="{class}">{}</p></div>"#,
        esc(title),
        esc(text)
    );
    layout(title, None, "signin", &body)
}

/// Whether the signed-in principal may use an action on an instance.
pub enum Permission {
    Allowed,
    /// Why not, shown beside the absent button.
    Denied(String),
}

/// One row of the instance list.
pub struct InstanceRow {
    pub id: String,
    pub name: Option<String>,
    pub state: String,
    /// Running but not heard from: shown as connection-lost.
    pub unavailable: bool,
    pub instance_type: String,
    pub zone: String,
    pub address: Option<String>,
    pub tags: Vec<(String, String)>,
    pub ssh: Permission,
    pub serial: Permission,
}

/// The list's filters, as the query string gave them.
#[derive(Default)]
pub struct ListFilters {
    pub tag: String,
    pub state: String,
}

pub const DEFAULT_OS_USER: &str = "ec2-user";

pub fn instances(
    who: &SignedIn<'_>,
    rows: &[InstanceRow],
    filters: &ListFilters,
    refused: Option<&str>,
    capped: Option<usize>,
) -> String {
    let mut body = String::from("<h1>Instances</h1>");
    let state_options = [
        "",
        "running",
        "stopped",
        "pending",
        "stopping",
        "terminated",
    ]
    .iter()
    .map(|s| {
        let selected = if *s == filters.state { " selected" } else { "" };
        let label = if s.is_empty() { "any state" } else { s };
        format!(r#"<option value="{s}"{selected}>{label}</option>"#)
    })
    .collect::<String>();
    let _ = write!(
        body,
        r#"<form class="filters" method="get" action="/"><input type="text" name="tag" placeholder="tag: Key=Value" value="{}"><select name="state">{state_options}</select><button type="submit">Filter</button></form>"#,
        esc(&filters.tag)
    );
    if let Some(reason) = refused {
        let _ = write!(body, r#"<p class="error">{}</p>"#, esc(reason));
        return layout("Instances", Some(who), "", &body);
    }
    if rows.is_empty() {
        body.push_str(r#"<p class="empty">No instances match.</p>"#);
        return layout("Instances", Some(who), "", &body);
    }
    body.push_str(r#"<table class="instances"><thead><tr><th>Instance</th><th>State</th><th>Type</th><th>Zone</th><th>Address</th><th>Tags</th><th>Connect</th></tr></thead><tbody>"#);
    for row in rows {
        let (state, state_class) = if row.unavailable && row.state == "running" {
            ("connection-lost", "connection-lost")
        } else {
            (row.state.as_str(), row.state.as_str())
        };
        let name = row
            .name
            .as_deref()
            .map(|n| format!(r#"<span class="name">{}</span>"#, esc(n)))
            .unwrap_or_default();
        let tags: String = row
            .tags
            .iter()
            .map(|(k, v)| format!(r#"<span class="tag">{}={}</span>"#, esc(k), esc(v)))
            .collect();
        let ssh = match &row.ssh {
            Permission::Allowed => format!(
                r#"<form class="connect" method="get" action="/terminal/ssh/{id}"><input type="text" name="user" value="{DEFAULT_OS_USER}" aria-label="OS user" size="10"><button class="primary" type="submit">SSH</button></form>"#,
                id = esc(&row.id)
            ),
            Permission::Denied(why) => {
                format!(
                    r#"<span class="denied" title="{}">SSH unavailable</span>"#,
                    esc(why)
                )
            }
        };
        let serial = match &row.serial {
            Permission::Allowed => format!(
                r#"<a class="button" href="/terminal/serial/{}">Serial console</a>"#,
                esc(&row.id)
            ),
            Permission::Denied(why) => format!(
                r#"<span class="denied" title="{}">Serial unavailable</span>"#,
                esc(why)
            ),
        };
        let _ = write!(
            body,
            r#"<tr data-instance="{id}"><td><code>{id}</code>{name}</td><td><span class="state state-{state_class}">{state}</span></td><td>{ty}</td><td>{zone}</td><td>{address}</td><td>{tags}</td><td class="actions">{ssh} {serial}</td></tr>"#,
            id = esc(&row.id),
            ty = esc(&row.instance_type),
            zone = esc(&row.zone),
            address = esc(row.address.as_deref().unwrap_or("—")),
        );
    }
    body.push_str("</tbody></table>");
    if let Some(shown) = capped {
        let _ = write!(
            body,
            r#"<p class="muted">The first {shown} instances are shown; filter to see others.</p>"#
        );
    }
    layout("Instances", Some(who), "", &body)
}

/// What a terminal page connects to.
pub struct TerminalTarget<'a> {
    pub instance_id: &'a str,
    /// The OS user, for SSH; `None` for the serial console.
    pub os_user: Option<&'a str>,
}

pub fn terminal(who: &SignedIn<'_>, target: &TerminalTarget<'_>) -> String {
    let (socket, label, who_as) = match target.os_user {
        Some(user) => (
            format!(
                "/ws/ssh/{}?user={}",
                query_value(target.instance_id),
                query_value(user)
            ),
            format!("{user}@{}", target.instance_id),
            format!(r#"<code class="user">{}</code>"#, esc(user)),
        ),
        None => (
            format!("/ws/serial/{}", query_value(target.instance_id)),
            format!("{} serial console", target.instance_id),
            "serial console".to_owned(),
        ),
    };
    let body = format!(
        r#"<div class="session-bar"><span><code class="instance">{instance}</code> <span class="sep">·</span> {who_as}</span><span id="status" class="status status-connecting">connecting</span><button id="disconnect" type="button">Disconnect</button></div><div id="terminal" data-socket="{socket}" data-csrf="{csrf}" data-title="{label}"></div><div id="banner" hidden></div>"#,
        instance = esc(target.instance_id),
        label = esc(&label),
        socket = esc(&socket),
        csrf = esc(who.csrf),
    );
    layout(&label, Some(who), "terminal-page", &body)
}

/// One row of the recordings list.
pub struct RecordingRow {
    pub id: String,
    pub principal_arn: String,
    pub instance_id: String,
    pub target: String,
    pub kind: String,
    pub started_at: String,
    pub duration: String,
    pub bytes: u64,
}

pub fn recordings(who: &SignedIn<'_>, rows: &[RecordingRow]) -> String {
    let mut body = String::from("<h1>Recordings</h1>");
    if rows.is_empty() {
        body.push_str(r#"<p class="empty">No recordings you may read.</p>"#);
        return layout("Recordings", Some(who), "", &body);
    }
    body.push_str(r#"<table class="recordings"><thead><tr><th>Started</th><th>Who</th><th>Instance</th><th>As</th><th>Kind</th><th>Duration</th><th>Output</th><th></th></tr></thead><tbody>"#);
    for row in rows {
        let _ = write!(
            body,
            r#"<tr><td><time datetime="{started}">{started}</time></td><td>{who}</td><td><code>{instance}</code></td><td>{target}</td><td>{kind}</td><td>{duration}</td><td>{bytes}</td><td><a class="button" href="/recordings/{id}">Play</a></td></tr>"#,
            started = esc(&row.started_at),
            who = esc(&row.principal_arn),
            instance = esc(&row.instance_id),
            target = esc(&row.target),
            kind = esc(&row.kind),
            duration = esc(&row.duration),
            bytes = human_bytes(row.bytes),
            id = esc(&row.id),
        );
    }
    body.push_str("</tbody></table>");
    layout("Recordings", Some(who), "", &body)
}

pub fn player(who: &SignedIn<'_>, row: &RecordingRow) -> String {
    let body = format!(
        r#"<h1>Recording of <code>{instance}</code></h1><p class="muted">{who} as {target}, <time datetime="{started}">{started}</time>, {duration}</p><div class="player-frame"><div id="player" data-cast="/recordings/{id}/cast"></div><div class="controls"><button id="play" type="button">Pause</button><button id="restart" type="button">Restart</button><button id="skip" type="button">Skip to end</button><label>Speed <select id="speed"><option value="0.5">0.5×</option><option value="1" selected>1×</option><option value="2">2×</option><option value="4">4×</option><option value="8">8×</option></select></label><span id="clock"></span></div></div><ul id="markers"></ul>"#,
        instance = esc(&row.instance_id),
        who = esc(&row.principal_arn),
        target = esc(&row.target),
        started = esc(&row.started_at),
        duration = esc(&row.duration),
        id = esc(&row.id),
    );
    layout("Recording", Some(who), "player-page", &body)
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_everywhere_it_lands() {
        assert_eq!(
            esc(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&apos;"
        );
        let who = SignedIn {
            principal_arn: "arn:aws:iam::1:user/<script>",
            csrf: "c\"srf",
        };
        let row = InstanceRow {
            id: "i-1\"><script>".into(),
            name: Some("<b>web</b>".into()),
            state: "running".into(),
            unavailable: true,
            instance_type: "t3.micro".into(),
            zone: "us-west-2a".into(),
            address: None,
            tags: vec![("k".into(), "<v>".into())],
            ssh: Permission::Allowed,
            serial: Permission::Denied("not \"allowed\"".into()),
        };
        let page = instances(&who, &[row], &ListFilters::default(), None, None);
        assert!(!page.contains("<script>"), "{page}");
        assert!(!page.contains("<b>"));
        assert!(page.contains("state-connection-lost"));
        assert!(page.contains(r#"title="not &quot;allowed&quot;""#));
        assert!(page.contains(r#"value="c&quot;srf""#));
    }

    #[test]
    fn a_terminal_page_names_its_socket_with_encoded_parameters() {
        let who = SignedIn {
            principal_arn: "arn",
            csrf: "t",
        };
        let page = terminal(
            &who,
            &TerminalTarget {
                instance_id: "i-abcd1234",
                os_user: Some("a b&c"),
            },
        );
        assert!(
            page.contains(r#"data-socket="/ws/ssh/i-abcd1234?user=a+b%26c""#),
            "{page}"
        );
        let serial = terminal(
            &who,
            &TerminalTarget {
                instance_id: "i-abcd1234",
                os_user: None,
            },
        );
        assert!(serial.contains(r#"data-socket="/ws/serial/i-abcd1234""#));
    }

    #[test]
    fn sizes_read_as_people_read_them() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 << 20), "5.0 MiB");
    }
}
