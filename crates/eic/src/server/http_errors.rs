//! AWS's error shape for the requests hyper refuses itself.
//!
//! hyper answers a request it cannot parse (a bad request line or header,
//! a bad or repeated Content-Length, obs-fold, too many or too large
//! headers, an over-long URI) with a bare status line before any service
//! runs, and offers no hook to shape that answer. Every answer eic's own
//! code makes carries `x-amzn-RequestId`; so an error response without one
//! was made by hyper, and this wrapper around the connection replaces it on
//! its way out with the same status in AWS's shape: `x-amzn-RequestId`,
//! `x-amzn-ErrorType` and a JSON body. A header read that times out is
//! closed by hyper without an answer, which stays so.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use eic_wire::{ApiError, ErrorCode, CONTENT_TYPE};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A connection whose bare hyper error responses leave in AWS's shape.
pub struct AwsShapedErrors<S> {
    inner: S,
    /// Off for listeners that do not speak AWS's protocol.
    enabled: bool,
    /// A replacement response still being written.
    pending: Vec<u8>,
    written: usize,
}

impl<S> AwsShapedErrors<S> {
    pub fn new(inner: S, enabled: bool) -> Self {
        AwsShapedErrors {
            inner,
            enabled,
            pending: Vec::new(),
            written: 0,
        }
    }
}

/// The status of a response head that hyper made for a parse error: a 4xx
/// without the request id every eic answer carries.
fn bare_error_status(buf: &[u8]) -> Option<u16> {
    let rest = buf.strip_prefix(b"HTTP/1.1 4")?;
    let status: u16 = std::str::from_utf8(rest.get(..2)?).ok()?.parse().ok()?;
    let head_end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(buf.len());
    let head = buf[..head_end].to_ascii_lowercase();
    let tagged = head
        .windows(b"x-amzn-requestid".len())
        .any(|w| w == b"x-amzn-requestid");
    (!tagged).then_some(400 + status)
}

/// The AWS-shaped answer for `status`; the connection closes after it, as
/// hyper's own would.
pub fn aws_shaped(status: u16) -> Vec<u8> {
    let (reason, message) = match status {
        431 => (
            "Request Header Fields Too Large",
            "The request's headers are too many or too large.",
        ),
        414 => ("URI Too Long", "The request URI is too long."),
        _ => (
            "Bad Request",
            "The request is not well-formed HTTP/1.1 (request line, header names and values, Content-Length).",
        ),
    };
    let status = if matches!(status, 414 | 431) {
        status
    } else {
        400
    };
    let body = ApiError::new(ErrorCode::SerializationException, message).to_body();
    let request_id = uuid::Uuid::new_v4();
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: {CONTENT_TYPE}\r\nx-amzn-requestid: {request_id}\r\nx-amzn-errortype: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        ErrorCode::SerializationException.as_str(),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}

impl<S: AsyncWrite + Unpin> AwsShapedErrors<S> {
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n =
                ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for AwsShapedErrors<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AwsShapedErrors<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        if let Some(status) = self.enabled.then(|| bare_error_status(buf)).flatten() {
            // hyper's whole answer (head and empty body) is in `buf`, since
            // writes are not vectored: it is swallowed and replaced.
            self.pending = aws_shaped(status);
            self.written = 0;
            return match self.poll_pending(cx) {
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                _ => Poll::Ready(Ok(buf.len())),
            };
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    /// Not vectored, so hyper flattens each response into one buffer and
    /// its error answers arrive whole in one `poll_write`.
    fn is_write_vectored(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_untagged_error_heads_are_hypers() {
        assert_eq!(
            bare_error_status(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n"),
            Some(400)
        );
        assert_eq!(
            bare_error_status(b"HTTP/1.1 431 Request Header Fields Too Large\r\n\r\n"),
            Some(431)
        );
        assert_eq!(
            bare_error_status(b"HTTP/1.1 400 Bad Request\r\nX-Amzn-RequestId: 1\r\n\r\n{}"),
            None
        );
        assert_eq!(bare_error_status(b"HTTP/1.1 200 OK\r\n\r\n"), None);
        assert_eq!(bare_error_status(b"{\"partial\": \"body\"}"), None);
    }

    #[test]
    fn the_replacement_is_an_aws_error() {
        let text = String::from_utf8(aws_shaped(431)).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 "));
        assert!(head.contains("x-amzn-errortype: SerializationException"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["__type"], "SerializationException");
    }
}
