//! What an operator sees of the running service: logs (text or JSON, one request id per
//! request, the caller's span carried onto every thread that works for it) and metrics
//! (Prometheus). Used by every layer, so it names no adapter and no web framework.

pub mod blocking;
pub mod logging;
pub mod metrics;
