//! The browser console (`[console]`, role `console`): one-time sign-in
//! links, the instances a principal may see, and SSH terminals in the page.
//!
//! Every page but the sign-in and signed-out ones needs a session cookie;
//! every state-changing request (sign-out, a terminal's WebSocket) carries
//! the session's CSRF token and a same-origin `Origin`, and the cookie is
//! SameSite=Strict. A terminal's key is made for it, pushed through the
//! API's pipeline as the signed-in principal ([`Api::push_for_console`]:
//! authorization, throttling, audit), and the instance's host key is
//! checked against its registered keys.
//!
//! The rooms: [`signin`] (links), [`sessions`] (cookies and CSRF),
//! [`pages`] (HTML), [`route`] (directly or through an Instance Connect
//! Endpoint), [`terminal`] (the SSH client and the WebSocket bridge),
//! [`recording`] (asciicast recordings of each terminal) and [`assets`]
//! (xterm.js and the console's script and style, built in).

pub mod assets;
pub mod pages;
pub mod recording;
pub mod route;
pub mod sessions;
pub mod signin;
pub mod terminal;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

use eic_wire::{Operation, PushRequest};

use super::api::{Api, Origin};
use super::authz::{Caller, TunnelAsked, READ_RECORDING};
use super::reload::Catalog;
use super::websocket::{self, HandshakeError};
use crate::client::session_key::SessionKey;
use crate::config::{ConsoleConfig, ConsoleRoute, InstanceState};
use crate::registry::{supports_serial_console, Instance, Principal};
use crate::tunnel::dial;
use pages::{InstanceRow, ListFilters, Permission, SignedIn, TerminalTarget};
use recording::{RecordingSettings, SessionRecording, Start};
use route::Route;
use sessions::{Session, Sessions};
use signin::{LinkRefusal, SigninKey};

/// A form body larger than this is refused unread.
const MAX_FORM_BYTES: usize = 8 * 1024;
/// The instance list shows at most this many rows.
const MAX_LISTED: usize = 500;
/// The terminal's size until the page says otherwise.
const INITIAL_SIZE: (u16, u16) = (80, 24);

/// The pages' Content-Security-Policy: nothing inline, nothing foreign.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// The console's settings, from `[console]` and `[recordings]`.
pub struct ConsoleSettings {
    pub secure: bool,
    pub idle_timeout: Duration,
    pub connect_timeout: Duration,
    pub max_terminals_per_principal: usize,
    pub recordings: RecordingSettings,
    /// Embedded store: redemptions are counted in this process's memory,
    /// so links issued before it started are refused (their use is not
    /// known). On Redis the count is shared and survives restarts.
    pub links_before_start_refused: bool,
    /// The serial console gateway of this server, which serial terminals
    /// log in to as any SSH client does (its rules hold: one session per
    /// instance, the account's access setting); `None` when it is off.
    pub serial_gateway: Option<SerialGateway>,
    pub route: ConsoleRoute,
    /// What an endpoint's listener is trusted by when a terminal goes
    /// through it: the system's store and eic's TLS CA. `None` when there
    /// is neither (the page says so).
    pub endpoint_tls: Option<Arc<rustls::ClientConfig>>,
}

/// Where this server's serial console gateway listens, and its host key.
#[derive(Debug, Clone)]
pub struct SerialGateway {
    pub address: SocketAddr,
    pub host_key: String,
}

impl ConsoleSettings {
    pub fn from_config(
        config: &ConsoleConfig,
        recordings: RecordingSettings,
        embedded: bool,
        serial_gateway: Option<SerialGateway>,
        endpoint_tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Self {
        ConsoleSettings {
            secure: config.tls.is_some(),
            idle_timeout: Duration::from_secs(config.idle_timeout_secs),
            connect_timeout: Duration::from_secs(config.connect_timeout_secs),
            max_terminals_per_principal: config.max_terminals_per_principal,
            recordings,
            links_before_start_refused: embedded,
            serial_gateway,
            route: config.route,
            endpoint_tls,
        }
    }
}

pub struct ConsoleRole {
    api: Arc<Api>,
    sessions: Sessions,
    key: SigninKey,
    settings: Arc<ConsoleSettings>,
    started_at: std::time::SystemTime,
    /// Open terminals per principal ARN.
    terminals: Arc<Mutex<HashMap<String, usize>>>,
    stop: watch::Receiver<bool>,
}

/// A page's answer.
type Answer = Response<Full<Bytes>>;

/// A 503 page: something the console needs cannot be reached now.
fn unavailable(title: &str, message: &str) -> Answer {
    html(
        StatusCode::SERVICE_UNAVAILABLE,
        pages::message(title, message, true),
    )
}

impl ConsoleRole {
    pub fn new(
        api: Arc<Api>,
        config: &ConsoleConfig,
        settings: ConsoleSettings,
        sessions: Arc<dyn eic_store::ConsoleSessions>,
        data_dir: &std::path::Path,
        stop: watch::Receiver<bool>,
    ) -> anyhow::Result<ConsoleRole> {
        Ok(ConsoleRole {
            sessions: Sessions::new(sessions, Duration::from_secs(config.session_ttl_secs)),
            key: SigninKey::load_or_create(data_dir)?,
            started_at: api.clock.now(),
            api,
            settings: Arc::new(settings),
            terminals: Arc::default(),
            stop,
        })
    }

    pub async fn handle(
        self: Arc<Self>,
        peer: SocketAddr,
        request: Request<Incoming>,
    ) -> Result<Answer, Infallible> {
        let mut response = self.route(peer, request).await;
        let headers = response.headers_mut();
        headers.insert(
            "x-content-type-options",
            HeaderValue::from_static("nosniff"),
        );
        // Never a referrer to another site (the sign-in page's URL holds
        // its token); same-origin keeps the Origin header on our own form
        // posts, which no-referrer would turn into "null".
        headers.insert("referrer-policy", HeaderValue::from_static("same-origin"));
        headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
        headers.insert("content-security-policy", HeaderValue::from_static(CSP));
        headers
            .entry(http::header::CACHE_CONTROL)
            .or_insert(HeaderValue::from_static("no-store"));
        if self.settings.secure {
            headers.insert(
                "strict-transport-security",
                HeaderValue::from_static("max-age=31536000"),
            );
        }
        Ok(response)
    }

    async fn route(&self, peer: SocketAddr, request: Request<Incoming>) -> Answer {
        let path = request.uri().path().to_owned();
        let method = request.method().clone();
        if let Some(name) = path.strip_prefix("/assets/") {
            return match (method, assets::find(name)) {
                (Method::GET, Some(asset)) => assets::response(asset),
                _ => not_found(),
            };
        }
        match (&method, path.as_str()) {
            (&Method::GET, "/signin") => {
                let token = query_param(request.uri().query(), "token").unwrap_or_default();
                return html(StatusCode::OK, pages::signin(&token));
            }
            (&Method::POST, "/signin") => return self.sign_in(request).await,
            (&Method::GET, "/signed-out") => {
                return html(
                    StatusCode::OK,
                    pages::message(
                        "Signed out",
                        "You are signed out. Ask for a new sign-in link to come back.",
                        false,
                    ),
                )
            }
            _ => {}
        }
        let found = match self.session(request.headers()).await {
            Ok(found) => found,
            Err(e) => {
                tracing::error!(
                    error = &e as &dyn std::error::Error,
                    "console sessions unreadable"
                );
                return unavailable(
                    "Console unavailable",
                    "The session store cannot be reached now; try again in a moment.",
                );
            }
        };
        let Some((cookie, session, principal)) = found else {
            return if path.starts_with("/ws/") {
                plain(StatusCode::UNAUTHORIZED, "no console session")
            } else {
                html(
                    StatusCode::UNAUTHORIZED,
                    pages::message(
                        "Sign in",
                        "This page needs a console session. Ask an operator for a sign-in link (eic console-url).",
                        true,
                    ),
                )
            };
        };
        let who = SignedIn {
            principal_arn: &principal.arn,
            csrf: &session.csrf,
        };
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match (&method, segments.as_slice()) {
            (&Method::GET, [""]) => {
                self.instance_list(&who, &principal, peer, request.uri().query())
            }
            (&Method::POST, ["signout"]) => self.sign_out(request, &cookie, &session).await,
            (&Method::GET, ["terminal", "ssh", id]) => {
                let user = query_param(request.uri().query(), "user")
                    .unwrap_or_else(|| pages::DEFAULT_OS_USER.to_owned());
                html(
                    StatusCode::OK,
                    pages::terminal(
                        &who,
                        &TerminalTarget {
                            instance_id: id,
                            os_user: Some(&user),
                        },
                    ),
                )
            }
            (&Method::GET, ["recordings"]) => self.recording_list(&who, &principal, peer),
            (&Method::GET, ["recordings", id]) => {
                match self.readable_recording(&principal, peer, id) {
                    Some(meta) => html(StatusCode::OK, pages::player(&who, &recording_row(&meta))),
                    None => not_found(),
                }
            }
            (&Method::GET, ["recordings", id, "cast"]) => {
                match self.readable_recording(&principal, peer, id) {
                    Some(meta) => self.cast(&meta),
                    None => not_found(),
                }
            }
            (&Method::GET, ["terminal", "serial", id]) => html(
                StatusCode::OK,
                pages::terminal(
                    &who,
                    &TerminalTarget {
                        instance_id: id,
                        os_user: None,
                    },
                ),
            ),
            (&Method::GET, ["ws", kind @ ("ssh" | "serial"), id]) => {
                let target = if *kind == "serial" {
                    Target::Serial
                } else {
                    Target::Ssh {
                        user: query_param(request.uri().query(), "user")
                            .unwrap_or_else(|| pages::DEFAULT_OS_USER.to_owned()),
                    }
                };
                let id = (*id).to_owned();
                self.open_terminal(peer, request, &session, principal, &id, target)
                    .await
            }
            _ => not_found(),
        }
    }

    /// The session of the request's cookie, and its principal as the
    /// running configuration has it (a principal removed since sign-in
    /// ends its sessions).
    async fn session(
        &self,
        headers: &HeaderMap,
    ) -> Result<Option<(String, Session, Arc<Principal>)>, eic_store::StoreError> {
        let Some(cookie) = sessions::cookie_value(headers) else {
            return Ok(None);
        };
        let Some(session) = self.sessions.get(cookie).await? else {
            return Ok(None);
        };
        let principal = self
            .api
            .catalog
            .current()
            .registry
            .principal(&session.principal_arn)
            .cloned();
        Ok(principal.map(|principal| (cookie.to_owned(), session, principal)))
    }

    async fn sign_in(&self, request: Request<Incoming>) -> Answer {
        if !same_origin(request.headers(), false) {
            return plain(StatusCode::FORBIDDEN, "cross-origin sign-in refused");
        }
        let form = match read_form(request).await {
            Ok(form) => form,
            Err(answer) => return answer,
        };
        let token = form.get("token").map(String::as_str).unwrap_or_default();
        let refused = |why: LinkRefusal| {
            tracing::info!(reason = %why, "console sign-in refused");
            html(
                StatusCode::FORBIDDEN,
                pages::message("Sign-in refused", &why.to_string(), true),
            )
        };
        let now = self.api.clock.now();
        let grant = match self.key.verify(token, now) {
            Ok(grant) => grant,
            Err(why) => return refused(why),
        };
        if self.settings.links_before_start_refused
            && grant.issued_at_ms < eic_store::unix_millis(self.started_at)
        {
            return refused(LinkRefusal::BeforeStart);
        }
        let catalog = self.api.catalog.current();
        let Some(principal) = catalog.registry.principal(&grant.principal_arn).cloned() else {
            return refused(LinkRefusal::UnknownPrincipal);
        };
        let lifetime =
            Duration::from_millis(grant.expires_at_ms.saturating_sub(grant.issued_at_ms));
        match self
            .api
            .redeem_once(&format!("console-signin:{}", grant.nonce), lifetime, now)
            .await
        {
            Ok(true) => {}
            Ok(false) => return refused(LinkRefusal::Used),
            Err(e) => return unavailable("Sign-in unavailable", &e.message),
        }
        let (id, _) = match self.sessions.create(&principal.arn).await {
            Ok(created) => created,
            Err(e) => return unavailable("Sign-in unavailable", &e.to_string()),
        };
        tracing::info!(principal = %principal.arn, "console sign-in");
        self.api
            .audit_console_event("ConsoleSignIn", &principal, None);
        self.api.metrics.console_signed_in();
        let mut response = redirect("/");
        if let Ok(cookie) = HeaderValue::from_str(&sessions::set_cookie(
            &id,
            self.sessions.ttl(),
            self.settings.secure,
        )) {
            response
                .headers_mut()
                .insert(http::header::SET_COOKIE, cookie);
        }
        response
    }

    async fn sign_out(
        &self,
        request: Request<Incoming>,
        cookie: &str,
        session: &Session,
    ) -> Answer {
        if !same_origin(request.headers(), false) {
            return plain(StatusCode::FORBIDDEN, "cross-origin request refused");
        }
        let form = match read_form(request).await {
            Ok(form) => form,
            Err(answer) => return answer,
        };
        if !form.get("csrf").is_some_and(|t| session.csrf_matches(t)) {
            return plain(StatusCode::FORBIDDEN, "missing or wrong CSRF token");
        }
        if let Err(e) = self.sessions.remove(cookie).await {
            // The session would stay valid: say so rather than pretend.
            tracing::error!(
                error = &e as &dyn std::error::Error,
                "console sign-out not stored"
            );
            return unavailable(
                "Sign-out failed",
                "The session store cannot be reached now, so the session is still open; try again.",
            );
        }
        if let Some(principal) = self
            .api
            .catalog
            .current()
            .registry
            .principal(&session.principal_arn)
        {
            self.api
                .audit_console_event("ConsoleSignOut", principal, None);
        }
        let mut response = redirect("/signed-out");
        if let Ok(clear) = HeaderValue::from_str(&sessions::clear_cookie(self.settings.secure)) {
            response
                .headers_mut()
                .insert(http::header::SET_COOKIE, clear);
        }
        response
    }

    fn instance_list(
        &self,
        who: &SignedIn<'_>,
        principal: &Arc<Principal>,
        peer: SocketAddr,
        query: Option<&str>,
    ) -> Answer {
        let filters = ListFilters {
            tag: query_param(query, "tag").unwrap_or_default(),
            state: query_param(query, "state").unwrap_or_default(),
        };
        let catalog = self.api.catalog.current();
        let now = self.api.clock.now();
        if let Some(reason) = catalog.authorizer.authorize_unscoped(
            principal,
            "ec2:DescribeInstances",
            peer.ip(),
            self.settings.secure,
            now,
        ) {
            let text = format!("You may not list instances: {reason}.");
            return html(
                StatusCode::OK,
                pages::instances(who, &[], &filters, Some(&text), None),
            );
        }
        let mut ec2_filters = Vec::new();
        if let Some((key, value)) = filters.tag.split_once('=') {
            ec2_filters.push(eic_ec2::Filter::new(
                eic_ec2::FilterName::Tag(key.trim().to_owned()),
                &[value.trim()],
            ));
        } else if !filters.tag.trim().is_empty() {
            ec2_filters.push(eic_ec2::Filter::new(
                eic_ec2::FilterName::TagKey,
                &[filters.tag.trim()],
            ));
        }
        if !filters.state.is_empty() {
            ec2_filters.push(eic_ec2::Filter::new(
                eic_ec2::FilterName::InstanceStateName,
                &[filters.state.as_str()],
            ));
        }
        let instances = match self.account_instances(&catalog, &principal.account, now) {
            Ok(all) => all,
            Err(e) => {
                tracing::error!(error = %e, "fleet unavailable; console list refused");
                let text = "The fleet cannot be read now; try again.";
                return html(
                    StatusCode::SERVICE_UNAVAILABLE,
                    pages::instances(who, &[], &filters, Some(text), None),
                );
            }
        };
        let mut rows = Vec::new();
        let mut capped = None;
        for instance in instances {
            if !eic_ec2::matches_all(&ec2_filters, &self.api.view(&instance)) {
                continue;
            }
            if rows.len() == MAX_LISTED {
                capped = Some(MAX_LISTED);
                break;
            }
            rows.push(self.row(&catalog, principal, &instance, peer.ip()));
        }
        html(
            StatusCode::OK,
            pages::instances(who, &rows, &filters, None, capped),
        )
    }

    /// The account's static and enrolled instances, by id.
    fn account_instances(
        &self,
        catalog: &Catalog,
        account: &str,
        now: std::time::SystemTime,
    ) -> Result<Vec<Arc<Instance>>, eic_store::StoreError> {
        let mut ids: Vec<String> = catalog
            .registry
            .instances_in_account(account)
            .map(|i| i.id.clone())
            .collect();
        ids.extend(
            self.api
                .instances
                .fleet()
                .all_enrolled()?
                .into_iter()
                .filter(|e| e.enrollment.account == account)
                .map(|e| e.enrollment.instance_id.clone()),
        );
        ids.sort();
        ids.dedup();
        let mut found = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(instance) =
                self.api
                    .instances
                    .in_account(&catalog.registry, &id, account, now)?
            {
                found.push(instance);
            }
        }
        Ok(found)
    }

    /// A row, with the buttons the principal may use (IAM, and the
    /// instance's own state), or why not.
    fn row(
        &self,
        catalog: &Catalog,
        principal: &Principal,
        instance: &Instance,
        source_ip: IpAddr,
    ) -> InstanceRow {
        let caller = Caller {
            principal,
            source_ip,
            secure_transport: self.settings.secure,
            now: self.api.clock.now(),
        };
        let running = instance.state == InstanceState::Running;
        let ssh = if !running {
            Permission::Denied(format!("The instance is {}.", instance.state.name()))
        } else if instance.host_keys.is_empty() {
            Permission::Denied(
                "No host key is registered for this instance, so the console cannot verify it."
                    .into(),
            )
        } else {
            let allowed = catalog
                .authorizer
                .allows(
                    &caller,
                    Operation::SendSSHPublicKey.iam_action(),
                    &instance.id,
                    Some(pages::DEFAULT_OS_USER),
                    Some(instance),
                )
                .and_then(|()| self.route_allowed(catalog, &caller, instance));
            match allowed {
                Ok(()) => Permission::Allowed,
                Err(why) => Permission::Denied(why),
            }
        };
        let serial = if instance.serial_console.is_none()
            || !supports_serial_console(&instance.instance_type)
        {
            Permission::Denied("This instance has no serial console.".into())
        } else if self.settings.serial_gateway.is_none() {
            Permission::Denied("No serial console gateway runs on this server.".into())
        } else if !running {
            Permission::Denied(format!("The instance is {}.", instance.state.name()))
        } else if !self.serial_access_enabled(catalog, &instance.account) {
            Permission::Denied("Serial console access is disabled for this account (eic serial-console-access enable).".into())
        } else {
            match catalog.authorizer.allows(
                &caller,
                Operation::SendSerialConsoleSSHPublicKey.iam_action(),
                &instance.id,
                None,
                Some(instance),
            ) {
                Ok(()) => Permission::Allowed,
                Err(why) => Permission::Denied(why),
            }
        };
        let address = instance
            .private_ip_address
            .map(|ip| ip.to_string())
            .or_else(|| instance.public_ip_address.map(|ip| ip.to_string()));
        InstanceRow {
            id: instance.id.clone(),
            name: instance.tags.get("Name").cloned(),
            state: instance.state.name().to_owned(),
            unavailable: instance.availability == crate::config::Availability::Unavailable,
            instance_type: instance.instance_type.clone(),
            zone: instance.availability_zone.clone(),
            address,
            tags: instance
                .tags
                .iter()
                .filter(|(k, _)| k.as_str() != "Name")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            ssh,
            serial,
        }
    }

    /// Whether a terminal has a way to the instance: through an endpoint,
    /// OpenTunnel must be allowed on it too. The endpoint's node decides
    /// again when the tunnel opens, seeing this node's address as the
    /// source; this is the same decision with the browser's.
    fn route_allowed(
        &self,
        catalog: &Catalog,
        caller: &Caller<'_>,
        instance: &Instance,
    ) -> Result<(), String> {
        let endpoints = catalog
            .registry
            .endpoints_in_account(&instance.account)
            .map(|e| &**e);
        let Route::Endpoint {
            endpoint,
            address,
            port,
        } = route::choose(self.settings.route, instance, endpoints)?
        else {
            return Ok(());
        };
        let asked = crate::tunnel::request::OpenTunnelRequest {
            endpoint_id: endpoint.id.clone(),
            remote_port: port,
            private_ip: address,
            max_duration: None,
        };
        catalog
            .authorizer
            .authorize_open_tunnel(
                caller.principal,
                &TunnelAsked {
                    asked: &asked,
                    duration: crate::tunnel::request::MAX_TUNNEL_DURATION,
                    visible_endpoint: Some(endpoint),
                },
                caller.source_ip,
                caller.secure_transport,
                caller.now,
            )
            .map_err(|why| {
                format!(
                    "The console reaches this instance through {}: {why}",
                    endpoint.id
                )
            })
    }

    /// The recordings the principal may read, newest first.
    fn recording_list(
        &self,
        who: &SignedIn<'_>,
        principal: &Principal,
        peer: SocketAddr,
    ) -> Answer {
        let dir = &self.settings.recordings.dir;
        let all = match eic_recording::list(dir) {
            Ok(all) => all,
            Err(e) => {
                tracing::error!(error = %e, dir = %dir.display(), "recordings unreadable");
                return unavailable(
                    "Recordings unavailable",
                    "The recordings cannot be read now.",
                );
            }
        };
        let rows: Vec<_> = all
            .iter()
            .filter(|meta| self.may_read(principal, peer, meta).is_ok())
            .take(MAX_LISTED)
            .map(recording_row)
            .collect();
        html(StatusCode::OK, pages::recordings(who, &rows))
    }

    /// `eic:ReadRecording` on the recorded instance, in the principal's
    /// own account.
    fn may_read(
        &self,
        principal: &Principal,
        peer: SocketAddr,
        meta: &eic_recording::Metadata,
    ) -> Result<(), String> {
        let catalog = self.api.catalog.current();
        let now = self.api.clock.now();
        let instance = self
            .api
            .instances
            .in_account(
                &catalog.registry,
                &meta.instance_id,
                &principal.account,
                now,
            )
            .ok()
            .flatten();
        if instance.is_none()
            && meta.principal_arn.split(':').nth(4) != Some(principal.account.as_str())
        {
            return Err("The recording is of another account's instance.".into());
        }
        let caller = Caller {
            principal,
            source_ip: peer.ip(),
            secure_transport: self.settings.secure,
            now,
        };
        catalog.authorizer.allows(
            &caller,
            READ_RECORDING,
            &meta.instance_id,
            None,
            instance.as_deref(),
        )
    }

    fn readable_recording(
        &self,
        principal: &Principal,
        peer: SocketAddr,
        id: &str,
    ) -> Option<eic_recording::Metadata> {
        let id = eic_recording::RecordingId::parse(id).ok()?;
        let meta = eic_recording::metadata(&self.settings.recordings.dir, &id).ok()?;
        // A recording the principal may not read is as absent as one that
        // does not exist.
        self.may_read(principal, peer, &meta).ok()?;
        Some(meta)
    }

    fn cast(&self, meta: &eic_recording::Metadata) -> Answer {
        let path = eic_recording::cast_path(&self.settings.recordings.dir, &meta.id);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let mut response = Response::new(Full::new(Bytes::from(bytes)));
                response.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/x-asciicast"),
                );
                response
            }
            Err(_) => not_found(),
        }
    }

    fn serial_access_enabled(&self, catalog: &Catalog, account: &str) -> bool {
        catalog.registry.account(account).is_some_and(|a| {
            self.api
                .serial
                .access
                .enabled(account, a.serial_console_access)
                .unwrap_or(false)
        })
    }

    /// A terminal's WebSocket: checked (CSRF, origin, the per-principal
    /// cap), its key pushed, the SSH session opened, then bridged.
    async fn open_terminal(
        &self,
        peer: SocketAddr,
        mut request: Request<Incoming>,
        session: &Session,
        principal: Arc<Principal>,
        instance_id: &str,
        target: Target,
    ) -> Answer {
        let query = request.uri().query();
        if !query_param(query, "csrf").is_some_and(|t| session.csrf_matches(&t))
            || !same_origin(request.headers(), true)
        {
            return plain(
                StatusCode::FORBIDDEN,
                "missing or wrong CSRF token or origin",
            );
        }
        if let Err(e) = websocket::check(request.headers()) {
            let why = match e {
                HandshakeError::NotWebSocket => "a terminal is a WebSocket",
                HandshakeError::Version => "only WebSocket version 13 is supported",
                HandshakeError::Key => "Sec-WebSocket-Key must be 16 bytes in base64",
            };
            return plain(StatusCode::BAD_REQUEST, why);
        }
        let Some(slot) = TerminalSlot::take(
            &self.terminals,
            &principal.arn,
            self.settings.max_terminals_per_principal,
        ) else {
            return plain(StatusCode::TOO_MANY_REQUESTS, "too many terminals open");
        };
        let user_agent =
            crate::audit::user_agent(request.headers()).map(|ua| format!("eic-console ({ua})"));
        let upgrade = hyper::upgrade::on(&mut request);
        let job = TerminalJob {
            api: self.api.clone(),
            principal,
            instance_id: instance_id.to_owned(),
            target,
            settings: self.settings.clone(),
            source_ip: peer.ip(),
            user_agent,
            stop: self.stop.clone(),
        };
        tokio::spawn(async move {
            let _slot = slot;
            match upgrade.await {
                Ok(upgraded) => {
                    let ws = WebSocketStream::from_raw_socket(
                        TokioIo::new(upgraded),
                        Role::Server,
                        Some(terminal::websocket_config()),
                    )
                    .await;
                    job.run(ws).await;
                }
                Err(e) => tracing::debug!(error = %e, "console terminal upgrade failed"),
            }
        });
        websocket::switching_protocols(request.headers())
    }
}

/// What a terminal is a session of.
enum Target {
    /// SSH to the instance as an OS user.
    Ssh { user: String },
    /// The instance's serial console (port 0), through the gateway.
    Serial,
}

/// Everything one terminal needs once its WebSocket is open.
struct TerminalJob {
    api: Arc<Api>,
    principal: Arc<Principal>,
    instance_id: String,
    target: Target,
    settings: Arc<ConsoleSettings>,
    source_ip: IpAddr,
    user_agent: Option<String>,
    stop: watch::Receiver<bool>,
}

impl TerminalJob {
    async fn run<S>(self, mut ws: WebSocketStream<S>)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        use futures_util::SinkExt;
        match self.connect().await {
            Ok((shell, recording)) => {
                self.api.metrics.console_terminal_opened();
                let ended = terminal::bridge(
                    ws,
                    shell,
                    self.settings.idle_timeout,
                    recording,
                    self.stop.clone(),
                )
                .await;
                self.api
                    .metrics
                    .console_terminal_closed(ended.bytes_to_instance, ended.bytes_from_instance);
                tracing::info!(
                    principal = %self.principal.arn,
                    instance = %self.instance_id,
                    reason = %ended.reason,
                    bytes_from_instance = ended.bytes_from_instance,
                    "console terminal ended"
                );
            }
            Err(message) => {
                let _ = ws.send(terminal::error_message(&message)).await;
                let _ = ws.close(None).await;
            }
        }
    }

    /// Pushes a fresh key as the principal, then logs in with it: to the
    /// instance's sshd, or to the serial gateway as `<id>.port0`.
    async fn connect(&self) -> Result<(terminal::Shell, Option<SessionRecording>), String> {
        let key = SessionKey::generate().map_err(|e| e.to_string())?;
        let (operation, body) = match &self.target {
            Target::Ssh { user } => (
                Operation::SendSSHPublicKey,
                serde_json::json!({
                    "InstanceId": self.instance_id,
                    "InstanceOSUser": user,
                    "SSHPublicKey": key.public_openssh,
                }),
            ),
            Target::Serial => (
                Operation::SendSerialConsoleSSHPublicKey,
                serde_json::json!({
                    "InstanceId": self.instance_id,
                    "SerialPort": 0,
                    "SSHPublicKey": key.public_openssh,
                }),
            ),
        };
        let push: PushRequest = eic_wire::parse_request(operation, body.to_string().as_bytes())
            .map_err(|e| e.message)?;
        let origin = Origin {
            source_ip: self.source_ip,
            user_agent: self.user_agent.as_deref(),
            secure_transport: self.settings.secure,
        };
        self.api
            .push_for_console(self.principal.clone(), push, &origin)
            .await
            .map_err(|e| format!("{}: {}", e.code.as_str(), e.message))?;
        let catalog = self.api.catalog.current();
        let instance = self
            .api
            .instances
            .in_account(
                &catalog.registry,
                &self.instance_id,
                &self.principal.account,
                self.api.clock.now(),
            )
            .ok()
            .flatten()
            .ok_or_else(|| format!("Instance {} not found.", self.instance_id))?;
        let (cols, rows) = INITIAL_SIZE;
        let connecting = async {
            match &self.target {
                Target::Ssh { user } => {
                    let login = |destination| terminal::Login {
                        destination,
                        host_keys: instance.host_keys.clone(),
                        user,
                        key: key.private_key().clone(),
                        cols,
                        rows,
                    };
                    match route::choose(
                        self.settings.route,
                        &instance,
                        catalog
                            .registry
                            .endpoints_in_account(&instance.account)
                            .map(|e| &**e),
                    )? {
                        Route::Direct(address) => {
                            let destination = address.to_string();
                            let tcp = TcpStream::connect(address)
                                .await
                                .map_err(|e| format!("Could not connect to {address}: {e}."))?;
                            let _ = tcp.set_nodelay(true);
                            terminal::open_shell(tcp, login(&destination)).await
                        }
                        Route::Endpoint {
                            endpoint,
                            address,
                            port,
                        } => {
                            let destination = format!(
                                "{} through {}",
                                SocketAddr::new(address, port),
                                endpoint.id
                            );
                            let tunnel = self.tunnel(endpoint, address, port).await?;
                            terminal::open_shell(tunnel, login(&destination)).await
                        }
                    }
                }
                Target::Serial => {
                    let gateway = self
                        .settings
                        .serial_gateway
                        .as_ref()
                        .ok_or("No serial console gateway runs on this server.")?;
                    let address = gateway.address;
                    let tcp = TcpStream::connect(address)
                        .await
                        .map_err(|e| format!("Could not connect to {address}: {e}."))?;
                    let _ = tcp.set_nodelay(true);
                    let user = format!("{}.port0", instance.id);
                    let destination = format!("the serial console gateway at {address}");
                    let login = terminal::Login {
                        destination: &destination,
                        host_keys: vec![gateway.host_key.clone()],
                        user: &user,
                        key: key.private_key().clone(),
                        cols,
                        rows,
                    };
                    terminal::open_shell(tcp, login).await
                }
            }
        };
        let shell = tokio::time::timeout(self.settings.connect_timeout, connecting)
            .await
            .map_err(|_| {
                format!(
                    "Connecting to instance {} timed out after {} seconds.",
                    instance.id,
                    self.settings.connect_timeout.as_secs()
                )
            })??;
        // The serial gateway records its sessions itself, this one among them.
        let Target::Ssh { user } = &self.target else {
            return Ok((shell, None));
        };
        let recording = SessionRecording::start(
            &self.settings.recordings,
            Start {
                source: eic_recording::Source::Console,
                principal_arn: &self.principal.arn,
                instance_id: &instance.id,
                os_user: Some(user),
                serial_port: None,
                cols,
                rows,
            },
        )
        .map_err(|e| {
            tracing::error!(error = %e, "cannot start a recording; terminal refused");
            "This session cannot be recorded now, so it is not opened.".to_owned()
        })?;
        Ok((shell, Some(recording)))
    }

    /// A tunnel through `endpoint` to `address:port`, opened as the CLI
    /// v2 opens one, signed with a short-lived credential of the signed-in
    /// principal: the endpoint's node (this one or another) authorizes
    /// OpenTunnel as the principal, applies its rules and caps, and audits
    /// the tunnel.
    async fn tunnel(
        &self,
        endpoint: &crate::registry::Endpoint,
        address: IpAddr,
        port: u16,
    ) -> Result<tokio::io::DuplexStream, String> {
        let tls = self.settings.endpoint_tls.clone().ok_or_else(|| {
            format!(
                "This console trusts no certificates, so it cannot check {}'s.",
                endpoint.id
            )
        })?;
        let issued = self.api.credential_for(&self.principal.arn);
        let credentials = aws_credential_types::Credentials::new(
            issued.access_key_id,
            issued.secret_access_key.expose().clone(),
            Some(issued.session_token),
            Some(issued.expiration),
            "eic-console",
        );
        let identity = credentials.into();
        let target = dial::Endpoint {
            id: endpoint.id.clone(),
            dns_name: endpoint.dns_name.clone(),
        };
        let signer = dial::Signer {
            identity: &identity,
            region: &self.api.region,
            now: self.api.clock.now(),
        };
        let refused =
            |e: anyhow::Error| format!("Could not open a tunnel through {}: {e:#}.", endpoint.id);
        let url = dial::presigned_url(&signer, &target, address, port).map_err(refused)?;
        let user_agent = self.user_agent.as_deref().unwrap_or("eic-console");
        let tunnel = dial::open(&url, &target, tls, user_agent)
            .await
            .map_err(refused)?;
        Ok(dial::into_stream(tunnel))
    }
}

/// One of a principal's terminals, counted until dropped.
struct TerminalSlot {
    terminals: Arc<Mutex<HashMap<String, usize>>>,
    arn: String,
}

impl TerminalSlot {
    fn take(
        terminals: &Arc<Mutex<HashMap<String, usize>>>,
        arn: &str,
        max: usize,
    ) -> Option<TerminalSlot> {
        let mut open = terminals.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(arn.to_owned()).or_default();
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(TerminalSlot {
            terminals: terminals.clone(),
            arn: arn.to_owned(),
        })
    }
}

impl Drop for TerminalSlot {
    fn drop(&mut self) {
        let mut open = self.terminals.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.arn) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.arn);
            }
        }
    }
}

/// A browser's request from one of the console's own pages: its `Origin`
/// (when sent; `required` for WebSockets, where browsers always send it)
/// names the host the request went to.
fn same_origin(headers: &HeaderMap, required: bool) -> bool {
    let Some(origin) = headers
        .get(http::header::ORIGIN)
        .and_then(|v| v.to_str().ok())
    else {
        return !required;
    };
    let Some(host) = headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let host_of_origin = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    host_of_origin == Some(host)
}

fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

async fn read_form(request: Request<Incoming>) -> Result<HashMap<String, String>, Answer> {
    let body = Limited::new(request.into_body(), MAX_FORM_BYTES)
        .collect()
        .await
        .map_err(|_| plain(StatusCode::PAYLOAD_TOO_LARGE, "form too large"))?
        .to_bytes();
    Ok(form_urlencoded::parse(&body).into_owned().collect())
}

fn html(status: StatusCode, body: String) -> Answer {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

fn plain(status: StatusCode, text: &'static str) -> Answer {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn not_found() -> Answer {
    html(
        StatusCode::NOT_FOUND,
        pages::message("Not found", "There is no such page.", true),
    )
}

fn redirect(to: &'static str) -> Answer {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SEE_OTHER;
    response
        .headers_mut()
        .insert(http::header::LOCATION, HeaderValue::from_static(to));
    response
}

fn recording_row(meta: &eic_recording::Metadata) -> pages::RecordingRow {
    let target = meta.target().unwrap_or_else(|| "—".to_owned());
    let duration = match meta.ended_at {
        Some(ended) => {
            let secs = (ended - meta.started_at).whole_seconds().max(0);
            format!("{}m {:02}s", secs / 60, secs % 60)
        }
        None => "running or interrupted".to_owned(),
    };
    let kind = match meta.kind {
        eic_recording::Kind::Ssh => "SSH",
        eic_recording::Kind::Serial => "serial",
    };
    pages::RecordingRow {
        id: meta.id.to_string(),
        principal_arn: meta.principal_arn.clone(),
        instance_id: meta.instance_id.clone(),
        target,
        kind: kind.to_owned(),
        started_at: meta.started_rfc3339(),
        duration,
        bytes: meta.bytes_out,
    }
}

/// The console's recordings directory and its limits.
pub fn recording_settings(config: &crate::config::Config) -> RecordingSettings {
    RecordingSettings {
        dir: config.recordings_dir(),
        record_input: config.recordings.record_input,
        max_bytes: config.recordings.max_bytes_per_session,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn only_the_consoles_own_origin_passes() {
        let ours = headers(&[
            ("host", "127.0.0.1:8443"),
            ("origin", "https://127.0.0.1:8443"),
        ]);
        assert!(same_origin(&ours, true));
        let theirs = headers(&[
            ("host", "127.0.0.1:8443"),
            ("origin", "https://evil.example"),
        ]);
        assert!(!same_origin(&theirs, true));
        assert!(!same_origin(&theirs, false));
        let none = headers(&[("host", "127.0.0.1:8443")]);
        assert!(same_origin(&none, false));
        assert!(!same_origin(&none, true));
        let null = headers(&[("host", "127.0.0.1:8443"), ("origin", "null")]);
        assert!(!same_origin(&null, false));
    }

    #[test]
    fn a_principal_holds_at_most_its_terminals() {
        let terminals = Arc::default();
        let a = TerminalSlot::take(&terminals, "arn:a", 2).unwrap();
        let _b = TerminalSlot::take(&terminals, "arn:a", 2).unwrap();
        assert!(TerminalSlot::take(&terminals, "arn:a", 2).is_none());
        assert!(TerminalSlot::take(&terminals, "arn:other", 2).is_some());
        drop(a);
        assert!(TerminalSlot::take(&terminals, "arn:a", 2).is_some());
    }
}
