# Task runner: the README and CI use these targets; each is a thin wrapper.
.PHONY: run test fmt lint migrate config

run:            ## serve the API on the embedded default (SQLite under ./var)
	cargo run

test:           ## everything CI runs: installs/starts services, fmt, clippy, all tests
	./scripts/test

fmt:
	cargo fmt --all

lint:
	cargo clippy --workspace --all-targets -- -D warnings

migrate:        ## apply database migrations for the configured database
	cargo run -- migrate

config:         ## print the effective configuration, secrets redacted
	cargo run -- config show
