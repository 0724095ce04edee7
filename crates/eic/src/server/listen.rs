//! The listeners every role serves on: binding (before anything is
//! written), the `listening <role> <addr>` announcements, HTTP/1.1 on hyper
//! with header and body bounds, read timeouts, a connection cap taken
//! before `accept`, optional TLS and a drain on stop; and the API
//! listener's translation between hyper and the [`Api`] pipeline.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use eic_sigv4::RequestParts;
use eic_wire::{ApiError, ErrorCode, CONTENT_TYPE, MAX_BODY_BYTES};

use super::api::{Api, ApiRequest, ApiResponse};
use super::ec2::{is_ec2_query, Ec2Response};
use super::http_errors::AwsShapedErrors;
use super::tls::Tls;

/// A slow client may take this long to send its headers, and as long again
/// for its body; then the connection is dropped.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a drain waits for in-flight requests before giving up on them.
pub(crate) const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);
/// Bounds an EC2 Query body: above the largest legitimate DescribeInstances
/// (1,000 ids, or 200 filter values of 255 characters percent-encoded),
/// below `eic_ec2::MAX_BODY_BYTES`.
const EC2_MAX_BODY_BYTES: usize = 256 * 1024;
/// Bounds the request line and headers together.
const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Connections the kernel completes and queues for `accept`: above the
/// default of 128, so a burst (or a listener at its connection cap) does
/// not make clients' SYNs drop and retry for seconds.
const LISTEN_BACKLOG: u32 = 4096;

pub async fn bind(role: &str, addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let listen = || -> std::io::Result<TcpListener> {
        let socket = match addr {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(LISTEN_BACKLOG)
    };
    listen().map_err(|e| anyhow::anyhow!("cannot listen on {addr} for {role}: {e}"))
}

/// The line scripts and tests wait for: `listening <role> <address>`.
pub fn announce(role: &str, addr: SocketAddr) {
    print_line(&format!("listening {role} {addr}"));
    tracing::info!(role, %addr, "listening");
}

/// A line on stdout, flushed; a reader that went away (a closed pipe) is no
/// reason to stop serving, as `println!`'s panic would make it.
pub fn print_line(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// A bound socket and how to serve it.
pub struct HttpListener {
    pub tcp: TcpListener,
    pub tls: Option<Tls>,
    pub max_connections: usize,
    /// hyper's own refusals (unparsable requests) in AWS's error shape.
    pub aws_errors: bool,
}

/// Serves HTTP/1.1 (over TLS when given) on `listener` with `handler` until
/// `stop`, then drains. Every role's listener shares these bounds and
/// timeouts.
pub async fn serve_http<H, F>(listener: HttpListener, handler: H, mut stop: watch::Receiver<bool>)
where
    H: Fn(SocketAddr, Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: std::future::Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send + 'static,
{
    let HttpListener {
        tcp: listener,
        tls,
        max_connections,
        aws_errors,
    } = listener;
    let slots = Arc::new(Semaphore::new(max_connections));
    loop {
        // A slot first: at the limit, connections wait in the kernel's
        // backlog rather than each costing a task and buffers here.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            _ = stop.changed() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors or similar: back off briefly
                    // rather than spin; the listener itself stays up.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        let service = service_fn(move |request| handler(peer, request));
        let http = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(READ_TIMEOUT)
            .max_buf_size(MAX_HEADER_BYTES.max(8192))
            // A client that shuts down its write side after its request
            // (`shutdown(SHUT_WR)`, `nc -N`) still gets its answer.
            .half_close(true)
            .clone();
        let tls = tls.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let served = match tls {
                None => {
                    let io = TokioIo::new(AwsShapedErrors::new(stream, aws_errors));
                    serve_until_stopped(http.serve_connection(io, service).with_upgrades(), stop)
                        .await
                }
                Some(tls) => match tls.accept(stream).await {
                    Ok(stream) => {
                        let io = TokioIo::new(AwsShapedErrors::new(stream, aws_errors));
                        serve_until_stopped(
                            http.serve_connection(io, service).with_upgrades(),
                            stop,
                        )
                        .await
                    }
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                },
            };
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    // Every connection holds a slot until it ends: having them all back is
    // the drain's end.
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(DRAIN_TIMEOUT, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("drain timed out; closing remaining connections");
    }
}

/// Serves one connection; once `stop` is set, finishes the request in
/// flight and closes. A connection handed over by an upgrade (a tunnel's
/// WebSocket) is its role's from then on.
async fn serve_until_stopped<I, S>(
    connection: hyper::server::conn::http1::UpgradeableConnection<I, S>,
    mut stop: watch::Receiver<bool>,
) -> hyper::Result<()>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<Incoming, ResBody = Full<Bytes>>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tokio::pin!(connection);
    tokio::select! {
        served = connection.as_mut() => served,
        _ = stopped(&mut stop) => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    }
}

/// Resolves once the server is stopping (or its stop channel is gone).
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopping| *stopping).await;
}

/// Answers one request on the API listener: `/ready`, the body bounds,
/// then the pipeline.
pub async fn handle_api(
    api: Arc<Api>,
    peer: SocketAddr,
    request: Request<Incoming>,
    secure_transport: bool,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    // For load balancers: 200 when this node can take pushes, 503 when its
    // store cannot (Redis unreachable), so traffic moves to other nodes.
    if parts.method == http::Method::GET && parts.uri.path() == "/ready" {
        let (status, text) = match api.ready().await {
            Ok(()) => (StatusCode::OK, "ready\n".to_owned()),
            Err(e) => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {e:#}\n"),
            ),
        };
        let mut reply = Response::new(Full::new(Bytes::from(text)));
        *reply.status_mut() = status;
        if let Ok(id) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
            reply.headers_mut().insert("x-amzn-requestid", id);
        }
        return Ok(reply);
    }
    // EC2 Query bodies (DescribeInstances with 1,000 ids or long filter
    // values) are larger than any Instance Connect body; both are bounded,
    // and refused in their own API's error shape.
    let ec2 = is_ec2_query(parts.method.as_str(), parts.uri.path(), &parts.headers);
    let limit = if ec2 {
        EC2_MAX_BODY_BYTES
    } else {
        MAX_BODY_BYTES
    };
    let too_large = || {
        if ec2 {
            let error = eic_ec2::Ec2Error::invalid_parameter_value(format!(
                "The request body exceeds {limit} bytes."
            ));
            return ec2_refusal(&error);
        }
        let error = ApiError::new(
            ErrorCode::SerializationException,
            format!("The request body exceeds {limit} bytes."),
        );
        reply(refusal(&error, 413))
    };
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Ok(too_large());
    }
    let body = match tokio::time::timeout(READ_TIMEOUT, Limited::new(body, limit).collect()).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => return Ok(too_large()),
        Ok(Err(_)) | Err(_) => {
            let message = "The request body could not be read completely.";
            if ec2 {
                return Ok(ec2_refusal(&eic_ec2::Ec2Error::invalid_parameter_value(
                    message,
                )));
            }
            let error = ApiError::new(ErrorCode::SerializationException, message);
            return Ok(reply(refusal(&error, 400)));
        }
    };
    let request = ApiRequest {
        http: RequestParts {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query: parts.uri.query().unwrap_or(""),
            headers: &parts.headers,
            body: &body,
        },
        source_ip: peer.ip(),
        secure_transport,
    };
    if ec2 {
        return Ok(ec2_reply(api.handle_ec2(request).await));
    }
    let response = api.handle(request).await;
    Ok(reply(response))
}

fn ec2_refusal(error: &eic_ec2::Ec2Error) -> Response<Full<Bytes>> {
    let request_id = uuid::Uuid::new_v4().to_string();
    ec2_reply(Ec2Response {
        status: error.status(),
        body: error.render(&request_id),
        request_id,
    })
}

fn ec2_reply(response: Ec2Response) -> Response<Full<Bytes>> {
    let mut reply = Response::new(Full::new(Bytes::from(response.body)));
    *reply.status_mut() =
        StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = reply.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(eic_ec2::CONTENT_TYPE),
    );
    if let Ok(id) = HeaderValue::from_str(&response.request_id) {
        headers.insert("x-amzn-requestid", id);
    }
    reply
}

fn refusal(error: &ApiError, status: u16) -> ApiResponse {
    let mut response = ApiResponse::error(uuid::Uuid::new_v4().to_string(), error);
    response.status = status;
    response
}

fn reply(response: ApiResponse) -> Response<Full<Bytes>> {
    let mut reply = Response::new(Full::new(Bytes::from(response.body)));
    *reply.status_mut() =
        StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = reply.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(CONTENT_TYPE),
    );
    if let Ok(id) = HeaderValue::from_str(&response.request_id) {
        headers.insert("x-amzn-requestid", id);
    }
    if let Some(code) = response.error {
        headers.insert("x-amzn-errortype", HeaderValue::from_static(code.as_str()));
    }
    reply
}
