//! `mailshot unsubscribe serve`: load each campaign, open each store once, and run the
//! endpoint until SIGTERM.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};

use super::Exit;
use crate::cli::ServeArgs;
use crate::clock::Clock;
use crate::config::Campaign;
use crate::serve::{self, App, Committer, Endpoint, Options};
use crate::suppression::Store;
use crate::unsubscribe::Unsubscriber;

pub fn run(args: &ServeArgs, clock: Arc<dyn Clock>) -> anyhow::Result<Exit> {
    let opts = Options {
        listen: args.listen,
        tls: args.tls_cert.clone().zip(args.tls_key.clone()),
        allow_plain_http: args.allow_plain_http,
        header_timeout: Duration::from_secs(args.header_timeout.max(1)),
        body_timeout: Duration::from_secs(args.body_timeout.max(1)),
        grace: Duration::from_secs(10),
    };
    opts.check()?;
    let mut committers: HashMap<PathBuf, Committer> = HashMap::new();
    let mut threads = Vec::new();
    let mut endpoints: Vec<Endpoint> = Vec::new();
    for path in &args.campaigns {
        let e = endpoint(path, &mut committers, &mut threads)?;
        if let Some(other) = endpoints
            .iter()
            .find(|o| o.path == e.path && o.fixed == e.fixed)
        {
            bail!(
                "{}: its unsubscribe URL has the same path and query as campaign {:?}'s, so a request could not tell them apart; give each campaign its own path (or a query such as ?list=name)",
                path.display(),
                other.campaign
            );
        }
        tracing::info!(
            "campaign {}: {} -> {}",
            e.campaign,
            e.path,
            e.committer.store.path().display()
        );
        endpoints.push(e);
    }
    drop(committers);
    let app = Arc::new(App {
        endpoints,
        clock,
        body_timeout: opts.body_timeout,
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve::run(opts, app))?;
    drop(runtime);
    // The commit threads end once the last request's record is written.
    for t in threads {
        let _ = t.join();
    }
    Ok(Exit::Success)
}

fn endpoint(
    path: &std::path::Path,
    committers: &mut HashMap<PathBuf, Committer>,
    threads: &mut Vec<std::thread::JoinHandle<()>>,
) -> anyhow::Result<Endpoint> {
    let campaign = Campaign::load(path)?;
    let show = path.display();
    let Some(cfg) = &campaign.unsubscribe else {
        bail!("{show}: no [unsubscribe] table: there is no URL to answer");
    };
    let Some(url) = &cfg.url else {
        bail!("{show}: [unsubscribe] has no url: the endpoint answers that https URL");
    };
    let Some(supp) = &campaign.suppression else {
        bail!(
            "{show}: no [suppression] file to record unsubscribes in; add\n  [suppression]\n  file = \"suppressed.txt\""
        );
    };
    let unsubscriber = Unsubscriber::new(cfg).with_context(|| format!("{show}: [unsubscribe]"))?;
    // Campaigns sharing a list share one commit thread, so their writes are batched together.
    let key = std::fs::canonicalize(supp.file.parent().unwrap_or(std::path::Path::new(".")))
        .map(|d| d.join(supp.file.file_name().unwrap_or_default()))
        .unwrap_or_else(|_| supp.file.clone());
    let committer = match committers.get(&key) {
        Some(c) => c.clone(),
        None => {
            let store = Arc::new(Store::create(&supp.file)?);
            let (c, t) = Committer::start(store);
            threads.push(t);
            committers.insert(key, c.clone());
            c
        }
    };
    let (url_path, fixed) = split_url(url);
    Ok(Endpoint {
        campaign: campaign.id.clone(),
        list: campaign
            .from
            .name
            .clone()
            .unwrap_or_else(|| campaign.from.email.to_string()),
        path: url_path,
        fixed,
        unsubscriber,
        committer,
    })
}

/// The path and the query pairs of an `https://host/path?query` URL (checked at load).
fn split_url(url: &str) -> (String, Vec<(String, String)>) {
    let rest = url.strip_prefix("https://").unwrap_or(url);
    let rest = rest.split('#').next().unwrap_or_default();
    let path_query = rest.find(['/', '?']).map_or("", |i| &rest[i..]);
    let (path, query) = path_query.split_once('?').unwrap_or((path_query, ""));
    let path = if path.is_empty() { "/" } else { path };
    let fixed = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    (path.to_owned(), fixed)
}

#[cfg(test)]
mod tests {
    #[test]
    fn url_paths() {
        let s = |u| super::split_url(u);
        assert_eq!(s("https://x.example"), ("/".into(), vec![]));
        assert_eq!(
            s("https://x.example?list=a"),
            ("/".into(), vec![("list".into(), "a".into())])
        );
        assert_eq!(s("https://x.example/u/news"), ("/u/news".into(), vec![]));
        assert_eq!(
            s("https://x.example:8443/u?list=n%20s"),
            ("/u".into(), vec![("list".into(), "n s".into())])
        );
    }
}
