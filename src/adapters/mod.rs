//! Implementations of the ports for real systems.

pub mod clock;
pub mod db;
pub mod twilio;
