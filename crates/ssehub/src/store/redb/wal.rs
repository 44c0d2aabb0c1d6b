//! The write-ahead log that makes a [`RedbStore`](super::RedbStore) append durable with one
//! `write` and one `fdatasync`.
//!
//! The file (`wal` in the data directory) holds the entries committed since the last checkpoint,
//! each framed as a record:
//!
//! ```text
//! u32 payload length | u32 crc32 | u64 generation | u64 seq | payload (the `codec` encoding)
//! ```
//!
//! Integers are little-endian; the CRC-32 (IEEE) covers every field but itself. A checkpoint (a
//! durable redb commit) makes the log's content redundant, so the writer starts over at offset 0
//! with a new random *generation*; records are not erased. What the log holds is therefore one run
//! of records of a single generation with consecutive seqs from offset 0, followed by anything:
//! unused (zeroed) space, records of older generations, or a torn record from a write cut short
//! by a crash. [`recover`] reads that run and stops at the first record that does not continue it.
//!
//! Why a record that does not continue the run is never an acknowledged one: batches are written
//! one after another, each acknowledged only after its `fdatasync` returned, so every
//! acknowledged record precedes any partly written one. A record of the current generation that
//! was written but refused (its batch failed) is unreachable: the writer starts a new generation
//! (after a checkpoint) before it writes again, or zeroes the batch's first header.
//!
//! The file grows in [`GROW_BYTES`] steps of zeroes written together with the batch that needs
//! the room, and is reused from offset 0 after each checkpoint. Overwriting blocks that already
//! exist lets `fdatasync` flush only data; appending to a growing file also has to journal the new
//! size, which costs about half as much again on the disks measured (see `benches/store.rs`).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Name of the log file inside the data directory.
pub(crate) const FILE_NAME: &str = "wal";

/// Bytes of a record before its payload.
const HEADER: usize = 24;

/// The file is extended by this much zeroed space at a time, so that most batches overwrite
/// blocks that exist already.
const GROW_BYTES: u64 = 1 << 20;

/// A scratch buffer larger than this is released after its batch instead of being kept.
const KEEP_BUFFER: usize = 1 << 20;

/// The log, as the writer thread holds it between batches.
#[derive(Debug)]
pub(crate) struct Wal {
    file: File,
    path: PathBuf,
    /// Where the next batch is written; 0 right after a checkpoint.
    offset: u64,
    /// Length of the file: space up to here exists and is overwritten without growing the file.
    allocated: u64,
    /// Tag of every record written since the last reset; see the module docs.
    generation: u64,
    /// Reused between batches so that a batch costs one allocation-free `write`.
    buf: Vec<u8>,
}

/// What [`recover`] found.
#[derive(Debug, Default)]
pub(crate) struct Recovered {
    /// The run of valid records from offset 0: `(seq, payload)` with consecutive seqs.
    pub(crate) records: Vec<(u64, Vec<u8>)>,
    /// Byte offset where the run ends.
    pub(crate) end: u64,
    /// Why the run ended at something other than unused space, the end of the file or an older
    /// generation: after a crash, a torn record is normal here.
    pub(crate) invalid: Option<&'static str>,
}

/// Reads the log in `dir`, if there is one, and returns the run of records it holds (see the
/// module docs); never fails on the log's content, only on I/O.
///
/// # Errors
/// When the file exists but cannot be read.
pub(crate) fn recover(dir: &Path) -> io::Result<Recovered> {
    let bytes = match std::fs::read(dir.join(FILE_NAME)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Recovered::default()),
        Err(e) => return Err(e),
    };
    Ok(scan(&bytes))
}

fn scan(bytes: &[u8]) -> Recovered {
    let mut found = Recovered::default();
    let mut at = 0;
    let mut run: Option<(u64, u64)> = None;
    loop {
        let Some(header) = bytes.get(at..at + HEADER) else {
            if at < bytes.len() {
                found.invalid = Some("truncated record header");
            }
            break;
        };
        if header.iter().all(|&b| b == 0) {
            break;
        }
        let field = |i: usize| &header[i..];
        let len = u32_at(field(0)) as usize;
        let crc = u32_at(field(4));
        let generation = u64_at(field(8));
        let seq = u64_at(field(16));
        let Some(payload) = bytes.get(at + HEADER..at + HEADER + len) else {
            found.invalid = Some("record runs past the end of the file");
            break;
        };
        if checksum(header, payload) != crc {
            found.invalid = Some("record checksum mismatch");
            break;
        }
        match run {
            Some((current, _)) if generation != current => break,
            Some((_, last)) if seq != last.wrapping_add(1) => {
                found.invalid = Some("record seq does not follow the previous one");
                break;
            }
            _ => {}
        }
        run = Some((generation, seq));
        found.records.push((seq, payload.to_vec()));
        at += HEADER + len;
    }
    found.end = at as u64;
    found
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

/// The CRC of a record: its header without the CRC field, then the payload.
fn checksum(header: &[u8], payload: &[u8]) -> u32 {
    let crc = crc32_update(!0, &header[..4]);
    let crc = crc32_update(crc, &header[8..HEADER]);
    !crc32_update(crc, payload)
}

/// CRC-32 (IEEE 802.3, reflected), the zlib/PNG checksum; small enough not to need a crate.
const CRC_TABLE: [u32; 256] = {
    let mut table = [0; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

fn crc32_update(mut crc: u32, bytes: &[u8]) -> u32 {
    for &b in bytes {
        crc = CRC_TABLE[((crc ^ u32::from(b)) & 0xFF) as usize] ^ (crc >> 8);
    }
    crc
}

impl Wal {
    /// Opens (or creates) the log in `dir` for writing from offset 0 in a new generation. Call
    /// it only once everything [`recover`] returned is durable elsewhere: writing overwrites it.
    ///
    /// # Errors
    /// When the file cannot be created or opened.
    pub(crate) fn open(dir: &Path) -> io::Result<Self> {
        let path = dir.join(FILE_NAME);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        let allocated = file.metadata()?.len();
        // The file's directory entry must be durable too, or a power loss could forget the file
        // with acknowledged records in it; syncing the directory once, here, covers that.
        File::open(dir)?.sync_all()?;
        Ok(Wal {
            file,
            path,
            offset: 0,
            allocated,
            generation: new_generation(0),
            buf: Vec::new(),
        })
    }

    /// Path of the file, for messages.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes written since the last reset.
    pub(crate) fn used(&self) -> u64 {
        self.offset
    }

    /// Bytes `records` take in the log.
    pub(crate) fn size_of<'a>(records: impl IntoIterator<Item = &'a [u8]>) -> u64 {
        records
            .into_iter()
            .map(|payload| (HEADER + payload.len()) as u64)
            .sum()
    }

    /// Appends `records` (seq, payload) with one `write` and one `fdatasync`; when this returns
    /// `Ok`, they survive a crash or power loss. On error, the records may be partly written;
    /// the caller must not write again before [`Wal::reset`] (see the module docs).
    ///
    /// # Errors
    /// I/O errors of the write or the sync, or a payload longer than a record can hold.
    pub(crate) fn append<'a>(
        &mut self,
        records: impl IntoIterator<Item = (u64, &'a [u8])>,
    ) -> io::Result<()> {
        self.buf.clear();
        for (seq, payload) in records {
            let len = u32::try_from(payload.len()).map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidInput, "entry too large for the log")
            })?;
            let start = self.buf.len();
            self.buf.extend_from_slice(&len.to_le_bytes());
            self.buf.extend_from_slice(&[0; 4]);
            self.buf.extend_from_slice(&self.generation.to_le_bytes());
            self.buf.extend_from_slice(&seq.to_le_bytes());
            let crc = checksum(&self.buf[start..], payload);
            self.buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
            self.buf.extend_from_slice(payload);
        }
        let end = self.offset + self.buf.len() as u64;
        if end > self.allocated {
            // Grow by whole steps of zeroes in this same write, so the sync that makes the batch
            // durable also makes the new space exist for the batches after it.
            let grown = end.div_ceil(GROW_BYTES) * GROW_BYTES;
            self.buf.resize((grown - self.offset) as usize, 0);
        }
        let written = self.file.write_all_at(&self.buf, self.offset);
        let synced = written.and_then(|()| self.file.sync_data());
        if self.buf.capacity() > KEEP_BUFFER {
            self.buf = Vec::new();
        }
        synced?;
        self.allocated = self.allocated.max(end.div_ceil(GROW_BYTES) * GROW_BYTES);
        self.offset = end;
        Ok(())
    }

    /// Zeroes the header of the record at `offset` and syncs, so that recovery stops there: for a
    /// batch that reached the log but whose redb commit failed, so its publishers got an error.
    ///
    /// # Errors
    /// I/O errors of the write or the sync.
    pub(crate) fn cut_at(&mut self, offset: u64) -> io::Result<()> {
        self.file.write_all_at(&[0; HEADER], offset)?;
        self.file.sync_data()
    }

    /// Starts over at offset 0 in a new generation; call it only right after a checkpoint, since
    /// everything written before becomes garbage.
    pub(crate) fn reset(&mut self) {
        self.offset = 0;
        self.generation = new_generation(self.generation);
    }

    /// Checks that the file still takes a sync, for the store's health probe.
    ///
    /// # Errors
    /// The sync's I/O error.
    pub(crate) fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}

#[cfg(test)]
impl Wal {
    /// Swaps the file for a read-only handle to it, so that writes fail as on a broken disk.
    pub(crate) fn break_writes(&mut self) {
        self.file = File::open(&self.path).unwrap();
    }

    /// Undoes [`Wal::break_writes`].
    pub(crate) fn mend_writes(&mut self) {
        self.file = OpenOptions::new().write(true).open(&self.path).unwrap();
    }
}

/// A random generation different from `previous` and from 0 (which would make a header of
/// zeroes look like a record).
fn new_generation(previous: u64) -> u64 {
    loop {
        let generation: u64 = rand::random();
        if generation != previous && generation != 0 {
            return generation;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payloads(n: u64) -> Vec<(u64, Vec<u8>)> {
        (1..=n)
            .map(|seq| (seq, format!("entry {seq}").into_bytes()))
            .collect()
    }

    fn write(wal: &mut Wal, records: &[(u64, Vec<u8>)]) {
        wal.append(records.iter().map(|(s, p)| (*s, p.as_slice())))
            .unwrap();
    }

    fn seqs(found: &Recovered) -> Vec<u64> {
        found.records.iter().map(|(s, _)| *s).collect()
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(!crc32_update(!0, b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn missing_file_recovers_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let found = recover(dir.path()).unwrap();
        assert!(found.records.is_empty() && found.invalid.is_none());
    }

    #[test]
    fn batches_read_back_in_order_then_unused_space_ends_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path()).unwrap();
        let all = payloads(5);
        write(&mut wal, &all[..2]);
        write(&mut wal, &all[2..]);
        let found = recover(dir.path()).unwrap();
        assert_eq!(found.records, all);
        assert_eq!(found.invalid, None);
        assert_eq!(found.end, wal.used());
        // The file was grown with zeroes in one step, not record by record.
        let len = std::fs::metadata(wal.path()).unwrap().len();
        assert_eq!(len, GROW_BYTES);
    }

    #[test]
    fn torn_last_record_is_dropped_and_earlier_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path()).unwrap();
        write(&mut wal, &payloads(3));
        let bytes = std::fs::read(wal.path()).unwrap();
        let end = wal.used() as usize;
        // A crash in the middle of the last record: its tail never reached the disk.
        for cut in [end - 1, end - 5, end - 12] {
            let mut torn = bytes[..end].to_vec();
            torn[cut..].fill(0);
            let found = scan(&torn);
            assert_eq!(seqs(&found), [1, 2], "cut at {cut}");
            assert_eq!(found.invalid, Some("record checksum mismatch"));
        }
        // The file itself cut short inside the last record.
        let found = scan(&bytes[..end - 3]);
        assert_eq!(seqs(&found), [1, 2]);
        assert_eq!(found.invalid, Some("record runs past the end of the file"));
        let found = scan(&bytes[..end - "entry 3".len() - 3]);
        assert_eq!(found.invalid, Some("truncated record header"));
    }

    #[test]
    fn corrupt_record_ends_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path()).unwrap();
        write(&mut wal, &payloads(3));
        let mut bytes = std::fs::read(wal.path()).unwrap();
        let second = HEADER + "entry 1".len();
        bytes[second + HEADER] ^= 1;
        let found = scan(&bytes);
        assert_eq!(seqs(&found), [1]);
        assert_eq!(found.invalid, Some("record checksum mismatch"));
    }

    #[test]
    fn reset_hides_the_previous_generation_behind_the_new_run() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path()).unwrap();
        write(&mut wal, &payloads(4));
        wal.reset();
        // Exactly as long as the old record 1, so the old record 2 follows it directly; it
        // continues the seqs but belongs to the old generation.
        write(&mut wal, &[(1, b"entry X".to_vec())]);
        let found = recover(dir.path()).unwrap();
        assert_eq!(found.records, [(1, b"entry X".to_vec())]);
        assert_eq!(found.invalid, None);
    }

    #[test]
    fn cut_hides_a_refused_batch_and_what_follows() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path()).unwrap();
        let all = payloads(4);
        write(&mut wal, &all[..2]);
        let refused = wal.used();
        write(&mut wal, &all[2..]);
        wal.cut_at(refused).unwrap();
        assert_eq!(seqs(&recover(dir.path()).unwrap()), [1, 2]);
    }

    #[test]
    fn a_gap_in_seqs_ends_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path()).unwrap();
        write(&mut wal, &[(1, b"a".to_vec()), (3, b"c".to_vec())]);
        let found = recover(dir.path()).unwrap();
        assert_eq!(seqs(&found), [1]);
        assert_eq!(
            found.invalid,
            Some("record seq does not follow the previous one")
        );
    }

    #[test]
    fn a_batch_larger_than_the_file_grows_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path()).unwrap();
        let big = vec![7_u8; GROW_BYTES as usize + 10];
        wal.append([(1, big.as_slice())]).unwrap();
        write(&mut wal, &[(2, b"after".to_vec())]);
        let found = recover(dir.path()).unwrap();
        assert_eq!(seqs(&found), [1, 2]);
        assert_eq!(found.records[0].1, big);
        let len = std::fs::metadata(wal.path()).unwrap().len();
        assert_eq!(len, 2 * GROW_BYTES);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        use proptest::prelude::*;
        proptest!(|(bytes in prop::collection::vec(any::<u8>(), 0..256))| {
            let _ = scan(&bytes);
        });
    }
}
