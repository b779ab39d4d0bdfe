//! The scripted SMTP responder: a hand-written server on loopback for the faults aiosmtpd
//! cannot produce on demand (a 421 greeting on chosen connections; a connection cut halfway
//! through DATA, at the 354, or right after a refused RCPT). It speaks just enough SMTP for
//! lettre and records what it saw in `Seen`. Whatever a real server can do is tested against
//! aiosmtpd (`super::SmtpServer`) instead.
// Not every test uses every helper; the harness is shared.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// What the scripted responder does. Connections are numbered from 1 in accept order.
#[derive(Default, Clone)]
pub struct Script {
    /// Connections answered `421` at the greeting and then closed.
    pub refuse_greeting: Vec<usize>,
    /// Connections closed right after they answer their first NOOP (mailshot's start check
    /// is connection 1's NOOP): the pool must then open a fresh connection for the first
    /// message, which makes "the first send meets connection 2" deterministic.
    pub hang_up_after_noop: Vec<usize>,
    /// Lowercase address -> how many of its DATA transactions are cut off: the server
    /// answers 354, reads the first lines of the message and drops the TCP connection.
    pub cut_data: HashMap<String, usize>,
    /// Lowercase address -> how many of its DATA transactions end at the 354: the server
    /// closes the connection without reading a byte of the message.
    pub close_at_354: HashMap<String, usize>,
    /// Advertise PIPELINING (RFC 2920) in the EHLO reply. The responder reads one line at a
    /// time, so a pipelined batch is answered like the same commands sent one by one.
    pub pipelining: bool,
    /// Lowercase addresses whose RCPT is answered `550 5.1.1`, after which the connection is
    /// closed at once, as Postfix does with "421 too many errors": a pipelined client never
    /// gets its DATA reply.
    pub refuse_rcpt_and_hang_up: Vec<String>,
}

/// What the scripted responder saw.
#[derive(Default, Debug)]
pub struct Seen {
    pub connections: usize,
    pub refused_greetings: usize,
    /// Lowercase recipient -> DATA commands for it (cut ones included).
    pub data_attempts: BTreeMap<String, usize>,
    /// Lowercase recipient -> RCPT commands for it.
    pub rcpt_attempts: BTreeMap<String, usize>,
    /// (recipient, complete dot-unstuffed message), in order: only after the final dot.
    pub delivered: Vec<(String, Vec<u8>)>,
}

/// A scripted SMTP server on 127.0.0.1, one thread per connection, stopped on drop.
pub struct Responder {
    pub port: u16,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl Responder {
    pub fn start(script: Script) -> Responder {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the responder");
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let script = Arc::new(script);
        let (seen2, stop2) = (seen.clone(), stop.clone());
        let accept = thread::spawn(move || {
            for stream in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let n = {
                    let mut s = seen2.lock().unwrap();
                    s.connections += 1;
                    s.connections
                };
                let (script, seen) = (script.clone(), seen2.clone());
                // Errors only mean the client went away; the test judges by `Seen`.
                thread::spawn(move || {
                    let _ = serve(stream, n, &script, &seen);
                });
            }
        });
        Responder {
            port,
            seen,
            stop,
            accept: Some(accept),
        }
    }

    pub fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap()
    }

    pub fn delivered_to(&self) -> Vec<String> {
        self.seen()
            .delivered
            .iter()
            .map(|(a, _)| a.clone())
            .collect()
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // accept() blocks: one last connection wakes it to see the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn serve(stream: TcpStream, n: usize, script: &Script, seen: &Mutex<Seen>) -> std::io::Result<()> {
    // A client that hangs must not keep a thread forever.
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut out = stream.try_clone()?;
    let mut input = BufReader::new(stream);
    if script.refuse_greeting.contains(&n) {
        seen.lock().unwrap().refused_greetings += 1;
        out.write_all(b"421 4.3.2 localhost busy, closing transmission channel\r\n")?;
        return Ok(());
    }
    out.write_all(b"220 localhost scripted responder ESMTP\r\n")?;
    let mut rcpts: Vec<String> = Vec::new();
    let mut noops = 0;
    let mut line = Vec::new();
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end();
        let verb = text
            .split([' ', ':'])
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" if script.pipelining => out.write_all(
                b"250-localhost\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n",
            )?,
            "EHLO" => out.write_all(b"250-localhost\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")?,
            "HELO" => out.write_all(b"250 localhost\r\n")?,
            "NOOP" => {
                out.write_all(b"250 2.0.0 OK\r\n")?;
                noops += 1;
                if noops == 1 && script.hang_up_after_noop.contains(&n) {
                    return Ok(());
                }
            }
            "RSET" | "MAIL" => {
                rcpts.clear();
                out.write_all(b"250 2.1.0 OK\r\n")?;
            }
            "RCPT" => {
                let addr = text
                    .split_once('<')
                    .and_then(|(_, r)| r.split_once('>'))
                    .map(|(a, _)| a.to_ascii_lowercase())
                    .unwrap_or_default();
                *seen
                    .lock()
                    .unwrap()
                    .rcpt_attempts
                    .entry(addr.clone())
                    .or_default() += 1;
                if script.refuse_rcpt_and_hang_up.contains(&addr) {
                    out.write_all(b"550 5.1.1 <")?;
                    out.write_all(addr.as_bytes())?;
                    out.write_all(b">: Recipient address rejected: User unknown\r\n")?;
                    let _ = input.get_ref().shutdown(Shutdown::Both);
                    return Ok(());
                }
                rcpts.push(addr);
                out.write_all(b"250 2.1.5 OK\r\n")?;
            }
            "DATA" if rcpts.is_empty() => out.write_all(b"503 5.5.1 no valid recipients\r\n")?,
            "DATA" => {
                let who = rcpts.join(",");
                let (cut, close) = {
                    let mut s = seen.lock().unwrap();
                    let tries = s.data_attempts.entry(who.clone()).or_default();
                    *tries += 1;
                    let n = *tries;
                    (
                        n <= script.cut_data.get(&who).copied().unwrap_or(0),
                        n <= script.close_at_354.get(&who).copied().unwrap_or(0),
                    )
                };
                out.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")?;
                if close {
                    let _ = input.get_ref().shutdown(Shutdown::Both);
                    return Ok(());
                }
                if cut {
                    // Halfway: some of the message has arrived, the end has not. Closing
                    // with unread data makes the kernel send a reset, as a crashed or
                    // firewalled relay would.
                    for _ in 0..3 {
                        line.clear();
                        input.read_until(b'\n', &mut line)?;
                    }
                    let _ = input.get_ref().shutdown(Shutdown::Both);
                    return Ok(());
                }
                let mut message = Vec::new();
                loop {
                    line.clear();
                    if input.read_until(b'\n', &mut line)? == 0 {
                        return Ok(());
                    }
                    if line == b".\r\n" {
                        break;
                    }
                    // Dot-unstuffing (RFC 5321 4.5.2).
                    let start = usize::from(line.starts_with(b".."));
                    message.extend_from_slice(&line[start..]);
                }
                seen.lock().unwrap().delivered.push((who, message));
                rcpts.clear();
                out.write_all(b"250 2.0.0 OK queued\r\n")?;
            }
            "QUIT" => {
                out.write_all(b"221 2.0.0 bye\r\n")?;
                return Ok(());
            }
            _ => out.write_all(b"502 5.5.2 command not recognized\r\n")?,
        }
    }
}
