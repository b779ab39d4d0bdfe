//! DMARC policy records and their discovery: the tag parser for RFC 9989 records (with the
//! tags RFC 7489 had and RFC 9989 removed), the RFC 9989 DNS tree walk, and the RFC 7489
//! public-suffix answer beside it, so callers can say where the two disagree.

pub mod discovery;
pub mod record;

pub use discovery::{Discovery, discover, relaxed};
pub use record::Tags;
