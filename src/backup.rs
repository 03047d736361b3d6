//! `whatsapp-memory backup <dir>` and `restore <dir>`: a consistent copy of the memories
//! taken while the server runs, and its return into an empty data directory.
//!
//! On SQLite the database is copied with `VACUUM INTO`, which reads one snapshot of the
//! file (WAL readers never block the writer, nor it them) into a compact new file. The
//! media files the snapshot refers to are copied beside it: a media file is written
//! before the row that names it commits, so every file the snapshot names exists. A
//! `manifest.json` records the row counts of the copy and the SHA-256 of every file;
//! `restore` checks all of them before it writes anything. On PostgreSQL the database is
//! `pg_dump`'s business (the README gives the steps): the command backs up the media files.
//!
//! Written by hand rather than with a backup tool because what belongs together is ours
//! to know: which files the snapshot refers to, and the counts that prove a restore.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::adapters::db::sqlite_file_path;
use crate::adapters::storage::MediaStorage;
use crate::config::Config;

/// The manifest's file name inside a backup directory.
pub const MANIFEST: &str = "manifest.json";
/// The database copy's file name inside a backup directory (SQLite only).
const DATABASE_COPY: &str = "whatsapp-memory.db";
/// The media files' folder inside a backup directory, laid out as under `STORAGE_DIR`.
const MEDIA_FOLDER: &str = "media";
/// The tables whose row counts prove a restore complete.
const COUNTED_TABLES: [&str; 5] = ["users", "interactions", "memories", "media_assets", "jobs"];
/// Bumped when the layout of a backup changes; `restore` refuses layouts it does not know.
const FORMAT: u32 = 1;

/// What a backup holds, written last so that a directory with a manifest is complete.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub created_at: DateTime<Utc>,
    /// `sqlite` (the database is in the backup) or `postgres` (media only; `pg_dump`).
    pub database: String,
    /// The SQLite copy, when there is one.
    pub database_file: Option<BackedUpFile>,
    /// Rows per table in the SQLite copy (empty for PostgreSQL).
    pub counts: BTreeMap<String, i64>,
    /// Every media file, by its path relative to `STORAGE_DIR`.
    pub media: Vec<BackedUpFile>,
}

/// One file of a backup and what its bytes must hash to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackedUpFile {
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

/// Writes a backup of the configured database and media into `dir` (created; it must be
/// empty if it exists) and returns its manifest.
///
/// # Errors
/// When `dir` is not empty, the database cannot be copied, or a file cannot be read or
/// written.
pub async fn backup(config: &Config, dir: &Path) -> anyhow::Result<Manifest> {
    ensure_empty_dir(dir, "the backup directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let storage = MediaStorage::new(config.storage_dir.clone());
    let manifest = if is_sqlite(&config.database_url) {
        let source = sqlite_file_path(&config.database_url)?;
        let dir = dir.to_path_buf();
        crate::telemetry::blocking::spawn_blocking(move || backup_sqlite(&source, &storage, &dir)).await??
    } else {
        let dir = dir.to_path_buf();
        crate::telemetry::blocking::spawn_blocking(move || backup_media_only(&storage, &dir)).await??
    };
    let text = serde_json::to_string_pretty(&manifest)?;
    std::fs::write(dir.join(MANIFEST), text)
        .with_context(|| format!("cannot write the manifest in {}", dir.display()))?;
    Ok(manifest)
}

/// Restores the backup in `dir` into the configured (empty) database file and media
/// directory, after checking every file against the manifest; returns the manifest.
///
/// # Errors
/// When the manifest is missing or of an unknown format, a file does not match it, the
/// target is not empty, or the restored counts differ from the manifest's.
pub async fn restore(config: &Config, dir: &Path) -> anyhow::Result<Manifest> {
    let text = std::fs::read_to_string(dir.join(MANIFEST))
        .with_context(|| format!("{} has no {MANIFEST}: not a complete backup", dir.display()))?;
    let manifest: Manifest = serde_json::from_str(&text).context("the manifest does not parse")?;
    ensure!(manifest.format == FORMAT, "the backup is of format {}, this version reads {FORMAT}", manifest.format);
    let config = config.clone();
    let dir = dir.to_path_buf();
    crate::telemetry::blocking::spawn_blocking(move || restore_blocking(&config, &dir, manifest)).await?
}

fn restore_blocking(config: &Config, dir: &Path, manifest: Manifest) -> anyhow::Result<Manifest> {
    let sqlite = is_sqlite(&config.database_url);
    match (manifest.database.as_str(), sqlite) {
        ("sqlite", true) | ("postgres", false) => {}
        (kind, _) => bail!("the backup is of a {kind} deployment; DATABASE_URL names another kind of database"),
    }
    // Everything is checked before anything is written.
    if let Some(file) = &manifest.database_file {
        verify(&dir.join(&file.path), file)?;
    }
    for file in &manifest.media {
        verify(&dir.join(MEDIA_FOLDER).join(&file.path), file)?;
    }
    ensure_empty_dir(&config.storage_dir, "STORAGE_DIR")?;
    let target = if sqlite {
        let target = sqlite_file_path(&config.database_url)?;
        ensure!(
            std::fs::metadata(&target).map(|m| m.len() == 0).unwrap_or(true),
            "{} already exists: restore only into an empty data directory",
            target.display()
        );
        Some(target)
    } else {
        None
    };

    let storage = MediaStorage::new(config.storage_dir.clone());
    for file in &manifest.media {
        let destination = storage.absolute_path(&file.path)?;
        copy_file(&dir.join(MEDIA_FOLDER).join(&file.path), &destination)?;
    }
    if let (Some(target), Some(file)) = (target, &manifest.database_file) {
        copy_file(&dir.join(&file.path), &target)?;
        let restored = count_rows(&target)?;
        ensure!(
            restored == manifest.counts,
            "the restored database holds {restored:?}, the manifest says {:?}",
            manifest.counts
        );
    }
    Ok(manifest)
}

fn backup_sqlite(source: &Path, storage: &MediaStorage, dir: &Path) -> anyhow::Result<Manifest> {
    let copy = dir.join(DATABASE_COPY);
    let connection = Connection::open_with_flags(source, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .with_context(|| format!("cannot open the database {}", source.display()))?;
    connection.busy_timeout(std::time::Duration::from_secs(30))?;
    // One read transaction: the copy is the database as of one commit.
    connection
        .execute("VACUUM INTO ?1", [copy.to_string_lossy().as_ref()])
        .with_context(|| format!("cannot copy the database into {}", copy.display()))?;
    drop(connection);
    let counts = count_rows(&copy)?;
    let paths = media_paths(&copy)?;
    let media = copy_media(storage, &paths, dir)?;
    Ok(Manifest {
        format: FORMAT,
        created_at: Utc::now(),
        database: "sqlite".into(),
        database_file: Some(describe(&copy, DATABASE_COPY)?),
        counts,
        media,
    })
}

fn backup_media_only(storage: &MediaStorage, dir: &Path) -> anyhow::Result<Manifest> {
    let root = storage.root().to_path_buf();
    let mut paths = Vec::new();
    collect_files(&root, &root, &mut paths)?;
    paths.sort();
    let media = copy_media(storage, &paths, dir)?;
    Ok(Manifest {
        format: FORMAT,
        created_at: Utc::now(),
        database: "postgres".into(),
        database_file: None,
        counts: BTreeMap::new(),
        media,
    })
}

/// Copies each of `paths` (relative to the storage root) into the backup's media folder
/// and describes it.
fn copy_media(storage: &MediaStorage, paths: &[String], dir: &Path) -> anyhow::Result<Vec<BackedUpFile>> {
    let mut files = Vec::with_capacity(paths.len());
    for path in paths {
        let source = storage.absolute_path(path)?;
        let destination = dir.join(MEDIA_FOLDER).join(path);
        copy_file(&source, &destination)?;
        files.push(describe(&destination, path)?);
    }
    Ok(files)
}

/// The distinct media files the database copy refers to.
fn media_paths(database: &Path) -> anyhow::Result<Vec<String>> {
    let connection = Connection::open_with_flags(database, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut statement = connection.prepare("SELECT DISTINCT local_path FROM media_assets ORDER BY local_path")?;
    let paths = statement.query_map([], |row| row.get(0))?.collect::<Result<Vec<String>, _>>()?;
    Ok(paths)
}

/// Rows per counted table of an SQLite file.
fn count_rows(database: &Path) -> anyhow::Result<BTreeMap<String, i64>> {
    let connection = Connection::open_with_flags(database, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut counts = BTreeMap::new();
    for table in COUNTED_TABLES {
        let count: i64 = connection.query_row(&format!("SELECT count(*) FROM {table}"), [], |row| row.get(0))?;
        counts.insert(table.to_string(), count);
    }
    Ok(counts)
}

/// Every file under `dir`, as `/`-separated paths relative to `root`; hidden files (the
/// storage's temporary files) are left out.
fn collect_files(root: &Path, dir: &Path, out: &mut Vec<String>) -> anyhow::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error).with_context(|| format!("cannot list {}", dir.display())),
    };
    for entry in entries {
        let path = entry?.path();
        if path.file_name().is_some_and(|name| name.to_string_lossy().starts_with('.')) {
            continue;
        }
        if path.is_dir() {
            collect_files(root, &path, out)?;
        } else if let Ok(relative) = path.strip_prefix(root) {
            let parts: Vec<String> =
                relative.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
            out.push(parts.join("/"));
        }
    }
    Ok(())
}

fn describe(path: &Path, name: &str) -> anyhow::Result<BackedUpFile> {
    let (bytes, sha256) = hash_file(path)?;
    Ok(BackedUpFile { path: name.to_string(), bytes, sha256 })
}

fn verify(path: &Path, expected: &BackedUpFile) -> anyhow::Result<()> {
    let (bytes, sha256) = hash_file(path).with_context(|| format!("the backup lacks {}", expected.path))?;
    ensure!(
        bytes == expected.bytes && sha256 == expected.sha256,
        "{} does not match the manifest (damaged or changed since the backup)",
        expected.path
    );
    Ok(())
}

/// Size and SHA-256 of a file, read in chunks (a database copy may be large).
fn hash_file(path: &Path) -> anyhow::Result<(u64, String)> {
    let mut file = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 1 << 16];
    let mut total = 0u64;
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        total += read as u64;
    }
    Ok((total, hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()))
}

fn copy_file(source: &Path, destination: &Path) -> anyhow::Result<()> {
    if let Some(parent) = destination.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::copy(source, destination)
        .with_context(|| format!("cannot copy {} to {}", source.display(), destination.display()))?;
    Ok(())
}

/// `dir` must not exist, or be an empty directory: a backup or restore never mixes with
/// what is already there.
fn ensure_empty_dir(dir: &Path, what: &str) -> anyhow::Result<()> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            ensure!(entries.next().is_none(), "{what} {} is not empty", dir.display());
            Ok(())
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error).with_context(|| format!("cannot read {what} {}", dir.display())),
    }
}

fn is_sqlite(url: &str) -> bool {
    url.starts_with("sqlite:")
}

/// The path of a backup's database copy, for tests and tools that open it.
pub fn database_copy(dir: &Path) -> PathBuf {
    dir.join(DATABASE_COPY)
}
