//! `mailshot init DIR`: writes a starter campaign (from `templates/`) and a new DKIM key.

use std::path::Path;

use anyhow::{Context, bail};

use crate::cli::InitArgs;
use crate::commands::Exit;
use crate::keygen;

const CAMPAIGN: &str = include_str!("../../templates/campaign.toml");
const RECIPIENTS: &str = include_str!("../../templates/recipients.csv");
const TEXT: &str = include_str!("../../templates/message.txt.hbs");
const HTML: &str = include_str!("../../templates/message.html.hbs");

pub fn run(args: &InitArgs, secret: &[u8]) -> anyhow::Result<Exit> {
    let dir = &args.dir;
    let domain = args
        .domain
        .trim()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    if !domain.contains('.') {
        bail!("--domain {domain:?} is not a domain name");
    }
    if dir.join("campaign.toml").exists() {
        bail!(
            "{} already holds a campaign.toml; init never overwrites a campaign",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir.join("keys"))
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let selector = "mailshot1";
    let key = keygen::rsa2048()?;
    keygen::write_private(
        &dir.join("keys").join(format!("{selector}.pem")),
        &key.private_pem,
    )?;
    let campaign = CAMPAIGN
        .replace("@DOMAIN@", &domain)
        .replace("@SELECTOR@", selector);
    write_new(&dir.join("campaign.toml"), &campaign)?;
    write_new(&dir.join("recipients.csv"), RECIPIENTS)?;
    write_new(&dir.join("message.txt.hbs"), TEXT)?;
    write_new(&dir.join("message.html.hbs"), HTML)?;
    let record = keygen::txt_record(selector, &domain, "rsa", &key.public_der);
    write_new(&dir.join("planned.zone"), &planned_zone(&domain, &record))?;
    let secret_hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    keygen::write_private(&dir.join("unsubscribe.secret"), &format!("{secret_hex}\n"))?;

    outln!("Created {}:", dir.display());
    outln!("  campaign.toml, recipients.csv, message.txt.hbs, message.html.hbs");
    outln!("  keys/{selector}.pem (RSA-2048, mode 600), unsubscribe.secret (mode 600)");
    outln!("  planned.zone: the DNS records this campaign needs");
    outln!();
    outln!("Publish this DKIM record (and the rest of planned.zone) before sending:");
    outln!("{record}");
    outln!();
    let toml = dir.join("campaign.toml");
    let zone = dir.join("planned.zone");
    outln!(
        "Audit the planned records now: mailshot check --zone {} {}",
        zone.display(),
        toml.display()
    );
    outln!(
        "Try the whole pipeline:       mailshot send --dry-run --zone {} {}",
        zone.display(),
        toml.display()
    );
    Ok(Exit::Success)
}

/// The records the scaffold needs, as a zone file that `check --zone` can audit before they
/// are published.
fn planned_zone(domain: &str, dkim: &str) -> String {
    format!(
        "; DNS records for {domain}, written by mailshot init. Publish them, then audit the live\n\
         ; domain with `mailshot check campaign.toml`.\n\
         $ORIGIN {domain}.\n\
         $TTL 3600\n\
         ; SPF: add your relay's servers before -all (for example include:_spf.your-provider.example).\n\
         @ IN TXT \"v=spf1 -all\"\n\
         ; DKIM: the public half of keys/mailshot1.pem.\n\
         {dkim}\n\
         ; DMARC: start with monitoring; tighten once reports show all your mail aligned.\n\
         _dmarc IN TXT \"v=DMARC1; p=none; rua=mailto:dmarc-reports@{domain}\"\n"
    )
}

fn write_new(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()))
        .with_context(|| format!("cannot create {}", path.display()))
}
