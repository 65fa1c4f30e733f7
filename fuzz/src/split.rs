//! Reproducible ways to cut one input into reads, so a target can check that a parser fed the
//! same bytes in other pieces comes to the same answers.

/// The lengths of the reads a stream of `len` bytes arrives in, drawn from `seed`: 1 to 16
/// bytes at a time, sometimes longer, never empty.
pub fn reads(seed: u64, len: usize) -> Vec<usize> {
    let mut state = seed | 1;
    let mut next = || {
        // xorshift64: enough to vary the splits, and the same for the same seed.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut out = Vec::new();
    let mut left = len;
    while left > 0 {
        let r = next();
        let n = if r % 8 == 0 {
            (r >> 8) as usize % 512 + 1
        } else {
            (r >> 8) as usize % 16 + 1
        };
        let n = n.min(left);
        out.push(n);
        left -= n;
    }
    out
}
