//! Work on the blocking pool (or any other thread) keeps the caller's span: a log line
//! written there names the same request id, message sid or job as the caller's own.
//! `tokio::task::spawn_blocking` alone starts the closure with no span at all.

use tokio::task::JoinError;

/// Runs `work` on tokio's blocking pool inside the caller's current span, logging to the
/// caller's subscriber (the global one in the service; a test's scoped one in tests).
///
/// # Errors
/// [`JoinError`] when `work` panicked or the runtime is shutting down.
pub async fn spawn_blocking<T, F>(work: F) -> Result<T, JoinError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let carried = Carried::current();
    tokio::task::spawn_blocking(move || carried.in_scope(work)).await
}

/// The caller's span and subscriber, to enter on another thread (the SQLite writer's,
/// the blocking pool's).
#[derive(Clone)]
pub struct Carried {
    span: tracing::Span,
    dispatch: tracing::Dispatch,
}

impl Carried {
    /// What the calling thread is in now.
    pub fn current() -> Self {
        Self { span: tracing::Span::current(), dispatch: tracing::dispatcher::get_default(Clone::clone) }
    }

    /// Runs `work` in the carried span, on whatever thread calls this.
    pub fn in_scope<T>(&self, work: impl FnOnce() -> T) -> T {
        tracing::dispatcher::with_default(&self.dispatch, || self.span.in_scope(work))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing::subscriber::with_default;
    use tracing_subscriber::layer::SubscriberExt;

    /// Records the name of the span each event was written in.
    #[derive(Clone, Default)]
    struct SpanOfEvents(Arc<Mutex<Vec<Option<String>>>>);

    impl<S> tracing_subscriber::Layer<S> for SpanOfEvents
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        fn on_event(&self, _event: &tracing::Event<'_>, context: tracing_subscriber::layer::Context<'_, S>) {
            let span = context.lookup_current().map(|span| span.name().to_string());
            self.0.lock().unwrap().push(span);
        }
    }

    #[test]
    fn a_line_written_on_the_blocking_pool_is_in_the_callers_span() {
        let events = SpanOfEvents::default();
        let subscriber = tracing_subscriber::registry().with(events.clone());
        with_default(subscriber, || {
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            runtime.block_on(async {
                let span = tracing::info_span!("caller");
                let _entered = span.enter();
                super::spawn_blocking(|| tracing::info!("on the blocking pool")).await.unwrap();
                // Without the helper: the same subscriber, but no span.
                let dispatch = tracing::dispatcher::get_default(Clone::clone);
                tokio::task::spawn_blocking(move || {
                    tracing::dispatcher::with_default(&dispatch, || tracing::info!("without the helper"))
                })
                .await
                .unwrap();
            });
        });
        assert_eq!(*events.0.lock().unwrap(), vec![Some("caller".to_string()), None]);
    }
}
