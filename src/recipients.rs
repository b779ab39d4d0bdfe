//! The recipient CSV: streamed row by row, each row classified as valid, invalid or a
//! duplicate. A bad row never stops the others; only an unreadable file is fatal. What makes
//! an address valid is [`crate::address`]'s rule, the same one campaign.toml's From gets.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use lettre::Address;

use crate::address::header_unsafe_char;
use crate::config::RecipientSource;

/// Why the recipient file as a whole cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RecipientsError {
    #[error("cannot read {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is empty: the first line must be a header row naming the columns")]
    Empty { path: PathBuf },
    #[error("{path}: the header row is not valid CSV: {message}")]
    Header { path: PathBuf, message: String },
    #[error(
        "{path}: no column named {column:?} (columns: {available}); set recipients.{key} in campaign.toml"
    )]
    MissingColumn {
        path: PathBuf,
        column: String,
        key: &'static str,
        available: String,
    },
    #[error("{path}: two columns are named {column:?}; templates could not tell them apart")]
    DuplicateColumn { path: PathBuf, column: String },
    #[error(
        "{path}: row {row} is longer than {} MiB; no recipient needs that much (is it the right file, with its quotes closed?)",
        MAX_ROW_BYTES >> 20
    )]
    RowTooLong { path: PathBuf, row: u64 },
    #[error("{path}: read error at row {row}: {source}")]
    Io {
        path: PathBuf,
        row: u64,
        source: std::io::Error,
    },
}

/// The longest CSV row read. The CSV reader holds a whole row in memory, so without a cap one
/// 1 GB line (or an unclosed quote) costs gigabytes before any check sees it. Rows are read by
/// several threads at once; 16 MiB leaves room for many cells at the `limits.max_field_kb`
/// ceiling.
pub const MAX_ROW_BYTES: u64 = 16 << 20;

/// The longest display name (`Name <address>` or the name column) in characters. Names are
/// encoded into the To header, and mail-builder's encoder is quadratic in a value's length
/// (a 512 KB name took 19 s); no real name is this long.
pub const MAX_NAME_CHARS: usize = 256;

/// The file's bytes, with the bytes since the start of the current row counted: over
/// [`MAX_ROW_BYTES`] the read fails (and `over` is set), before the CSV reader buffers more.
/// The reader resets the count after each row; its own read-ahead (a few KB) is counted
/// against the next row, so a row may reach the cap plus that.
struct RowCapped<R> {
    inner: R,
    since_row: Arc<AtomicU64>,
    over: Arc<AtomicBool>,
}

impl<R: Read> Read for RowCapped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let total = self.since_row.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        if total > MAX_ROW_BYTES {
            self.over.store(true, Ordering::Relaxed);
            return Err(io::Error::new(io::ErrorKind::InvalidData, "row too long"));
        }
        Ok(n)
    }
}

/// One data row that may be sent to.
#[derive(Debug, Clone)]
pub struct Recipient {
    /// Spreadsheet numbering: the header is row 1, so the first recipient is row 2.
    pub row: u64,
    pub address: Address,
    pub name: Option<String>,
    /// Field values in header order; see [`RecipientReader::headers`].
    pub fields: Vec<String>,
}

/// What one CSV row turned out to be.
#[derive(Debug, Clone)]
pub enum Row {
    Valid(Recipient),
    Invalid {
        row: u64,
        /// The address cell as written (may be empty), for the report.
        address: String,
        reason: String,
    },
    Duplicate {
        row: u64,
        address: String,
        first_row: u64,
    },
}

impl Row {
    /// The address the row is filed under: the parsed one (lowercase ASCII form) when the
    /// row has one, else the cell as written.
    pub fn address(&self) -> &str {
        match self {
            Row::Valid(r) => r.address.as_ref(),
            Row::Invalid { address, .. } | Row::Duplicate { address, .. } => address,
        }
    }

    pub fn row(&self) -> u64 {
        match self {
            Row::Valid(r) => r.row,
            Row::Invalid { row, .. } | Row::Duplicate { row, .. } => *row,
        }
    }
}

/// Streams a recipient file. By default it remembers every address to find duplicates; with
/// [`Candidates`] it remembers only the few addresses that can be duplicates, so memory stays
/// flat however long the list is.
pub struct RecipientReader {
    path: PathBuf,
    reader: csv::Reader<BufReader<RowCapped<File>>>,
    since_row: Arc<AtomicU64>,
    row_over: Arc<AtomicBool>,
    /// The last row read (the header is row 1), to name the row an error stops at.
    last_row: u64,
    max_field_bytes: usize,
    headers: Arc<[String]>,
    address_idx: usize,
    name_idx: Option<usize>,
    seen: HashMap<Box<str>, u64>,
    candidates: Option<Arc<Candidates>>,
    record: csv::ByteRecord,
    shard: Option<crate::shard::Shard>,
}

/// The addresses that may occur more than once in a recipient file: every real duplicate,
/// plus about 1% false positives. Found with a Bloom filter in one pass, so the passes that
/// follow keep exact first-seen rows for these addresses only.
#[derive(Debug, Default)]
pub struct Candidates {
    addresses: std::collections::HashSet<Box<str>>,
}

impl Candidates {
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.addresses.len()
    }
}

/// A Bloom filter of ~10 bits per row with 7 hashes (about 1% false positives).
struct Bloom {
    bits: Vec<u64>,
    m: u64,
    keys: [std::collections::hash_map::RandomState; 2],
}

impl Bloom {
    fn new(rows: u64) -> Bloom {
        let m = (rows * 10).max(1 << 13);
        Bloom {
            bits: vec![0; m.div_ceil(64) as usize],
            m,
            keys: [Default::default(), Default::default()],
        }
    }

    /// Sets the key's bits; returns whether they were all set already.
    fn insert(&mut self, key: &str) -> bool {
        use std::hash::BuildHasher;
        let h1 = self.keys[0].hash_one(key);
        let h2 = self.keys[1].hash_one(key) | 1;
        let mut present = true;
        for i in 0..7u64 {
            let bit = h1.wrapping_add(i.wrapping_mul(h2)) % self.m;
            let (word, mask) = ((bit / 64) as usize, 1u64 << (bit % 64));
            present &= self.bits[word] & mask != 0;
            self.bits[word] |= mask;
        }
        present
    }
}

/// One pass over the file: every address the filter has (probably) seen before is a
/// candidate duplicate.
pub fn duplicate_candidates(source: &RecipientSource) -> Result<Candidates, RecipientsError> {
    let rows = count_lines(&source.file)?;
    let mut bloom = Bloom::new(rows);
    let mut reader = RecipientReader::open(source)?;
    reader.candidates = Some(Arc::new(Candidates::default()));
    let mut found = Candidates::default();
    while let Some(row) = reader.next_row() {
        if let Row::Valid(r) = row? {
            let key = r.address.to_string().to_lowercase();
            if bloom.insert(&key) {
                found.addresses.insert(key.into_boxed_str());
            }
        }
    }
    Ok(found)
}

fn count_lines(path: &Path) -> Result<u64, RecipientsError> {
    use std::io::Read;
    let err = |source| RecipientsError::Open {
        path: path.to_owned(),
        source,
    };
    let mut f = File::open(path).map_err(err)?;
    let mut buf = vec![0u8; 1 << 16];
    let mut lines = 1;
    loop {
        let n = f.read(&mut buf).map_err(err)?;
        if n == 0 {
            return Ok(lines);
        }
        lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
    }
}

impl RecipientReader {
    pub fn open(source: &RecipientSource) -> Result<RecipientReader, RecipientsError> {
        let path = source.file.clone();
        let file = File::open(&path).map_err(|source| RecipientsError::Open {
            path: path.clone(),
            source,
        })?;
        let since_row = Arc::new(AtomicU64::new(0));
        let row_over = Arc::new(AtomicBool::new(false));
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            // Ragged rows are reported per row rather than aborting the whole read.
            .flexible(true)
            .from_reader(BufReader::new(RowCapped {
                inner: file,
                since_row: since_row.clone(),
                over: row_over.clone(),
            }));
        let raw_headers = reader
            .byte_headers()
            .map_err(|e| {
                if row_over.load(Ordering::Relaxed) {
                    RecipientsError::RowTooLong {
                        path: path.clone(),
                        row: 1,
                    }
                } else {
                    RecipientsError::Header {
                        path: path.clone(),
                        message: e.to_string(),
                    }
                }
            })?
            .clone();
        since_row.store(0, Ordering::Relaxed);
        if raw_headers.is_empty() || (raw_headers.len() == 1 && raw_headers[0].is_empty()) {
            return Err(RecipientsError::Empty { path });
        }
        let mut headers = Vec::with_capacity(raw_headers.len());
        // A set, not `headers.contains`: 40,000 columns made that check quadratic (30 s).
        let mut names = HashSet::with_capacity(raw_headers.len());
        for (i, h) in raw_headers.iter().enumerate() {
            let h = std::str::from_utf8(h).map_err(|_| RecipientsError::Header {
                path: path.clone(),
                message: format!(
                    "column {} is not valid UTF-8; save the file as UTF-8",
                    i + 1
                ),
            })?;
            // csv strips a UTF-8 byte-order mark; trimming guards against one written twice
            // and against stray spaces around names like "email ".
            let h = h.trim_start_matches('\u{feff}').trim().to_owned();
            if !names.insert(h.clone()) {
                return Err(RecipientsError::DuplicateColumn { path, column: h });
            }
            headers.push(h);
        }
        let find = |column: &str, key: &'static str| {
            headers
                .iter()
                .position(|h| h.eq_ignore_ascii_case(column))
                .ok_or_else(|| RecipientsError::MissingColumn {
                    path: path.clone(),
                    column: column.to_owned(),
                    key,
                    available: headers.join(", "),
                })
        };
        let address_idx = find(&source.address_column, "address_column")?;
        let name_idx = source
            .name_column
            .as_deref()
            .map(|c| find(c, "name_column"))
            .transpose()?;
        Ok(RecipientReader {
            path,
            reader,
            since_row,
            row_over,
            last_row: 1,
            max_field_bytes: source.max_field_bytes,
            headers: headers.into(),
            address_idx,
            name_idx,
            seen: HashMap::new(),
            candidates: None,
            record: csv::ByteRecord::new(),
            shard: source.shard,
        })
    }

    /// Remember only these addresses for duplicate detection (see [`Candidates`]).
    pub fn with_candidates(mut self, c: Arc<Candidates>) -> RecipientReader {
        self.candidates = Some(c);
        self
    }

    pub fn headers(&self) -> &Arc<[String]> {
        &self.headers
    }

    /// The next row, or `None` at the end of the file. An `Err` is an I/O failure: the file
    /// cannot be read further.
    pub fn next_row(&mut self) -> Option<Result<Row, RecipientsError>> {
        loop {
            let row = self.next_any_row()?;
            // Another shard's row is skipped here, so the survey, the pipeline and the
            // report see the shard only. Duplicates of one address share its shard.
            match (&row, self.shard) {
                (Ok(r), Some(shard)) if !shard.holds(r.address()) => continue,
                _ => return Some(row),
            }
        }
    }

    fn next_any_row(&mut self) -> Option<Result<Row, RecipientsError>> {
        // Read before asking for the position: afterwards it points past this record.
        let result = self.reader.read_byte_record(&mut self.record);
        self.since_row.store(0, Ordering::Relaxed);
        let row = self.record.position().map_or(0, |p| p.record()) + 1;
        match result {
            Ok(false) => None,
            Ok(true) => {
                self.last_row = row;
                Some(Ok(self.classify(row)))
            }
            Err(_) if self.row_over.load(Ordering::Relaxed) => {
                // The reader cannot resync inside an overlong row: the file is refused, and
                // the survey does this before anything is sent.
                Some(Err(RecipientsError::RowTooLong {
                    path: self.path.clone(),
                    row: self.last_row + 1,
                }))
            }
            Err(e) => match e.into_kind() {
                csv::ErrorKind::Io(source) => Some(Err(RecipientsError::Io {
                    path: self.path.clone(),
                    row,
                    source,
                })),
                other => Some(Ok(Row::Invalid {
                    row,
                    address: String::new(),
                    reason: format!("not valid CSV: {other:?}"),
                })),
            },
        }
    }

    fn classify(&mut self, row: u64) -> Row {
        let raw_address = String::from_utf8_lossy(self.record.get(self.address_idx).unwrap_or(b""))
            .trim()
            .to_owned();
        let invalid = |reason: String| Row::Invalid {
            row,
            address: raw_address.clone(),
            reason,
        };
        if self.record.len() != self.headers.len() {
            return invalid(format!(
                "has {} fields but the header has {}; quote fields that contain commas",
                self.record.len(),
                self.headers.len()
            ));
        }
        let mut fields = Vec::with_capacity(self.record.len());
        for (i, f) in self.record.iter().enumerate() {
            if f.len() > self.max_field_bytes {
                return invalid(format!(
                    "column {:?} is {} KB; the limit is {} KB (limits.max_field_kb in campaign.toml)",
                    self.headers[i],
                    f.len().div_ceil(1024),
                    self.max_field_bytes / 1024
                ));
            }
            match std::str::from_utf8(f) {
                Ok(s) => fields.push(s.to_owned()),
                Err(_) => {
                    return invalid(format!(
                        "column {:?} is not valid UTF-8; save the file as UTF-8",
                        self.headers[i]
                    ));
                }
            }
        }
        let (address, display) = match crate::address::parse(&fields[self.address_idx]) {
            Ok(parsed) => parsed,
            Err(reason) => return invalid(reason),
        };
        let name = match self.name_idx {
            Some(i) => {
                let n = fields[i].trim();
                if let Some(c) = header_unsafe_char(n) {
                    return invalid(format!(
                        "column {:?} contains {c}, which would break the To header; remove it",
                        self.headers[i]
                    ));
                }
                (!n.is_empty()).then(|| n.to_owned())
            }
            // address::parse already refused control characters anywhere in the cell.
            None => display,
        };
        if let Some(n) = &name
            && n.chars().count() > MAX_NAME_CHARS
        {
            return invalid(format!(
                "the display name is {} characters; at most {MAX_NAME_CHARS} are sent",
                n.chars().count()
            ));
        }
        let key: Box<str> = address.to_string().to_lowercase().into();
        // An address that is not a candidate occurs once: nothing to remember.
        if self
            .candidates
            .as_ref()
            .is_some_and(|c| !c.addresses.contains(&key))
        {
            return Row::Valid(Recipient {
                row,
                address,
                name,
                fields,
            });
        }
        if let Some(&first_row) = self.seen.get(&key) {
            return Row::Duplicate {
                row,
                address: address.to_string(),
                first_row,
            };
        }
        self.seen.insert(key, row);
        Row::Valid(Recipient {
            row,
            address,
            name,
            fields,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(csv: &[u8]) -> (tempfile::TempDir, RecipientReader) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.csv");
        std::fs::write(&path, csv).unwrap();
        let r = RecipientReader::open(&RecipientSource {
            file: path,
            address_column: "email".into(),
            name_column: None,
            max_field_bytes: 64 << 10,
            shard: None,
        })
        .unwrap();
        (dir, r)
    }

    fn all(r: &mut RecipientReader) -> Vec<Row> {
        std::iter::from_fn(|| r.next_row())
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn bom_quoted_newlines_invalid_and_duplicates() {
        let (_d, mut r) = reader(
            b"\xEF\xBB\xBFemail,note\na@example.com,\"two\nlines\"\nbad,x\nA@Example.com,dup\nb@example.com,ok\n",
        );
        assert_eq!(&r.headers()[..], ["email", "note"]);
        let rows = all(&mut r);
        assert!(matches!(&rows[0], Row::Valid(v) if v.row == 2 && v.fields[1] == "two\nlines"));
        assert!(matches!(&rows[1], Row::Invalid { row: 3, .. }));
        assert!(matches!(
            &rows[2],
            Row::Duplicate {
                row: 4,
                first_row: 2,
                ..
            }
        ));
        assert!(matches!(&rows[3], Row::Valid(v) if v.row == 5));
    }

    #[test]
    fn candidates_find_every_duplicate_with_little_memory() {
        let mut csv = String::from("email\n");
        for i in 0..5000 {
            csv.push_str(&format!("u{i}@example.com\n"));
        }
        csv.push_str("U17@Example.com\nu4999@example.com\n");
        let (dir, _) = reader(csv.as_bytes());
        let source = RecipientSource {
            file: dir.path().join("r.csv"),
            address_column: "email".into(),
            name_column: None,
            max_field_bytes: 64 << 10,
            shard: None,
        };
        let c = Arc::new(duplicate_candidates(&source).unwrap());
        assert!(c.len() >= 2 && c.len() < 200, "{} candidates", c.len());
        let mut r = RecipientReader::open(&source).unwrap().with_candidates(c);
        let rows = all(&mut r);
        let dups: Vec<(u64, u64)> = rows
            .iter()
            .filter_map(|r| match r {
                Row::Duplicate { row, first_row, .. } => Some((*row, *first_row)),
                _ => None,
            })
            .collect();
        assert_eq!(dups, [(5002, 19), (5003, 5001)]);
    }

    #[test]
    fn ragged_row_is_invalid_not_fatal() {
        let (_d, mut r) = reader(b"email,name\na@example.com\nb@example.com,B\n");
        let rows = all(&mut r);
        assert!(matches!(&rows[0], Row::Invalid { reason, .. } if reason.contains("has 1 fields")));
        assert!(matches!(&rows[1], Row::Valid(_)));
    }

    #[test]
    fn missing_column_lists_available() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.csv");
        std::fs::write(&path, "mail,name\n").unwrap();
        let err = RecipientReader::open(&RecipientSource {
            file: path,
            address_column: "email".into(),
            name_column: None,
            max_field_bytes: 64 << 10,
            shard: None,
        })
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("mail, name"), "{err}");
        assert!(err.contains("address_column"), "{err}");
    }
}
