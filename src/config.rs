//! One `Config`, read once from the environment (and an optional `.env`), validated at
//! start with a message that names the variable. Secrets never print.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use chrono_tz::Tz;

mod local_twilio;
mod meta;

pub use local_twilio::LoopbackTwilio;
use local_twilio::DEFAULT_TWILIO_API_BASE_URL;
pub use meta::{MetaConfig, DEFAULT_GRAPH_BASE_URL, DEFAULT_GRAPH_VERSION};

/// A value that must never reach a log: `Debug` and `Display` print `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that needs it (signing, auth headers).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Development relaxes safety nets that production must keep (unsigned webhooks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

/// Everything the service is configured with.
#[derive(Debug, Clone)]
pub struct Config {
    pub host: IpAddr,
    pub port: u16,
    pub environment: Environment,
    /// The zone for users who have not chosen one with `/tz`.
    pub default_timezone: Tz,
    pub storage_dir: PathBuf,
    pub database_url: String,
    pub twilio_account_sid: Option<String>,
    /// Without it, webhook signatures cannot be checked (allowed in development only).
    pub twilio_auth_token: Option<Secret>,
    pub twilio_whatsapp_number: Option<String>,
    /// Where Twilio's REST API lives; tests point it at a loopback fake.
    pub twilio_api_base_url: url::Url,
    /// The URL Twilio calls us at, when behind a proxy; signatures are computed over it.
    pub public_base_url: Option<url::Url>,
    pub mem0_api_key: Option<Secret>,
    pub mem0_base_url: url::Url,
    /// Let Mem0 infer facts from each memory (asynchronous adds) instead of storing it
    /// verbatim; Mem0's own default, so on unless `MEM0_INFER=false`.
    pub mem0_infer: bool,
    /// How long a search waits for Mem0 before answering from the local index alone.
    pub mem0_search_timeout: std::time::Duration,
    pub openai_api_key: Option<Secret>,
    /// Keys accepted by the REST API.
    pub api_keys: Vec<Secret>,
    /// Job queue workers started by `serve`.
    pub workers: usize,
    /// How long a claimed job belongs to its worker; a crashed worker's jobs run again
    /// after this.
    pub job_lease: std::time::Duration,
    /// The largest media item downloaded.
    pub media_max_bytes: u64,
    /// Images at most this Hamming distance apart (of 64 bits) are the same photo.
    pub near_duplicate_distance: u32,
    /// How voice notes become words.
    pub voice: VoiceConfig,
    /// Search by meaning with a local sentence-embedding model.
    pub semantic: SemanticConfig,
    /// How long clients may take and how many connections may be open.
    pub connections: ConnectionLimits,
    /// Reading the text in photos, screenshots and PDFs.
    pub ocr: OcrConfig,
    /// Each WhatsApp user's rate on the webhook (`USER_RATE_LIMIT`); `None`: off.
    pub user_rate_limit: Option<crate::app::rate_limit::RateLimit>,
    /// Each API key's rate on the REST API (`API_RATE_LIMIT`); `None`: off.
    pub api_rate_limit: Option<crate::app::rate_limit::RateLimit>,
    /// Finished jobs are removed this long after they finished.
    pub job_retention: chrono::Duration,
    /// How log lines are written (`LOG_FORMAT`).
    pub log_format: crate::telemetry::logging::LogFormat,
    /// Whether and where Prometheus metrics are served.
    pub metrics: MetricsConfig,
    /// When reminders fire and what happens when they cannot.
    pub reminders: ReminderConfig,
    /// Meta's WhatsApp Cloud API channel; `None` when its variables are not set.
    pub meta: Option<MetaConfig>,
}

/// `GET /metrics`: on by default, on the main port (behind `METRICS_TOKEN` when set) or
/// on a listener of its own (`METRICS_ADDR`, e.g. only on a private interface).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    /// `METRICS=off`: nothing recorded (the recorder is not even installed), no route.
    pub enabled: bool,
    /// A scraper must send `Authorization: Bearer <token>`.
    pub token: Option<Secret>,
    /// Serve /metrics here instead of on the main port.
    pub addr: Option<std::net::SocketAddr>,
}

/// Reminder settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReminderConfig {
    /// The time a date alone means ("remind me on 3 March …"), `REMINDER_DEFAULT_TIME`.
    pub default_time: chrono::NaiveTime,
    /// Later than this, a reminder says when it was due (`REMINDER_LATE_AFTER`).
    pub late_after: std::time::Duration,
    /// Later than this, a reminder is dropped and the user told (`REMINDER_MAX_LATE`).
    pub max_late: std::time::Duration,
    /// The approved Content template (`HX…`) reminders are sent with outside WhatsApp's
    /// 24-hour window (`TWILIO_REMINDER_CONTENT_SID`).
    pub template_sid: Option<String>,
}

/// Limits on client connections, so slow or idle clients cannot hold the server's file
/// descriptors: the defaults answer any real client and drop a slowloris in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// A request's head (request line and headers) must have arrived within this from the
    /// moment the server waits for it, however slowly its bytes trickle in.
    pub header_read_timeout: std::time::Duration,
    /// A connection with no request running and no byte moving for this long is closed
    /// (an idle keep-alive connection, a client that stopped mid-request).
    pub idle_timeout: std::time::Duration,
    /// Connections served at once; past it new connections get a quick answer and are
    /// closed (`/healthz` still answers, everything else 503).
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: std::time::Duration::from_secs(10),
            idle_timeout: std::time::Duration::from_secs(30),
            max_connections: 4096,
        }
    }
}

/// Text recognition (OCR) settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcrConfig {
    /// `OCR=off` turns it off: photos and documents are kept as before, without their text.
    pub enabled: bool,
    /// Tesseract's languages, `+`-joined (`eng`, `eng+deu`): any installed traineddata.
    pub languages: String,
    /// Larger images are scaled down to this many pixels before recognition (never refused).
    pub max_pixels: u64,
    /// Longest the recognition of one image (or one PDF page) may take.
    pub time_cap: std::time::Duration,
    /// How many pages of a PDF are read (text layer or rendered and recognised).
    pub pdf_max_pages: u32,
}

/// Semantic-search settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SemanticConfig {
    /// `SEMANTIC_SEARCH=off` turns it off: no embedding jobs, search by words only.
    pub enabled: bool,
    /// The all-MiniLM-L6-v2 folder (`make embed-model` provisions the default).
    pub model_dir: PathBuf,
    /// CPU threads background embedding uses (searches embed their query on a thread of
    /// their own).
    pub threads: usize,
    /// Most megabytes of users' vectors held in memory for search.
    pub cache_mb: usize,
}

/// Which speech-to-text turns voice notes into words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TranscriberChoice {
    /// whisper.cpp in-process, with a local ggml model: no account, nothing leaves the machine.
    Whisper,
    /// An OpenAI-compatible `/audio/transcriptions` server.
    OpenAi,
    /// None: voice notes are kept as audio only.
    Off,
}

/// Voice-note settings.
#[derive(Debug, Clone)]
pub struct VoiceConfig {
    pub transcriber: TranscriberChoice,
    /// The ggml model whisper.cpp loads (`make whisper-model` provisions the default).
    pub whisper_model_path: PathBuf,
    /// CPU threads one local transcription uses.
    pub whisper_threads: usize,
    /// Local transcriptions that may run at once.
    pub whisper_concurrency: usize,
    /// The spoken language (ISO 639-1), or `auto` for a multilingual model to detect it.
    pub language: String,
    /// `…/v1` of an OpenAI-compatible server.
    pub openai_base_url: url::Url,
    pub openai_model: String,
    /// Longer notes are kept as audio, not transcribed.
    pub max_seconds: u64,
}

/// Where `make embed-model` puts the sentence-embedding model, relative to the working
/// directory.
pub const DEFAULT_EMBED_MODEL_DIR: &str = "models/all-minilm-l6-v2";

/// Where `make whisper-model` puts the model, relative to the working directory.
pub const DEFAULT_WHISPER_MODEL: &str = "models/ggml-tiny.en.bin";

/// A configuration problem, naming the variable and what is wrong with it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid configuration: {variable}: {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

fn invalid(variable: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError { variable, problem: problem.into() }
}

/// The embedded default: an SQLite file under `./data`, created when missing.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://./data/whatsapp-memory.db?mode=rwc";

impl Config {
    /// Reads `.env` (without overriding the real environment), then the environment.
    ///
    /// # Errors
    /// The first variable with a bad value, or a missing one production needs.
    pub fn from_env() -> Result<Self, ConfigError> {
        let _ = dotenvy::dotenv();
        let vars: HashMap<String, String> = std::env::vars().collect();
        Self::from_lookup(|name| vars.get(name).cloned())
    }

    /// Builds a config from any source of variables (tests pass a map). Empty values
    /// count as unset, as in most `.env` files.
    ///
    /// # Errors
    /// As [`Config::from_env`].
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());

        let host = match get("APP_HOST") {
            None => IpAddr::from([127, 0, 0, 1]),
            Some(v) if v == "localhost" => IpAddr::from([127, 0, 0, 1]),
            Some(v) => v.parse().map_err(|_| invalid("APP_HOST", format!("{v:?} is not an IP address")))?,
        };
        let port = match get("APP_PORT") {
            None => 8000,
            Some(v) => v.parse().map_err(|_| invalid("APP_PORT", format!("{v:?} is not a port number (0-65535)")))?,
        };
        let environment = match get("ENV").as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("development") | Some("dev") => Environment::Development,
            Some("production") | Some("prod") => Environment::Production,
            Some(other) => return Err(invalid("ENV", format!("{other:?} is not development or production"))),
        };
        let default_timezone = match get("DEFAULT_TIMEZONE") {
            None => chrono_tz::UTC,
            Some(v) => v.parse::<Tz>().map_err(|_| {
                invalid("DEFAULT_TIMEZONE", format!("{v:?} is not an IANA time zone such as Europe/Berlin"))
            })?,
        };
        let storage_dir = PathBuf::from(get("STORAGE_DIR").unwrap_or_else(|| "./data/media".into()));
        let database_url = get("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.into());
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err(invalid("DATABASE_URL", "must start with sqlite:, postgres:// or postgresql://"));
        }

        let twilio_account_sid = get("TWILIO_ACCOUNT_SID");
        if let Some(sid) = &twilio_account_sid {
            if !(sid.len() == 34 && sid.starts_with("AC") && sid[2..].bytes().all(|b| b.is_ascii_hexdigit())) {
                return Err(invalid("TWILIO_ACCOUNT_SID", "must be AC followed by 32 hexadecimal characters"));
            }
        }
        let twilio_auth_token = get("TWILIO_AUTH_TOKEN").map(Secret::new);
        let meta = meta::meta_config(&get)?;
        if environment == Environment::Production && twilio_auth_token.is_none() && meta.is_none() {
            return Err(invalid(
                "TWILIO_AUTH_TOKEN",
                "is required in production unless Meta's WhatsApp Cloud API is configured: no channel is \
                 configured. Set TWILIO_AUTH_TOKEN (Twilio; without it webhook signatures cannot be verified), or \
                 META_APP_SECRET, META_VERIFY_TOKEN, META_ACCESS_TOKEN and META_PHONE_NUMBER_ID (Meta), or both",
            ));
        }
        let twilio_whatsapp_number =
            get("TWILIO_WHATSAPP_NUMBER").map(|v| v.trim_start_matches("whatsapp:").to_string());
        if let Some(number) = &twilio_whatsapp_number {
            if !is_e164(number) {
                return Err(invalid(
                    "TWILIO_WHATSAPP_NUMBER",
                    format!("{number:?} is not an E.164 number such as +14155238886"),
                ));
            }
        }
        let twilio_api_base_url =
            parse_url("TWILIO_API_BASE_URL", get("TWILIO_API_BASE_URL"), DEFAULT_TWILIO_API_BASE_URL)?;
        let public_base_url = match get("PUBLIC_BASE_URL") {
            None => None,
            Some(v) => Some(parse_url("PUBLIC_BASE_URL", Some(v), "")?),
        };
        let mem0_base_url = parse_url("MEM0_BASE_URL", get("MEM0_BASE_URL"), "https://api.mem0.ai")?;
        let mem0_infer = parse_bool("MEM0_INFER", get("MEM0_INFER"), true)?;
        let mem0_search_timeout =
            parse_number("MEM0_SEARCH_TIMEOUT_MS", get("MEM0_SEARCH_TIMEOUT_MS"), 800, 10..=30_000)?;
        let api_keys = get("API_KEYS")
            .map(|v| v.split(',').map(str::trim).filter(|k| !k.is_empty()).map(Secret::new).collect::<Vec<_>>())
            .unwrap_or_default();
        if api_keys.iter().any(|k| k.expose().len() < 16) {
            return Err(invalid("API_KEYS", "each key (comma-separated) must be at least 16 characters"));
        }
        if environment == Environment::Production && api_keys.is_empty() {
            return Err(invalid(
                "API_KEYS",
                "is required in production: without a key the REST API would be open to anyone",
            ));
        }

        let workers = parse_number("WORKERS", get("WORKERS"), 2, 1..=64)?;
        let job_lease = parse_number("JOB_LEASE_SECONDS", get("JOB_LEASE_SECONDS"), 300, 2..=86_400)?;
        let job_retention_days = parse_number("JOB_RETENTION_DAYS", get("JOB_RETENTION_DAYS"), 7, 1..=3650)?;
        let media_max_bytes =
            parse_number("MEDIA_MAX_BYTES", get("MEDIA_MAX_BYTES"), 16 * 1024 * 1024, 1024..=100 * 1024 * 1024)?;
        let near_duplicate_distance =
            parse_number("NEAR_DUPLICATE_DISTANCE", get("NEAR_DUPLICATE_DISTANCE"), 5, 0..=5)?;

        let voice = voice_config(&get)?;
        let semantic = SemanticConfig {
            enabled: parse_bool("SEMANTIC_SEARCH", get("SEMANTIC_SEARCH"), true)?,
            model_dir: PathBuf::from(get("EMBED_MODEL_DIR").unwrap_or_else(|| DEFAULT_EMBED_MODEL_DIR.into())),
            threads: parse_number("EMBED_THREADS", get("EMBED_THREADS"), 1, 1..=64)? as usize,
            cache_mb: parse_number("EMBED_CACHE_MB", get("EMBED_CACHE_MB"), 512, 1..=1024 * 1024)? as usize,
        };
        let defaults = ConnectionLimits::default();
        let connections = ConnectionLimits {
            header_read_timeout: std::time::Duration::from_secs(parse_number(
                "HTTP_HEADER_TIMEOUT_SECONDS",
                get("HTTP_HEADER_TIMEOUT_SECONDS"),
                defaults.header_read_timeout.as_secs(),
                1..=300,
            )?),
            idle_timeout: std::time::Duration::from_secs(parse_number(
                "HTTP_IDLE_TIMEOUT_SECONDS",
                get("HTTP_IDLE_TIMEOUT_SECONDS"),
                defaults.idle_timeout.as_secs(),
                1..=3600,
            )?),
            max_connections: parse_number(
                "MAX_CONNECTIONS",
                get("MAX_CONNECTIONS"),
                defaults.max_connections as u64,
                1..=1_000_000,
            )? as usize,
        };
        let ocr = ocr_config(&get)?;
        let user_rate_limit = parse_rate("USER_RATE_LIMIT", get("USER_RATE_LIMIT"), "30/min:10")?;
        let api_rate_limit = parse_rate("API_RATE_LIMIT", get("API_RATE_LIMIT"), "20/s:40")?;
        let log_format = match get("LOG_FORMAT") {
            None => crate::telemetry::logging::LogFormat::default(),
            Some(v) => v.parse().map_err(|problem: String| invalid("LOG_FORMAT", problem))?,
        };
        let metrics = MetricsConfig {
            enabled: parse_bool("METRICS", get("METRICS"), true)?,
            token: get("METRICS_TOKEN").map(Secret::new),
            addr: match get("METRICS_ADDR") {
                None => None,
                Some(v) => Some(v.parse().map_err(|_| {
                    invalid("METRICS_ADDR", format!("{v:?} is not an address and port such as 127.0.0.1:9100"))
                })?),
            },
        };
        if metrics.token.as_ref().is_some_and(|t| t.expose().len() < 16) {
            return Err(invalid("METRICS_TOKEN", "must be at least 16 characters"));
        }
        let reminders = reminder_config(&get)?;
        let openai_api_key = get("OPENAI_API_KEY").map(Secret::new);
        if voice.transcriber == TranscriberChoice::OpenAi && openai_api_key.is_none() {
            return Err(invalid("OPENAI_API_KEY", "is required when TRANSCRIBER=openai"));
        }

        Ok(Self {
            host,
            port,
            environment,
            default_timezone,
            storage_dir,
            database_url,
            twilio_account_sid,
            twilio_auth_token,
            twilio_whatsapp_number,
            twilio_api_base_url,
            public_base_url,
            mem0_api_key: get("MEM0_API_KEY").map(Secret::new),
            mem0_base_url,
            mem0_infer,
            mem0_search_timeout: std::time::Duration::from_millis(mem0_search_timeout),
            openai_api_key,
            api_keys,
            workers: workers as usize,
            job_lease: std::time::Duration::from_secs(job_lease),
            media_max_bytes,
            near_duplicate_distance: near_duplicate_distance as u32,
            voice,
            semantic,
            connections,
            ocr,
            job_retention: chrono::Duration::days(job_retention_days as i64),
            user_rate_limit,
            api_rate_limit,
            log_format,
            metrics,
            reminders,
            meta,
        })
    }

    /// Twilio's REST credentials and sender number, when all three are set.
    pub fn twilio_rest(&self) -> Option<(String, Secret, String)> {
        Some((self.twilio_account_sid.clone()?, self.twilio_auth_token.clone()?, self.twilio_whatsapp_number.clone()?))
    }
}

fn reminder_config(get: &dyn Fn(&str) -> Option<String>) -> Result<ReminderConfig, ConfigError> {
    let default_time = match get("REMINDER_DEFAULT_TIME") {
        None => chrono::NaiveTime::from_hms_opt(9, 0, 0).unwrap_or_default(),
        Some(v) => chrono::NaiveTime::parse_from_str(&v, "%H:%M")
            .map_err(|_| invalid("REMINDER_DEFAULT_TIME", format!("{v:?} is not a time such as 09:00")))?,
    };
    let template_sid = get("TWILIO_REMINDER_CONTENT_SID");
    if let Some(sid) = &template_sid {
        if !(sid.len() == 34 && sid.starts_with("HX") && sid[2..].bytes().all(|b| b.is_ascii_hexdigit())) {
            return Err(invalid("TWILIO_REMINDER_CONTENT_SID", "must be HX followed by 32 hexadecimal characters"));
        }
    }
    Ok(ReminderConfig {
        default_time,
        late_after: parse_duration("REMINDER_LATE_AFTER", get("REMINDER_LATE_AFTER"), 600)?,
        max_late: parse_duration("REMINDER_MAX_LATE", get("REMINDER_MAX_LATE"), 24 * 3600)?,
        template_sid,
    })
}

/// A duration written as seconds, or with a unit: `90s`, `10m`, `24h`, `7d`.
fn parse_duration(
    variable: &'static str,
    value: Option<String>,
    default_seconds: u64,
) -> Result<std::time::Duration, ConfigError> {
    let Some(raw) = value else {
        return Ok(std::time::Duration::from_secs(default_seconds));
    };
    let (digits, unit) = raw.split_at(raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len()));
    let scale = match unit.trim() {
        "" | "s" => Some(1),
        "m" | "min" => Some(60),
        "h" => Some(3600),
        "d" => Some(86_400),
        _ => None,
    };
    digits
        .parse::<u64>()
        .ok()
        .zip(scale)
        .and_then(|(n, scale)| n.checked_mul(scale))
        .filter(|seconds| (1..=366 * 86_400).contains(seconds))
        .map(std::time::Duration::from_secs)
        .ok_or_else(|| invalid(variable, format!("{raw:?} is not a duration such as 90s, 10m or 24h")))
}

fn ocr_config(get: &dyn Fn(&str) -> Option<String>) -> Result<OcrConfig, ConfigError> {
    let languages = get("OCR_LANGUAGES").unwrap_or_else(|| "eng".into());
    let well_formed = languages.split('+').all(|language| {
        !language.is_empty() && language.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    });
    if !well_formed {
        return Err(invalid(
            "OCR_LANGUAGES",
            format!("{languages:?} is not Tesseract languages such as eng or eng+deu"),
        ));
    }
    Ok(OcrConfig {
        enabled: parse_bool("OCR", get("OCR"), true)?,
        languages,
        max_pixels: parse_number("OCR_MAX_PIXELS", get("OCR_MAX_PIXELS"), 12_000_000, 100_000..=40_000_000)?,
        time_cap: std::time::Duration::from_secs(parse_number(
            "OCR_TIMEOUT_SECONDS",
            get("OCR_TIMEOUT_SECONDS"),
            20,
            1..=600,
        )?),
        pdf_max_pages: parse_number("PDF_MAX_PAGES", get("PDF_MAX_PAGES"), 10, 1..=1000)? as u32,
    })
}

fn voice_config(get: &dyn Fn(&str) -> Option<String>) -> Result<VoiceConfig, ConfigError> {
    let transcriber = match get("TRANSCRIBER").as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("whisper") => TranscriberChoice::Whisper,
        Some("openai") => TranscriberChoice::OpenAi,
        Some("none") | Some("off") => TranscriberChoice::Off,
        Some(other) => return Err(invalid("TRANSCRIBER", format!("{other:?} is not whisper, openai or none"))),
    };
    let language = get("TRANSCRIBE_LANGUAGE").unwrap_or_else(|| "en".into()).to_ascii_lowercase();
    if !(language == "auto" || ((2..=3).contains(&language.len()) && language.bytes().all(|b| b.is_ascii_lowercase())))
    {
        return Err(invalid("TRANSCRIBE_LANGUAGE", format!("{language:?} is not auto or a language code such as en")));
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    Ok(VoiceConfig {
        transcriber,
        whisper_model_path: PathBuf::from(get("WHISPER_MODEL_PATH").unwrap_or_else(|| DEFAULT_WHISPER_MODEL.into())),
        // One core stays with the server: a transcription never stalls the webhook.
        whisper_threads: parse_number("WHISPER_THREADS", get("WHISPER_THREADS"), (cores - 1).clamp(1, 4), 1..=64)?
            as usize,
        whisper_concurrency: parse_number("WHISPER_CONCURRENCY", get("WHISPER_CONCURRENCY"), 1, 1..=16)? as usize,
        language,
        openai_base_url: parse_url("OPENAI_BASE_URL", get("OPENAI_BASE_URL"), "https://api.openai.com/v1")?,
        openai_model: get("OPENAI_TRANSCRIBE_MODEL").unwrap_or_else(|| "whisper-1".into()),
        max_seconds: parse_number("VOICE_NOTE_MAX_SECONDS", get("VOICE_NOTE_MAX_SECONDS"), 600, 1..=4 * 3600)?,
    })
}

fn parse_number(
    variable: &'static str,
    value: Option<String>,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, ConfigError> {
    let Some(raw) = value else {
        return Ok(default);
    };
    raw.parse::<u64>().ok().filter(|n| range.contains(n)).ok_or_else(|| {
        invalid(variable, format!("{raw:?} is not a whole number from {} to {}", range.start(), range.end()))
    })
}

/// A rate such as `30/min:10`, or `off`.
fn parse_rate(
    variable: &'static str,
    value: Option<String>,
    default: &str,
) -> Result<Option<crate::app::rate_limit::RateLimit>, ConfigError> {
    let raw = value.unwrap_or_else(|| default.to_string());
    if raw.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    crate::app::rate_limit::RateLimit::parse(&raw).map(Some).map_err(|problem| invalid(variable, problem))
}

fn parse_bool(variable: &'static str, value: Option<String>, default: bool) -> Result<bool, ConfigError> {
    match value.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None => Ok(default),
        Some("true" | "1" | "yes" | "on") => Ok(true),
        Some("false" | "0" | "no" | "off") => Ok(false),
        Some(other) => Err(invalid(variable, format!("{other:?} is not true or false"))),
    }
}

fn parse_url(variable: &'static str, value: Option<String>, default: &str) -> Result<url::Url, ConfigError> {
    let raw = value.unwrap_or_else(|| default.to_string());
    let url = url::Url::parse(&raw).map_err(|e| invalid(variable, format!("{raw:?} is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(invalid(variable, format!("{raw:?} must be an http(s) URL with a host")));
    }
    Ok(url)
}

/// `+` and 8 to 15 digits.
pub fn is_e164(number: &str) -> bool {
    number
        .strip_prefix('+')
        .is_some_and(|digits| (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Variables the service reads outside [`Config`] (the logger's filter), documented
    /// beside the others.
    const READ_ELSEWHERE: [&str; 1] = ["RUST_LOG"];

    /// The variables named in the first column of the README's "Configuration" table.
    fn readme_variables() -> std::collections::BTreeSet<String> {
        let readme = include_str!("../README.md");
        let section = readme.split("\n## Configuration").nth(1).expect("the README has a Configuration section");
        let section = section.split("\n## ").next().unwrap_or_default();
        section
            .lines()
            .filter_map(|line| line.strip_prefix("| `"))
            .filter_map(|rest| rest.split('`').next())
            .map(str::to_string)
            .collect()
    }

    /// The variables `.env.example` sets or shows commented out.
    fn env_example_variables() -> std::collections::BTreeSet<String> {
        include_str!("../.env.example")
            .lines()
            .filter_map(|line| line.trim_start_matches('#').split_once('='))
            .map(|(name, _)| name)
            .filter(|name| {
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
            })
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn the_readme_table_the_env_example_and_the_variables_read_agree() {
        let asked = std::sync::Mutex::new(std::collections::BTreeSet::new());
        let _ = Config::from_lookup(|name| {
            asked.lock().unwrap().insert(name.to_string());
            None
        });
        let mut read = asked.into_inner().unwrap();
        read.extend(READ_ELSEWHERE.map(str::to_string));
        let readme = readme_variables();
        assert_eq!(readme, read, "the README's table (left) and the variables the service reads (right) differ");
        assert_eq!(
            env_example_variables(),
            read,
            ".env.example (left) and the variables the service reads (right) differ"
        );
    }

    #[test]
    fn the_agreement_check_sees_a_missing_variable() {
        // The parsers really find names: a table or file without one would be caught.
        assert!(readme_variables().contains("DATABASE_URL"));
        assert!(env_example_variables().contains("DATABASE_URL"));
        assert!(readme_variables().len() >= 30);
    }

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_need_no_variables_at_all() {
        let c = config(&[]).unwrap();
        assert_eq!(c.port, 8000);
        assert_eq!(c.host.to_string(), "127.0.0.1");
        assert_eq!(c.environment, Environment::Development);
        assert_eq!(c.default_timezone, chrono_tz::UTC);
        assert_eq!(c.database_url, DEFAULT_DATABASE_URL);
        assert_eq!(c.twilio_api_base_url.as_str(), "https://api.twilio.com/");
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        assert_eq!(config(&[("APP_PORT", "eighty")]).unwrap_err().variable, "APP_PORT");
        assert_eq!(config(&[("DEFAULT_TIMEZONE", "Mars/Olympus")]).unwrap_err().variable, "DEFAULT_TIMEZONE");
        assert_eq!(config(&[("ENV", "staging")]).unwrap_err().variable, "ENV");
        assert_eq!(config(&[("DATABASE_URL", "mysql://x")]).unwrap_err().variable, "DATABASE_URL");
        assert_eq!(config(&[("TWILIO_ACCOUNT_SID", "AC123")]).unwrap_err().variable, "TWILIO_ACCOUNT_SID");
        assert_eq!(config(&[("PUBLIC_BASE_URL", "not a url")]).unwrap_err().variable, "PUBLIC_BASE_URL");
        assert_eq!(config(&[("API_KEYS", "short")]).unwrap_err().variable, "API_KEYS");
        assert_eq!(config(&[("WORKERS", "0")]).unwrap_err().variable, "WORKERS");
        assert_eq!(config(&[("MEDIA_MAX_BYTES", "lots")]).unwrap_err().variable, "MEDIA_MAX_BYTES");
        assert_eq!(config(&[("NEAR_DUPLICATE_DISTANCE", "9")]).unwrap_err().variable, "NEAR_DUPLICATE_DISTANCE");
        assert_eq!(config(&[("TRANSCRIBER", "siri")]).unwrap_err().variable, "TRANSCRIBER");
        assert_eq!(config(&[("TRANSCRIBE_LANGUAGE", "English")]).unwrap_err().variable, "TRANSCRIBE_LANGUAGE");
        assert_eq!(config(&[("WHISPER_THREADS", "0")]).unwrap_err().variable, "WHISPER_THREADS");
        assert_eq!(config(&[("VOICE_NOTE_MAX_SECONDS", "-1")]).unwrap_err().variable, "VOICE_NOTE_MAX_SECONDS");
        assert_eq!(config(&[("OPENAI_BASE_URL", "ftp://x")]).unwrap_err().variable, "OPENAI_BASE_URL");
        assert_eq!(config(&[("MEM0_INFER", "maybe")]).unwrap_err().variable, "MEM0_INFER");
        assert_eq!(config(&[("MEM0_SEARCH_TIMEOUT_MS", "0")]).unwrap_err().variable, "MEM0_SEARCH_TIMEOUT_MS");
    }

    #[test]
    fn semantic_search_is_on_with_the_provisioned_model_unless_turned_off() {
        let semantic = config(&[]).unwrap().semantic;
        assert!(semantic.enabled);
        assert_eq!(semantic.model_dir, PathBuf::from(DEFAULT_EMBED_MODEL_DIR));
        assert_eq!((semantic.threads, semantic.cache_mb), (1, 512));
        assert!(!config(&[("SEMANTIC_SEARCH", "off")]).unwrap().semantic.enabled);
        assert_eq!(config(&[("SEMANTIC_SEARCH", "maybe")]).unwrap_err().variable, "SEMANTIC_SEARCH");
        assert_eq!(config(&[("EMBED_THREADS", "0")]).unwrap_err().variable, "EMBED_THREADS");
    }

    #[test]
    fn voice_notes_are_transcribed_locally_in_english_by_default() {
        let voice = config(&[]).unwrap().voice;
        assert_eq!(voice.transcriber, TranscriberChoice::Whisper);
        assert_eq!(voice.whisper_model_path, PathBuf::from(DEFAULT_WHISPER_MODEL));
        assert_eq!(voice.language, "en");
        assert_eq!(voice.max_seconds, 600);
        assert_eq!(config(&[("TRANSCRIBER", "none")]).unwrap().voice.transcriber, TranscriberChoice::Off);
    }

    #[test]
    fn the_openai_transcriber_needs_a_key() {
        assert_eq!(config(&[("TRANSCRIBER", "openai")]).unwrap_err().variable, "OPENAI_API_KEY");
        let c = config(&[("TRANSCRIBER", "openai"), ("OPENAI_API_KEY", "sk-test")]).unwrap();
        assert_eq!(c.voice.openai_base_url.as_str(), "https://api.openai.com/v1");
    }

    #[test]
    fn mem0_infers_by_default_and_waits_800_ms_for_a_search() {
        let c = config(&[]).unwrap();
        assert!(c.mem0_infer);
        assert_eq!(c.mem0_search_timeout, std::time::Duration::from_millis(800));
        assert!(!config(&[("MEM0_INFER", "false")]).unwrap().mem0_infer);
    }

    #[test]
    fn production_refuses_to_start_without_an_auth_token() {
        let err = config(&[("ENV", "production")]).unwrap_err();
        assert_eq!(err.variable, "TWILIO_AUTH_TOKEN");
        let key = ("API_KEYS", "a-long-enough-api-key");
        assert!(config(&[("ENV", "production"), ("TWILIO_AUTH_TOKEN", "t0ken"), key]).is_ok());
    }

    #[test]
    fn production_starts_with_meta_alone_and_says_so_when_no_channel_is_configured() {
        let err = config(&[("ENV", "production")]).unwrap_err();
        assert!(err.problem.contains("no channel is configured"), "{}", err.problem);
        assert!(err.problem.contains("META_APP_SECRET"), "{}", err.problem);
        let meta = [
            ("ENV", "production"),
            ("API_KEYS", "a-long-enough-api-key"),
            ("META_APP_SECRET", "s"),
            ("META_VERIFY_TOKEN", "v"),
            ("META_ACCESS_TOKEN", "t"),
            ("META_PHONE_NUMBER_ID", "1065"),
        ];
        let c = config(&meta).unwrap();
        assert!(c.twilio_auth_token.is_none());
        assert_eq!(c.meta.unwrap().phone_number_id, "1065");
    }

    #[test]
    fn production_refuses_to_start_without_an_api_key() {
        let err = config(&[("ENV", "production"), ("TWILIO_AUTH_TOKEN", "t0ken")]).unwrap_err();
        assert_eq!(err.variable, "API_KEYS");
    }

    #[test]
    fn secrets_never_print() {
        let c = config(&[("TWILIO_AUTH_TOKEN", "super-secret-token"), ("MEM0_API_KEY", "m0-secret")]).unwrap();
        let printed = format!("{c:?}");
        assert!(!printed.contains("super-secret-token"));
        assert!(!printed.contains("m0-secret"));
        assert!(printed.contains("[redacted]"));
    }

    #[test]
    fn reminders_default_to_nine_ten_minutes_and_a_day_and_read_durations_with_units() {
        let c = config(&[]).unwrap().reminders;
        assert_eq!(c.default_time, chrono::NaiveTime::from_hms_opt(9, 0, 0).unwrap());
        assert_eq!((c.late_after.as_secs(), c.max_late.as_secs(), c.template_sid), (600, 86_400, None));
        let c = config(&[
            ("REMINDER_DEFAULT_TIME", "07:30"),
            ("REMINDER_LATE_AFTER", "90s"),
            ("REMINDER_MAX_LATE", "2d"),
            ("TWILIO_REMINDER_CONTENT_SID", "HX0123456789abcdef0123456789abcdef"),
        ])
        .unwrap()
        .reminders;
        assert_eq!(c.default_time, chrono::NaiveTime::from_hms_opt(7, 30, 0).unwrap());
        assert_eq!((c.late_after.as_secs(), c.max_late.as_secs()), (90, 2 * 86_400));
        assert_eq!(config(&[("REMINDER_LATE_AFTER", "15")]).unwrap().reminders.late_after.as_secs(), 15);
        for (variable, value) in [
            ("REMINDER_DEFAULT_TIME", "9am"),
            ("REMINDER_LATE_AFTER", "10 minutes"),
            ("REMINDER_MAX_LATE", "0"),
            ("TWILIO_REMINDER_CONTENT_SID", "AC0123456789abcdef0123456789abcdef"),
        ] {
            assert_eq!(config(&[(variable, value)]).unwrap_err().variable, variable, "{value}");
        }
    }

    #[test]
    fn empty_values_count_as_unset() {
        assert_eq!(config(&[("APP_PORT", "")]).unwrap().port, 8000);
    }

    #[test]
    fn the_whatsapp_number_may_carry_the_whatsapp_prefix() {
        let c = config(&[("TWILIO_WHATSAPP_NUMBER", "whatsapp:+14155238886")]).unwrap();
        assert_eq!(c.twilio_whatsapp_number.as_deref(), Some("+14155238886"));
    }
}
