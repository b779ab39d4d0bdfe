//! All integration tests, built as one binary (ripgrep's layout); helpers live in `util`.

// campaign.toml's From, Reply-To and return_path get the recipients' address rule.
mod address;
// `--override` takes only real preflight check ids.
mod checks;
// `mailshot dmarc report` on hand-written aggregate reports, and the same totals from parsedmarc.
mod dmarc;
// RFC 9989 in `mailshot check`: tree walk beside the PSL, t=y, obsolete tags, SERVFAIL as temperror.
mod dmarcbis;
// Proves the DNS harness is real: knotd serves the zones, broken zones SERVFAIL, checkdmarc reads them.
mod dns_selftest;
// The delivery engine: the retry queue, several relays, limits, shards.
mod engine;
// Faulty relays: dropped DATA, 421 greetings, 451s, 550s, idle timeouts, the circuit breaker.
mod faults;
// Hostile input from the security review: bombs, special files, terminal escapes, huge rows.
mod hostile;
// Proves the test servers and the verifier are real and strict.
mod harness_selftest;
// `mailshot intake`: bounces, complaints and unsubscribes from Dovecot and Maildirs, acted on.
mod intake;
// The mailbox reader against a real Dovecot: TLS, wrong password, untrusted CA, marking.
mod mailbox;
// `mailshot preview`: same bytes as send, and a folder that renders in headless Chromium.
mod preview;
// `mailshot send` against real SMTP servers.
mod send;
// `send --shard K/N` processes at once, a killed shard's resume, and `mailshot report`.
mod shards;
// `mailshot check` and the audit before `send`, against knot serving one zone set per case.
mod preflight;
// `dkim keygen` keys verify with dkimpy; `dns records` fragments audit clean through the overlay.
mod records;
// Resuming after SIGKILL, Ctrl-C and a changed recipient file: nobody lost, duplicates bounded.
mod resume;
// `send --seed`: seed copies first, outside the journal, report and counts.
mod seed;
// `mailshot suppress`: entries read back exactly as written; text import and export.
mod suppress;
// `mailshot unsubscribe serve`: RFC 8058 one-click with curl and Chromium, concurrency, SIGKILL.
mod unsubscribe;
mod util;
// `mailshot verify`: received messages graded per provider, receiver and local results compared.
mod verify;
