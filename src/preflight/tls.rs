//! Relay TLS: connects to the configured relay the way `send` will (STARTTLS or implicit),
//! verifies the certificate for the host name, and reports the TLS version, the days until
//! the certificate expires, and whether AUTH is offered before TLS.

use std::time::{Duration, SystemTime};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::{Check, Finding, Severity};
use crate::config::{SmtpConfig, Tls};

const STEP: Duration = Duration::from_secs(15);
const EXPIRY_WARN_DAYS: i64 = 14;

/// Reads one SMTP reply (all its lines); returns the code and the lines' text.
async fn reply<S: AsyncRead + Unpin>(r: &mut BufReader<S>) -> Result<(u16, Vec<String>), String> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        let n = timeout(STEP, r.read_line(&mut line))
            .await
            .map_err(|_| "the relay did not answer in time".to_owned())?
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the relay closed the connection".into());
        }
        let line = line.trim_end().to_owned();
        let code = line
            .get(..3)
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or_else(|| format!("not an SMTP reply: {line:?}"))?;
        let more = line.as_bytes().get(3) == Some(&b'-');
        lines.push(line.get(4..).unwrap_or_default().to_owned());
        if !more {
            return Ok((code, lines));
        }
    }
}

async fn command<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut BufReader<S>,
    cmd: &str,
) -> Result<(u16, Vec<String>), String> {
    timeout(STEP, s.get_mut().write_all(format!("{cmd}\r\n").as_bytes()))
        .await
        .map_err(|_| "timed out writing to the relay".to_owned())?
        .map_err(|e| e.to_string())?;
    reply(s).await
}

fn offers(ehlo: &[String], ext: &str) -> bool {
    ehlo.iter().any(|l| {
        l.split_whitespace()
            .next()
            .is_some_and(|w| w.eq_ignore_ascii_case(ext))
    })
}

pub async fn audit(cfg: &SmtpConfig, now: SystemTime) -> Vec<Finding> {
    let subject = format!("{}:{}", cfg.host, cfg.port);
    let f = |id: Check, sev: Severity, msg: String| Finding::new(id, sev, &subject, msg);
    if cfg.tls == Tls::None {
        return vec![f(
            Check::TlsRelay,
            Severity::Info,
            "plain SMTP to a relay on this machine; nothing crosses the network".into(),
        )];
    }
    match probe(cfg).await {
        Err((stage, e)) => {
            let fix = if stage == "certificate" {
                "the certificate must be valid for the host name and chain to a trusted CA; for a private CA set smtp.ca_file"
            } else {
                "check smtp.host, smtp.port and smtp.tls (\"starttls\" for 587, \"implicit\" for 465)"
            };
            vec![
                f(
                    if stage == "certificate" {
                        Check::TlsCertificate
                    } else {
                        Check::TlsConnect
                    },
                    Severity::Fail,
                    format!("{stage}: {e}"),
                )
                .fix(fix.into()),
            ]
        }
        Ok(p) => {
            let mut out = vec![f(
                Check::TlsConnect,
                Severity::Pass,
                format!(
                    "{} with {}",
                    if cfg.tls == Tls::Starttls {
                        "STARTTLS"
                    } else {
                        "implicit TLS"
                    },
                    p.version
                ),
            )];
            out.push(
                f(
                    Check::TlsCertificate,
                    Severity::Pass,
                    format!("the certificate is valid for {}", cfg.host),
                )
                .evidence(p.subject.clone()),
            );
            match p.not_after {
                Some(not_after) => {
                    let days = (not_after
                        - now
                            .duration_since(SystemTime::UNIX_EPOCH)
                            .map_or(0, |d| d.as_secs() as i64))
                        / 86_400;
                    let sev = if days < 0 {
                        Severity::Fail
                    } else if days < EXPIRY_WARN_DAYS {
                        Severity::Warn
                    } else {
                        Severity::Pass
                    };
                    let mut x = f(
                        Check::TlsExpiry,
                        sev,
                        format!("the certificate expires in {days} days"),
                    );
                    if sev != Severity::Pass {
                        x = x.fix("renew the relay's certificate".into());
                    }
                    out.push(x);
                }
                None => out.push(f(
                    Check::TlsExpiry,
                    Severity::Warn,
                    "could not read the certificate's expiry".into(),
                )),
            }
            if cfg.tls == Tls::Starttls {
                if p.auth_before_tls {
                    out.push(f(Check::TlsAuthBeforeTls, Severity::Warn, "the relay offers AUTH before STARTTLS; mailshot never uses it, but other clients may send passwords in clear".into()).fix("configure the relay to offer AUTH only after STARTTLS".into()));
                } else {
                    out.push(f(
                        Check::TlsAuthBeforeTls,
                        Severity::Pass,
                        "AUTH is offered only after TLS".into(),
                    ));
                }
            }
            if cfg.username.is_some() && !p.auth_after_tls {
                out.push(
                    f(
                        Check::TlsAuth,
                        Severity::Fail,
                        "a username is configured but the relay does not offer AUTH after TLS"
                            .into(),
                    )
                    .fix("check the port: submission is 587 (STARTTLS) or 465 (implicit)".into()),
                );
            }
            out
        }
    }
}

struct Probe {
    version: String,
    subject: String,
    not_after: Option<i64>,
    auth_before_tls: bool,
    auth_after_tls: bool,
}

async fn probe(cfg: &SmtpConfig) -> Result<Probe, (&'static str, String)> {
    let connector = crate::tls::connector(cfg.ca_file.as_deref()).map_err(|e| ("setup", e))?;
    let server_name =
        ServerName::try_from(cfg.host.clone()).map_err(|e| ("setup", e.to_string()))?;
    let tcp = timeout(STEP, TcpStream::connect((cfg.host.as_str(), cfg.port)))
        .await
        .map_err(|_| ("connect", "timed out".to_owned()))?
        .map_err(|e| ("connect", e.to_string()))?;
    let helo = cfg
        .helo_name
        .clone()
        .unwrap_or_else(|| "mailshot.preflight".into());
    let mut auth_before_tls = false;
    let tcp = if cfg.tls == Tls::Starttls {
        let mut s = BufReader::new(tcp);
        let (code, _) = reply(&mut s).await.map_err(|e| ("greeting", e))?;
        if code != 220 {
            return Err(("greeting", format!("the relay answered {code}")));
        }
        let (_, ehlo) = command(&mut s, &format!("EHLO {helo}"))
            .await
            .map_err(|e| ("EHLO", e))?;
        if !offers(&ehlo, "STARTTLS") {
            return Err(("STARTTLS", "the relay does not offer STARTTLS".into()));
        }
        auth_before_tls = offers(&ehlo, "AUTH");
        let (code, text) = command(&mut s, "STARTTLS")
            .await
            .map_err(|e| ("STARTTLS", e))?;
        if code != 220 {
            return Err(("STARTTLS", format!("{code} {}", text.join(" "))));
        }
        s.into_inner()
    } else {
        tcp
    };
    let tls = timeout(STEP, connector.connect(server_name, tcp))
        .await
        .map_err(|_| ("TLS handshake", "timed out".to_owned()))?
        .map_err(|e| {
            let text = e.to_string();
            if text.to_ascii_lowercase().contains("certificate") {
                ("certificate", text)
            } else {
                ("TLS handshake", text)
            }
        })?;
    let (_, conn) = tls.get_ref();
    let version = conn
        .protocol_version()
        .map(|v| format!("{v:?}").replace("TLSv1_", "TLS 1."))
        .unwrap_or_else(|| "unknown TLS".into());
    let (subject, not_after) = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|der| x509_parser::parse_x509_certificate(der.as_ref()).ok())
        .map(|(_, cert)| {
            (
                format!("subject {}, issuer {}", cert.subject(), cert.issuer()),
                Some(cert.validity().not_after.timestamp()),
            )
        })
        .unwrap_or_else(|| (String::new(), None));
    let mut s = BufReader::new(tls);
    if cfg.tls == Tls::Implicit {
        let (code, _) = reply(&mut s).await.map_err(|e| ("greeting", e))?;
        if code != 220 {
            return Err(("greeting", format!("the relay answered {code}")));
        }
    }
    let (_, ehlo) = command(&mut s, &format!("EHLO {helo}"))
        .await
        .map_err(|e| ("EHLO after TLS", e))?;
    let auth_after_tls = offers(&ehlo, "AUTH");
    let _ = command(&mut s, "QUIT").await;
    Ok(Probe {
        version,
        subject,
        not_after,
        auth_before_tls,
        auth_after_tls,
    })
}
