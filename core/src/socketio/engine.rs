//! Engine.IO v4 client transports: one WebSocket, or HTTP long-polling.
//!
//! An [`Engine`] is one Engine.IO session. The caller sends whole Engine.IO packets (`4...` for
//! a Socket.IO packet, `1` to close) on `tx` and receives the payloads of the server's message
//! packets (the Socket.IO packet text, without the leading `4`) on `rx`; the transport answers
//! the server's pings itself and ends the session (`Incoming::Closed`) when the server stops
//! pinging for `pingInterval + pingTimeout`, closes, or the connection fails.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::config::SioTransport;
use crate::error::{Error, ErrorKind, Result};

/// Where the hub is: scheme, host, port, Engine.IO path and Socket.IO namespace.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    tls: bool,
    host: String,
    port: u16,
    /// Engine.IO endpoint path, `/socket.io/`.
    path: String,
    /// Socket.IO namespace from the URL path (`/` by default).
    pub namespace: String,
}

impl Target {
    /// Parse `http(s)://host[:port][/namespace]` (ws/wss accepted too).
    pub(crate) fn parse(url: &str) -> Result<Target> {
        let bad = |why: &str| {
            Error::new(
                ErrorKind::Config,
                format!("client.url \"{url}\" is not a usable hub URL: {why}"),
            )
        };
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("wss://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else if let Some(r) = url.strip_prefix("ws://") {
            (false, r)
        } else {
            return Err(bad("the scheme must be http, https, ws or wss"));
        };
        let rest = rest.split(['?', '#']).next().unwrap_or("");
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.contains('@') {
            return Err(bad(
                "credentials in the URL are not supported; use client.authToken",
            ));
        }
        let (host, port) = if let Some(h) = authority.strip_prefix('[') {
            // [ipv6]:port
            let end = h.find(']').ok_or_else(|| bad("unclosed [ in the host"))?;
            let port = h[end + 1..].strip_prefix(':');
            (h[..end].to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (authority.to_string(), None),
            }
        };
        if host.is_empty() {
            return Err(bad("the host is missing"));
        }
        let port = match port {
            Some(p) => p.parse().map_err(|_| bad("the port is not a number"))?,
            None if tls => 443,
            None => 80,
        };
        let ns = path.trim_end_matches('/');
        Ok(Target {
            tls,
            host,
            port,
            path: "/socket.io/".into(),
            namespace: if ns.is_empty() { "/".into() } else { ns.into() },
        })
    }

    /// TLS, host, port and namespace (for `socketio_hooks`).
    pub(crate) fn parts(&self) -> (bool, String, u16, String) {
        (
            self.tls,
            self.host.clone(),
            self.port,
            self.namespace.clone(),
        )
    }

    fn host_header(&self) -> String {
        let default = if self.tls { 443 } else { 80 };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// What the server said in its open packet.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Handshake {
    pub sid: String,
    #[serde(default = "default_ping_interval")]
    pub ping_interval: u64,
    #[serde(default = "default_ping_timeout")]
    pub ping_timeout: u64,
}

fn default_ping_interval() -> u64 {
    25_000
}
fn default_ping_timeout() -> u64 {
    20_000
}

impl Handshake {
    /// How long the link may stay silent before it is considered dead.
    pub(super) fn silence_limit(&self) -> Duration {
        // Saturating: the hub's numbers are not trusted; a huge interval means "no limit",
        // not an overflow.
        Duration::from_millis(self.ping_interval.saturating_add(self.ping_timeout))
    }
}

/// What the transport hands up.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// A Socket.IO packet (the Engine.IO message payload).
    Packet(String),
    /// The session ended; why.
    Closed(String),
}

/// One Engine.IO session.
pub(crate) struct Engine {
    /// Whole Engine.IO packets to send (`4<socket.io packet>`, `1`).
    pub tx: mpsc::Sender<String>,
    /// Packets and the end of the session.
    pub rx: mpsc::Receiver<Incoming>,
    /// Which transport carries it.
    pub transport: SioTransport,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Engine {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Engine {
    /// Send the close packet and give the transport a moment to write it.
    pub(crate) async fn close(mut self) {
        let _ = self.tx.send("1".into()).await;
        let (tx, _) = mpsc::channel(1);
        drop(std::mem::replace(&mut self.tx, tx));
        for t in self.tasks.iter_mut() {
            let _ = tokio::time::timeout(Duration::from_millis(500), t).await;
        }
    }

    /// Open a session on the given transport.
    pub(crate) async fn open(target: &Target, transport: SioTransport) -> Result<Engine> {
        match transport {
            SioTransport::Websocket => open_websocket(target).await,
            SioTransport::Polling => open_polling(target).await,
        }
    }
}

/// A byte stream: plain TCP or TLS.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

fn conn_error(what: &str, target: &Target, e: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::Connection,
        format!(
            "Socket.IO {what} to {}:{} failed: {e}",
            target.host, target.port
        ),
    )
}

async fn dial(target: &Target) -> Result<Box<dyn Io>> {
    let tcp = TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|e| conn_error("connection", target, e))?;
    let _ = tcp.set_nodelay(true);
    if !target.tls {
        return Ok(Box::new(tcp));
    }
    tls(target, tcp).await
}

#[cfg(feature = "tls")]
async fn tls(target: &Target, tcp: TcpStream) -> Result<Box<dyn Io>> {
    use std::sync::OnceLock;
    static CONFIG: OnceLock<std::result::Result<Arc<rustls::ClientConfig>, String>> =
        OnceLock::new();
    let config = CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map(|b| Arc::new(b.with_root_certificates(roots).with_no_client_auth()))
            .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|e| conn_error("TLS setup", target, e))?;
    let name = rustls::pki_types::ServerName::try_from(target.host.clone())
        .map_err(|e| conn_error("TLS server name", target, e))?;
    let stream = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| conn_error("TLS handshake", target, e))?;
    Ok(Box::new(stream))
}

#[cfg(not(feature = "tls"))]
async fn tls(_target: &Target, _tcp: TcpStream) -> Result<Box<dyn Io>> {
    Err(Error::new(
        ErrorKind::Unsupported,
        "https:// and wss:// hub URLs need the `tls` feature of event-bus-core",
    ))
}

pub(super) fn parse_open(target: &Target, packet: &str) -> Result<Handshake> {
    let body = packet.strip_prefix('0').ok_or_else(|| {
        conn_error(
            "handshake",
            target,
            format!("expected an Engine.IO open packet, got {:?}", trunc(packet)),
        )
    })?;
    serde_json::from_str(body).map_err(|e| conn_error("handshake", target, e))
}

/// Now plus `limit`; a limit too large for the clock means about 30 years (never, in practice).
fn deadline_after(limit: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(limit)
        .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365 * 30))
}

fn trunc(s: &str) -> &str {
    let mut end = s.len().min(80);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

// ---------------------------------------------------------------------------------------------
// WebSocket

async fn open_websocket(target: &Target) -> Result<Engine> {
    let io = dial(target).await?;
    let url = format!(
        "{}://{}{}?EIO=4&transport=websocket",
        if target.tls { "wss" } else { "ws" },
        target.host_header(),
        target.path
    );
    let (mut ws, _) = tokio_tungstenite::client_async(url.as_str(), io)
        .await
        .map_err(|e| conn_error("WebSocket upgrade", target, e))?;
    let hs = loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => break parse_open(target, t.as_str())?,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(other)) => {
                return Err(conn_error(
                    "handshake",
                    target,
                    format!("unexpected frame {other:?}"),
                ))
            }
            Some(Err(e)) => return Err(conn_error("handshake", target, e)),
            None => return Err(conn_error("handshake", target, "connection closed")),
        }
    };
    let (out_tx, mut out_rx) = mpsc::channel::<String>(256);
    let (in_tx, in_rx) = mpsc::channel::<Incoming>(1024);
    let task = tokio::spawn(async move {
        let limit = hs.silence_limit();
        let mut deadline = deadline_after(limit);
        let reason = loop {
            tokio::select! {
                msg = ws.next() => match msg {
                    Some(Ok(Message::Text(t))) => {
                        deadline = deadline_after(limit);
                        let t = t.as_str();
                        match t.as_bytes().first() {
                            Some(b'2') => {
                                if let Err(e) = ws.send(Message::Text("3".into())).await {
                                    break format!("write failed: {e}");
                                }
                            }
                            Some(b'4') => {
                                let up = in_tx.send(Incoming::Packet(t[1..].to_string())).await;
                                if up.is_err() {
                                    return; // the session was dropped
                                }
                            }
                            Some(b'1') => break "server closed the session".to_string(),
                            _ => {} // noop (6) and anything unknown
                        }
                    }
                    Some(Ok(Message::Close(_))) | None => break "connection closed".to_string(),
                    Some(Ok(_)) => {} // ping/pong/binary
                    Some(Err(e)) => break format!("read failed: {e}"),
                },
                out = out_rx.recv() => match out {
                    Some(p) => {
                        let close = p == "1";
                        if let Err(e) = ws.send(Message::Text(p.into())).await {
                            break format!("write failed: {e}");
                        }
                        if close {
                            let _ = ws.close(None).await;
                            return;
                        }
                    }
                    None => {
                        let _ = ws.close(None).await;
                        return;
                    }
                },
                _ = tokio::time::sleep_until(deadline) => {
                    break format!("no ping from the hub for {} ms", limit.as_millis());
                }
            }
        };
        let _ = in_tx.send(Incoming::Closed(reason)).await;
    });
    Ok(Engine {
        tx: out_tx,
        rx: in_rx,
        transport: SioTransport::Websocket,
        tasks: vec![task],
    })
}

// ---------------------------------------------------------------------------------------------
// HTTP long-polling

struct Http {
    target: Target,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Http {
    fn new(target: &Target) -> Http {
        Http {
            target: target.clone(),
            sender: None,
        }
    }

    /// One request on this keep-alive connection (reopened when the server closed it).
    async fn request(&mut self, post: Option<String>, query: &str) -> Result<String> {
        let t = &self.target;
        let sender = match &mut self.sender {
            Some(s) if !s.is_closed() => s,
            _ => {
                let io = dial(t).await?;
                let (s, conn) =
                    hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
                        .await
                        .map_err(|e| conn_error("HTTP handshake", t, e))?;
                tokio::spawn(conn);
                self.sender.insert(s)
            }
        };
        sender
            .ready()
            .await
            .map_err(|e| conn_error("HTTP request", t, e))?;
        let uri = format!("{}?EIO=4&transport=polling{query}", t.path);
        let req = hyper::Request::builder()
            .method(if post.is_some() { "POST" } else { "GET" })
            .uri(uri)
            .header(hyper::header::HOST, t.host_header())
            .header(hyper::header::CONTENT_TYPE, "text/plain;charset=UTF-8")
            .body(Full::new(Bytes::from(post.unwrap_or_default())))
            .map_err(|e| conn_error("HTTP request", t, e))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| conn_error("HTTP request", t, e))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| conn_error("HTTP response", t, e))?
            .to_bytes();
        let text = String::from_utf8_lossy(&body).into_owned();
        if !status.is_success() {
            return Err(conn_error(
                "HTTP request",
                t,
                format!("status {status}: {}", trunc(&text)),
            ));
        }
        Ok(text)
    }
}

fn cache_buster() -> String {
    format!("&t={:x}", rand::random::<u64>())
}

async fn open_polling(target: &Target) -> Result<Engine> {
    let mut get = Http::new(target);
    let first = get.request(None, &cache_buster()).await?;
    let mut packets = first.split('\x1e');
    let hs = parse_open(target, packets.next().unwrap_or(""))?;
    let rest: Vec<String> = packets.map(str::to_string).collect();
    let sid_q = format!("&sid={}", hs.sid);

    let (out_tx, mut out_rx) = mpsc::channel::<String>(256);
    let (in_tx, in_rx) = mpsc::channel::<Incoming>(1024);

    // Writer: everything queued goes out in one POST.
    let mut post = Http::new(target);
    let (post_q, in_post) = (sid_q.clone(), in_tx.clone());
    let writer = tokio::spawn(async move {
        let mut batch = Vec::new();
        while out_rx.recv_many(&mut batch, 256).await > 0 {
            let close = batch.iter().any(|p| p == "1");
            let body = batch.join("\x1e");
            batch.clear();
            if let Err(e) = post.request(Some(body), &post_q).await {
                let _ = in_post
                    .send(Incoming::Closed(format!("send failed: {}", e.message())))
                    .await;
                return;
            }
            if close {
                return;
            }
        }
    });

    // Reader: long-poll GETs; answers pings through the writer.
    let pong = out_tx.clone();
    let limit = hs.silence_limit();
    let reader = tokio::spawn(async move {
        let mut pending = rest;
        let reason = 'outer: loop {
            for p in pending.drain(..) {
                match p.as_bytes().first() {
                    Some(b'2') => {
                        let sent = pong.send("3".into()).await;
                        if sent.is_err() {
                            return;
                        }
                    }
                    Some(b'4') => {
                        let up = in_tx.send(Incoming::Packet(p[1..].to_string())).await;
                        if up.is_err() {
                            return;
                        }
                    }
                    Some(b'1') => break 'outer "server closed the session".to_string(),
                    _ => {}
                }
            }
            let q = format!("{sid_q}{}", cache_buster());
            match tokio::time::timeout(limit, get.request(None, &q)).await {
                Ok(Ok(body)) => pending.extend(body.split('\x1e').map(str::to_string)),
                Ok(Err(e)) => break e.message().to_string(),
                Err(_) => break format!("no ping from the hub for {} ms", limit.as_millis()),
            }
        };
        let _ = in_tx.send(Incoming::Closed(reason)).await;
    });
    Ok(Engine {
        tx: out_tx,
        rx: in_rx,
        transport: SioTransport::Polling,
        tasks: vec![writer, reader],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hub_urls() {
        let t = Target::parse("http://127.0.0.1:3000").unwrap();
        assert_eq!((t.tls, t.host.as_str(), t.port), (false, "127.0.0.1", 3000));
        assert_eq!(t.namespace, "/");
        assert_eq!(t.host_header(), "127.0.0.1:3000");
        let t = Target::parse("https://hub.example.com/events/").unwrap();
        assert_eq!(
            (t.tls, t.port, t.namespace.as_str()),
            (true, 443, "/events")
        );
        assert_eq!(t.host_header(), "hub.example.com");
        let t = Target::parse("ws://[::1]:81/").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 81));
        assert_eq!(t.host_header(), "[::1]:81");
        assert!(Target::parse("ftp://x").is_err());
        assert!(Target::parse("http://:80").is_err());
        assert!(Target::parse("http://h:port").is_err());
        assert!(Target::parse("http://u:p@h").is_err());
    }

    #[test]
    fn parses_the_open_packet() {
        let t = Target::parse("http://h:1").unwrap();
        let hs = parse_open(
            &t,
            r#"0{"sid":"abc","upgrades":[],"pingInterval":300,"pingTimeout":200,"maxPayload":1000000}"#,
        )
        .unwrap();
        assert_eq!(
            (hs.sid.as_str(), hs.ping_interval, hs.ping_timeout),
            ("abc", 300, 200)
        );
        assert!(parse_open(&t, "40").is_err());
        // Found by fuzzing: pingInterval + pingTimeout overflowed u64.
        let hs = parse_open(
            &t,
            &format!(
                r#"0{{"sid":"s","pingInterval":{},"pingTimeout":2}}"#,
                u64::MAX
            ),
        )
        .unwrap();
        assert_eq!(hs.silence_limit(), Duration::from_millis(u64::MAX));
    }
}
