//! What classifying a message needs besides the message: the campaign's journal, its
//! unsubscribe and VERP keys, and the time. Its own room so that the classifiers beneath
//! [`super::classify`] can take it without importing the module that calls them.

use super::known::Known;
use crate::message::verp::Verp;
use crate::unsubscribe::Unsubscriber;

/// What the classifier needs besides the message.
pub struct Context<'a> {
    pub known: &'a Known,
    pub unsubscribe: Option<&'a Unsubscriber>,
    /// The `[unsubscribe] mailto` address, lowercase.
    pub mailto: Option<String>,
    /// For the unsubscribe key's rotation: a previous key counts until its end date.
    pub now: std::time::SystemTime,
    /// The campaign's VERP, when it sends with `[campaign] verp`: bounces to a tagged address
    /// name their recipient.
    pub verp: Option<&'a Verp>,
}
