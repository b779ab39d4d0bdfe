//! All integration tests, built as one binary (ripgrep's layout); helpers live in `util`.

// Proves the DNS harness is real: knotd serves the zones, broken zones SERVFAIL, checkdmarc reads them.
mod dns_selftest;
// Proves the test servers and the verifier are real and strict.
mod harness_selftest;
// `mailshot send` against real SMTP servers.
mod send;
// `mailshot check` and the audit before `send`, against knot serving one zone set per case.
mod preflight;
mod util;
