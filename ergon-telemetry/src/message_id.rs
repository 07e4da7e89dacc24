//! A transaction id kept in a span record without touching the allocator when short.
//!
//! The record ends on the collector's thread: an id on the heap would be allocated on the
//! engine's thread and freed on the other, the slowest path of most allocators. Ids of up
//! to 38 bytes (a UUID's 36 fit) stay inside the record.

/// Bytes an id may have to be kept inline.
pub const INLINE: usize = 38;

/// A transaction id, inline when short.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageId {
    /// Up to 38 bytes (`INLINE`), with their length.
    Inline(u8, [u8; INLINE]),
    /// A longer one.
    Heap(Box<str>),
}

impl MessageId {
    /// `id`, inline when it fits.
    pub fn new(id: &str) -> MessageId {
        match u8::try_from(id.len()) {
            Ok(len) if id.len() <= INLINE => {
                let mut bytes = [0; INLINE];
                bytes[..id.len()].copy_from_slice(id.as_bytes());
                MessageId::Inline(len, bytes)
            }
            _ => MessageId::Heap(id.into()),
        }
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        match self {
            // Whole `&str`s go in, so the inline bytes are always UTF-8.
            MessageId::Inline(len, bytes) => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
            MessageId::Heap(id) => id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_ids_stay_inline_and_long_ones_go_to_the_heap() {
        let uuid = "0b6f3c9e-8d2a-4f7b-9c1e-5a4d3b2c1f00";
        assert!(matches!(MessageId::new(uuid), MessageId::Inline(36, _)));
        assert_eq!(MessageId::new(uuid).as_str(), uuid);
        assert_eq!(MessageId::new("").as_str(), "");
        assert_eq!(MessageId::new("héllo").as_str(), "héllo");
        let long = "x".repeat(INLINE + 1);
        assert!(matches!(MessageId::new(&long), MessageId::Heap(_)));
        assert_eq!(MessageId::new(&long).as_str(), long);
    }
}
