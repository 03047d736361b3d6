//! Twilio: the webhook's signature and TwiML answers.

pub mod form;
pub mod signature;
pub mod twiml;
