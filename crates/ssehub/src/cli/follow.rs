//! The reading half of `ssehub publish --follow`: the lines appended to a file, like
//! `tail -F`, or standard input's lines, handed over one by one to be published.
//!
//! A file is polled rather than watched: it works the same on every filesystem (network mounts
//! and containers' bind mounts included), and a quarter of a second is quick enough for a log.
//! Rotation is survived both ways it is done: a file *replaced* (renamed away and created anew:
//! logrotate's default) is read to its end, then the new one from its start; a file *truncated*
//! in place (`copytruncate`) is read again from its start. A truncation followed, before the
//! next poll, by more writes than the file held is not seen (as with `tail`).

use std::fs::File;
use std::io::{BufRead as _, ErrorKind, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::mpsc;

/// How often the file is looked at.
const POLL: Duration = Duration::from_millis(250);

/// Lines waiting to be published before the reader waits for the publisher.
const QUEUE: usize = 1024;

/// Cuts bytes into lines. A line is published once its newline arrives; `\r\n` counts as a
/// newline; empty lines are dropped (nothing to show).
#[derive(Default)]
pub(crate) struct Lines {
    /// The line being read, until its newline comes.
    partial: Vec<u8>,
}

impl Lines {
    /// The lines `bytes` completes.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        for part in bytes.split_inclusive(|b| *b == b'\n') {
            self.partial.extend_from_slice(part);
            if part.ends_with(b"\n") {
                out.extend(self.flush());
            }
        }
        out
    }

    /// The unfinished line, if any (at the end of input, or of a rotated file).
    pub(crate) fn flush(&mut self) -> Option<String> {
        let bytes = std::mem::take(&mut self.partial);
        let text = String::from_utf8_lossy(&bytes);
        let line = text.trim_end_matches(['\n', '\r']);
        (!line.is_empty()).then(|| line.to_owned())
    }
}

/// Which file a path names right now, to notice it was replaced.
#[cfg(unix)]
fn identity(meta: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt as _;
    (meta.dev(), meta.ino())
}

/// Without inode numbers a replacement shows only as a truncation (or not at all).
#[cfg(not(unix))]
fn identity(_meta: &std::fs::Metadata) -> (u64, u64) {
    (0, 0)
}

/// A file being followed.
pub(crate) struct FileTail {
    /// The path given; it may name another file after a rotation.
    path: PathBuf,
    /// The file being read, once it exists.
    file: Option<File>,
    /// Its identity, compared with what the path names now.
    id: (u64, u64),
    /// How far it has been read.
    offset: u64,
    /// Its unfinished line.
    lines: Lines,
}

impl FileTail {
    /// Follows `path` from its current end (only lines written from now on); a file that does
    /// not exist yet is followed from its start once it appears.
    ///
    /// # Errors
    /// The file exists but cannot be read.
    pub(crate) fn open(path: &Path) -> std::io::Result<Self> {
        let mut tail = FileTail {
            path: path.to_owned(),
            file: None,
            id: (0, 0),
            offset: 0,
            lines: Lines::default(),
        };
        match File::open(path) {
            Ok(file) => {
                let meta = file.metadata()?;
                tail.id = identity(&meta);
                tail.offset = meta.len();
                tail.file = Some(file);
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(tail)
    }

    /// Whether the file exists yet.
    pub(crate) fn is_open(&self) -> bool {
        self.file.is_some()
    }

    /// Reads what was written since the last poll: the complete lines, in order.
    ///
    /// # Errors
    /// Reading failed (not: the file is missing, which a rotation makes it for a moment).
    pub(crate) fn poll(&mut self) -> std::io::Result<Vec<String>> {
        let mut out = Vec::new();
        if let Some(file) = &mut self.file {
            if file.metadata()?.len() < self.offset {
                out.extend(self.lines.flush());
                self.offset = 0;
            }
            file.seek(SeekFrom::Start(self.offset))?;
            let mut bytes = Vec::new();
            self.offset += file.read_to_end(&mut bytes)? as u64;
            out.extend(self.lines.push(&bytes));
        }
        // The old file was read to its end above, so switching now loses nothing written to it
        // before the new one appeared.
        match std::fs::metadata(&self.path) {
            Ok(meta) if self.file.is_none() || identity(&meta) != self.id => {
                let file = match File::open(&self.path) {
                    Ok(f) => f,
                    Err(e) if e.kind() == ErrorKind::NotFound => return Ok(out),
                    Err(e) => return Err(e),
                };
                out.extend(self.lines.flush());
                self.id = identity(&file.metadata()?);
                self.offset = 0;
                self.file = Some(file);
                out.extend(self.poll()?);
            }
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(out)
    }
}

/// Reads `source` (a path, or `-` for standard input) on a thread of its own and sends its
/// lines; the channel ends after standard input's end, or with the error that stopped it.
/// `ready` is told once the file is followed (or standard input read), so a person (and a
/// test) knows that lines written from then on are published.
pub(crate) fn spawn(source: &str, ready: impl FnOnce() + Send + 'static) -> Reader {
    let (tx, rx) = mpsc::channel(QUEUE);
    let source = source.to_owned();
    std::thread::spawn(move || {
        let result = if source == "-" {
            ready();
            read_stdin(&tx)
        } else {
            follow_file(Path::new(&source), &tx, ready)
        };
        if let Err(err) = result {
            let _ = tx.blocking_send(Err(err));
        }
    });
    rx
}

/// What [`spawn`] returns: lines, or the error that ended reading.
pub(crate) type Reader = mpsc::Receiver<std::io::Result<String>>;

fn read_stdin(tx: &mpsc::Sender<std::io::Result<String>>) -> std::io::Result<()> {
    let mut stdin = std::io::stdin().lock();
    let mut lines = Lines::default();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if stdin.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        for line in lines.push(&buf) {
            if tx.blocking_send(Ok(line)).is_err() {
                return Ok(());
            }
        }
    }
    if let Some(line) = lines.flush() {
        let _ = tx.blocking_send(Ok(line));
    }
    Ok(())
}

fn follow_file(
    path: &Path,
    tx: &mpsc::Sender<std::io::Result<String>>,
    ready: impl FnOnce(),
) -> std::io::Result<()> {
    let mut tail = FileTail::open(path)?;
    if !tail.is_open() {
        // `ssehub publish` sets up no logging: it talks to the person who ran it.
        eprintln!(
            "ssehub publish: {} does not exist yet; waiting for it",
            path.display()
        );
    }
    ready();
    loop {
        for line in tail.poll()? {
            if tx.blocking_send(Ok(line)).is_err() {
                return Ok(());
            }
        }
        if tx.is_closed() {
            return Ok(());
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn append(path: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn lines_wait_for_their_newline_and_drop_empty_ones() {
        let mut lines = Lines::default();
        assert!(lines.push(b"par").is_empty());
        assert_eq!(lines.push(b"tial\r\n\nnext\nrest"), ["partial", "next"]);
        assert_eq!(lines.flush().as_deref(), Some("rest"));
        assert_eq!(lines.flush(), None);
        assert_eq!(lines.push(b"caf\xc3\xa9 \xff\n"), ["café \u{fffd}"]);
    }

    #[test]
    fn follows_new_lines_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        append(&path, "old line\n");
        let mut tail = FileTail::open(&path).unwrap();
        assert!(tail.poll().unwrap().is_empty());
        append(&path, "one\ntw");
        assert_eq!(tail.poll().unwrap(), ["one"]);
        append(&path, "o\n");
        assert_eq!(tail.poll().unwrap(), ["two"]);
    }

    #[test]
    fn a_truncated_file_is_read_again_from_its_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        let mut tail = FileTail::open(&path).unwrap();
        assert!(!tail.is_open());
        append(&path, "a long line before the truncation\n");
        assert_eq!(tail.poll().unwrap(), ["a long line before the truncation"]);
        std::fs::write(&path, "after\n").unwrap();
        assert_eq!(tail.poll().unwrap(), ["after"]);
    }

    #[test]
    fn a_replaced_file_is_read_to_its_end_then_the_new_one_from_its_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        append(&path, "");
        let mut tail = FileTail::open(&path).unwrap();
        append(&path, "before\n");
        std::fs::rename(&path, dir.path().join("app.log.1")).unwrap();
        // Still written to by its old writer, then the path is gone for a moment.
        append(&dir.path().join("app.log.1"), "last words\nunfinished");
        assert_eq!(tail.poll().unwrap(), ["before", "last words"]);
        append(&path, "new file\n");
        assert_eq!(tail.poll().unwrap(), ["unfinished", "new file"]);
        append(&path, "more\n");
        assert_eq!(tail.poll().unwrap(), ["more"]);
    }
}
