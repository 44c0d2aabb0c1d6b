//! Reading the log back on open: the run of records it holds, and whether what ends the run is
//! the normal end of a log (unused space, an older generation, a refused batch's marker, a record
//! torn by a crash) or damage with acknowledged records after it (see the parent module's docs).

use std::io;
use std::path::Path;

use super::{FILE_NAME, FIRST, HEADER, LEN_MASK, checksum};

/// What [`recover`] found.
#[derive(Debug, Default)]
pub(crate) struct Recovered {
    /// The run of valid records from offset 0: `(seq, payload)` with consecutive seqs.
    pub(crate) records: Vec<(u64, Vec<u8>)>,
    /// Byte offset where the run ends.
    pub(crate) end: u64,
    /// Why the run ended at something other than unused space, the end of the file, an older
    /// generation or a marker: after a crash, a torn record is normal here.
    pub(crate) invalid: Option<&'static str>,
    /// Set when a later batch follows the end of the run, which no crash explains.
    pub(crate) damage: Option<Damage>,
}

/// The run ends before a valid first record of a later batch of the same log: the records in
/// between were acknowledged (that batch was written after they were durable) and are damaged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Damage {
    /// Where the run ends: the first byte that does not continue it.
    pub(crate) offset: u64,
    /// What is found there instead.
    pub(crate) reason: &'static str,
    /// Byte offset of the later batch.
    pub(crate) later_offset: u64,
    /// First seq of the later batch.
    pub(crate) later_seq: u64,
}

/// Reads the log in `dir`, if there is one, and returns the run of records it holds (see the
/// module docs); `durable` is the last seq redb holds durably, so that records of older
/// generations (all at or below it) are not taken for evidence of damage. Never fails on the
/// log's content, only on I/O.
///
/// # Errors
/// When the file exists but cannot be read.
pub(crate) fn recover(dir: &Path, durable: u64) -> io::Result<Recovered> {
    let bytes = match std::fs::read(dir.join(FILE_NAME)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Recovered::default()),
        Err(e) => return Err(e),
    };
    Ok(scan(&bytes, durable))
}

pub(super) fn scan(bytes: &[u8], durable: u64) -> Recovered {
    let mut found = Recovered::default();
    let mut at = 0;
    // (generation, last seq) of the run so far.
    let mut run: Option<(u64, u64)> = None;
    // What ended the run, when something might follow it.
    let ended_by = loop {
        let Some(header) = bytes.get(at..at + HEADER) else {
            if at < bytes.len() {
                found.invalid = Some("truncated record header");
            }
            break None;
        };
        if header.iter().all(|&b| b == 0) {
            break Some("zeroed record header");
        }
        let word = u32_at(header);
        let generation = u64_at(&header[8..]);
        let seq = u64_at(&header[16..]);
        let len = (word & LEN_MASK) as usize;
        let Some(payload) = bytes.get(at + HEADER..at + HEADER + len) else {
            found.invalid = Some("record runs past the end of the file");
            break found.invalid;
        };
        if checksum(header, payload) != u32_at(&header[4..]) {
            found.invalid = Some("record checksum mismatch");
            break found.invalid;
        }
        if run.is_some_and(|(current, _)| generation != current) {
            break Some("record of another generation");
        }
        if word == 0 && seq == 0 {
            // A marker: the batch behind it was refused, and nothing follows it in this
            // generation.
            break None;
        }
        if run.is_some_and(|(_, last)| seq != last.wrapping_add(1)) {
            found.invalid = Some("record seq does not follow the previous one");
            break found.invalid;
        }
        run = Some((generation, seq));
        found.records.push((seq, payload.to_vec()));
        at += HEADER + len;
    };
    found.end = at as u64;
    if let Some(reason) = ended_by {
        let after = run.map_or(durable, |(_, last)| last.max(durable));
        let generation = run.map(|(generation, _)| generation);
        found.damage = later_batch(bytes, at + 1, generation, after).map(|(offset, seq)| Damage {
            offset: at as u64,
            reason,
            later_offset: offset,
            later_seq: seq,
        });
    }
    found
}

/// The first valid record at or after `from` that starts a batch later than the one holding the
/// seq after `after`, of `generation` when the run had one: see the module docs.
fn later_batch(
    bytes: &[u8],
    from: usize,
    generation: Option<u64>,
    after: u64,
) -> Option<(u64, u64)> {
    // More records than this cannot fit in the file, so a larger seq is garbage; checking the seq
    // first keeps this byte-by-byte search cheap.
    let most = (bytes.len() / HEADER) as u64;
    let last_start = bytes.len().checked_sub(HEADER)?;
    (from..=last_start).find_map(|at| {
        let header = &bytes[at..at + HEADER];
        let seq = u64_at(&header[16..]);
        // The damaged batch holds at least the seq after `after`, so a later one starts beyond.
        let ahead = seq.checked_sub(after)?;
        if !(2..=most).contains(&ahead) {
            return None;
        }
        let word = u32_at(header);
        if word & FIRST == 0 || generation.is_some_and(|g| g != u64_at(&header[8..])) {
            return None;
        }
        let len = (word & LEN_MASK) as usize;
        let payload = bytes.get(at + HEADER..at + HEADER + len)?;
        (checksum(header, payload) == u32_at(&header[4..])).then_some((at as u64, seq))
    })
}

fn u32_at(bytes: &[u8]) -> u32 {
    let mut word = [0; 4];
    word.copy_from_slice(&bytes[..4]);
    u32::from_le_bytes(word)
}

fn u64_at(bytes: &[u8]) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(word)
}
