# whatsapp-memory: the commands a person needs. `make run` and `make test` work on a
# fresh machine with only the Rust toolchain.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# The suite's PostgreSQL server (a fresh database per test is created inside it).
TEST_POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/postgres

# whisper.cpp is built with cmake by whisper-rs-sys: the one on PATH, else one from PyPI.
export CMAKE ?= $(shell scripts/cmake-path.sh)

.PHONY: help run test test-sqlite test-postgres test-scripts test-sdk test-browser fuzz bench fmt lint migrate openapi whisper-model embed-model voice-test-tools ocr-tools ocr-test-tools

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

run: whisper-model embed-model ocr-tools ## start the service on the embedded default (SQLite under ./data, local Whisper, local semantic search, local OCR)
	cargo run --release --bin whatsapp-memory -- serve

test: test-sqlite test-postgres test-scripts ## the whole suite, on SQLite and on PostgreSQL, and the tool scripts' tests

test-sqlite: whisper-model embed-model voice-test-tools ocr-test-tools ## the whole suite on SQLite
	cargo test --workspace

test-postgres: whisper-model embed-model voice-test-tools ocr-test-tools ## the integration suite on the real PostgreSQL server
	@if scripts/postgres-reachable.sh "$(TEST_POSTGRES_URL)"; then \
		TEST_DATABASE_URL="$(TEST_POSTGRES_URL)" cargo test --test api; \
	elif [ -n "$$CI" ]; then \
		echo "PostgreSQL is not reachable at $(TEST_POSTGRES_URL); CI requires it" >&2; exit 1; \
	else \
		echo "PostgreSQL is not reachable at $(TEST_POSTGRES_URL): PostgreSQL tests skipped (CI runs them)" >&2; \
	fi

test-scripts: ## unit tests of the Python tools (the Whisper model converter) and of the checked-in YAML spec (read by PyYAML, a YAML 1.1 reader)
	@python3 -c 'import numpy' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check numpy
	@python3 -c 'import yaml' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check pyyaml
	python3 -m unittest discover -s scripts/whisper-model
	python3 -m unittest discover -s tests/openapi

test-sdk: ## Python and TypeScript clients generated from the spec, and schemathesis, against a live server
	cargo build --quiet --bin whatsapp-memory
	SDK_SEED=$${SDK_SEED:-20261127} bash tests/sdk/run.sh target/debug/whatsapp-memory

test-browser: ## a new user's first session: /docs in headless Chromium, authorised with the printed key, every operation executed
	cargo build --quiet --bin whatsapp-memory
	bash tests/browser/run.sh target/debug/whatsapp-memory

whisper-model: ## download and convert the Whisper tiny.en model to models/ggml-tiny.en.bin (once)
	@scripts/whisper-model/provision.sh

embed-model: ## download the all-MiniLM-L6-v2 sentence-embedding model to models/all-minilm-l6-v2/ (once)
	@scripts/embed-model/provision.sh

voice-test-tools: ## espeak-ng, sox and opus-tools for the voice tests (installed when root)
	@scripts/voice-test-tools.sh

ocr-tools: ## Tesseract and poppler for reading the text of photos and PDFs (installed when root)
	@scripts/ocr-tools.sh run

ocr-test-tools: ## the same, and ImageMagick, fonts and qpdf for the OCR tests' fixtures (installed when root)
	@scripts/ocr-tools.sh test

fuzz: ocr-tools ## every fuzz target (tests/fuzz) for FUZZ_SECONDS each (default 600), one after another; FUZZ_TARGET=<name> for one; failures are kept in fuzz/corpus/
	FUZZ_SECONDS=$${FUZZ_SECONDS:-600} cargo test --test fuzz $(FUZZ_TARGET) -- --test-threads 1 --nocapture

bench: ## release build; text and photo webhook load (SQLite, PostgreSQL, two servers on PostgreSQL), /search at 100k memories, near-duplicate lookup at 100k images, a 10-minute mixed soak (BENCH_ONLY=soak: the soak alone) (needs python3)
	@if [ -z "$$BENCH_POSTGRES_URL" ] && scripts/postgres-reachable.sh "$(TEST_POSTGRES_URL)"; then \
		BENCH_POSTGRES_URL="$(TEST_POSTGRES_URL)" bash bench/run.sh; \
	else \
		bash bench/run.sh; \
	fi

fmt: ## format the code
	cargo fmt --all

lint: ## formatting and clippy, as CI checks them
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings

migrate: ## apply pending migrations to DATABASE_URL, then recompute image hashes an older hash function made
	cargo run --release --bin whatsapp-memory -- migrate
	cargo run --release --bin whatsapp-memory -- reindex --hashes

openapi: ## regenerate the checked-in OpenAPI document
	mkdir -p openapi
	cargo run --quiet --bin whatsapp-memory -- openapi --format json > openapi/openapi.json
	cargo run --quiet --bin whatsapp-memory -- openapi --format yaml > openapi/openapi.yaml
