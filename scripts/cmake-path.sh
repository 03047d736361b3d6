#!/usr/bin/env bash
# Prints the cmake that builds whisper.cpp (whisper-rs-sys runs it): the one on PATH, else
# one installed quietly from PyPI's `cmake` package (no root needed). Used by the Makefile
# as CMAKE, which the build script's cmake crate honours.
set -euo pipefail
if command -v cmake >/dev/null 2>&1; then
    command -v cmake
    exit 0
fi
from_pip() { python3 -c 'import cmake, os; print(os.path.join(cmake.CMAKE_BIN_DIR, "cmake"))' 2>/dev/null; }
if ! from_pip >/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check --user cmake >&2 \
        || python3 -m pip install --quiet --disable-pip-version-check cmake >&2
fi
from_pip
