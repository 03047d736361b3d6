//! Implementations of the ports for real systems.

pub mod clock;
pub mod db;
pub mod imaging;
pub mod media_ports;
pub mod mem0;
pub mod storage;
pub mod twilio;
