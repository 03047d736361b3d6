//! Tesseract's C API (`tesseract/capi.h`), opened at run time with `libloading`.
//!
//! Why a dozen hand-written declarations over dlopen rather than the `tesseract`/`leptess`
//! crates: those generate their bindings with bindgen at build time (libclang and the
//! headers on every build machine) and link `-ltesseract`, so a binary built with them
//! does not even start where Tesseract is not installed. Opening the library at run time
//! lets the server start without it (photos are then kept as before, and the log says so
//! once), needs nothing at build time, and the few functions used here have had the same
//! C signatures since Tesseract 4.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::OnceLock;

use libloading::Library;

/// The sonames tried, newest first.
const LIBRARY_NAMES: [&str; 3] = ["libtesseract.so.5", "libtesseract.so.4", "libtesseract.so"];

/// `PSM_SPARSE_TEXT` in `TessPageSegMode`: find as much text as possible in no particular
/// order, which suits screenshots (labels, bubbles and buttons scattered over the screen).
pub const PAGE_SEGMENTATION_SPARSE_TEXT: c_int = 11;

type Handle = *mut c_void;

/// The functions of the C API this adapter calls, resolved once.
struct Api {
    // Kept so the function pointers below stay valid for the life of the process.
    _library: Library,
    version: unsafe extern "C" fn() -> *const c_char,
    create: unsafe extern "C" fn() -> Handle,
    delete: unsafe extern "C" fn(Handle),
    init3: unsafe extern "C" fn(Handle, *const c_char, *const c_char) -> c_int,
    set_variable: unsafe extern "C" fn(Handle, *const c_char, *const c_char) -> c_int,
    set_page_seg_mode: unsafe extern "C" fn(Handle, c_int),
    set_image: unsafe extern "C" fn(Handle, *const u8, c_int, c_int, c_int, c_int),
    recognize: unsafe extern "C" fn(Handle, *mut c_void) -> c_int,
    get_tsv_text: unsafe extern "C" fn(Handle, c_int) -> *mut c_char,
    delete_text: unsafe extern "C" fn(*const c_char),
    clear: unsafe extern "C" fn(Handle),
    end: unsafe extern "C" fn(Handle),
    monitor_create: unsafe extern "C" fn() -> *mut c_void,
    monitor_delete: unsafe extern "C" fn(*mut c_void),
    monitor_set_deadline_msecs: unsafe extern "C" fn(*mut c_void, c_int),
    /// OpenMP's thread count for the calling thread, when Tesseract was built with OpenMP
    /// (Debian's is): one recognition uses one core, the others stay with the server.
    omp_set_num_threads: Option<unsafe extern "C" fn(c_int)>,
}

/// Resolves one symbol into a plain function pointer.
///
/// # Safety
/// `T` must be the symbol's real C signature.
unsafe fn symbol<T: Copy>(library: &Library, name: &[u8]) -> Result<T, String> {
    library.get::<T>(name).map(|symbol| *symbol).map_err(|error| format!("{}: {error}", String::from_utf8_lossy(name)))
}

impl Api {
    fn open() -> Result<Self, String> {
        let mut failures = Vec::new();
        for name in LIBRARY_NAMES {
            // SAFETY: loading Tesseract runs only its static initialisers.
            match unsafe { Library::new(name) } {
                // SAFETY: each signature below is copied from tesseract/capi.h.
                Ok(library) => unsafe {
                    return Ok(Self {
                        version: symbol(&library, b"TessVersion\0")?,
                        create: symbol(&library, b"TessBaseAPICreate\0")?,
                        delete: symbol(&library, b"TessBaseAPIDelete\0")?,
                        init3: symbol(&library, b"TessBaseAPIInit3\0")?,
                        set_variable: symbol(&library, b"TessBaseAPISetVariable\0")?,
                        set_page_seg_mode: symbol(&library, b"TessBaseAPISetPageSegMode\0")?,
                        set_image: symbol(&library, b"TessBaseAPISetImage\0")?,
                        recognize: symbol(&library, b"TessBaseAPIRecognize\0")?,
                        get_tsv_text: symbol(&library, b"TessBaseAPIGetTsvText\0")?,
                        delete_text: symbol(&library, b"TessDeleteText\0")?,
                        clear: symbol(&library, b"TessBaseAPIClear\0")?,
                        end: symbol(&library, b"TessBaseAPIEnd\0")?,
                        monitor_create: symbol(&library, b"TessMonitorCreate\0")?,
                        monitor_delete: symbol(&library, b"TessMonitorDelete\0")?,
                        monitor_set_deadline_msecs: symbol(&library, b"TessMonitorSetDeadlineMSecs\0")?,
                        // Found among the library's dependencies (libgomp), if it has them.
                        omp_set_num_threads: symbol(&library, b"omp_set_num_threads\0").ok(),
                        _library: library,
                    });
                },
                Err(error) => failures.push(format!("{name}: {error}")),
            }
        }
        Err(failures.join("; "))
    }
}

/// The library, opened on first use; the error says what was tried.
fn api() -> Result<&'static Api, String> {
    static API: OnceLock<Result<Api, String>> = OnceLock::new();
    API.get_or_init(Api::open).as_ref().map_err(Clone::clone)
}

/// Tesseract's version (`5.3.0`), or why the library cannot be opened.
///
/// # Errors
/// When `libtesseract` is not installed (or lacks a function used here).
pub fn version() -> Result<String, String> {
    let api = api()?;
    // SAFETY: TessVersion returns a static NUL-terminated string.
    Ok(unsafe { CStr::from_ptr((api.version)()) }.to_string_lossy().into_owned())
}

/// One initialised Tesseract instance. Tesseract is not thread-safe per instance: an
/// `Engine` is used by one thread at a time (`&mut self`), and may move between threads.
pub struct Engine {
    api: &'static Api,
    handle: Handle,
}

// SAFETY: a TessBaseAPI has no thread affinity; `&mut self` on every call keeps it to one
// thread at a time.
unsafe impl Send for Engine {}

/// One grey image to recognise: 8 bits a pixel, rows packed.
pub struct GreyPixels<'a> {
    pub width: u32,
    pub height: u32,
    pub pixels: &'a [u8],
}

impl Engine {
    /// An instance reading `languages` (`eng`, `eng+deu`) from Tesseract's default data
    /// directory (or `TESSDATA_PREFIX`).
    ///
    /// # Errors
    /// When the library is missing or the language data does not load.
    pub fn new(languages: &str) -> Result<Self, String> {
        let api = api()?;
        let languages_c = CString::new(languages).map_err(|_| "a language name holds a NUL byte".to_string())?;
        // SAFETY: create returns a fresh handle that `Drop` releases; init3 copies its strings.
        let engine = unsafe { Self { api, handle: (api.create)() } };
        if engine.handle.is_null() {
            return Err("TessBaseAPICreate failed".into());
        }
        // SAFETY: a valid handle and NUL-terminated strings; a null data path means the default.
        if unsafe { (api.init3)(engine.handle, std::ptr::null(), languages_c.as_ptr()) } != 0 {
            return Err(format!(
                "the language data for {languages:?} does not load (is tesseract-ocr-{languages} installed?)"
            ));
        }
        engine.set_variable("debug_file", "/dev/null")?;
        // SAFETY: a valid, initialised handle.
        unsafe { (api.set_page_seg_mode)(engine.handle, PAGE_SEGMENTATION_SPARSE_TEXT) };
        Ok(engine)
    }

    fn set_variable(&self, name: &str, value: &str) -> Result<(), String> {
        let (name_c, value_c) =
            (CString::new(name).map_err(|e| e.to_string())?, CString::new(value).map_err(|e| e.to_string())?);
        // SAFETY: a valid handle; Tesseract copies both strings.
        if unsafe { (self.api.set_variable)(self.handle, name_c.as_ptr(), value_c.as_ptr()) } == 0 {
            return Err(format!("Tesseract has no variable {name}"));
        }
        Ok(())
    }

    /// Recognises `image` and returns Tesseract's TSV (one row per page, block, paragraph,
    /// line and word, with each word's confidence), stopping after `deadline_ms`.
    ///
    /// # Errors
    /// When recognition fails or the image's size does not fit the C API.
    pub fn recognize_tsv(&mut self, image: &GreyPixels<'_>, deadline_ms: u32) -> Result<String, String> {
        let (width, height) = (c_int::try_from(image.width), c_int::try_from(image.height));
        let (Ok(width), Ok(height)) = (width, height) else {
            return Err("the image is too large".into());
        };
        if image.pixels.len() != image.width as usize * image.height as usize {
            return Err("the pixel buffer does not match the image's size".into());
        }
        let api = self.api;
        // SAFETY: the pixel buffer outlives the recognition (Clear below releases
        // Tesseract's reference to it before this returns); the monitor is deleted here.
        unsafe {
            if let Some(set_threads) = api.omp_set_num_threads {
                set_threads(1);
            }
            (api.set_image)(self.handle, image.pixels.as_ptr(), width, height, 1, width);
            // No resolution is set: Tesseract estimates one from the text's height, which
            // suits screenshots (they have none) as well as photos of paper.
            let monitor = (api.monitor_create)();
            (api.monitor_set_deadline_msecs)(monitor, c_int::try_from(deadline_ms).unwrap_or(c_int::MAX));
            let status = (api.recognize)(self.handle, monitor);
            (api.monitor_delete)(monitor);
            let result = if status != 0 {
                Err(format!("recognition failed (status {status})"))
            } else {
                let text = (api.get_tsv_text)(self.handle, 0);
                if text.is_null() {
                    Err("Tesseract returned no text".into())
                } else {
                    let tsv = CStr::from_ptr(text).to_string_lossy().into_owned();
                    (api.delete_text)(text);
                    Ok(tsv)
                }
            };
            (api.clear)(self.handle);
            result
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // SAFETY: the handle came from create and is released exactly once.
        unsafe {
            (self.api.end)(self.handle);
            (self.api.delete)(self.handle);
        }
    }
}
