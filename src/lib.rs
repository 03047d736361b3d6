//! whatsapp-memory: a WhatsApp number as a personal memory.
//!
//! Hexagonal: `domain` holds the rules and the ports, `app` the use cases, `adapters`
//! the real systems (SQLite/PostgreSQL, Twilio), `http` the poem routes. [`Application`]
//! is the one place where adapters are wired to ports.

pub mod adapters;
pub mod app;
pub mod config;
pub mod domain;
pub mod http;
pub mod simulate;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use poem::listener::{Acceptor, AcceptorExt, Listener, TcpListener};
use poem::Server;

use adapters::clock::SystemClock;
use adapters::db::{redact_url, Database};
use adapters::twilio::signature::SignatureValidator;
use app::ingest::IngestService;
use config::{Config, Environment};
use domain::ports::Clock;
use http::webhook::WebhookState;
use http::AppState;

/// A built service, bound to its port, ready to run.
pub struct Application {
    local_addr: SocketAddr,
    acceptor: poem::listener::BoxAcceptor,
    state: Arc<AppState>,
}

/// Connects the database (migrating it), and wires every adapter to its port.
///
/// # Errors
/// When the database cannot be opened or migrated.
pub async fn build_state(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<Arc<AppState>> {
    let database = Database::open(&config.database_url, true).await?;
    let repository = database.repository;
    let ingest = IngestService::new(repository.clone(), database.memory_store, clock, config.default_timezone);
    let webhook = WebhookState {
        signature: config.twilio_auth_token.clone().map(SignatureValidator::new),
        public_base_url: config.public_base_url.clone(),
    };
    Ok(Arc::new(AppState { ingest, repository, webhook }))
}

impl Application {
    /// Builds the service from `config` and binds its port (0 picks a free one).
    ///
    /// # Errors
    /// When the database cannot be prepared or the port cannot be bound.
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    /// As [`Application::build`], reading time from `clock` (tests pin it).
    ///
    /// # Errors
    /// As [`Application::build`].
    pub async fn build_with_clock(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        if config.twilio_auth_token.is_none() {
            // Config refuses this in production; say it loudly in development.
            tracing::warn!(
                "TWILIO_AUTH_TOKEN is not set: webhook signatures are NOT verified. \
                 Anyone who can reach /webhook can write memories. Set it before exposing the service."
            );
        }
        let state = build_state(config, clock).await?;
        let address = SocketAddr::new(config.host, config.port);
        let acceptor = TcpListener::bind(address)
            .into_acceptor()
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {address}: {e}"))?;
        let local_addr = acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().copied())
            .ok_or_else(|| anyhow::anyhow!("the listener has no socket address"))?;
        tracing::info!(
            %local_addr,
            database = %redact_url(&config.database_url),
            environment = ?config.environment,
            signatures = config.twilio_auth_token.is_some(),
            "whatsapp-memory is listening"
        );
        if config.environment == Environment::Development && config.public_base_url.is_none() {
            tracing::info!("PUBLIC_BASE_URL is not set: signatures are checked against the Host header");
        }
        Ok(Self { local_addr, acceptor: acceptor.boxed(), state })
    }

    /// The address actually bound (its port, when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` resolves, then lets requests in flight finish.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until_stopped(self, shutdown: impl std::future::Future<Output = ()> + Send) -> anyhow::Result<()> {
        Server::new_with_acceptor(self.acceptor)
            .run_with_graceful_shutdown(http::routes(self.state), shutdown, Some(Duration::from_secs(10)))
            .await?;
        Ok(())
    }
}
