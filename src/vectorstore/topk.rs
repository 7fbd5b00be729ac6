//! Exact top-k by cosine similarity over contiguous f32 rows.
//!
//! Rows are stored as given, next to the inverse of each row's norm; the query is normalised
//! once, so a row's cosine is `dot(q̂, x) · (1/‖x‖)`: one pass over the bytes, one multiply
//! per row. The dot products use pulp's runtime dispatch (AVX-512 or AVX2+FMA where the CPU
//! has it, plain code otherwise) and several independent accumulators so the loop is bound
//! by memory, not by add latency. Large scans split the rows across every core (the threads of
//! [`pool`], parked between searches).
//!
//! Ties keep indexing order (the lower row wins), as JS's observed order does.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::Arc;

use pulp::{Arch, Simd, WithSimd};

use super::pool;

/// A row number and its cosine similarity to the query.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scored {
    pub row: u32,
    pub score: f32,
}

/// Heap entry ordered so that the heap's top is the worst kept result.
#[derive(Clone, Copy)]
struct Kept(Scored);

impl Kept {
    /// `Greater` when `self` ranks below `other` (lower score, or same score and later row).
    fn worse_cmp(&self, other: &Self) -> Ordering {
        other
            .0
            .score
            .total_cmp(&self.0.score)
            .then(self.0.row.cmp(&other.0.row))
    }
}

impl PartialEq for Kept {
    fn eq(&self, other: &Self) -> bool {
        self.worse_cmp(other) == Ordering::Equal
    }
}
impl Eq for Kept {}
impl PartialOrd for Kept {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Kept {
    fn cmp(&self, other: &Self) -> Ordering {
        self.worse_cmp(other)
    }
}

/// The `k` best of a stream of scored rows.
pub struct TopK {
    k: usize,
    heap: BinaryHeap<Kept>,
    /// The worst kept score once `k` are kept (`-inf` before): anything strictly below it
    /// is rejected with one comparison, which is what almost every row of a scan gets.
    floor: f32,
}

impl TopK {
    pub fn new(k: usize) -> Self {
        TopK {
            k,
            heap: BinaryHeap::with_capacity(k.min(4096) + 1),
            floor: f32::NEG_INFINITY,
        }
    }

    #[inline]
    pub fn push(&mut self, row: u32, score: f32) {
        if score < self.floor || self.k == 0 {
            return;
        }
        // A NaN score (an overflowing dot product) ranks last.
        let score = if score.is_nan() {
            f32::NEG_INFINITY
        } else {
            score
        };
        let entry = Kept(Scored { row, score });
        if self.heap.len() < self.k {
            self.heap.push(entry);
        } else if let Some(mut worst) = self.heap.peek_mut()
            && entry.worse_cmp(&worst) == Ordering::Less
        {
            *worst = entry;
        }
        if self.heap.len() == self.k
            && let Some(worst) = self.heap.peek()
        {
            self.floor = worst.0.score;
        }
    }

    /// Adds every result of `other`.
    pub fn merge(&mut self, other: TopK) {
        for Kept(s) in other.heap {
            self.push(s.row, s.score);
        }
    }

    /// Best first.
    pub fn into_sorted(self) -> Vec<Scored> {
        let mut kept = self.heap.into_vec();
        kept.sort_by(Kept::worse_cmp);
        kept.into_iter().map(|Kept(s)| s).collect()
    }
}

/// `q` scaled to unit length, or `None` for a zero or non-finite norm.
pub fn normalized(q: &[f32]) -> Option<Vec<f32>> {
    let inv = inverse_norm(q)?;
    Some(q.iter().map(|x| x * inv).collect())
}

/// `1/‖v‖` computed in f64 (no overflow for large components), or `None` when it is unusable.
pub fn inverse_norm(v: &[f32]) -> Option<f32> {
    inverse_norm_of(v.iter().fold(0.0, |sum, &x| add_square(sum, x)))
}

/// One step of [`inverse_norm`]'s sum of squares, in its order (for callers that add the
/// values as they read them, with the same result).
#[inline]
pub fn add_square(sum: f64, x: f32) -> f64 {
    sum + f64::from(x) * f64::from(x)
}

/// [`inverse_norm`] from the sum of squares.
pub fn inverse_norm_of(sum: f64) -> Option<f32> {
    let norm = sum.sqrt();
    let inv = (1.0 / norm) as f32;
    (norm > 0.0 && norm.is_finite() && inv.is_finite() && inv > 0.0).then_some(inv)
}

/// Rows scored per kernel call: large enough to amortise dispatch, small enough for L1/L2.
const BLOCK_ROWS: usize = 256;
/// Below this many stored floats a scan runs on the calling thread alone.
const PARALLEL_MIN_FLOATS: usize = 1 << 19;

/// The store's vectors as the scan sees them.
#[derive(Clone, Copy)]
pub struct Matrix<'a> {
    pub data: &'a [f32],
    pub inv_norms: &'a [f32],
    pub dims: usize,
}

impl Matrix<'_> {
    pub fn rows(&self) -> usize {
        self.inv_norms.len()
    }
}

/// The cores a scan may use, read once: `available_parallelism` reads the cgroup's CPU
/// quota files on every call, which costs more than a small search.
pub fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(16)
    })
}

/// Whether a scan over `floats` stored values is worth sharing with the pool's threads.
fn parallel(floats: usize) -> bool {
    floats >= PARALLEL_MIN_FLOATS && cores() > 1
}

/// Splits `0..n` into `parts` contiguous ranges.
fn split(n: usize, parts: usize) -> Vec<std::ops::Range<usize>> {
    let per = n.div_ceil(parts.max(1)).max(1);
    (0..n).step_by(per).map(|s| s..(s + per).min(n)).collect()
}

/// Where the scan pool's threads find a store's rows while a search is running: the
/// searching thread holds the rows (a read lock, say) for the whole search, and a pool
/// thread joins in only if it can have the same rows without blocking.
pub trait Source: Send + Sync + 'static {
    /// Calls `f` with the rows and returns `true`, or returns `false` at once when they
    /// cannot be had without waiting.
    fn try_rows(&self, f: &mut dyn FnMut(Matrix<'_>)) -> bool;
}

/// Exact top-k of one normalised query over every row, or over `candidates` (ascending
/// row numbers) when given, on the calling thread.
pub fn search(m: Matrix<'_>, query: &[f32], k: usize, candidates: Option<&[u32]>) -> Vec<Scored> {
    debug_assert_eq!(query.len(), m.dims);
    let count = candidates.map_or(m.rows(), <[u32]>::len);
    let mut top = TopK::new(k);
    scan_into(&mut top, m, query, candidates, 0..count);
    top.into_sorted()
}

/// [`search`] of the rows `m` that `source` also gives, shared with the scan pool when it
/// is large: the rows are cut into chunks that the calling thread and the pool's threads
/// claim one at a time ([`pool::share`]), so the caller never waits for a parked thread to
/// wake, and a core slowed by other work takes fewer chunks.
pub fn search_shared(
    m: Matrix<'_>,
    source: &Arc<dyn Source>,
    query: &[f32],
    k: usize,
    candidates: Option<Arc<[u32]>>,
) -> Vec<Scored> {
    let count = candidates.as_deref().map_or(m.rows(), <[u32]>::len);
    if !parallel(count * m.dims) {
        return search(m, query, k, candidates.as_deref());
    }
    let chunks: Arc<[std::ops::Range<usize>]> = chunks_of(count, m.dims).into();
    let fold = move |m: Matrix<'_>,
                     claims: &pool::Claims,
                     query: &[f32],
                     candidates: Option<&[u32]>,
                     chunks: &[std::ops::Range<usize>]| {
        let mut top = TopK::new(k);
        while let Some(i) = claims.claim() {
            scan_into(&mut top, m, query, candidates, chunks[i].clone());
        }
        top
    };
    let helper = {
        let (source, query, chunks, candidates) = (
            Arc::clone(source),
            Arc::<[f32]>::from(query),
            Arc::clone(&chunks),
            candidates.clone(),
        );
        move |claims: &pool::Claims| {
            let mut top = None;
            source.try_rows(&mut |m| {
                top = Some(fold(m, claims, &query, candidates.as_deref(), &chunks));
            });
            top
        }
    };
    let parts = pool::share(chunks.len(), helper, |claims| {
        fold(m, claims, query, candidates.as_deref(), &chunks)
    });
    let mut total = TopK::new(k);
    for part in parts {
        total.merge(part);
    }
    total.into_sorted()
}

/// Stored floats per claimed chunk of a parallel scan: ~512 KiB, a few microseconds of
/// work, so the last chunk in progress holds the caller up only briefly, and a scan of
/// 10k 384-dim rows still has ~30 chunks to balance.
const CHUNK_FLOATS: usize = 1 << 17;

/// `0..rows` cut into chunks of about [`CHUNK_FLOATS`] stored floats.
fn chunks_of(rows: usize, dims: usize) -> Vec<std::ops::Range<usize>> {
    let per = (CHUNK_FLOATS / dims.max(1)).max(1);
    split(rows, rows.div_ceil(per))
}

/// Scores positions `range` of the row list (all rows, or `candidates`) into `top`.
fn scan_into(
    top: &mut TopK,
    m: Matrix<'_>,
    query: &[f32],
    candidates: Option<&[u32]>,
    range: std::ops::Range<usize>,
) {
    let arch = Arch::new();
    let mut scores = [0f32; BLOCK_ROWS];
    let mut start = range.start;
    while start < range.end {
        let end = (start + BLOCK_ROWS).min(range.end);
        let ids = candidates.map(|rows| &rows[start..end]);
        let out = &mut scores[..end - start];
        arch.dispatch(DotRows {
            query,
            data: m.data,
            dims: m.dims,
            first: start,
            ids,
            out,
        });
        for (offset, &dot) in out.iter().enumerate() {
            let row = ids.map_or(start + offset, |ids| ids[offset] as usize);
            top.push(row as u32, dot * m.inv_norms[row]);
        }
        start = end;
    }
}

/// Exact top-k of several normalised queries (`queries` holds them back to back), in one
/// pass over the rows: each block of rows is scored against every query while it is in
/// cache, as a small matrix product ([`DotBlock`]). Shared with the scan pool as
/// [`search_shared`] is.
pub fn search_many(
    m: Matrix<'_>,
    source: &Arc<dyn Source>,
    queries: &[f32],
    k: usize,
) -> Vec<Vec<Scored>> {
    let d = m.dims;
    let nq = queries.len() / d.max(1);
    let arch = Arch::new();
    let packed = arch.dispatch(Pack { queries, dims: d });
    if !parallel(m.rows() * d * nq.max(1) / 8) {
        let mut tops: Vec<TopK> = (0..nq).map(|_| TopK::new(k)).collect();
        scan_many_into(&mut tops, m, &packed, 0..m.rows(), &mut Vec::new());
        return finish(tops);
    }
    // A chunk's work is its rows times the queries; at least a block of rows each.
    let per = (CHUNK_FLOATS / (d * nq).max(1)).max(BLOCK_ROWS);
    let chunks: Arc<[std::ops::Range<usize>]> = split(m.rows(), m.rows().div_ceil(per)).into();
    let fold = move |m: Matrix<'_>,
                     claims: &pool::Claims,
                     packed: &Packed,
                     chunks: &[std::ops::Range<usize>]| {
        let mut tops: Vec<TopK> = (0..nq).map(|_| TopK::new(k)).collect();
        let mut scores = Vec::new();
        while let Some(i) = claims.claim() {
            scan_many_into(&mut tops, m, packed, chunks[i].clone(), &mut scores);
        }
        tops
    };
    let packed = Arc::new(packed);
    let helper = {
        let (source, packed, chunks) =
            (Arc::clone(source), Arc::clone(&packed), Arc::clone(&chunks));
        move |claims: &pool::Claims| {
            let mut tops = None;
            source.try_rows(&mut |m| tops = Some(fold(m, claims, &packed, &chunks)));
            tops
        }
    };
    let mut parts = pool::share(chunks.len(), helper, |claims| {
        fold(m, claims, &packed, &chunks)
    })
    .into_iter();
    let mut totals = parts.next().expect("the caller's part");
    for part in parts {
        for (total, top) in totals.iter_mut().zip(part) {
            total.merge(top);
        }
    }
    finish(totals)
}

fn finish(tops: Vec<TopK>) -> Vec<Vec<Scored>> {
    tops.into_iter().map(TopK::into_sorted).collect()
}

/// Queries laid out for [`DotBlock`] by [`Pack`]: SIMD vectors across queries, one vector
/// of `lanes` queries per dimension, in panels of up to two vectors (the last query vector
/// zero-padded); a panel holds, for each dimension in turn, its vectors side by side.
pub struct Packed {
    data: Vec<f32>,
    queries: usize,
    dims: usize,
    lanes: usize,
}

impl Packed {
    /// Query vectors (of `lanes` queries each).
    fn vectors(&self) -> usize {
        self.queries.div_ceil(self.lanes)
    }
    /// Floats per row of a block's scores: every query, padded to whole vectors.
    fn stride(&self) -> usize {
        self.vectors() * self.lanes
    }
}

/// Lays out queries for the SIMD width `S` (the same dispatch [`scan_many_into`] uses).
struct Pack<'a> {
    queries: &'a [f32],
    dims: usize,
}

impl WithSimd for Pack<'_> {
    type Output = Packed;

    #[inline(always)]
    fn with_simd<S: Simd>(self, _simd: S) -> Packed {
        let d = self.dims;
        let lanes = (std::mem::size_of::<S::f32s>() / 4).max(1);
        let nq = self.queries.len() / d.max(1);
        let vectors = nq.div_ceil(lanes);
        let mut data = vec![0f32; vectors * lanes * d];
        for (qi, q) in self.queries.chunks_exact(d.max(1)).enumerate() {
            let (v, lane) = (qi / lanes, qi % lanes);
            let v0 = v & !1;
            let width = (vectors - v0).min(2);
            for (c, &x) in q.iter().enumerate() {
                data[(v0 * d + c * width + (v - v0)) * lanes + lane] = x;
            }
        }
        Packed {
            data,
            queries: nq,
            dims: d,
            lanes,
        }
    }
}

/// Scores rows `range` against every query, into `tops` (one per query).
/// `scores` is scratch space, kept by the caller across calls (one call per chunk).
fn scan_many_into(
    tops: &mut [TopK],
    m: Matrix<'_>,
    packed: &Packed,
    range: std::ops::Range<usize>,
    scores: &mut Vec<f32>,
) {
    let d = m.dims;
    debug_assert_eq!(packed.dims, d);
    let stride = packed.stride();
    let arch = Arch::new();
    scores.resize(BLOCK_ROWS * stride, 0.0);
    let mut start = range.start;
    while start < range.end {
        let end = (start + BLOCK_ROWS).min(range.end);
        let rows = end - start;
        arch.dispatch(DotBlock {
            packed,
            rows: &m.data[start * d..end * d],
            out: &mut scores[..rows * stride],
        });
        // Row by row, each row's scores in memory order (a query's rows still ascend).
        let inv = &m.inv_norms[start..end];
        for (offset, (row_scores, &inv)) in scores.chunks_exact(stride).zip(inv).enumerate() {
            let row = (start + offset) as u32;
            for (top, &dot) in tops.iter_mut().zip(row_scores) {
                top.push(row, dot * inv);
            }
        }
        start = end;
    }
}

/// `out[i] = dot(query, row i)` for the rows `ids` of `data` (all rows from `first` on
/// without `ids`).
struct DotRows<'a> {
    query: &'a [f32],
    data: &'a [f32],
    dims: usize,
    first: usize,
    ids: Option<&'a [u32]>,
    out: &'a mut [f32],
}

impl WithSimd for DotRows<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        // One row at a time reads a single stream, and one core's stream runs at what the
        // hardware prefetcher keeps in flight (~16 GB/s here, short of what two cores'
        // memory gives); rows from four parts of the block at once are four streams (100k
        // rows on one core: 9.1 ms one stream, 7.3-8.0 ms four). Eight streams on AVX-512
        // measured no better (four took 0.95-1.03x eight's time, interleaved).
        dot_rows::<S, 4>(simd, self);
    }
}

#[inline(always)]
fn dot_rows<S: Simd, const N: usize>(simd: S, op: DotRows<'_>) {
    let DotRows {
        query,
        data,
        dims: d,
        first,
        ids,
        out,
    } = op;
    let row = |i: usize| {
        let r = ids.map_or(first + i, |ids| ids[i] as usize);
        &data[r * d..][..d]
    };
    let n = out.len();
    let per = n / N;
    for i in 0..per {
        let dots = dots::<S, N>(simd, query, std::array::from_fn(|p| row(p * per + i)));
        for (p, dot) in dots.into_iter().enumerate() {
            out[p * per + i] = dot;
        }
    }
    for (i, slot) in out.iter_mut().enumerate().skip(per * N) {
        *slot = dots::<S, 1>(simd, query, [row(i)])[0];
    }
}

/// `dot(query, x[p])` for each `p`, every one summed in the same order (two SIMD sums over
/// alternate vectors, then the scalar tail) whichever rows share the call.
#[inline(always)]
fn dots<S: Simd, const N: usize>(simd: S, query: &[f32], x: [&[f32]; N]) -> [f32; N] {
    let (q_head, q_tail) = S::as_simd_f32s(query);
    let x: [(&[S::f32s], &[f32]); N] = std::array::from_fn(|p| S::as_simd_f32s(x[p]));
    let zero = simd.splat_f32s(0.0);
    let mut acc = [[zero; 2]; N];
    let pairs = q_head.len() / 2;
    for c in 0..pairs {
        for p in 0..N {
            acc[p][0] = simd.mul_add_e_f32s(q_head[2 * c], x[p].0[2 * c], acc[p][0]);
            acc[p][1] = simd.mul_add_e_f32s(q_head[2 * c + 1], x[p].0[2 * c + 1], acc[p][1]);
        }
    }
    if q_head.len() % 2 == 1 {
        let c = q_head.len() - 1;
        for p in 0..N {
            acc[p][0] = simd.mul_add_e_f32s(q_head[c], x[p].0[c], acc[p][0]);
        }
    }
    std::array::from_fn(|p| {
        let mut dot = simd.reduce_sum_f32s(simd.add_f32s(acc[p][0], acc[p][1]));
        for (q, v) in q_tail.iter().zip(x[p].1) {
            dot += q * v;
        }
        dot
    })
}

/// `out[i * stride + qi] = dot(query qi, row i)` for a block of rows (`stride` from
/// [`Packed::stride`]). Lanes run across queries, so no horizontal sums: each score is one
/// chain of multiply-adds over the dimensions in order. A tile of `R` rows times a panel
/// of (up to) two query vectors stays in registers; each row value is broadcast once per
/// panel and used for every query of it.
struct DotBlock<'a> {
    packed: &'a Packed,
    rows: &'a [f32],
    out: &'a mut [f32],
}

impl WithSimd for DotBlock<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let lanes = std::mem::size_of::<S::f32s>() / 4;
        assert_eq!(
            lanes.max(1),
            self.packed.lanes,
            "packed for this SIMD width"
        );
        // AVX-512 has 32 registers: 8 rows x 2 vectors of sums; 16 elsewhere: 6 x 2.
        if lanes >= 16 {
            block::<S, 8>(simd, self);
        } else {
            block::<S, 6>(simd, self);
        }
    }
}

#[inline(always)]
fn block<S: Simd, const R: usize>(simd: S, op: DotBlock<'_>) {
    let packed = op.packed;
    let d = packed.dims;
    let vectors = packed.vectors();
    let (qt, _) = S::as_simd_f32s(&packed.data);
    let (out, _) = S::as_mut_simd_f32s(op.out);
    let nrows = op.rows.len() / d.max(1);
    let mut v0 = 0;
    while v0 < vectors {
        let panel = &qt[v0 * d..];
        if vectors - v0 >= 2 {
            tiles::<S, R, 2>(
                simd,
                &panel[..2 * d],
                op.rows,
                d,
                nrows,
                &mut *out,
                vectors,
                v0,
            );
        } else {
            tiles::<S, R, 1>(simd, &panel[..d], op.rows, d, nrows, &mut *out, vectors, v0);
        }
        v0 += 2;
    }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn tiles<S: Simd, const R: usize, const W: usize>(
    simd: S,
    panel: &[S::f32s],
    rows: &[f32],
    d: usize,
    nrows: usize,
    out: &mut [S::f32s],
    vectors: usize,
    v0: usize,
) {
    let zero = simd.splat_f32s(0.0);
    let mut r = 0;
    while r < nrows {
        let n = (nrows - r).min(R);
        let x: [&[f32]; R] = std::array::from_fn(|i| &rows[(r + i.min(n - 1)) * d..][..d]);
        let mut acc = [[zero; W]; R];
        for (c, q) in panel.chunks_exact(W).enumerate().take(d) {
            for i in 0..R {
                let xs = simd.splat_f32s(x[i][c]);
                for j in 0..W {
                    acc[i][j] = simd.mul_add_e_f32s(xs, q[j], acc[i][j]);
                }
            }
        }
        for (i, sums) in acc.iter().enumerate().take(n) {
            out[(r + i) * vectors + v0..][..W].copy_from_slice(sums);
        }
        r += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    struct Owned {
        data: Vec<f32>,
        inv: Vec<f32>,
        dims: usize,
    }

    impl Owned {
        fn new(rows: &[Vec<f32>]) -> Self {
            let dims = rows[0].len();
            Owned {
                data: rows.concat(),
                inv: rows
                    .iter()
                    .map(|r| inverse_norm(r).expect("nonzero"))
                    .collect(),
                dims,
            }
        }
        fn matrix(&self) -> Matrix<'_> {
            Matrix {
                data: &self.data,
                inv_norms: &self.inv,
                dims: self.dims,
            }
        }
    }

    impl Source for Owned {
        fn try_rows(&self, f: &mut dyn FnMut(Matrix<'_>)) -> bool {
            f(self.matrix());
            true
        }
    }

    /// Rows the pool may share (the tests' stand-in for a store's lock).
    fn shared(rows: &[Vec<f32>]) -> (Arc<Owned>, Arc<dyn Source>) {
        let owned = Arc::new(Owned::new(rows));
        let source: Arc<dyn Source> = owned.clone();
        (owned, source)
    }

    /// A source whose rows can never be had: the caller scans alone.
    struct Locked;
    impl Source for Locked {
        fn try_rows(&self, _f: &mut dyn FnMut(Matrix<'_>)) -> bool {
            false
        }
    }

    /// Cosines in f64, sorted by a stable sort: the reference.
    fn naive(rows: &[Vec<f32>], q: &[f32], k: usize) -> Vec<(u32, f64)> {
        let cos = |x: &[f32]| {
            let dot: f64 = x
                .iter()
                .zip(q)
                .map(|(a, b)| f64::from(*a) * f64::from(*b))
                .sum();
            let nx: f64 = x.iter().map(|a| f64::from(*a).powi(2)).sum::<f64>().sqrt();
            let nq: f64 = q.iter().map(|a| f64::from(*a).powi(2)).sum::<f64>().sqrt();
            dot / (nx * nq)
        };
        let mut all: Vec<(u32, f64)> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| (i as u32, cos(r)))
            .collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1));
        all.truncate(k);
        all
    }

    #[test]
    fn toy_embedder_order_from_the_spec() {
        // aaa{src:1}, bbb, abc, ccc, aab, aaa{src:2} as [count a, count b, count c].
        let rows = vec![
            vec![3., 0., 0.],
            vec![0., 3., 0.],
            vec![1., 1., 1.],
            vec![0., 0., 3.],
            vec![2., 1., 0.],
            vec![3., 0., 0.],
        ];
        let m = Owned::new(&rows);
        let q = normalized(&[1., 0., 0.]).expect("q");
        let top: Vec<u32> = search(m.matrix(), &q, 3, None)
            .iter()
            .map(|s| s.row)
            .collect();
        assert_eq!(top, vec![0, 5, 4]);
        let q = normalized(&[0., 1., 1.]).expect("q");
        let top: Vec<u32> = search(m.matrix(), &q, 2, None)
            .iter()
            .map(|s| s.row)
            .collect();
        assert_eq!(top, vec![2, 1], "bbb and ccc tie; bbb was indexed first");
    }

    #[test]
    fn candidates_restrict_the_scan() {
        let rows = vec![vec![1., 0.], vec![0.9, 0.1], vec![0., 1.]];
        let m = Owned::new(&rows);
        let q = normalized(&[1., 0.]).expect("q");
        let top = search(m.matrix(), &q, 5, Some(&[1, 2]));
        assert_eq!(top.iter().map(|s| s.row).collect::<Vec<_>>(), vec![1, 2]);
    }

    fn large_rows(n: usize, dims: usize) -> Vec<Vec<f32>> {
        (0..n)
            .map(|i| {
                (0..dims)
                    .map(|j| (((i * 31 + j * 17) % 97) as f32) - 40.0)
                    .collect()
            })
            .collect()
    }

    #[test]
    fn large_scans_are_shared_and_agree() {
        let dims = 64;
        let n = (PARALLEL_MIN_FLOATS / dims) * 2 + 7;
        let rows = large_rows(n, dims);
        let (m, source) = shared(&rows);
        let q: Vec<f32> = (0..dims).map(|j| (j % 5) as f32 - 2.0).collect();
        let qn = normalized(&q).expect("q");
        let want = naive(&rows, &q, 10);
        let alone = search(m.matrix(), &qn, 10, None);
        for _ in 0..50 {
            let got = search_shared(m.matrix(), &source, &qn, 10, None);
            assert_eq!(got, alone, "shared and single-threaded scans agree exactly");
        }
        for (g, w) in alone.iter().zip(&want) {
            assert!((f64::from(g.score) - w.1).abs() < 1e-4);
        }
        let locked: Arc<dyn Source> = Arc::new(Locked);
        assert_eq!(search_shared(m.matrix(), &locked, &qn, 10, None), alone);
        let many = search_many(m.matrix(), &source, &[qn.clone(), qn.clone()].concat(), 10);
        assert_eq!(many.len(), 2);
        assert_eq!(
            many[0].iter().map(|s| s.row).collect::<Vec<_>>(),
            alone.iter().map(|s| s.row).collect::<Vec<_>>()
        );
        assert_eq!(many[0], many[1]);
        let many_alone = search_many(m.matrix(), &locked, &qn, 10);
        assert_eq!(many_alone[0], many[0]);
    }

    #[test]
    fn shared_scans_over_candidates_see_only_the_candidates() {
        let dims = 32;
        let n = (PARALLEL_MIN_FLOATS / dims) * 3;
        let rows = large_rows(n, dims);
        let (m, source) = shared(&rows);
        let q = normalized(&vec![1.0; dims]).expect("q");
        let odd: Arc<[u32]> = (1..n as u32).step_by(2).collect::<Vec<_>>().into();
        let got = search_shared(m.matrix(), &source, &q, 25, Some(Arc::clone(&odd)));
        assert_eq!(got, search(m.matrix(), &q, 25, Some(&odd)));
        assert!(got.iter().all(|s| s.row % 2 == 1));
        assert_eq!(got.len(), 25);
    }

    proptest! {
        /// Small integer components make every dot product exact, so the row order (ties
        /// included, in indexing order) must equal the stable naive sort's.
        #[test]
        fn exact_top_k_agrees_with_a_naive_sort(
            dims in 1usize..20,
            raw in proptest::collection::vec(proptest::collection::vec(-3i8..4, 20), 1..60),
            q_raw in proptest::collection::vec(-3i8..4, 20),
            k in 0usize..70,
            nq in 1usize..7,
        ) {
            let rows: Vec<Vec<f32>> = raw
                .iter()
                .map(|r| r[..dims].iter().map(|&v| f32::from(v)).collect::<Vec<f32>>())
                .filter(|r: &Vec<f32>| r.iter().any(|&v| v != 0.0))
                .collect();
            let q: Vec<f32> = q_raw[..dims].iter().map(|&v| f32::from(v)).collect();
            prop_assume!(!rows.is_empty() && q.iter().any(|&v| v != 0.0));
            let m = Owned::new(&rows);
            let qn = normalized(&q).expect("q");
            let got = search(m.matrix(), &qn, k, None);
            let all = naive(&rows, &q, rows.len());
            let want = &all[..k.min(all.len())];
            prop_assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(want) {
                prop_assert!((f64::from(g.score) - w.1).abs() < 1e-5);
            }
            // Scores are compared with tolerance; rows must match wherever the naive scores
            // are not within rounding of another row's (ties of equal cosines included).
            for (i, (g, w)) in got.iter().zip(want).enumerate() {
                let neighbour_close = all.iter().enumerate().any(|(j, o)| j != i && (o.1 - w.1).abs() < 1e-6);
                if !neighbour_close {
                    prop_assert_eq!(g.row, w.0);
                }
            }
            // The batched path sums in another order: same scores within rounding.
            let batch: Vec<f32> = (0..nq).flat_map(|_| qn.iter().copied()).collect();
            let source: Arc<dyn Source> = Arc::new(Owned::new(&rows));
            for result in search_many(m.matrix(), &source, &batch, k) {
                prop_assert_eq!(result.len(), got.len());
                for (b, g) in result.iter().zip(&got) {
                    prop_assert!((b.score - g.score).abs() < 1e-5);
                }
            }
        }
    }
}
