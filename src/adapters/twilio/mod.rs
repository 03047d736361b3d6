//! Twilio: the webhook's signature, form and TwiML answers; sending messages and fetching
//! media through its REST API.

pub mod form;
pub mod media;
pub mod sender;
pub mod signature;
pub mod twiml;
mod unconfigured;

pub use unconfigured::UnconfiguredFetcher;
