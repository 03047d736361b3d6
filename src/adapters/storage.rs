//! Content-addressed media files under `STORAGE_DIR`: each file is named by the SHA-256 of
//! its bytes and written atomically, so one copy serves everyone who sent the same bytes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

/// Longest file extension `store` accepts; real ones are 2 to 4 characters.
const MAX_EXTENSION_LEN: usize = 8;

/// Media files on local disk, laid out as `ab/cd/abcd…ef.ext` under one root directory
/// (two levels of fan-out keep directories small).
#[derive(Debug, Clone)]
pub struct MediaStorage {
    /// The directory every stored file lives under; nothing outside it is ever touched.
    root: PathBuf,
}

/// Where a stored file ended up, to record in the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFile {
    /// SHA-256 of the bytes, 64 lowercase hex digits: the exact-duplicate key.
    pub sha256: String,
    /// Path relative to the storage root, with `/` separators, e.g. `ab/cd/abcd…ef.jpg`.
    pub relative_path: String,
    /// Size in bytes.
    pub size: u64,
}

impl MediaStorage {
    /// Storage rooted at `root`; the directory is created on the first `store`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Writes `bytes` under their SHA-256 name with `extension` (no dot, e.g. `"jpg"`) and
    /// returns where they are.
    ///
    /// The write is atomic: the bytes go to a uniquely named temporary file in the target
    /// directory, are flushed to disk, and are renamed into place, so readers (and a restart
    /// after a crash) only ever see complete files. If a file of the same size is already
    /// there it is kept and the temporary file removed: storing the same bytes again, even
    /// from several tasks at once, leaves exactly one file. Hashing and disk I/O run on the
    /// blocking thread pool.
    ///
    /// # Errors
    /// `InvalidInput` when `extension` is not 1 to 8 ASCII letters or digits; otherwise any
    /// I/O error from creating directories, writing, syncing or renaming (a full disk, a
    /// read-only mount), which may succeed on retry once the cause is fixed.
    pub async fn store(&self, bytes: &[u8], extension: &str) -> io::Result<StoredFile> {
        validate_extension(extension)?;
        let root = self.root.clone();
        let bytes = bytes.to_vec();
        let extension = extension.to_owned();
        crate::telemetry::blocking::spawn_blocking(move || store_blocking(&root, &bytes, &extension))
            .await
            .map_err(io::Error::other)?
    }

    /// The directory every stored file is under.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The absolute path of a stored file from its `relative_path`.
    ///
    /// # Errors
    /// `InvalidInput` when `relative` is empty, absolute, or has a `..`, `.` or empty segment, so a
    /// path read back from the database or a request can never escape the storage root.
    pub fn absolute_path(&self, relative: &str) -> io::Result<PathBuf> {
        let path = Path::new(relative);
        // Check the raw segments too: `Path::components` silently drops inner `.` and `//`.
        let plain_segments = relative.split('/').all(|segment| !matches!(segment, "" | "." | ".."));
        let plain_components = path.components().all(|component| matches!(component, Component::Normal(_)));
        if !plain_segments || !plain_components {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("media path {relative:?} must be relative, without `.` or `..`"),
            ));
        }
        Ok(self.root.join(path))
    }
}

/// SHA-256 of `bytes` as 64 lowercase hex digits: the name of a stored file and the key for
/// finding exact duplicates.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The file extension to store media of `content_type` under (`"bin"` when unknown).
///
/// Parameters and case are ignored (`"Audio/OGG; codecs=opus"` is `ogg`), and the common
/// aliases (`image/jpg`, `audio/x-wav`, `text/x-vcard`, …) map like their standard names.
pub fn extension_for(content_type: &str) -> &'static str {
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    match essence.as_str() {
        "image/jpeg" | "image/jpg" | "image/pjpeg" => "jpg",
        "image/png" => "png",
        "image/webp" => "webp",
        "image/gif" => "gif",
        "audio/ogg" | "audio/opus" | "application/ogg" => "ogg",
        "audio/amr" | "audio/amr-wb" => "amr",
        "audio/mpeg" | "audio/mp3" => "mp3",
        "audio/aac" | "audio/x-aac" => "aac",
        "audio/mp4" | "audio/x-m4a" | "audio/m4a" => "m4a",
        "video/mp4" => "mp4",
        "video/3gpp" | "audio/3gpp" => "3gp",
        "application/pdf" => "pdf",
        "text/vcard" | "text/x-vcard" | "text/directory" => "vcf",
        "application/zip" | "application/x-zip-compressed" => "zip",
        "audio/wav" | "audio/x-wav" | "audio/wave" | "audio/vnd.wave" => "wav",
        _ => "bin",
    }
}

/// Refuses extensions that could change the path (separators, dots, `..`) or are absurd.
fn validate_extension(extension: &str) -> io::Result<()> {
    let valid = (1..=MAX_EXTENSION_LEN).contains(&extension.len())
        && extension.bytes().all(|byte| byte.is_ascii_alphanumeric());
    if valid {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("file extension {extension:?} must be 1 to {MAX_EXTENSION_LEN} ASCII letters or digits"),
        ))
    }
}

/// The blocking body of [`MediaStorage::store`].
fn store_blocking(root: &Path, bytes: &[u8], extension: &str) -> io::Result<StoredFile> {
    let sha256 = sha256_hex(bytes);
    let size = bytes.len() as u64;
    let relative_path = format!("{}/{}/{sha256}.{extension}", &sha256[..2], &sha256[2..4]);
    let final_path = root.join(&relative_path);
    let stored = StoredFile { sha256, relative_path, size };

    if existing_file(&final_path, size)? == Existing::Complete {
        return Ok(stored);
    }
    let directory = final_path.parent().expect("a stored path always has a parent directory");
    fs::create_dir_all(directory)?;

    let temp = TempFile::create(directory, &stored.sha256)?;
    {
        let mut file = temp.file.as_ref().expect("the file is open until persisted");
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    // Another writer may have finished while we wrote; its file is just as good.
    // One look at the path, so a rename landing between two looks cannot pass for damage.
    match existing_file(&final_path, size)? {
        Existing::Complete => return Ok(stored),
        Existing::Damaged => {
            tracing::warn!(path = %stored.relative_path, "replacing a stored media file whose size is wrong");
        }
        Existing::Missing => {}
    }
    temp.persist(&final_path)?;
    sync_directory(directory)?;
    Ok(stored)
}

/// What is at a content-addressed path already.
#[derive(Debug, PartialEq, Eq)]
enum Existing {
    Missing,
    /// The expected size: a same-named file is the same content.
    Complete,
    /// Something else: a file damaged outside our atomic writes.
    Damaged,
}

fn existing_file(path: &Path, size: u64) -> io::Result<Existing> {
    match fs::metadata(path) {
        Ok(metadata) if metadata.is_file() && metadata.len() == size => Ok(Existing::Complete),
        Ok(_) => Ok(Existing::Damaged),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(Existing::Missing),
        Err(error) => Err(error),
    }
}

/// Makes a completed rename durable: on POSIX systems the directory entry is only on disk
/// once the directory itself is synced.
fn sync_directory(directory: &Path) -> io::Result<()> {
    #[cfg(unix)]
    File::open(directory)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = directory;
    Ok(())
}

/// A temporary file next to its final location, removed on drop unless persisted, so a
/// failed or duplicate write leaves nothing behind.
struct TempFile {
    path: PathBuf,
    file: Option<File>,
    persisted: bool,
}

impl TempFile {
    /// Creates a new, uniquely named temporary file in `directory`. The name carries the
    /// process id and a per-process counter, and `create_new` guarantees no two writers (in
    /// this process or another) share a file even if a crashed run left one behind.
    fn create(directory: &Path, sha256: &str) -> io::Result<Self> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        loop {
            let sequence = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = directory.join(format!(".{sha256}.{}.{sequence}.tmp", std::process::id()));
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => return Ok(Self { path, file: Some(file), persisted: false }),
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(error) => return Err(error),
            }
        }
    }

    /// Atomically renames the file to `final_path` (replacing anything there).
    fn persist(mut self, final_path: &Path) -> io::Result<()> {
        self.file.take();
        fs::rename(&self.path, final_path)?;
        self.persisted = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.persisted {
            self.file.take();
            // Best effort: the only alternative is leaking a `.tmp` file, which is harmless.
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// Every regular file under `dir`, recursively, relative to it.
    fn files_under(dir: &Path) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let mut pending = vec![dir.to_path_buf()];
        while let Some(current) = pending.pop() {
            for entry in fs::read_dir(&current).expect("readable directory") {
                let path = entry.expect("directory entry").path();
                if path.is_dir() {
                    pending.push(path);
                } else {
                    found.push(path.strip_prefix(dir).expect("under dir").to_path_buf());
                }
            }
        }
        found
    }

    #[test]
    fn sha256_hex_matches_the_standard_test_vector() {
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[tokio::test]
    async fn a_stored_file_is_named_by_its_hash_under_two_fan_out_directories() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = MediaStorage::new(dir.path());
        let stored = storage.store(b"abc", "jpg").await.expect("stored");
        assert_eq!(stored.sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(stored.relative_path, format!("ba/78/{}.jpg", stored.sha256));
        assert_eq!(stored.size, 3);
        let path = storage.absolute_path(&stored.relative_path).expect("valid path");
        assert_eq!(fs::read(path).expect("readable"), b"abc");
    }

    #[tokio::test]
    async fn storing_the_same_bytes_twice_gives_the_same_path_and_one_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = MediaStorage::new(dir.path());
        let first = storage.store(b"the same photo", "jpg").await.expect("stored");
        let second = storage.store(b"the same photo", "jpg").await.expect("stored");
        assert_eq!(first, second);
        assert_eq!(files_under(dir.path()), vec![PathBuf::from(&first.relative_path)]);
    }

    #[tokio::test]
    async fn different_bytes_get_different_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = MediaStorage::new(dir.path());
        let one = storage.store(b"one", "ogg").await.expect("stored");
        let two = storage.store(b"two", "ogg").await.expect("stored");
        assert_ne!(one.relative_path, two.relative_path);
        assert_eq!(files_under(dir.path()).len(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_stores_of_the_same_bytes_leave_one_intact_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Arc::new(MediaStorage::new(dir.path()));
        let bytes: Arc<Vec<u8>> = Arc::new((0..2_000_000u32).map(|i| (i % 251) as u8).collect());
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let storage = Arc::clone(&storage);
                let bytes = Arc::clone(&bytes);
                tokio::spawn(async move { storage.store(&bytes, "mp4").await })
            })
            .collect();
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.expect("task ran").expect("stored"));
        }
        assert!(results.iter().all(|stored| *stored == results[0]));
        assert_eq!(files_under(dir.path()), vec![PathBuf::from(&results[0].relative_path)]);
        let on_disk = fs::read(storage.absolute_path(&results[0].relative_path).expect("valid")).expect("readable");
        assert_eq!(on_disk.len(), bytes.len());
        assert!(on_disk == *bytes, "stored file differs from the bytes sent");
    }

    #[tokio::test]
    async fn a_damaged_file_of_the_wrong_size_is_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = MediaStorage::new(dir.path());
        let stored = storage.store(b"complete content", "pdf").await.expect("stored");
        let path = storage.absolute_path(&stored.relative_path).expect("valid");
        fs::write(&path, b"compl").expect("truncate");
        storage.store(b"complete content", "pdf").await.expect("stored again");
        assert_eq!(fs::read(&path).expect("readable"), b"complete content");
        assert_eq!(files_under(dir.path()).len(), 1);
    }

    #[tokio::test]
    async fn an_extension_that_could_change_the_path_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = MediaStorage::new(dir.path());
        for extension in ["", "../x", "a/b", "jpg.", "tar.gz", "waytoolongext"] {
            let error = storage.store(b"bytes", extension).await.expect_err(extension);
            assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{extension:?}");
        }
        assert!(files_under(dir.path()).is_empty());
    }

    #[test]
    fn absolute_path_refuses_traversal_and_absolute_paths() {
        let storage = MediaStorage::new("/var/lib/memory");
        for relative in
            ["", "../etc/passwd", "ab/../../etc/passwd", "/etc/passwd", "./ab/cd/x.jpg", "ab/./x.jpg", "ab//x.jpg"]
        {
            let error = storage.absolute_path(relative).expect_err(relative);
            assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{relative:?}");
        }
        assert_eq!(
            storage.absolute_path("ab/cd/abcd.jpg").expect("valid"),
            PathBuf::from("/var/lib/memory/ab/cd/abcd.jpg")
        );
    }

    #[test]
    fn extension_for_maps_whatsapp_content_types() {
        let cases = [
            ("image/jpeg", "jpg"),
            ("image/png", "png"),
            ("image/webp", "webp"),
            ("image/gif", "gif"),
            ("audio/ogg; codecs=opus", "ogg"),
            ("audio/amr", "amr"),
            ("audio/mpeg", "mp3"),
            ("audio/aac", "aac"),
            ("audio/mp4", "m4a"),
            ("video/mp4", "mp4"),
            ("video/3gpp", "3gp"),
            ("application/pdf", "pdf"),
            ("text/vcard", "vcf"),
            ("text/x-vcard", "vcf"),
            ("application/zip", "zip"),
            ("audio/wav", "wav"),
            ("Image/JPEG", "jpg"),
            ("application/octet-stream", "bin"),
            ("", "bin"),
        ];
        for (content_type, extension) in cases {
            assert_eq!(extension_for(content_type), extension, "{content_type}");
        }
    }
}
