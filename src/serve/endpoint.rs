//! One request in, one response out: routing to a campaign by the URL path it came in on,
//! the RFC 8058 checks, and the record. Every refusal is decided before anything is written.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use lettre::Address;

use super::commit::Committer;
use super::page;
use crate::clock::Clock;
use crate::suppression::{Reason, Record};
use crate::unsubscribe::Unsubscriber;

/// The largest body taken: the RFC 8058 body is 26 bytes; a form adds little.
pub const MAX_BODY: usize = 1024;
/// The health check's path.
pub const HEALTH: &str = "/healthz";

/// One campaign's unsubscribe URL and what answers it.
pub struct Endpoint {
    pub campaign: String,
    /// Shown on the page: the From name or address.
    pub list: String,
    /// The URL's path, and the query pairs its base already has (`?list=news`), which tell
    /// campaigns sharing a path apart.
    pub path: String,
    pub fixed: Vec<(String, String)>,
    pub unsubscriber: Unsubscriber,
    pub committer: Committer,
}

/// Everything a request needs.
pub struct App {
    pub endpoints: Vec<Endpoint>,
    pub clock: Arc<dyn Clock>,
    pub body_timeout: Duration,
}

/// The status and a short text, for a refusal.
type Refusal = (StatusCode, &'static str);

const NOT_FOUND: Refusal = (StatusCode::NOT_FOUND, "Not found");
const BAD_LINK: Refusal = (
    StatusCode::BAD_REQUEST,
    "This unsubscribe link is incomplete",
);
const FORGED: Refusal = (StatusCode::FORBIDDEN, "This unsubscribe link is not valid");

impl App {
    pub async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        if req.uri().path() == HEALTH {
            return match *req.method() {
                Method::GET | Method::HEAD => respond(StatusCode::OK, "text/plain", "ok\n".into()),
                _ => method_not_allowed("GET, HEAD"),
            };
        }
        match self.unsubscribe(req).await {
            Ok(r) => r,
            Err((StatusCode::METHOD_NOT_ALLOWED, _)) => method_not_allowed("GET, HEAD, POST"),
            Err((status, what)) => respond(status, "text/html; charset=utf-8", page::refused(what)),
        }
    }

    async fn unsubscribe(&self, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Refusal> {
        let path = req.uri().path();
        if !self.endpoints.iter().any(|e| e.path == path) {
            return Err(NOT_FOUND);
        }
        if !matches!(*req.method(), Method::GET | Method::HEAD | Method::POST) {
            return Err((StatusCode::METHOD_NOT_ALLOWED, ""));
        }
        let query = req.uri().query().unwrap_or_default();
        let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let endpoint = self
            .endpoints
            .iter()
            .find(|e| e.path == path && e.fixed.iter().all(|f| pairs.contains(f)))
            .ok_or(NOT_FOUND)?;
        let (email, token) = (only(&pairs, "email")?, only(&pairs, "token")?);
        let address: Address = email.parse().map_err(|_| BAD_LINK)?;
        if !endpoint
            .unsubscriber
            .verify(&address, token, self.clock.now())
        {
            return Err(FORGED);
        }
        if req.method() != Method::POST {
            let action = req.uri().path_and_query().map_or(path, |p| p.as_str());
            let html = page::confirm(&endpoint.list, address.as_ref(), action);
            return Ok(respond(StatusCode::OK, "text/html; charset=utf-8", html));
        }
        self.one_click_body(req).await?;
        let record = Record {
            campaign: endpoint.campaign.clone(),
            ..Record::add(address.as_ref(), Reason::Unsubscribe, self.clock.now())
        };
        match endpoint.committer.record(record).await {
            Ok(_) => Ok(respond(
                StatusCode::OK,
                "text/html; charset=utf-8",
                page::done(&endpoint.list, address.as_ref()),
            )),
            // Not recorded: say so, so the client (a mail provider retries) tries again.
            Err(_) => Err((
                StatusCode::SERVICE_UNAVAILABLE,
                "Could not record this now; please try again",
            )),
        }
    }

    /// Reads the POST body (bounded in size and time) and checks it is the RFC 8058 one:
    /// `List-Unsubscribe=One-Click`, form-encoded (the button's form sends the same) or
    /// as multipart/form-data, which RFC 8058 section 3.1 allows too.
    async fn one_click_body(&self, req: Request<Incoming>) -> Result<(), Refusal> {
        const TOO_LARGE: Refusal = (StatusCode::PAYLOAD_TOO_LARGE, "Request too large");
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_BODY as u64) {
            return Err(TOO_LARGE);
        }
        let kind = BodyKind::of(req.headers().get(header::CONTENT_TYPE));
        let body = Limited::new(req.into_body(), MAX_BODY);
        let bytes = match tokio::time::timeout(self.body_timeout, body.collect()).await {
            Err(_) => return Err((StatusCode::REQUEST_TIMEOUT, "Request timed out")),
            Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => return Err(TOO_LARGE),
            Ok(Err(_)) => return Err((StatusCode::BAD_REQUEST, "Bad request")),
            Ok(Ok(c)) => c.to_bytes(),
        };
        let one_click = kind.carries_one_click(bytes).await;
        match one_click {
            true => Ok(()),
            false => Err((
                StatusCode::BAD_REQUEST,
                "The body must be List-Unsubscribe=One-Click (RFC 8058)",
            )),
        }
    }
}

/// How a POST body is encoded, from its Content-Type. No Content-Type is taken as a plain
/// form: some clients send the 26 bytes bare.
enum BodyKind {
    Form,
    Multipart(String),
    Other,
}

impl BodyKind {
    fn of(content_type: Option<&HeaderValue>) -> BodyKind {
        let Some(t) = content_type.and_then(|v| v.to_str().ok()) else {
            return BodyKind::Form;
        };
        let essence = t.split(';').next().unwrap_or_default().trim();
        if essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            BodyKind::Form
        } else if essence.eq_ignore_ascii_case("multipart/form-data") {
            multer::parse_boundary(t).map_or(BodyKind::Other, BodyKind::Multipart)
        } else {
            BodyKind::Other
        }
    }

    /// Whether the body carries the field `List-Unsubscribe` with the value `One-Click`.
    async fn carries_one_click(self, bytes: Bytes) -> bool {
        let wanted = |k: &str, v: &str| k == "List-Unsubscribe" && v == "One-Click";
        match self {
            BodyKind::Form => form_urlencoded::parse(&bytes).any(|(k, v)| wanted(&k, &v)),
            BodyKind::Multipart(boundary) => {
                // The body is already bounded (MAX_BODY) and in memory: parsing it is cheap.
                let mut parts =
                    multer::Multipart::with_reader(std::io::Cursor::new(bytes), boundary);
                while let Ok(Some(field)) = parts.next_field().await {
                    let name = field.name().unwrap_or_default().to_owned();
                    if field.text().await.is_ok_and(|v| wanted(&name, &v)) {
                        return true;
                    }
                }
                false
            }
            BodyKind::Other => false,
        }
    }
}

/// The value of a query parameter that must appear exactly once.
fn only<'a>(pairs: &'a [(String, String)], name: &str) -> Result<&'a str, Refusal> {
    let mut it = pairs.iter().filter(|(k, _)| k == name);
    match (it.next(), it.next()) {
        (Some((_, v)), None) => Ok(v),
        _ => Err(BAD_LINK),
    }
}

fn respond(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // The page's URL carries the token: no cache keeps it, no Referer sends it on.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
        ),
    );
    r
}

fn method_not_allowed(allow: &'static str) -> Response<Full<Bytes>> {
    let mut r = respond(
        StatusCode::METHOD_NOT_ALLOWED,
        "text/html; charset=utf-8",
        page::refused("Method not allowed"),
    );
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}
