//! The `DocumentReader` port over poppler's `pdftotext` and `pdftoppm` (Debian's
//! poppler-utils), each run as a child process under a deadline and memory limits.
//!
//! Why poppler in a child process rather than a PDF crate in ours: a PDF is the most
//! hostile input the service takes (decompression bombs, deep object nesting, millions of
//! pages, crafted fonts). A child that crashes, loops or allocates without end is killed
//! at the deadline or stopped by its address-space limit, and the server and its worker go
//! on; a parser in our process would take the server down with it. Poppler also renders
//! scanned pages for OCR, which no maintained Rust crate does. Measured in `make bench`
//! (`pdftotext` on a 10-page text PDF, process start included).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::domain::ports::{DocumentContent, DocumentError, DocumentReader};

/// A text layer with fewer letters and digits than this is taken for a scan (page
/// numbers or a stamp over scanned pages), and the pages are rendered for OCR.
const MIN_TEXT_LAYER_CHARS: usize = 16;

/// Scanned pages are rendered as uncompressed grey PGM: on a 10-page PDF `pdftoppm` took
/// 1.0 s writing PGM against 17.8 s writing PNG (zlib), on the same loaded 2-core machine.
const RENDERED_PAGE_EXTENSION: &str = "pgm";

/// The longer side, in pixels, a scanned page is rendered at: an A4 page at ~190 dpi, so
/// that 10-point text is ~26 px high, and a page that claims to be a mile wide is still
/// bounded in pixels.
const RENDERED_PAGE_SIDE: u32 = 2200;

/// The most memory a poppler child may map.
const CHILD_ADDRESS_SPACE_BYTES: u64 = 1024 * 1024 * 1024;

/// The most text kept from a PDF's text layer: ten pages of dense text are ~40 KB.
const MAX_TEXT_BYTES: usize = 256 * 1024;

/// Reads PDFs with poppler.
pub struct PopplerReader {
    /// Longest one call to `pdftotext` or `pdftoppm` may run.
    time_cap: Duration,
    /// Where rendered pages are written before they are read back (then deleted).
    scratch: PathBuf,
}

impl PopplerReader {
    /// A reader whose children each run at most `time_cap`.
    pub fn new(time_cap: Duration) -> Self {
        Self { time_cap, scratch: std::env::temp_dir() }
    }

    /// Whether poppler's tools are installed (said at start when they are not).
    pub fn available() -> bool {
        std::process::Command::new("pdftotext").arg("-v").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
    }
}

/// What a finished child left.
struct ChildOutput {
    success: bool,
    stdout: Vec<u8>,
    stderr: String,
}

/// Runs `program` with `args`, `input` on its stdin, killed after `time_cap`.
async fn run_child(
    program: &str,
    args: &[&str],
    input: Vec<u8>,
    time_cap: Duration,
) -> Result<ChildOutput, DocumentError> {
    let mut command = Command::new(program);
    command.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    // SAFETY: between fork and exec only async-signal-safe calls (setrlimit) are made.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit { rlim_cur: CHILD_ADDRESS_SPACE_BYTES, rlim_max: CHILD_ADDRESS_SPACE_BYTES };
            libc::setrlimit(libc::RLIMIT_AS, &limit);
            Ok(())
        });
    }
    let mut child = command.spawn().map_err(|error| match error.kind() {
        std::io::ErrorKind::NotFound => {
            DocumentError::NotAvailable(format!("{program} is not installed (Debian: poppler-utils)"))
        }
        _ => DocumentError::NotAvailable(format!("{program} does not start: {error}")),
    })?;
    let mut stdin = child.stdin.take();
    let run = async move {
        if let Some(stdin) = stdin.as_mut() {
            // A child that stops reading early (a damaged file) closes the pipe: not an error here.
            let _ = stdin.write_all(&input).await;
        }
        drop(stdin);
        child.wait_with_output().await
    };
    match tokio::time::timeout(time_cap, run).await {
        // The future owning the child is dropped: kill_on_drop ends it.
        Err(_) => Err(DocumentError::TimedOut(time_cap)),
        Ok(Err(error)) => Err(DocumentError::Damaged(format!("{program} failed: {error}"))),
        Ok(Ok(output)) => Ok(ChildOutput {
            success: output.status.success(),
            stdout: output.stdout,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }),
    }
}

/// Poppler's complaint as our error: a password, else damage (its last line says what).
fn refused(stderr: &str) -> DocumentError {
    if stderr.contains("Incorrect password") || stderr.contains("encrypted") {
        return DocumentError::Encrypted;
    }
    let last = stderr.lines().rev().find(|line| !line.trim().is_empty()).unwrap_or("poppler could not read it");
    DocumentError::Damaged(last.trim().chars().take(160).collect())
}

/// Whether a text layer holds real text rather than a scan's page numbers.
fn has_text(text: &str) -> bool {
    text.chars().filter(|c| c.is_alphanumeric()).count() >= MIN_TEXT_LAYER_CHARS
}

/// A directory of its own for one rendering, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn create(parent: &Path) -> Result<Self, DocumentError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!("whatsapp-memory-pdf-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let path = parent.join(name);
        std::fs::create_dir_all(&path)
            .map_err(|error| DocumentError::NotAvailable(format!("cannot create {}: {error}", path.display())))?;
        Ok(Self(path))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl PopplerReader {
    async fn text_layer(&self, pdf: Vec<u8>, last_page: &str) -> Result<String, DocumentError> {
        let output =
            run_child("pdftotext", &["-enc", "UTF-8", "-f", "1", "-l", last_page, "-", "-"], pdf, self.time_cap)
                .await?;
        if !output.success {
            return Err(refused(&output.stderr));
        }
        let mut text = output.stdout;
        text.truncate(MAX_TEXT_BYTES);
        Ok(String::from_utf8_lossy(&text).into_owned())
    }

    async fn rendered_pages(&self, pdf: Vec<u8>, last_page: &str) -> Result<Vec<Vec<u8>>, DocumentError> {
        let scratch = Scratch::create(&self.scratch)?;
        let prefix = scratch.0.join("page");
        let prefix = prefix.to_string_lossy();
        let side = RENDERED_PAGE_SIDE.to_string();
        let args = ["-f", "1", "-l", last_page, "-scale-to", &side, "-gray", "-", &prefix];
        let output = run_child("pdftoppm", &args, pdf, self.time_cap).await?;
        if !output.success {
            return Err(refused(&output.stderr));
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(&scratch.0)
            .map_err(|error| DocumentError::Damaged(error.to_string()))?
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == RENDERED_PAGE_EXTENSION))
            .collect();
        // page-01.pgm … page-10.pgm: the zero-padded numbers sort as the pages do.
        files.sort();
        let mut pages = Vec::with_capacity(files.len());
        for file in files {
            pages.push(tokio::fs::read(&file).await.map_err(|error| DocumentError::Damaged(error.to_string()))?);
        }
        Ok(pages)
    }
}

#[async_trait]
impl DocumentReader for PopplerReader {
    async fn read_pdf(&self, pdf: Vec<u8>, max_pages: u32) -> Result<DocumentContent, DocumentError> {
        let last_page = max_pages.max(1).to_string();
        let text = self.text_layer(pdf.clone(), &last_page).await?;
        if has_text(&text) {
            return Ok(DocumentContent::Text(text));
        }
        Ok(DocumentContent::Scanned(self.rendered_pages(pdf, &last_page).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poppler_complaints_become_a_password_or_damage() {
        assert_eq!(refused("Command Line Error: Incorrect password\n"), DocumentError::Encrypted);
        assert_eq!(
            refused("Syntax Error: Couldn't find trailer dictionary\nSyntax Error: Couldn't read xref table\n"),
            DocumentError::Damaged("Syntax Error: Couldn't read xref table".into())
        );
    }

    #[test]
    fn page_numbers_alone_are_not_a_text_layer() {
        assert!(!has_text("1\x0c2\x0c3\x0c"));
        assert!(has_text("Invoice 2026-114 for the garden shed"));
    }
}
