//! The approximate index: an inverted file (IVF) over spherical k-means centroids.
//!
//! Rows are grouped by their nearest centroid; a query scores the centroids, then scores
//! exactly (full f32 cosines) only the rows of the closest lists. On embedding-like data
//! (a few dominant directions plus noise) the true neighbours sit in the closest lists, so
//! a few percent of the rows give recall@10 above 0.95 (tested). Kept in memory, built on
//! the first approximate search, extended as rows arrive, retrained when the index has
//! doubled since training.

use super::topk::{self, Matrix, Scored};

/// Below this many rows an approximate search is simply exact.
pub const MIN_ROWS: usize = 2048;
/// Training points per centroid (a sample keeps training time bounded).
const SAMPLE_PER_LIST: usize = 40;
const ITERATIONS: usize = 8;
/// Rows assigned per batched pass.
const ASSIGN_BATCH: usize = 4096;

pub struct Ivf {
    dims: usize,
    /// Unit-length centroids, back to back.
    centroids: Vec<f32>,
    ones: Vec<f32>,
    lists: Vec<Vec<u32>>,
    /// Rows `0..covered` are in the lists.
    covered: usize,
    trained_on: usize,
}

impl Ivf {
    pub fn build(m: Matrix<'_>) -> Ivf {
        let n = m.rows();
        let d = m.dims;
        let nlist = ((n as f64).sqrt().round() as usize).clamp(16, 4096).min(n);
        let sample_n = (nlist * SAMPLE_PER_LIST).min(n);
        let stride = n as f64 / sample_n as f64;
        let sample_rows: Vec<usize> = (0..sample_n)
            .map(|i| (i as f64 * stride) as usize)
            .collect();
        let sample = normalized_rows(m, sample_rows.iter().copied());
        // Seed with evenly spaced sample points.
        let seed_stride = sample_n as f64 / nlist as f64;
        let mut centroids: Vec<f32> = (0..nlist)
            .flat_map(|c| {
                let s = (c as f64 * seed_stride) as usize;
                sample[s * d..(s + 1) * d].iter().copied()
            })
            .collect();
        let ones = vec![1.0f32; nlist];
        for _ in 0..ITERATIONS {
            let assigned = nearest(&centroids, &ones, d, &sample);
            let mut sums = vec![0f64; nlist * d];
            let mut counts = vec![0usize; nlist];
            for (s, &c) in assigned.iter().enumerate() {
                counts[c] += 1;
                for (acc, &x) in sums[c * d..(c + 1) * d]
                    .iter_mut()
                    .zip(&sample[s * d..(s + 1) * d])
                {
                    *acc += f64::from(x);
                }
            }
            for c in 0..nlist {
                if counts[c] == 0 {
                    continue; // an empty list keeps its centroid
                }
                let sum = &sums[c * d..(c + 1) * d];
                let norm = sum.iter().map(|x| x * x).sum::<f64>().sqrt();
                if norm > 0.0 {
                    for (dst, &x) in centroids[c * d..(c + 1) * d].iter_mut().zip(sum) {
                        *dst = (x / norm) as f32;
                    }
                }
            }
        }
        let mut ivf = Ivf {
            dims: d,
            centroids,
            ones,
            lists: vec![Vec::new(); nlist],
            covered: 0,
            trained_on: n,
        };
        ivf.extend(m);
        ivf
    }

    /// Whether every stored row is in a list.
    pub fn is_current(&self, rows: usize) -> bool {
        self.covered == rows
    }

    /// Whether the centroids no longer describe the data well enough (the index doubled).
    pub fn needs_retraining(&self, rows: usize) -> bool {
        rows > 2 * self.trained_on
    }

    /// Adds rows stored since the last call to their nearest list.
    pub fn extend(&mut self, m: Matrix<'_>) {
        let n = m.rows();
        while self.covered < n {
            let end = (self.covered + ASSIGN_BATCH).min(n);
            let batch = normalized_rows(m, self.covered..end);
            for (offset, c) in nearest(&self.centroids, &self.ones, self.dims, &batch)
                .into_iter()
                .enumerate()
            {
                self.lists[c].push((self.covered + offset) as u32);
            }
            self.covered = end;
        }
    }

    /// Lists probed per query: about 1/5 of them (at least 8).
    fn probes(&self) -> usize {
        (self.lists.len() / 5).max(8).min(self.lists.len())
    }

    /// Approximate top-k of a normalised query; scores are exact cosines.
    pub fn search(&self, m: Matrix<'_>, query: &[f32], k: usize) -> Vec<Scored> {
        let centroids = Matrix {
            data: &self.centroids,
            inv_norms: &self.ones,
            dims: self.dims,
        };
        let mut candidates: Vec<u32> = topk::search(centroids, query, self.probes(), None)
            .iter()
            .flat_map(|s| self.lists[s.row as usize].iter().copied())
            .collect();
        // Ascending rows: ties keep indexing order, and memory is read forwards.
        candidates.sort_unstable();
        topk::search(m, query, k, Some(&candidates))
    }
}

/// Unit-length copies of the given rows, back to back.
fn normalized_rows(m: Matrix<'_>, rows: impl Iterator<Item = usize>) -> Vec<f32> {
    let d = m.dims;
    let mut out = Vec::new();
    for r in rows {
        let inv = m.inv_norms[r];
        out.extend(m.data[r * d..(r + 1) * d].iter().map(|x| x * inv));
    }
    out
}

/// The nearest centroid of each point (points unit length, back to back).
fn nearest(centroids: &[f32], ones: &[f32], dims: usize, points: &[f32]) -> Vec<usize> {
    let matrix = Matrix {
        data: centroids,
        inv_norms: ones,
        dims,
    };
    topk::search_many(matrix, points, 1)
        .into_iter()
        .map(|best| best.first().map_or(0, |s| s.row as usize))
        .collect()
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
                out.push(signal + 0.05 * next());
            }
        }
        out
    }

    #[test]
    fn recall_at_10_on_low_rank_data() {
        let (n, dims) = (20_000, 64);
        // The queries come from the same distribution (the last 50 rows generated).
        let all = embedding_like(n + 50, dims, 16, 7);
        let (data, queries) = all.split_at(n * dims);
        let inv: Vec<f32> = data
            .chunks_exact(dims)
            .map(|r| topk::inverse_norm(r).expect("nonzero"))
            .collect();
        let m = Matrix {
            data,
            inv_norms: &inv,
            dims,
        };
        let ivf = Ivf::build(m);
        assert!(ivf.is_current(n));
        let mut found = 0;
        for q in queries.chunks_exact(dims) {
            let q = topk::normalized(q).expect("q");
            let exact: Vec<u32> = topk::search(m, &q, 10, None)
                .iter()
                .map(|s| s.row)
                .collect();
            let approx: Vec<u32> = ivf.search(m, &q, 10).iter().map(|s| s.row).collect();
            found += approx.iter().filter(|r| exact.contains(r)).count();
        }
        let recall = found as f64 / 500.0;
        assert!(recall >= 0.95, "recall {recall}");
    }
}
