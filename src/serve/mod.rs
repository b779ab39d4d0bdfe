//! The one-click unsubscribe endpoint (`mailshot unsubscribe serve`): an HTTP/1.1 server
//! (hyper on tokio, rustls for optional HTTPS) that answers each campaign's `[unsubscribe]
//! url` and records unsubscribes in that campaign's suppression store.
//!
//! RFC 8058: a POST with the `email` and `token` query and the body
//! `List-Unsubscribe=One-Click` is checked (HMAC, constant time), recorded and fsynced, then
//! answered 200; the same POST again is 200 and records nothing new. A GET never
//! unsubscribes (link scanners fetch every link): it shows a page with one button that POSTs
//! the same body as a plain form. Refusals (400, 403, 404, 405, 408, 413, 431) write
//! nothing. The access log has the method, the path and the status, never the query (which
//! holds the address and the token).
//!
//! Plain HTTP on loopback is the default (behind a reverse proxy that terminates TLS); with a
//! certificate and key it serves HTTPS itself; a non-loopback address without TLS is refused
//! unless `--allow-plain-http` says so.

mod commit;
mod endpoint;
mod page;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

pub use commit::Committer;
pub use endpoint::{App, Endpoint};

/// How the server listens.
pub struct Options {
    pub listen: SocketAddr,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub allow_plain_http: bool,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    /// How long SIGTERM waits for requests in flight.
    pub grace: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "refusing to serve plain HTTP on {0}, which is not a loopback address: give --tls-cert and --tls-key, listen on 127.0.0.1 behind a reverse proxy, or pass --allow-plain-http if something in front already encrypts"
    )]
    PlainPublic(SocketAddr),
    #[error("cannot listen on {addr}: {source}{hint}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
        hint: &'static str,
    },
    #[error("cannot use the TLS certificate {cert} and key {key}: {message}")]
    Tls {
        cert: PathBuf,
        key: PathBuf,
        message: String,
    },
}

impl Options {
    /// The checks made before anything starts.
    pub fn check(&self) -> Result<(), ServeError> {
        if self.tls.is_none() && !self.listen.ip().is_loopback() && !self.allow_plain_http {
            return Err(ServeError::PlainPublic(self.listen));
        }
        Ok(())
    }
}

/// Binds, then serves until SIGTERM or SIGINT; requests in flight get `grace` to finish.
pub async fn run(opts: Options, app: Arc<App>) -> Result<(), ServeError> {
    opts.check()?;
    let tls = opts.tls.as_ref().map(|(c, k)| acceptor(c, k)).transpose()?;
    let listener = TcpListener::bind(opts.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: opts.listen,
            hint: match source.kind() {
                std::io::ErrorKind::AddrInUse => {
                    " (another process is listening there: stop it or choose another --listen)"
                }
                std::io::ErrorKind::PermissionDenied => " (ports below 1024 need privileges)",
                _ => "",
            },
            source,
        })?;
    let local = listener.local_addr().unwrap_or(opts.listen);
    tracing::info!(
        "listening on {}://{local}",
        if tls.is_some() { "https" } else { "http" }
    );
    // Tests and scripts wait for this line.
    println!("mailshot: listening on {local}");
    let graceful = GracefulShutdown::new();
    let mut stop = std::pin::pin!(shutdown_signal());
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("accept: {e}");
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let _ = stream.set_nodelay(true);
        let (app, tls) = (app.clone(), tls.clone());
        let watcher = graceful.watcher();
        let header_timeout = opts.header_timeout;
        tokio::spawn(async move {
            match tls {
                None => serve_conn(stream, peer, app, header_timeout, watcher).await,
                Some(t) => match tokio::time::timeout(header_timeout, t.accept(stream)).await {
                    Ok(Ok(s)) => serve_conn(s, peer, app, header_timeout, watcher).await,
                    Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake: {e}"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                },
            }
        });
    }
    drop(listener);
    tracing::info!("stopping: finishing requests in flight");
    if tokio::time::timeout(opts.grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still open after {:?} were cut", opts.grace);
    }
    Ok(())
}

async fn serve_conn<S>(
    stream: S,
    peer: SocketAddr,
    app: Arc<App>,
    header_timeout: Duration,
    watcher: hyper_util::server::graceful::Watcher,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let app = app.clone();
        async move {
            let start = Instant::now();
            let (method, path) = (req.method().clone(), req.uri().path().to_owned());
            let resp = app.handle(req).await;
            // Never the query: it holds the address and the token.
            tracing::info!(
                target: "mailshot::access",
                %peer,
                %method,
                path = %path.chars().take(200).collect::<String>(),
                status = resp.status().as_u16(),
                ms = start.elapsed().as_millis() as u64,
            );
            Ok::<_, std::convert::Infallible>(resp)
        }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(16 * 1024);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(%peer, "connection: {e}");
    }
}

fn acceptor(cert: &PathBuf, key: &PathBuf) -> Result<tokio_rustls::TlsAcceptor, ServeError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let fail = |message: String| ServeError::Tls {
        cert: cert.clone(),
        key: key.clone(),
        message,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| fail(format!("the certificate file: {e}")))?;
    if chain.is_empty() {
        return Err(fail("the certificate file holds no certificate".into()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| fail(format!("the key file: {e}")))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| fail(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| fail(e.to_string()))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM"),
        _ = int.recv() => tracing::info!("SIGINT"),
    }
}
