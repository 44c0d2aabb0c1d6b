//! The Lua scripts that touch the history, and their replies as Rust values.
//!
//! Every change to the history is one script, so it is atomic: concurrent nodes get one total
//! order and gap-free seqs, and a crash never leaves a log entry without its id (or the
//! reverse). Every script first checks the history's identity (`lua/prologue.lua`), so a node
//! learns of lost or replaced history in the same round trip as its request.
//!
//! The `#!lua` line makes Redis (7.0 or newer) check a script's flags before running it: a
//! script not flagged `allow-oom` is refused whole when Redis is out of memory, instead of
//! failing half-way, and every script here may write (the prologue creates the identity), so
//! a read-only replica refuses them all.

use redis::{Script, Value};

use super::view::Generation;

macro_rules! script {
    ($flags:literal, $file:literal) => {
        concat!(
            $flags,
            "\n",
            include_str!("lua/prologue.lua"),
            include_str!($file)
        )
    };
}

/// The compiled scripts; `redis` sends them by SHA and loads them again after a Redis restart.
pub(super) struct Scripts {
    /// `lua/append.lua`: one update in, its seq out.
    pub(super) append: Script,
    /// `lua/read.lua`: replay pages and the feed's reads.
    pub(super) read: Script,
    /// `lua/prune.lua`: retention, in bounded steps.
    pub(super) prune: Script,
    /// `lua/remove.lua`: entries from the middle of the log (retention of a topic prefix).
    pub(super) remove: Script,
    /// `lua/stats.lua`: counts, and whether Redis takes writes.
    pub(super) stats: Script,
    /// `lua/lease.lua`: node leases, apart from history (no prologue).
    pub(super) lease: Script,
}

impl Scripts {
    pub(super) fn new() -> Self {
        Scripts {
            append: Script::new(script!("#!lua", "lua/append.lua")),
            read: Script::new(script!("#!lua flags=allow-oom", "lua/read.lua")),
            prune: Script::new(script!("#!lua flags=allow-oom", "lua/prune.lua")),
            remove: Script::new(script!("#!lua flags=allow-oom", "lua/remove.lua")),
            stats: Script::new(script!("#!lua", "lua/stats.lua")),
            lease: Script::new(concat!("#!lua\n", include_str!("lua/lease.lua"))),
        }
    }
}

/// A reply that does not have the shape the scripts produce (another program's keys?).
#[derive(Debug, thiserror::Error)]
#[error("unexpected reply from a history script: {0}")]
pub(super) struct BadReply(pub(super) String);

/// The identity part of every reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Identity {
    pub(super) epoch: String,
    pub(super) base: u64,
    pub(super) head: u64,
}

impl Identity {
    /// Whether this is the history `generation` follows.
    pub(super) fn is(&self, generation: &Generation) -> bool {
        *generation.epoch == *self.epoch
    }
}

/// The reply of `append.lua`.
#[derive(Debug)]
pub(super) enum Appended {
    Ok { seq: u64 },
    Duplicate,
    OtherEpoch(Identity),
    Behind(Identity),
}

/// The reply of `read.lua`.
#[derive(Debug)]
pub(super) enum Read {
    OtherEpoch(Identity),
    Diverged {
        identity: Identity,
        agreed: u64,
    },
    Ok {
        identity: Identity,
        found: bool,
        /// Whether entries follow the last one returned.
        more: bool,
        /// Redis seqs and encoded updates, oldest first, up to the limit.
        entries: Vec<(u64, Vec<u8>)>,
    },
}

/// The reply of `stats.lua`.
#[derive(Debug)]
pub(super) struct Stats {
    pub(super) identity: Identity,
    pub(super) first: Option<u64>,
    pub(super) retained: u64,
}

/// Reads a flat array reply field by field.
struct Fields {
    items: std::vec::IntoIter<Value>,
}

impl Fields {
    fn new(value: Value) -> Result<Self, BadReply> {
        match value {
            Value::Array(items) => Ok(Fields {
                items: items.into_iter(),
            }),
            other => Err(BadReply(format!("expected an array, got {other:?}"))),
        }
    }

    fn next(&mut self) -> Result<Value, BadReply> {
        self.items
            .next()
            .ok_or_else(|| BadReply("reply too short".into()))
    }

    fn bytes(&mut self) -> Result<Vec<u8>, BadReply> {
        match self.next()? {
            Value::BulkString(b) => Ok(b),
            Value::SimpleString(s) => Ok(s.into_bytes()),
            other => Err(BadReply(format!("expected a string, got {other:?}"))),
        }
    }

    fn text(&mut self) -> Result<String, BadReply> {
        String::from_utf8(self.bytes()?).map_err(|_| BadReply("string is not utf-8".into()))
    }

    fn int(&mut self) -> Result<u64, BadReply> {
        match self.next()? {
            Value::Int(n) => u64::try_from(n).map_err(|_| BadReply(format!("negative {n}"))),
            other => Err(BadReply(format!("expected an integer, got {other:?}"))),
        }
    }

    fn identity(&mut self) -> Result<Identity, BadReply> {
        Ok(Identity {
            epoch: self.text()?,
            base: self.int()?,
            head: self.int()?,
        })
    }
}

pub(super) fn appended(value: Value) -> Result<Appended, BadReply> {
    let mut f = Fields::new(value)?;
    let status = f.text()?;
    let identity = f.identity()?;
    Ok(match status.as_str() {
        "ok" => Appended::Ok { seq: identity.head },
        "duplicate" => Appended::Duplicate,
        "epoch" => Appended::OtherEpoch(identity),
        "behind" => Appended::Behind(identity),
        other => return Err(BadReply(format!("unknown append status {other:?}"))),
    })
}

pub(super) fn read(value: Value) -> Result<Read, BadReply> {
    let mut f = Fields::new(value)?;
    let status = f.text()?;
    let identity = f.identity()?;
    Ok(match status.as_str() {
        "epoch" => Read::OtherEpoch(identity),
        "diverged" => Read::Diverged {
            identity,
            agreed: f.int()?,
        },
        "ok" => {
            let _first = f.int()?;
            let found = f.int()? == 1;
            let more = f.int()? == 1;
            let mut entries = Vec::new();
            while f.items.len() > 0 {
                entries.push((f.int()?, f.bytes()?));
            }
            Read::Ok {
                identity,
                found,
                more,
                entries,
            }
        }
        other => return Err(BadReply(format!("unknown read status {other:?}"))),
    })
}

pub(super) fn stats(value: Value) -> Result<Stats, BadReply> {
    let mut f = Fields::new(value)?;
    let identity = f.identity()?;
    let first = f.int()?;
    Ok(Stats {
        identity,
        first: (first > 0).then_some(first),
        retained: f.int()?,
    })
}

/// How many entries `remove.lua` removed.
pub(super) fn removed(value: Value) -> Result<u64, BadReply> {
    match value {
        Value::Int(n) => u64::try_from(n).map_err(|_| BadReply(format!("negative {n}"))),
        other => Err(BadReply(format!("expected an integer, got {other:?}"))),
    }
}

/// `lease.lua`'s reply.
pub(super) fn leases(value: Value) -> Result<crate::store::Leases, BadReply> {
    let mut f = Fields::new(value)?;
    let lapsed = f.int()? == 1;
    let conclusive = f.int()? == 1;
    let mut live = Vec::with_capacity(f.items.len());
    while f.items.len() > 0 {
        live.push(f.text()?);
    }
    Ok(crate::store::Leases {
        live,
        lapsed,
        conclusive,
    })
}

/// `(removed, done)` from `prune.lua`.
pub(super) fn pruned(value: Value) -> Result<(u64, bool), BadReply> {
    let mut f = Fields::new(value)?;
    Ok((f.int()?, f.int()? == 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    #[test]
    fn replies_parse_and_malformed_ones_are_errors() {
        let ok = Value::Array(vec![
            s("ok"),
            s("e"),
            Value::Int(0),
            Value::Int(2),
            Value::Int(1),
            Value::Int(1),
            Value::Int(0),
            Value::Int(2),
            s("u"),
        ]);
        match read(ok).unwrap() {
            Read::Ok {
                identity,
                found,
                more,
                entries,
            } => {
                assert_eq!((identity.epoch.as_str(), identity.head), ("e", 2));
                assert!(found);
                assert!(!more);
                assert_eq!(entries, vec![(2, b"u".to_vec())]);
            }
            other => panic!("{other:?}"),
        }
        let appended_ok = Value::Array(vec![s("ok"), s("e"), Value::Int(0), Value::Int(7)]);
        assert!(matches!(appended(appended_ok), Ok(Appended::Ok { seq: 7 })));
        assert!(read(Value::Int(3)).is_err());
        assert!(appended(Value::Array(vec![s("ok"), s("e")])).is_err());
        let odd = Value::Array(vec![s("what"), s("e"), Value::Int(0), Value::Int(0)]);
        assert!(appended(odd).is_err());
    }
}
