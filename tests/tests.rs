//! All integration tests, built as one binary (ripgrep's layout); helpers live in `util`.

// Proves the test servers and the verifier are real and strict.
mod harness_selftest;
// `mailshot send` against real SMTP servers.
mod send;
mod util;
