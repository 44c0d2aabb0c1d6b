//! Offsets: positions in a stream as the protocol shows them to clients.
//!
//! A position is the number of payload bytes stored before it (JSON streams count the bytes of
//! each stored message), so positions only grow and an append of `n` bytes moves the tail by
//! `n`. On the wire it is `{0:016}_{position:016}`: fixed width so that the protocol's
//! lexicographic order is the numeric order, and the same shape as the reference server's
//! offsets (the conformance suite forks at `0000000000000000_0000000000000000`). The first half
//! is always zero today; it is kept so a later layout (segments, compaction) can grow into it
//! without changing the shape.

use std::fmt;

/// The sentinel for "from the beginning".
pub const BEGINNING: &str = "-1";
/// The sentinel for "from the current tail".
pub const NOW: &str = "now";

/// A position in a stream's byte sequence.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Offset(pub u64);

impl Offset {
    /// The start of every stream.
    pub const ZERO: Offset = Offset(0);

    /// Parses a server-minted offset (`digits_digits`).
    ///
    /// An offset whose first half is not zero was not minted here; it is read as a position
    /// past every tail (`u64::MAX`), which reads return as "nothing yet" and forks refuse as
    /// beyond the source's tail, as the reference server does.
    ///
    /// # Errors
    ///
    /// [`OffsetError`] when the text is not two runs of ASCII digits joined by `_`.
    pub fn parse(text: &str) -> Result<Offset, OffsetError> {
        let (high, low) = text.split_once('_').ok_or(OffsetError)?;
        let digits =
            |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(high) || !digits(low) {
            return Err(OffsetError);
        }
        let high: u64 = high.parse().map_err(|_| OffsetError)?;
        let low: u64 = low.parse().map_err(|_| OffsetError)?;
        Ok(if high == 0 {
            Offset(low)
        } else {
            Offset(u64::MAX)
        })
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016}_{:016}", 0, self.0)
    }
}

/// Where a read starts, as the `offset` query parameter names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// `-1` or no parameter: the first byte.
    Beginning,
    /// `now`: the tail at the time of the request.
    Now,
    /// A server-minted offset.
    At(Offset),
}

impl Start {
    /// Parses the `offset` query parameter.
    ///
    /// # Errors
    ///
    /// [`OffsetError`] for anything but `-1`, `now` or a server-minted offset.
    pub fn parse(text: &str) -> Result<Start, OffsetError> {
        match text {
            BEGINNING => Ok(Start::Beginning),
            NOW => Ok(Start::Now),
            other => Offset::parse(other).map(Start::At),
        }
    }
}

/// The text is not an offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid offset: use -1, now, or a Stream-Next-Offset value this server returned")]
pub struct OffsetError;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_round_trip_and_sort_like_numbers() {
        for n in [0, 1, 9, 10, 12_345, u64::MAX / 2] {
            assert_eq!(Offset::parse(&Offset(n).to_string()), Ok(Offset(n)));
        }
        assert!(Offset(9).to_string() < Offset(10).to_string());
        assert_eq!(
            Offset::ZERO.to_string(),
            "0000000000000000_0000000000000000"
        );
    }

    #[test]
    fn foreign_offsets_are_past_every_tail() {
        assert_eq!(
            Offset::parse("9999999999999999_9999999999999999"),
            Ok(Offset(u64::MAX))
        );
    }

    #[test]
    fn malformed_offsets_are_refused() {
        for bad in [
            "", "0", "_", "1_", "_1", "0,1", "0 1", "a_b", "-1_0", "1_2_3", "../x",
        ] {
            assert_eq!(Offset::parse(bad), Err(OffsetError), "{bad:?}");
        }
        assert_eq!(Start::parse("-1"), Ok(Start::Beginning));
        assert_eq!(Start::parse("now"), Ok(Start::Now));
        assert!(Start::parse("NOW").is_err());
    }
}
