//! Where prepared messages go: an SMTP relay (lettre's pooled async transport, TLS verified)
//! or an outbox folder of `.eml` files. Both take the signed bytes unchanged.

use std::path::{Path, PathBuf};

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::{AsyncSmtpTransport, PoolConfig};
use lettre::{Address, AsyncTransport, Tokio1Executor};

use crate::config::{SmtpConfig, Tls as TlsMode};
use crate::message::Prepared;

/// How a failed delivery should be treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// 4xx, a dropped connection, a timeout: the recipient is deferred, not failed.
    Transient,
    /// 5xx for this recipient: recorded, never retried.
    Permanent,
    /// Authentication, TLS or configuration: every further attempt would fail the same way,
    /// so the campaign stops instead of failing each recipient in turn.
    Fatal,
}

/// A delivery that did not happen. `text` is the server's reply or the local error.
#[derive(Debug, Clone)]
pub struct DeliveryError {
    pub class: FailureClass,
    pub code: Option<u16>,
    pub text: String,
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

impl Transport {
    /// Opens one connection (TLS and AUTH included) so that a wrong host, an untrusted
    /// certificate or a wrong password stops the run before the first recipient.
    pub async fn check(&self) -> Result<(), DeliveryError> {
        match self {
            Transport::Smtp(s) => s.check().await,
            Transport::Outbox(_) => Ok(()),
        }
    }

    pub async fn send(&self, from: &Address, msg: &Prepared) -> Result<Accepted, DeliveryError> {
        match self {
            Transport::Smtp(s) => s.send(from, msg).await,
            Transport::Outbox(o) => o.write(msg),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Transport::Smtp(s) => s.describe.clone(),
            Transport::Outbox(o) => format!("outbox {}", o.dir.display()),
        }
    }
}

/// A pool of SMTP connections to one relay.
pub struct SmtpRelay {
    inner: AsyncSmtpTransport<Tokio1Executor>,
    describe: String,
}

impl SmtpRelay {
    /// Builds the transport: TLS parameters, trust roots and credentials are set up once.
    pub fn new(cfg: &SmtpConfig) -> Result<SmtpRelay, TransportSetupError> {
        let tls = match cfg.tls {
            TlsMode::None => Tls::None,
            mode => {
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
                // No `Tls::Opportunistic`: a relay that does not offer STARTTLS must fail the
                // connection, not silently receive the mail (and the password) in clear.
                if mode == TlsMode::Implicit {
                    Tls::Wrapper(params)
                } else {
                    Tls::Required(params)
                }
            }
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&cfg.host)
            .port(cfg.port)
            .tls(tls)
            .timeout(Some(cfg.timeout))
            .pool_config(PoolConfig::new().max_size(cfg.pool_size));
        if let (Some(user), Some(source)) = (&cfg.username, &cfg.password) {
            let password = source.load()?;
            builder = builder
                .credentials(Credentials::new(user.clone(), password.expose().to_owned()))
                .authentication(vec![Mechanism::Plain, Mechanism::Login]);
        }
        if let Some(helo) = &cfg.helo_name {
            builder = builder.hello_name(ClientId::Domain(helo.clone()));
        }
        let tls_word = match cfg.tls {
            TlsMode::Starttls => "STARTTLS",
            TlsMode::Implicit => "implicit TLS",
            TlsMode::None => "no TLS (loopback)",
        };
        Ok(SmtpRelay {
            inner: builder.build(),
            describe: format!("smtp {}:{} ({tls_word})", cfg.host, cfg.port),
        })
    }

    async fn check(&self) -> Result<(), DeliveryError> {
        match self.inner.test_connection().await {
            Ok(true) => Ok(()),
            Ok(false) => Err(DeliveryError {
                class: FailureClass::Fatal,
                code: None,
                text: "the relay accepted the connection but did not answer NOOP".into(),
            }),
            Err(e) => {
                let mut err = classify(&e);
                // Before the first message any failure means the run cannot start.
                err.class = FailureClass::Fatal;
                Err(err)
            }
        }
    }

    async fn send(&self, from: &Address, msg: &Prepared) -> Result<Accepted, DeliveryError> {
        let envelope = Envelope::new(Some(from.clone()), vec![msg.recipient.address.clone()])
            .map_err(|e| DeliveryError {
                class: FailureClass::Permanent,
                code: None,
                text: e.to_string(),
            })?;
        // lettre always ends DATA with "\r\n.\r\n", whose first CRLF RFC 5321 counts as
        // the end of the last line; hand it the message without its final CRLF so the relay
        // receives exactly the signed bytes.
        let body = msg.bytes.strip_suffix(b"\r\n").unwrap_or(&msg.bytes);
        match self.inner.send_raw(&envelope, body).await {
            Ok(resp) => Ok(Accepted {
                code: Some(u16::from(resp.code())),
                text: resp.message().collect::<Vec<_>>().join(" "),
            }),
            Err(e) => Err(classify(&e)),
        }
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
    DeliveryError { class, code, text }
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
        let name = format!(
            "{:06}-{}.eml",
            msg.recipient.row,
            safe_file_part(msg.recipient.address.as_ref())
        );
        let path = self.dir.join(&name);
        let tmp = self.dir.join(format!(".{name}.tmp"));
        // Write then rename, so a reader never sees half a message.
        std::fs::write(&tmp, &msg.bytes)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| DeliveryError {
                class: FailureClass::Fatal,
                code: None,
                text: format!("cannot write {}: {e}", path.display()),
            })?;
        Ok(Accepted {
            code: None,
            text: path.display().to_string(),
        })
    }
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
