//! Integration tests: the real server on 127.0.0.1:0, signed requests as Twilio sends
//! them, and a real database: an SQLite file, or a fresh PostgreSQL database per test
//! when `TEST_DATABASE_URL` names a server.

mod backup;
mod category_search;
mod commands;
mod connections;
mod control_characters;
mod deploy;
mod fake_mem0;
mod fake_meta;
mod fake_openai;
mod fake_twilio;
mod group_commit;
mod health;
mod helpers;
mod jobs;
mod media;
mod mem0;
mod meta;
mod observability;
mod ocr;
mod ocr_fixtures;
mod operations;
mod process;
mod reminders;
mod reminders_process;
mod rest;
mod semantic;
mod twilio_adapters;
mod voice;
mod webhook;
