//! IMAP mailboxes: TLS only (implicit TLS on 993, or STARTTLS, required, for `imap://`), the
//! certificate checked as `[smtp]` checks the relay's, LOGIN (or AUTHENTICATE PLAIN where
//! LOGIN is refused as a command), then one message fetched at a time with BODY.PEEK (which
//! leaves \Seen alone). Processed messages get a keyword or are moved, and only when the
//! caller says their effects are durable; a rerun of intake searches for messages without the
//! keyword (readers that grade or summarize read them all: see the mailbox module doc).
//!
//! URL: `imaps://user%40example.com@imap.example.net[:993]/INBOX` (RFC 5092's form, with the
//! `@` of an address login percent-encoded). A password in the URL is refused: it would end up
//! in shell history and process lists; it comes from an environment variable or a file.

use std::collections::VecDeque;
use std::time::Duration;

use async_imap::{Client, Session as ImapSession};
use futures_util::StreamExt;
use percent_encoding::percent_decode_str;
use tokio::net::TcpStream;
use tokio::runtime::Runtime;
use tokio_rustls::client::TlsStream;

use super::{Access, Item, ItemError, Mark, Options, Origin};
use crate::secret::SecretError;

/// One network step (connect, a command and its answer, one message) may take this long.
const STEP: Duration = Duration::from_secs(60);
/// UIDs per FETCH or STORE command, so a command line stays short on a big mailbox.
const CHUNK: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    #[error("{url}: {message}")]
    Url { url: String, message: String },
    #[error(
        "{0}: IMAP needs a password: pass --password-env VAR or --password-file FILE (or set password_env/password_file in [intake])"
    )]
    NoPassword(String),
    #[error(transparent)]
    Password(#[from] SecretError),
    #[error("cannot connect to {server}: {detail}")]
    Connect { server: String, detail: String },
    #[error(
        "TLS with {server} failed: {detail}; the certificate must be valid for the host name and chain to a trusted CA (for a private CA pass --ca-file)"
    )]
    Tls { server: String, detail: String },
    #[error("{server} refused the login for {user}: {detail}")]
    Login {
        server: String,
        user: String,
        detail: String,
    },
    #[error("{server}: mailbox {mailbox:?}: {detail}")]
    Mailbox {
        server: String,
        mailbox: String,
        detail: String,
    },
    #[error("{server}: {what}: {detail}")]
    Protocol {
        server: String,
        what: &'static str,
        detail: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// `imaps://`: TLS from the first byte (port 993).
    Implicit,
    /// `imap://`: STARTTLS, required (port 143); mailshot never logs in without TLS.
    StartTls,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub security: Security,
    pub user: String,
    pub host: String,
    pub port: u16,
    pub mailbox: String,
}

impl Url {
    pub fn parse(s: &str) -> Result<Url, ImapError> {
        let bad = |m: &str| ImapError::Url {
            url: s.to_owned(),
            message: m.to_owned(),
        };
        let (security, rest) = if let Some(r) = s.strip_prefix("imaps://") {
            (Security::Implicit, r)
        } else if let Some(r) = s.strip_prefix("imap://") {
            (Security::StartTls, r)
        } else {
            return Err(bad("not an imaps:// or imap:// URL"));
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, hostport) = authority.rsplit_once('@').ok_or_else(|| {
            bad("no user: write imaps://USER@HOST/MAILBOX, with an @ in USER as %40")
        })?;
        if userinfo.contains(':') || userinfo.contains(";AUTH=") {
            return Err(bad(
                "a password or AUTH= in the URL is not accepted; use --password-env or --password-file",
            ));
        }
        let user = decode(userinfo).map_err(|_| bad("the user is not valid UTF-8"))?;
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || hostport.starts_with('[') => (
                h,
                Some(
                    p.parse::<u16>()
                        .map_err(|_| bad("the port is not a number"))?,
                ),
            ),
            _ => (hostport, None),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if user.is_empty() || host.is_empty() {
            return Err(bad("the user and the host must not be empty"));
        }
        let mailbox = decode(path.trim_end_matches('/'))
            .map_err(|_| bad("the mailbox is not valid UTF-8"))?;
        Ok(Url {
            security,
            user,
            host: host.to_owned(),
            port: port.unwrap_or(match security {
                Security::Implicit => 993,
                Security::StartTls => 143,
            }),
            mailbox: if mailbox.is_empty() {
                "INBOX".into()
            } else {
                mailbox
            },
        })
    }

    fn server(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

fn decode(s: &str) -> Result<String, std::str::Utf8Error> {
    percent_decode_str(s).decode_utf8().map(|c| c.into_owned())
}

type Stream = TlsStream<TcpStream>;

/// A logged-in session with one mailbox selected, and the UIDs still to read.
pub struct Session {
    rt: Runtime,
    session: ImapSession<Stream>,
    url: Url,
    label: String,
    max_bytes: u64,
    /// (UID, size) of the messages still to read, in UID order.
    queue: VecDeque<(u32, u32)>,
    total: usize,
    can_move: bool,
}

impl Session {
    pub fn open(url: &Url, opts: &Options) -> Result<Session, ImapError> {
        let label = format!("{}@{}/{}", url.user, url.server(), url.mailbox);
        let password = opts
            .password
            .as_ref()
            .ok_or_else(|| ImapError::NoPassword(label.clone()))?
            .load()?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| protocol(url, "runtime", e))?;
        let connector =
            crate::tls::connector(opts.ca_file.as_deref()).map_err(|detail| tls(url, detail))?;
        let (session, can_move, queue) = rt.block_on(async {
            let client = connect(url, &connector).await?;
            let mut session = login(client, url, password.expose()).await?;
            let caps = step(url, "CAPABILITY", session.capabilities()).await?;
            let can_move = caps.has_str("MOVE");
            select(&mut session, url, opts).await?;
            let queue = pending(&mut session, url, opts).await?;
            Ok::<_, ImapError>((session, can_move, queue))
        })?;
        Ok(Session {
            rt,
            session,
            url: url.clone(),
            label,
            max_bytes: opts.max_bytes,
            total: queue.len(),
            queue,
            can_move,
        })
    }

    /// Names this mailbox in [`Origin::Imap`], so marks go back to the right session.
    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn len(&self) -> usize {
        self.total
    }

    fn fetch(&mut self, uid: u32) -> Result<Vec<u8>, ItemError> {
        let url = &self.url;
        let session = &mut self.session;
        self.rt
            .block_on(async {
                let mut stream = step(
                    url,
                    "UID FETCH",
                    session.uid_fetch(uid.to_string(), "BODY.PEEK[]"),
                )
                .await?;
                let mut body = None;
                while let Some(f) = step(url, "UID FETCH", async {
                    Ok::<_, std::convert::Infallible>(stream.next().await)
                })
                .await?
                {
                    let f = f.map_err(|e| protocol(url, "UID FETCH", e))?;
                    if f.uid == Some(uid) {
                        body = f.body().map(<[u8]>::to_vec);
                    }
                }
                Ok::<_, ImapError>(body)
            })
            .map_err(|e| ItemError::Io(e.to_string()))?
            // Expunged by another client since the search: nothing to read, nothing lost.
            .ok_or_else(|| ItemError::Io("the server returned no body (expunged?)".into()))
    }

    /// Marks processed messages: the keyword, or a move (MOVE, or COPY + \Deleted + UID
    /// EXPUNGE of exactly these UIDs where the server has no MOVE).
    pub fn mark(&mut self, uids: &[u32], mark: &Mark) -> Result<(), ImapError> {
        let url = &self.url;
        let session = &mut self.session;
        let can_move = self.can_move;
        self.rt.block_on(async {
            for chunk in uids.chunks(CHUNK) {
                let set = uid_set(chunk);
                match mark {
                    Mark::Keyword(k) => {
                        store(session, url, &set, &format!("+FLAGS.SILENT ({k})")).await?
                    }
                    Mark::Move(folder) if can_move => {
                        step(url, "UID MOVE", session.uid_mv(&set, folder)).await?
                    }
                    Mark::Move(folder) => {
                        step(url, "UID COPY", session.uid_copy(&set, folder)).await?;
                        store(session, url, &set, "+FLAGS.SILENT (\\Deleted)").await?;
                        let s = step(url, "UID EXPUNGE", session.uid_expunge(&set)).await?;
                        s.collect::<Vec<_>>().await;
                    }
                }
            }
            Ok(())
        })
    }

    pub fn close(mut self) {
        let session = &mut self.session;
        // The timer is made inside the runtime: tokio's timers need one to exist.
        let _ = self
            .rt
            .block_on(async { tokio::time::timeout(STEP, session.logout()).await });
    }
}

impl Iterator for Session {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        let (uid, size) = self.queue.pop_front()?;
        let origin = Origin::Imap {
            mailbox: self.label.clone(),
            uid,
        };
        let bytes = if u64::from(size) > self.max_bytes {
            Err(ItemError::TooLarge {
                size: size.into(),
                limit: self.max_bytes,
            })
        } else {
            self.fetch(uid)
        };
        Some(Item { origin, bytes })
    }
}

fn protocol(url: &Url, what: &'static str, e: impl std::fmt::Display) -> ImapError {
    ImapError::Protocol {
        server: url.server(),
        what,
        detail: e.to_string(),
    }
}

fn tls(url: &Url, detail: impl std::fmt::Display) -> ImapError {
    ImapError::Tls {
        server: url.server(),
        detail: detail.to_string(),
    }
}

/// One network step with the time limit, its IMAP error named.
async fn step<T, E: std::fmt::Display>(
    url: &Url,
    what: &'static str,
    fut: impl Future<Output = Result<T, E>>,
) -> Result<T, ImapError> {
    match tokio::time::timeout(STEP, fut).await {
        Ok(r) => r.map_err(|e| protocol(url, what, e)),
        Err(_) => Err(protocol(url, what, "timed out")),
    }
}

async fn tls_wrap(
    url: &Url,
    connector: &tokio_rustls::TlsConnector,
    tcp: TcpStream,
) -> Result<Stream, ImapError> {
    let name = rustls_pki_types::ServerName::try_from(url.host.clone()).map_err(|e| {
        tls(
            url,
            format!("{:?} is not a valid server name: {e}", url.host),
        )
    })?;
    match tokio::time::timeout(STEP, connector.connect(name, tcp)).await {
        Ok(r) => r.map_err(|e| tls(url, e)),
        Err(_) => Err(tls(url, "the handshake timed out")),
    }
}

async fn connect(
    url: &Url,
    connector: &tokio_rustls::TlsConnector,
) -> Result<Client<Stream>, ImapError> {
    let tcp =
        match tokio::time::timeout(STEP, TcpStream::connect((url.host.as_str(), url.port))).await {
            Ok(Ok(t)) => t,
            Ok(Err(e)) => return Err(connect_error(url, e)),
            Err(_) => return Err(connect_error(url, "timed out")),
        };
    let stream = match url.security {
        Security::Implicit => tls_wrap(url, connector, tcp).await?,
        Security::StartTls => {
            let mut plain = Client::new(tcp);
            greeting(url, &mut plain).await?;
            step(
                url,
                "STARTTLS",
                plain.run_command_and_check_ok("STARTTLS", None),
            )
            .await?;
            tls_wrap(url, connector, plain.into_inner()).await?
        }
    };
    let mut client = Client::new(stream);
    if url.security == Security::Implicit {
        greeting(url, &mut client).await?;
    }
    Ok(client)
}

fn connect_error(url: &Url, e: impl std::fmt::Display) -> ImapError {
    ImapError::Connect {
        server: url.server(),
        detail: e.to_string(),
    }
}

async fn greeting<S>(url: &Url, client: &mut Client<S>) -> Result<(), ImapError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + std::fmt::Debug + Send,
{
    match step(url, "greeting", client.read_response()).await? {
        Some(_) => Ok(()),
        None => Err(connect_error(url, "the server closed the connection")),
    }
}

/// SASL PLAIN (RFC 4616): authorization id empty, then the user and the password.
struct Plain<'a> {
    user: &'a str,
    password: &'a str,
}

impl async_imap::Authenticator for Plain<'_> {
    type Response = Vec<u8>;
    fn process(&mut self, _challenge: &[u8]) -> Vec<u8> {
        format!("\0{}\0{}", self.user, self.password).into_bytes()
    }
}

async fn login(
    client: Client<Stream>,
    url: &Url,
    password: &str,
) -> Result<ImapSession<Stream>, ImapError> {
    let refused = |e: async_imap::error::Error| ImapError::Login {
        server: url.server(),
        user: url.user.clone(),
        detail: e.to_string(),
    };
    match tokio::time::timeout(STEP, client.login(&url.user, password)).await {
        Err(_) => Err(protocol(url, "LOGIN", "timed out")),
        Ok(Ok(s)) => Ok(s),
        // BAD: the server does not take LOGIN (some disable it); NO is a wrong password.
        Ok(Err((async_imap::error::Error::Bad(_), client))) => {
            let plain = Plain {
                user: &url.user,
                password,
            };
            match tokio::time::timeout(STEP, client.authenticate("PLAIN", plain)).await {
                Err(_) => Err(protocol(url, "AUTHENTICATE", "timed out")),
                Ok(r) => r.map_err(|(e, _)| refused(e)),
            }
        }
        Ok(Err((e, _))) => Err(refused(e)),
    }
}

async fn select(
    session: &mut ImapSession<Stream>,
    url: &Url,
    opts: &Options,
) -> Result<(), ImapError> {
    let missing = |detail: String| ImapError::Mailbox {
        server: url.server(),
        mailbox: url.mailbox.clone(),
        detail,
    };
    if opts.access.read_only() {
        step(url, "EXAMINE", session.examine(&url.mailbox))
            .await
            .map_err(|e| missing(e.to_string()))?;
        return Ok(());
    }
    if let Mark::Move(folder) = &opts.mark {
        // The folder the user chose: created if it is not there yet (an error if it exists).
        let exists = tokio::time::timeout(STEP, session.status(folder, "(MESSAGES)"))
            .await
            .is_ok_and(|r| r.is_ok());
        if !exists {
            step(url, "CREATE", session.create(folder)).await?;
        }
    }
    step(url, "SELECT", session.select(&url.mailbox))
        .await
        .map_err(|e| missing(e.to_string()))?;
    Ok(())
}

/// The messages not processed yet, with their sizes, in UID order.
async fn pending(
    session: &mut ImapSession<Stream>,
    url: &Url,
    opts: &Options,
) -> Result<VecDeque<(u32, u32)>, ImapError> {
    let query = match &opts.mark {
        Mark::Keyword(k) if opts.access != Access::ReadAll => {
            format!("NOT DELETED NOT KEYWORD {k}")
        }
        Mark::Keyword(_) | Mark::Move(_) => "NOT DELETED".into(),
    };
    let mut uids: Vec<u32> = step(url, "UID SEARCH", session.uid_search(&query))
        .await?
        .into_iter()
        .collect();
    uids.sort_unstable();
    let mut queue = VecDeque::with_capacity(uids.len());
    for chunk in uids.chunks(CHUNK) {
        let mut sizes = Vec::with_capacity(chunk.len());
        {
            let mut stream = step(
                url,
                "UID FETCH",
                session.uid_fetch(uid_set(chunk), "RFC822.SIZE"),
            )
            .await?;
            while let Some(f) = stream.next().await {
                let f = f.map_err(|e| protocol(url, "UID FETCH", e))?;
                if let (Some(uid), Some(size)) = (f.uid, f.size) {
                    sizes.push((uid, size));
                }
            }
        }
        sizes.sort_unstable();
        queue.extend(sizes);
    }
    Ok(queue)
}

async fn store(
    session: &mut ImapSession<Stream>,
    url: &Url,
    set: &str,
    query: &str,
) -> Result<(), ImapError> {
    let stream = step(url, "UID STORE", session.uid_store(set, query)).await?;
    for r in stream.collect::<Vec<_>>().await {
        r.map_err(|e| protocol(url, "UID STORE", e))?;
    }
    Ok(())
}

fn uid_set(uids: &[u32]) -> String {
    uids.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = Url::parse("imaps://bounces%40news.example.com@imap.example.net/INBOX").unwrap();
        assert_eq!(u.user, "bounces@news.example.com");
        assert_eq!(u.host, "imap.example.net");
        assert_eq!((u.port, u.security), (993, Security::Implicit));
        assert_eq!(u.mailbox, "INBOX");
        let u = Url::parse("imap://me@127.0.0.1:1143/Bounces%20Old").unwrap();
        assert_eq!((u.port, u.security), (1143, Security::StartTls));
        assert_eq!(u.mailbox, "Bounces Old");
        assert_eq!(Url::parse("imaps://me@host").unwrap().mailbox, "INBOX");
        for bad in [
            "imaps://me:secret@host/INBOX",
            "imaps://host/INBOX",
            "imaps://me@host:x/INBOX",
            "pop3://me@host",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }
}
