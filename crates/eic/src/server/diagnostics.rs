//! The diagnostics listener (role `diagnostics`, `[diagnostics] listen`),
//! off the API's port: `/metrics` (Prometheus's text format, see
//! [`crate::metrics`]), `/healthz` (the process answers: no dependency is
//! asked) and `/readyz` (this node can take pushes: its store answers and
//! has room, its audit log can admit work; 503 with a JSON reason
//! otherwise). Unauthenticated and read-only.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;

use super::api::Api;
use crate::metrics::Metrics;

/// Scrapers and health checks are few; this bounds what a stranger who
/// reaches the port can hold.
pub const DIAGNOSTICS_CONNECTIONS: usize = 64;

pub struct Diagnostics {
    pub api: Arc<Api>,
    pub metrics: Arc<Metrics>,
}

impl Diagnostics {
    pub async fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, Infallible> {
        if request.method() != http::Method::GET {
            return Ok(reply(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain",
                "GET only\n".into(),
            ));
        }
        Ok(match request.uri().path() {
            "/metrics" => reply(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                self.metrics.encode(),
            ),
            "/healthz" => reply(
                StatusCode::OK,
                "application/json",
                r#"{"status":"ok"}"#.into(),
            ),
            "/readyz" => match self.api.ready().await {
                Ok(()) => reply(
                    StatusCode::OK,
                    "application/json",
                    r#"{"status":"ready"}"#.into(),
                ),
                Err(e) => reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "application/json",
                    serde_json::json!({"status": "not ready", "reason": format!("{e:#}")})
                        .to_string(),
                ),
            },
            _ => reply(
                StatusCode::NOT_FOUND,
                "text/plain",
                "/metrics, /healthz or /readyz\n".into(),
            ),
        })
    }
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    response
}
