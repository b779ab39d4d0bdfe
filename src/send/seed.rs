//! `send --seed ADDR`: one copy of the campaign's message to each seed address before the
//! campaign, so the user can `mailshot verify` a real delivery. A seed goes straight to the
//! transport: it is never journaled, reported, counted or checked against the suppression
//! list, and its row number is 0, which no CSV row has.

use std::convert::Infallible;

use crate::message::{Assembler, Prepared, RowError};
use crate::recipients::Recipient;
use crate::send::transport::{Accepted, DeliveryError, Transport};

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("--seed {given:?}: {why}")]
    Address { given: String, why: String },
    #[error("--seed needs a valid recipient in the file to build the message from")]
    NoSample,
    #[error("--seed {address}: {source}")]
    Build { address: String, source: RowError },
}

/// The seed recipients: the first valid row's fields (so the templates render as they will
/// for the campaign), with the seed's address in the address column.
pub fn recipients(
    seeds: &[String],
    first: Option<&Recipient>,
    columns: &[String],
    address_column: &str,
) -> Result<Vec<Recipient>, SeedError> {
    if seeds.is_empty() {
        return Ok(Vec::new());
    }
    let first = first.ok_or(SeedError::NoSample)?;
    let at = columns.iter().position(|c| c == address_column);
    seeds
        .iter()
        .map(|given| {
            let (address, name) =
                crate::address::parse(given).map_err(|why| SeedError::Address {
                    given: given.clone(),
                    why,
                })?;
            let mut fields = first.fields.clone();
            if let Some(i) = at
                && let Some(f) = fields.get_mut(i)
            {
                *f = address.to_string();
            }
            Ok(Recipient {
                row: 0,
                address,
                name,
                fields,
            })
        })
        .collect()
}

/// Builds each seed's message (the one path to bytes) before anything is sent.
pub fn build(assembler: &Assembler, seeds: Vec<Recipient>) -> Result<Vec<Prepared>, SeedError> {
    seeds
        .into_iter()
        .map(|r| {
            let address = r.address.to_string();
            assembler
                .assemble(r)
                .map_err(|source| SeedError::Build { address, source })
        })
        .collect()
}

/// Sends each seed copy in order, with nothing to journal first.
pub async fn send(
    transport: &Transport,
    copies: &[Prepared],
) -> Vec<Result<Accepted, DeliveryError>> {
    let mut out = Vec::new();
    for msg in copies {
        out.push(
            transport
                .send(msg, std::future::ready(Ok::<(), Infallible>(())))
                .await,
        );
    }
    out
}
