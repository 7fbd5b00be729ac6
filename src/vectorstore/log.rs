//! The on-disk format of a local vector index: an append-only log of checksummed records.
//!
//! ```text
//! file   := FILE_MAGIC (8 bytes) reserved (8 zero bytes) record*
//! record := RECORD_MAGIC u32 | payload_len u32 | payload_crc u32 | header_crc u32 | payload
//! payload:= row_count u32, then per row:
//!           id [16] | dims u32 | doc_len u32 | doc (UTF-8 JSON) | meta_len u32 (u32::MAX = none)
//!           | meta (UTF-8 JSON) | dims × f32
//! ```
//! All integers and floats little-endian; CRC-32 (IEEE). One `index` call is one record, so
//! a call is stored whole or not at all. A writer holds an exclusive lock while it appends,
//! so when the lock is taken, an incomplete record can only be at the end, left by a writer
//! that died before acknowledging it: it is *torn* and may be dropped. A complete record
//! whose checksum fails, or bytes that are not a record, are *corruption*: reported, never
//! skipped.

use super::docid::DocId;

pub const FILE_MAGIC: &[u8; 8] = b"GKPVEC\x00\x01";
pub const FILE_HEADER_LEN: usize = 16;
const RECORD_MAGIC: [u8; 4] = *b"GKVR";
const RECORD_HEADER_LEN: usize = 16;
const NO_META: u32 = u32::MAX;

/// One row as stored (borrowed from the read buffer while decoding).
pub struct RowView<'a> {
    pub id: DocId,
    pub doc: &'a str,
    pub embed_meta: Option<&'a str>,
    /// `dims` little-endian f32 values.
    pub vector: &'a [u8],
}

impl RowView<'_> {
    pub fn dims(&self) -> usize {
        self.vector.len() / 4
    }

    pub fn floats(&self) -> impl Iterator<Item = f32> + '_ {
        self.vector
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// Damage found at `offset` (bytes from the start of the file).
#[derive(Debug, PartialEq)]
pub struct Corruption {
    pub offset: u64,
    pub detail: String,
}

/// How far decoding got.
#[derive(Debug, PartialEq)]
pub struct Decoded {
    /// Offset just past the last complete record.
    pub good_end: u64,
    /// Whether bytes after `good_end` hold an incomplete (torn) record.
    pub torn: bool,
}

/// The header a new file starts with.
pub fn file_header() -> [u8; FILE_HEADER_LEN] {
    let mut header = [0u8; FILE_HEADER_LEN];
    header[..8].copy_from_slice(FILE_MAGIC);
    header
}

/// Checks a file's first bytes. `Ok(false)` when fewer than a header's bytes exist (a
/// creator died before writing it; the file holds nothing acknowledged).
pub fn check_file_header(bytes: &[u8]) -> Result<bool, Corruption> {
    let seen = bytes.len().min(FILE_HEADER_LEN);
    if bytes[..seen.min(8)] != FILE_MAGIC[..seen.min(8)] {
        return Err(Corruption {
            offset: 0,
            detail: "not a genkit-parity vector index file (bad magic)".into(),
        });
    }
    Ok(bytes.len() >= FILE_HEADER_LEN)
}

/// Decodes the records in `buf`, which starts at file offset `base`, calling `row` for each
/// row of each complete record. `row` may refuse a row (returns a message): that is
/// corruption too, at the record's offset.
pub fn decode(
    buf: &[u8],
    base: u64,
    mut row: impl FnMut(RowView<'_>) -> Result<(), String>,
) -> Result<Decoded, Corruption> {
    let mut pos = 0usize;
    loop {
        let offset = base + pos as u64;
        let rest = &buf[pos..];
        if rest.is_empty() {
            return Ok(Decoded {
                good_end: offset,
                torn: false,
            });
        }
        if rest.len() < RECORD_HEADER_LEN {
            // A torn header still starts with the record magic.
            let seen = rest.len().min(4);
            if rest[..seen] != RECORD_MAGIC[..seen] {
                return Err(corrupt(
                    offset,
                    "bytes after the last record are not a record",
                ));
            }
            return Ok(Decoded {
                good_end: offset,
                torn: true,
            });
        }
        if rest[..4] != RECORD_MAGIC {
            return Err(corrupt(offset, "bad record magic"));
        }
        let header_crc = u32_at(rest, 12);
        if crc32fast::hash(&rest[..12]) != header_crc {
            return Err(corrupt(offset, "record header checksum mismatch"));
        }
        let len = u32_at(rest, 4) as usize;
        let payload_crc = u32_at(rest, 8);
        let Some(payload) = rest.get(RECORD_HEADER_LEN..RECORD_HEADER_LEN + len) else {
            return Ok(Decoded {
                good_end: offset,
                torn: true,
            });
        };
        if crc32fast::hash(payload) != payload_crc {
            return Err(corrupt(offset, "record checksum mismatch"));
        }
        decode_payload(payload, &mut row).map_err(|detail| corrupt(offset, detail))?;
        pos += RECORD_HEADER_LEN + len;
    }
}

fn corrupt(offset: u64, detail: impl Into<String>) -> Corruption {
    Corruption {
        offset,
        detail: detail.into(),
    }
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// A cursor over a payload that reports truncation instead of panicking.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let slice = self
            .bytes
            .get(self.pos..self.pos.checked_add(n).ok_or("length overflow")?)
            .ok_or("record payload shorter than its rows")?;
        self.pos += n;
        Ok(slice)
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32_at(self.take(4)?, 0))
    }
    fn text(&mut self, n: usize) -> Result<&'a str, String> {
        std::str::from_utf8(self.take(n)?).map_err(|e| format!("stored text is not UTF-8: {e}"))
    }
}

fn decode_payload(
    payload: &[u8],
    row: &mut impl FnMut(RowView<'_>) -> Result<(), String>,
) -> Result<(), String> {
    let mut cur = Cursor {
        bytes: payload,
        pos: 0,
    };
    let count = cur.u32()?;
    for _ in 0..count {
        let id: DocId = cur.take(16)?.try_into().map_err(|_| "short id")?;
        let dims = cur.u32()? as usize;
        let doc_len = cur.u32()? as usize;
        let doc = cur.text(doc_len)?;
        let meta_len = cur.u32()?;
        let embed_meta = match meta_len {
            NO_META => None,
            n => Some(cur.text(n as usize)?),
        };
        let vector = cur.take(dims.checked_mul(4).ok_or("dims overflow")?)?;
        row(RowView {
            id,
            doc,
            embed_meta,
            vector,
        })?;
    }
    if cur.pos != payload.len() {
        return Err("record payload longer than its rows".into());
    }
    Ok(())
}

/// One row to write.
pub struct RowOut<'a> {
    pub id: &'a DocId,
    pub doc: &'a str,
    pub embed_meta: Option<&'a str>,
    pub vector: &'a [f32],
}

/// Largest payload one record may hold (its length field is a u32).
pub const MAX_PAYLOAD: usize = u32::MAX as usize - 1;

/// Bytes `rows` take in a payload.
pub fn encoded_len(row: &RowOut<'_>) -> usize {
    16 + 4 + 4 + row.doc.len() + 4 + row.embed_meta.map_or(0, str::len) + 4 * row.vector.len()
}

/// `values` as little-endian f32 bytes: on a little-endian machine, the bytes as they are
/// in memory, copied in one go (a 10k-row record holds millions of floats).
fn push_floats(out: &mut Vec<u8>, values: &[f32]) {
    if cfg!(target_endian = "little") {
        out.extend_from_slice(bytemuck::cast_slice(values));
    } else {
        for value in values {
            out.extend_from_slice(&value.to_le_bytes());
        }
    }
}

/// One record holding `rows` (their total `encoded_len` must not exceed [`MAX_PAYLOAD`]).
pub fn encode_record(rows: &[RowOut<'_>]) -> Vec<u8> {
    let payload_len = 4 + rows.iter().map(encoded_len).sum::<usize>();
    let mut out = Vec::with_capacity(RECORD_HEADER_LEN + payload_len);
    out.extend_from_slice(&[0u8; RECORD_HEADER_LEN]);
    out.extend_from_slice(&(rows.len() as u32).to_le_bytes());
    for row in rows {
        out.extend_from_slice(row.id);
        out.extend_from_slice(&(row.vector.len() as u32).to_le_bytes());
        out.extend_from_slice(&(row.doc.len() as u32).to_le_bytes());
        out.extend_from_slice(row.doc.as_bytes());
        match row.embed_meta {
            None => out.extend_from_slice(&NO_META.to_le_bytes()),
            Some(meta) => {
                out.extend_from_slice(&(meta.len() as u32).to_le_bytes());
                out.extend_from_slice(meta.as_bytes());
            }
        }
        push_floats(&mut out, row.vector);
    }
    let payload_crc = crc32fast::hash(&out[RECORD_HEADER_LEN..]);
    out[..4].copy_from_slice(&RECORD_MAGIC);
    let payload_len = (out.len() - RECORD_HEADER_LEN) as u32;
    out[4..8].copy_from_slice(&payload_len.to_le_bytes());
    out[8..12].copy_from_slice(&payload_crc.to_le_bytes());
    let header_crc = crc32fast::hash(&out[..12]);
    out[12..16].copy_from_slice(&header_crc.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let (a, b) = ([1u8; 16], [2u8; 16]);
        let mut bytes = encode_record(&[
            RowOut {
                id: &a,
                doc: "{\"d\":1}",
                embed_meta: None,
                vector: &[1.0, 2.0],
            },
            RowOut {
                id: &b,
                doc: "{}",
                embed_meta: Some("{\"p\":0}"),
                vector: &[0.5, -1.0],
            },
        ]);
        bytes.extend(encode_record(&[RowOut {
            id: &a,
            doc: "x",
            embed_meta: None,
            vector: &[3.0],
        }]));
        bytes
    }

    type Stored = (DocId, String, Option<String>, Vec<f32>);

    fn rows_of(bytes: &[u8]) -> Result<(Vec<Stored>, Decoded), Corruption> {
        let mut rows = Vec::new();
        let decoded = decode(bytes, 100, |r| {
            rows.push((
                r.id,
                r.doc.to_owned(),
                r.embed_meta.map(str::to_owned),
                r.floats().collect(),
            ));
            Ok(())
        })?;
        Ok((rows, decoded))
    }

    #[test]
    fn records_round_trip() {
        let bytes = sample();
        let (rows, decoded) = rows_of(&bytes).expect("decode");
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[1].2.as_deref(), Some("{\"p\":0}"));
        assert_eq!(rows[1].3, vec![0.5, -1.0]);
        assert_eq!(
            decoded,
            Decoded {
                good_end: 100 + bytes.len() as u64,
                torn: false
            }
        );
    }

    #[test]
    fn every_truncation_is_a_torn_tail_that_keeps_whole_records() {
        let bytes = sample();
        let first_len = bytes.len()
            - encode_record(&[RowOut {
                id: &[1u8; 16],
                doc: "x",
                embed_meta: None,
                vector: &[3.0],
            }])
            .len();
        for cut in 1..bytes.len() {
            let (rows, decoded) = rows_of(&bytes[..cut]).expect("a truncation is never corruption");
            let whole_first = cut >= first_len;
            assert_eq!(rows.len(), if whole_first { 2 } else { 0 }, "cut {cut}");
            assert_eq!(decoded.torn, cut != first_len, "cut {cut}");
        }
    }

    #[test]
    fn flipped_bytes_in_complete_records_are_corruption() {
        let bytes = sample();
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x40;
            // The header checksum covers the length, so no flip can pass for a torn tail.
            let err = rows_of(&damaged)
                .err()
                .unwrap_or_else(|| panic!("byte {at} flipped was accepted"));
            assert!(err.offset >= 100, "at {at}: {err:?}");
        }
    }

    #[test]
    fn garbage_after_records_is_corruption() {
        let mut bytes = sample();
        bytes.extend_from_slice(b"{\"garbage\": true}\n");
        assert!(rows_of(&bytes).is_err());
        let mut short = sample();
        short.extend_from_slice(b"zz");
        assert!(rows_of(&short).is_err());
    }

    #[test]
    fn file_header_checks() {
        assert_eq!(check_file_header(&file_header()), Ok(true));
        assert_eq!(check_file_header(&file_header()[..5]), Ok(false));
        assert!(check_file_header(b"{\"json\"").is_err());
    }
}
