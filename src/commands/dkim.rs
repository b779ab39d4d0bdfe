//! `mailshot dkim keygen`: a new DKIM key (mode 600, never over an existing file), the TXT
//! record to publish, and the lines to add to campaign.toml.

use std::path::PathBuf;

use aws_lc_rs::rsa::KeySize;

use crate::cli::{KeyAlgorithm, KeygenArgs};
use crate::commands::Exit;
use crate::keygen;

pub fn run(args: &KeygenArgs) -> anyhow::Result<Exit> {
    let domain = idna::domain_to_ascii(args.domain.trim().trim_end_matches('.'))
        .map_err(|_| anyhow::anyhow!("--domain {:?} is not a domain name", args.domain))?;
    let selector = args.selector.trim().to_ascii_lowercase();
    if domain.is_empty() || !domain.contains('.') {
        anyhow::bail!("--domain {:?} is not a domain name", args.domain);
    }
    if selector.is_empty()
        || !selector
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        anyhow::bail!(
            "--selector {:?} must be a DNS label (letters, digits, '-', '_')",
            args.selector
        );
    }
    let (key, k, name) = match args.algorithm {
        KeyAlgorithm::Rsa2048 => (keygen::rsa(KeySize::Rsa2048)?, "rsa", "RSA-2048"),
        KeyAlgorithm::Rsa3072 => (keygen::rsa(KeySize::Rsa3072)?, "rsa", "RSA-3072"),
        KeyAlgorithm::Rsa4096 => (keygen::rsa(KeySize::Rsa4096)?, "rsa", "RSA-4096"),
        KeyAlgorithm::Ed25519 => (keygen::ed25519()?, "ed25519", "Ed25519"),
    };
    let path = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{selector}.{domain}.pem")));
    keygen::write_private(&path, &key.private_pem)?;
    eprintln!("wrote {} ({name}, mode 600)", path.display());
    outln!(
        "; Publish this record (a zone-file line; most DNS panels want the quoted text joined):"
    );
    outln!(
        "{}",
        keygen::txt_record(&selector, &domain, k, &key.public_der)
    );
    outln!();
    outln!("; Then add to campaign.toml:");
    outln!("; [[dkim]]");
    outln!("; domain = \"{domain}\"");
    outln!("; selector = \"{selector}\"");
    outln!("; private_key = \"{}\"", path.display());
    if k == "ed25519" {
        outln!(
            "; Ed25519 alone is not verified by every receiver (Gmail, for one): keep an RSA key beside it."
        );
    }
    Ok(Exit::Success)
}
