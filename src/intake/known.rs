//! What intake knows about the campaign: who was sent a message (from the journal) and the
//! Message-ID each of them got, so a bounce or a complaint is matched to a recipient only
//! through something mailshot itself put into the message, never through free text.

use std::collections::HashMap;

use crate::config::Campaign;
use crate::message::Composer;
use crate::send::journal::{self, JournalError, State};

/// A recipient the relay took a message for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub row: u64,
    /// Lowercase.
    pub address: String,
}

pub struct Known {
    pub campaign_id: String,
    /// `@<from domain>`, lowercase: the right-hand side of every Message-ID mailshot makes.
    id_suffix: String,
    by_address: HashMap<Box<str>, u64>,
    /// Row -> lowercase address, for a VERP tag (which names a row).
    by_row: HashMap<u64, Box<str>>,
    /// The 96-bit hash in this campaign's Message-IDs -> lowercase address. Kept as bytes:
    /// for 100,000 recipients the Message-ID strings alone would take several MB.
    by_message_id: HashMap<[u8; 12], Box<str>>,
    /// Recipients the relay accepted (the complaint rate's denominator).
    pub sent: u64,
}

/// Who a Message-ID belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdMatch {
    Ours(Recipient),
    /// Made by mailshot for another campaign (its id is the part before the first dot).
    OtherCampaign(String),
    /// Not a mailshot Message-ID at all, or one of this campaign for nobody it sent to.
    Unknown,
}

impl Known {
    /// Reads the campaign's journal. Recipients with a message in the relay's hands (sent, or
    /// in flight when a run died) count as sent to; refused or never-tried ones do not.
    pub fn load(campaign: &Campaign) -> Result<Known, JournalError> {
        let prior = journal::read(&campaign.run_dir().join("journal"))?;
        let composer = Composer::new(campaign);
        let mut known = Known::empty(campaign);
        for (address, (row, state)) in prior.states {
            if !matches!(
                state,
                State::Sent | State::InFlight | State::Skipped | State::Written
            ) {
                continue;
            }
            known.sent += u64::from(state == State::Sent || state == State::Written);
            if let Ok(parsed) = address.parse::<lettre::Address>()
                && let Some(hash) = known.hash_of(&composer.message_id(&parsed))
            {
                known.by_message_id.insert(hash, address.clone());
            }
            known.by_row.insert(row, address.clone());
            known.by_address.insert(address, row);
        }
        Ok(known)
    }

    pub fn empty(campaign: &Campaign) -> Known {
        Known {
            campaign_id: campaign.id.clone(),
            id_suffix: format!("@{}", campaign.sender_domain().to_ascii_lowercase()),
            by_address: HashMap::new(),
            by_row: HashMap::new(),
            by_message_id: HashMap::new(),
            sent: 0,
        }
    }

    /// The hash part of one of this campaign's Message-IDs (`<campaign>.<24 hex>@<domain>`).
    fn hash_of(&self, id: &str) -> Option<[u8; 12]> {
        let local = id.strip_suffix(&self.id_suffix)?;
        let (campaign, hex) = local.rsplit_once('.')?;
        if !campaign.eq_ignore_ascii_case(&self.campaign_id) || hex.len() != 24 {
            return None;
        }
        let mut out = [0u8; 12];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok()?;
        }
        Some(out)
    }

    /// The recipient, if this campaign sent to the address. The address is normalized as
    /// the recipient list's were (lowercase, the domain in punycode).
    pub fn recipient(&self, address: &str) -> Option<Recipient> {
        let a = crate::address::parse(address)
            .map(|(a, _)| a.to_string().to_lowercase())
            .unwrap_or_else(|_| address.trim().to_lowercase());
        self.by_address
            .get(a.as_str())
            .map(|&row| Recipient { row, address: a })
    }

    /// The recipient of a row this campaign sent to (a VERP tag names the row).
    pub fn row(&self, row: u64) -> Option<Recipient> {
        self.by_row.get(&row).map(|a| Recipient {
            row,
            address: a.to_string(),
        })
    }

    /// Matches a Message-ID (with or without angle brackets).
    pub fn message_id(&self, id: &str) -> IdMatch {
        let id = id
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_lowercase();
        if let Some(addr) = self.hash_of(&id).and_then(|h| self.by_message_id.get(&h)) {
            return self.recipient(addr).map_or(IdMatch::Unknown, IdMatch::Ours);
        }
        // `<campaign>.<24 hex>@<domain>`: the campaign id may contain dots, the hash does not.
        if let Some(local) = id.strip_suffix(&self.id_suffix)
            && let Some((campaign, hash)) = local.rsplit_once('.')
            && hash.len() == 24
            && hash.bytes().all(|b| b.is_ascii_hexdigit())
            && campaign != self.campaign_id.to_lowercase()
        {
            return IdMatch::OtherCampaign(campaign.to_owned());
        }
        IdMatch::Unknown
    }

    #[cfg(test)]
    pub fn add(&mut self, campaign: &Campaign, row: u64, address: &str) {
        let composer = Composer::new(campaign);
        let a = address.to_lowercase();
        let hash = self
            .hash_of(&composer.message_id(&a.parse().unwrap()).to_lowercase())
            .unwrap();
        self.by_message_id.insert(hash, a.clone().into_boxed_str());
        self.by_row.insert(row, a.clone().into_boxed_str());
        self.by_address.insert(a.into_boxed_str(), row);
        self.sent += 1;
    }
}
