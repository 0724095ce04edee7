//! The EC2 Instance Connect Endpoint's tunnel, apart from its listener
//! (`server::tunnel`): the `/openTunnel` request ([`request`], pure), the
//! relay between the client's WebSocket and the instance's TCP connection
//! ([`relay`]), and a client's side of it ([`dial`]: the presigned URL, the
//! TLS and the handshake), used by `eic open-tunnel` and the browser console.

pub mod dial;
pub mod relay;
pub mod request;
