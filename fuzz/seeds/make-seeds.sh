#!/usr/bin/env bash
# The audio seeds of the fuzz targets (tests/fuzz/audio.rs): a short espeak-ng sentence in
# each container the decoder takes besides WhatsApp's own note (../shared/samples). Kept
# small, so that a mutated seed decodes in milliseconds. Regenerate with this script;
# the checked-in files are what the targets use.
set -euo pipefail
cd "$(dirname "$0")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
espeak-ng -v en-us -s 170 -w "$work/spoken.wav" "call the plumber"
sox "$work/spoken.wav" -r 16000 -c 1 "$work/narrow.wav"
opusenc --quiet --bitrate 12 "$work/narrow.wav" espeak_note_opus.ogg
sox "$work/spoken.wav" -r 8000 -c 1 -b 16 espeak_note.wav trim 0 0.6
sox "$work/spoken.wav" -r 8000 -c 2 espeak_note_stereo.flac trim 0 0.8
sox "$work/spoken.wav" -r 8000 -c 1 -C 0 espeak_note_vorbis.ogg trim 0 1.0
