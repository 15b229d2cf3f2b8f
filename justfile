# Recipes for people who have `just`; none of them is needed (see README).

# Run the daemon on the example config (manages this machine as a check-only `local` host).
run:
    cargo run -p tendhost -- --config tendhost.toml.example

# The whole test suite, including the Docker test fleet (installs what it needs).
test *ARGS:
    scripts/test {{ARGS}}

# Only the tests that need no Docker fleet.
test-fast:
    TENDHOST_SKIP_FLEET=1 scripts/test

# What CI runs.
ci:
    .ci/run

lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings

# Regenerate the vendored Scalar bundle served at /docs.
fetch-scalar:
    scripts/fetch-scalar
