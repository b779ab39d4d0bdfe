//! Shards: `send --shard K/N` sends only the rows whose address falls in shard K of N, so N
//! processes (on one machine or many) share one list without overlap. Each shard keeps its
//! own journal, lock and report in `<state>/<id>/shard-K-of-N/`; `mailshot report` merges
//! the reports and checks that every row appears exactly once.
//!
//! **The partition** is FNV-1a (64-bit) of the normalised address (trimmed, lowercase: the
//! form the journal keys on), modulo N; shard K (numbered 1..=N, as people count machines)
//! takes the remainder K - 1. FNV is fixed by its specification, unlike std's randomised
//! hasher, so every machine, every run, every build agrees; and it depends on the address
//! alone, so it is stable under resume and `--accept-changes` (rows moving or new rows do not
//! move anyone else). Duplicates of one address land in one shard, which reports them.

use std::fmt;
use std::path::{Path, PathBuf};

/// Shard K of N, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub k: u32,
    pub n: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    #[error("--shard {0:?}: write K/N, e.g. --shard 1/4 (shard 1 of 4)")]
    Syntax(String),
    #[error(
        "--shard {k}/{n}: shards are numbered 1 to N, and N is at least 1; the shards of 4 are 1/4, 2/4, 3/4 and 4/4"
    )]
    Range { k: u32, n: u32 },
    #[error(
        "--shard {k}/{n}: campaign {campaign} was started in {recorded} shards ({path}); every run of a campaign must use the same count, or rows would move between shards and be sent twice. Use --shard K/{recorded}, or give the campaign a new id"
    )]
    CountChanged {
        k: u32,
        n: u32,
        recorded: u32,
        campaign: String,
        path: PathBuf,
    },
    #[error("cannot record the shard count in {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl std::str::FromStr for Shard {
    type Err = ShardError;

    fn from_str(s: &str) -> Result<Shard, ShardError> {
        let syntax = || ShardError::Syntax(s.to_owned());
        let (k, n) = s.trim().split_once('/').ok_or_else(syntax)?;
        let k: u32 = k.trim().parse().map_err(|_| syntax())?;
        let n: u32 = n.trim().parse().map_err(|_| syntax())?;
        if n == 0 || k == 0 || k > n {
            return Err(ShardError::Range { k, n });
        }
        Ok(Shard { k, n })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.k, self.n)
    }
}

/// FNV-1a, 64 bit (the published offset basis and prime).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The shard (1..=n) an address belongs to.
pub fn shard_of(address: &str, n: u32) -> u32 {
    let normalised = address.trim().to_lowercase();
    (fnv1a(normalised.as_bytes()) % u64::from(n)) as u32 + 1
}

impl Shard {
    pub fn holds(&self, address: &str) -> bool {
        shard_of(address, self.n) == self.k
    }

    /// Where this shard keeps its journal, lock and report.
    pub fn dir(&self, run_dir: &Path) -> PathBuf {
        run_dir.join(format!("shard-{}-of-{}", self.k, self.n))
    }

    /// Records the campaign's shard count on its first sharded run, and refuses a different
    /// count later. Creating the file with `create_new` makes concurrent first runs agree:
    /// one writes, the others read what it wrote.
    pub fn check_count(&self, run_dir: &Path, campaign: &str) -> Result<(), ShardError> {
        let path = run_dir.join("shards");
        let io = |source: std::io::Error| ShardError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(run_dir).map_err(io)?;
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut f) => {
                use std::io::Write;
                f.write_all(format!("{}\n", self.n).as_bytes())
                    .and_then(|()| f.sync_all())
                    .map_err(io)?;
                return Ok(());
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(e)),
        }
        let recorded = recorded_count(&path).map_err(io)?;
        match recorded {
            // Written by a concurrent first run a moment ago and not yet filled in.
            None => Ok(()),
            Some(r) if r == self.n => Ok(()),
            Some(recorded) => Err(ShardError::CountChanged {
                k: self.k,
                n: self.n,
                recorded,
                campaign: campaign.to_owned(),
                path,
            }),
        }
    }
}

/// The shard count a campaign's state folder records, if any.
pub fn recorded(run_dir: &Path) -> std::io::Result<Option<u32>> {
    match recorded_count(&run_dir.join("shards")) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        other => other,
    }
}

fn recorded_count(path: &Path) -> std::io::Result<Option<u32>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_k_of_n_and_refuses_the_rest() {
        assert_eq!("3/4".parse::<Shard>().unwrap(), Shard { k: 3, n: 4 });
        assert_eq!("1/1".parse::<Shard>().unwrap(), Shard { k: 1, n: 1 });
        for bad in ["3/2", "0/0", "0/4", "5/4"] {
            let e = bad.parse::<Shard>().unwrap_err();
            assert!(matches!(e, ShardError::Range { .. }), "{bad}: {e}");
            assert!(e.to_string().contains("numbered 1 to N"), "{e}");
        }
        for bad in ["3", "a/b", "1/", "-1/2", ""] {
            assert!(
                matches!(bad.parse::<Shard>(), Err(ShardError::Syntax(_))),
                "{bad}"
            );
        }
    }

    /// Pinned values: the partition must never change between releases, or a resumed
    /// campaign would move recipients between shards.
    #[test]
    fn the_hash_is_fixed() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(
            shard_of("Ann@Example.com ", 4),
            shard_of("ann@example.com", 4)
        );
    }

    #[test]
    fn every_address_is_in_exactly_one_shard_and_shards_are_even() {
        let n = 4;
        let mut sizes = [0u32; 4];
        for i in 0..4000 {
            let a = format!("user{i}@example.com");
            let holders: Vec<u32> = (1..=n).filter(|&k| Shard { k, n }.holds(&a)).collect();
            assert_eq!(holders.len(), 1);
            sizes[holders[0] as usize - 1] += 1;
        }
        assert!(sizes.iter().all(|&s| (800..1200).contains(&s)), "{sizes:?}");
    }

    #[test]
    fn a_changed_count_is_refused_naming_the_campaign() {
        let dir = tempfile::tempdir().unwrap();
        Shard { k: 1, n: 4 }.check_count(dir.path(), "nov").unwrap();
        Shard { k: 3, n: 4 }.check_count(dir.path(), "nov").unwrap();
        let e = Shard { k: 1, n: 2 }
            .check_count(dir.path(), "nov")
            .unwrap_err()
            .to_string();
        assert!(e.contains("campaign nov"), "{e}");
        assert!(e.contains("4 shards"), "{e}");
        assert_eq!(recorded(dir.path()).unwrap(), Some(4));
    }
}
