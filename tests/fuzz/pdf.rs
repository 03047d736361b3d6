//! PDFs as users send them, through poppler in a child process under the service's
//! deadline: small text and scanned-looking PDFs, mutated. The text kept and the pages
//! rendered stay within their caps, and a PDF poppler cannot read is a clear refusal.

use std::time::Duration;

use whatsapp_memory::adapters::pdf::PopplerReader;
use whatsapp_memory::domain::ports::{DocumentContent, DocumentReader};

use crate::harness::{clearly_said, fuzz, Limits, TimeLimit, MIB};
use crate::mutate::{mutated, no_repair};
use crate::ocr_fixtures::{many_page_pdf, pdf, text_pdf};

/// The service's defaults: `OCR_TIMEOUT_SECONDS` and `PDF_MAX_PAGES`.
const TIME_CAP: Duration = Duration::from_secs(20);
const MAX_PAGES: u32 = 10;
/// The most text the reader keeps (src/adapters/pdf.rs).
const MAX_TEXT_BYTES: usize = 256 * 1024;
/// Ten pages rendered at most 2200 px on their longer side, one grey byte a pixel.
const PAGES_CAP_BYTES: usize = 10 * 2200 * 2200 + 16 * MIB;

/// One page of text, two pages of text, one page of shapes only (a "scan"), and thirty
/// empty pages (past `PDF_MAX_PAGES`).
fn pdf_seeds() -> Vec<Vec<u8>> {
    vec![
        text_pdf(&["Invoice 2026-114 for the garden shed"]),
        text_pdf(&["Pay the plumber on Friday", "Bluebird-5G password 1234"]),
        pdf(&[b"0.2 g 20 20 200 120 re f 1 g 40 40 50 50 re f".to_vec()], "<< >>", &[]),
        many_page_pdf(30),
    ]
}

fn read(bytes: &[u8]) -> Result<DocumentContent, whatsapp_memory::domain::ports::DocumentError> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    runtime.block_on(PopplerReader::new(TIME_CAP).read_pdf(bytes.to_vec(), MAX_PAGES))
}

#[test]
fn mutated_pdfs_give_bounded_text_or_pages_or_a_clear_refusal() {
    // The children run under the service's own 20 s deadline; a small PDF must not come
    // near it (wall time: the work is in poppler's process).
    let limits = Limits { time: TimeLimit::Wall(Duration::from_secs(5)), max_alloc_bytes: PAGES_CAP_BYTES };
    fuzz("pdf", 25, limits, mutated(pdf_seeds(), 4, no_repair), |bytes: &Vec<u8>| match read(bytes) {
        Ok(DocumentContent::Text(text)) if text.len() > MAX_TEXT_BYTES => {
            Err(format!("kept {} bytes of text", text.len()))
        }
        Ok(DocumentContent::Scanned(pages)) if pages.len() > MAX_PAGES as usize => {
            Err(format!("rendered {} pages", pages.len()))
        }
        Ok(_) => Ok(()),
        Err(error) => clearly_said(&error),
    });
}

#[test]
fn the_pdf_seeds_are_read_as_text_and_as_a_scan() {
    let seeds = pdf_seeds();
    assert!(matches!(read(&seeds[0]), Ok(DocumentContent::Text(text)) if text.contains("garden shed")));
    assert!(matches!(read(&seeds[2]), Ok(DocumentContent::Scanned(pages)) if pages.len() == 1));
    assert!(matches!(read(&seeds[3]), Ok(DocumentContent::Scanned(pages)) if pages.len() == MAX_PAGES as usize));
}
