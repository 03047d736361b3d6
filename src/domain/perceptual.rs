//! Perceptual image hashes and the banded search keys that let the database find every
//! near-duplicate photo with a few indexed equality lookups instead of a scan.

use std::fmt;

/// A 64-bit perceptual hash (aHash) of an image: visually similar images get hashes that
/// differ in few bits, so "near duplicate" means "small Hamming distance".
///
/// The bit layout is the imaging adapter's business; the domain only compares hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ImageHash(pub u64);

impl ImageHash {
    /// The hash as the signed 64-bit integer databases store (a bit-for-bit cast, so every
    /// hash round-trips through [`ImageHash::from_i64`] unchanged, including ones with the
    /// top bit set).
    pub fn to_i64(self) -> i64 {
        self.0 as i64
    }

    /// The hash read back from a signed 64-bit database column (the inverse of
    /// [`ImageHash::to_i64`]).
    pub fn from_i64(value: i64) -> Self {
        Self(value as u64)
    }
}

impl fmt::Display for ImageHash {
    /// Sixteen lowercase hex digits, so logs and fixtures show a stable, readable form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// How many bits two hashes differ in: 0 for identical images, about 32 for unrelated ones.
pub fn hamming(a: ImageHash, b: ImageHash) -> u32 {
    (a.0 ^ b.0).count_ones()
}

/// The largest Hamming distance at which two images count as near duplicates (a re-encoded
/// or resized copy of the same photo stays within it). It equals `BANDS - 1`, the largest
/// distance the band index is guaranteed to find; raising it requires more bands.
pub const MAX_NEAR_DUPLICATE_DISTANCE: u32 = 5;

/// How many bands a hash is split into for the near-duplicate index (one indexed column per
/// band).
///
/// # Why banding finds every near duplicate
///
/// The 64 bits are split into 6 disjoint bands (11, 11, 11, 11, 10 and 10 bits). If two
/// hashes differ in `d <= 5 = BANDS - 1` bits, those `d` differing bits fall into at most
/// `d` bands, so by the pigeonhole principle at least one of the 6 bands contains none of
/// them: the two hashes agree *exactly* on that band. Hence looking up candidates with
/// `band_0 = ? OR band_1 = ? OR … OR band_5 = ?` (6 indexed equality lookups) and then
/// checking [`hamming`] on the few candidates returns every stored hash within
/// [`MAX_NEAR_DUPLICATE_DISTANCE`], without scanning the table. At distance 6 the guarantee
/// stops: one differing bit in each band leaves no band equal.
pub const BANDS: usize = 6;

/// Width in bits of each band, lowest bits first; they sum to 64.
const BAND_WIDTHS: [u32; BANDS] = [11, 11, 11, 11, 10, 10];

// The guarantee above only holds if the bands cover all 64 bits and the threshold is below
// the band count; check both at compile time.
const _: () = {
    let mut total = 0;
    let mut i = 0;
    while i < BANDS {
        total += BAND_WIDTHS[i];
        i += 1;
    }
    assert!(total == 64);
    assert!((MAX_NEAR_DUPLICATE_DISTANCE as usize) < BANDS);
};

/// The six band values of `hash`, to store in (and look up by) the six band columns.
///
/// Band 0 is bits 0..11 (least significant first), band 1 bits 11..22, band 2 bits 22..33,
/// band 3 bits 33..44, band 4 bits 44..54 and band 5 bits 54..64. Each value is the band's
/// bits shifted down to start at bit 0, so it is small and non-negative; bands need no
/// position tag because each has its own column.
pub fn bands(hash: ImageHash) -> [i64; BANDS] {
    let mut values = [0i64; BANDS];
    let mut shift = 0;
    for (value, width) in values.iter_mut().zip(BAND_WIDTHS) {
        let mask = (1u64 << width) - 1;
        *value = ((hash.0 >> shift) & mask) as i64;
        shift += width;
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny deterministic PRNG (xorshift64) so the property test needs no `rand` crate
    /// and fails reproducibly.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        fn below(&mut self, bound: u64) -> u64 {
            self.next() % bound
        }
    }

    /// `hash` with `count` distinct random bits flipped.
    fn flip_random_bits(rng: &mut XorShift, hash: ImageHash, count: u32) -> ImageHash {
        let mut mask = 0u64;
        while mask.count_ones() < count {
            mask |= 1 << rng.below(64);
        }
        ImageHash(hash.0 ^ mask)
    }

    fn share_a_band(a: ImageHash, b: ImageHash) -> bool {
        bands(a).iter().zip(bands(b)).any(|(x, y)| *x == y)
    }

    #[test]
    fn hamming_counts_the_differing_bits() {
        assert_eq!(hamming(ImageHash(0), ImageHash(0)), 0);
        assert_eq!(hamming(ImageHash(0), ImageHash(u64::MAX)), 64);
        assert_eq!(hamming(ImageHash(0b1011), ImageHash(0b0001)), 2);
        assert_eq!(hamming(ImageHash(1 << 63), ImageHash(1)), 2);
    }

    #[test]
    fn i64_round_trip_keeps_every_bit_including_the_sign_bit() {
        for value in [0, 1, u64::MAX, 1 << 63, 0x8000_0000_0000_0001, 0x0123_4567_89ab_cdef] {
            let hash = ImageHash(value);
            assert_eq!(ImageHash::from_i64(hash.to_i64()), hash);
        }
        assert_eq!(ImageHash(u64::MAX).to_i64(), -1);
        assert_eq!(ImageHash(1 << 63).to_i64(), i64::MIN);
    }

    #[test]
    fn display_is_sixteen_hex_digits() {
        assert_eq!(ImageHash(0xab).to_string(), "00000000000000ab");
    }

    #[test]
    fn bands_split_the_bits_eleven_eleven_eleven_eleven_ten_ten() {
        assert_eq!(bands(ImageHash(0)), [0; BANDS]);
        assert_eq!(bands(ImageHash(u64::MAX)), [2047, 2047, 2047, 2047, 1023, 1023]);
        // The lowest bit of each band lands in that band's value as 1.
        for (band, start) in [0u32, 11, 22, 33, 44, 54].into_iter().enumerate() {
            let mut expected = [0i64; BANDS];
            expected[band] = 1;
            assert_eq!(bands(ImageHash(1 << start)), expected, "band {band}");
        }
        // The top bit is the highest bit of the last (10-bit) band.
        assert_eq!(bands(ImageHash(1 << 63)), [0, 0, 0, 0, 0, 512]);
    }

    #[test]
    fn bands_reassemble_into_the_original_hash() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..1_000 {
            let hash = ImageHash(rng.next());
            let mut rebuilt = 0u64;
            let mut shift = 0;
            for (value, width) in bands(hash).into_iter().zip(BAND_WIDTHS) {
                assert!(value >= 0 && value < (1 << width));
                rebuilt |= (value as u64) << shift;
                shift += width;
            }
            assert_eq!(rebuilt, hash.0);
        }
    }

    #[test]
    fn any_two_hashes_within_the_near_duplicate_distance_share_a_band() {
        let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
        for _ in 0..20_000 {
            let original = ImageHash(rng.next());
            let distance = rng.below(u64::from(MAX_NEAR_DUPLICATE_DISTANCE) + 1) as u32;
            let near = flip_random_bits(&mut rng, original, distance);
            assert_eq!(hamming(original, near), distance);
            assert!(share_a_band(original, near), "{original} and {near} at distance {distance} share no band");
        }
    }

    #[test]
    fn worst_case_five_differing_bits_in_five_bands_still_leave_one_band_equal() {
        // One differing bit in each of bands 0 to 4, none in band 5.
        let original = ImageHash(0x0123_4567_89ab_cdef);
        let near = ImageHash(original.0 ^ (1 | (1 << 11) | (1 << 22) | (1 << 33) | (1 << 44)));
        assert_eq!(hamming(original, near), 5);
        assert_eq!(bands(original)[5], bands(near)[5]);
    }

    #[test]
    fn at_distance_six_the_band_guarantee_no_longer_holds() {
        // One differing bit in every band: the index would miss this pair, which is why the
        // threshold is BANDS - 1.
        let original = ImageHash(0x0123_4567_89ab_cdef);
        let far = ImageHash(original.0 ^ (1 | (1 << 11) | (1 << 22) | (1 << 33) | (1 << 44) | (1 << 54)));
        assert_eq!(hamming(original, far), 6);
        assert!(!share_a_band(original, far));
    }
}
