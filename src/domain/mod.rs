//! The pure core: what a memory is, which commands people send, how time phrases map to
//! ranges, and the ports the core needs from the world. Nothing here knows poem, sea-orm,
//! rusqlite or reqwest.

pub mod command;
pub mod embedding;
pub mod fusion;
pub mod model;
pub mod perceptual;
pub mod ports;
pub mod query;
pub mod reminder;
pub mod reply;
pub mod text;
pub mod time_range;
