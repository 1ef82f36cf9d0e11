//! Resource gateways end to end: the Lattice resource API through the AWS SDK for Rust, TCP
//! endpoints that reach real resources (PostgreSQL, TLS passed through), and HTTP endpoints that
//! originate TLS to a private HTTPS service verified against its own CA.
//!
//! NEEDS POSTGRESQL at 127.0.0.1:5432 (trust auth, user `postgres`, database `postgres`), as on
//! the development machines and in CI. Where there is none, set `TRELLIS_SKIP_PG=1` and the
//! PostgreSQL tests print that they were skipped; without it they fail. The other tests need
//! nothing but loopback addresses.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_vpclattice::error::ProvideErrorMetadata;
use aws_sdk_vpclattice::types::*;
use common::*;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PG: &str = "127.0.0.1:5432";

/// True (after saying so) when the PostgreSQL tests are to be skipped.
fn skip_pg(test: &str) -> bool {
    if std::env::var("TRELLIS_SKIP_PG").as_deref() == Ok("1") {
        eprintln!("SKIPPED {test}: TRELLIS_SKIP_PG=1 is set; this test needs PostgreSQL at {PG}");
        return true;
    }
    false
}

/// A resource gateway, a SINGLE resource configuration for `ip` on `ports`, and its association
/// with a new service network; returns (configuration id, association id).
async fn expose(
    c: &aws_sdk_vpclattice::Client,
    name: &str,
    ip: &str,
    ports: &[&str],
) -> (String, String) {
    let gw = c
        .create_resource_gateway()
        .name(format!("{name}-gw"))
        .vpc_identifier("vpc-0123456789abcdef0")
        .subnet_ids("subnet-0123456789abcdef0")
        .send()
        .await
        .expect("create resource gateway");
    let mut req = c
        .create_resource_configuration()
        .name(name)
        .r#type(ResourceConfigurationType::Single)
        .protocol(ProtocolType::Tcp)
        .resource_gateway_identifier(gw.id().unwrap())
        .resource_configuration_definition(ResourceConfigurationDefinition::IpResource(
            IpResource::builder().ip_address(ip).build(),
        ));
    for p in ports {
        req = req.port_ranges(*p);
    }
    let rc = req.send().await.expect("create resource configuration");
    let sn = c
        .create_service_network()
        .name(format!("{name}-sn"))
        .send()
        .await
        .expect("create service network");
    let a = c
        .create_service_network_resource_association()
        .resource_configuration_identifier(rc.id().unwrap())
        .service_network_identifier(sn.id().unwrap())
        .send()
        .await
        .expect("associate");
    assert_eq!(
        a.status(),
        Some(&ServiceNetworkResourceAssociationStatus::Active)
    );
    (rc.id().unwrap().to_string(), a.id().unwrap().to_string())
}

/// The Trellis field `endpoints` of an association, read with a raw GET (the SDK drops it).
async fn endpoints(t: &Trellis, association: &str) -> Vec<Value> {
    let r = get(
        t.api,
        &t.api.to_string(),
        &format!("/servicenetworkresourceassociations/{association}"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()["endpoints"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn addr_of(endpoint: &Value) -> SocketAddr {
    let host = endpoint["host"].as_str().unwrap();
    let port = endpoint["port"].as_u64().unwrap() as u16;
    assert_eq!(
        endpoint["url"].as_str().unwrap(),
        format!("tcp://{host}:{port}")
    );
    SocketAddr::new(host.parse().unwrap(), port)
}

async fn pg(addr: SocketAddr) -> Result<tokio_postgres::Client, String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let mut config = tokio_postgres::Config::new();
    config.user("postgres").dbname("postgres");
    let (client, conn) = config
        .connect_raw(stream, tokio_postgres::NoTls)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    Ok(client)
}

/// True once `s` is closed by the other side (EOF or reset) within five seconds.
async fn closed(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// A TCP server on `addr` answering each chunk with `name:` and the chunk.
async fn tcp_echo(name: &'static str, addr: &str) -> SocketAddr {
    let l = TcpListener::bind(addr).await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                    let mut out = format!("{name}:").into_bytes();
                    out.extend_from_slice(&buf[..n]);
                    if s.write_all(&out).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

async fn roundtrip(s: &mut TcpStream, msg: &str) -> String {
    s.write_all(msg.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("an answer in time")
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_through_a_resource_endpoint() {
    if skip_pg("postgres_through_a_resource_endpoint") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let t = Trellis::start(dir.path(), &[]);
    let c = t.lattice();
    let (rc, assoc) = expose(&c, "orders-db", "127.0.0.1", &["5432"]).await;

    let got = c
        .get_resource_configuration()
        .resource_configuration_identifier(&rc)
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), Some(&ResourceConfigurationStatus::Active));
    assert_eq!(got.port_ranges(), ["5432"]);
    let a = c
        .get_service_network_resource_association()
        .service_network_resource_association_identifier(&assoc)
        .send()
        .await
        .unwrap();
    assert_eq!(a.resource_configuration_id(), Some(rc.as_str()));

    let eps = endpoints(&t, &assoc).await;
    assert_eq!(eps.len(), 1, "{eps:?}");
    let ep = addr_of(&eps[0]);
    assert!(ep.ip().is_loopback());
    assert_ne!(ep, PG.parse::<SocketAddr>().unwrap());

    // `trellis endpoints` prints the same.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_trellis"))
        .args(["endpoints", "--endpoint", &t.endpoint()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.trim(),
        format!("{assoc}\torders-db\ttcp://{ep}"),
        "trellis endpoints"
    );

    // Queries.
    let db = pg(ep).await.expect("connect through the endpoint");
    let row = db.query_one("SELECT 1 + $1::int", &[&41i32]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 42);
    let row = db
        .query_one("SELECT current_database()", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "postgres");
    // A large result, and many rows.
    let row = db
        .query_one("SELECT repeat('x', 1000000)", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0).len(), 1_000_000);
    let rows = db
        .query(
            "SELECT g, md5(g::text) FROM generate_series(1, 50000) g",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 50_000);
    // A large upload.
    let big = "y".repeat(2_000_000);
    let row = db
        .query_one("SELECT length($1::text)", &[&big])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 2_000_000);

    // 20 concurrent connections, each its own backend.
    let mut tasks = Vec::new();
    for i in 0..20i32 {
        tasks.push(tokio::spawn(async move {
            let db = pg(ep).await.expect("concurrent connect");
            let row = db
                .query_one(
                    "SELECT pg_backend_pid(), $1::int, pg_sleep(0.2)::text",
                    &[&i],
                )
                .await
                .unwrap();
            assert_eq!(row.get::<_, i32>(1), i);
            row.get::<_, i32>(0)
        }));
    }
    let mut pids = Vec::new();
    for t in tasks {
        pids.push(t.await.unwrap());
    }
    pids.sort();
    pids.dedup();
    assert_eq!(pids.len(), 20, "20 distinct backends");

    // Deleting the association closes the endpoint: no new connections, and the open one is
    // closed once the drain time (5 s by default) is over.
    c.delete_service_network_resource_association()
        .service_network_resource_association_identifier(&assoc)
        .send()
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async {
            TcpStream::connect(ep).await.is_err()
        })
        .await,
        "the endpoint stops listening"
    );
    assert!(
        eventually(Duration::from_secs(15), || async {
            db.simple_query("SELECT 1").await.is_err()
        })
        .await,
        "open connections are closed after the drain time"
    );
    let err = c
        .get_service_network_resource_association()
        .service_network_resource_association_identifier(&assoc)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ResourceNotFoundException"));
}

#[tokio::test]
async fn a_refused_destination_closes_the_client_connection() {
    let dir = tempfile::tempdir().unwrap();
    let t = Trellis::start(dir.path(), &[]);
    let c = t.lattice();
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (_, assoc) = expose(&c, "gone-db", "127.0.0.1", &[&free.to_string()]).await;
    let eps = endpoints(&t, &assoc).await;
    assert_eq!(eps.len(), 1);
    let mut s = TcpStream::connect(addr_of(&eps[0])).await.unwrap();
    assert!(closed(&mut s).await, "the client's connection is closed");
    if !skip_pg("a_refused_destination_closes_the_client_connection (PostgreSQL part)") {
        assert!(pg(addr_of(&eps[0])).await.is_err(), "no database there");
    }
    // The refusal is counted on /metrics for that resource configuration.
    let metrics = get(t.api, "localhost", "/metrics").await;
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(
        text.lines()
            .any(|l| l.starts_with("trellis_resource_connect_errors_total{") && !l.ends_with(" 0")),
        "{text}"
    );
}

#[tokio::test]
async fn allow_lists_updates_and_groups() {
    let dir = tempfile::tempdir().unwrap();
    let t = Trellis::start(dir.path(), &[]);
    let c = t.lattice();
    let a = tcp_echo("a", "127.0.0.1:0").await;
    // b: the same port on another loopback address, so the configuration can move to it.
    let b = tcp_echo("b", &format!("127.0.0.2:{}", a.port())).await;
    let (rc, assoc) = expose(&c, "echo", "127.0.0.1", &[&a.port().to_string()]).await;
    let ep = addr_of(&endpoints(&t, &assoc).await[0]);
    let mut old = TcpStream::connect(ep).await.unwrap();
    assert_eq!(roundtrip(&mut old, "1").await, "a:1");

    // Moving the resource: new connections go to b, the open one finishes on a.
    c.update_resource_configuration()
        .resource_configuration_identifier(&rc)
        .resource_configuration_definition(ResourceConfigurationDefinition::IpResource(
            IpResource::builder().ip_address("127.0.0.2").build(),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        addr_of(&endpoints(&t, &assoc).await[0]),
        ep,
        "same endpoint"
    );
    let mut new = TcpStream::connect(ep).await.unwrap();
    assert_eq!(roundtrip(&mut new, "2").await, "b:2");
    assert_eq!(roundtrip(&mut old, "3").await, "a:3");
    let _ = b;

    // A client allow-list that leaves loopback out closes new connections.
    let assoc_arn = c
        .get_service_network_resource_association()
        .service_network_resource_association_identifier(&assoc)
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_string();
    c.tag_resource()
        .resource_arn(&assoc_arn)
        .tags("trellis:allowed-cidrs", "10.0.0.0/8")
        .send()
        .await
        .unwrap();
    let mut denied = TcpStream::connect(ep).await.unwrap();
    assert!(closed(&mut denied).await, "outside the allow-list");
    c.tag_resource()
        .resource_arn(&assoc_arn)
        .tags("trellis:allowed-cidrs", "10.0.0.0/8, 127.0.0.0/8")
        .send()
        .await
        .unwrap();
    let mut allowed = TcpStream::connect(ep).await.unwrap();
    assert_eq!(roundtrip(&mut allowed, "4").await, "b:4");

    // A GROUP exposes each CHILD on an address of its own, on the group's ports.
    let gw = c
        .create_resource_gateway()
        .name("group-gw")
        .send()
        .await
        .unwrap();
    let group = c
        .create_resource_configuration()
        .name("echoes")
        .r#type(ResourceConfigurationType::Group)
        .resource_gateway_identifier(gw.id().unwrap())
        .port_ranges(a.port().to_string())
        .send()
        .await
        .unwrap();
    for (name, ip) in [("echo-a", "127.0.0.1"), ("echo-b", "127.0.0.2")] {
        c.create_resource_configuration()
            .name(name)
            .r#type(ResourceConfigurationType::Child)
            .resource_configuration_group_identifier(group.id().unwrap())
            .resource_configuration_definition(ResourceConfigurationDefinition::IpResource(
                IpResource::builder().ip_address(ip).build(),
            ))
            .send()
            .await
            .unwrap();
    }
    let sn = c
        .create_service_network()
        .name("groups")
        .send()
        .await
        .unwrap();
    let ga = c
        .create_service_network_resource_association()
        .resource_configuration_identifier(group.id().unwrap())
        .service_network_identifier(sn.id().unwrap())
        .send()
        .await
        .unwrap();
    let eps = endpoints(&t, ga.id().unwrap()).await;
    assert_eq!(eps.len(), 2, "{eps:?}");
    let mut answers = Vec::new();
    for e in &eps {
        let mut s = TcpStream::connect(addr_of(e)).await.unwrap();
        answers.push(roundtrip(&mut s, "g").await);
    }
    answers.sort();
    assert_eq!(answers, ["a:g", "b:g"]);
    let listed = c
        .list_resource_configurations()
        .resource_configuration_group_identifier(group.id().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(listed.items().len(), 2);
}

#[tokio::test]
async fn bad_definitions_and_dependencies_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let t = Trellis::start(dir.path(), &[]);
    let c = t.lattice();
    let gw = c
        .create_resource_gateway()
        .name("checks-gw")
        .send()
        .await
        .unwrap();
    let gw_id = gw.id().unwrap().to_string();
    assert!(gw_id.starts_with("rgw-"));
    assert_eq!(gw.status(), Some(&ResourceGatewayStatus::Active));
    let single = |name: &str, ranges: &[&str]| {
        let mut req = c
            .create_resource_configuration()
            .name(name)
            .r#type(ResourceConfigurationType::Single)
            .resource_gateway_identifier(&gw_id)
            .resource_configuration_definition(ResourceConfigurationDefinition::DnsResource(
                DnsResource::builder().domain_name("db.internal").build(),
            ));
        for r in ranges {
            req = req.port_ranges(*r);
        }
        req.send()
    };
    for (ranges, field) in [
        (&["0"][..], "portRanges.1"),
        (&["70000"][..], "portRanges.1"),
        (&["10-5"][..], "portRanges.1"),
        (&["5000-5010", "5005"][..], "portRanges.2"),
    ] {
        let e = single("bad", ranges).await.unwrap_err();
        assert_eq!(e.code(), Some("ValidationException"), "{ranges:?}");
        assert!(
            e.message().unwrap_or_default().contains(field),
            "{ranges:?}: {:?}",
            e.message()
        );
    }
    let ok = single("main-db", &["5432", "6000-6010"]).await.unwrap();
    // Overlapping another configuration's ranges on the same gateway.
    let e = single("other-db", &["6005-6020"]).await.unwrap_err();
    assert_eq!(e.code(), Some("ValidationException"));
    assert!(e.message().unwrap_or_default().contains("portRanges.1"));
    let e = single("main-db", &["7000"]).await.unwrap_err();
    assert_eq!(e.code(), Some("ConflictException"), "duplicate name");
    // A CHILD takes gateway and ports from a GROUP.
    let e = c
        .create_resource_configuration()
        .name("orphan")
        .r#type(ResourceConfigurationType::Child)
        .resource_configuration_group_identifier(ok.id().unwrap())
        .resource_configuration_definition(ResourceConfigurationDefinition::IpResource(
            IpResource::builder().ip_address("10.0.0.1").build(),
        ))
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ValidationException"));
    assert!(e
        .message()
        .unwrap_or_default()
        .contains("resourceConfigurationGroupIdentifier"));
    let e = c
        .create_resource_configuration()
        .name("bad-ip")
        .r#type(ResourceConfigurationType::Single)
        .resource_gateway_identifier(&gw_id)
        .port_ranges("80")
        .resource_configuration_definition(ResourceConfigurationDefinition::IpResource(
            IpResource::builder().ip_address("10.0.0.300").build(),
        ))
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ValidationException"));
    assert!(e
        .message()
        .unwrap_or_default()
        .contains("resourceConfigurationDefinition.ipResource.ipAddress"));

    // Dependencies: a gateway with configurations, an associated configuration.
    let e = c
        .delete_resource_gateway()
        .resource_gateway_identifier(&gw_id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ConflictException"));
    let sn = c
        .create_service_network()
        .name("checks")
        .send()
        .await
        .unwrap();
    let a = c
        .create_service_network_resource_association()
        .resource_configuration_identifier(ok.arn().unwrap())
        .service_network_identifier(sn.id().unwrap())
        .send()
        .await
        .unwrap();
    let e = c
        .create_service_network_resource_association()
        .resource_configuration_identifier(ok.id().unwrap())
        .service_network_identifier(sn.id().unwrap())
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ConflictException"));
    let e = c
        .delete_resource_configuration()
        .resource_configuration_identifier(ok.id().unwrap())
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ConflictException"));
    // The DNS resource's endpoints: one per port (1 + 11).
    assert_eq!(endpoints(&t, a.id().unwrap()).await.len(), 12);
    let listed = c
        .list_service_network_resource_associations()
        .service_network_identifier(sn.id().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(listed.items().len(), 1);
    let rea = c
        .list_resource_endpoint_associations()
        .resource_configuration_identifier(ok.id().unwrap())
        .send()
        .await
        .unwrap();
    assert!(rea.items().is_empty());

    // Tear down in order.
    c.delete_service_network_resource_association()
        .service_network_resource_association_identifier(a.id().unwrap())
        .send()
        .await
        .unwrap();
    c.delete_resource_configuration()
        .resource_configuration_identifier(ok.id().unwrap())
        .send()
        .await
        .unwrap();
    let gws = c.list_resource_gateways().send().await.unwrap();
    assert_eq!(gws.items().len(), 1);
    let d = c
        .delete_resource_gateway()
        .resource_gateway_identifier(&gw_id)
        .send()
        .await
        .unwrap();
    assert_eq!(d.status(), Some(&ResourceGatewayStatus::DeleteInProgress));
    let e = c
        .get_resource_gateway()
        .resource_gateway_identifier(&gw_id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ResourceNotFoundException"));
}

#[tokio::test]
async fn endpoints_come_back_at_the_same_address_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let a = tcp_echo("a", "127.0.0.1:0").await;
    let mut t = Trellis::start(dir.path(), &[]);
    let (_, assoc) = expose(
        &t.lattice(),
        "restarted",
        "127.0.0.1",
        &[&a.port().to_string()],
    )
    .await;
    let before = addr_of(&endpoints(&t, &assoc).await[0]);
    t.kill9();
    let t = Trellis::start(dir.path(), &[]);
    let after = addr_of(&endpoints(&t, &assoc).await[0]);
    assert_eq!(before, after);
    let mut s = TcpStream::connect(after).await.unwrap();
    assert_eq!(roundtrip(&mut s, "back").await, "a:back");
}

#[tokio::test]
async fn a_service_network_with_resource_associations_is_not_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let t = Trellis::start(dir.path(), &[]);
    let c = t.lattice();
    let (_rc, assoc) = expose(&c, "kept-db", "127.0.0.1", &["15999"]).await;
    let sn = c
        .get_service_network_resource_association()
        .service_network_resource_association_identifier(&assoc)
        .send()
        .await
        .unwrap()
        .service_network_id()
        .unwrap()
        .to_string();
    let listed = c.list_service_networks().send().await.unwrap();
    let summary = listed
        .items()
        .iter()
        .find(|i| i.id() == Some(sn.as_str()))
        .unwrap();
    assert_eq!(
        summary.number_of_associated_resource_configurations(),
        Some(1)
    );
    let err = c
        .delete_service_network()
        .service_network_identifier(&sn)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        aws_sdk_vpclattice::error::ProvideErrorMetadata::code(&err),
        Some("ConflictException")
    );
}

// === HTTPS resources ===

/// A CA (PEM) and a TLS server config with a certificate it signed for `names`.
fn pki(names: &[&str]) -> (String, Arc<rustls::ServerConfig>) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "orders CA");
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let cert = CertificateParams::new(names)
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.der().clone()],
        rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
    .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    (ca.pem(), Arc::new(config))
}

/// A private HTTPS service on 127.0.0.1 answering JSON with the Host header and path it got;
/// `/slow` answers after two seconds, `/redirect` with a 302 to an internal address.
async fn https_service(config: Arc<rustls::ServerConfig>) -> SocketAddr {
    use http_body_util::{BodyExt, Full};
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(
                    |req: http::Request<hyper::body::Incoming>| async move {
                        let (parts, body) = req.into_parts();
                        let body = body.collect().await.unwrap().to_bytes();
                        let mut resp = http::Response::new(Full::new(bytes::Bytes::new()));
                        match parts.uri.path() {
                            "/redirect" => {
                                *resp.status_mut() = http::StatusCode::FOUND;
                                resp.headers_mut().insert(
                                    http::header::LOCATION,
                                    "http://169.254.169.254/latest/meta-data".parse().unwrap(),
                                );
                                return Ok::<_, Infallible>(resp);
                            }
                            "/slow" => tokio::time::sleep(Duration::from_secs(2)).await,
                            _ => {}
                        }
                        let text = serde_json::json!({
                            "host": parts.headers.get(http::header::HOST).and_then(|h| h.to_str().ok()),
                            "path": parts.uri.path(),
                            "body": String::from_utf8_lossy(&body),
                        });
                        *resp.body_mut() = Full::new(bytes::Bytes::from(text.to_string()));
                        Ok(resp)
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    addr
}

/// A SINGLE configuration for a DNS or IP `resource` on `port` with `tags`, associated with a
/// new service network; returns (configuration id and ARN, association id and ARN).
async fn expose_tagged(
    c: &aws_sdk_vpclattice::Client,
    name: &str,
    resource: ResourceConfigurationDefinition,
    port: u16,
    tags: &[(&str, &str)],
) -> ((String, String), (String, String)) {
    let gw = c
        .create_resource_gateway()
        .name(format!("{name}-gw"))
        .send()
        .await
        .expect("create resource gateway");
    let mut req = c
        .create_resource_configuration()
        .name(name)
        .r#type(ResourceConfigurationType::Single)
        .resource_gateway_identifier(gw.id().unwrap())
        .port_ranges(port.to_string())
        .resource_configuration_definition(resource);
    for (k, v) in tags {
        req = req.tags(*k, *v);
    }
    let rc = req.send().await.expect("create resource configuration");
    let sn = c
        .create_service_network()
        .name(format!("{name}-sn"))
        .send()
        .await
        .unwrap();
    let a = c
        .create_service_network_resource_association()
        .resource_configuration_identifier(rc.id().unwrap())
        .service_network_identifier(sn.id().unwrap())
        .send()
        .await
        .expect("associate");
    (
        (rc.id().unwrap().to_string(), rc.arn().unwrap().to_string()),
        (a.id().unwrap().to_string(), a.arn().unwrap().to_string()),
    )
}

fn dns(name: &str) -> ResourceConfigurationDefinition {
    ResourceConfigurationDefinition::DnsResource(DnsResource::builder().domain_name(name).build())
}

fn ip(addr: &str) -> ResourceConfigurationDefinition {
    ResourceConfigurationDefinition::IpResource(IpResource::builder().ip_address(addr).build())
}

/// The one endpoint of an association, which must be an HTTP endpoint.
async fn http_endpoint(t: &Trellis, association: &str) -> SocketAddr {
    let eps = endpoints(t, association).await;
    assert_eq!(eps.len(), 1, "{eps:?}");
    let host = eps[0]["host"].as_str().unwrap();
    let port = eps[0]["port"].as_u64().unwrap() as u16;
    assert_eq!(eps[0]["url"], format!("http://{host}:{port}"));
    SocketAddr::new(host.parse().unwrap(), port)
}

/// Writes `request` as it is and reads the answer until the endpoint closes.
async fn raw_http(addr: SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("an answer in time")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn an_https_service_with_its_own_ca_through_an_endpoint_url() {
    let (ca, server_config) = pki(&["localhost"]);
    let (other_ca, _) = pki(&["localhost"]);
    let service = https_service(server_config).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("certificates")).unwrap();
    std::fs::write(dir.path().join("certificates/orders-ca.pem"), ca).unwrap();
    std::fs::write(dir.path().join("certificates/other-ca.pem"), other_ca).unwrap();
    let t = Trellis::start(dir.path(), &[]);
    let c = t.lattice();
    let ((_, rc_arn), (assoc, assoc_arn)) = expose_tagged(
        &c,
        "orders-api",
        dns("localhost"),
        service.port(),
        &[
            ("trellis:protocol", "HTTPS"),
            ("trellis:ca-certificate", "orders-ca.pem"),
            ("trellis:response-timeout-ms", "700"),
        ],
    )
    .await;
    let ep = http_endpoint(&t, &assoc).await;
    let resource_host = format!("localhost:{}", service.port());

    // TLS to the service, verified against its CA, with its name as SNI and Host: whatever
    // Host the client sends, the configured service answers.
    let r = get(ep, "evil.example", "/orders").await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["host"], resource_host.as_str());
    assert_eq!(r.json()["path"], "/orders");
    // An absolute-form request naming another address reaches the same service.
    let answer = raw_http(
        ep,
        "GET http://169.254.169.254/latest HTTP/1.1\r\nHost: 169.254.169.254\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains(&format!("\"host\":\"{resource_host}\"")),
        "{answer}"
    );
    assert!(answer.contains("\"path\":\"/latest\""), "{answer}");
    // A redirect is the client's to follow, not the gateway's.
    let r = get(ep, "x", "/redirect").await;
    assert_eq!(r.status, 302);
    assert_eq!(
        r.headers[http::header::LOCATION],
        "http://169.254.169.254/latest/meta-data"
    );
    // No tunnels.
    let answer = raw_http(
        ep,
        "CONNECT 10.0.0.1:5432 HTTP/1.1\r\nHost: 10.0.0.1:5432\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    // Slower than trellis:response-timeout-ms: 504.
    let r = get(ep, "x", "/slow").await;
    assert_eq!(r.status, 504, "{}", String::from_utf8_lossy(&r.body));

    // Trusting another CA: the certificate does not verify, 502.
    c.tag_resource()
        .resource_arn(&rc_arn)
        .tags("trellis:ca-certificate", "other-ca.pem")
        .send()
        .await
        .unwrap();
    let r = get(ep, "x", "/orders").await;
    assert_eq!(r.status, 502, "{}", String::from_utf8_lossy(&r.body));
    c.tag_resource()
        .resource_arn(&rc_arn)
        .tags("trellis:ca-certificate", "orders-ca.pem")
        .send()
        .await
        .unwrap();
    assert_eq!(get(ep, "x", "/orders").await.status, 200);

    // A client allow-list that leaves loopback out: the connection is closed unanswered.
    c.tag_resource()
        .resource_arn(&assoc_arn)
        .tags("trellis:allowed-cidrs", "10.0.0.0/8")
        .send()
        .await
        .unwrap();
    let mut denied = TcpStream::connect(ep).await.unwrap();
    let _ = denied.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(closed(&mut denied).await, "outside the allow-list");

    // A service that refuses: 502, counted as a connect error.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (_, (gone, _)) = expose_tagged(
        &c,
        "gone-api",
        ip("127.0.0.1"),
        free,
        &[("trellis:protocol", "HTTPS")],
    )
    .await;
    let r = get(http_endpoint(&t, &gone).await, "x", "/").await;
    assert_eq!(r.status, 502);
    let metrics = get(t.api, "localhost", "/metrics").await;
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(
        text.lines()
            .any(|l| l.starts_with("trellis_resource_connect_errors_total{") && !l.ends_with(" 0")),
        "{text}"
    );
}

#[tokio::test]
async fn tls_passes_through_a_tcp_endpoint() {
    let (ca, server_config) = pki(&["orders.internal"]);
    let service = https_service(server_config).await;
    let dir = tempfile::tempdir().unwrap();
    let t = Trellis::start(dir.path(), &[]);
    let (_, assoc) = expose(
        &t.lattice(),
        "orders-tls",
        "127.0.0.1",
        &[&service.port().to_string()],
    )
    .await;
    let ep = addr_of(&endpoints(&t, &assoc).await[0]);

    // The client speaks TLS to the service itself: its SNI, its certificate check.
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::pem::PemObject::pem_slice_iter(ca.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = TcpStream::connect(ep).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect("orders.internal".try_into().unwrap(), tcp)
        .await
        .expect("TLS handshake with the service through the endpoint");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get("/passthrough")
        .header(http::header::HOST, "orders.internal")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    let got: Value = serde_json::from_slice(&body).unwrap();
    // End to end: the client's own Host, untouched.
    assert_eq!(got["host"], "orders.internal");
    assert_eq!(got["path"], "/passthrough");
}

#[tokio::test]
async fn forbidden_ranges_refuse_definitions_and_rebound_names() {
    let dir = tempfile::tempdir().unwrap();
    let t = Trellis::start(
        dir.path(),
        &[
            "--resource-forbidden-cidrs",
            "10.0.0.0/8,127.0.0.0/8,::1/128",
        ],
    );
    let c = t.lattice();
    let gw = c
        .create_resource_gateway()
        .name("guarded-gw")
        .send()
        .await
        .unwrap();
    let field_of = |e: &aws_sdk_vpclattice::types::error::ValidationException| {
        e.field_list()
            .iter()
            .map(|f| f.name().to_string())
            .collect::<Vec<_>>()
    };
    let e = c
        .create_resource_configuration()
        .name("internal")
        .r#type(ResourceConfigurationType::Single)
        .resource_gateway_identifier(gw.id().unwrap())
        .port_ranges("443")
        .resource_configuration_definition(ip("10.1.2.3"))
        .send()
        .await
        .unwrap_err();
    let e = e.into_service_error();
    assert!(e.is_validation_exception(), "{e:?}");
    let aws_sdk_vpclattice::operation::create_resource_configuration::CreateResourceConfigurationError::ValidationException(v) = e else {
        unreachable!()
    };
    assert_eq!(
        field_of(&v),
        ["resourceConfigurationDefinition.ipResource.ipAddress"]
    );

    // Allowed at creation, then moved into a forbidden range: refused too.
    let ok = c
        .create_resource_configuration()
        .name("public")
        .r#type(ResourceConfigurationType::Single)
        .resource_gateway_identifier(gw.id().unwrap())
        .port_ranges("443")
        .resource_configuration_definition(ip("192.0.2.10"))
        .send()
        .await
        .unwrap();
    let e = c
        .update_resource_configuration()
        .resource_configuration_identifier(ok.id().unwrap())
        .resource_configuration_definition(ip("::1"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ValidationException"));
    assert!(e
        .message()
        .unwrap_or_default()
        .contains("resourceConfigurationDefinition.ipResource.ipAddress"));

    // A DNS name that resolves into a forbidden range is never dialed: the TCP endpoint
    // closes the connection, the HTTPS endpoint answers 502, though something listens there.
    let listening = tcp_echo("internal", "127.0.0.1:0").await;
    let (_, (tcp_assoc, _)) =
        expose_tagged(&c, "rebound-tcp", dns("localhost"), listening.port(), &[]).await;
    let mut s = TcpStream::connect(addr_of(&endpoints(&t, &tcp_assoc).await[0]))
        .await
        .unwrap();
    assert!(closed(&mut s).await, "no connection to a forbidden address");
    let gw2 = expose_tagged(
        &c,
        "rebound-https",
        dns("localhost"),
        listening.port(),
        &[("trellis:protocol", "HTTPS")],
    )
    .await;
    let r = get(http_endpoint(&t, &(gw2.1).0).await, "x", "/").await;
    assert_eq!(r.status, 502);
}

// === Resource configurations as targets of the other engines ===

/// A private HTTPS service that reports every request it gets (method, path, Host, API key and
/// body) on a channel and answers them as JSON.
async fn https_sink(
    config: Arc<rustls::ServerConfig>,
) -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<Value>) {
    use http_body_util::{BodyExt, Full};
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let tx = tx.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.unwrap().to_bytes();
                            let header = |n: &str| {
                                parts
                                    .headers
                                    .get(n)
                                    .and_then(|v| v.to_str().ok())
                                    .map(str::to_string)
                            };
                            let seen = serde_json::json!({
                                "method": parts.method.as_str(),
                                "path": parts.uri.path(),
                                "host": header("host"),
                                "apiKey": header("x-api-key"),
                                "body": String::from_utf8_lossy(&body),
                            });
                            let _ = tx.send(seen.clone());
                            let mut resp = http::Response::new(Full::new(bytes::Bytes::from(
                                seen.to_string(),
                            )));
                            resp.headers_mut().insert(
                                http::header::CONTENT_TYPE,
                                "application/json".parse().unwrap(),
                            );
                            Ok::<_, Infallible>(resp)
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    (addr, rx)
}

/// The whole chain of issue 6's fifth point: an EventBridge connection whose
/// `ResourceConfigurationArn` names a private HTTPS service's resource configuration carries an
/// event rule's API destination and a Step Functions `http:invoke` Task to it, with TLS
/// originated by Trellis against the service's own CA.
#[tokio::test]
async fn event_rules_and_workflow_tasks_reach_a_private_api_through_its_resource_configuration() {
    use aws_sdk_eventbridge::types as eb;
    let (ca, server_config) = pki(&["orders.internal"]);
    let (service, mut seen) = https_sink(server_config).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("certificates")).unwrap();
    std::fs::write(dir.path().join("certificates/orders-ca.pem"), ca).unwrap();
    let t = Trellis::start(dir.path(), &[]);
    let lattice = t.lattice();
    // The service's certificate names orders.internal; it is reached at 127.0.0.1, so the
    // configuration names the address and sets the name to verify (and send as SNI).
    let ((_, rc_arn), _) = expose_tagged(
        &lattice,
        "orders-api",
        ip("127.0.0.1"),
        service.port(),
        &[
            ("trellis:protocol", "HTTPS"),
            ("trellis:ca-certificate", "orders-ca.pem"),
            ("trellis:tls-server-name", "orders.internal"),
        ],
    )
    .await;

    let events = aws_client!(aws_sdk_eventbridge, &t);
    let conn = events
        .create_connection()
        .name("orders-private")
        .authorization_type(eb::ConnectionAuthorizationType::ApiKey)
        .auth_parameters(
            eb::CreateConnectionAuthRequestParameters::builder()
                .api_key_auth_parameters(
                    eb::CreateConnectionApiKeyAuthRequestParameters::builder()
                        .api_key_name("x-api-key")
                        .api_key_value("k-123")
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .invocation_connectivity_parameters(
            eb::ConnectivityResourceParameters::builder()
                .resource_parameters(
                    eb::ConnectivityResourceConfigurationArn::builder()
                        .resource_configuration_arn(&rc_arn)
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await
        .expect("create a private connection");
    let conn_arn = conn.connection_arn().unwrap().to_string();

    // An event rule → API destination over the private connection.
    let dest = events
        .create_api_destination()
        .name("orders-hook")
        .connection_arn(&conn_arn)
        .invocation_endpoint("https://orders.internal/v1/events")
        .http_method(eb::ApiDestinationHttpMethod::Post)
        .send()
        .await
        .expect("create API destination");
    events
        .put_rule()
        .name("orders")
        .event_pattern(r#"{"source":["shop"]}"#)
        .send()
        .await
        .unwrap();
    events
        .put_targets()
        .rule("orders")
        .targets(
            eb::Target::builder()
                .id("hook")
                .arn(dest.api_destination_arn().unwrap())
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let put = events
        .put_events()
        .entries(
            eb::PutEventsRequestEntry::builder()
                .source("shop")
                .detail_type("OrderPlaced")
                .detail(r#"{"order":7}"#)
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(put.failed_entry_count(), 0);
    let got = tokio::time::timeout(Duration::from_secs(20), seen.recv())
        .await
        .expect("the rule's event reaches the private API")
        .unwrap();
    assert_eq!(got["method"], "POST", "{got}");
    assert_eq!(got["path"], "/v1/events");
    // The resource's name (and its port, not the default one), never the URL's authority.
    let host = format!("orders.internal:{}", service.port());
    assert_eq!(got["host"], host.as_str());
    assert_eq!(got["apiKey"], "k-123", "the connection's key");
    let event: Value = serde_json::from_str(got["body"].as_str().unwrap()).unwrap();
    assert_eq!(event["detail"]["order"], 7, "{event}");

    // A workflow's HTTP Task over the same connection.
    let sfn = aws_client!(aws_sdk_sfn, &t);
    let definition = serde_json::json!({"StartAt": "Call", "States": {"Call": {
        "Type": "Task", "Resource": "arn:aws:states:::http:invoke",
        "Parameters": {"ApiEndpoint": "https://orders.internal/v1/orders/42", "Method": "PUT",
            "Authentication": {"ConnectionArn": conn_arn}, "RequestBody": {"status": "paid"}},
        "End": true}}});
    // STANDARD and StartExecution: the SDK sends StartSyncExecution to a `sync-` host
    // prefix that does not resolve for 127.0.0.1 (see tests/step_functions.rs).
    let sm = sfn
        .create_state_machine()
        .name("pay")
        .role_arn("arn:aws:iam::000000000000:role/sfn")
        .definition(definition.to_string())
        .send()
        .await
        .expect("create state machine");
    let started = sfn
        .start_execution()
        .state_machine_arn(sm.state_machine_arn())
        .input("{}")
        .send()
        .await
        .expect("start execution");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let out = loop {
        let d = sfn
            .describe_execution()
            .execution_arn(started.execution_arn())
            .send()
            .await
            .expect("describe execution");
        if d.status() != &aws_sdk_sfn::types::ExecutionStatus::Running
            || tokio::time::Instant::now() > deadline
        {
            break d;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        out.status(),
        &aws_sdk_sfn::types::ExecutionStatus::Succeeded,
        "{out:?}"
    );
    let result: Value = serde_json::from_str(out.output().unwrap()).unwrap();
    assert_eq!(result["StatusCode"], 200, "{result}");
    assert_eq!(result["ResponseBody"]["method"], "PUT", "{result}");
    assert_eq!(result["ResponseBody"]["path"], "/v1/orders/42");
    assert_eq!(result["ResponseBody"]["apiKey"], "k-123");
    assert_eq!(
        serde_json::from_str::<Value>(result["ResponseBody"]["body"].as_str().unwrap()).unwrap(),
        serde_json::json!({"status": "paid"})
    );
}
