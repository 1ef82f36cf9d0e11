//! The travel-booking example in miniature: a front-end service and a checkout service on
//! plain HTTP upstreams, and a booking function behind the front-end's `/api/bookings`, all
//! behind one Trellis. Run it with `cargo run --example travel`, then:
//!
//! ```text
//! curl -H 'Host: frontend.travel.internal' http://127.0.0.1:8080/
//! curl -H 'Host: frontend.travel.internal' http://127.0.0.1:8080/api/checkout/cart
//! curl -H 'Host: checkout.travel.internal' http://127.0.0.1:8080/
//! curl -H 'Host: frontend.travel.internal' http://127.0.0.1:8080/api/bookings \
//!      -d '{"flight":"TR142","date":"2026-12-24","seats":2,
//!           "passenger":{"name":"Ada Lovelace","email":"ada@example.com"}}'
//! curl -H 'Host: frontend.travel.internal' http://127.0.0.1:8080/api/bookings \
//!      -d '{"flight":"TR142","date":"2026-02-30","passenger":{"name":"Ada","email":"ada@example.com"}}'
//! ```
//!
//! The upstreams here are tiny in-process HTTP servers; the routing is all in `trellis.json`.
//! The booking function is `booking-fn/`, a `lambda_runtime` crate: before Trellis starts, this
//! builds it with cargo (into `booking-fn/target`, or `$BOOKING_FN_TARGET_DIR`) and packages
//! the binary as `booking-fn/target/lambda/booking-fn/bootstrap`, the folder `trellis.json`
//! declares as the `booking` function's code. The folder is run in place: `cargo lambda build`
//! in `booking-fn/` writes the same file, and the next fresh worker runs the new binary. Its
//! `Environment` gives the currency and fare it prices bookings in.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};

mod package;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let target_dir = std::env::var_os("BOOKING_FN_TARGET_DIR").map(std::path::PathBuf::from);
    package::build(target_dir.as_deref()).map_err(anyhow::Error::msg)?;
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
    eprintln!(
        "  curl -H 'Host: frontend.travel.internal' http://127.0.0.1:8080/api/bookings \\\n    \
         -d '{{\"flight\":\"TR142\",\"date\":\"2026-12-24\",\"seats\":2,\
         \"passenger\":{{\"name\":\"Ada Lovelace\",\"email\":\"ada@example.com\"}}}}'"
    );
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
