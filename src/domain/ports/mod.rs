//! The traits the core needs from the world, one file per concern. Adapters implement
//! them; use cases hold `Arc<dyn Port>`. Every error says whether trying again can help.
//!
//! The system of record is split the same way: a use case's transaction helpers ask for
//! the narrow transaction trait they touch ([`JobTransaction`], [`MemoryTransaction`],
//! …); [`UnitOfWork`] is all of them at once, what a transaction hands its work.

mod channel;
mod clock;
mod embedding;
mod indexing;
mod jobs;
mod media;
mod memories;
mod messaging;
#[cfg(test)]
mod mock;
mod queue_admin;
mod reads;
mod reminders;
mod search;
mod speech;
mod store;
mod text_recognition;
mod users;

pub use channel::*;
pub use clock::*;
pub use embedding::*;
pub use indexing::*;
pub use jobs::*;
pub use media::*;
pub use memories::*;
pub use messaging::*;
#[cfg(test)]
pub use mock::MockUnitOfWork;
pub use queue_admin::*;
pub use reads::*;
pub use reminders::*;
pub use search::*;
pub use speech::*;
pub use store::*;
pub use text_recognition::*;
pub use users::*;

/// Everything one transaction can do: the reads and writes of one unit of work (an
/// inbound message, a job's outcome), all inside ONE database transaction, so every
/// effect is committed together or none is. Implemented for every type that implements
/// the narrow transaction traits; a helper that touches one concern asks for that one.
pub trait UnitOfWork:
    UserTransaction + MemoryTransaction + JobTransaction + MediaTransaction + IndexTransaction + ReminderTransaction
{
}

impl<T> UnitOfWork for T where
    T: UserTransaction + MemoryTransaction + JobTransaction + MediaTransaction + IndexTransaction + ReminderTransaction
{
}
