//! Where prepared messages go: an SMTP relay (a lettre connection per sender, TLS verified)
//! or an outbox folder of `.eml` files. Both take the signed bytes unchanged.

use std::path::{Path, PathBuf};

use std::time::Duration;

use lettre::Address;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, AsyncTokioStream, Certificate, TlsParameters,
};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::ClientId;
use tokio::net::TcpStream;

use crate::config::{SmtpConfig, Tls as TlsMode};
use crate::message::Prepared;

/// How a failed delivery should be treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// 4xx, a dropped connection, a timeout: the recipient is deferred, not failed.
    Transient,
    /// 5xx for this recipient: recorded, never retried.
    Permanent,
    /// Authentication, TLS, a refused sender or configuration: every further attempt would
    /// fail the same way, so the campaign stops instead of failing each recipient in turn.
    Fatal,
    /// The whole message was written but no reply came (timeout, dropped connection): the
    /// relay may have accepted it. Never retried; reported and journaled as in doubt.
    InDoubt,
}

/// A delivery that did not happen. `text` is the server's reply or the local error.
#[derive(Debug, Clone)]
pub struct DeliveryError {
    pub class: FailureClass,
    pub code: Option<u16>,
    pub text: String,
    /// The relay refused the recipient at RCPT as unknown (550/551/553 with 5.1.1, 5.1.2,
    /// 5.1.3, 5.1.6 or 5.1.10): the one case the suppression list may learn from.
    pub hard_bounce: bool,
}

/// The relay's acceptance (or the outbox's file).
#[derive(Debug, Clone)]
pub struct Accepted {
    pub code: Option<u16>,
    pub text: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TransportSetupError {
    #[error("cannot read the CA file {path}: {source}")]
    CaFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the CA file {path} holds no usable PEM certificate: {detail}")]
    CaParse { path: PathBuf, detail: String },
    #[error("TLS setup for {host} failed: {detail}")]
    Tls { host: String, detail: String },
    #[error("SMTP password: {0}")]
    Secret(#[from] crate::secret::SecretError),
    #[error("cannot create the outbox folder {path}: {source}")]
    Outbox {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub enum Transport {
    Smtp(SmtpRelay),
    Outbox(Outbox),
}

/// A sender task's own SMTP connection, kept open between messages.
#[derive(Default)]
pub struct Session {
    conn: Option<AsyncSmtpConnection>,
    last_used: Option<tokio::time::Instant>,
}

impl Transport {
    /// Opens one connection (TLS and AUTH included) so that a wrong host, an untrusted
    /// certificate or a wrong password stops the run before the first recipient.
    pub async fn check(&self) -> Result<(), DeliveryError> {
        match self {
            Transport::Smtp(s) => s.check().await,
            Transport::Outbox(_) => Ok(()),
        }
    }

    pub async fn send(
        &self,
        session: &mut Session,
        from: &Address,
        msg: &Prepared,
    ) -> Result<Accepted, DeliveryError> {
        match self {
            Transport::Smtp(s) => s.send(session, from, msg).await,
            Transport::Outbox(o) => o.write(msg),
        }
    }

    /// Says goodbye on an open connection at the end of a run.
    pub async fn close(&self, session: &mut Session) {
        if let Some(mut c) = session.conn.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), c.quit()).await;
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Transport::Smtp(s) => s.describe.clone(),
            Transport::Outbox(o) => format!("outbox {}", o.dir.display()),
        }
    }
}

/// An SMTP relay. Each sender task keeps one connection of its own (the pool is the set of
/// senders), opened with TCP_NODELAY: lettre writes a message and its final "." in two
/// writes, and with Nagle's algorithm on, that pattern waits for the relay's delayed ACK,
/// about 40 ms per message, which capped throughput at concurrency / 40 ms.
pub struct SmtpRelay {
    host: String,
    port: u16,
    timeout: Duration,
    hello: ClientId,
    /// STARTTLS: lettre upgrades the connection with these.
    starttls: Option<TlsParameters>,
    /// Implicit TLS: the handshake is ours (rustls), before lettre reads the greeting.
    implicit: Option<tokio_rustls::TlsConnector>,
    credentials: Option<Credentials>,
    describe: String,
}

/// After this long unused, a connection is probed with NOOP before it carries a message:
/// relays close idle connections, and finding out during MAIL FROM costs a retry.
const IDLE_PROBE: Duration = Duration::from_secs(5);

impl SmtpRelay {
    /// Sets up TLS parameters, trust roots and credentials once.
    pub fn new(cfg: &SmtpConfig) -> Result<SmtpRelay, TransportSetupError> {
        let (starttls, implicit) = match cfg.tls {
            TlsMode::None => (None, None),
            TlsMode::Starttls => {
                let mut params = TlsParameters::builder(cfg.host.clone());
                if let Some(path) = &cfg.ca_file {
                    let pem =
                        std::fs::read(path).map_err(|source| TransportSetupError::CaFile {
                            path: path.clone(),
                            source,
                        })?;
                    let cert =
                        Certificate::from_pem(&pem).map_err(|e| TransportSetupError::CaParse {
                            path: path.clone(),
                            detail: e.to_string(),
                        })?;
                    params = params.add_root_certificate(cert);
                }
                let params = params
                    .build_rustls()
                    .map_err(|e| TransportSetupError::Tls {
                        host: cfg.host.clone(),
                        detail: e.to_string(),
                    })?;
                (Some(params), None)
            }
            TlsMode::Implicit => {
                let connector = crate::preflight::tls::connector(cfg).map_err(|detail| {
                    TransportSetupError::Tls {
                        host: cfg.host.clone(),
                        detail,
                    }
                })?;
                (None, Some(connector))
            }
        };
        let credentials = match (&cfg.username, &cfg.password) {
            (Some(user), Some(source)) => Some(Credentials::new(
                user.clone(),
                source.load()?.expose().to_owned(),
            )),
            _ => None,
        };
        let tls_word = match cfg.tls {
            TlsMode::Starttls => "STARTTLS",
            TlsMode::Implicit => "implicit TLS",
            TlsMode::None => "no TLS (loopback)",
        };
        Ok(SmtpRelay {
            host: cfg.host.clone(),
            port: cfg.port,
            timeout: cfg.timeout,
            hello: cfg
                .helo_name
                .clone()
                .map(ClientId::Domain)
                .unwrap_or_default(),
            starttls,
            implicit,
            credentials,
            describe: format!("smtp {}:{} ({tls_word})", cfg.host, cfg.port),
        })
    }

    /// TCP (no Nagle), TLS as configured (never optional), EHLO, AUTH.
    async fn connect(&self) -> Result<AsyncSmtpConnection, DeliveryError> {
        let net = |e: std::io::Error| DeliveryError {
            class: FailureClass::Transient,
            code: None,
            hard_bounce: false,
            text: format!("cannot connect to {}:{}: {e}", self.host, self.port),
        };
        let tls_failed = |text: String| DeliveryError {
            class: FailureClass::Fatal,
            code: None,
            text,
            hard_bounce: false,
        };
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(net)?;
        tcp.set_nodelay(true).map_err(net)?;
        let lettre_err = |e: lettre::transport::smtp::Error| classify(&e);
        let mut conn = match (&self.implicit, &self.starttls) {
            (Some(connector), _) => {
                let name = rustls::pki_types::ServerName::try_from(self.host.clone())
                    .map_err(|e| tls_failed(format!("{}: {e}", self.host)))?;
                let tls = connector
                    .connect(name, tcp)
                    .await
                    .map_err(|e| tls_failed(format!("TLS handshake with {}: {e}", self.host)))?;
                AsyncSmtpConnection::connect_with_transport(Box::new(TlsTcp(tls)), &self.hello)
                    .await
                    .map_err(lettre_err)?
            }
            (None, Some(params)) => {
                let mut conn =
                    AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello)
                        .await
                        .map_err(lettre_err)?;
                // No opportunistic fallback: a relay that does not offer STARTTLS must not
                // receive the mail (or the password) in clear.
                if !conn.can_starttls() {
                    return Err(tls_failed(format!(
                        "{} does not offer STARTTLS, and TLS is required",
                        self.host
                    )));
                }
                conn.starttls(params.clone(), &self.hello)
                    .await
                    .map_err(lettre_err)?;
                conn
            }
            (None, None) => AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello)
                .await
                .map_err(lettre_err)?,
        };
        if let Some(creds) = &self.credentials {
            conn.auth(&[Mechanism::Plain, Mechanism::Login], creds)
                .await
                .map_err(|e| {
                    let mut d = classify(&e);
                    // A login the relay refuses (or cannot offer) will not work for the next
                    // recipient either.
                    if d.class == FailureClass::Permanent || e.is_client() {
                        d.class = FailureClass::Fatal;
                    }
                    d
                })?;
        }
        Ok(conn)
    }

    async fn connect_timed(&self) -> Result<AsyncSmtpConnection, DeliveryError> {
        match tokio::time::timeout(self.timeout, self.connect()).await {
            // A 5xx to the greeting, EHLO or AUTH refuses the sender, not a recipient.
            Ok(Err(mut e)) if e.class == FailureClass::Permanent => {
                e.class = FailureClass::Fatal;
                Err(e)
            }
            Ok(r) => r,
            Err(_) => Err(DeliveryError {
                class: FailureClass::Transient,
                code: None,
                hard_bounce: false,
                text: format!("connecting to {}:{} timed out", self.host, self.port),
            }),
        }
    }

    async fn check(&self) -> Result<(), DeliveryError> {
        match self.connect_timed().await {
            Ok(mut c) => {
                let _ = c.quit().await;
                Ok(())
            }
            Err(mut e) => {
                // Before the first message any failure means the run cannot start.
                e.class = FailureClass::Fatal;
                Err(e)
            }
        }
    }

    async fn send(
        &self,
        session: &mut Session,
        from: &Address,
        msg: &Prepared,
    ) -> Result<Accepted, DeliveryError> {
        let envelope = Envelope::new(Some(from.clone()), vec![msg.recipient.address.clone()])
            .map_err(|e| DeliveryError {
                class: FailureClass::Permanent,
                code: None,
                hard_bounce: false,
                text: e.to_string(),
            })?;
        if let (Some(c), Some(at)) = (session.conn.as_mut(), session.last_used)
            && at.elapsed() > IDLE_PROBE
            && !matches!(
                tokio::time::timeout(self.timeout, c.test_connected()).await,
                Ok(true)
            )
        {
            session.conn = None;
        }
        if session.conn.as_ref().is_none_or(|c| c.has_broken()) {
            session.conn = Some(self.connect_timed().await?);
        }
        let Some(conn) = session.conn.as_mut() else {
            unreachable!("connected above")
        };
        let result = self.transaction(conn, &envelope, msg).await;
        session.last_used = Some(tokio::time::Instant::now());
        match result {
            Ok(accepted) => Ok(accepted),
            Err((e, reusable)) => {
                if !reusable {
                    session.conn = None;
                }
                Err(e)
            }
        }
    }

    /// One SMTP transaction, step by step, so a failure is known by its stage: before DATA
    /// nothing was sent and a retry is safe; after the final "." without a reply the relay
    /// may have the message, and a retry could deliver it twice. The `bool` says whether the
    /// connection can carry the next message (after an RSET).
    async fn transaction(
        &self,
        conn: &mut AsyncSmtpConnection,
        envelope: &Envelope,
        msg: &Prepared,
    ) -> Result<Accepted, (DeliveryError, bool)> {
        let no_reply = |stage: &str| DeliveryError {
            class: FailureClass::Transient,
            code: None,
            hard_bounce: false,
            text: format!("no answer to {stage} within {} s", self.timeout.as_secs()),
        };
        // MAIL FROM: a refusal here is about the sender (account, address), not the recipient.
        match tokio::time::timeout(
            self.timeout,
            conn.command(Mail::new(envelope.from().cloned(), vec![])),
        )
        .await
        {
            Err(_) => return Err((no_reply("MAIL FROM"), false)),
            Ok(Err(e)) => {
                let mut d = classify(&e);
                if d.class == FailureClass::Permanent {
                    d.class = FailureClass::Fatal;
                    d.text = format!("the relay refused the sender (MAIL FROM): {}", d.text);
                }
                return Err((d, false));
            }
            Ok(Ok(_)) => {}
        }
        for to in envelope.to() {
            match tokio::time::timeout(self.timeout, conn.command(Rcpt::new(to.clone(), vec![])))
                .await
            {
                Err(_) => return Err((no_reply("RCPT TO"), false)),
                Ok(Err(e)) => {
                    let mut d = classify(&e);
                    d.hard_bounce = is_unknown_mailbox(d.code, &d.text);
                    let reusable = d.code.is_some() && self.reset(conn).await;
                    return Err((d, reusable));
                }
                Ok(Ok(_)) => {}
            }
        }
        match tokio::time::timeout(self.timeout, conn.command(Data)).await {
            Err(_) => return Err((no_reply("DATA"), false)),
            Ok(Err(e)) => {
                let d = classify(&e);
                let reusable = d.code.is_some() && self.reset(conn).await;
                return Err((d, reusable));
            }
            Ok(Ok(_)) => {}
        }
        // lettre always ends DATA with "\r\n.\r\n", whose first CRLF RFC 5321 counts as
        // the end of the last line; hand it the message without its final CRLF so the relay
        // receives exactly the signed bytes.
        let body = msg.bytes.strip_suffix(b"\r\n").unwrap_or(&msg.bytes);
        // RFC 5321 4.5.3.2.6: wait (at least) 10 minutes for the reply to the final ".".
        let wait = self.timeout.max(FINAL_REPLY);
        // lettre asks the iterator for the next chunk only after writing the previous one:
        // when it comes back for more, the whole body has been handed to the connection.
        // A failure before that means the message was not complete, and a retry is safe.
        let body_written = std::sync::atomic::AtomicBool::new(false);
        let chunks = std::iter::once(body).chain(std::iter::from_fn(|| {
            body_written.store(true, std::sync::atomic::Ordering::Relaxed);
            None
        }));
        let outcome = tokio::time::timeout(wait, conn.message_iter(chunks)).await;
        match outcome {
            Ok(Ok(resp)) => Ok(Accepted {
                code: Some(u16::from(resp.code())),
                text: resp.message().collect::<Vec<_>>().join(" "),
            }),
            // A reply: the relay decided, and it did not take the message.
            Ok(Err(e)) if e.status().is_some() => {
                let d = classify(&e);
                let reusable = self.reset(conn).await;
                Err((d, reusable))
            }
            Ok(Err(e)) if !body_written.load(std::sync::atomic::Ordering::Relaxed) => Err((
                DeliveryError {
                    class: FailureClass::Transient,
                    code: None,
                    hard_bounce: false,
                    text: format!("the connection failed while the message was being sent ({e})"),
                },
                false,
            )),
            Ok(Err(e)) => Err((
                DeliveryError {
                    class: FailureClass::InDoubt,
                    code: None,
                    hard_bounce: false,
                    text: format!(
                        "the connection failed after the message was sent, before the relay answered ({e}); it may or may not have been accepted"
                    ),
                },
                false,
            )),
            Err(_) => Err((
                DeliveryError {
                    class: FailureClass::InDoubt,
                    code: None,
                    hard_bounce: false,
                    text: format!(
                        "no answer within {} s after the message was sent; it may or may not have been accepted",
                        wait.as_secs()
                    ),
                },
                false,
            )),
        }
    }

    /// RSET after a refused command, so the connection can carry the next message.
    async fn reset(&self, conn: &mut AsyncSmtpConnection) -> bool {
        matches!(
            tokio::time::timeout(self.timeout, conn.command(Rset)).await,
            Ok(Ok(_))
        )
    }
}

/// How long to wait for the reply to the final "." (RFC 5321 4.5.3.2.6).
const FINAL_REPLY: Duration = Duration::from_secs(600);

/// A refusal that means the mailbox does not exist, not that the message or sender was
/// unwelcome: 550/551/553 with 5.1.1 (no such user), 5.1.2 (no such domain), 5.1.3 (bad
/// address syntax), 5.1.6 (moved) or 5.1.10 (null MX).
fn is_unknown_mailbox(code: Option<u16>, text: &str) -> bool {
    matches!(code, Some(550 | 551 | 553))
        && text
            .split(|c: char| c.is_whitespace() || c == ':' || c == '(' || c == ')')
            .any(|w| matches!(w, "5.1.1" | "5.1.2" | "5.1.3" | "5.1.6" | "5.1.10"))
}

/// A rustls stream in the shape lettre accepts for a connection it did not open itself.
#[derive(Debug)]
struct TlsTcp(tokio_rustls::client::TlsStream<TcpStream>);

impl tokio::io::AsyncRead for TlsTcp {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for TlsTcp {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for TlsTcp {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

/// Sorts a lettre error into what the pipeline does next.
fn classify(e: &lettre::transport::smtp::Error) -> DeliveryError {
    let code = e.status().map(u16::from);
    // 530 (auth required), 534/535/538 (auth refused or mechanism too weak): the account,
    // not the recipient, is the problem.
    let auth = matches!(code, Some(530 | 534 | 535 | 538));
    let class = if auth || e.is_tls() || e.is_client() {
        FailureClass::Fatal
    } else if e.is_permanent() {
        FailureClass::Permanent
    } else {
        // 4xx, timeouts, dropped or refused connections.
        FailureClass::Transient
    };
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    DeliveryError {
        class,
        code,
        text,
        hard_bounce: false,
    }
}

/// Writes each message's exact bytes to `<dir>/<row>-<address>.eml`.
pub struct Outbox {
    dir: PathBuf,
}

impl Outbox {
    pub fn new(dir: &Path) -> Result<Outbox, TransportSetupError> {
        std::fs::create_dir_all(dir).map_err(|source| TransportSetupError::Outbox {
            path: dir.to_owned(),
            source,
        })?;
        Ok(Outbox {
            dir: dir.to_owned(),
        })
    }

    fn write(&self, msg: &Prepared) -> Result<Accepted, DeliveryError> {
        let name = format!("{}.eml", file_stem(&msg.recipient));
        let path = self.dir.join(&name);
        let tmp = self.dir.join(format!(".{name}.tmp"));
        // Write then rename, so a reader never sees half a message.
        std::fs::write(&tmp, &msg.bytes)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| DeliveryError {
                class: FailureClass::Fatal,
                code: None,
                hard_bounce: false,
                text: format!("cannot write {}: {e}", path.display()),
            })?;
        Ok(Accepted {
            code: None,
            text: path.display().to_string(),
        })
    }
}

/// `<row>-<address>` as a file name, shared by the outbox and the preview folder so the same
/// recipient's files have the same name in both.
pub fn file_stem(r: &crate::recipients::Recipient) -> String {
    format!("{:06}-{}", r.row, safe_file_part(r.address.as_ref()))
}

/// Keeps letters, digits and `@._+-`; anything else becomes `_`. Cut at 100 characters so a
/// long (but valid, up to 254) address cannot exceed the file system's name limit.
fn safe_file_part(s: &str) -> String {
    s.chars()
        .take(100)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '@' | '.' | '_' | '+' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}
