//! The `whatsapp-memory` command: serve (the default), migrate, reindex, openapi, simulate.

use clap::{Parser, Subcommand};

use whatsapp_memory::adapters::db::Database;
use whatsapp_memory::config::Config;
use whatsapp_memory::simulate::{self, SimulatedMessage};
use whatsapp_memory::Application;

#[derive(Parser)]
#[command(name = "whatsapp-memory", version, about = "A WhatsApp number as a personal memory")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service (migrates the database first).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Queue the embedding of every memory that has none yet (saved before semantic
    /// search was on, or by another model); a running server's workers do the work.
    Reindex {
        /// Instead: recompute, here and now, the perceptual hashes of stored images that
        /// an earlier hash function made (`make migrate` runs this after migrating).
        #[arg(long)]
        hashes: bool,
        /// Instead, queue the reading of the text of every photo and PDF saved before OCR
        /// was on (or whose reading failed).
        #[arg(long, conflicts_with = "hashes")]
        ocr: bool,
    },
    /// Write a consistent copy of the database (SQLite) and the media files, with a
    /// manifest of counts and checksums, into DIR (new or empty); safe while serving.
    Backup {
        /// Where the backup goes.
        dir: std::path::PathBuf,
    },
    /// Restore the backup in DIR into an empty data directory (DATABASE_URL's file must
    /// not exist yet, STORAGE_DIR must be empty), after checking it against its manifest.
    Restore {
        /// The backup to restore.
        dir: std::path::PathBuf,
    },
    /// Look at the job queue and put dead jobs back in it (as `/admin/jobs` does).
    Jobs {
        #[command(subcommand)]
        action: JobsAction,
    },
    /// Mem0 maintenance.
    Mem0 {
        #[command(subcommand)]
        action: Mem0Action,
    },
    /// Print the OpenAPI document.
    Openapi {
        /// json or yaml.
        #[arg(long, default_value = "json")]
        format: String,
    },
    /// Send a correctly signed webhook to a running server and print the reply.
    Simulate {
        /// The sender's number, e.g. +15551234567.
        #[arg(long)]
        from: String,
        /// The sender's WhatsApp profile name.
        #[arg(long)]
        name: Option<String>,
        /// The server's base URL (default: PUBLIC_BASE_URL, else http://APP_HOST:APP_PORT).
        #[arg(long)]
        url: Option<String>,
        /// A file to send as a media message (a photo, a voice note, …); the text becomes
        /// its caption. Simulate then plays Twilio's REST API on TWILIO_API_BASE_URL.
        #[arg(long)]
        media: Option<std::path::PathBuf>,
        /// `twilio` (signed form to /webhook) or `meta` (a signed Cloud API delivery to
        /// /whatsapp/cloud; simulate then plays the Graph API on META_GRAPH_BASE_URL to
        /// receive the reply).
        #[arg(long, default_value = "twilio")]
        channel: String,
        /// The message text (a caption with --media).
        #[arg(num_args = 0..)]
        text: Vec<String>,
    },
}

#[derive(Subcommand)]
enum JobsAction {
    /// Jobs, newest first: id, kind, state, attempts, due time, last error.
    List {
        /// queued, running, dead or done.
        #[arg(long)]
        state: Option<String>,
        /// Only jobs of this kind (media, send, transcribe, ocr, mem0_index, …).
        #[arg(long)]
        kind: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Put dead jobs back in the queue, due now, with a fresh set of attempts.
    Retry {
        /// The jobs' ids.
        #[arg(required = true)]
        ids: Vec<i64>,
    },
    /// Remove jobs that are not running; with --finished, remove every job finished
    /// more than JOB_RETENTION_DAYS ago (what a server does hourly).
    Purge {
        /// The jobs' ids.
        #[arg(required_unless_present = "finished")]
        ids: Vec<i64>,
        #[arg(long, conflicts_with = "ids")]
        finished: bool,
    },
}

#[derive(Subcommand)]
enum Mem0Action {
    /// Queue Mem0 copies of the memories saved before MEM0_API_KEY was set, and again of
    /// those whose copy failed; a running server sends them.
    Backfill,
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    // The service logs what it does; the one-shot commands only what went wrong.
    // whisper.cpp describes every tensor of the model it loads: only its warnings show.
    let default_filter = match cli.command {
        None | Some(Command::Serve) | Some(Command::Migrate) | Some(Command::Reindex { .. }) => "info,whisper_rs=warn",
        Some(_) => "warn",
    };
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::exit(1);
        }
    };
    whatsapp_memory::telemetry::logging::init(config.log_format, default_filter);
    if let Err(error) = run(cli, config).await {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli, config: Config) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let app = Application::build(&config).await?;
            app.run_until_stopped(shutdown_signal()).await
        }
        Command::Migrate => {
            Database::open(&config.database_url, true).await?;
            eprintln!("database is up to date");
            Ok(())
        }
        Command::Reindex { ocr: true, .. } => {
            let queued = whatsapp_memory::reindex_ocr(&config, chrono::Utc::now()).await?;
            eprintln!("queued {queued} photos and documents for reading their text; the server's workers read them");
            Ok(())
        }
        Command::Reindex { hashes: true, .. } => {
            let report = whatsapp_memory::rehash_images(&config).await?;
            eprintln!(
                "recomputed the hashes of {} images ({} kept their hash: file missing or unreadable)",
                report.rehashed, report.skipped
            );
            Ok(())
        }
        Command::Reindex { .. } => {
            let queued = whatsapp_memory::reindex(&config).await?;
            eprintln!("queued {queued} memories for embedding; the server's workers embed them");
            Ok(())
        }
        Command::Backup { dir } => {
            let manifest = whatsapp_memory::backup::backup(&config, &dir).await?;
            eprintln!(
                "backed up {} media files{} into {}",
                manifest.media.len(),
                describe_counts(&manifest),
                dir.display()
            );
            Ok(())
        }
        Command::Restore { dir } => {
            let manifest = whatsapp_memory::backup::restore(&config, &dir).await?;
            eprintln!(
                "restored {} media files{} from {}",
                manifest.media.len(),
                describe_counts(&manifest),
                dir.display()
            );
            Ok(())
        }
        Command::Jobs { action } => jobs(&config, action).await,
        Command::Mem0 { action: Mem0Action::Backfill } => {
            let queued = whatsapp_memory::mem0_backfill(&config, chrono::Utc::now()).await?;
            eprintln!("queued {queued} memories for Mem0; a running server's workers send them");
            Ok(())
        }
        Command::Openapi { format } => {
            let api = whatsapp_memory::http::api_service();
            match format.as_str() {
                "json" => println!("{}", api.spec()),
                // Our own writer: serde_yaml's leaves dates that YAML 1.1 readers misread.
                "yaml" => {
                    print!("{}", whatsapp_memory::http::openapi_yaml::to_yaml(&serde_json::from_str(&api.spec())?))
                }
                other => anyhow::bail!("--format must be json or yaml, not {other:?}"),
            }
            Ok(())
        }
        Command::Simulate { from, name, url, media, channel, text } => {
            let message = SimulatedMessage { from, profile_name: name, body: text.join(" "), base_url: url };
            if message.body.trim().is_empty() && media.is_none() {
                anyhow::bail!("give a message text, or --media FILE");
            }
            let replies = match channel.as_str() {
                "meta" => simulate::cloud::send(&config, message, media.as_deref()).await?,
                "twilio" => match media {
                    Some(path) => simulate::send_media(&config, message, &path).await?,
                    None => simulate::send(&config, message).await?,
                },
                other => anyhow::bail!("--channel must be twilio or meta, not {other:?}"),
            };
            if replies.is_empty() {
                println!("(no reply now)");
            }
            for reply in replies {
                println!("{reply}");
            }
            Ok(())
        }
    }
}

/// `whatsapp-memory jobs …`.
async fn jobs(config: &Config, action: JobsAction) -> anyhow::Result<()> {
    use whatsapp_memory::domain::model::JobId;
    use whatsapp_memory::domain::ports::{JobFilter, JobState};
    let queue = whatsapp_memory::queue_service(config).await?;
    match action {
        JobsAction::List { state, kind, limit } => {
            let state =
                match state.as_deref() {
                    None => None,
                    Some(name) => Some(JobState::parse(name).ok_or_else(|| {
                        anyhow::anyhow!("--state must be queued, running, dead or done, not {name:?}")
                    })?),
                };
            let jobs = queue.list(JobFilter { state, kind }, None, limit).await?;
            println!("{:>8}  {:<12} {:<8} {:>8}  {:<20}  last error", "id", "kind", "state", "attempts", "due");
            for job in &jobs {
                println!(
                    "{:>8}  {:<12} {:<8} {:>4}/{:<3}  {:<20}  {}",
                    job.id.0,
                    job.kind,
                    job.state.as_str(),
                    job.attempts,
                    job.max_attempts,
                    job.due_at.format("%Y-%m-%d %H:%M:%S"),
                    job.last_error.as_deref().unwrap_or("")
                );
            }
            eprintln!("{} jobs", jobs.len());
            Ok(())
        }
        JobsAction::Retry { ids } => {
            let mut changes = Vec::new();
            for id in ids {
                changes.push((id, queue.retry(JobId(id)).await?));
            }
            report_changes(&changes, "queued again", "only a dead job can be retried")
        }
        JobsAction::Purge { finished: true, .. } => {
            let pruned = queue.prune(config.job_retention).await?;
            eprintln!("removed {pruned} jobs finished more than {} days ago", config.job_retention.num_days());
            Ok(())
        }
        JobsAction::Purge { ids, .. } => {
            let mut changes = Vec::new();
            for id in ids {
                changes.push((id, queue.delete(JobId(id)).await?));
            }
            report_changes(&changes, "removed", "a running job cannot be removed")
        }
    }
}

/// Says what became of each job, and fails when any was left as it was.
fn report_changes(
    changes: &[(i64, whatsapp_memory::domain::ports::JobChange)],
    done: &str,
    refusal: &str,
) -> anyhow::Result<()> {
    use whatsapp_memory::domain::ports::JobChange;
    for (id, change) in changes {
        match change {
            JobChange::Changed => eprintln!("job {id} {done}"),
            JobChange::NotFound => eprintln!("job {id}: no such job"),
            JobChange::WrongState(state) => eprintln!("job {id} is {}: {refusal}", state.as_str()),
        }
    }
    let unchanged = changes.iter().filter(|(_, change)| *change != JobChange::Changed).count();
    anyhow::ensure!(unchanged == 0, "{unchanged} of {} jobs were left as they were", changes.len());
    Ok(())
}

/// ", and the database (12 memories, …)" for SQLite; for PostgreSQL a pointer to pg_dump.
fn describe_counts(manifest: &whatsapp_memory::backup::Manifest) -> String {
    if manifest.database_file.is_none() {
        return " (PostgreSQL: back up the database itself with pg_dump, see the README)".into();
    }
    let counts: Vec<String> = manifest.counts.iter().map(|(table, n)| format!("{n} {table}")).collect();
    format!(" and the database ({})", counts.join(", "))
}

/// Resolves on Ctrl-C or SIGTERM, so in-flight requests can finish.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
