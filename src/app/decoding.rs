//! Third-party decoders (the `image` crate, symphonia, `opus-decoder`) run on the blocking
//! pool behind `catch_unwind`: a file that makes one panic is hostile input like any
//! other, answered with a clear reason, never a crashed worker or a "task panicked".

use std::panic::{catch_unwind, AssertUnwindSafe};

/// Why a decoder gave no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecoderFailure {
    /// The decoder panicked on the file: its bytes are not something it can read.
    #[error("the decoder could not read it")]
    Panicked,
    /// The blocking pool dropped the work (the runtime is shutting down).
    #[error("decoding was cut short")]
    Cancelled,
}

/// Runs `decode` on the blocking pool, with the caller's span; a panic inside it is
/// caught, logged and returned as [`DecoderFailure::Panicked`].
///
/// # Errors
/// [`DecoderFailure`] when `decode` panicked or was never run to its end.
pub async fn run_decoder<T: Send + 'static>(decode: impl FnOnce() -> T + Send + 'static) -> Result<T, DecoderFailure> {
    let outcome = crate::telemetry::blocking::spawn_blocking(move || catch_unwind(AssertUnwindSafe(decode))).await;
    match outcome {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(panic)) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(panic = %message, "a decoder panicked on a file; it is treated as unreadable");
            Err(DecoderFailure::Panicked)
        }
        Err(_) => Err(DecoderFailure::Cancelled),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_decoder_that_returns_is_answered_with_its_result() {
        assert_eq!(run_decoder(|| 6 * 7).await, Ok(42));
    }

    #[tokio::test]
    async fn a_decoder_that_panics_is_an_unreadable_file_not_a_crash() {
        let outcome: Result<u32, _> = run_decoder(|| panic!("attempt to multiply with overflow")).await;
        assert_eq!(outcome, Err(DecoderFailure::Panicked));
        assert_eq!(DecoderFailure::Panicked.to_string(), "the decoder could not read it");
    }
}
