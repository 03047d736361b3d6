#!/usr/bin/env bash
# Reading the text of photos and PDFs needs Tesseract 5 with its English data (the
# library is opened at run time) and poppler's pdftotext/pdftoppm; the OCR tests also
# render screenshots and PDFs with ImageMagick, fonts and qpdf. Installs the missing
# Debian packages when running as root (as CI does), else says what to install.
#
#   scripts/ocr-tools.sh run    # what the server uses; without them it starts anyway
#   scripts/ocr-tools.sh test   # and what the tests render their fixtures with
#
# Quiet when everything is there.
set -euo pipefail
mode=${1:-run}
missing=()
ldconfig -p 2>/dev/null | grep -q 'libtesseract\.so\.5' || missing+=(tesseract-ocr)
[ -e /usr/share/tesseract-ocr/5/tessdata/eng.traineddata ] || missing+=(tesseract-ocr-eng)
command -v pdftotext >/dev/null 2>&1 || missing+=(poppler-utils)
if [ "$mode" = test ]; then
    # Not `command -v convert`: some machines carry a stand-in `convert` in /usr/local/bin
    # that only forwards to the real ImageMagick when it is installed.
    [ -x /usr/bin/convert ] || missing+=(imagemagick)
    command -v qpdf >/dev/null 2>&1 || missing+=(qpdf)
    [ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)
    [ -e /usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf ] || missing+=(fonts-liberation)
    [ -e /usr/share/fonts/truetype/freefont/FreeSans.ttf ] || missing+=(fonts-freefont-ttf)
fi
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq "${missing[@]}" >/dev/null; }
elif [ "$mode" = test ]; then
    echo "the OCR tests need: ${missing[*]} (e.g. sudo apt-get install ${missing[*]})" >&2
    exit 1
else
    echo "reading text in photos and PDFs needs: ${missing[*]} (e.g. sudo apt-get install ${missing[*]});" \
        "the server starts without them and keeps photos and PDFs without their text" >&2
fi
