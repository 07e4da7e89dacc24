//! The CPU-bound part: iterated SHA-256 (key stretching), the work the example moves off
//! the async runtime.

use sha2::{Digest as _, Sha256};

/// SHA-256 of `data`, then of the previous digest, `rounds` times in all (`rounds >= 1`),
/// in lowercase hex.
pub fn stretched_sha256(data: &[u8], rounds: u32) -> String {
    let mut digest = Sha256::digest(data);
    for _ in 1..rounds {
        digest = Sha256::digest(digest);
    }
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_round_is_plain_sha256() {
        assert_eq!(
            stretched_sha256(b"abc", 1),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn each_round_hashes_the_previous_digest() {
        let once = Sha256::digest(b"abc");
        let twice: String = Sha256::digest(once)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(stretched_sha256(b"abc", 2), twice);
    }
}
