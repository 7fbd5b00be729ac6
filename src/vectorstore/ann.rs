//! The approximate index: one-bit codes of the centred unit rows, scanned by Hamming
//! distance, with the best candidates re-ranked exactly.
//!
//! Each row's code is the sign of every component of its unit vector minus the mean unit
//! vector (centring matters: embeddings share a large common direction, which would set
//! most bits alike). For unit vectors, the Hamming distance between such codes estimates the
//! angle between the centred rows, so the rows nearest the query by cosine are among the
//! nearest by Hamming. A search reads `dims / 8` bytes per row instead of `4 · dims` (a 32×
//! smaller pass than the exact scan), keeps the `rerank_depth` rows of smallest distance and
//! scores those exactly; the returned scores are the exact cosines, ranked as the exact
//! search ranks them.
//!
//! Compared with a graph index (HNSW), the codes are built in one pass over the rows (tens
//! of milliseconds for 100k rows, not a minute), extended row by row at no cost, need no
//! persistence (they are rebuilt from the vectors when first used), and the recall depends
//! only on the re-ranking depth, not on the graph's luck.

use pulp::{Arch, Simd, WithSimd};

use super::pool;
use super::topk::{self, Matrix, Scored};

/// Below this many rows an approximate search is simply exact.
pub const MIN_ROWS: usize = 2048;
/// Distances are counted in u16: wider vectors are always searched exactly.
pub const MAX_DIMS: usize = u16::MAX as usize;
/// Candidates re-ranked exactly per result asked for...
const RERANK_PER_RESULT: usize = 40;
/// ...and at least this share of the rows (1/256), so recall holds as the store grows.
const RERANK_SHARE_SHIFT: u32 = 8;
/// The codes' centre is recomputed once the store has grown this many times past the rows
/// it was computed on (the mean of embeddings settles quickly; this bounds the drift).
const RETRAIN_GROWTH: usize = 2;
/// Below this many rows a Hamming scan runs on the calling thread alone. The split waits
/// for a parked pool thread to wake, which costs more than the half of a 100k-row scan it
/// saves (on 2 cores, 100k × 384: 0.39 ms a query alone against 0.43 ms split).
const PARALLEL_MIN_ROWS: usize = 262_144;

pub struct BinaryCodes {
    arch: Arch,
    dims: usize,
    /// u64 words per code.
    words: usize,
    /// Mean unit row when the codes were (re)built.
    centre: Vec<f32>,
    /// Rows the centre was computed on.
    trained_rows: usize,
    /// The codes of rows `0..rows`, stored by word: `columns[j][r]` is word `j` of row
    /// `r`. A scan then runs one long, contiguous loop per word (which the compiler turns
    /// into vector popcounts) instead of a loop of `words` iterations per row.
    columns: Vec<Vec<u64>>,
    rows: usize,
}

/// Rows re-ranked exactly for a top-`k` search over `rows` rows.
pub fn rerank_depth(k: usize, rows: usize) -> usize {
    (k.saturating_mul(RERANK_PER_RESULT))
        .max(rows >> RERANK_SHARE_SHIFT)
        .min(rows)
}

impl BinaryCodes {
    /// Codes for every row of `m`, centred on their mean.
    pub fn build(m: Matrix<'_>) -> BinaryCodes {
        let d = m.dims;
        let mut sum = vec![0f64; d];
        for (row, inv) in m.data.chunks_exact(d).zip(m.inv_norms) {
            for (s, x) in sum.iter_mut().zip(row) {
                *s += f64::from(x * inv);
            }
        }
        let rows = m.rows().max(1) as f64;
        let centre = sum.iter().map(|s| (s / rows) as f32).collect();
        let mut codes = BinaryCodes {
            arch: Arch::new(),
            dims: d,
            words: d.div_ceil(64),
            centre,
            trained_rows: m.rows(),
            columns: vec![Vec::with_capacity(m.rows()); d.div_ceil(64)],
            rows: 0,
        };
        codes.extend(m);
        codes
    }

    /// Whether the codes cover exactly `rows` rows.
    pub fn is_current(&self, rows: usize) -> bool {
        self.rows == rows
    }

    /// Whether the store grew enough since the centre was computed to rebuild from scratch.
    pub fn needs_retraining(&self, rows: usize) -> bool {
        rows > self.trained_rows.saturating_mul(RETRAIN_GROWTH)
    }

    /// Adds the codes of the rows of `m` past those already coded.
    pub fn extend(&mut self, m: Matrix<'_>) {
        let d = self.dims;
        for r in self.rows..m.rows() {
            let unit_scale = m.inv_norms[r];
            let row = &m.data[r * d..(r + 1) * d];
            for (column, word) in self
                .columns
                .iter_mut()
                .zip(encode(row, unit_scale, &self.centre))
            {
                column.push(word);
            }
        }
        self.rows = m.rows();
    }

    /// Approximate top-k of a normalised query: the `rerank_depth` rows nearest by Hamming
    /// distance, scored exactly.
    pub fn search(&self, m: Matrix<'_>, query: &[f32], k: usize) -> Vec<Scored> {
        let depth = rerank_depth(k, self.rows);
        if depth >= self.rows {
            return topk::search(m, query, k, None);
        }
        let code: Vec<u64> = encode(query, 1.0, &self.centre).collect();
        let candidates = self.nearest(&code, depth);
        topk::search(m, query, k, Some(&candidates))
    }

    /// The `depth` rows nearest `code` by Hamming distance, as [`nearest_rows`] finds them,
    /// with both passes split across cores for large stores: each share of the rows gets its
    /// distances and their histogram in one go (while the distances are in cache), the
    /// summed histograms give the cut-off, and each share then collects its rows, taking
    /// the rows at the cut-off in row order (the shares before it take theirs first).
    fn nearest(&self, code: &[u64], depth: usize) -> Vec<u32> {
        let threads = if self.rows < PARALLEL_MIN_ROWS {
            1
        } else {
            topk::cores().min(8)
        };
        let per = self.rows.div_ceil(threads);
        let width = self.words * 64 + 1;
        let columns = &self.columns;
        let arch = self.arch;
        let mut distances = vec![0u16; self.rows];
        let jobs = distances.chunks_mut(per).enumerate().collect();
        let histograms = pool::map(jobs, |(i, out)| {
            arch.dispatch(Hamming {
                code,
                columns,
                first_row: i * per,
                out,
            });
            histogram(out, width)
        });
        let mut total = vec![0u32; width];
        for h in &histograms {
            for (t, c) in total.iter_mut().zip(h) {
                *t += c;
            }
        }
        let (cutoff, below) = cut_off(&total, depth);
        let mut ties_left = depth - below;
        let jobs: Vec<_> = distances
            .chunks(per)
            .zip(&histograms)
            .enumerate()
            .map(|(i, (share, h))| {
                let ties = ties_left.min(h[usize::from(cutoff)] as usize);
                ties_left -= ties;
                (i * per, share, ties)
            })
            .collect();
        pool::map(jobs, |(first_row, share, ties)| {
            collect(share, first_row, cutoff, ties, depth)
        })
        .concat()
    }
}

/// The code of `row · scale` centred on `centre`: bit `j` is set when component `j` lies
/// above the centre's.
fn encode<'a>(row: &'a [f32], scale: f32, centre: &'a [f32]) -> impl Iterator<Item = u64> + 'a {
    row.chunks(64)
        .zip(centre.chunks(64))
        .map(move |(part, mid)| {
            part.iter()
                .zip(mid)
                .enumerate()
                .fold(0u64, |word, (bit, (x, c))| {
                    word | (u64::from(x * scale > *c) << bit)
                })
        })
}

/// The `depth` rows of smallest distance (ties broken by row order), in ascending row order:
/// a histogram finds the distance cut-off in one pass, a second pass collects the rows.
#[cfg(test)]
fn nearest_rows(distances: &[u16], depth: usize, max_distance: usize) -> Vec<u32> {
    let counts = histogram(distances, max_distance + 1);
    let (cutoff, below) = cut_off(&counts, depth);
    collect(distances, 0, cutoff, depth - below, depth)
}

/// How many of `distances` there are at each distance below `width`.
fn histogram(distances: &[u16], width: usize) -> Vec<u32> {
    // Four histograms, filled in turn: neighbouring rows often have equal distances, and
    // one histogram would make each increment wait for the previous one's store.
    let mut histograms = vec![0u32; 4 * width];
    let mut quads = distances.chunks_exact(4);
    for quad in &mut quads {
        for (lane, &d) in quad.iter().enumerate() {
            histograms[lane * width + usize::from(d)] += 1;
        }
    }
    for &d in quads.remainder() {
        histograms[usize::from(d)] += 1;
    }
    (0..width)
        .map(|d| (0..4).map(|lane| histograms[lane * width + d]).sum())
        .collect()
}

/// The smallest distance at which `depth` rows are reached, and how many rows lie below it.
fn cut_off(counts: &[u32], depth: usize) -> (u16, usize) {
    let mut below = 0;
    for (distance, &count) in counts.iter().enumerate() {
        if below + count as usize >= depth {
            return (distance as u16, below);
        }
        below += count as usize;
    }
    (counts.len().saturating_sub(1) as u16, below)
}

/// The rows (numbered from `first_row`) closer than `cutoff`, and the first `ties` rows at
/// it, at most `depth` in all.
///
/// Few rows qualify (`depth` of many), so the distances are checked a block at a time with
/// one vectorised comparison, and only a block holding a qualifying row is walked row by
/// row; that walk has no branches (a row is stored, then kept or overwritten by the next),
/// since whether a row at the cut-off is still taken is unpredictable.
fn collect(
    distances: &[u16],
    first_row: usize,
    cutoff: u16,
    ties: usize,
    depth: usize,
) -> Vec<u32> {
    const BLOCK: usize = 32;
    let mut at_cutoff = ties;
    let mut rows = vec![0u32; distances.len().min(depth) + 1];
    let mut kept = 0;
    for (b, block) in distances.chunks(BLOCK).enumerate() {
        if !block.iter().fold(false, |any, &d| any | (d <= cutoff)) {
            continue;
        }
        let base = first_row + b * BLOCK;
        for (row, &d) in block.iter().enumerate() {
            let tie = d == cutoff && at_cutoff > 0;
            rows[kept] = (base + row) as u32;
            kept += usize::from(d < cutoff || tie);
            at_cutoff -= usize::from(tie);
        }
    }
    rows.truncate(kept);
    rows
}

/// `out[i] += popcount(code[j] XOR columns[j][first_row + i])` over every word `j`, under
/// the CPU's best instruction set (AVX2 turns the loop into vector popcounts).
struct Hamming<'a> {
    code: &'a [u64],
    columns: &'a [Vec<u64>],
    first_row: usize,
    out: &'a mut [u16],
}

impl WithSimd for Hamming<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _simd: S) {
        let rows = self.first_row..self.first_row + self.out.len();
        for (&word, column) in self.code.iter().zip(self.columns) {
            for (out, &stored) in self.out.iter_mut().zip(&column[rows.clone()]) {
                // At most 64 per word; `dims` is checked to fit u16 before codes are built.
                *out += (stored ^ word).count_ones() as u16;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Low-rank plus noise: `rank` random directions mixed per row, plus small noise.
    fn embedding_like(n: usize, dims: usize, rank: usize, seed: u64) -> Vec<f32> {
        let mut state = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) as f64 / (1u64 << 31) as f64 - 0.5) as f32
        };
        let basis: Vec<f32> = (0..rank * dims).map(|_| next()).collect();
        let mut out = Vec::with_capacity(n * dims);
        for _ in 0..n {
            let mix: Vec<f32> = (0..rank).map(|_| next()).collect();
            for j in 0..dims {
                let signal: f32 = (0..rank).map(|r| mix[r] * basis[r * dims + j]).sum();
                // A shared offset, as real embeddings have: centring must remove it.
                out.push(signal + 0.05 * next() + 0.3);
            }
        }
        out
    }

    fn inverse_norms(data: &[f32], dims: usize) -> Vec<f32> {
        data.chunks_exact(dims)
            .map(|r| topk::inverse_norm(r).expect("nonzero"))
            .collect()
    }

    #[test]
    fn recall_at_10_on_low_rank_data() {
        let (n, dims) = (20_000, 128);
        // The queries come from the same distribution (the last 50 rows generated).
        let all = embedding_like(n + 50, dims, 24, 7);
        let (data, queries) = all.split_at(n * dims);
        let inv = inverse_norms(data, dims);
        let m = Matrix {
            data,
            inv_norms: &inv,
            dims,
        };
        let codes = BinaryCodes::build(m);
        assert!(codes.is_current(n));
        let mut found = 0;
        for q in queries.chunks_exact(dims) {
            let q = topk::normalized(q).expect("q");
            let exact = topk::search(m, &q, 10, None);
            let approx = codes.search(m, &q, 10);
            // Exact scores for the rows found.
            for hit in &approx {
                assert!(
                    exact
                        .iter()
                        .all(|e| e.row != hit.row || e.score == hit.score)
                );
            }
            found += approx.iter().filter(|r| exact.contains(r)).count();
        }
        let recall = found as f64 / 500.0;
        assert!(recall >= 0.95, "recall {recall}");
    }

    #[test]
    fn extending_codes_matches_coding_each_row() {
        let dims = 70; // not a multiple of 64: the last word is partial
        let data = embedding_like(3_000, dims, 8, 3);
        let inv = inverse_norms(&data, dims);
        let whole = Matrix {
            data: &data,
            inv_norms: &inv,
            dims,
        };
        let first = Matrix {
            data: &data[..1_000 * dims],
            inv_norms: &inv[..1_000],
            dims,
        };
        let mut grown = BinaryCodes::build(first);
        assert!(!grown.is_current(3_000));
        assert!(grown.needs_retraining(3_000));
        assert!(!grown.needs_retraining(2_000));
        grown.extend(whole);
        assert!(grown.is_current(3_000));
        assert!(grown.columns.iter().all(|c| c.len() == 3_000));
        for (r, row) in data.chunks_exact(dims).enumerate() {
            let code: Vec<u64> = encode(row, inv[r], &grown.centre).collect();
            assert_eq!(code, [grown.columns[0][r], grown.columns[1][r]], "row {r}");
        }
        // The bits past `dims` in the last word stay clear.
        assert!(grown.columns[1].iter().all(|w| w >> (dims - 64) == 0));
    }

    #[test]
    fn the_cut_off_keeps_exactly_depth_rows_in_row_order() {
        let distances = [5u16, 1, 3, 3, 0, 3, 9, 3];
        assert_eq!(nearest_rows(&distances, 1, 9), vec![4]);
        assert_eq!(nearest_rows(&distances, 3, 9), vec![1, 2, 4]);
        assert_eq!(nearest_rows(&distances, 5, 9), vec![1, 2, 3, 4, 5]);
        assert_eq!(nearest_rows(&distances, 8, 9), (0..8).collect::<Vec<u32>>());
    }

    #[test]
    fn the_cut_off_matches_sorting_across_skipped_and_walked_blocks() {
        // Long runs of far rows (blocks skipped whole) between near ones and ties, lengths
        // that do not fill the last block, and depths that cut inside a run of ties.
        let mut state = 7u64;
        for len in [31, 32, 33, 1_000, 4_099] {
            let distances: Vec<u16> = (0..len)
                .map(|_| {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                    match (state >> 40) % 100 {
                        0 => 2,
                        1..=3 => 5,
                        _ => 60,
                    }
                })
                .collect();
            for depth in [1, 3, 10, 40, len / 2, len]
                .into_iter()
                .filter(|&d| d <= len)
            {
                let mut by_distance: Vec<u32> = (0..len as u32).collect();
                by_distance.sort_by_key(|&r| (distances[r as usize], r));
                let mut expected = by_distance[..depth].to_vec();
                expected.sort_unstable();
                assert_eq!(
                    nearest_rows(&distances, depth, 64),
                    expected,
                    "{len} {depth}"
                );
            }
        }
    }

    #[test]
    fn split_candidate_search_matches_the_single_pass() {
        // Past PARALLEL_MIN_ROWS, so both passes are split across the pool's threads; few
        // dimensions, so many rows tie at the cut-off and the tie quota per share matters.
        let (n, dims) = (PARALLEL_MIN_ROWS + 12_345, 16);
        let data = embedding_like(n, dims, 4, 9);
        let inv = inverse_norms(&data, dims);
        let m = Matrix {
            data: &data,
            inv_norms: &inv,
            dims,
        };
        let codes = BinaryCodes::build(m);
        for (q, depth) in data
            .chunks_exact(dims)
            .step_by(7_919)
            .zip([1, 10, 400, 5_000, n])
        {
            let code: Vec<u64> = encode(q, 1.0, &codes.centre).collect();
            let distances: Vec<u16> = (0..n)
                .map(|r| (codes.columns[0][r] ^ code[0]).count_ones() as u16)
                .collect();
            let expected = nearest_rows(&distances, depth, 64);
            assert_eq!(expected.len(), depth);
            assert_eq!(codes.nearest(&code, depth), expected, "depth {depth}");
        }
    }

    #[test]
    fn rerank_depth_grows_with_k_and_with_the_store() {
        assert_eq!(rerank_depth(10, 100_000), 400);
        assert_eq!(rerank_depth(10, 1_000_000), 3_906);
        assert_eq!(rerank_depth(3, 50), 50);
    }
}
