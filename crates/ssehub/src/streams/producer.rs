//! Idempotent producers: Kafka-style exactly-once appends keyed by `(stream, producer id)`.
//!
//! A producer names itself (`Producer-Id`), declares an epoch (bumped on restart) and numbers
//! its requests (`Producer-Seq`, from 0 in each epoch). The store keeps `(epoch, last seq)` per
//! producer in the same transaction as the data it accepted, so after a crash a retry is
//! still recognised: a request is stored exactly once. Everything here is pure; the writer
//! thread calls [`judge`] with the stored state and commits the state it returns.

/// The largest epoch or seq the protocol allows (2^53 - 1, for JavaScript clients).
pub const MAX_NUMBER: u64 = (1 << 53) - 1;

/// The producer headers of one request.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Producer {
    /// `Producer-Id`, never empty.
    pub id: String,
    /// `Producer-Epoch`.
    pub epoch: u64,
    /// `Producer-Seq`.
    pub seq: u64,
}

/// What the store remembers of a producer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerState {
    /// The producer's current epoch; older epochs are fenced off.
    pub epoch: u64,
    /// The highest seq accepted in that epoch.
    pub last_seq: u64,
    /// When it last appended (unix ms), for diagnostics and future cleanup.
    pub updated_ms: u64,
}

impl ProducerState {
    /// The stored form: three little-endian u64s.
    pub fn encode(&self) -> [u8; 24] {
        let mut out = [0u8; 24];
        out[..8].copy_from_slice(&self.epoch.to_le_bytes());
        out[8..16].copy_from_slice(&self.last_seq.to_le_bytes());
        out[16..].copy_from_slice(&self.updated_ms.to_le_bytes());
        out
    }

    /// Reads [`ProducerState::encode`]'s form; `None` for anything else.
    pub fn decode(bytes: &[u8]) -> Option<ProducerState> {
        let word = |i: usize| Some(u64::from_le_bytes(bytes.get(i..i + 8)?.try_into().ok()?));
        if bytes.len() != 24 {
            return None;
        }
        Some(ProducerState {
            epoch: word(0)?,
            last_seq: word(8)?,
            updated_ms: word(16)?,
        })
    }
}

/// The decision on one producer request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// New data: store it and this state together.
    Accept(ProducerState),
    /// Already stored; answer success without storing. Carries the highest accepted seq.
    Duplicate {
        /// Highest seq accepted in the producer's epoch.
        last_seq: u64,
    },
    /// An older epoch than the producer's current one: a zombie (403).
    StaleEpoch {
        /// The producer's current epoch.
        current: u64,
    },
    /// A new epoch must start at seq 0 (400).
    NewEpochNotAtZero,
    /// A seq was skipped (409).
    Gap {
        /// The seq the store expects next.
        expected: u64,
        /// The seq the request carried.
        received: u64,
    },
}

/// Judges a request against the producer's stored state (`None`: never seen on this stream).
pub fn judge(state: Option<ProducerState>, epoch: u64, seq: u64, now_ms: u64) -> Verdict {
    let accept = |last_seq| {
        Verdict::Accept(ProducerState {
            epoch,
            last_seq,
            updated_ms: now_ms,
        })
    };
    let Some(state) = state else {
        return if seq == 0 {
            accept(0)
        } else {
            Verdict::Gap {
                expected: 0,
                received: seq,
            }
        };
    };
    if epoch < state.epoch {
        return Verdict::StaleEpoch {
            current: state.epoch,
        };
    }
    if epoch > state.epoch {
        return if seq == 0 {
            accept(0)
        } else {
            Verdict::NewEpochNotAtZero
        };
    }
    if seq <= state.last_seq {
        Verdict::Duplicate {
            last_seq: state.last_seq,
        }
    } else if seq == state.last_seq + 1 {
        accept(seq)
    } else {
        Verdict::Gap {
            expected: state.last_seq + 1,
            received: seq,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(epoch: u64, last_seq: u64) -> Option<ProducerState> {
        Some(ProducerState {
            epoch,
            last_seq,
            updated_ms: 0,
        })
    }

    #[test]
    fn a_new_producer_starts_at_seq_zero_in_any_epoch() {
        assert!(
            matches!(judge(None, 0, 0, 1), Verdict::Accept(s) if s.epoch == 0 && s.last_seq == 0)
        );
        assert!(matches!(judge(None, 5, 0, 1), Verdict::Accept(s) if s.epoch == 5));
        assert_eq!(
            judge(None, 0, 3, 1),
            Verdict::Gap {
                expected: 0,
                received: 3
            }
        );
    }

    #[test]
    fn sequences_advance_by_one_and_retries_are_duplicates() {
        assert!(matches!(judge(at(0, 2), 0, 3, 1), Verdict::Accept(s) if s.last_seq == 3));
        assert_eq!(judge(at(0, 2), 0, 1, 1), Verdict::Duplicate { last_seq: 2 });
        assert_eq!(judge(at(0, 2), 0, 2, 1), Verdict::Duplicate { last_seq: 2 });
        assert_eq!(
            judge(at(0, 2), 0, 5, 1),
            Verdict::Gap {
                expected: 3,
                received: 5
            }
        );
    }

    #[test]
    fn epochs_fence_zombies_and_restart_at_zero() {
        assert_eq!(judge(at(2, 7), 1, 0, 1), Verdict::StaleEpoch { current: 2 });
        assert_eq!(judge(at(2, 7), 3, 1, 1), Verdict::NewEpochNotAtZero);
        assert!(
            matches!(judge(at(2, 7), 3, 0, 1), Verdict::Accept(s) if s.epoch == 3 && s.last_seq == 0)
        );
    }

    #[test]
    fn state_round_trips() {
        let s = ProducerState {
            epoch: 1,
            last_seq: MAX_NUMBER,
            updated_ms: 42,
        };
        assert_eq!(ProducerState::decode(&s.encode()), Some(s));
        assert_eq!(ProducerState::decode(&[0; 3]), None);
    }
}
