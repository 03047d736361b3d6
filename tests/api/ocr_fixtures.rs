//! Files for the OCR tests, made once per test run: phone screenshots rendered with
//! ImageMagick (UI chrome, coloured backgrounds, 12–40 px text, several fonts), a photo of
//! text at an angle, and PDFs written here byte by byte (a text layer, a scan, thousands
//! of pages, a password, a cut-off file). Needs ImageMagick, fonts-dejavu, fonts-liberation,
//! fonts-freefont-ttf and qpdf (`make test` and `.ci/run` install them).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const FONTS: &str = "/usr/share/fonts/truetype";

/// One rendered screenshot and the words drawn on it.
pub struct Screenshot {
    pub path: PathBuf,
    pub words: String,
}

/// A line of text to draw: font file (under [`FONTS`]), size in px, colour, x, y, text.
type Line = (&'static str, u32, &'static str, u32, u32, &'static str);

fn run(program: &str, args: &[String]) {
    let output = Command::new(program).args(args).output().unwrap_or_else(|e| {
        panic!("{program} is needed for the OCR tests ({e}): apt-get install imagemagick qpdf fonts-dejavu-core fonts-liberation fonts-freefont-ttf")
    });
    assert!(output.status.success(), "{program} {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
}

/// Renders a 1080 x 2400 screenshot: a background, coloured `boxes`, then `lines`.
fn render(path: &Path, background: &str, boxes: &[(&str, &str)], lines: &[Line]) -> Screenshot {
    let mut args = vec!["-size".to_string(), "1080x2400".into(), format!("xc:{background}")];
    for (colour, rectangle) in boxes {
        args.extend(["-fill".into(), colour.to_string(), "-draw".into(), rectangle.to_string()]);
    }
    for (font, size, colour, x, y, text) in lines {
        args.extend([
            "-font".into(),
            format!("{FONTS}/{font}"),
            "-pointsize".into(),
            size.to_string(),
            "-fill".into(),
            colour.to_string(),
            "-annotate".into(),
            format!("+{x}+{y}"),
            text.to_string(),
        ]);
    }
    args.push(path.display().to_string());
    run("convert", &args);
    let words = lines.iter().map(|line| line.5).collect::<Vec<_>>().join(" ");
    Screenshot { path: path.to_path_buf(), words }
}

/// The directory every fixture is made in, once per run.
fn dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().unwrap()).path()
}

/// Three phone screenshots: a light chat, a dark-mode note and a coloured booking card.
pub fn screenshots() -> &'static [Screenshot] {
    static SHOTS: OnceLock<Vec<Screenshot>> = OnceLock::new();
    SHOTS.get_or_init(|| {
        let chat = render(
            &dir().join("chat.png"),
            "#ece5dd",
            &[
                ("#075e54", "rectangle 0,0 1080,170"),
                ("#dcf8c6", "roundrectangle 40,230 1040,560 24,24"),
                ("#ffffff", "roundrectangle 40,620 900,860 24,24"),
                ("#f0f0f0", "rectangle 0,2260 1080,2400"),
            ],
            &[
                ("dejavu/DejaVuSans-Bold.ttf", 40, "#ffffff", 40, 105, "Home Network"),
                ("liberation/LiberationSans-Regular.ttf", 36, "#111111", 70, 310, "WIFI Bluebird-5G password"),
                ("liberation/LiberationSans-Regular.ttf", 36, "#111111", 70, 370, "maple-orange-tiger-42"),
                ("dejavu/DejaVuSerif.ttf", 24, "#222222", 70, 440, "Router admin page is behind the kitchen shelf"),
                (
                    "freefont/FreeSans.ttf",
                    16,
                    "#333333",
                    70,
                    500,
                    "Booking reference QX7HPL for the Lisbon flight on Friday",
                ),
                ("dejavu/DejaVuSans.ttf", 28, "#111111", 70, 700, "Dentist appointment moved to Thursday"),
                (
                    "dejavu/DejaVuSans.ttf",
                    12,
                    "#444444",
                    70,
                    780,
                    "Receipt total 42.50 paid with card ending 1234 at Corner Bakery",
                ),
                ("dejavu/DejaVuSansMono.ttf", 26, "#075e54", 60, 2345, "Chats Status Calls"),
            ],
        );
        let dark = render(
            &dir().join("dark.png"),
            "#121212",
            &[("#1f1f1f", "rectangle 0,0 1080,160"), ("#2c2c2c", "roundrectangle 40,240 1040,700 20,20")],
            &[
                ("liberation/LiberationSans-Bold.ttf", 40, "#ffffff", 40, 100, "Notes"),
                ("liberation/LiberationSerif-Regular.ttf", 34, "#e0e0e0", 80, 330, "Pancake recipe for Sunday"),
                ("liberation/LiberationSans-Regular.ttf", 30, "#e0e0e0", 80, 420, "two cups flour and three eggs"),
                ("liberation/LiberationSans-Regular.ttf", 30, "#e0e0e0", 80, 490, "one spoon sugar and warm milk"),
                ("dejavu/DejaVuSans.ttf", 20, "#bbbbbb", 80, 600, "Rest the batter for twenty minutes before cooking"),
            ],
        );
        let card = render(
            &dir().join("card.png"),
            "#ffffff",
            &[("#e3f2fd", "rectangle 0,0 1080,2400"), ("#fff8e1", "roundrectangle 60,300 1020,1100 30,30")],
            &[
                ("freefont/FreeSansBold.ttf", 40, "#0d47a1", 80, 200, "Train ticket confirmed"),
                (
                    "liberation/LiberationSans-Regular.ttf",
                    32,
                    "#263238",
                    110,
                    420,
                    "Departure Hamburg 08:15 platform 7",
                ),
                ("liberation/LiberationSans-Regular.ttf", 32, "#263238", 110, 500, "Arrival Munich 14:02"),
                ("dejavu/DejaVuSerif.ttf", 22, "#37474f", 110, 600, "Coach 12 seat 45 window"),
                (
                    "freefont/FreeSerif.ttf",
                    18,
                    "#5d4037",
                    110,
                    700,
                    "Show this code to the conductor together with your passport",
                ),
            ],
        );
        vec![chat, dark, card]
    })
}

/// A photo of a printed note, turned by `degrees` and slightly blurred, as a JPEG.
pub fn rotated_photo(degrees: f32) -> Screenshot {
    let flat = render(
        &dir().join(format!("flat-{degrees}.png")),
        "#fdfdf8",
        &[],
        &[
            (
                "liberation/LiberationSerif-Regular.ttf",
                40,
                "#202020",
                120,
                500,
                "Call the plumber about the leaking tap",
            ),
            ("liberation/LiberationSerif-Regular.ttf", 40, "#202020", 120, 580, "Buy lightbulbs and batteries"),
        ],
    );
    let path = dir().join(format!("rotated-{degrees}.jpg"));
    run(
        "convert",
        &[
            flat.path.display().to_string(),
            "-background".into(),
            "#fdfdf8".into(),
            "-rotate".into(),
            degrees.to_string(),
            "-blur".into(),
            "0x0.6".into(),
            "-quality".into(),
            "85".into(),
            path.display().to_string(),
        ],
    );
    Screenshot { path, words: flat.words }
}

/// A poster photographed at a camera's full size, 8000 x 6000 (48 megapixels, over the
/// decoder's 40-megapixel cap), with `lines` in large type on `background` (an ImageMagick
/// image: `xc:#f4efe4`, `gradient:white-grey`), written as `extension` (`png` or `jpg`):
/// what a user sends as a document.
pub fn poster(extension: &str, background: &str, lines: &[&'static str]) -> Screenshot {
    let path = dir().join(format!("poster-{}.{extension}", lines.len()));
    let mut args = vec!["-size".to_string(), "8000x6000".into(), background.to_string()];
    for (index, text) in lines.iter().enumerate() {
        args.extend([
            "-font".into(),
            format!("{FONTS}/liberation/LiberationSans-Bold.ttf"),
            "-pointsize".into(),
            "300".into(),
            "-fill".into(),
            "#1c1c1c".into(),
            "-annotate".into(),
            format!("+500+{}", 1500 + index * 700),
            text.to_string(),
        ]);
    }
    args.push(path.display().to_string());
    run("convert", &args);
    Screenshot { path, words: lines.join(" ") }
}

/// Writes a PDF whose pages draw `contents` (one content stream each) with `resources`.
pub fn pdf(contents: &[Vec<u8>], resources: &str, extra_objects: &[Vec<u8>]) -> Vec<u8> {
    // Objects: 1 catalog, 2 pages, 3 font, extra objects from 4, then page and content pairs.
    let first_page = 4 + extra_objects.len();
    let mut objects: Vec<Vec<u8>> = vec![b"<< /Type /Catalog /Pages 2 0 R >>".to_vec()];
    let kids: Vec<String> = (0..contents.len()).map(|i| format!("{} 0 R", first_page + 2 * i)).collect();
    objects.push(format!("<< /Type /Pages /Kids [{}] /Count {} >>", kids.join(" "), contents.len()).into_bytes());
    objects.push(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_vec());
    objects.extend(extra_objects.iter().cloned());
    for (i, content) in contents.iter().enumerate() {
        objects.push(
            format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources {resources} /Contents {} 0 R >>",
                first_page + 2 * i + 1
            )
            .into_bytes(),
        );
        let mut stream = format!("<< /Length {} >>\nstream\n", content.len()).into_bytes();
        stream.extend_from_slice(content);
        stream.extend_from_slice(b"\nendstream");
        objects.push(stream);
    }
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(object);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for offset in offsets {
        out.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1).as_bytes(),
    );
    out
}

/// A PDF with a text layer, one line per page.
pub fn text_pdf(pages: &[&str]) -> Vec<u8> {
    let contents: Vec<Vec<u8>> =
        pages.iter().map(|text| format!("BT /F1 18 Tf 72 700 Td ({text}) Tj ET").into_bytes()).collect();
    pdf(&contents, "<< /Font << /F1 3 0 R >> >>", &[])
}

/// A scanned PDF: each page one JPEG of printed text, no text layer.
pub fn scanned_pdf(pages: &[&str]) -> Vec<u8> {
    let mut images = Vec::new();
    for (i, text) in pages.iter().enumerate() {
        let path = dir().join(format!("scan-{i}-{}.jpg", text.len()));
        run(
            "convert",
            &[
                "-size".into(),
                "1275x1650".into(),
                "xc:#fbfbf7".into(),
                "-font".into(),
                format!("{FONTS}/liberation/LiberationSerif-Regular.ttf"),
                "-pointsize".into(),
                "40".into(),
                "-fill".into(),
                "#1a1a1a".into(),
                "-annotate".into(),
                "+150+300".into(),
                text.to_string(),
                "-colorspace".into(),
                "Gray".into(),
                "-quality".into(),
                "80".into(),
                path.display().to_string(),
            ],
        );
        images.push(std::fs::read(&path).unwrap());
    }
    // Image XObjects are objects 4.. (one per page); each page draws its own.
    let extra: Vec<Vec<u8>> = images
        .iter()
        .map(|jpeg| {
            let mut object = format!(
                "<< /Type /XObject /Subtype /Image /Width 1275 /Height 1650 /ColorSpace /DeviceGray \
                 /BitsPerComponent 8 /Filter /DCTDecode /Length {} >>\nstream\n",
                jpeg.len()
            )
            .into_bytes();
            object.extend_from_slice(jpeg);
            object.extend_from_slice(b"\nendstream");
            object
        })
        .collect();
    let contents: Vec<Vec<u8>> =
        (0..pages.len()).map(|i| format!("q 612 0 0 792 0 0 cm /Im{i} Do Q").into_bytes()).collect();
    let names: Vec<String> = (0..pages.len()).map(|i| format!("/Im{i} {} 0 R", 4 + i)).collect();
    pdf(&contents, &format!("<< /XObject << {} >> >>", names.join(" ")), &extra)
}

/// A PDF of `count` empty pages (all sharing one content stream).
pub fn many_page_pdf(count: usize) -> Vec<u8> {
    let contents = vec![Vec::new(); count];
    pdf(&contents, "<< >>", &[])
}

/// `pdf` encrypted with a user password (qpdf, AES-256).
pub fn encrypted_pdf(pdf: &[u8]) -> Vec<u8> {
    let (plain, locked) = (dir().join("plain.pdf"), dir().join("locked.pdf"));
    std::fs::write(&plain, pdf).unwrap();
    run(
        "qpdf",
        &[
            "--encrypt".into(),
            "secret".into(),
            "owner".into(),
            "256".into(),
            "--".into(),
            plain.display().to_string(),
            locked.display().to_string(),
        ],
    );
    std::fs::read(locked).unwrap()
}

/// A PNG whose header claims `width` x `height` pixels, with almost no data behind it.
pub fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    fn chunk(kind: &[u8], data: &[u8]) -> Vec<u8> {
        let mut out = (data.len() as u32).to_be_bytes().to_vec();
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32(&body).to_be_bytes());
        out
    }
    let mut header = width.to_be_bytes().to_vec();
    header.extend_from_slice(&height.to_be_bytes());
    header.extend_from_slice(&[8, 0, 0, 0, 0]); // 8-bit grey, no interlace
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(chunk(b"IHDR", &header));
    // A zlib stream of a few zero bytes: the first scanline's start.
    png.extend(chunk(b"IDAT", &[0x78, 0x9c, 0x63, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01]));
    png.extend(chunk(b"IEND", &[]));
    png
}

/// CRC-32 (ISO-HDLC), as PNG chunks carry it.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// Lower-case words of letters and digits.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

/// The share of `expected`'s words found in `read` (each found word used once).
pub fn word_recall(expected: &str, read: &str) -> f64 {
    let mut pool = words(read);
    let expected = words(expected);
    let found = expected
        .iter()
        .filter(|word| match pool.iter().position(|w| w == *word) {
            Some(i) => {
                pool.swap_remove(i);
                true
            }
            None => false,
        })
        .count();
    found as f64 / expected.len() as f64
}
