//! The on-disk format of a local vector index: an append-only log of checksummed records.
//!
//! ```text
//! file    := FILE_MAGIC (8 bytes) reserved (8 zero bytes) record*
//! record  := "GKR2" | payload_len u32 | reserved u32 (0) | header_crc u32 | payload | payload_crc u32
//!          | "GKVR" | payload_len u32 | payload_crc u32 | header_crc u32 | payload   (first format)
//! payload := row_count u32, then per row:
//!            id [16] | dims u32 | doc_len u32 | doc (UTF-8 JSON) | meta_len u32 (u32::MAX = none)
//!            | meta (UTF-8 JSON) | dims × f32
//! ```
//! All integers and floats little-endian; CRC-32 (IEEE); `header_crc` covers the header's
//! first 12 bytes. One `index` call is one record, so a call is stored whole or not at all
//! (a call of more than 1 GiB of rows is split into several records, and a crash between
//! them keeps the first ones).
//! A writer holds an exclusive lock while it appends, so when the lock is taken, an
//! incomplete record can only be at the end, left by a writer that died before
//! acknowledging it: it is *torn* and may be dropped. A complete record whose checksum
//! fails, or bytes that are not a record, are *corruption*: reported, never skipped.
//!
//! Records are written front to back, so wherever a writer stops, what it wrote is a prefix
//! of its record: a torn tail. The payload's checksum comes after the payload, so a record
//! can be written while its rows are still arriving ([`RecordWriter`]); the first format
//! put it in the header, which needed every row before the first byte could be written.
//! Both formats are read; records are written in the current one.

use super::docid::DocId;

pub const FILE_MAGIC: &[u8; 8] = b"GKPVEC\x00\x01";
pub const FILE_HEADER_LEN: usize = 16;
/// The current record format: the payload's checksum after the payload.
const RECORD_MAGIC: [u8; 4] = *b"GKR2";
/// The first record format: the payload's checksum in the header.
const RECORD_MAGIC_V1: [u8; 4] = *b"GKVR";
const RECORD_HEADER_LEN: usize = 16;
const RECORD_TRAILER_LEN: usize = 4;
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
            // A torn header still starts with a record magic.
            let seen = rest.len().min(4);
            if rest[..seen] != RECORD_MAGIC[..seen] && rest[..seen] != RECORD_MAGIC_V1[..seen] {
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
        let first_format = match &rest[..4] {
            m if m == RECORD_MAGIC => false,
            m if m == RECORD_MAGIC_V1 => true,
            _ => return Err(corrupt(offset, "bad record magic")),
        };
        let header_crc = u32_at(rest, 12);
        if crc32fast::hash(&rest[..12]) != header_crc {
            return Err(corrupt(offset, "record header checksum mismatch"));
        }
        if !first_format && u32_at(rest, 8) != 0 {
            // Checked before the length is trusted: a record of some later format, complete
            // at the end of the file, must not pass for a torn tail and be cut off.
            return Err(corrupt(offset, "record header has unknown flags"));
        }
        let len = u32_at(rest, 4) as usize;
        let trailer = if first_format { 0 } else { RECORD_TRAILER_LEN };
        let Some(record) = rest.get(..RECORD_HEADER_LEN + len + trailer) else {
            return Ok(Decoded {
                good_end: offset,
                torn: true,
            });
        };
        let payload = &record[RECORD_HEADER_LEN..RECORD_HEADER_LEN + len];
        let payload_crc = if first_format {
            u32_at(rest, 8)
        } else {
            u32_at(record, RECORD_HEADER_LEN + len)
        };
        if crc32fast::hash(payload) != payload_crc {
            return Err(corrupt(offset, "record checksum mismatch"));
        }
        decode_payload(payload, &mut row).map_err(|detail| corrupt(offset, detail))?;
        pos += record.len();
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

/// Bytes a row takes in a payload: its document, embedding metadata and dimensions are
/// all it takes to know, so a record's length is known before its vectors are.
pub fn encoded_row_len(doc_len: usize, embed_meta_len: Option<usize>, dims: usize) -> usize {
    16 + 4 + 4 + doc_len + 4 + embed_meta_len.unwrap_or(0) + 4 * dims
}

/// Bytes `row` takes in a payload.
pub fn encoded_len(row: &RowOut<'_>) -> usize {
    encoded_row_len(
        row.doc.len(),
        row.embed_meta.map(str::len),
        row.vector.len(),
    )
}

/// Payload bytes a [`RecordWriter`] gathers before handing them on: large enough that the
/// writes are few, small enough to stay in cache between being made and being written.
pub const CHUNK: usize = 1 << 20;

/// The bytes of `row` in a payload, piece by piece, in order.
fn row_pieces(row: &RowOut<'_>, mut piece: impl FnMut(&[u8])) {
    let mut head = [0u8; 24];
    head[..16].copy_from_slice(row.id);
    head[16..20].copy_from_slice(&(row.vector.len() as u32).to_le_bytes());
    head[20..24].copy_from_slice(&(row.doc.len() as u32).to_le_bytes());
    piece(&head);
    piece(row.doc.as_bytes());
    match row.embed_meta {
        None => piece(&NO_META.to_le_bytes()),
        Some(meta) => {
            piece(&(meta.len() as u32).to_le_bytes());
            piece(meta.as_bytes());
        }
    }
    if cfg!(target_endian = "little") {
        piece(bytemuck::cast_slice(row.vector));
    } else {
        for value in row.vector {
            piece(&value.to_le_bytes());
        }
    }
}

/// Writes one record front to back as its rows arrive, through `write_at(offset within the
/// record, bytes)`, about [`CHUNK`] bytes at a time, never holding the record in memory.
/// The rows' count and encoded length are given up front (the header carries the length);
/// [`Self::finish`] checks that exactly those rows came.
pub struct RecordWriter<W> {
    write_at: W,
    /// Offset in the record of `buf`'s first byte.
    at: u64,
    rows_left: usize,
    bytes_left: usize,
    crc: crc32fast::Hasher,
    buf: Vec<u8>,
}

fn record_mismatch(detail: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, detail)
}

impl<W: FnMut(u64, &[u8]) -> std::io::Result<()>> RecordWriter<W> {
    /// Starts a record of `row_count` rows taking `rows_len` payload bytes (the sum of their
    /// [`encoded_row_len`]); the payload must stay within [`MAX_PAYLOAD`].
    pub fn begin(row_count: usize, rows_len: usize, write_at: W) -> std::io::Result<Self> {
        let too_big = || std::io::Error::other("a record's rows exceed the format's size limit");
        let count = u32::try_from(row_count).map_err(|_| too_big())?;
        let payload_len = rows_len
            .checked_add(4)
            .filter(|&len| len <= MAX_PAYLOAD)
            .ok_or_else(too_big)?;
        let mut buf = Vec::with_capacity(CHUNK.min(RECORD_HEADER_LEN + payload_len) + 64);
        buf.extend_from_slice(&header(payload_len as u32));
        let mut crc = crc32fast::Hasher::new();
        crc.update(&count.to_le_bytes());
        buf.extend_from_slice(&count.to_le_bytes());
        Ok(RecordWriter {
            write_at,
            at: 0,
            rows_left: row_count,
            bytes_left: rows_len,
            crc,
            buf,
        })
    }

    /// Adds the next row.
    pub fn row(&mut self, row: &RowOut<'_>) -> std::io::Result<()> {
        let len = encoded_len(row);
        if self.rows_left == 0 || len > self.bytes_left {
            return Err(record_mismatch("more rows than the record was begun for"));
        }
        self.rows_left -= 1;
        self.bytes_left -= len;
        let mut failed = None;
        row_pieces(row, |bytes| {
            if failed.is_some() {
                return;
            }
            self.crc.update(bytes);
            self.buf.extend_from_slice(bytes);
            if self.buf.len() >= CHUNK {
                failed = self.flush().err();
            }
        });
        failed.map_or(Ok(()), Err)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        (self.write_at)(self.at, &self.buf)?;
        self.at += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Writes the checksum after the last row; returns the record's length.
    pub fn finish(mut self) -> std::io::Result<u64> {
        if self.rows_left != 0 || self.bytes_left != 0 {
            return Err(record_mismatch("fewer rows than the record was begun for"));
        }
        let crc = std::mem::take(&mut self.crc).finalize();
        self.buf.extend_from_slice(&crc.to_le_bytes());
        self.flush()?;
        Ok(self.at)
    }
}

fn header(payload_len: u32) -> [u8; RECORD_HEADER_LEN] {
    let mut out = [0u8; RECORD_HEADER_LEN];
    out[..4].copy_from_slice(&RECORD_MAGIC);
    out[4..8].copy_from_slice(&payload_len.to_le_bytes());
    let header_crc = crc32fast::hash(&out[..12]);
    out[12..16].copy_from_slice(&header_crc.to_le_bytes());
    out
}

/// Writes one record holding `rows` (their total `encoded_len` must be below
/// [`MAX_PAYLOAD`]) through `write_at` (see [`RecordWriter`]); returns its length. (The
/// store writes with a [`RecordWriter`] directly, rows as they come.)
#[cfg(test)]
pub fn write_record(
    rows: &[RowOut<'_>],
    write_at: impl FnMut(u64, &[u8]) -> std::io::Result<()>,
) -> std::io::Result<u64> {
    let rows_len = rows.iter().map(encoded_len).sum();
    let mut record = RecordWriter::begin(rows.len(), rows_len, write_at)?;
    for row in rows {
        record.row(row)?;
    }
    record.finish()
}

/// One record holding `rows`, in memory (what [`write_record`] writes).
#[cfg(test)]
pub fn encode_record(rows: &[RowOut<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    write_record(rows, |at, bytes| {
        assert_eq!(at, out.len() as u64, "writes come in order");
        out.extend_from_slice(bytes);
        Ok(())
    })
    .expect("writing to memory cannot fail");
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

    /// Rows big enough for a record of several chunks.
    fn big_rows(vectors: &[Vec<f32>]) -> Vec<RowOut<'_>> {
        const IDS: [DocId; 3] = [[7u8; 16], [8u8; 16], [9u8; 16]];
        vectors
            .iter()
            .zip(&IDS)
            .map(|(vector, id)| RowOut {
                id,
                doc: "{\"content\":[]}",
                embed_meta: Some("{\"part\":1}"),
                vector,
            })
            .collect()
    }

    #[test]
    fn a_record_is_written_in_chunks_and_every_prefix_of_the_writes_is_a_torn_tail() {
        let vectors: Vec<Vec<f32>> = (0..3)
            .map(|r| (0..150_000).map(|i| (i * (r + 1)) as f32 * 0.5).collect())
            .collect();
        let rows = big_rows(&vectors);
        let mut writes: Vec<(u64, Vec<u8>)> = Vec::new();
        let len = write_record(&rows, |at, bytes| {
            writes.push((at, bytes.to_vec()));
            Ok(())
        })
        .expect("write");
        assert!(writes.len() >= 2, "{} writes", writes.len());
        assert!(writes.iter().all(|(_, b)| b.len() <= CHUNK + 600_000));
        let whole: Vec<u8> = writes.iter().flat_map(|(_, b)| b.clone()).collect();
        assert_eq!(whole.len() as u64, len);
        let (stored, decoded) = rows_of(&whole).expect("decode");
        assert_eq!(stored.len(), 3);
        assert_eq!(stored[2].3, vectors[2]);
        assert!(!decoded.torn);
        // A writer stopped anywhere (between writes or inside one) leaves a prefix.
        let mut cuts = vec![1, 15, 16, 17, len as usize - 1];
        for (at, bytes) in &writes {
            let at = *at as usize;
            cuts.extend([at, at + 1, at + bytes.len() / 2, at + bytes.len() - 1]);
        }
        for cut in cuts.into_iter().filter(|&c| c > 0) {
            let (stored, decoded) = rows_of(&whole[..cut]).expect("a prefix is never corruption");
            assert!(stored.is_empty() && decoded.torn, "cut {cut}");
        }
        // A failed write stops the record there.
        let mut calls = 0;
        let failed = write_record(&rows, |_, _| {
            calls += 1;
            if calls == 2 {
                Err(std::io::Error::other("disk full"))
            } else {
                Ok(())
            }
        });
        assert!(failed.is_err());
        assert_eq!(calls, 2);
    }

    /// A record in the first format (checksum in the header), as earlier builds wrote it.
    fn first_format_record(rows: &[RowOut<'_>]) -> Vec<u8> {
        let mut payload = (rows.len() as u32).to_le_bytes().to_vec();
        for row in rows {
            row_pieces(row, |bytes| payload.extend_from_slice(bytes));
        }
        let mut out = RECORD_MAGIC_V1.to_vec();
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(&out).to_le_bytes());
        out.extend_from_slice(&payload);
        out
    }

    #[test]
    fn records_of_the_first_format_still_read_beside_current_ones() {
        let old = first_format_record(&[RowOut {
            id: &[5u8; 16],
            doc: "{\"old\":true}",
            embed_meta: Some("{\"part\":2}"),
            vector: &[0.25, 4.0, -2.0],
        }]);
        let mut bytes = old.clone();
        bytes.extend(sample());
        let (rows, decoded) = rows_of(&bytes).expect("decode");
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0].1, "{\"old\":true}");
        assert_eq!(rows[0].2.as_deref(), Some("{\"part\":2}"));
        assert_eq!(rows[0].3, vec![0.25, 4.0, -2.0]);
        assert!(!decoded.torn);
        for cut in 1..old.len() {
            let (rows, decoded) = rows_of(&old[..cut]).expect("a prefix is never corruption");
            assert!(rows.is_empty() && decoded.torn, "cut {cut}");
        }
        for at in 0..old.len() {
            let mut damaged = old.clone();
            damaged[at] ^= 0x08;
            assert!(rows_of(&damaged).is_err(), "byte {at} flipped was accepted");
        }
    }

    #[test]
    fn a_record_takes_exactly_the_rows_it_was_begun_for() {
        let vectors = vec![vec![1.0f32, 2.0], vec![3.0, 4.0]];
        let rows = big_rows(&vectors);
        let rows_len: usize = rows.iter().map(encoded_len).sum();
        let mut out = Vec::new();
        let mut record = RecordWriter::begin(2, rows_len, |_, bytes: &[u8]| {
            out.extend_from_slice(bytes);
            Ok(())
        })
        .expect("begin");
        record.row(&rows[0]).expect("first row");
        let early = record.finish().expect_err("one row short");
        assert_eq!(early.kind(), std::io::ErrorKind::InvalidInput);
        assert!(
            out.is_empty(),
            "a record short of rows writes nothing past its buffer"
        );

        let mut record = RecordWriter::begin(1, rows_len, |_, _: &[u8]| Ok(())).expect("begin");
        record.row(&rows[0]).expect("first row");
        assert!(record.row(&rows[1]).is_err(), "a row past the count");
        let rows_len_of_one = encoded_len(&rows[0]);
        let mut record =
            RecordWriter::begin(2, rows_len_of_one + 1, |_, _: &[u8]| Ok(())).expect("begin");
        record.row(&rows[0]).expect("first row");
        assert!(record.row(&rows[1]).is_err(), "a row longer than announced");
        assert!(RecordWriter::begin(1, MAX_PAYLOAD, |_, _: &[u8]| Ok(())).is_err());
    }

    #[test]
    fn file_header_checks() {
        assert_eq!(check_file_header(&file_header()), Ok(true));
        assert_eq!(check_file_header(&file_header()[..5]), Ok(false));
        assert!(check_file_header(b"{\"json\"").is_err());
    }
}
