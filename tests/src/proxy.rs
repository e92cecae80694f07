//! A fault-injecting HTTPS proxy between a store and a plain-HTTP HQ on
//! loopback. Each proxied request takes the next fault from a script:
//! pass, an error status, a connection dropped mid-body, a truncated or
//! bit-flipped body, or the previous answer to the same path replayed.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;

/// What to do to one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Pass,
    /// Answer this status instead (HQ is not asked).
    Status(u16),
    /// Send the first n bytes of the body, then cut the connection.
    DropAfter(usize),
    /// A complete answer holding only the first n bytes of the body.
    Truncate(usize),
    /// Flip one bit of the body at this byte (modulo its length).
    FlipBit(usize),
    /// Answer with the previous answer to the same path (a duplicated or reordered batch).
    ReplayPrevious,
    /// Answer only after this many milliseconds.
    StallMillis(u64),
}

#[derive(Debug, Default)]
struct Shared {
    script: Mutex<VecDeque<Fault>>,
    previous: Mutex<HashMap<String, (u16, Vec<u8>)>>,
    log: Mutex<Vec<(String, Fault)>>,
}

#[derive(Debug)]
struct Proxy {
    upstream: String,
    client: reqwest::Client,
    shared: Arc<Shared>,
}

/// A running proxy; stopped when dropped.
#[derive(Debug)]
pub struct FaultProxy {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl FaultProxy {
    /// Serves HTTPS with `tls` on loopback, forwarding to `upstream` (`http://...`).
    pub fn start(upstream: String, tls: aisle_hq::tls::TlsFiles) -> Self {
        let (runtime, listener) =
            crate::hq::loopback_runtime("127.0.0.1:0".parse().expect("loopback"));
        let addr = listener.local_addr().expect("addr");
        let shared = Arc::new(Shared::default());
        let proxy = Arc::new(Proxy {
            upstream,
            client: reqwest::Client::new(),
            shared: shared.clone(),
        });
        let app = axum::Router::new().fallback(forward).with_state(proxy);
        runtime.spawn(async move {
            aisle_hq::tls::serve(
                listener,
                app,
                &tls,
                aisle_hq::ConnectionLimits::default(),
                std::future::pending(),
            )
            .await
            .ok();
        });
        Self {
            addr,
            shared,
            runtime: Some(runtime),
        }
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Queues faults for the next requests (then everything passes).
    pub fn script(&self, faults: &[Fault]) {
        self.shared
            .script
            .lock()
            .expect("script")
            .extend(faults.iter().copied());
    }

    /// Faults still queued.
    pub fn pending(&self) -> usize {
        self.shared.script.lock().expect("script").len()
    }

    /// Every (path, fault) served so far.
    pub fn log(&self) -> Vec<(String, Fault)> {
        self.shared.log.lock().expect("log").clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(std::time::Duration::from_secs(1));
        }
    }
}

async fn forward(State(proxy): State<Arc<Proxy>>, request: Request) -> Response {
    let fault = proxy
        .shared
        .script
        .lock()
        .expect("script")
        .pop_front()
        .unwrap_or(Fault::Pass);
    let path = request.uri().path().to_owned();
    proxy
        .shared
        .log
        .lock()
        .expect("log")
        .push((path.clone(), fault));
    if let Fault::Status(status) = fault {
        return Response::builder()
            .status(status)
            .body(Body::from(
                r#"{"code":"injected","message":"fault injected by the test proxy"}"#,
            ))
            .expect("response");
    }
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let url = format!(
        "{}{}",
        proxy.upstream,
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut outgoing = proxy
        .client
        .request(parts.method.clone(), url)
        .body(body.to_vec());
    for (name, value) in &parts.headers {
        if name != axum::http::header::HOST && name != axum::http::header::CONTENT_LENGTH {
            outgoing = outgoing.header(name, value);
        }
    }
    let Ok(answer) = outgoing.send().await else {
        return Response::builder()
            .status(StatusCode::BAD_GATEWAY)
            .body(Body::empty())
            .expect("response");
    };
    let status = answer.status().as_u16();
    let mut bytes = answer.bytes().await.unwrap_or_default().to_vec();
    let key = path.clone();
    let previous = proxy
        .shared
        .previous
        .lock()
        .expect("previous")
        .get(&key)
        .cloned();
    proxy
        .shared
        .previous
        .lock()
        .expect("previous")
        .insert(key, (status, bytes.clone()));
    let mut status = status;
    match fault {
        Fault::Pass | Fault::Status(_) => {}
        Fault::StallMillis(ms) => tokio::time::sleep(std::time::Duration::from_millis(ms)).await,
        Fault::Truncate(n) => bytes.truncate(n),
        Fault::FlipBit(at) => {
            if !bytes.is_empty() {
                let idx = at % bytes.len();
                bytes[idx] ^= 0x10;
            }
        }
        Fault::ReplayPrevious => {
            if let Some((old_status, old)) = previous {
                status = old_status;
                bytes = old;
            }
        }
        Fault::DropAfter(n) => {
            let head = bytes[..n.min(bytes.len())].to_vec();
            let stream = futures_stream(head, bytes.len());
            return Response::builder()
                .status(status)
                .header(axum::http::header::CONTENT_LENGTH, bytes.len())
                .body(Body::from_stream(stream))
                .expect("response");
        }
    }
    Response::builder()
        .status(status)
        .header(axum::http::header::CONTENT_TYPE, "application/json")
        .body(Body::from(bytes))
        .expect("response")
}

/// A body stream that yields `head` and then fails (the connection is cut
/// before the announced `total` bytes).
fn futures_stream(
    head: Vec<u8>,
    _total: usize,
) -> impl futures_core::Stream<Item = Result<axum::body::Bytes, std::io::Error>> + Send {
    struct Cut {
        head: Option<Vec<u8>>,
    }
    impl futures_core::Stream for Cut {
        type Item = Result<axum::body::Bytes, std::io::Error>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            std::task::Poll::Ready(Some(match self.head.take() {
                Some(head) => Ok(axum::body::Bytes::from(head)),
                None => Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "cut by the test proxy",
                )),
            }))
        }
    }
    Cut { head: Some(head) }
}
