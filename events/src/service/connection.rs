//! Connections as HTTP targets. Each connection is registered under its ARN and takes HTTP
//! requests ([`Target::invoke_http`]): it adds its authorization (API key, basic, OAuth client
//! credentials) and its invocation parameters (headers, query string, body), then sends the
//! request on, the first of these that applies:
//!
//! 1. the connection has a resource configuration (`InvocationConnectivityParameters`): to the
//!    target registered under that configuration's ARN, which dials its own destination;
//! 2. a service-network service answers for the URI's host (registry key [`host_key`]): to it;
//! 3. otherwise straight to the URI over HTTP or HTTPS ([`http_client`](super::http_client)).
//!
//! The whole exchange, OAuth token included, has AWS's 5 s limit for API destinations.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use trellis_core::target::{
    host_key, BoxFuture, HttpRequest, HttpResponse, Target, TargetError, TargetRegistry,
};

use super::http_client::HttpClient;

/// How long one exchange may take (AWS: 5 s for API destinations).
pub(crate) const TIMEOUT: Duration = Duration::from_secs(5);
/// An OAuth token is renewed this long before it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(30);
/// How long a token without `expires_in` is used.
const TOKEN_DEFAULT_LIFETIME: Duration = Duration::from_secs(300);

/// A connection registered as a target.
pub(crate) struct ConnectionTarget(Arc<Connection>);

pub(crate) struct Connection {
    arn: String,
    /// Headers, query string and body parameters of every invocation (the API key and basic
    /// credentials are headers here).
    params: Params,
    oauth: Option<OAuth>,
    /// `InvocationConnectivityParameters.ResourceParameters.ResourceConfigurationArn`.
    resource_configuration: Option<String>,
    registry: Weak<TargetRegistry>,
    client: HttpClient,
}

/// OAuth client credentials: a token from the authorization endpoint, kept until it expires.
struct OAuth {
    endpoint: String,
    method: http::Method,
    /// Basic credentials of the client plus `OAuthHttpParameters`.
    params: Params,
    /// `AuthParameters.ConnectivityParameters`: a private authorization endpoint.
    resource_configuration: Option<String>,
    token: tokio::sync::Mutex<Option<(String, Instant)>>,
}

#[derive(Default)]
struct Params {
    headers: Vec<(String, String)>,
    query: Vec<(String, String)>,
    body: Vec<(String, String)>,
}

// === impl Params ===

impl Params {
    /// `ConnectionHttpParameters` (`HeaderParameters`, `QueryStringParameters`,
    /// `BodyParameters`), appended to `self`.
    fn add_http_parameters(&mut self, p: &Value) {
        let pairs = |key: &str| -> Vec<(String, String)> {
            p[key]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|kv| Some((kv["Key"].as_str()?.into(), kv["Value"].as_str()?.into())))
                .collect()
        };
        self.headers.extend(pairs("HeaderParameters"));
        self.query.extend(pairs("QueryStringParameters"));
        self.body.extend(pairs("BodyParameters"));
    }

    /// Adds the parameters to `req`: headers replace the request's own, query parameters are
    /// appended, body parameters become members of a JSON object body (absent ones only) or
    /// fields of a form body.
    fn apply(&self, req: &mut HttpRequest) -> Result<(), TargetError> {
        let invalid = |e: String| TargetError::Failed {
            error: "InvalidParameter".into(),
            cause: e,
        };
        for (k, v) in &self.headers {
            let name = http::HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| invalid(format!("header {k}: {e}")))?;
            let value =
                http::HeaderValue::from_str(v).map_err(|e| invalid(format!("header {k}: {e}")))?;
            req.headers_mut().insert(name, value);
        }
        if !self.query.is_empty() {
            let uri = req.uri();
            let mut query = uri.query().unwrap_or_default().to_string();
            for (k, v) in &self.query {
                if !query.is_empty() {
                    query.push('&');
                }
                query.push_str(&form_encode(k));
                query.push('=');
                query.push_str(&form_encode(v));
            }
            let mut parts = uri.clone().into_parts();
            parts.path_and_query = Some(
                format!("{}?{query}", uri.path())
                    .parse()
                    .map_err(|e| invalid(format!("query string: {e}")))?,
            );
            *req.uri_mut() = http::Uri::from_parts(parts).map_err(|e| invalid(e.to_string()))?;
        }
        if !self.body.is_empty() {
            let is_form = req
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
            if is_form {
                let mut body = String::from_utf8_lossy(req.body()).into_owned();
                for (k, v) in &self.body {
                    if !body.is_empty() {
                        body.push('&');
                    }
                    body.push_str(&format!("{}={}", form_encode(k), form_encode(v)));
                }
                *req.body_mut() = Bytes::from(body);
            } else if let Ok(Value::Object(mut obj)) = serde_json::from_slice(req.body()) {
                for (k, v) in &self.body {
                    obj.entry(k.clone())
                        .or_insert_with(|| Value::String(v.clone()));
                }
                *req.body_mut() = Bytes::from(Value::Object(obj).to_string());
            }
        }
        Ok(())
    }
}

fn form_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn basic(user: &str, password: &str) -> (String, String) {
    let token = trellis_core::model::base64_encode(format!("{user}:{password}").as_bytes());
    ("authorization".into(), format!("Basic {token}"))
}

/// The resource configuration ARN of a `ConnectivityResourceParameters` value.
pub(crate) fn resource_configuration(p: &Value) -> Option<&str> {
    p["ResourceParameters"]["ResourceConfigurationArn"]
        .as_str()
        .filter(|s| !s.is_empty())
}

// === impl Connection ===

impl Connection {
    /// The connection a stored record (AWS's `CreateConnection` input plus its ARN) describes.
    pub(crate) fn from_doc(
        doc: &Value,
        registry: Weak<TargetRegistry>,
        client: HttpClient,
    ) -> Option<Connection> {
        let arn = doc["ConnectionArn"].as_str()?.to_string();
        let auth = &doc["AuthParameters"];
        let mut params = Params::default();
        let key = &auth["ApiKeyAuthParameters"];
        if let (Some(k), Some(v)) = (key["ApiKeyName"].as_str(), key["ApiKeyValue"].as_str()) {
            params.headers.push((k.to_string(), v.to_string()));
        }
        let b = &auth["BasicAuthParameters"];
        if let (Some(u), Some(p)) = (b["Username"].as_str(), b["Password"].as_str()) {
            params.headers.push(basic(u, p));
        }
        params.add_http_parameters(&auth["InvocationHttpParameters"]);
        let o = &auth["OAuthParameters"];
        let oauth = o["AuthorizationEndpoint"].as_str().map(|endpoint| {
            let mut p = Params::default();
            let c = &o["ClientParameters"];
            p.headers.push(basic(
                c["ClientID"].as_str().unwrap_or_default(),
                c["ClientSecret"].as_str().unwrap_or_default(),
            ));
            p.add_http_parameters(&o["OAuthHttpParameters"]);
            OAuth {
                endpoint: endpoint.to_string(),
                method: o["HttpMethod"]
                    .as_str()
                    .and_then(|m| m.parse().ok())
                    .unwrap_or(http::Method::POST),
                params: p,
                resource_configuration: resource_configuration(&auth["ConnectivityParameters"])
                    .map(str::to_string),
                token: tokio::sync::Mutex::new(None),
            }
        });
        Some(Connection {
            arn,
            params,
            oauth,
            resource_configuration: resource_configuration(
                &doc["InvocationConnectivityParameters"],
            )
            .map(str::to_string),
            registry,
            client,
        })
    }

    /// Authorizes `req`, adds the invocation parameters and sends it on (see the module docs).
    pub(crate) async fn send(&self, req: HttpRequest) -> Result<HttpResponse, TargetError> {
        tokio::time::timeout(TIMEOUT, self.authorize_and_send(req))
            .await
            .map_err(|_| TargetError::Timeout(self.arn.clone()))?
    }

    async fn authorize_and_send(&self, mut req: HttpRequest) -> Result<HttpResponse, TargetError> {
        if let Some(oauth) = &self.oauth {
            let token = self.token(oauth).await?;
            let value = http::HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                TargetError::Failed {
                    error: "OAuthError".into(),
                    cause: "the access token is not a valid header value".into(),
                }
            })?;
            req.headers_mut().insert(http::header::AUTHORIZATION, value);
        }
        self.params.apply(&mut req)?;
        let resp = self
            .forward(self.resource_configuration.as_deref(), req)
            .await?;
        if let (Some(oauth), 401 | 407) = (&self.oauth, resp.status().as_u16()) {
            // AWS authorizes again after these: the next attempt fetches a fresh token.
            *oauth.token.lock().await = None;
        }
        Ok(resp)
    }

    /// Sends `req` through `resource_configuration`, else to the service of its host, else
    /// straight to its URI.
    async fn forward(
        &self,
        resource_configuration: Option<&str>,
        req: HttpRequest,
    ) -> Result<HttpResponse, TargetError> {
        let registry = self
            .registry
            .upgrade()
            .ok_or_else(|| TargetError::Unavailable("the target registry is gone".into()))?;
        if let Some(rc) = resource_configuration {
            return registry.invoke_http(rc, req).await;
        }
        let service = req.uri().host().and_then(|h| registry.get(&host_key(h)));
        drop(registry);
        match service {
            Some(service) => service.invoke_http(req).await,
            None => send_direct(&self.client, req).await,
        }
    }

    /// A cached OAuth access token, or a fresh one from the authorization endpoint.
    async fn token(&self, oauth: &OAuth) -> Result<String, TargetError> {
        let mut cached = oauth.token.lock().await;
        if let Some((token, until)) = cached.as_ref() {
            if Instant::now() < *until {
                return Ok(token.clone());
            }
        }
        let failed = |cause: String| TargetError::Failed {
            error: "OAuthError".into(),
            cause,
        };
        let mut req = http::Request::builder()
            .method(oauth.method.clone())
            .uri(oauth.endpoint.as_str())
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(Bytes::new())
            .map_err(|e| failed(format!("{}: {e}", oauth.endpoint)))?;
        oauth.params.apply(&mut req)?;
        let resp = self
            .forward(oauth.resource_configuration.as_deref(), req)
            .await?;
        if !resp.status().is_success() {
            return Err(failed(format!(
                "the authorization endpoint answered {}",
                resp.status().as_u16()
            )));
        }
        let body: Value = serde_json::from_slice(resp.body())
            .map_err(|e| failed(format!("the authorization endpoint's answer: {e}")))?;
        let token = body["access_token"]
            .as_str()
            .ok_or_else(|| failed("the authorization endpoint gave no access_token".into()))?
            .to_string();
        let lifetime = body["expires_in"]
            .as_u64()
            .map_or(TOKEN_DEFAULT_LIFETIME, Duration::from_secs);
        *cached = Some((
            token.clone(),
            Instant::now() + lifetime.saturating_sub(TOKEN_MARGIN),
        ));
        Ok(token)
    }
}

/// Sends `req` (an absolute `http` or `https` URI) with `client` and reads the whole answer.
pub(crate) async fn send_direct(
    client: &HttpClient,
    req: HttpRequest,
) -> Result<HttpResponse, TargetError> {
    let uri = req.uri().to_string();
    if !matches!(req.uri().scheme_str(), Some("http" | "https")) {
        return Err(TargetError::Failed {
            error: "InvalidEndpoint".into(),
            cause: format!("{uri} is not an http or https URL"),
        });
    }
    let resp = client
        .request(req.map(Full::new))
        .await
        .map_err(|e| TargetError::Unavailable(format!("{uri}: {}", error_chain(&e))))?;
    let (parts, body) = resp.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| TargetError::Unavailable(format!("{uri}: {e}")))?
        .to_bytes();
    Ok(http::Response::from_parts(parts, body))
}

/// An error with its sources (a TLS failure is the source of the client's "connect" error).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

// === impl ConnectionTarget ===

impl ConnectionTarget {
    pub(crate) fn new(connection: Connection) -> Self {
        Self(Arc::new(connection))
    }
}

impl Target for ConnectionTarget {
    fn arn(&self) -> &str {
        &self.0.arn
    }

    fn invoke(&self, _payload: Bytes) -> BoxFuture<'static, Result<Bytes, TargetError>> {
        let arn = self.0.arn.clone();
        Box::pin(async move {
            Err(TargetError::Unavailable(format!(
                "{arn} is a connection: it takes HTTP requests (use an API destination)"
            )))
        })
    }

    fn invoke_http(
        &self,
        req: HttpRequest,
    ) -> BoxFuture<'static, Result<HttpResponse, TargetError>> {
        let connection = self.0.clone();
        Box::pin(async move { connection.send(req).await })
    }
}
