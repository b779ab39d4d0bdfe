//! The SMTP relay: connecting (TCP without Nagle, TLS as configured, EHLO, AUTH), the
//! envelope (pipelined or step by step), DATA, and sorting each reply into a
//! [`DeliveryError`]'s class and cause. Connections are kept open between messages in a
//! small pool, one per sender at most.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, TlsParameters};
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::response::Response;
use tokio::net::TcpStream;

use super::stream::{TlsTcp, Watched, Written};
use super::{Accepted, Cause, DeliveryError, FailureClass, TransportSetupError};
use crate::config::{SmtpConfig, Tls as TlsMode};
use crate::message::Prepared;

/// Where plain SMTP may connect: the resolved addresses that are loopback. The config allows
/// `tls = "none"` only for "localhost" or a loopback literal, but a name is not an address:
/// without a localhost line in /etc/hosts the resolver's search domain turned "localhost" into
/// a DNS lookup, and mail went in clear to whatever came back. No loopback address at all is
/// a fatal error naming what the name resolved to.
fn plaintext_targets(host: &str, resolved: Vec<SocketAddr>) -> Result<Vec<SocketAddr>, String> {
    let (loopback, other): (Vec<SocketAddr>, Vec<SocketAddr>) =
        resolved.into_iter().partition(|a| a.ip().is_loopback());
    if loopback.is_empty() {
        let seen: Vec<String> = other.iter().map(|a| a.ip().to_string()).collect();
        return Err(format!(
            "{host} resolved to {}, not a loopback address; plain SMTP (tls = \"none\") only goes to this machine: set smtp.host to 127.0.0.1 or ::1, or use TLS",
            if seen.is_empty() {
                "nothing".to_owned()
            } else {
                seen.join(", ")
            }
        ));
    }
    if !other.is_empty() {
        tracing::warn!(
            "{host} also resolved to non-loopback addresses; plain SMTP uses only the loopback ones"
        );
    }
    Ok(loopback)
}

/// One open connection to the relay, kept between messages.
struct Session {
    conn: AsyncSmtpConnection,
    last_used: tokio::time::Instant,
    /// The relay advertised PIPELINING (RFC 2920) on this connection.
    pipelining: bool,
    /// Whether everything written on the connection reached the kernel.
    written: Arc<Written>,
}

/// An SMTP relay. A sender task takes an open connection from the pool for each message and
/// puts it back after, so there are never more connections than senders. Each is opened with
/// TCP_NODELAY: with Nagle's algorithm on, the last part of a message
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
    pub(super) describe: String,
    pub(super) pool_size: usize,
    /// Open connections not carrying a message right now.
    pool: Mutex<Vec<Session>>,
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
                let connector =
                    crate::tls::connector(cfg.ca_file.as_deref()).map_err(|detail| {
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
            pool: Mutex::default(),
            pool_size: cfg.pool_size as usize,
        })
    }

    /// TCP (no Nagle), TLS as configured (never optional), EHLO, AUTH. The `bool` says
    /// whether the relay offers PIPELINING.
    async fn connect(
        &self,
        written: &Arc<Written>,
    ) -> Result<(AsyncSmtpConnection, bool), DeliveryError> {
        let net = |e: std::io::Error| {
            DeliveryError::unreachable(format!(
                "cannot connect to {}:{}: {e}",
                self.host, self.port
            ))
        };
        let tls_failed = |text: String| DeliveryError::fatal(Cause::Tls, text);
        let resolved: Vec<SocketAddr> = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(net)?
            .collect();
        let targets = if self.starttls.is_none() && self.implicit.is_none() {
            plaintext_targets(&self.host, resolved).map_err(tls_failed)?
        } else {
            resolved
        };
        let tcp = TcpStream::connect(&targets[..]).await.map_err(net)?;
        tcp.set_nodelay(true).map_err(net)?;
        let lettre_err = |e: lettre::transport::smtp::Error| classify(&e);
        let mut conn = match (&self.implicit, &self.starttls) {
            (Some(connector), _) => {
                let name = rustls::pki_types::ServerName::try_from(self.host.clone())
                    .map_err(|e| tls_failed(format!("{}: {e}", self.host)))?;
                let tls = connector.connect(name, tcp).await.map_err(|e| {
                    DeliveryError::fatal(
                        tls_cause(&e).unwrap_or(Cause::Tls),
                        format!("TLS handshake with {}: {e}", self.host),
                    )
                })?;
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
            Ok(Err(e)) if e.class == FailureClass::Permanent => Err(e.into_fatal()),
            Ok(r) => r,
            Err(_) => Err(DeliveryError::unreachable(format!(
                "connecting to {}:{} timed out",
                self.host, self.port
            ))),
        }
    }

    pub(super) async fn check(&self) -> Result<(), DeliveryError> {
        match self.connect_timed(&Arc::default()).await {
            Ok((mut c, _)) => {
                let _ = c.quit().await;
                Ok(())
            }
            // Before the first message any failure means the run cannot start.
            Err(e) => Err(e.into_fatal()),
        }
    }

    /// Delivers `msg` over an idle connection of the pool, or a new one. See
    /// [`super::Transport::send`] for when the journal is waited for.
    pub(super) async fn send<E: std::fmt::Display>(
        &self,
        msg: &Prepared,
        recorded: impl Future<Output = Result<(), E>>,
    ) -> Result<Accepted, DeliveryError> {
        let envelope = Envelope::new(
            Some(msg.envelope_from.clone()),
            vec![msg.recipient.address.clone()],
        )
        .map_err(|e| DeliveryError::new(FailureClass::Permanent, Cause::Reply, e.to_string()))?;
        let (mut session, reused) = match self.idle().await {
            Some(s) => (s, true),
            None => (self.open().await?, false),
        };
        let mut result = self.envelope(&mut session, &envelope).await;
        // A relay closes connections that sit idle (aiosmtpd after its timeout, Postfix
        // after smtpd_timeout), often with a 421 that waits unread in the socket. A pooled
        // connection it closed fails at its first command. Nothing of the message has gone
        // out before the go-ahead to DATA and the journal holds no line for it yet, so one
        // fresh connection tries again without spending one of the recipient's attempts, as
        // Postfix's connection cache does. A fresh connection's failure is the relay's answer.
        if reused && matches!(&result, Err((e, _)) if stale(e)) {
            session = self.open().await?;
            result = self.envelope(&mut session, &envelope).await;
        }
        let result = match result {
            Ok(()) => {
                self.data(&mut session.conn, &session.written, msg, recorded)
                    .await
            }
            Err(e) => Err(e),
        };
        session.last_used = tokio::time::Instant::now();
        match result {
            Ok(accepted) => {
                self.park(session);
                Ok(accepted)
            }
            Err((e, reusable)) => {
                if reusable {
                    self.park(session);
                }
                Err(e)
            }
        }
    }

    /// MAIL FROM, RCPT TO and DATA on `session`, pipelined when the relay offers it.
    async fn envelope(
        &self,
        session: &mut Session,
        envelope: &Envelope,
    ) -> Result<(), (DeliveryError, bool)> {
        if session.pipelining {
            self.envelope_pipelined(&mut session.conn, envelope).await
        } else {
            self.envelope_stepwise(&mut session.conn, envelope).await
        }
    }

    /// An open connection from the pool that still works. One unused for a while is probed
    /// with NOOP first.
    async fn idle(&self) -> Option<Session> {
        loop {
            let mut s = self.pool.lock().unwrap_or_else(|e| e.into_inner()).pop()?;
            if s.conn.has_broken() {
                continue;
            }
            if s.last_used.elapsed() > IDLE_PROBE
                && !matches!(
                    tokio::time::timeout(self.timeout, s.conn.test_connected()).await,
                    Ok(true)
                )
            {
                continue;
            }
            return Some(s);
        }
    }

    async fn open(&self) -> Result<Session, DeliveryError> {
        let written = Arc::new(Written::default());
        let (conn, pipelining) = self.connect_timed(&written).await?;
        Ok(Session {
            conn,
            last_used: tokio::time::Instant::now(),
            pipelining,
            written,
        })
    }

    /// Returns a connection that can carry the next message to the pool.
    fn park(&self, s: Session) {
        self.pool.lock().unwrap_or_else(|e| e.into_inner()).push(s);
    }

    /// Says goodbye on every idle connection.
    pub(super) async fn close(&self) {
        let idle = std::mem::take(&mut *self.pool.lock().unwrap_or_else(|e| e.into_inner()));
        for mut s in idle {
            let _ = tokio::time::timeout(Duration::from_secs(5), s.conn.quit()).await;
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
    async fn data<E: std::fmt::Display>(
        &self,
        conn: &mut AsyncSmtpConnection,
        written: &Written,
        msg: &Prepared,
        recorded: impl Future<Output = Result<(), E>>,
    ) -> Result<Accepted, (DeliveryError, bool)> {
        // The relay is waiting for the message; dropping the connection (not reusable) ends
        // the transaction without one.
        recorded
            .await
            .map_err(|e| (DeliveryError::unrecorded(e.to_string()), false))?;
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
                relay: None,
            }),
            // A reply: the relay decided, and it did not take the message.
            Ok(Err(e)) if e.status().is_some() => {
                let d = classify(&e);
                let reusable = self.reset(conn).await;
                Err((d, reusable))
            }
            Ok(Err(e)) if !complete => Err((
                DeliveryError::unreachable(format!(
                    "the connection failed while the message was being sent ({e})"
                )),
                false,
            )),
            Ok(Err(e)) => Err((
                DeliveryError::in_doubt(format!(
                    "the connection failed after the message was sent, before the relay answered ({e}); it may or may not have been accepted"
                )),
                false,
            )),
            Err(_) if !complete => Err((
                DeliveryError::unreachable(format!(
                    "the relay took no more of the message for {} s; it was not complete",
                    wait.as_secs()
                )),
                false,
            )),
            Err(_) => Err((
                DeliveryError::in_doubt(format!(
                    "no answer within {} s after the message was sent; it may or may not have been accepted",
                    wait.as_secs()
                )),
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
        DeliveryError::unreachable(format!(
            "no answer to {stage} within {} s",
            self.timeout.as_secs()
        ))
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

/// Whether an envelope failure on a reused connection looks like the relay having closed
/// it while idle: no reply at all (end of stream, reset, silence) or 421, "closing
/// transmission channel" (RFC 5321 4.2.3).
fn stale(e: &DeliveryError) -> bool {
    e.class == FailureClass::Transient && matches!(e.code, None | Some(421))
}

/// A refused MAIL FROM is about the sender (account, address), not the recipient: a
/// permanent refusal stops the run.
fn refused_sender(e: &lettre::transport::smtp::Error) -> DeliveryError {
    let mut d = classify(e);
    if d.class == FailureClass::Permanent {
        d = d.into_fatal();
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
    let cause = match code {
        Some(534 | 535 | 538) => Cause::Login,
        Some(530) => Cause::AuthRequired,
        _ => match tls_cause(e) {
            Some(c) => c,
            None if e.is_tls() => Cause::Tls,
            None if code.is_some() || e.is_client() => Cause::Reply,
            // No reply at all: the connection failed, was refused or timed out.
            None => Cause::Unreachable,
        },
    };
    DeliveryError {
        class,
        code,
        text,
        hard_bounce: false,
        cause,
    }
}

/// Whether rustls failed somewhere in `e`'s chain, and if so whether it refused the
/// certificate. rustls's error often hides inside an `io::Error`, whose `source` skips it.
fn tls_cause(e: &(dyn std::error::Error + 'static)) -> Option<Cause> {
    let mut next = Some(e);
    let mut found = None;
    while let Some(err) = next {
        let wrapped = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|inner| inner as &(dyn std::error::Error + 'static));
        for candidate in [Some(err), wrapped].into_iter().flatten() {
            match candidate.downcast_ref::<rustls::Error>() {
                Some(rustls::Error::InvalidCertificate(_)) => return Some(Cause::Certificate),
                Some(_) => found = Some(Cause::Tls),
                None => {}
            }
        }
        next = err.source();
    }
    found
}

#[cfg(test)]
mod tests {
    use super::super::tests::prepared;
    use super::*;

    /// Plain SMTP connects only to loopback addresses, whatever the name resolved to.
    #[test]
    fn plain_smtp_connects_only_to_a_resolved_loopback_address() {
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        let e = plaintext_targets("localhost", vec![addr("192.0.2.7:25")]).unwrap_err();
        assert!(
            e.contains("localhost resolved to 192.0.2.7, not a loopback"),
            "{e}"
        );
        assert!(plaintext_targets("localhost", Vec::new()).is_err());
        assert_eq!(
            plaintext_targets(
                "localhost",
                vec![
                    addr("203.0.113.9:25"),
                    addr("[::1]:25"),
                    addr("127.0.0.1:25")
                ]
            )
            .unwrap(),
            [addr("[::1]:25"), addr("127.0.0.1:25")]
        );
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
        let t = super::super::Transport::Smtp(Box::new(SmtpRelay::new(&relay_cfg).unwrap()));
        let (journal_done, recorded) = tokio::sync::oneshot::channel::<Result<(), String>>();
        let recorded = async move { recorded.await.unwrap() };
        let msg = prepared();
        let sending = tokio::spawn(async move { t.send(&msg, recorded).await });
        // The relay has answered DATA: the envelope went out without waiting.
        data_seen.await.unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        journal_done.send(Ok(())).unwrap();
        let accepted = sending.await.unwrap().unwrap();
        assert_eq!(accepted.code, Some(250));
        assert_eq!(relay.await.unwrap(), b"Subject: x\r\n\r\nx\r\n");
    }
}
