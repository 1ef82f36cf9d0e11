//! The data plane driven by real HTTP/1.1, HTTP/2, gRPC-shaped and TLS clients through the
//! built binary, configured with the AWS SDK.

mod common;

use std::time::Duration;

use aws_sdk_vpclattice::types::*;
use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};

#[tokio::test]
async fn weighted_forwarding_splits_80_20() {
    let dir = tempfile::tempdir().unwrap();
    let t = Trellis::start(dir.path(), &[]);
    let c = t.lattice();
    let blue = Echo::start("blue").await;
    let green = Echo::start("green").await;
    let tg_blue = target_group(&c, "blue-tg", &[blue.addr]).await;
    let tg_green = target_group(&c, "green-tg", &[green.addr]).await;
    let (_, dns, _) = service(&c, "checkout", forward(&[(&tg_blue, 80), (&tg_green, 20)])).await;

    let client = http_client();
    let mut blue_hits = 0;
    const N: usize = 2000;
    for _ in 0..N {
        let r = send(&client, t.listen, "GET", &dns, "/", &[]).await;
        assert_eq!(r.status, 200);
        if r.upstream() == "blue" {
            blue_hits += 1;
        }
    }
    let share = blue_hits as f64 / N as f64;
    eprintln!("blue share over {N} requests: {share:.3}");
    assert!((share - 0.80).abs() < 0.03, "blue got {share}");
}

#[tokio::test]
async fn rules_match_in_priority_order_before_the_default_action() {
    let dir = tempfile::tempdir().unwrap();
    let t = Trellis::start(dir.path(), &[]);
    let c = t.lattice();
    let stable = Echo::start("stable").await;
    let beta = Echo::start("beta").await;
    let api = Echo::start("api").await;
    let tg_stable = target_group(&c, "stable-tg", &[stable.addr]).await;
    let tg_beta = target_group(&c, "beta-tg", &[beta.addr]).await;
    let tg_api = target_group(&c, "api-tg", &[api.addr]).await;
    let (svc, dns, listener) = service(&c, "front", forward(&[(&tg_stable, 1)])).await;
    let rule = |name: &str, prio: i32, m: HttpMatch, tg: &str| {
        c.create_rule()
            .service_identifier(&svc)
            .listener_identifier(&listener)
            .name(name)
            .priority(prio)
            .r#match(RuleMatch::HttpMatch(m))
            .action(forward(&[(tg, 1)]))
            .send()
    };
    rule(
        "beta-header",
        5,
        HttpMatch::builder()
            .header_matches(
                HeaderMatch::builder()
                    .name("x-channel")
                    .r#match(HeaderMatchType::Prefix("beta".into()))
                    .build()
                    .unwrap(),
            )
            .build(),
        &tg_beta,
    )
    .await
    .unwrap();
    rule(
        "api-prefix",
        10,
        HttpMatch::builder()
            .path_match(
                PathMatch::builder()
                    .r#match(PathMatchType::Prefix("/api".into()))
                    .build(),
            )
            .build(),
        &tg_api,
    )
    .await
    .unwrap();

    assert_eq!(get(t.listen, &dns, "/").await.upstream(), "stable");
    assert_eq!(get(t.listen, &dns, "/api/orders").await.upstream(), "api");
    let client = http_client();
    let r = send(
        &client,
        t.listen,
        "GET",
        &dns,
        "/api/orders",
        &[("x-channel", "Beta-7")],
    )
    .await;
    assert_eq!(
        r.upstream(),
        "beta",
        "the header rule has the lower priority number and wins"
    );

    // The target sees the Lattice headers, not ones the client forged.
    let r = send(
        &client,
        t.listen,
        "GET",
        &dns,
        "/x",
        &[
            ("x-amzn-lattice-target", "forged"),
            ("x-forwarded-port", "9999"),
            ("x-forwarded-proto", "gopher"),
            ("x-forwarded-for", "10.0.0.1"),
        ],
    )
    .await;
    assert_eq!(r.json()["repeated"], serde_json::json!([]), "{}", r.json());
    let h = &r.json()["headers"];
    assert!(h["x-amzn-lattice-target"]
        .as_str()
        .unwrap()
        .contains(&format!(
            "TargetGroupArn=arn:aws:vpc-lattice:us-east-1:000000000000:targetgroup/{tg_stable}"
        )));
    assert_eq!(h["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
    assert_eq!(h["x-forwarded-port"], "80");
    assert_eq!(h["x-forwarded-proto"], "http");
}

#[tokio::test]
async fn bad_routes_and_broken_targets_get_gateway_statuses() {
    let dir = tempfile::tempdir().unwrap();
    let t = Trellis::start(dir.path(), &[]);
    let c = t.lattice();
    let slow = Echo::start("slow").await;
    // A port nothing listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let tg_dead = target_group(&c, "dead-tg", &[dead]).await;
    let tg_slow = target_group(&c, "slow-tg", &[slow.addr]).await;
    let tg_empty = target_group(&c, "empty-tg", &[]).await;
    let (_, dead_dns, _) = service(&c, "dead", forward(&[(&tg_dead, 1)])).await;
    let (_, empty_dns, _) = service(&c, "empty", forward(&[(&tg_empty, 1)])).await;
    let (_, slow_dns, slow_listener) = service(&c, "slow", forward(&[(&tg_slow, 1)])).await;
    // A 300 ms timeout on the slow service's /slow path (a Trellis rule tag).
    let svc_id = c
        .list_services()
        .send()
        .await
        .unwrap()
        .items()
        .iter()
        .find(|s| s.name() == Some("slow"))
        .unwrap()
        .id()
        .unwrap()
        .to_string();
    let rule = c
        .create_rule()
        .service_identifier(&svc_id)
        .listener_identifier(&slow_listener)
        .name("timeout")
        .priority(1)
        .r#match(RuleMatch::HttpMatch(
            HttpMatch::builder()
                .path_match(
                    PathMatch::builder()
                        .r#match(PathMatchType::Prefix("/slow".into()))
                        .build(),
                )
                .build(),
        ))
        .action(forward(&[(&tg_slow, 1)]))
        .tags("trellis:timeout-ms", "300")
        .send()
        .await
        .unwrap();
    assert!(rule.arn().is_some());

    assert_eq!(get(t.listen, "nobody.example", "/").await.status, 404);
    assert_eq!(
        get(t.listen, &format!("{dead_dns}:8081"), "/").await.status,
        404,
        "no listener on that port"
    );
    assert_eq!(get(t.listen, &dead_dns, "/").await.status, 502);
    assert_eq!(get(t.listen, &empty_dns, "/").await.status, 503);
    assert_eq!(
        get(t.listen, &slow_dns, "/slow?delay=2000").await.status,
        504
    );
    assert_eq!(get(t.listen, &slow_dns, "/fast?delay=10").await.status, 200);
    assert_eq!(
        get(t.listen, &slow_dns, "/x?status=503").await.status,
        503,
        "upstream statuses pass through"
    );

    // Malformed HTTP gets 400 and a closed connection.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(t.listen).await.unwrap();
    s.write_all(b"GARBAGE\r\n\r\n").await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    assert!(
        String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 400"),
        "{:?}",
        String::from_utf8_lossy(&buf)
    );
}

#[tokio::test]
async fn circuit_breaker_queues_up_to_max_pending_then_answers_503() {
    let dir = tempfile::tempdir().unwrap();
    let t = Trellis::start(dir.path(), &[]);
    let c = t.lattice();
    let echo = Echo::start("busy").await;
    // One request in flight, one more may wait for it; a third finds the line full.
    let tg = c
        .create_target_group()
        .name("busy-tg")
        .r#type(TargetGroupType::Ip)
        .config(
            TargetGroupConfig::builder()
                .port(echo.addr.port() as i32)
                .health_check(HealthCheckConfig::builder().enabled(false).build())
                .build(),
        )
        .tags("trellis:max-requests", "1")
        .tags("trellis:max-pending", "1")
        .send()
        .await
        .unwrap();
    c.register_targets()
        .target_group_identifier(tg.id().unwrap())
        .targets(
            Target::builder()
                .id("127.0.0.1")
                .port(echo.addr.port() as i32)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let (_, dns, _) = service(&c, "busy", forward(&[(tg.id().unwrap(), 1)])).await;

    let listen = t.listen;
    let timed = |path: &'static str| {
        let dns = dns.clone();
        tokio::spawn(async move {
            let start = std::time::Instant::now();
            let status = get(listen, &dns, path).await.status;
            (status, start.elapsed())
        })
    };
    let first = timed("/?delay=1500");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = timed("/");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, took) = timed("/").await.unwrap();
    assert_eq!(status, 503, "the third request finds the line full");
    assert!(
        took < Duration::from_millis(500),
        "and is answered at once: {took:?}"
    );
    assert_eq!(first.await.unwrap().0, 200);
    let (status, waited) = second.await.unwrap();
    assert_eq!(
        status, 200,
        "the waiting request is served once the slot frees"
    );
    assert!(
        waited > Duration::from_millis(800),
        "it waited for the first: {waited:?}"
    );

    let metrics = get(t.api, "localhost", "/metrics").await;
    let text = String::from_utf8_lossy(&metrics.body);
    let overflow = format!(
        "trellis_target_group_overflows_total{{target_group=\"{}\"}} 1",
        tg.arn().unwrap()
    );
    assert!(text.contains(&overflow), "{text}");
}

#[tokio::test]
async fn health_checks_remove_a_dead_target_and_restore_it() {
    let dir = tempfile::tempdir().unwrap();
    let t = Trellis::start(dir.path(), &[]);
    let c = t.lattice();
    let a = Echo::start("a").await;
    let mut b = Echo::start("b").await;
    let b_addr = b.addr;
    let tg = target_group(&c, "pool-tg", &[a.addr, b.addr]).await;
    let (_, dns, _) = service(&c, "pool", forward(&[(&tg, 1)])).await;
    let status_of = |port: u16| {
        let c = c.clone();
        let tg = tg.clone();
        async move {
            let out = c
                .list_targets()
                .target_group_identifier(&tg)
                .send()
                .await
                .unwrap();
            out.items()
                .iter()
                .find(|i| i.port() == Some(port as i32))
                .and_then(|i| i.status().cloned())
        }
    };
    assert!(
        eventually(Duration::from_secs(10), || async {
            status_of(b_addr.port()).await == Some(TargetStatus::Healthy)
        })
        .await
    );

    b.stop();
    // Passive ejection or the active check takes it out; every request then goes to `a`.
    assert!(
        eventually(Duration::from_secs(20), || async {
            status_of(b_addr.port()).await == Some(TargetStatus::Unhealthy)
        })
        .await,
        "the stopped target is marked unhealthy"
    );
    let client = http_client();
    for _ in 0..20 {
        let r = send(&client, t.listen, "GET", &dns, "/", &[]).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.upstream(), "a");
    }

    let _b2 = Echo::start_on("b", b_addr).await;
    assert!(
        eventually(Duration::from_secs(20), || async {
            status_of(b_addr.port()).await == Some(TargetStatus::Healthy)
        })
        .await,
        "the restarted target is healthy again"
    );
    let mut seen_b = false;
    for _ in 0..20 {
        seen_b |= send(&client, t.listen, "GET", &dns, "/", &[])
            .await
            .upstream()
            == "b";
    }
    assert!(seen_b, "traffic returns to the restored target");
}

#[tokio::test]
async fn http2_and_grpc_trailers_pass_through() {
    let dir = tempfile::tempdir().unwrap();
    let t = Trellis::start(dir.path(), &[]);
    let c = t.lattice();
    let upstream = grpc_upstream().await;
    let tg = c
        .create_target_group()
        .name("grpc-tg")
        .r#type(TargetGroupType::Ip)
        .config(
            TargetGroupConfig::builder()
                .port(upstream.port() as i32)
                .protocol(TargetGroupProtocol::Http)
                .protocol_version(TargetGroupProtocolVersion::Grpc)
                .health_check(HealthCheckConfig::builder().enabled(false).build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    let tg_id = tg.id().unwrap();
    c.register_targets()
        .target_group_identifier(tg_id)
        .targets(
            Target::builder()
                .id("127.0.0.1")
                .port(upstream.port() as i32)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let (_, dns, _) = service(&c, "greeter", forward(&[(tg_id, 1)])).await;

    // An HTTP/2 (prior knowledge, h2c) client sends a gRPC-shaped request.
    let stream = tokio::net::TcpStream::connect(t.listen).await.unwrap();
    let (mut send_req, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let frame = grpc_frame(b"hello");
    let req = http::Request::post(format!("http://{dns}/helloworld.Greeter/SayHello"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(Bytes::from(frame)))
        .unwrap();
    let resp = send_req.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), http::Version::HTTP_2);
    let collected = resp.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().expect("grpc trailers arrive");
    assert_eq!(trailers.get("grpc-status").unwrap(), "0");
    let body = collected.to_bytes();
    assert_eq!(
        &body[5..],
        b"echo:hello",
        "the upstream saw the message over HTTP/2"
    );
}

#[tokio::test]
async fn https_listener_terminates_tls_with_the_service_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let t = Trellis::start(dir.path(), &[]);
    let c = t.lattice();
    let echo = Echo::start("secure").await;
    let tg = target_group(&c, "secure-tg", &[echo.addr]).await;

    let domain = "shop.example.test";
    let cert = rcgen::generate_simple_self_signed(vec![domain.to_string()]).unwrap();
    // Trellis's stand-in for ACM: <data-dir>/certificates/<name>.pem.
    std::fs::create_dir_all(dir.path().join("certificates")).unwrap();
    let pem_path = dir.path().join("certificates").join("shop-cert.pem");
    std::fs::write(
        &pem_path,
        format!("{}{}", cert.cert.pem(), cert.signing_key.serialize_pem()),
    )
    .unwrap();
    let svc = c
        .create_service()
        .name("shop")
        .custom_domain_name(domain)
        .certificate_arn("arn:aws:acm:us-east-1:000000000000:certificate/shop-cert")
        .send()
        .await
        .unwrap();
    c.create_listener()
        .service_identifier(svc.id().unwrap())
        .name("https")
        .protocol(ListenerProtocol::Https)
        .port(443)
        .default_action(forward(&[(&tg, 1)]))
        .send()
        .await
        .unwrap();

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    for (alpn, want) in [
        (b"http/1.1".to_vec(), http::Version::HTTP_11),
        (b"h2".to_vec(), http::Version::HTTP_2),
    ] {
        let mut config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots.clone())
        .with_no_client_auth();
        config.alpn_protocols = vec![alpn];
        let tcp = tokio::net::TcpStream::connect(t.listen_tls).await.unwrap();
        let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
            .connect(rustls_pki_types::ServerName::try_from(domain).unwrap(), tcp)
            .await
            .expect("TLS handshake with the service certificate");
        let io = hyper_util::rt::TokioIo::new(tls);
        let req = http::Request::get("/pay")
            .header("host", domain)
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = if want == http::Version::HTTP_2 {
            let (mut s, conn) =
                hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                    .await
                    .unwrap();
            tokio::spawn(conn);
            let req = http::Request::get(format!("https://{domain}/pay"))
                .body(Full::new(Bytes::new()))
                .unwrap();
            s.send_request(req).await.unwrap()
        } else {
            let (mut s, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
            tokio::spawn(conn);
            s.send_request(req).await.unwrap()
        };
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.version(), want);
        let body: serde_json::Value =
            serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
        assert_eq!(body["name"], "secure");
        assert_eq!(body["headers"]["x-forwarded-proto"], "https");
        assert_eq!(body["headers"]["x-forwarded-port"], "443");
    }
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Trellis::start(dir.path(), &[]);
    let c = t.lattice();
    let echo = Echo::start("slow").await;
    let tg = target_group(&c, "drain-tg", &[echo.addr]).await;
    let (_, dns, _) = service(&c, "drain", forward(&[(&tg, 1)])).await;
    let listen = t.listen;
    let in_flight = tokio::spawn(async move { get(listen, &dns, "/?delay=800").await.status });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let status = tokio::task::spawn_blocking(move || t.terminate())
        .await
        .unwrap();
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
    assert_eq!(
        in_flight.await.unwrap(),
        200,
        "the request in flight finished"
    );
}

/// An h2c upstream that answers each gRPC call with `echo:<message>` and `grpc-status: 0`.
async fn grpc_upstream() -> std::net::SocketAddr {
    use std::convert::Infallible;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    |req: http::Request<hyper::body::Incoming>| async move {
                        assert_eq!(req.version(), http::Version::HTTP_2);
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let mut msg = b"echo:".to_vec();
                        msg.extend_from_slice(&body[5..]);
                        let mut trailers = http::HeaderMap::new();
                        trailers.insert("grpc-status", "0".parse().unwrap());
                        let frames = vec![
                            Ok::<_, Infallible>(hyper::body::Frame::data(Bytes::from(grpc_frame(
                                &msg,
                            )))),
                            Ok(hyper::body::Frame::trailers(trailers)),
                        ];
                        let body =
                            http_body_util::StreamBody::new(futures_util::stream::iter(frames));
                        let resp = http::Response::builder()
                            .header("content-type", "application/grpc")
                            .body(body)
                            .unwrap();
                        Ok::<_, Infallible>(resp)
                    },
                );
                let _ =
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                        .await;
            });
        }
    });
    addr
}

fn grpc_frame(msg: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8];
    f.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    f.extend_from_slice(msg);
    f
}

#[tokio::test]
async fn tls_passthrough_routes_by_sni_without_terminating() {
    let dir = tempfile::tempdir().unwrap();
    let t = Trellis::start(dir.path(), &[]);
    let c = t.lattice();
    // A TLS upstream with its own certificate: the gateway never sees the plaintext.
    let domain = "db.example.test";
    let cert = rcgen::generate_simple_self_signed(vec![domain.to_string()]).unwrap();
    let key = rustls_pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let server_cfg = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(server_cfg));
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up_addr = upstream.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((s, _)) = upstream.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let mut tls = acceptor.accept(s).await.unwrap();
                let mut buf = [0u8; 5];
                tls.read_exact(&mut buf).await.unwrap();
                tls.write_all(b"pong:").await.unwrap();
                tls.write_all(&buf).await.unwrap();
                tls.shutdown().await.unwrap();
            });
        }
    });
    let tg_id = https_target_group(&c, "pass-tg", up_addr).await;
    let svc = c
        .create_service()
        .name("orders-db")
        .custom_domain_name(domain)
        .send()
        .await
        .unwrap();
    c.create_listener()
        .service_identifier(svc.id().unwrap())
        .name("passthrough")
        .protocol(ListenerProtocol::TlsPassthrough)
        .port(443)
        .default_action(forward(&[(&tg_id, 1)]))
        .send()
        .await
        .unwrap();

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(t.listen_tls).await.unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(rustls_pki_types::ServerName::try_from(domain).unwrap(), tcp)
        .await
        .expect("the upstream's own certificate reaches the client");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tls.write_all(b"hello").await.unwrap();
    let mut got = Vec::new();
    let _ = tls.read_to_end(&mut got).await;
    assert_eq!(got, b"pong:hello");
}

#[tokio::test]
async fn websocket_upgrade_tunnels_both_ways() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let t = Trellis::start(dir.path(), &[]);
    let c = t.lattice();
    // An upstream that accepts the upgrade and then echoes raw bytes.
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up_addr = upstream.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = upstream.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if s.read(&mut b).await.unwrap() == 0 {
                        return;
                    }
                    head.push(b[0]);
                }
                let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
                assert!(head.contains("upgrade: websocket"), "{head}");
                s.write_all(b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n").await.unwrap();
                let mut buf = [0u8; 64];
                loop {
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    s.write_all(&buf[..n]).await.unwrap();
                }
            });
        }
    });
    let tg = c
        .create_target_group()
        .name("ws-tg")
        .r#type(TargetGroupType::Ip)
        .config(
            TargetGroupConfig::builder()
                .port(up_addr.port() as i32)
                .health_check(HealthCheckConfig::builder().enabled(false).build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    c.register_targets()
        .target_group_identifier(tg.id().unwrap())
        .targets(
            Target::builder()
                .id("127.0.0.1")
                .port(up_addr.port() as i32)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let (_, dns, _) = service(&c, "chat", forward(&[(tg.id().unwrap(), 1)])).await;

    let mut s = tokio::net::TcpStream::connect(t.listen).await.unwrap();
    let req = format!("GET /ws HTTP/1.1\r\nHost: {dns}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            s.read(&mut b).await.unwrap(),
            1,
            "connection closed before the 101"
        );
        head.push(b[0]);
    }
    assert!(
        String::from_utf8_lossy(&head).starts_with("HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    s.write_all(b"ping-frame").await.unwrap();
    let mut buf = [0u8; 10];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"ping-frame");
}

#[tokio::test]
async fn https_target_groups_get_tls_to_the_target() {
    use std::convert::Infallible;
    let dir = tempfile::tempdir().unwrap();
    let t = Trellis::start(dir.path(), &[]);
    let c = t.lattice();
    // An HTTPS upstream with a self-signed certificate, as targets usually have.
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let key = rustls_pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let mut server_cfg = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key)
    .unwrap();
    server_cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(server_cfg));
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up_addr = upstream.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = upstream.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(s).await else {
                    return;
                };
                let svc = hyper::service::service_fn(
                    |_req: http::Request<hyper::body::Incoming>| async {
                        Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(
                            b"over tls",
                        ))))
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    let tg_id = https_target_group(&c, "tls-tg", up_addr).await;
    let (_, dns, _) = service(&c, "secure-upstream", forward(&[(&tg_id, 1)])).await;
    let r = get(t.listen, &dns, "/").await;
    assert_eq!(r.status, 200);
    assert_eq!(&r.body[..], b"over tls");
}

#[tokio::test]
async fn access_log_and_metrics_report_each_request() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let t = Trellis::start(dir.path(), &["--access-log", log.to_str().unwrap()]);
    let c = t.lattice();
    let echo = Echo::start("logged").await;
    let tg = target_group(&c, "logged-tg", &[echo.addr]).await;
    let (_, dns, _) = service(&c, "logged", forward(&[(&tg, 1)])).await;
    assert_eq!(get(t.listen, &dns, "/orders?id=1").await.status, 200);
    assert_eq!(get(t.listen, "unknown.example", "/").await.status, 404);

    let mut lines = Vec::new();
    assert!(
        eventually(Duration::from_secs(5), || {
            lines = std::fs::read_to_string(&log)
                .unwrap_or_default()
                .lines()
                .map(str::to_string)
                .collect();
            std::future::ready(lines.len() >= 2)
        })
        .await
    );
    let entry: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(entry["requestMethod"], "GET");
    assert_eq!(entry["requestPath"], "/orders");
    assert_eq!(entry["responseCode"], 200);
    assert_eq!(
        entry["targetGroupArn"],
        format!("arn:aws:vpc-lattice:us-east-1:000000000000:targetgroup/{tg}")
    );
    assert_eq!(entry["targetIpPort"], echo.addr.to_string());
    assert!(entry["serviceArn"]
        .as_str()
        .unwrap()
        .contains(":service/svc-"));
    assert!(entry["duration"].is_u64());
    let missed: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!(missed["responseCode"], 404);

    let metrics = get(t.api, "localhost", "/metrics").await;
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(text.contains("code=\"2xx\"} 1"), "{text}");
    assert!(text.contains("trellis_unrouted_requests_total 1"), "{text}");
    assert!(
        text.contains("trellis_service_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(text.contains(&format!("trellis_target_group_requests_total{{target_group=\"arn:aws:vpc-lattice:us-east-1:000000000000:targetgroup/{tg}\"}} 1")), "{text}");
    let health = get(t.api, "localhost", "/health").await;
    assert_eq!(health.status, 200);
}

/// An HTTPS target group without health checks, with the one target `addr`.
async fn https_target_group(
    c: &aws_sdk_vpclattice::Client,
    name: &str,
    addr: std::net::SocketAddr,
) -> String {
    let tg = c
        .create_target_group()
        .name(name)
        .r#type(TargetGroupType::Ip)
        .config(
            TargetGroupConfig::builder()
                .port(addr.port() as i32)
                .protocol(TargetGroupProtocol::Https)
                .health_check(HealthCheckConfig::builder().enabled(false).build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    c.register_targets()
        .target_group_identifier(tg.id().unwrap())
        .targets(
            Target::builder()
                .id(addr.ip().to_string())
                .port(addr.port() as i32)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    tg.id().unwrap().to_string()
}
