//! API fronts over a [`TestCluster`]: one `api-svc` per slot, each preferring its own
//! slot's store, reached through real HTTP and WebSocket clients.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use agenda_shared::command::Limits;
use api_svc::{App, AppError, Config, LoginLimits, PasswordCost, Secret, StorePool, TlsFiles, TrustedProxies};
use futures::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

use crate::TestCluster;

/// A self-signed certificate for `localhost`/`127.0.0.1` written into `dir`, as the front
/// door's TLS files.
pub fn self_signed_front_door(dir: &std::path::Path) -> TlsFiles {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).expect("cert");
    let files = TlsFiles {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    std::fs::write(&files.cert, cert.cert.pem()).expect("write cert");
    std::fs::write(&files.key, cert.signing_key.serialize_pem()).expect("write key");
    files
}

/// Settings of the API fronts a test starts.
#[derive(Debug, Clone)]
pub struct ApiOptions {
    /// `AUDIT_API_TOKEN`.
    pub audit_token: Option<String>,
    /// Login budgets (generous by default: every test client shares 127.0.0.1).
    pub login_limits: LoginLimits,
    /// WebSocket ping interval.
    pub ws_ping_interval: Duration,
    /// `WS_ALLOWED_ORIGINS`.
    pub ws_allowed_origins: Vec<String>,
    /// Front door TLS.
    pub tls: Option<TlsFiles>,
    /// Store retry budget.
    pub store_retry_budget: Duration,
    /// Quotas and retention the fronts put in their commands.
    pub limits: Limits,
    /// `TRUSTED_PROXIES`.
    pub trusted_proxies: TrustedProxies,
    /// Token lifetime.
    pub token_ttl: Duration,
    /// argon2id cost of new hashes (the cheapest by default: debug builds hash slowly).
    pub password_cost: PasswordCost,
    /// `PASSWORD_HASH_QUEUE`.
    pub password_hash_queue: usize,
    /// `FEED_FAILURES_PER_IP_PER_MINUTE` (generous by default, like the login budgets).
    pub feed_failures_per_ip_per_minute: u32,
}

impl Default for ApiOptions {
    fn default() -> Self {
        Self {
            audit_token: None,
            login_limits: LoginLimits {
                per_ip_per_minute: 10_000,
                free_failures: 10_000,
                max_backoff: Duration::from_secs(900),
            },
            ws_ping_interval: Duration::from_secs(30),
            ws_allowed_origins: Vec::new(),
            tls: None,
            store_retry_budget: Duration::from_secs(15),
            limits: Limits::default(),
            trusted_proxies: TrustedProxies::default(),
            token_ttl: Duration::from_secs(86_400),
            password_cost: PasswordCost::insecure_fast_for_tests(),
            password_hash_queue: 64,
            feed_failures_per_ip_per_minute: 10_000,
        }
    }
}

struct Running {
    token: CancellationToken,
    handle: JoinHandle<Result<(), AppError>>,
    pool: Arc<StorePool>,
}

struct ApiSlot {
    addr: SocketAddr,
    running: Option<Running>,
}

/// N stores and N API fronts (front `i` prefers store `i`).
pub struct ApiCluster {
    /// The stores.
    pub stores: TestCluster,
    jwt_secret: Secret,
    options: ApiOptions,
    apis: Vec<ApiSlot>,
}

impl ApiCluster {
    /// `n` stores and `n` API fronts with default options.
    pub async fn start(n: usize) -> Self {
        Self::start_with(n, ApiOptions::default()).await
    }

    /// `n` stores and `n` API fronts.
    pub async fn start_with(n: usize, options: ApiOptions) -> Self {
        let stores = TestCluster::start(n).await;
        let jwt_secret = Secret::new(format!("jwt-{}", uuid::Uuid::new_v4().simple()));
        let mut cluster = Self {
            stores,
            jwt_secret,
            options,
            apis: Vec::new(),
        };
        for i in 0..n {
            // Restarts reuse this port: one outside the ephemeral range stays free.
            let addr = SocketAddr::from(([127, 0, 0, 1], crate::ports::reserve(&[Ipv4Addr::LOCALHOST])));
            cluster.apis.push(ApiSlot { addr, running: None });
            cluster.launch(i).await;
        }
        cluster
    }

    /// The configuration of front `i` (its own store first, then the others in order).
    pub fn config(&self, i: usize) -> Config {
        let n = self.stores.len();
        let store_addrs = (0..n).map(|k| self.stores.addr((i + k) % n).to_string()).collect();
        let mut config = Config::new(
            format!("agenda-{}", i + 1),
            store_addrs,
            self.jwt_secret.clone(),
            self.stores.secret().clone(),
            crate::pki::tls(agenda_shared::rpc::tls::Role::Api),
        );
        config.http_listen = self.apis[i].addr;
        config.audit_token = self.options.audit_token.clone().map(Secret::new);
        config.login_limits = self.options.login_limits;
        config.password_cost = self.options.password_cost;
        config.password_hash_queue = self.options.password_hash_queue;
        config.feed_failures_per_ip_per_minute = self.options.feed_failures_per_ip_per_minute;
        config.ws_ping_interval = self.options.ws_ping_interval;
        config.ws_resume_grace = Duration::from_millis(200);
        config.ws_allowed_origins = self.options.ws_allowed_origins.clone();
        config.tls = self.options.tls.clone();
        config.store_retry_budget = self.options.store_retry_budget;
        config.limits = self.options.limits;
        config.trusted_proxies = self.options.trusted_proxies.clone();
        config.token_ttl = self.options.token_ttl;
        config
    }

    async fn launch(&mut self, i: usize) {
        let app = App::build(self.config(i)).await.expect("api starts");
        self.apis[i].addr = app.local_addr();
        let pool = app.store_pool();
        pool.inject_faults(self.stores.faults(), &Self::front_name(i));
        let token = CancellationToken::new();
        let handle = tokio::spawn(app.run(token.clone()));
        self.apis[i].running = Some(Running { token, handle, pool });
    }

    /// Number of slots.
    pub fn len(&self) -> usize {
        self.apis.len()
    }

    /// Whether there are no slots.
    pub fn is_empty(&self) -> bool {
        self.apis.is_empty()
    }

    /// The JWT secret every front shares (tests forge tokens with it).
    pub fn jwt_secret(&self) -> &Secret {
        &self.jwt_secret
    }

    /// Base URL of front `i`, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self, i: usize) -> String {
        let scheme = if self.options.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.apis[i].addr)
    }

    /// WebSocket URL of front `i`.
    pub fn ws_url(&self, i: usize) -> String {
        format!("ws://{}/ws", self.apis[i].addr)
    }

    /// The store pool of running front `i`.
    pub fn pool(&self, i: usize) -> Arc<StorePool> {
        self.apis[i].running.as_ref().expect("api running").pool.clone()
    }

    /// An HTTP client of front `i`, without a token.
    pub fn client(&self, i: usize) -> Client {
        Client::new(self.url(i))
    }

    /// Front `i`'s name in the injected faults.
    fn front_name(i: usize) -> String {
        format!("api-{i}")
    }

    /// Cut front `i` off from store `k`: its new calls to that store fail at once.
    pub fn cut_front_from_store(&self, i: usize, k: usize) {
        self.stores
            .faults()
            .cut(&Self::front_name(i), &self.stores.addr(k).to_string());
    }

    /// Start front `i` again (after [`ApiCluster::stop_api`]), on the same address.
    pub async fn start_api(&mut self, i: usize) {
        assert!(self.apis[i].running.is_none(), "front {i} is running");
        self.launch(i).await;
    }

    /// Whether front `i` runs.
    pub fn api_running(&self, i: usize) -> bool {
        self.apis[i].running.is_some()
    }

    /// Stop store `i` (its front keeps running and fails over).
    pub async fn stop_store(&mut self, i: usize) {
        self.stores.stop(i).await;
    }

    /// Stop front `i`.
    pub async fn stop_api(&mut self, i: usize) {
        let running = self.apis[i].running.take().expect("api running");
        running.token.cancel();
        tokio::time::timeout(Duration::from_secs(20), running.handle)
            .await
            .expect("api stops within 20 s")
            .expect("api task")
            .expect("api stopped cleanly");
    }

    /// Stop everything.
    pub async fn shutdown(mut self) {
        for i in 0..self.apis.len() {
            if self.apis[i].running.is_some() {
                self.stop_api(i).await;
            }
        }
        self.stores.shutdown().await;
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: reqwest::header::HeaderMap,
    /// Body text.
    pub text: String,
    /// Body as JSON (`Null` when it is not JSON).
    pub json: Value,
}

impl Reply {
    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `X-Agenda-Revision`.
    pub fn revision(&self) -> u64 {
        self.header("x-agenda-revision")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no X-Agenda-Revision on {self:?}"))
    }

    /// Assert the status, returning self.
    #[track_caller]
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected answer: {} {}",
            self.status,
            self.text
        );
        self
    }

    /// Assert a problem document with this status and code.
    #[track_caller]
    pub fn expect_problem(self, status: u16, code: &str) -> Self {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected answer: {} {}",
            self.status,
            self.text
        );
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "not problem+json: {}",
            self.text
        );
        assert_eq!(self.json["code"], code, "{}", self.text);
        assert_eq!(self.json["status"], status, "{}", self.text);
        assert!(self.json["request_id"].is_string(), "{}", self.text);
        self
    }
}

/// An HTTP client of one front, optionally with a bearer token.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    /// A client of `base`.
    pub fn new(base: String) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .danger_accept_invalid_certs(true)
            .build()
            .expect("http client");
        Self {
            http,
            base,
            token: None,
        }
    }

    /// The same client sending `token`.
    pub fn with_token(&self, token: &str) -> Self {
        Self {
            token: Some(token.to_owned()),
            ..self.clone()
        }
    }

    /// A request builder with the base URL and the token.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let rb = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    /// Send and read the whole answer.
    pub async fn send(&self, rb: reqwest::RequestBuilder) -> Reply {
        self.try_send(rb).await.expect("request sent and answered")
    }

    /// Send and read the whole answer; a transport failure (a front that is down, a
    /// connection cut mid-answer) is an `Err`.
    pub async fn try_send(&self, rb: reqwest::RequestBuilder) -> Result<Reply, reqwest::Error> {
        let response = rb.send().await?;
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await?;
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Reply {
            status,
            headers,
            text,
            json,
        })
    }

    /// GET.
    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.request(Method::GET, path)).await
    }

    /// A JSON request.
    pub async fn json(&self, method: Method, path: &str, body: &Value) -> Reply {
        self.send(self.request(method, path).json(body)).await
    }

    /// POST JSON.
    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.json(Method::POST, path, body).await
    }

    /// Register `username` (password `password-{username}`); returns (user id, token).
    pub async fn register(&self, username: &str) -> (uuid::Uuid, String) {
        let reply = self
            .post(
                "/register",
                &json!({
                    "username": username,
                    "email": format!("{username}@example.org"),
                    "password": format!("password-{username}"),
                    "name": username.to_uppercase(),
                }),
            )
            .await
            .expect(201);
        let id = reply.json["user"]["id"]
            .as_str()
            .expect("user id")
            .parse()
            .expect("uuid");
        (id, reply.json["token"].as_str().expect("token").to_owned())
    }

    /// Log in as `username` (registered with [`Client::register`]); returns the token.
    pub async fn login(&self, username: &str) -> String {
        let reply = self
            .post(
                "/login",
                &json!({ "username": username, "password": format!("password-{username}") }),
            )
            .await
            .expect(200);
        reply.json["token"].as_str().expect("token").to_owned()
    }
}

/// A WebSocket client.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Open a WebSocket to `url` (optionally with an `Origin`).
pub async fn ws_connect(url: &str, origin: Option<&str>) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = url.into_client_request()?;
    if let Some(o) = origin {
        request
            .headers_mut()
            .insert("origin", o.parse().expect("origin header"));
    }
    tokio_tungstenite::connect_async(request).await.map(|(ws, _)| ws)
}

/// Send a JSON message.
pub async fn ws_send(ws: &mut Ws, msg: &Value) {
    ws.send(Message::Text(msg.to_string().into())).await.expect("ws send");
}

/// The next JSON message that is not a ping, within `wait`; `None` when the socket closed.
pub async fn ws_next(ws: &mut Ws, wait: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("a WebSocket message in time");
        match msg {
            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return None,
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str()).expect("JSON message");
                if v["type"] == "ping" {
                    ws_send(ws, &json!({"type": "pong"})).await;
                    continue;
                }
                return Some(v);
            }
            Some(Ok(_)) => continue,
        }
    }
}

/// Whether no message other than pings arrives within `wait` (the socket stays quiet).
pub async fn ws_quiet(ws: &mut Ws, wait: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return true,
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
                if v["type"] != "ping" {
                    return false;
                }
            }
            Ok(Some(Ok(_))) => continue,
            Ok(_) => return false,
        }
    }
}

/// Connect to `url`, authenticate with `token` and (optionally) resume after a revision;
/// returns the socket and the `ready` revision.
pub async fn ws_ready(url: &str, token: &str, after: Option<u64>) -> (Ws, u64) {
    let mut ws = ws_connect(url, None).await.expect("ws connect");
    ws_send(&mut ws, &json!({"type": "auth", "token": token})).await;
    if let Some(a) = after {
        ws_send(&mut ws, &json!({"type": "resume", "after": a})).await;
    }
    let ready = ws_next(&mut ws, Duration::from_secs(30)).await.expect("ready");
    assert_eq!(ready["type"], "ready", "{ready}");
    let revision = ready["revision"].as_u64().expect("ready revision");
    (ws, revision)
}

/// RFC 5545 content lines of a calendar, unfolded (CRLF + space/tab continues a line).
pub fn ics_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for raw in text.split("\r\n") {
        if let Some(rest) = raw.strip_prefix(' ').or_else(|| raw.strip_prefix('\t')) {
            if let Some(last) = lines.last_mut() {
                last.push_str(rest);
            }
        } else if !raw.is_empty() {
            lines.push(raw.to_owned());
        }
    }
    lines
}

/// The events of a calendar: each a list of `(name, value)` with TEXT values unescaped.
pub fn ics_events(text: &str) -> Vec<Vec<(String, String)>> {
    let mut events = Vec::new();
    let mut current: Option<Vec<(String, String)>> = None;
    for line in ics_lines(text) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.split(';').next().unwrap_or(name).to_ascii_uppercase();
        match (name.as_str(), value) {
            ("BEGIN", "VEVENT") => current = Some(Vec::new()),
            ("END", "VEVENT") => events.extend(current.take()),
            _ => {
                if let Some(ev) = current.as_mut() {
                    ev.push((name, unescape(value)));
                }
            }
        }
    }
    events
}

fn unescape(v: &str) -> String {
    let mut out = String::new();
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') | Some('N') => out.push('\n'),
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}
