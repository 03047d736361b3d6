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
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
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
/// `pdftotext` is stopped once it has written this much, so a small PDF that draws the
/// same text thousands of times never has its output held whole.
const MAX_TEXT_BYTES: usize = 256 * 1024;

/// The most of a child's standard error kept: its last lines say what went wrong, and a
/// damaged file can make poppler complain for megabytes.
const MAX_STDERR_BYTES: usize = 8 * 1024;

/// `pdftoppm` writes its pages to files; anything it prints is kept only this far.
const MAX_RENDER_STDOUT_BYTES: usize = 64 * 1024;

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

/// Reads `pipe` until it ends or `max` bytes are kept.
async fn read_head(pipe: Option<impl AsyncRead + Unpin>, max: usize) -> std::io::Result<Vec<u8>> {
    let mut kept = Vec::new();
    let Some(mut pipe) = pipe else { return Ok(kept) };
    let mut chunk = [0u8; 8192];
    while kept.len() < max {
        let read = pipe.read(&mut chunk).await?;
        if read == 0 {
            break;
        }
        kept.extend_from_slice(&chunk[..read.min(max - kept.len())]);
    }
    Ok(kept)
}

/// Reads `pipe` to its end, keeping only its last `max` bytes.
async fn read_tail(pipe: Option<impl AsyncRead + Unpin>, max: usize) -> std::io::Result<Vec<u8>> {
    let mut tail = Vec::new();
    let Some(mut pipe) = pipe else { return Ok(tail) };
    let mut chunk = [0u8; 8192];
    loop {
        let read = pipe.read(&mut chunk).await?;
        if read == 0 {
            break;
        }
        tail.extend_from_slice(&chunk[..read]);
        if tail.len() > 2 * max {
            tail.drain(..tail.len() - max);
        }
    }
    if tail.len() > max {
        tail.drain(..tail.len() - max);
    }
    Ok(tail)
}

/// Runs `program` with `args`, `input` on its stdin, killed after `time_cap`, or as soon
/// as it has written `max_stdout` bytes (then it counts as a success: what is kept is the
/// beginning of its output, all the caller wants).
async fn run_child(
    program: &str,
    args: &[&str],
    input: Vec<u8>,
    time_cap: Duration,
    max_stdout: usize,
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
    let (mut stdin, stdout, stderr) = (child.stdin.take(), child.stdout.take(), child.stderr.take());
    let run = async move {
        let write = async move {
            if let Some(stdin) = stdin.as_mut() {
                // A child that stops reading early (a damaged file) closes the pipe: not an error here.
                let _ = stdin.write_all(&input).await;
            }
        };
        let head = async {
            let head = read_head(stdout, max_stdout).await;
            if head.as_ref().is_ok_and(|head| head.len() >= max_stdout) {
                // The rest is not wanted; stopping the child spares its cost.
                let _ = child.start_kill();
            }
            head
        };
        let ((), stdout, stderr) = tokio::join!(write, head, read_tail(stderr, MAX_STDERR_BYTES));
        let (stdout, stderr) = (stdout?, stderr?);
        let status = child.wait().await?;
        Ok::<_, std::io::Error>(ChildOutput {
            success: status.success() || stdout.len() >= max_stdout,
            stdout,
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        })
    };
    match tokio::time::timeout(time_cap, run).await {
        // The future owning the child is dropped: kill_on_drop ends it.
        Err(_) => Err(DocumentError::TimedOut(time_cap)),
        Ok(Err(error)) => Err(DocumentError::Damaged(format!("{program} failed: {error}"))),
        Ok(Ok(output)) => Ok(output),
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

/// `pdftotext`'s UTF-8 as a string, without copying it: a character the cap cut in two is
/// dropped, and only text that is not UTF-8 at all is copied with replacement characters.
fn into_text(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(error) if error.utf8_error().error_len().is_none() => {
            let valid = error.utf8_error().valid_up_to();
            let mut bytes = error.into_bytes();
            bytes.truncate(valid);
            String::from_utf8(bytes).unwrap_or_default()
        }
        Err(error) => String::from_utf8_lossy(error.as_bytes()).into_owned(),
    }
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
        let output = run_child(
            "pdftotext",
            &["-enc", "UTF-8", "-f", "1", "-l", last_page, "-", "-"],
            pdf,
            self.time_cap,
            MAX_TEXT_BYTES,
        )
        .await?;
        if !output.success {
            return Err(refused(&output.stderr));
        }
        Ok(into_text(output.stdout))
    }

    async fn rendered_pages(&self, pdf: Vec<u8>, last_page: &str) -> Result<Vec<Vec<u8>>, DocumentError> {
        let scratch = Scratch::create(&self.scratch)?;
        let prefix = scratch.0.join("page");
        let prefix = prefix.to_string_lossy();
        let side = RENDERED_PAGE_SIDE.to_string();
        let args = ["-f", "1", "-l", last_page, "-scale-to", &side, "-gray", "-", &prefix];
        let output = run_child("pdftoppm", &args, pdf, self.time_cap, MAX_RENDER_STDOUT_BYTES).await?;
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
    fn text_cut_by_the_cap_inside_a_character_loses_only_that_character() {
        let mut cut = "Café".as_bytes().to_vec();
        cut.pop();
        assert_eq!(into_text(cut), "Caf");
        assert_eq!(into_text(b"ok \xff ok".to_vec()), "ok \u{fffd} ok");
    }

    #[test]
    fn page_numbers_alone_are_not_a_text_layer() {
        assert!(!has_text("1\x0c2\x0c3\x0c"));
        assert!(has_text("Invoice 2026-114 for the garden shed"));
    }
}
