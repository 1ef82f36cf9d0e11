//! Fraud detection in miniature: a transaction-monitoring service, a scoring function and a
//! PostgreSQL database of recent transactions that the service reaches only through a
//! resource configuration. Needs PostgreSQL at 127.0.0.1:5432 (user and database `postgres`,
//! trust auth; edit `trellis.json` for another address) and `python3` for the function.
//!
//! Run it with `cargo run --example fraud-detection`, then:
//!
//! ```text
//! curl -H 'Host: monitor.payments.internal' http://127.0.0.1:8080/transactions \
//!      -d '{"card":"4111-1","amount":25.0,"merchant":"bakery","country":"FR"}'
//! curl -H 'Host: monitor.payments.internal' http://127.0.0.1:8080/transactions \
//!      -d '{"card":"4111-1","amount":900.0,"merchant":"jeweller","country":"BR"}'
//! curl -H 'Host: monitor.payments.internal' http://127.0.0.1:8080/transactions/4111-1
//! trellis endpoints        # the database's endpoint, as the monitoring service finds it
//! ```
//!
//! What runs where:
//! - `trellis.json` declares the `payments` service network, the `transactions-db` resource
//!   configuration (the database) associated with it, the `fraud-score` function
//!   (`score-fn/bootstrap`, a Runtime API client) behind the `score` service, and the
//!   `monitor` service in front of this process's monitoring server on 127.0.0.1:9101.
//! - The monitoring server (below) is an ordinary upstream: it asks the Lattice API where the
//!   database's endpoint is, keeps the transactions there, and calls `score` through the data
//!   plane like any client of the service network.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::sync::Mutex;

const API: &str = "http://127.0.0.1:4566";
const DATA_PLANE: &str = "http://127.0.0.1:8080";
const MONITOR_ADDR: &str = "127.0.0.1:9101";
/// The resource configuration the monitoring service stores transactions through.
const DATABASE: &str = "transactions-db";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if tokio::net::TcpStream::connect("127.0.0.1:5432")
        .await
        .is_err()
    {
        anyhow::bail!(
            "this example needs PostgreSQL at 127.0.0.1:5432 (user postgres, trust auth); \
             start one or point examples/fraud-detection/trellis.json at yours"
        );
    }
    let monitor = Arc::new(Monitor::default());
    let listener = tokio::net::TcpListener::bind(MONITOR_ADDR).await?;
    tokio::spawn(serve(listener, monitor));

    let config = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/fraud-detection/trellis.json"
    );
    let data_dir = std::env::temp_dir().join("trellis-fraud-detection-example");
    eprintln!("monitoring service on {MONITOR_ADDR}; try:");
    eprintln!(
        "  curl -H 'Host: monitor.payments.internal' {DATA_PLANE}/transactions \
         -d '{{\"card\":\"4111-1\",\"amount\":25,\"merchant\":\"bakery\",\"country\":\"FR\"}}'"
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

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// The transaction-monitoring service: records each transaction, looks up the card's recent
/// history and asks the scoring function for a decision.
struct Monitor {
    http: HttpClient,
    db: Mutex<Option<tokio_postgres::Client>>,
}

impl Default for Monitor {
    fn default() -> Self {
        Monitor {
            http: Client::builder(TokioExecutor::new()).build_http(),
            db: Mutex::new(None),
        }
    }
}

impl Monitor {
    async fn handle(&self, method: &http::Method, path: &str, body: Bytes) -> (u16, Value) {
        let result = match (method.as_str(), path) {
            ("GET", "/health") => Ok((200, json!({"ok": true}))),
            ("POST", "/transactions") => self.transaction(&body).await,
            ("GET", p) if p.starts_with("/transactions/") => {
                self.history(&p["/transactions/".len()..]).await
            }
            _ => Ok((
                404,
                json!({"message": format!("no route for {method} {path}")}),
            )),
        };
        result.unwrap_or_else(|e| (502, json!({ "message": e })))
    }

    async fn transaction(&self, body: &[u8]) -> Result<(u16, Value), String> {
        let Ok(tx) = serde_json::from_slice::<Value>(body) else {
            return Ok((
                400,
                json!({"message": "the body must be a JSON transaction"}),
            ));
        };
        let (Some(card), Some(amount)) = (tx["card"].as_str(), tx["amount"].as_f64()) else {
            return Ok((
                400,
                json!({"message": "card (string) and amount (number) are required"}),
            ));
        };
        let merchant = tx["merchant"].as_str().unwrap_or("");
        let country = tx["country"].as_str().unwrap_or("");

        let db = self.db().await?;
        let client = db.as_ref().expect("connected by db()");
        let row = client
            .query_one(
                "SELECT count(*), coalesce(sum(amount), 0)::float8, \
                        coalesce(array_agg(DISTINCT country) FILTER (WHERE country <> ''), '{}') \
                 FROM transactions WHERE card = $1 AND at > now() - interval '10 minutes'",
                &[&card],
            )
            .await
            .map_err(db_error)?;
        let recent = json!({
            "count": row.get::<_, i64>(0),
            "total": row.get::<_, f64>(1),
            "countries": row.get::<_, Vec<String>>(2),
        });

        let mut scored = tx.clone();
        scored["recent"] = recent.clone();
        let verdict = self.score(&scored).await?;
        let decision = verdict["decision"].as_str().unwrap_or("review");
        let score = verdict["score"].as_i64().unwrap_or(0) as i32;
        client
            .execute(
                "INSERT INTO transactions (card, amount, merchant, country, score, decision) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[&card, &amount, &merchant, &country, &score, &decision],
            )
            .await
            .map_err(db_error)?;
        Ok((
            200,
            json!({"card": card, "amount": amount, "recent": recent, "verdict": verdict}),
        ))
    }

    async fn history(&self, card: &str) -> Result<(u16, Value), String> {
        let db = self.db().await?;
        let rows = db
            .as_ref()
            .expect("connected by db()")
            .query(
                "SELECT to_char(at, 'YYYY-MM-DD\"T\"HH24:MI:SS'), amount, merchant, country, \
                        score, decision \
                 FROM transactions WHERE card = $1 ORDER BY at DESC LIMIT 20",
                &[&card],
            )
            .await
            .map_err(db_error)?;
        let rows: Vec<Value> = rows
            .iter()
            .map(|r| {
                json!({
                    "at": r.get::<_, String>(0),
                    "amount": r.get::<_, f64>(1),
                    "merchant": r.get::<_, String>(2),
                    "country": r.get::<_, String>(3),
                    "score": r.get::<_, i32>(4),
                    "decision": r.get::<_, String>(5),
                })
            })
            .collect();
        Ok((200, json!({"card": card, "transactions": rows})))
    }

    /// Calls the `score` service through the service network's data plane.
    async fn score(&self, tx: &Value) -> Result<Value, String> {
        let req = http::Request::post(format!("{DATA_PLANE}/score"))
            .header(http::header::HOST, "score.payments.internal")
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(tx.to_string())))
            .map_err(|e| e.to_string())?;
        let resp = tokio::time::timeout(Duration::from_secs(10), self.http.request(req))
            .await
            .map_err(|_| "the score service did not answer within 10 s".to_string())?
            .map_err(|e| format!("score service: {e}"))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        if !status.is_success() {
            return Err(format!(
                "score service answered {status}: {}",
                String::from_utf8_lossy(&body)
            ));
        }
        serde_json::from_slice(&body).map_err(|e| format!("score service answer: {e}"))
    }

    /// The database connection, (re)connected through the resource endpoint when there is
    /// none or the last one broke.
    async fn db(
        &self,
    ) -> Result<tokio::sync::MutexGuard<'_, Option<tokio_postgres::Client>>, String> {
        let mut db = self.db.lock().await;
        if db.as_ref().is_none_or(|c| c.is_closed()) {
            *db = Some(self.connect().await?);
        }
        Ok(db)
    }

    /// Finds the database's endpoint the way any client would (the association's Trellis
    /// `endpoints` field), connects through it and makes sure the table exists.
    async fn connect(&self) -> Result<tokio_postgres::Client, String> {
        let addr = self.database_endpoint().await?;
        let stream = tokio::net::TcpStream::connect(&addr)
            .await
            .map_err(|e| format!("database endpoint {addr}: {e}"))?;
        let mut config = tokio_postgres::Config::new();
        config.user("postgres").dbname("postgres");
        let (client, conn) = config
            .connect_raw(stream, tokio_postgres::NoTls)
            .await
            .map_err(|e| format!("database endpoint {addr}: {e}"))?;
        tokio::spawn(conn);
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS transactions (
                     id bigserial PRIMARY KEY,
                     at timestamptz NOT NULL DEFAULT now(),
                     card text NOT NULL,
                     amount float8 NOT NULL,
                     merchant text NOT NULL,
                     country text NOT NULL,
                     score int NOT NULL,
                     decision text NOT NULL);
                 CREATE INDEX IF NOT EXISTS transactions_card_at ON transactions (card, at)",
            )
            .await
            .map_err(|e| format!("database: {e}"))?;
        eprintln!("monitor: connected to {DATABASE} through its endpoint {addr}");
        Ok(client)
    }

    async fn database_endpoint(&self) -> Result<String, String> {
        let req = http::Request::get(format!("{API}/servicenetworkresourceassociations"))
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        let resp = self.http.request(req).await.map_err(|e| e.to_string())?;
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        let list: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|a| a["endpoints"].as_array().cloned().unwrap_or_default())
            .find(|e| e["resourceConfigurationName"] == DATABASE)
            .and_then(|e| Some(format!("{}:{}", e["host"].as_str()?, e["port"].as_u64()?)))
            .ok_or_else(|| format!("no endpoint for {DATABASE} yet (is it associated?)"))
    }
}

fn db_error(e: tokio_postgres::Error) -> String {
    format!("database: {e}")
}

async fn serve(listener: tokio::net::TcpListener, monitor: Arc<Monitor>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let monitor = monitor.clone();
        tokio::spawn(async move {
            let svc =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let monitor = monitor.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let (status, doc) =
                            monitor.handle(&parts.method, parts.uri.path(), body).await;
                        let resp = http::Response::builder()
                            .status(status)
                            .header(http::header::CONTENT_TYPE, "application/json")
                            .body(Full::new(Bytes::from(format!("{doc}\n"))))
                            .expect("valid response");
                        Ok::<_, Infallible>(resp)
                    }
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
