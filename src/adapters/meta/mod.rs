//! Meta's WhatsApp Cloud API (the Graph API): the webhook's signature and payload,
//! sending messages and fetching media. The facts it follows are in CONTRACTS.md
//! ("Meta WhatsApp Cloud API").

pub mod graph;
pub mod media;
pub mod payload;
pub mod sender;
pub mod signature;
