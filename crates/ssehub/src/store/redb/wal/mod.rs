//! The write-ahead log that makes a [`RedbStore`](super::RedbStore) append durable with one
//! `write` and one `fdatasync`.
//!
//! The file (`wal` in the data directory) holds the entries committed since the last checkpoint,
//! each framed as a record:
//!
//! ```text
//! u32 flags + payload length | u32 crc32 | u64 generation | u64 seq | payload (the `codec` encoding)
//! ```
//!
//! Integers are little-endian; the CRC-32 (IEEE) covers every field but itself. The length takes
//! the low 31 bits of the first word; its top bit, [`FIRST`], marks the first record of each
//! batch. A checkpoint (a durable redb commit) makes the log's content redundant, so the writer
//! starts over at offset 0 with a new random *generation*; records are not erased. What the log
//! holds is therefore one run of records of a single generation with consecutive seqs from offset
//! 0, followed by anything: unused (zeroed) space, records of older generations, a torn record
//! from a write cut short by a crash, or a *marker* (a header with length 0 and seq 0) in front of
//! a refused batch. [`recover`] reads that run and stops at the first record that does not
//! continue it.
//!
//! Why a record that does not continue the run is never an acknowledged one, unless the file was
//! damaged: batches are written one after another, each acknowledged only after its `fdatasync`
//! returned, so every acknowledged record precedes any partly written one. A batch that failed
//! (its `write` or `fdatasync` returned an error, or its redb commit did) was answered with an
//! error, yet its bytes may have reached the file; the writer puts a marker over its first header
//! before it writes anything else, and never writes to that generation again.
//!
//! Why [`FIRST`]: a power loss during a batch's `write` can persist its pages in any order, so a
//! torn batch may hold valid records after an invalid one. A valid *first* record of a later
//! batch after the end of the run is different: that batch was written only after the one before
//! it was durable, so the run was cut by damage to acknowledged records, not by a crash, and
//! [`recover`] reports it as [`Damage`] instead of ignoring everything after it.
//!
//! The file grows in [`GROW_BYTES`] steps of zeroes written together with the batch that needs
//! the room, and is reused from offset 0 after each checkpoint. Overwriting blocks that already
//! exist lets `fdatasync` flush only data; appending to a growing file also has to journal the new
//! size, which costs about half as much again on the disks measured (see `benches/store.rs`).

mod scan;
#[cfg(test)]
mod tests;

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::store::crc::Crc32;
pub(crate) use scan::{Damage, Recovered, recover};

/// Name of the log file inside the data directory.
pub(crate) const FILE_NAME: &str = "wal";

/// Bytes of a record before its payload.
const HEADER: usize = 24;

/// Top bit of a record's first word: the record starts a batch.
const FIRST: u32 = 1 << 31;

/// The rest of the first word: the payload's length.
const LEN_MASK: u32 = FIRST - 1;

/// The file is extended by this much zeroed space at a time, so that most batches overwrite
/// blocks that exist already.
pub(crate) const GROW_BYTES: u64 = 1 << 20;

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
    /// Makes the next append fail as a broken disk would, for the writer's tests.
    #[cfg(test)]
    fault: Option<Fault>,
}

/// How [`Wal::inject`] makes the next append fail.
#[cfg(test)]
#[derive(Clone, Copy, Debug)]
pub(crate) enum Fault {
    /// Every byte is written, then the `fdatasync` fails.
    SyncFails,
    /// Only this many bytes are written, then the `write` fails (a full disk).
    WriteStopsAfter(usize),
}

/// The header of a record; `payload` is only read for the length and the checksum.
fn header(flags: u32, generation: u64, seq: u64, payload: &[u8]) -> io::Result<[u8; HEADER]> {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|len| len & FIRST == 0)
        .ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "entry too large for the log")
        })?;
    let mut header = [0; HEADER];
    header[..4].copy_from_slice(&(len | flags).to_le_bytes());
    header[8..16].copy_from_slice(&generation.to_le_bytes());
    header[16..].copy_from_slice(&seq.to_le_bytes());
    let crc = checksum(&header, payload);
    header[4..8].copy_from_slice(&crc.to_le_bytes());
    Ok(header)
}

/// The CRC of a record: its header without the CRC field, then the payload.
fn checksum(header: &[u8], payload: &[u8]) -> u32 {
    Crc32::new()
        .update(&header[..4])
        .update(&header[8..HEADER])
        .update(payload)
        .finish()
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
            #[cfg(test)]
            fault: None,
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
    /// `Ok`, they survive a crash or power loss. On error, the records may be partly or wholly
    /// written: the caller must [`Wal::cut_at`] the offset the batch started at and must not
    /// write again before [`Wal::reset`] (see the module docs).
    ///
    /// # Errors
    /// I/O errors of the write or the sync, or a payload longer than a record can hold.
    pub(crate) fn append<'a>(
        &mut self,
        records: impl IntoIterator<Item = (u64, &'a [u8])>,
    ) -> io::Result<()> {
        self.buf.clear();
        let mut flags = FIRST;
        for (seq, payload) in records {
            let header = header(flags, self.generation, seq, payload)?;
            flags = 0;
            self.buf.extend_from_slice(&header);
            self.buf.extend_from_slice(payload);
        }
        let end = self.offset + self.buf.len() as u64;
        if end > self.allocated {
            // Grow by whole steps of zeroes in this same write, so the sync that makes the batch
            // durable also makes the new space exist for the batches after it.
            let grown = end.div_ceil(GROW_BYTES) * GROW_BYTES;
            self.buf.resize((grown - self.offset) as usize, 0);
        }
        let synced = self.write_and_sync();
        if self.buf.capacity() > KEEP_BUFFER {
            self.buf = Vec::new();
        }
        synced?;
        self.allocated = self.allocated.max(end.div_ceil(GROW_BYTES) * GROW_BYTES);
        self.offset = end;
        Ok(())
    }

    fn write_and_sync(&mut self) -> io::Result<()> {
        #[cfg(test)]
        if let Some(fault) = self.fault.take() {
            let failed = || Err(io::Error::other("injected fault"));
            return match fault {
                Fault::SyncFails => {
                    self.file.write_all_at(&self.buf, self.offset)?;
                    failed()
                }
                Fault::WriteStopsAfter(n) => {
                    let n = n.min(self.buf.len());
                    self.file.write_all_at(&self.buf[..n], self.offset)?;
                    failed()
                }
            };
        }
        self.file.write_all_at(&self.buf, self.offset)?;
        self.file.sync_data()
    }

    /// Puts a marker over the header of the record at `offset` and syncs, so that recovery stops
    /// there without taking what follows for damage: for a batch that was answered with an error
    /// although its bytes may have reached the file (see the module docs). Nothing is written
    /// when the file does not hold a whole header there, since recovery cannot read one either.
    ///
    /// # Errors
    /// I/O errors of the write or the sync: until one succeeds, the refused batch would be
    /// replayed by a restart.
    pub(crate) fn cut_at(&mut self, offset: u64) -> io::Result<()> {
        if self.file.metadata()?.len() < offset + HEADER as u64 {
            return Ok(());
        }
        let marker = header(0, self.generation, 0, &[])?;
        self.file.write_all_at(&marker, offset)?;
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
    /// Makes the next append fail as described.
    pub(crate) fn inject(&mut self, fault: Fault) {
        self.fault = Some(fault);
    }

    /// Swaps the file for a read-only handle to it, so that writes fail as on a broken disk.
    pub(crate) fn break_writes(&mut self) {
        self.file = File::open(&self.path).unwrap();
    }

    /// Undoes [`Wal::break_writes`].
    pub(crate) fn mend_writes(&mut self) {
        self.file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.path)
            .unwrap();
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
