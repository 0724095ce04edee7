//! The EC2 Instance Connect Endpoint's tunnel, apart from its listener
//! (`server::tunnel`): the `/openTunnel` request ([`request`], pure) and
//! the relay between the client's WebSocket and the instance's TCP
//! connection ([`relay`]).

pub mod relay;
pub mod request;
