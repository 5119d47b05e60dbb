//! The canonical CBOR subset every signed event is written in, and a strict reader for it.
//!
//! Writing: only definite-length arrays, unsigned integers, byte strings, text strings and
//! `null`, each head in its shortest form (RFC 8949 §4.2.1 "core deterministic encoding"; no
//! maps, tags or floats are used, so key order never arises). Reading goes through minicbor's
//! decoder; the envelope then re-encodes what it read and refuses the input unless the bytes are
//! identical, so every accepted event has exactly one encoding and its hash is well defined.

use minicbor::Decoder;
use minicbor::data::Type;

use super::EventError;

/// Appends canonical CBOR items to a buffer.
#[derive(Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    fn head(&mut self, major: u8, value: u64) -> &mut Self {
        let major = major << 5;
        match value {
            0..=23 => self.buf.push(major | value as u8),
            24..=0xff => self.buf.extend_from_slice(&[major | 24, value as u8]),
            0x100..=0xffff => {
                self.buf.push(major | 25);
                self.buf.extend_from_slice(&(value as u16).to_be_bytes());
            }
            0x1_0000..=0xffff_ffff => {
                self.buf.push(major | 26);
                self.buf.extend_from_slice(&(value as u32).to_be_bytes());
            }
            _ => {
                self.buf.push(major | 27);
                self.buf.extend_from_slice(&value.to_be_bytes());
            }
        }
        self
    }

    /// An unsigned integer (major type 0).
    pub(crate) fn uint(&mut self, value: u64) -> &mut Self {
        self.head(0, value)
    }

    /// A byte string (major type 2).
    pub(crate) fn bytes(&mut self, bytes: &[u8]) -> &mut Self {
        self.head(2, bytes.len() as u64);
        self.buf.extend_from_slice(bytes);
        self
    }

    /// A UTF-8 text string (major type 3).
    pub(crate) fn text(&mut self, text: &str) -> &mut Self {
        self.head(3, text.len() as u64);
        self.buf.extend_from_slice(text.as_bytes());
        self
    }

    /// The head of an array of `len` items (major type 4); the items follow.
    pub(crate) fn array(&mut self, len: u64) -> &mut Self {
        self.head(4, len)
    }

    /// `null` (simple value 22), used for an absent optional field.
    pub(crate) fn null(&mut self) -> &mut Self {
        self.buf.push(0xf6);
        self
    }

    /// Appends bytes that are already one canonical item.
    pub(crate) fn raw(&mut self, item: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(item);
        self
    }

    /// The bytes written so far.
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads the items [`Writer`] writes, with an error (never a panic) for anything else.
pub struct Reader<'b> {
    decoder: Decoder<'b>,
}

fn malformed(error: minicbor::decode::Error) -> EventError {
    EventError::Malformed(error.to_string())
}

impl<'b> Reader<'b> {
    /// A reader over `bytes`.
    pub(crate) fn new(bytes: &'b [u8]) -> Reader<'b> {
        Reader { decoder: Decoder::new(bytes) }
    }

    /// The head of a definite-length array that must have exactly `len` items.
    pub(crate) fn array(&mut self, len: u64) -> Result<(), EventError> {
        match self.decoder.array().map_err(malformed)? {
            Some(found) if found == len => Ok(()),
            found => Err(EventError::Malformed(format!("expected an array of {len} items, found {found:?}"))),
        }
    }

    /// The head of a definite-length array of any length; answers the length.
    pub(crate) fn array_len(&mut self) -> Result<u64, EventError> {
        match self.decoder.array().map_err(malformed)? {
            Some(len) => Ok(len),
            None => Err(EventError::Malformed("indefinite-length arrays are not canonical".into())),
        }
    }

    /// An unsigned integer.
    pub(crate) fn uint(&mut self) -> Result<u64, EventError> {
        let found = self.decoder.datatype().map_err(malformed)?;
        if !matches!(found, Type::U8 | Type::U16 | Type::U32 | Type::U64) {
            return Err(EventError::Malformed(format!("expected an unsigned integer, found {found}")));
        }
        self.decoder.u64().map_err(malformed)
    }

    /// A byte string of exactly `N` bytes.
    pub(crate) fn byte_array<const N: usize>(&mut self) -> Result<[u8; N], EventError> {
        let bytes = self.decoder.bytes().map_err(malformed)?;
        bytes
            .try_into()
            .map_err(|_| EventError::Malformed(format!("expected {N} bytes, found {}", bytes.len())))
    }

    /// A byte string of any length.
    pub(crate) fn bytes(&mut self) -> Result<&'b [u8], EventError> {
        self.decoder.bytes().map_err(malformed)
    }

    /// A text string.
    pub(crate) fn text(&mut self) -> Result<&'b str, EventError> {
        self.decoder.str().map_err(malformed)
    }

    /// Whether the next item is a text string (without reading it).
    pub(crate) fn next_is_text(&mut self) -> Result<bool, EventError> {
        Ok(self.decoder.datatype().map_err(malformed)? == Type::String)
    }

    /// `null` (returns `None`) or an item read by `read`.
    pub(crate) fn optional<T>(
        &mut self,
        read: impl FnOnce(&mut Self) -> Result<T, EventError>,
    ) -> Result<Option<T>, EventError> {
        if self.decoder.datatype().map_err(malformed)? == Type::Null {
            self.decoder.null().map_err(malformed)?;
            Ok(None)
        } else {
            read(self).map(Some)
        }
    }

    /// Succeeds only when every byte has been read.
    pub(crate) fn finish(self) -> Result<(), EventError> {
        if self.decoder.position() == self.decoder.input().len() {
            Ok(())
        } else {
            Err(EventError::Malformed("trailing bytes after the event".into()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_shortest_form() {
        let mut w = Writer::default();
        w.uint(23).uint(24).uint(255).uint(256).uint(65536).uint(1 << 32);
        assert_eq!(hex::encode(w.into_bytes()), "17181818ff1901001a000100001b0000000100000000");
    }

    #[test]
    fn reader_refuses_wrong_shapes() {
        let mut w = Writer::default();
        w.array(2).uint(1).text("x");
        let bytes = w.into_bytes();
        let mut r = Reader::new(&bytes);
        assert!(r.array(3).is_err());
        let mut r = Reader::new(&bytes);
        r.array(2).unwrap();
        assert_eq!(r.uint().unwrap(), 1);
        assert!(r.uint().is_err());
    }
}
