//! Reminders, the pure part: what "remind me Friday at 9 to call mom" asks for
//! ([`parse`]), when each occurrence falls in the user's zone across DST changes
//! ([`schedule`]), and how a reminder is said back to the user ([`format`]). Nothing here
//! reads a clock: `now` is always passed in, so every rule is tested at fixed instants.

pub mod format;
pub mod parse;
pub mod schedule;

pub use format::*;
pub use parse::*;
pub use schedule::*;

#[cfg(test)]
mod parse_tests;
