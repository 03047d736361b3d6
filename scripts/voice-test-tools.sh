#!/usr/bin/env bash
# The voice tests speak real sentences: they need espeak-ng, sox and opus-tools (opusenc,
# opusinfo). Installs the missing ones from Debian's packages when running as root (as CI
# does), else says what to install. Quiet when everything is there.
set -euo pipefail
missing=()
command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
command -v sox >/dev/null 2>&1 || missing+=(sox)
{ command -v opusenc >/dev/null 2>&1 && command -v opusinfo >/dev/null 2>&1; } || missing+=(opus-tools)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq "${missing[@]}" >/dev/null; }
else
    echo "the voice tests need: ${missing[*]} (e.g. sudo apt-get install ${missing[*]})" >&2
    exit 1
fi
