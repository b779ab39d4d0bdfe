//! DNS, injected: the system resolver or one chosen nameserver, optionally under a zone
//! overlay (records the user is about to publish), behind a cache that asks for each name and
//! type once per run even when several checks want it at the same time.
//!
//! One resolver: every lookup of a command, PTR and the forward half of FCrDNS included, goes
//! through the source chosen here. With a named nameserver nothing reads the machine's hosts
//! file.
//!
//! Answers are values: records, or none (NXDOMAIN and NODATA alike: what RFC 7208 calls a
//! void lookup). Anything else (SERVFAIL, REFUSED, a timeout) is a [`TempError`], which the
//! checks report as `temperror` and never as a pass.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::DnsHandle;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::{DnsRequestOptions, Query, ResponseCode};
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use hickory_resolver::{NameServerPool, PoolContext, TlsConfig, TokioResolver};
use tokio::sync::OnceCell;

pub mod zone;

use zone::Data;

/// One resource record, reduced to what the audit reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rr {
    /// The character-strings of one TXT record, as published (not yet joined).
    Txt(Vec<Vec<u8>>),
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Mx(u16, String),
    Ptr(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Txt,
    A,
    Aaaa,
    Mx,
    Ptr,
}

impl Kind {
    fn record_type(self) -> RecordType {
        match self {
            Kind::Txt => RecordType::TXT,
            Kind::A => RecordType::A,
            Kind::Aaaa => RecordType::AAAA,
            Kind::Mx => RecordType::MX,
            Kind::Ptr => RecordType::PTR,
        }
    }
}

/// The lookup could not be answered: SERVFAIL, REFUSED, a timeout, a network error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name} {kind:?}: {detail}")]
pub struct TempError {
    pub name: String,
    pub kind: Kind,
    pub detail: String,
}

pub type Answer = Result<Arc<Vec<Rr>>, TempError>;

/// One question's answer, computed once and shared by everyone who asks.
type Shared = Arc<OnceCell<Answer>>;

#[derive(Debug, thiserror::Error)]
pub enum DnsSetupError {
    #[error("cannot read the zone overlay {path}: {source}")]
    ReadZone {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("zone overlay {path}: {message}")]
    ParseZone { path: PathBuf, message: String },
    #[error("cannot read the system resolver configuration: {0}")]
    System(String),
    #[error("nameserver {0:?} is not IP[:PORT]")]
    Nameserver(String),
}

/// Where answers come from.
pub enum Upstream {
    /// The resolver, and for a named nameserver a direct line to it for the names the
    /// resolver would otherwise answer itself (see [`special_use`]).
    Resolver(
        Box<TokioResolver>,
        Option<Box<NameServerPool<TokioRuntimeProvider>>>,
    ),
    /// No DNS at all: every name outside the overlay is a temperror. For tests and for
    /// auditing planned records on a machine without network.
    Offline,
}

/// Records from a zone file. Within its origin the overlay is authoritative, like the real
/// zone will be: a name or type it does not list does not exist.
pub struct Overlay {
    origin: Option<String>,
    records: HashMap<(String, Kind), Vec<Rr>>,
    cnames: HashMap<String, String>,
}

impl Overlay {
    pub fn load(path: &Path) -> Result<Overlay, DnsSetupError> {
        let text = std::fs::read_to_string(path).map_err(|source| DnsSetupError::ReadZone {
            path: path.to_owned(),
            source,
        })?;
        Overlay::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Overlay, DnsSetupError> {
        let zone = zone::parse(text).map_err(|message| DnsSetupError::ParseZone {
            path: path.to_owned(),
            message,
        })?;
        let mut records: HashMap<(String, Kind), Vec<Rr>> = HashMap::new();
        let mut cnames = HashMap::new();
        for r in zone.records {
            let (kind, rr) = match r.data {
                Data::Cname(target) => {
                    cnames.insert(r.name, target);
                    continue;
                }
                Data::Txt(t) => (Kind::Txt, Rr::Txt(t)),
                Data::A(a) => (Kind::A, Rr::A(a)),
                Data::Aaaa(a) => (Kind::Aaaa, Rr::Aaaa(a)),
                Data::Mx(p, h) => (Kind::Mx, Rr::Mx(p, h)),
                Data::Ptr(n) => (Kind::Ptr, Rr::Ptr(n)),
                Data::Other => continue,
            };
            records.entry((r.name, kind)).or_default().push(rr);
        }
        Ok(Overlay {
            origin: zone.origin,
            records,
            cnames,
        })
    }

    /// What the overlay says about `name`: records, a CNAME to follow, or nothing (the
    /// question goes upstream). Under its `$ORIGIN` the overlay is authoritative like the
    /// zone it stands for; outside it, only for the (name, type) pairs it lists, so a
    /// fragment of absolute names does not hide the rest of a live domain.
    fn answer(&self, name: &str, kind: Kind) -> Option<OverlayAnswer> {
        if let Some(target) = self.cnames.get(name) {
            return Some(OverlayAnswer::Cname(target.clone()));
        }
        let inside = self
            .origin
            .as_deref()
            .is_some_and(|o| name == o || name.ends_with(&format!(".{o}")));
        match self.records.get(&(name.to_owned(), kind)) {
            Some(rrs) => Some(OverlayAnswer::Records(rrs.clone())),
            None if inside => Some(OverlayAnswer::Records(Vec::new())),
            None => None,
        }
    }
}

enum OverlayAnswer {
    Records(Vec<Rr>),
    Cname(String),
}

fn fqdn(n: &Name) -> String {
    let mut s = n.to_ascii().to_ascii_lowercase();
    if !s.ends_with('.') {
        s.push('.');
    }
    s
}

/// The audit's DNS. Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct Dns {
    inner: Arc<Inner>,
}

struct Inner {
    upstream: Upstream,
    overlay: Option<Overlay>,
    cache: Mutex<HashMap<(String, Kind), Shared>>,
    queries: std::sync::atomic::AtomicUsize,
}

/// Where to send queries.
#[derive(Debug, Clone)]
pub enum Source {
    System,
    Nameserver(SocketAddr),
    Offline,
}

impl Source {
    /// Parses `IP` or `IP:PORT` (`[v6]:PORT` for IPv6).
    pub fn nameserver(text: &str) -> Result<Source, DnsSetupError> {
        let t = text.trim();
        if let Ok(sa) = t.parse::<SocketAddr>() {
            return Ok(Source::Nameserver(sa));
        }
        t.parse::<IpAddr>()
            .map(|ip| Source::Nameserver(SocketAddr::new(ip, 53)))
            .map_err(|_| DnsSetupError::Nameserver(text.to_owned()))
    }
}

impl Dns {
    pub fn new(source: &Source, overlay: Option<Overlay>) -> Result<Dns, DnsSetupError> {
        let mut opts = ResolverOpts::default();
        // A preflight should answer in seconds even when a server is down.
        opts.timeout = Duration::from_secs(3);
        opts.attempts = 2;
        // The audit wants to see what is published now, not what a cache remembers.
        opts.cache_size = 0;
        let upstream = match source {
            Source::Offline => Upstream::Offline,
            Source::System => {
                let (config, sys_opts) = hickory_resolver::system_conf::read_system_conf()
                    .map_err(|e| DnsSetupError::System(e.to_string()))?;
                opts.ndots = sys_opts.ndots;
                Upstream::Resolver(
                    Box::new(
                        TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
                            .with_options(opts)
                            .build()
                            .map_err(|e| DnsSetupError::System(e.to_string()))?,
                    ),
                    None,
                )
            }
            Source::Nameserver(addr) => {
                let mut udp = ConnectionConfig::udp();
                udp.port = addr.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = addr.port();
                let ns = NameServerConfig::new(addr.ip(), true, vec![udp, tcp]);
                // The named server answers everything, reverse lookups included: this
                // machine's hosts file (localhost, a test box's own name) is not the
                // domain's DNS, and hickory reads it by default.
                opts.use_hosts_file = ResolveHosts::Never;
                let tls = TlsConfig::new().map_err(|e| DnsSetupError::System(e.to_string()))?;
                let direct = NameServerPool::from_config(
                    [ns.clone()],
                    Arc::new(PoolContext::new(opts.clone(), tls)),
                    TokioRuntimeProvider::default(),
                );
                Upstream::Resolver(
                    Box::new(
                        TokioResolver::builder_with_config(
                            ResolverConfig::from_name_servers(vec![ns]),
                            TokioRuntimeProvider::default(),
                        )
                        .with_options(opts)
                        .build()
                        .map_err(|e| DnsSetupError::System(e.to_string()))?,
                    ),
                    Some(Box::new(direct)),
                )
            }
        };
        Ok(Dns {
            inner: Arc::new(Inner {
                upstream,
                overlay,
                cache: Mutex::new(HashMap::new()),
                queries: std::sync::atomic::AtomicUsize::new(0),
            }),
        })
    }

    /// How many distinct (name, type) questions were asked: the cache's proof of work.
    pub fn queries(&self) -> usize {
        self.inner
            .queries
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub async fn query(&self, name: &str, kind: Kind) -> Answer {
        let key = (normalize(name), kind);
        let cell = {
            let mut cache = self.inner.cache.lock().unwrap_or_else(|e| e.into_inner());
            cache.entry(key.clone()).or_default().clone()
        };
        cell.get_or_init(|| async {
            self.inner
                .queries
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.lookup(&key.0, kind).await.map(Arc::new)
        })
        .await
        .clone()
    }

    async fn lookup(&self, name: &str, kind: Kind) -> Result<Vec<Rr>, TempError> {
        self.lookup_depth(name, kind, 0).await
    }

    async fn lookup_depth(&self, name: &str, kind: Kind, depth: u8) -> Result<Vec<Rr>, TempError> {
        let temp = |detail: String| TempError {
            name: name.to_owned(),
            kind,
            detail,
        };
        let qname = if kind == Kind::Ptr {
            match name.trim_end_matches('.').parse::<IpAddr>() {
                Ok(ip) => Name::from(ip),
                Err(_) => return Err(temp("not an IP address".into())),
            }
        } else {
            Name::from_ascii(name).map_err(|e| temp(e.to_string()))?
        };
        if let Some(o) = &self.inner.overlay {
            match o.answer(&fqdn(&qname), kind) {
                Some(OverlayAnswer::Records(rrs)) => return Ok(rrs),
                // A selector CNAMEd to a provider's record, as ESPs ask for: follow it,
                // through the overlay or upstream, as a resolver would.
                Some(OverlayAnswer::Cname(target)) if depth < 8 => {
                    return Box::pin(self.lookup_depth(&target, kind, depth + 1)).await;
                }
                Some(OverlayAnswer::Cname(_)) => return Err(temp("CNAME chain too long".into())),
                None => {}
            }
        }
        let answers = match &self.inner.upstream {
            Upstream::Resolver(_, Some(direct)) if special_use(&qname) => {
                direct_lookup(direct, qname, kind).await
            }
            Upstream::Resolver(resolver, _) => {
                match resolver.lookup(qname, kind.record_type()).await {
                    Ok(l) => Ok(l.answers().to_vec()),
                    Err(e) => Err(e),
                }
            }
            Upstream::Offline => {
                return Err(temp("outside the zone overlay, and DNS is off".into()));
            }
        };
        let answers = match answers {
            Ok(a) => a,
            Err(NetError::Dns(DnsError::NoRecordsFound(_))) => return Ok(Vec::new()),
            Err(e) => return Err(temp(e.to_string())),
        };
        let mut out = Vec::new();
        for r in &answers {
            let rr = match (&r.data, kind) {
                (RData::TXT(t), Kind::Txt) => {
                    Rr::Txt(t.txt_data.iter().map(|s| s.to_vec()).collect())
                }
                (RData::A(a), Kind::A) => Rr::A(a.0),
                (RData::AAAA(a), Kind::Aaaa) => Rr::Aaaa(a.0),
                (RData::MX(mx), Kind::Mx) => Rr::Mx(mx.preference, fqdn(&mx.exchange)),
                (RData::PTR(p), Kind::Ptr) => Rr::Ptr(fqdn(&p.0)),
                // CNAMEs on the way are followed by the resolver; keep only the answers.
                _ => continue,
            };
            out.push(rr);
        }
        Ok(out)
    }

    /// Every TXT record at `name`, each joined from its strings.
    pub async fn txt(&self, name: &str) -> Result<Vec<Txt>, TempError> {
        Ok(self
            .query(name, Kind::Txt)
            .await?
            .iter()
            .filter_map(|r| match r {
                Rr::Txt(strings) => Some(Txt {
                    strings: strings.clone(),
                }),
                _ => None,
            })
            .collect())
    }

    /// A and AAAA together; `void` when both are empty.
    pub async fn ips(&self, name: &str) -> Result<Vec<IpAddr>, TempError> {
        let (v4, v6) = tokio::join!(self.ips_of(name, true), self.ips_of(name, false));
        Ok([v4?, v6?].concat())
    }

    /// Only the family a receiver checking `ip` asks for (RFC 7208 5.3: A for an IPv4
    /// client, AAAA for IPv6), so a failure of the other family does not count.
    pub async fn ips_of(&self, name: &str, v4: bool) -> Result<Vec<IpAddr>, TempError> {
        let kind = if v4 { Kind::A } else { Kind::Aaaa };
        Ok(self
            .query(name, kind)
            .await?
            .iter()
            .filter_map(|r| match r {
                Rr::A(ip) => Some(IpAddr::V4(*ip)),
                Rr::Aaaa(ip) => Some(IpAddr::V6(*ip)),
                _ => None,
            })
            .collect())
    }

    pub async fn mx(&self, name: &str) -> Result<Vec<(u16, String)>, TempError> {
        let mut mx: Vec<(u16, String)> = self
            .query(name, Kind::Mx)
            .await?
            .iter()
            .filter_map(|r| match r {
                Rr::Mx(p, h) => Some((*p, h.clone())),
                _ => None,
            })
            .collect();
        mx.sort();
        Ok(mx)
    }

    pub async fn ptr(&self, ip: IpAddr) -> Result<Vec<String>, TempError> {
        Ok(self
            .query(&ip.to_string(), Kind::Ptr)
            .await?
            .iter()
            .filter_map(|r| match r {
                Rr::Ptr(n) => Some(n.clone()),
                _ => None,
            })
            .collect())
    }
}

/// Names hickory's resolver answers itself without asking anyone (RFC 6761: `localhost`
/// and below, `127.in-addr.arpa` and `::1`'s reverse name). With a named nameserver they are
/// asked of it like any other name: its zones, not a library's defaults, are the answer.
fn special_use(name: &Name) -> bool {
    let n = fqdn(name);
    let under = |zone: &str| n == zone || n.ends_with(&format!(".{zone}"));
    under("localhost.")
        || under("127.in-addr.arpa.")
        || *name == Name::from(IpAddr::V6(Ipv6Addr::LOCALHOST))
}

/// One question sent straight to the named nameserver: its answer section, an empty one for
/// NXDOMAIN or NODATA, and an error for any other response code.
async fn direct_lookup(
    pool: &NameServerPool<TokioRuntimeProvider>,
    name: Name,
    kind: Kind,
) -> Result<Vec<hickory_resolver::proto::rr::Record>, NetError> {
    let query = Query::query(name, kind.record_type());
    let response = pool
        .lookup(query, DnsRequestOptions::default())
        .next()
        .await
        .ok_or_else(|| NetError::from("no response"))??;
    match response.response_code {
        ResponseCode::NoError | ResponseCode::NXDomain => Ok(response.answers.clone()),
        code => Err(NetError::from(format!("the nameserver answered {code}"))),
    }
}

/// One TXT record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Txt {
    pub strings: Vec<Vec<u8>>,
}

impl Txt {
    pub fn joined(&self) -> Vec<u8> {
        self.strings.concat()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.joined()).into_owned()
    }

    /// As it would appear in a zone file.
    pub fn zone_form(&self) -> String {
        self.strings
            .iter()
            .map(|s| format!("\"{}\"", String::from_utf8_lossy(s).replace('"', "\\\"")))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Lowercase, absolute (trailing dot).
pub fn normalize(name: &str) -> String {
    let mut n = name.trim().to_ascii_lowercase();
    if !n.ends_with('.') {
        n.push('.');
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZONE: &str = r#"$ORIGIN news.example.com.
$TTL 300
@        IN TXT "v=spf1 ip4:192.0.2.0/24 -all"
@        IN MX 10 mx.news.example.com.
mx       IN A 192.0.2.10
s1._domainkey IN TXT ( "v=DKIM1; k=rsa; "
                        "p=AAAA" )
"#;

    #[tokio::test]
    async fn overlay_is_authoritative_for_its_origin_and_offline_elsewhere() {
        let o = Overlay::parse(Path::new("t.zone"), ZONE).unwrap();
        let dns = Dns::new(&Source::Offline, Some(o)).unwrap();
        let txt = dns.txt("news.example.com").await.unwrap();
        assert_eq!(txt[0].text(), "v=spf1 ip4:192.0.2.0/24 -all");
        let dkim = dns.txt("S1._domainkey.news.example.com.").await.unwrap();
        assert_eq!(dkim[0].strings.len(), 2);
        assert_eq!(dkim[0].text(), "v=DKIM1; k=rsa; p=AAAA");
        // Inside the origin but not listed: does not exist (a void answer, not an error).
        assert!(dns.txt("_dmarc.news.example.com").await.unwrap().is_empty());
        assert_eq!(
            dns.mx("news.example.com").await.unwrap(),
            [(10, "mx.news.example.com.".to_owned())]
        );
        // Outside: the offline upstream makes it a temperror.
        assert!(dns.txt("example.org").await.is_err());
    }

    #[tokio::test]
    async fn each_question_is_asked_once() {
        let o = Overlay::parse(Path::new("t.zone"), ZONE).unwrap();
        let dns = Dns::new(&Source::Offline, Some(o)).unwrap();
        let (a, b) = tokio::join!(dns.txt("news.example.com"), dns.txt("NEWS.example.com."));
        assert_eq!(a.unwrap(), b.unwrap());
        assert_eq!(dns.queries(), 1);
    }

    #[test]
    fn rfc_6761_names_are_special_use() {
        let name = |n: &str| Name::from_ascii(n).unwrap();
        assert!(special_use(&name("localhost.")));
        assert!(special_use(&name("mx.LOCALHOST.")));
        assert!(special_use(&Name::from(IpAddr::V4(Ipv4Addr::new(
            127, 0, 0, 2
        )))));
        assert!(special_use(&Name::from(IpAddr::V6(Ipv6Addr::LOCALHOST))));
        assert!(!special_use(&name("notlocalhost.")));
        assert!(!special_use(&name("news.example.com.")));
        assert!(!special_use(&Name::from(IpAddr::V4(Ipv4Addr::new(
            192, 0, 2, 25
        )))));
    }

    #[test]
    fn nameserver_syntax() {
        assert!(
            matches!(Source::nameserver("127.0.0.1:5353"), Ok(Source::Nameserver(a)) if a.port() == 5353)
        );
        assert!(matches!(Source::nameserver("::1"), Ok(Source::Nameserver(a)) if a.port() == 53));
        assert!(Source::nameserver("dns.example").is_err());
    }
}
