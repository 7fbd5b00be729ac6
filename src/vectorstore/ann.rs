//! The approximate index: a hierarchical navigable small-world graph (HNSW, Malkov and
//! Yashunin 2016) over unit-length copies of the rows.
//!
//! Each row is a node on layer 0 and, with geometrically falling probability, on higher
//! layers; a search descends greedily from the top layer and runs a best-first search of
//! width `ef` on layer 0. Neighbours are chosen with the paper's heuristic (a candidate is
//! kept only if it is closer to the new node than to any neighbour already kept), which
//! keeps the graph navigable on clustered and low-rank data. Kept in memory, built on the
//! first approximate search (neighbour searches in parallel batches) and extended as rows
//! arrive; the returned scores are the exact cosines of the returned rows, ranked as the
//! exact search ranks them.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::{Mutex, PoisonError};

use pulp::Arch;

use super::topk::{self, Matrix, Scored, TopK};

/// Below this many rows an approximate search is simply exact.
pub const MIN_ROWS: usize = 2048;
/// Links per node on the upper layers (layer 0 keeps twice as many).
const M: usize = 16;
const EF_CONSTRUCTION: usize = 100;
/// Search width; raised to `k` when more are asked for.
const EF_SEARCH: usize = 96;
/// Rows inserted one at a time before batches start (a small graph changes a lot per row).
const SEQUENTIAL_NODES: usize = 1024;
/// Rows whose neighbour searches run in parallel against the same graph.
const BATCH: usize = 64;

/// A node's planned neighbours: `(layer, neighbours)`, top layer first.
type Plan = Vec<(usize, Vec<u32>)>;

/// A similarity with a total order (higher is closer).
#[derive(Clone, Copy, PartialEq)]
struct Near(f32, u32);

impl Eq for Near {}
impl PartialOrd for Near {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Near {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0).then(other.1.cmp(&self.1))
    }
}

pub struct Hnsw {
    arch: Arch,
    dims: usize,
    /// Unit-length rows, back to back.
    unit: Vec<f32>,
    /// `links[node][layer]`: neighbour ids.
    links: Vec<Vec<Vec<u32>>>,
    entry: Option<u32>,
    top_layer: usize,
    /// Visit marks reused by searches (a busy one makes a search allocate its own).
    spare: Mutex<Visited>,
    rng: u64,
}

/// Visit marks: `marks[node] == epoch` means seen in the current search.
#[derive(Default)]
struct Visited {
    marks: Vec<u32>,
    epoch: u32,
}

impl Visited {
    /// Starts a search over `nodes` nodes: nothing seen.
    fn reset(&mut self, nodes: usize) {
        self.marks.resize(nodes, 0);
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.marks.iter_mut().for_each(|v| *v = 0);
            self.epoch = 1;
        }
    }

    /// Marks `node`; whether it was new.
    fn first_visit(&mut self, node: u32) -> bool {
        let mark = &mut self.marks[node as usize];
        let new = *mark != self.epoch;
        *mark = self.epoch;
        new
    }
}

impl Hnsw {
    pub fn build(m: Matrix<'_>) -> Hnsw {
        let mut graph = Hnsw {
            arch: Arch::new(),
            dims: m.dims,
            unit: Vec::with_capacity(m.data.len()),
            links: Vec::with_capacity(m.rows()),
            entry: None,
            top_layer: 0,
            spare: Mutex::new(Visited::default()),
            rng: 0x9E37_79B9_7F4A_7C15,
        };
        graph.extend(m);
        graph
    }

    /// Whether every stored row is in the graph.
    pub fn is_current(&self, rows: usize) -> bool {
        self.links.len() == rows
    }

    /// A graph grows by insertion; it never needs rebuilding.
    pub fn needs_retraining(&self, _rows: usize) -> bool {
        false
    }

    /// Inserts the rows stored since the last call.
    /// Inserts the rows stored since the last call. Past the first [`SEQUENTIAL_NODES`],
    /// rows go in batches: each batch's neighbour searches run in parallel on the graph as
    /// it was before the batch (read-only), then its links are applied in row order.
    pub fn extend(&mut self, m: Matrix<'_>) {
        let d = self.dims;
        let start = self.links.len();
        for row in start..m.rows() {
            let inv = m.inv_norms[row];
            self.unit
                .extend(m.data[row * d..(row + 1) * d].iter().map(|x| x * inv));
        }
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(16));
        let mut next = start;
        while next < m.rows() {
            let batch = if self.links.len() < SEQUENTIAL_NODES || threads == 1 {
                1
            } else {
                BATCH.min(m.rows() - next)
            };
            let levels: Vec<usize> = (0..batch).map(|_| self.random_level()).collect();
            let plans: Vec<Plan> = if batch == 1 {
                let mut visited =
                    std::mem::take(self.spare.get_mut().unwrap_or_else(PoisonError::into_inner));
                let plan = self.plan(&mut visited, next as u32, levels[0]);
                *self.spare.get_mut().unwrap_or_else(PoisonError::into_inner) = visited;
                vec![plan]
            } else {
                let graph = &*self;
                let per = batch.div_ceil(threads);
                std::thread::scope(|scope| {
                    let workers: Vec<_> = (0..batch)
                        .step_by(per)
                        .map(|from| {
                            let levels = &levels;
                            scope.spawn(move || {
                                let mut visited = Visited::default();
                                (from..(from + per).min(batch))
                                    .map(|i| graph.plan(&mut visited, (next + i) as u32, levels[i]))
                                    .collect::<Vec<Plan>>()
                            })
                        })
                        .collect();
                    workers
                        .into_iter()
                        .flat_map(|w| w.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                        .collect()
                })
            };
            for (i, plan) in plans.into_iter().enumerate() {
                self.apply((next + i) as u32, levels[i], plan);
            }
            next += batch;
        }
    }

    fn vector(&self, node: u32) -> &[f32] {
        let d = self.dims;
        &self.unit[node as usize * d..(node as usize + 1) * d]
    }

    fn sim(&self, q: &[f32], node: u32) -> f32 {
        topk::dot(self.arch, q, self.vector(node))
    }

    fn random_level(&mut self) -> usize {
        // xorshift64*: deterministic, so a build is reproducible.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let bits = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let uniform = ((bits >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        let level = (-uniform.ln() / (M as f64).ln()).floor();
        (level as usize).min(16)
    }

    /// Best-first search of width `ef` on `layer` from `entries`; the closest first.
    fn search_layer(
        &self,
        visited: &mut Visited,
        q: &[f32],
        entries: &[Near],
        ef: usize,
        layer: usize,
    ) -> Vec<Near> {
        visited.reset(self.links.len());
        let mut candidates: BinaryHeap<Near> = BinaryHeap::new();
        let mut found: BinaryHeap<Reverse<Near>> = BinaryHeap::new();
        for &e in entries {
            visited.first_visit(e.1);
            candidates.push(e);
            found.push(Reverse(e));
        }
        while found.len() > ef {
            found.pop();
        }
        while let Some(current) = candidates.pop() {
            let worst = found.peek().map_or(f32::NEG_INFINITY, |r| r.0.0);
            if current.0 < worst && found.len() >= ef {
                break;
            }
            let Some(neighbours) = self.links[current.1 as usize].get(layer) else {
                continue;
            };
            for &n in neighbours {
                if !visited.first_visit(n) {
                    continue;
                }
                let s = self.sim(q, n);
                let worst = found.peek().map_or(f32::NEG_INFINITY, |r| r.0.0);
                if found.len() < ef || s > worst {
                    candidates.push(Near(s, n));
                    found.push(Reverse(Near(s, n)));
                    if found.len() > ef {
                        found.pop();
                    }
                }
            }
        }
        let mut out: Vec<Near> = found.into_iter().map(|r| r.0).collect();
        out.sort_by(|a, b| b.cmp(a));
        out
    }

    /// The paper's neighbour heuristic over `candidates` (closest first).
    fn select(&self, candidates: &[Near], max: usize) -> Vec<u32> {
        let mut kept: Vec<u32> = Vec::with_capacity(max);
        for c in candidates {
            if kept.len() >= max {
                break;
            }
            let v = self.vector(c.1);
            if kept
                .iter()
                .all(|&k| topk::dot(self.arch, v, self.vector(k)) < c.0)
            {
                kept.push(c.1);
            }
        }
        // Fill up with the closest skipped ones: a node should not end up nearly isolated.
        for c in candidates {
            if kept.len() >= max {
                break;
            }
            if !kept.contains(&c.1) {
                kept.push(c.1);
            }
        }
        kept
    }

    /// The neighbours `node` gets on each of its layers (read-only on the graph).
    fn plan(&self, visited: &mut Visited, node: u32, level: usize) -> Plan {
        let Some(entry) = self.entry else {
            return Vec::new();
        };
        let q = self.vector(node);
        let mut nearest = vec![Near(self.sim(q, entry), entry)];
        for layer in (level + 1..=self.top_layer).rev() {
            nearest = self.search_layer(visited, q, &nearest, 1, layer);
        }
        let mut plan = Vec::new();
        for layer in (0..=level.min(self.top_layer)).rev() {
            let candidates = self.search_layer(visited, q, &nearest, EF_CONSTRUCTION, layer);
            plan.push((layer, self.select(&candidates, M)));
            nearest = candidates;
        }
        plan
    }

    /// Adds `node` (the next row) with its planned links, and links back to it.
    fn apply(&mut self, node: u32, level: usize, plan: Plan) {
        debug_assert_eq!(node as usize, self.links.len());
        self.links.push(vec![Vec::new(); level + 1]);
        if self.entry.is_none() {
            self.entry = Some(node);
            self.top_layer = level;
            return;
        }
        for (layer, chosen) in plan {
            let max = if layer == 0 { 2 * M } else { M };
            for &n in &chosen {
                self.link_back(n, node, layer, max);
            }
            self.links[node as usize][layer] = chosen;
        }
        if level > self.top_layer {
            self.top_layer = level;
            self.entry = Some(node);
        }
    }

    /// Adds `node` to `n`'s links on `layer`; past `max`, keeps the `max` closest (the
    /// heuristic here would cost ~max² dot products per insert and link, for little recall).
    fn link_back(&mut self, n: u32, node: u32, layer: usize, max: usize) {
        let links = &mut self.links[n as usize][layer];
        links.push(node);
        if links.len() <= max {
            return;
        }
        let own = self.vector(n).to_vec();
        let mut scored: Vec<Near> = self.links[n as usize][layer]
            .iter()
            .map(|&l| Near(topk::dot(self.arch, &own, self.vector(l)), l))
            .collect();
        scored.sort_by(|a, b| b.cmp(a));
        scored.truncate(max);
        self.links[n as usize][layer] = scored.into_iter().map(|s| s.1).collect();
    }

    /// Approximate top-k of a normalised query; scores are the exact search's cosines.
    pub fn search(&self, m: Matrix<'_>, query: &[f32], k: usize) -> Vec<Scored> {
        let Some(entry) = self.entry else {
            return Vec::new();
        };
        // Concurrent searches: one reuses the spare marks, the others allocate theirs.
        let mut guard = self.spare.try_lock().ok();
        let mut own = Visited::default();
        let visited = guard.as_deref_mut().unwrap_or(&mut own);
        let mut nearest = vec![Near(self.sim(query, entry), entry)];
        for layer in (1..=self.top_layer).rev() {
            nearest = self.search_layer(visited, query, &nearest, 1, layer);
        }
        let found = self.search_layer(visited, query, &nearest, EF_SEARCH.max(k), 0);
        // Re-score on the stored rows, so ranks and ties match the exact search.
        let mut top = TopK::new(k);
        let d = m.dims;
        for n in found {
            let r = n.1 as usize;
            top.push(
                n.1,
                topk::dot(self.arch, query, &m.data[r * d..(r + 1) * d]) * m.inv_norms[r],
            );
        }
        top.into_sorted()
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
                out.push(signal + 0.05 * next());
            }
        }
        out
    }

    #[test]
    fn recall_at_10_on_low_rank_data() {
        let (n, dims) = (4_000, 48);
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
        let graph = Hnsw::build(m);
        assert!(graph.is_current(n));
        let mut found = 0;
        for q in queries.chunks_exact(dims) {
            let q = topk::normalized(q).expect("q");
            let exact = topk::search(m, &q, 10, None);
            let approx = graph.search(m, &q, 10);
            found += approx.iter().filter(|r| exact.contains(r)).count();
        }
        let recall = found as f64 / 500.0;
        assert!(recall >= 0.95, "recall {recall}");
    }
}
