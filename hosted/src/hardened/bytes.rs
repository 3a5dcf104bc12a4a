//! Checking that a block's bytes are all one value, fast: the canary and
//! quarantine checks read whole blocks.

/// Whether every byte of `bytes` is `byte`: word by word, with no early
/// exit inside the words, so the compiler vectorises it (the canary and
/// quarantine checks read whole blocks).
pub(super) fn all_bytes_are(bytes: &[u8], byte: u8) -> bool {
    let pattern = u64::from_ne_bytes([byte; 8]);
    let mut words = bytes.chunks_exact(8);
    let mut differ = 0;
    for word in &mut words {
        let mut w = [0; 8];
        w.copy_from_slice(word);
        differ |= u64::from_ne_bytes(w) ^ pattern;
    }
    differ == 0 && words.remainder().iter().all(|&b| b == byte)
}

#[cfg(test)]
mod tests {
    use super::all_bytes_are;

    #[test]
    fn all_bytes_are_finds_one_changed_byte_anywhere() {
        for len in [0, 1, 7, 8, 9, 63, 64, 65, 200] {
            let mut bytes = [0xC5u8; 200];
            let bytes = &mut bytes[..len];
            assert!(all_bytes_are(bytes, 0xC5), "{len}");
            for at in 0..len {
                bytes[at] = 0xC4;
                assert!(!all_bytes_are(bytes, 0xC5), "{len} {at}");
                bytes[at] = 0xC5;
            }
        }
    }
}
