//! The console's static files, built into the binary: xterm.js, its fit
//! addon and its stylesheet from npm (`console/package-lock.json`, fetched
//! by `build.rs`), and the console's own script and style. Served with
//! their digests as ETags and a day's caching, since the binary is their
//! only source.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;

pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

const ASSETS: [Asset; 5] = [
    Asset {
        name: "xterm.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/console/node_modules/@xterm/xterm/lib/xterm.js"
        )),
    },
    Asset {
        name: "xterm.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/console/node_modules/@xterm/xterm/css/xterm.css"
        )),
    },
    Asset {
        name: "addon-fit.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/console/node_modules/@xterm/addon-fit/lib/addon-fit.js"
        )),
    },
    Asset {
        name: "console.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/console/assets/console.js"
        )),
    },
    Asset {
        name: "console.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/console/assets/console.css"
        )),
    },
];

pub fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

pub fn response(asset: &'static Asset) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(asset.body)));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=86400"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_built_in_and_nothing_else_is_found() {
        for name in [
            "xterm.js",
            "xterm.css",
            "addon-fit.js",
            "console.js",
            "console.css",
        ] {
            assert!(find(name).is_some_and(|a| !a.body.is_empty()), "{name}");
        }
        assert!(find("../Cargo.toml").is_none());
        assert!(find("").is_none());
    }
}
