//! CRC-32 (IEEE 802.3, reflected), the zlib/PNG checksum, for the write-ahead log's records and
//! the history's entries; small enough not to need a crate.

/// A checksum being computed over several pieces.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Crc32(u32);

impl Crc32 {
    pub(crate) fn new() -> Self {
        Crc32(!0)
    }

    #[must_use]
    pub(crate) fn update(self, bytes: &[u8]) -> Self {
        let mut crc = self.0;
        for &b in bytes {
            crc = TABLE[((crc ^ u32::from(b)) & 0xFF) as usize] ^ (crc >> 8);
        }
        Crc32(crc)
    }

    pub(crate) fn finish(self) -> u32 {
        !self.0
    }
}

const TABLE: [u32; 256] = {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_check_value() {
        assert_eq!(Crc32::new().update(b"123456789").finish(), 0xCBF4_3926);
        let split = Crc32::new().update(b"1234").update(b"56789").finish();
        assert_eq!(split, 0xCBF4_3926);
    }
}
