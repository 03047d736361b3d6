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

/// A 6 KB PDF whose ten pages draw one line of text 2,000 times each through nested
/// form XObjects: `pdftotext` writes about 500 KB for it, twice the text the reader keeps.
fn text_amplifying_pdf() -> Vec<u8> {
    let form = |content: String, uses: &str| {
        format!(
            "<< /Type /XObject /Subtype /Form /BBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> \
             /XObject << {uses} >> >> /Length {} >>\nstream\n{content}\nendstream",
            content.len()
        )
        .into_bytes()
    };
    let line = format!("BT /F1 1 Tf 0 0 Td ({}) Tj ET", "a".repeat(200));
    let lines: Vec<String> = (0..80).map(|k| format!("q 1 0 0 1 0 {:.1} cm /X0 Do Q", f64::from(k) * 1.5)).collect();
    let columns: Vec<String> = (0..5).map(|k| format!("q 1 0 0 1 {} 0 cm /X1 Do Q", k * 115)).collect();
    let blocks: Vec<String> = (0..5).map(|k| format!("q 1 0 0 1 10 {} cm /X2 Do Q", k * 125)).collect();
    let forms = [
        form(line, ""),
        form(lines.join(" "), "/X0 4 0 R"),
        form(columns.join(" "), "/X1 5 0 R"),
        form(blocks.join(" "), "/X2 6 0 R"),
    ];
    pdf(&vec![b"/X3 Do".to_vec(); 10], "<< /Font << /F1 3 0 R >> /XObject << /X3 7 0 R >> >>", &forms)
}

#[test]
fn a_pdf_whose_text_runs_past_the_cap_is_read_without_holding_the_rest() {
    let amplifying = text_amplifying_pdf();
    assert!(amplifying.len() < 10_000, "{} bytes", amplifying.len());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let (read, peak) = crate::alloc::peak_allocation(|| {
        runtime.block_on(PopplerReader::new(TIME_CAP).read_pdf(amplifying, MAX_PAGES))
    });
    assert!(matches!(&read, Ok(DocumentContent::Text(text)) if text.len() <= MAX_TEXT_BYTES), "{read:?}");
    // The 256 KiB kept, poppler's last words and the runtime's buffers (about 400 KiB),
    // not the ~500 KB poppler writes (770 KiB held before the output was capped).
    assert!(peak < 600 * 1024, "held {} KiB at once", peak / 1024);
}
