//! Brute-force k-nearest-neighbour classification (k = 5, squared Euclidean distance), the
//! classifier of the evaluation protocol.
//!
//! Distances are computed tile by tile as `|a|^2 + |b|^2 - 2 a.b`. Training rows are stored
//! in panels of eight rows, transposed (for every coordinate, the eight rows' values side by
//! side), so the kernel multiplies one coordinate of four test rows by eight training rows at
//! once into four eight-lane accumulators the compiler keeps in SIMD registers, with no
//! horizontal sums. Each test row keeps its `k` nearest training rows in a small sorted array;
//! blocks of test rows are spread over `std::thread::available_parallelism()` threads.
//!
//! Neighbours at equal distance are ranked by training-row index (earlier row first); the vote
//! is the majority label, ties broken by the smallest summed distance among the tied labels,
//! then by the smaller label.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::rng::SplitMix64;

/// Neighbours that vote.
pub const K: usize = 5;

/// Training rows per panel (the SIMD width of the kernel's accumulators).
const PANEL: usize = 8;
/// One coordinate of the eight rows of a panel.
type Lanes = [f32; PANEL];

/// Test rows handed to a thread at a time.
const TEST_BLOCK: usize = 64;
/// Test rows sharing every load of a panel in the kernel.
const TEST_GROUP: usize = 4;
/// Target size of one tile of training rows, in values (256 KiB of `f32`), so a tile stays in
/// the level-2 cache while every test row of a block streams over it.
const TRAIN_TILE_VALUES: usize = 65_536;

/// Why an index cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum KnnError {
    /// The dimension is zero.
    #[error("k-NN: the dimension must be at least 1")]
    ZeroDim,
    /// There is no training row.
    #[error("k-NN: no training rows")]
    Empty,
    /// The training matrix is not `labels.len() x dim`.
    #[error("k-NN: {values} training values are not {rows} rows of dimension {dim}")]
    Shape {
        /// Values in the training matrix.
        values: usize,
        /// Labels given (one per row).
        rows: usize,
        /// Dimension given.
        dim: usize,
    },
    /// More training rows than 32-bit row indices can address.
    #[error("k-NN: {0} training rows, at most 2^32 - 1 are supported")]
    TooMany(usize),
    /// A training value is NaN or infinite.
    #[error("k-NN: training row {row} has a non-finite value")]
    NonFinite {
        /// Index of the offending row.
        row: usize,
    },
}

/// The group of a row that [`KnnIndex::nearest_excluding`] excludes nothing for.
pub const NO_GROUP: u32 = u32::MAX;

/// Training rows and labels, ready for [`KnnIndex::classify`].
#[derive(Debug, Clone)]
pub struct KnnIndex {
    /// Training rows in transposed panels: coordinate `d` of row `8 p + l` is
    /// `panels[p * dim + d][l]`; the last panel is padded with zero rows.
    panels: Vec<Lanes>,
    /// Squared Euclidean norm of every training row (per panel; infinite for padding rows,
    /// so they are never anyone's neighbour).
    norms: Vec<Lanes>,
    /// Label of every training row.
    labels: Vec<u32>,
    /// Dimension of the rows.
    dim: usize,
}

/// Dot products of coordinate-aligned test rows `a` with the eight rows of `panel` (`dim`
/// entries): `out[r][l] = a[r] . row l`. Every lane is an independent accumulator, so the
/// loop vectorises without reassociation.
#[inline(always)]
fn panel_dots(a: [&[f32]; TEST_GROUP], panel: &[Lanes]) -> [Lanes; TEST_GROUP] {
    let mut acc = [[0.0f32; PANEL]; TEST_GROUP];
    let coords = panel.iter().zip(a[0]).zip(a[1]).zip(a[2]).zip(a[3]);
    for ((((p, &x0), &x1), &x2), &x3) in coords {
        for l in 0..PANEL {
            acc[0][l] += x0 * p[l];
            acc[1][l] += x1 * p[l];
            acc[2][l] += x2 * p[l];
            acc[3][l] += x3 * p[l];
        }
    }
    acc
}

/// Squared norm of a row.
fn sq_norm(row: &[f32]) -> f32 {
    row.iter().map(|v| v * v).sum()
}

/// The (at most) [`K`] nearest training rows of one test row, nearest first, ranked by
/// `(squared distance, training index)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Neighbours {
    dist: [f32; K],
    index: [u32; K],
    len: usize,
    /// Neighbours to keep, `min(K, training rows)`.
    cap: usize,
}

impl Neighbours {
    fn new(cap: usize) -> Self {
        Self {
            dist: [f32::INFINITY; K],
            index: [u32::MAX; K],
            len: 0,
            cap,
        }
    }

    /// Distances at or above this cannot enter when offered in ascending index order:
    /// infinity until full, then the current `k`-th distance (minus infinity when nothing is
    /// to be kept).
    #[inline(always)]
    fn bound(&self) -> f32 {
        if self.cap == 0 {
            f32::NEG_INFINITY
        } else if self.len < self.cap {
            f32::INFINITY
        } else {
            self.dist[self.cap - 1]
        }
    }

    /// Offers training row `index` at squared distance `dist`.
    #[inline(always)]
    fn offer(&mut self, dist: f32, index: u32) {
        if self.len == self.cap {
            let worst = self.cap - 1;
            // Fast rejection; the index comparison only matters for exact ties.
            if dist > self.dist[worst] || (dist == self.dist[worst] && index > self.index[worst]) {
                return;
            }
        } else {
            self.len += 1;
        }
        // Insertion into the sorted prefix, dropping the last entry when full.
        let mut pos = self.len - 1;
        while pos > 0
            && (dist < self.dist[pos - 1]
                || (dist == self.dist[pos - 1] && index < self.index[pos - 1]))
        {
            self.dist[pos] = self.dist[pos - 1];
            self.index[pos] = self.index[pos - 1];
            pos -= 1;
        }
        self.dist[pos] = dist;
        self.index[pos] = index;
    }

    /// Number of neighbours, `min(K, training rows)`.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there is no neighbour (only for an index without rows, which cannot be built).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The `i`-th nearest neighbour: its squared Euclidean distance (as computed, may be
    /// slightly negative through rounding) and its training-row index.
    ///
    /// # Panics
    ///
    /// If `i >= self.len()`.
    pub fn get(&self, i: usize) -> (f32, usize) {
        assert!(i < self.len, "neighbour {i} of {}", self.len);
        (self.dist[i], self.index[i] as usize)
    }

    /// Majority label of the neighbours under `labels` (one label per training row, e.g. the
    /// index's own or another labelling of the same rows); ties go to the smallest summed
    /// distance, then to the smaller label.
    ///
    /// # Panics
    ///
    /// If `labels` is shorter than the training set.
    pub fn vote(&self, labels: &[u32]) -> u32 {
        let mut best: Option<(usize, f64, u32)> = None;
        for i in 0..self.len {
            let label = labels[self.index[i] as usize];
            let mut count = 0usize;
            let mut sum = 0.0f64;
            for j in 0..self.len {
                if labels[self.index[j] as usize] == label {
                    count += 1;
                    sum += self.dist[j].max(0.0) as f64;
                }
            }
            let better = match best {
                None => true,
                Some((c, s, l)) => {
                    count > c || (count == c && (sum < s || (sum == s && label < l)))
                }
            };
            if better {
                best = Some((count, sum, label));
            }
        }
        best.map_or(0, |(_, _, label)| label)
    }
}

impl KnnIndex {
    /// Builds an index from `train` (row-major, `labels.len()` rows of `dim` values) and one
    /// label per row.
    pub fn new(train: Vec<f32>, labels: Vec<u32>, dim: usize) -> Result<Self, KnnError> {
        if dim == 0 {
            return Err(KnnError::ZeroDim);
        }
        if labels.is_empty() {
            return Err(KnnError::Empty);
        }
        if labels.len() > u32::MAX as usize {
            return Err(KnnError::TooMany(labels.len()));
        }
        if train.len() != labels.len() * dim {
            return Err(KnnError::Shape {
                values: train.len(),
                rows: labels.len(),
                dim,
            });
        }
        if let Some(pos) = train.iter().position(|v| !v.is_finite()) {
            return Err(KnnError::NonFinite { row: pos / dim });
        }
        let n = labels.len();
        let n_panels = n.div_ceil(PANEL);
        let mut panels = vec![[0.0f32; PANEL]; n_panels * dim];
        let mut norms = vec![[f32::INFINITY; PANEL]; n_panels];
        for (i, row) in train.chunks_exact(dim).enumerate() {
            let (p, l) = (i / PANEL, i % PANEL);
            for (d, v) in row.iter().enumerate() {
                panels[p * dim + d][l] = *v;
            }
            norms[p][l] = sq_norm(row);
        }
        Ok(Self {
            panels,
            norms,
            labels,
            dim,
        })
    }

    /// Number of training rows.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the index has no training row (never true for a built index).
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Dimension of the rows.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Predicted label of every row of `test` (row-major, `m x dim`): the majority label of
    /// its `K` nearest training rows (all of them when there are fewer).
    ///
    /// Non-finite test values give unspecified (but valid) labels.
    ///
    /// # Panics
    ///
    /// If `test.len()` is not a multiple of the index's dimension.
    pub fn classify(&self, test: &[f32]) -> Vec<u32> {
        self.nearest(test)
            .iter()
            .map(|n| n.vote(&self.labels))
            .collect()
    }

    /// The nearest training rows of every row of `test` (row-major, `m x dim`), for voting
    /// with several labellings of the training rows after one distance pass.
    ///
    /// # Panics
    ///
    /// If `test.len()` is not a multiple of the index's dimension.
    pub fn nearest(&self, test: &[f32]) -> Vec<Neighbours> {
        self.nearest_excluding(test, None)
    }

    /// [`KnnIndex::nearest`], where `groups = Some((test_groups, train_groups))` (one group per
    /// test row, one per training row) keeps every test row from the training rows of its own
    /// group; [`NO_GROUP`] excludes nothing. Lets a diagnostic ask what a latent finds
    /// when, say, the other recordings of the same note are out of reach.
    ///
    /// # Panics
    ///
    /// If `test.len()` is not a multiple of the index's dimension, or a group list has the
    /// wrong length.
    pub fn nearest_excluding(
        &self,
        test: &[f32],
        groups: Option<(&[u32], &[u32])>,
    ) -> Vec<Neighbours> {
        if let Some((te, tr)) = groups {
            assert_eq!(
                te.len() * self.dim,
                test.len(),
                "k-NN: one group per test row"
            );
            assert_eq!(tr.len(), self.len(), "k-NN: one group per training row");
        }
        assert!(
            test.len().is_multiple_of(self.dim),
            "k-NN: {} test values are not rows of dimension {}",
            test.len(),
            self.dim
        );
        let m = test.len() / self.dim;
        let mut out = vec![Neighbours::new(K.min(self.len())); m];
        let blocks = m.div_ceil(TEST_BLOCK);
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(blocks);
        let rows = |b: usize, len: usize| {
            let start = b * TEST_BLOCK * self.dim;
            &test[start..start + len * self.dim]
        };
        let block_groups = |b: usize, len: usize| {
            groups.map(|(te, tr)| (&te[b * TEST_BLOCK..b * TEST_BLOCK + len], tr))
        };
        if threads <= 1 {
            for (b, block_out) in out.chunks_mut(TEST_BLOCK).enumerate() {
                let len = block_out.len();
                self.nearest_block(rows(b, len), block_groups(b, len), block_out);
            }
            return out;
        }
        // Threads take the next block of test rows from a shared queue, so uneven blocks
        // (the last one) cannot leave a thread idle while another has several left.
        let queue = Mutex::new(out.chunks_mut(TEST_BLOCK).enumerate());
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| loop {
                    let next = queue.lock().unwrap_or_else(|e| e.into_inner()).next();
                    let Some((b, block_out)) = next else { break };
                    let len = block_out.len();
                    self.nearest_block(rows(b, len), block_groups(b, len), block_out);
                });
            }
        });
        out
    }

    /// Finds the neighbours of up to [`TEST_BLOCK`] test rows (row-major, unpadded), written
    /// into `out` (one fresh [`Neighbours`] per row), leaving out the training rows of each
    /// test row's group when `groups` (this block's test groups, all training groups) is given.
    fn nearest_block(
        &self,
        test: &[f32],
        groups: Option<(&[u32], &[u32])>,
        out: &mut [Neighbours],
    ) {
        let dim = self.dim;
        let rows = out.len();
        let zeros = vec![0.0f32; dim];
        let test_norms: Vec<f32> = test.chunks_exact(dim).map(sq_norm).collect();
        let panels_per_tile = (TRAIN_TILE_VALUES / (PANEL * dim)).max(2);
        let n_panels = self.norms.len();
        let mut tile_start = 0;
        while tile_start < n_panels {
            let tile_end = (tile_start + panels_per_tile).min(n_panels);
            for base in (0..rows).step_by(TEST_GROUP) {
                // The padding rows of the last group are zeros with a bound no distance
                // passes, and are not written back.
                let real = &mut out[base..(base + TEST_GROUP).min(rows)];
                let mut a = [zeros.as_slice(); TEST_GROUP];
                let mut na = [0.0f32; TEST_GROUP];
                let mut local = [Neighbours::new(0); TEST_GROUP];
                let mut bound = [f32::NEG_INFINITY; TEST_GROUP];
                for (r, n) in real.iter().enumerate() {
                    let row = base + r;
                    a[r] = &test[row * dim..(row + 1) * dim];
                    na[r] = test_norms[row];
                    local[r] = *n;
                    bound[r] = n.bound();
                }
                for p in tile_start..tile_end {
                    let dots = panel_dots(a, &self.panels[p * dim..(p + 1) * dim]);
                    let nb = &self.norms[p];
                    for r in 0..TEST_GROUP {
                        let mut d = [0.0f32; PANEL];
                        let mut any = false;
                        for l in 0..PANEL {
                            d[l] = na[r] + nb[l] - 2.0 * dots[r][l];
                            any |= d[l] < bound[r];
                        }
                        if !any {
                            continue;
                        }
                        // Rows come in ascending index order, so an equal distance loses.
                        for (l, &dl) in d.iter().enumerate() {
                            if dl < bound[r] {
                                let index = p * PANEL + l;
                                if let Some((te, tr)) = groups {
                                    // Padding rows (past the end) never get here: their
                                    // distance is infinite.
                                    let g = te.get(base + r).copied().unwrap_or(NO_GROUP);
                                    if g != NO_GROUP && tr.get(index) == Some(&g) {
                                        continue;
                                    }
                                }
                                local[r].offer(dl, index as u32);
                                bound[r] = local[r].bound();
                            }
                        }
                    }
                }
                for (n, l) in real.iter_mut().zip(&local) {
                    *n = *l;
                }
            }
            tile_start = tile_end;
        }
    }
}

/// Share of positions where `pred` equals `truth`, in 0..=1; NaN for empty inputs.
///
/// # Panics
///
/// If the slices differ in length.
pub fn accuracy(pred: &[u32], truth: &[u32]) -> f64 {
    assert_eq!(
        pred.len(),
        truth.len(),
        "accuracy: predictions and labels differ in length"
    );
    if pred.is_empty() {
        return f64::NAN;
    }
    let hits = pred.iter().zip(truth).filter(|(p, t)| p == t).count();
    hits as f64 / pred.len() as f64
}

/// Builds `n_train` and `n_test` random rows of `dim` values (uniform in `[0, 1)`, 16 random
/// labels) and returns the wall-clock time of [`KnnIndex::classify`] over the test rows
/// (index construction excluded). Returns zero when there is nothing to time (`n_train`, or
/// `dim` zero).
pub fn benchmark(n_train: usize, n_test: usize, dim: usize) -> Duration {
    let mut rng = SplitMix64::new(0x5eed);
    let train: Vec<f32> = (0..n_train * dim).map(|_| rng.next_f32()).collect();
    let labels: Vec<u32> = (0..n_train).map(|_| rng.below(16) as u32).collect();
    let test: Vec<f32> = (0..n_test * dim).map(|_| rng.next_f32()).collect();
    let Ok(index) = KnnIndex::new(train, labels, dim) else {
        return Duration::ZERO;
    };
    let start = Instant::now();
    let pred = index.classify(&test);
    let elapsed = start.elapsed();
    std::hint::black_box(pred);
    elapsed
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain definition: exact distances in f64, neighbours ranked by (distance, index),
    /// majority vote, ties by summed distance then label.
    fn reference(train: &[f32], labels: &[u32], dim: usize, test: &[f32]) -> Vec<u32> {
        test.chunks(dim)
            .map(|q| {
                let mut d: Vec<(f64, usize)> = train
                    .chunks(dim)
                    .enumerate()
                    .map(|(i, t)| {
                        let s: f64 = q
                            .iter()
                            .zip(t)
                            .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
                            .sum();
                        (s, i)
                    })
                    .collect();
                d.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                d.truncate(K);
                let mut candidates: Vec<(usize, f64, u32)> = Vec::new();
                for &(_, i) in &d {
                    let l = labels[i];
                    let count = d.iter().filter(|(_, j)| labels[*j] == l).count();
                    let sum: f64 = d
                        .iter()
                        .filter(|(_, j)| labels[*j] == l)
                        .map(|(s, _)| *s)
                        .sum();
                    candidates.push((count, sum, l));
                }
                candidates
                    .sort_by(|a, b| b.0.cmp(&a.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(&b.2)));
                candidates[0].2
            })
            .collect()
    }

    /// Random rows: small integers (every distance exact in f32, so many exact ties) or
    /// uniform floats; every fifth training row duplicates an earlier one.
    fn data(
        rng: &mut SplitMix64,
        n: usize,
        m: usize,
        dim: usize,
        integer: bool,
        classes: u64,
    ) -> (Vec<f32>, Vec<u32>, Vec<f32>) {
        let value = |rng: &mut SplitMix64| {
            if integer {
                rng.below(7) as f32 - 3.0
            } else {
                rng.next_f32() * 2.0 - 1.0
            }
        };
        let mut train = Vec::with_capacity(n * dim);
        let mut labels = Vec::with_capacity(n);
        for i in 0..n {
            if i >= 5 && i % 5 == 0 {
                let src = rng.below(i as u64) as usize;
                train.extend_from_within(src * dim..(src + 1) * dim);
            } else {
                for _ in 0..dim {
                    train.push(value(rng));
                }
            }
            labels.push(rng.below(classes) as u32);
        }
        let mut test = Vec::with_capacity(m * dim);
        for i in 0..m {
            if i % 7 == 3 {
                // A test row equal to a training row.
                let src = rng.below(n as u64) as usize;
                test.extend_from_slice(&train[src * dim..(src + 1) * dim]);
            } else {
                for _ in 0..dim {
                    test.push(value(rng));
                }
            }
        }
        (train, labels, test)
    }

    #[test]
    fn matches_reference_on_random_data() {
        let mut rng = SplitMix64::new(42);
        for &dim in &[1usize, 3, 7, 8, 9, 64, 257] {
            for &integer in &[true, false] {
                // More training rows than one tile at the large dimensions, and test rows
                // beyond one block of 64 (with a ragged last group of four).
                let n = if dim >= 64 { 700 } else { 300 };
                let m = 150;
                let (train, labels, test) = data(&mut rng, n, m, dim, integer, 4);
                let index = KnnIndex::new(train.clone(), labels.clone(), dim).unwrap();
                let got = index.classify(&test);
                let want = reference(&train, &labels, dim, &test);
                assert_eq!(got, want, "dim {dim}, integer {integer}");
            }
        }
    }

    /// Excluding a group equals the plain search over the training rows outside that group.
    #[test]
    fn excluding_a_group_matches_the_search_without_its_rows() {
        let mut rng = SplitMix64::new(11);
        for &dim in &[3usize, 9, 64] {
            let (train, labels, test) = data(&mut rng, 400, 90, dim, false, 4);
            let train_groups: Vec<u32> = (0..400).map(|_| rng.below(6) as u32).collect();
            let test_groups: Vec<u32> = (0..90)
                .map(|i| {
                    if i % 10 == 0 {
                        NO_GROUP
                    } else {
                        rng.below(6) as u32
                    }
                })
                .collect();
            let index = KnnIndex::new(train.clone(), labels.clone(), dim).unwrap();
            let got: Vec<u32> = index
                .nearest_excluding(&test, Some((&test_groups, &train_groups)))
                .iter()
                .map(|n| n.vote(&labels))
                .collect();
            for (q, (&g, &pred)) in test.chunks(dim).zip(test_groups.iter().zip(&got)) {
                let keep: Vec<usize> = (0..400).filter(|&i| train_groups[i] != g).collect();
                let sub: Vec<f32> = keep
                    .iter()
                    .flat_map(|&i| train[i * dim..(i + 1) * dim].iter().copied())
                    .collect();
                let sub_labels: Vec<u32> = keep.iter().map(|&i| labels[i]).collect();
                assert_eq!(pred, reference(&sub, &sub_labels, dim, q)[0], "dim {dim}");
            }
        }
    }

    #[test]
    fn fewer_training_rows_than_k_uses_all() {
        let mut rng = SplitMix64::new(7);
        for n in 1..=K {
            let (train, labels, test) = data(&mut rng, n, 20, 5, true, 3);
            let index = KnnIndex::new(train.clone(), labels.clone(), 5).unwrap();
            assert_eq!(
                index.classify(&test),
                reference(&train, &labels, 5, &test),
                "n {n}"
            );
        }
    }

    #[test]
    fn vote_ties_go_to_smaller_summed_distance_then_smaller_label() {
        // One-dimensional: query at 0. Labels 1 at distances 1 and 4 (sum 5), label 2 at
        // distances 1 and 1 (sum 2), label 3 once: 2 wins by distance.
        let train = vec![1.0, -2.0, -1.0, 1.0, 3.0];
        let labels = vec![1, 1, 2, 2, 3];
        let index = KnnIndex::new(train, labels, 1).unwrap();
        assert_eq!(index.classify(&[0.0]), vec![2]);
        // Full tie (same count and summed distance): the smaller label.
        let index = KnnIndex::new(vec![1.0, -1.0], vec![9, 4], 1).unwrap();
        assert_eq!(index.classify(&[0.0]), vec![4]);
    }

    #[test]
    fn separable_toy_problem_is_perfect() {
        let mut rng = SplitMix64::new(3);
        let dim = 16;
        let centre = |c: u32, d: usize| if d % 4 == c as usize { 10.0 } else { 0.0 };
        let mut make = |rows: usize| {
            let mut x = Vec::new();
            let mut y = Vec::new();
            for i in 0..rows {
                let c = (i % 4) as u32;
                for d in 0..dim {
                    x.push(centre(c, d) + rng.next_f32() - 0.5);
                }
                y.push(c);
            }
            (x, y)
        };
        let (train, labels) = make(400);
        let (test, truth) = make(300);
        let index = KnnIndex::new(train, labels, dim).unwrap();
        assert_eq!(accuracy(&index.classify(&test), &truth), 1.0);
    }

    #[test]
    fn bad_shapes_are_refused() {
        assert!(matches!(
            KnnIndex::new(vec![0.0; 5], vec![0, 1], 2),
            Err(KnnError::Shape { .. })
        ));
        assert!(matches!(
            KnnIndex::new(vec![], vec![], 2),
            Err(KnnError::Empty)
        ));
        assert!(matches!(
            KnnIndex::new(vec![0.0, f32::NAN], vec![0, 1], 1),
            Err(KnnError::NonFinite { row: 1 })
        ));
        let index = KnnIndex::new(vec![0.0; 4], vec![0, 1], 2).unwrap();
        assert!(index.classify(&[]).is_empty());
    }

    #[test]
    fn accuracy_counts_hits() {
        assert_eq!(accuracy(&[1, 2, 3, 4], &[1, 2, 0, 4]), 0.75);
        assert!(accuracy(&[], &[]).is_nan());
    }

    #[test]
    fn benchmark_runs() {
        let t = benchmark(300, 70, 64);
        assert!(t > Duration::ZERO);
        assert_eq!(benchmark(0, 10, 4), Duration::ZERO);
    }
}
