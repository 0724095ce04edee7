//! The benchmark reference: a bare hyper server answering every request with
//! a fixed success body, on the same runtime and HTTP settings as `eic
//! server`. `bench/api.sh` measures eic against it in the same run.
#![allow(clippy::unwrap_used)] // a panic is how a test or benchmark reports failure

use std::convert::Infallible;

use bytes::Bytes;
use http::{HeaderValue, Response};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening bare {}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = service_fn(|_request| async {
                let mut reply = Response::new(Full::new(Bytes::from_static(
                    br#"{"RequestId":"f740e31a-d9ff-4976-b907-d3ecbefd2877","Success":true}"#,
                )));
                reply.headers_mut().insert(
                    "content-type",
                    HeaderValue::from_static("application/x-amz-json-1.1"),
                );
                Ok::<_, Infallible>(reply)
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
