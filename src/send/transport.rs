//! Where prepared messages go: an SMTP relay (a lettre connection per sender, TLS verified)
//! or an outbox folder of `.eml` files. Both take the signed bytes unchanged.

use std::path::{Path, PathBuf};

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use lettre::Address;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, AsyncTokioStream, Certificate, TlsParameters,
};
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::response::Response;
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
    /// The journal could not record the attempt (`text` says why), so the message was not
    /// handed over: the run must stop, since nothing further could be sent without a record.
    Unrecorded,
}

fn unrecorded(e: String) -> DeliveryError {
    DeliveryError {
        class: FailureClass::Unrecorded,
        code: None,
        hard_bounce: false,
        text: e,
    }
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
    /// The relay advertised PIPELINING (RFC 2920) on this connection.
    pipelining: bool,
    /// Whether everything written on the connection reached the kernel.
    written: Arc<Written>,
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

    /// Delivers `msg`. `recorded` resolves once the journal holds the attempt: the message
    /// is not handed over before then. The envelope is, since a relay takes nothing before
    /// the final "."; so the journal is asked for its sync only after DATA's 354, and one sync
    /// covers every sender that got that far meanwhile.
    pub async fn send(
        &self,
        session: &mut Session,
        from: &Address,
        msg: &Prepared,
        recorded: impl Future<Output = Result<(), String>>,
    ) -> Result<Accepted, DeliveryError> {
        match self {
            Transport::Smtp(s) => s.send(session, from, msg, recorded).await,
            Transport::Outbox(o) => {
                recorded.await.map_err(unrecorded)?;
                o.write(msg)
            }
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
/// senders), opened with TCP_NODELAY: with Nagle's algorithm on, the last part of a message
/// (or a command after it) waits for the relay's delayed ACK, about 40 ms per message, which
/// capped throughput at concurrency / 40 ms.
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

    /// TCP (no Nagle), TLS as configured (never optional), EHLO, AUTH. The `bool` says
    /// whether the relay offers PIPELINING.
    async fn connect(
        &self,
        written: &Arc<Written>,
    ) -> Result<(AsyncSmtpConnection, bool), DeliveryError> {
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
                let stream = Watched::new(TlsTcp(tls), written.clone());
                AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello)
                    .await
                    .map_err(lettre_err)?
            }
            (None, Some(params)) => {
                // lettre puts TLS on top of this stream, and flushes the TLS records into it
                // before it flushes it: the flag covers the records.
                let stream = Watched::new(tcp, written.clone());
                let mut conn =
                    AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello)
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
            (None, None) => {
                let stream = Watched::new(tcp, written.clone());
                AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello)
                    .await
                    .map_err(lettre_err)?
            }
        };
        // lettre keeps only the EHLO keywords it acts on, and PIPELINING is not one of them,
        // so ask again: RFC 5321 4.1.4 allows a later EHLO, which resets the session like
        // RSET. One round trip per connection, against two saved per message.
        let pipelining = match conn.command(Ehlo::new(self.hello.clone())).await {
            Ok(reply) => reply.message().skip(1).any(|line| {
                line.split_whitespace()
                    .next()
                    .is_some_and(|k| k.eq_ignore_ascii_case("PIPELINING"))
            }),
            // Refused: go on without pipelining, as with a relay that does not offer it.
            Err(e) if e.status().is_some() => false,
            Err(e) => return Err(lettre_err(e)),
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
        Ok((conn, pipelining))
    }

    async fn connect_timed(
        &self,
        written: &Arc<Written>,
    ) -> Result<(AsyncSmtpConnection, bool), DeliveryError> {
        match tokio::time::timeout(self.timeout, self.connect(written)).await {
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
        match self.connect_timed(&Arc::default()).await {
            Ok((mut c, _)) => {
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
        recorded: impl Future<Output = Result<(), String>>,
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
            let written = Arc::new(Written::default());
            let (conn, pipelining) = self.connect_timed(&written).await?;
            session.conn = Some(conn);
            session.pipelining = pipelining;
            session.written = written;
        }
        let Some(conn) = session.conn.as_mut() else {
            unreachable!("connected above")
        };
        let result = if session.pipelining {
            self.envelope_pipelined(conn, &envelope).await
        } else {
            self.envelope_stepwise(conn, &envelope).await
        };
        let result = match result {
            Ok(()) => self.data(conn, &session.written, msg, recorded).await,
            Err(e) => Err(e),
        };
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

    /// The envelope, one command and reply at a time, for relays without PIPELINING. Each
    /// step's failure is known by its stage: before the final "." of the message nothing was
    /// sent and a retry is safe. The `bool` of an error says whether the connection can carry
    /// the next message (after an RSET).
    async fn envelope_stepwise(
        &self,
        conn: &mut AsyncSmtpConnection,
        envelope: &Envelope,
    ) -> Result<(), (DeliveryError, bool)> {
        // MAIL FROM: a refusal here is about the sender (account, address), not the recipient.
        match tokio::time::timeout(
            self.timeout,
            conn.command(Mail::new(envelope.from().cloned(), vec![])),
        )
        .await
        {
            Err(_) => return Err((self.no_reply("MAIL FROM"), false)),
            Ok(Err(e)) => return Err((refused_sender(&e), false)),
            Ok(Ok(_)) => {}
        }
        for to in envelope.to() {
            match tokio::time::timeout(self.timeout, conn.command(Rcpt::new(to.clone(), vec![])))
                .await
            {
                Err(_) => return Err((self.no_reply("RCPT TO"), false)),
                Ok(Err(e)) => {
                    let d = refused_recipient(&e);
                    let reusable = d.code.is_some() && self.reset(conn).await;
                    return Err((d, reusable));
                }
                Ok(Ok(_)) => {}
            }
        }
        match tokio::time::timeout(self.timeout, conn.command(Data)).await {
            Err(_) => Err((self.no_reply("DATA"), false)),
            Ok(Err(e)) => {
                let d = classify(&e);
                let reusable = d.code.is_some() && self.reset(conn).await;
                Err((d, reusable))
            }
            Ok(Ok(_)) => Ok(()),
        }
    }

    /// The envelope as one write (RFC 2920): MAIL FROM, every RCPT TO and DATA go out
    /// together, then the replies are read in order. One round trip instead of three per
    /// message, for the relay as much as for us. Every reply is read even after a refusal,
    /// so the connection stays in step, and the first refusal decides, as in
    /// [`Self::envelope_stepwise`].
    async fn envelope_pipelined(
        &self,
        conn: &mut AsyncSmtpConnection,
        envelope: &Envelope,
    ) -> Result<(), (DeliveryError, bool)> {
        let batch = Pipelined {
            mail: Mail::new(envelope.from().cloned(), vec![]),
            rcpts: envelope
                .to()
                .iter()
                .map(|to| Rcpt::new(to.clone(), vec![]))
                .collect(),
        };
        // lettre's `command` writes the whole batch and reads the first reply (MAIL's).
        let mail = match tokio::time::timeout(self.timeout, conn.command(&batch)).await {
            Err(_) => return Err((self.no_reply("MAIL FROM"), false)),
            Ok(Err(e)) if e.status().is_none() => return Err((classify(&e), false)),
            Ok(r) => r,
        };
        // A refusal already read decides even if the relay then hangs up (Postfix's "421
        // too many errors"): the recipient was refused, not deferred.
        let earlier = |mail: &Result<_, lettre::transport::smtp::Error>,
                       rcpts: &[Result<_, lettre::transport::smtp::Error>]| {
            match (mail, rcpts.iter().find_map(|r| r.as_ref().err())) {
                (Err(e), _) => Some(refused_sender(e)),
                (Ok(_), Some(e)) => Some(refused_recipient(e)),
                (Ok(_), None) => None,
            }
        };
        let mut rcpts = Vec::with_capacity(batch.rcpts.len());
        for _ in &batch.rcpts {
            match self.reply(conn, "RCPT TO").await {
                Ok(r) => rcpts.push(r),
                Err(d) => return Err((earlier(&mail, &rcpts).unwrap_or(d), false)),
            }
        }
        let data = match self.reply(conn, "DATA").await {
            Ok(r) => r,
            Err(d) => return Err((earlier(&mail, &rcpts).unwrap_or(d), false)),
        };
        let refusal = earlier(&mail, &rcpts).or_else(|| data.as_ref().err().map(classify));
        match refusal {
            None => Ok(()),
            // DATA was accepted although an earlier command was refused: the relay now waits
            // for a message, which must not come. Hanging up ends the transaction unsent.
            Some(d) if data.is_ok() => Err((d, false)),
            // A refused sender is not worth another message on this connection.
            Some(d) if mail.is_err() => Err((d, false)),
            Some(d) => {
                let reusable = self.reset(conn).await;
                Err((d, reusable))
            }
        }
    }

    /// After the relay's 354: waits until the journal holds the attempt, then hands over the
    /// message and reads the verdict. A failure before the whole message was written leaves
    /// nothing at the relay; after it, without a reply, the message is in doubt.
    async fn data(
        &self,
        conn: &mut AsyncSmtpConnection,
        written: &Written,
        msg: &Prepared,
        recorded: impl Future<Output = Result<(), String>>,
    ) -> Result<Accepted, (DeliveryError, bool)> {
        // The relay is waiting for the message; dropping the connection (not reusable) ends
        // the transaction without one.
        recorded.await.map_err(|e| (unrecorded(e), false))?;
        // lettre always ends DATA with "\r\n.\r\n", whose first CRLF RFC 5321 counts as
        // the end of the last line; hand it the message without its final CRLF so the relay
        // receives exactly the signed bytes.
        let body = msg.bytes.strip_suffix(b"\r\n").unwrap_or(&msg.bytes);
        // RFC 5321 4.5.3.2.6: wait (at least) 10 minutes for the reply to the final ".".
        let wait = self.timeout.max(FINAL_REPLY);
        // The relay can have the message only once all of it, final "." included, reached
        // the kernel: lettre asks the iterator for the next chunk only after writing the
        // previous one, and `written` says whether the write that ended it was flushed. A
        // failure before both means the message was not complete, and a retry is safe.
        let body_written = AtomicBool::new(false);
        written.arm();
        let outcome = match std::str::from_utf8(body) {
            // mail-builder encodes 8-bit content, so a message is ASCII: stuffed here with
            // memchr and written as it is. lettre's message() stuffs byte by byte, which cost
            // 6% of a run's CPU. `command` writes it whole, then reads the reply.
            Ok(text) if text.is_ascii() => {
                body_written.store(true, Ordering::Relaxed);
                tokio::time::timeout(wait, conn.command(Stuffed(text))).await
            }
            _ => {
                let chunks = std::iter::once(body).chain(std::iter::from_fn(|| {
                    body_written.store(true, Ordering::Relaxed);
                    // The body's own flush does not count: the final dot comes after it.
                    written.arm();
                    None
                }));
                tokio::time::timeout(wait, conn.message_iter(chunks)).await
            }
        };
        let complete = body_written.load(Ordering::Relaxed) && written.reached();
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
            Ok(Err(e)) if !complete => Err((
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
            Err(_) if !complete => Err((
                DeliveryError {
                    class: FailureClass::Transient,
                    code: None,
                    hard_bounce: false,
                    text: format!(
                        "the relay took no more of the message for {} s; it was not complete",
                        wait.as_secs()
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

    /// The next reply of a pipelined batch: the relay's answer, refusal or not, or the
    /// failure to get one (a timeout, a dropped connection).
    async fn reply(
        &self,
        conn: &mut AsyncSmtpConnection,
        stage: &str,
    ) -> Result<Result<Response, lettre::transport::smtp::Error>, DeliveryError> {
        match tokio::time::timeout(self.timeout, conn.read_response()).await {
            Err(_) => Err(self.no_reply(stage)),
            Ok(Err(e)) if e.status().is_none() => Err(classify(&e)),
            Ok(r) => Ok(r),
        }
    }

    fn no_reply(&self, stage: &str) -> DeliveryError {
        DeliveryError {
            class: FailureClass::Transient,
            code: None,
            hard_bounce: false,
            text: format!("no answer to {stage} within {} s", self.timeout.as_secs()),
        }
    }
}

/// MAIL FROM, the RCPT TOs and DATA, written as one command so that lettre sends them in one
/// write (each command's text ends in CRLF).
struct Pipelined {
    mail: Mail,
    rcpts: Vec<Rcpt>,
}

impl std::fmt::Display for Pipelined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.mail)?;
        for r in &self.rcpts {
            write!(f, "{r}")?;
        }
        write!(f, "{Data}")
    }
}

/// A refused MAIL FROM is about the sender (account, address), not the recipient: a
/// permanent refusal stops the run.
fn refused_sender(e: &lettre::transport::smtp::Error) -> DeliveryError {
    let mut d = classify(e);
    if d.class == FailureClass::Permanent {
        d.class = FailureClass::Fatal;
        d.text = format!("the relay refused the sender (MAIL FROM): {}", d.text);
    }
    d
}

/// A refused RCPT TO, marked as a hard bounce when the mailbox does not exist.
fn refused_recipient(e: &lettre::transport::smtp::Error) -> DeliveryError {
    let mut d = classify(e);
    d.hard_bounce = is_unknown_mailbox(d.code, &d.text);
    d
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

/// A message's text as DATA carries it (RFC 5321 4.5.2): a "." that starts a line is
/// doubled, and the end is marked by CRLF "." CRLF. The text has no final CRLF (see
/// [`SmtpRelay::data`]).
struct Stuffed<'a>(&'a str);

impl std::fmt::Display for Stuffed<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut rest = self.0;
        if rest.starts_with('.') {
            f.write_str(".")?;
        }
        while let Some(i) = memchr::memmem::find(rest.as_bytes(), b"\r\n.") {
            f.write_str(&rest[..i + 3])?;
            f.write_str(".")?;
            rest = &rest[i + 3..];
        }
        f.write_str(rest)?;
        f.write_str("\r\n.\r\n")
    }
}

/// Whether what was written to a [`Watched`] stream was flushed to the kernel.
#[derive(Debug, Default)]
pub struct Written {
    /// Since [`Self::arm`]: a flush completed, so everything written before it is in the
    /// kernel. Sticky, so that a TLS alert written later on the read path (rustls does that
    /// when a record is bad) cannot make a complete message look incomplete.
    reached: AtomicBool,
}

impl Written {
    /// Starts watching for the next completed flush.
    fn arm(&self) {
        self.reached.store(false, Ordering::Release);
    }

    /// Since [`Self::arm`], everything written was flushed.
    fn reached(&self) -> bool {
        self.reached.load(Ordering::Acquire)
    }
}

/// The connection's stream, passed through untouched, with a record of whether what lettre
/// wrote has all reached the kernel. lettre writes a command (or the whole DATA payload) and
/// flushes it before it reads the reply, so after a failure this tells a message the relay
/// may have whole (in doubt) from one it cannot have (safe to retry), which lettre's error
/// alone does not.
#[derive(Debug)]
struct Watched<S> {
    inner: S,
    written: Arc<Written>,
}

impl<S> Watched<S> {
    fn new(inner: S, written: Arc<Written>) -> Watched<S> {
        Watched { inner, written }
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        ready!(Pin::new(&mut self.inner).poll_flush(cx))?;
        self.written.reached.store(true, Ordering::Release);
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncTokioStream + Unpin> AsyncTokioStream for Watched<S> {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.inner.peer_addr()
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SmtpConfig;

    fn prepared() -> Prepared {
        Prepared {
            recipient: crate::recipients::Recipient {
                row: 2,
                address: "ann@example.com".parse().unwrap(),
                name: None,
                fields: vec![],
            },
            message_id: "id@example.com".into(),
            bytes: b"Subject: x\r\n\r\nx\r\n".to_vec(),
        }
    }

    #[tokio::test]
    async fn nothing_is_handed_over_before_the_journal_holds_the_attempt() {
        let dir = tempfile::tempdir().unwrap();
        let t = Transport::Outbox(Outbox::new(dir.path()).unwrap());
        let from: Address = "news@example.com".parse().unwrap();
        let mut session = Session::default();
        let msg = prepared();

        let failed = std::future::ready(Err("disk full".to_owned()));
        let e = t.send(&mut session, &from, &msg, failed).await.unwrap_err();
        assert_eq!(e.class, FailureClass::Unrecorded);
        assert_eq!(e.text, "disk full");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

        let ok = std::future::ready(Ok(()));
        t.send(&mut session, &from, &msg, ok).await.unwrap();
        let written = std::fs::read(dir.path().join("000002-ann@example.com.eml")).unwrap();
        assert_eq!(written, msg.bytes);
    }

    /// The flag says "flushed" only after a whole write was flushed; a write the peer cannot
    /// take (it is gone) leaves it unset, so the message counts as not sent rather than in
    /// doubt. Once set it stays set: a later write (a TLS alert) does not undo it.
    #[tokio::test]
    async fn written_is_set_only_by_a_flush_after_a_whole_write() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (near, mut far) = tokio::io::duplex(1 << 12);
        let written = Arc::new(Written::default());
        let mut watched = Watched::new(near, written.clone());

        let reader = tokio::spawn(async move {
            let mut got = vec![0u8; 100_000];
            far.read_exact(&mut got).await.unwrap();
            got
        });
        let big = vec![b'x'; 100_000];
        written.arm();
        watched.write_all(&big).await.unwrap();
        assert!(!written.reached(), "written, not flushed yet");
        watched.flush().await.unwrap();
        assert!(written.reached());
        assert_eq!(reader.await.unwrap(), big);
        // The peer is gone: a later write fails, and what was reached stays reached.
        assert!(watched.write_all(b"alert").await.is_err());
        assert!(written.reached());

        written.arm();
        let e = watched.write_all(&big).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe);
        assert!(!written.reached());
    }

    #[test]
    fn data_doubles_every_leading_dot_and_ends_with_the_terminator() {
        let stuffed = |t: &str| Stuffed(t).to_string();
        assert_eq!(stuffed("a\r\nb"), "a\r\nb\r\n.\r\n");
        assert_eq!(
            stuffed(".x\r\n.\r\n..y\r\nz."),
            "..x\r\n..\r\n...y\r\nz.\r\n.\r\n"
        );
        // Only a dot at the start of a line (after CRLF) counts.
        assert_eq!(stuffed("a.\r\nb\n.c"), "a.\r\nb\n.c\r\n.\r\n");
        assert_eq!(stuffed(""), "\r\n.\r\n");
    }

    /// Over SMTP, with the relay offering PIPELINING: the envelope goes out while the
    /// journal syncs, and not one byte of the message reaches the relay before the journal
    /// holds the attempt. A scripted relay on loopback watches for early bytes.
    #[tokio::test]
    async fn no_message_byte_reaches_the_relay_before_the_journal_holds_it() {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (saw_data, data_seen) = tokio::sync::oneshot::channel::<()>();
        let relay = tokio::spawn(async move {
            let (sock, _) = listener.accept().await.unwrap();
            let (r, mut w) = sock.into_split();
            let mut r = BufReader::new(r);
            w.write_all(b"220 relay ESMTP\r\n").await.unwrap();
            let mut saw_data = Some(saw_data);
            let mut line = String::new();
            loop {
                line.clear();
                if r.read_line(&mut line).await.unwrap() == 0 {
                    return Vec::new();
                }
                let reply: &[u8] = match line.get(..4).unwrap_or("") {
                    "EHLO" => b"250-relay\r\n250 PIPELINING\r\n",
                    "MAIL" | "RCPT" => b"250 ok\r\n",
                    "DATA" => b"354 go ahead\r\n",
                    _ => b"502 what\r\n",
                };
                w.write_all(reply).await.unwrap();
                if line.starts_with("DATA") {
                    break;
                }
            }
            let _ = saw_data.take().unwrap().send(());
            // While the journal has not answered, nothing may arrive.
            let mut first = [0u8; 1];
            let early = tokio::time::timeout(Duration::from_millis(300), r.read(&mut first)).await;
            assert!(
                early.is_err(),
                "message bytes arrived before the journal held the attempt"
            );
            let mut message = Vec::new();
            loop {
                line.clear();
                r.read_line(&mut line).await.unwrap();
                if line == ".\r\n" {
                    break;
                }
                message.extend_from_slice(line.as_bytes());
            }
            w.write_all(b"250 queued\r\n").await.unwrap();
            message
        });
        let relay_cfg = SmtpConfig {
            host: "127.0.0.1".into(),
            port,
            tls: TlsMode::None,
            username: None,
            password: None,
            ca_file: None,
            pool_size: 1,
            timeout: Duration::from_secs(10),
            helo_name: None,
        };
        let t = Transport::Smtp(SmtpRelay::new(&relay_cfg).unwrap());
        let (journal_done, recorded) = tokio::sync::oneshot::channel::<Result<(), String>>();
        let recorded = async move { recorded.await.unwrap() };
        let from: Address = "news@example.com".parse().unwrap();
        let msg = prepared();
        let mut session = Session::default();
        let sending =
            tokio::spawn(async move { t.send(&mut session, &from, &msg, recorded).await });
        // The relay has answered DATA: the envelope went out without waiting.
        data_seen.await.unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        journal_done.send(Ok(())).unwrap();
        let accepted = sending.await.unwrap().unwrap();
        assert_eq!(accepted.code, Some(250));
        assert_eq!(relay.await.unwrap(), b"Subject: x\r\n\r\nx\r\n");
    }
}
