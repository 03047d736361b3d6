//! sea-orm entities: typed, backend-neutral reads of the tables the migration creates.

pub mod interactions;
pub mod media_assets;
pub mod memories;
pub mod users;
