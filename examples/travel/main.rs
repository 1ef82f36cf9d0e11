//! The travel-booking example in miniature: a front-end service and a checkout service on
//! plain HTTP upstreams behind one Trellis. Run it with `cargo run --example travel`, then:
//!
//! ```text
//! curl -H 'Host: frontend.travel.internal' http://127.0.0.1:8080/
//! curl -H 'Host: frontend.travel.internal' http://127.0.0.1:8080/api/checkout/cart
//! curl -H 'Host: checkout.travel.internal' http://127.0.0.1:8080/
//! ```
//!
//! The upstreams here are tiny in-process HTTP servers; the routing is all in `trellis.json`.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    for (name, port) in [
        ("frontend", 9001),
        ("checkout-a", 9002),
        ("checkout-b", 9003),
    ] {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        tokio::spawn(upstream(name, listener));
    }
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/travel/trellis.json");
    let data_dir = std::env::temp_dir().join("trellis-travel-example");
    eprintln!("upstreams on 127.0.0.1:9001-9003; try:");
    eprintln!("  curl -H 'Host: frontend.travel.internal' http://127.0.0.1:8080/");
    eprintln!("  curl -H 'Host: frontend.travel.internal' http://127.0.0.1:8080/api/checkout/cart");
    trellis_gateway::cli::run([
        "trellis",
        "serve",
        "--config",
        config,
        "--data-dir",
        &data_dir.to_string_lossy(),
    ])
    .await
}

async fn upstream(name: &'static str, listener: tokio::net::TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(
                move |req: http::Request<hyper::body::Incoming>| async move {
                    let body = format!(
                        "{{\"service\":\"{name}\",\"path\":\"{}\",\"network\":\"{}\"}}\n",
                        req.uri().path(),
                        req.headers()
                            .get("x-amzn-lattice-network")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                    );
                    Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(body))))
                },
            );
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
