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
    let secret_hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    keygen::write_private(&dir.join("unsubscribe.secret"), &format!("{secret_hex}\n"))?;

    println!("Created {}:", dir.display());
    println!("  campaign.toml, recipients.csv, message.txt.hbs, message.html.hbs");
    println!("  keys/{selector}.pem (RSA-2048, mode 600), unsubscribe.secret (mode 600)");
    println!();
    println!("Publish this DKIM record before sending:");
    println!(
        "{}",
        keygen::txt_record(selector, &domain, "rsa", &key.public_der)
    );
    println!();
    println!(
        "Then try it: mailshot send --dry-run {}",
        dir.join("campaign.toml").display()
    );
    Ok(Exit::Success)
}

fn write_new(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()))
        .with_context(|| format!("cannot create {}", path.display()))
}
