//! Implementations of the ports for real systems.

pub mod audio;
pub mod clock;
pub mod db;
pub mod imaging;
pub mod media_ports;
pub mod mem0;
pub mod meta;
pub mod minilm;
pub mod openai_stt;
pub mod outbound;
pub mod pdf;
pub mod storage;
pub mod tesseract;
pub mod twilio;
pub mod whisper;
