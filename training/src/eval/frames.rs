//! What the evaluation keeps of each clip (the latents of its kept frames, with their labels),
//! and the k-NN scores over them.

use super::*;

/// Labels of a stored frame (or clip).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Labels {
    /// Position of the clip in the evaluated list.
    pub(super) clip: u32,
    /// Frame index inside the clip (0 for clip-level entries).
    pub(super) frame: u32,
    /// GM program.
    pub(super) instrument: u32,
    /// Whether the clip has a copy in train (test clips, with a copy split only).
    pub(super) copy: bool,
    /// MIDI note (clip-level: the clip's note, `u32::MAX` when none).
    pub(super) pitch: u32,
}

/// Everything one clip contributes.
pub(super) struct ClipResult {
    pub(super) index: usize,
    pub(super) split: Split,
    pub(super) program: u32,
    pub(super) note: Option<u32>,
    /// Active frames and their notes.
    pub(super) frames: Vec<(u32, u32)>,
    /// Per model.
    pub(super) latents: Vec<ClipLatents>,
}

/// A growing matrix of latents, one per (model, latent kind).
pub(super) struct Column {
    pub(super) dim: Option<usize>,
    pub(super) data: Vec<f32>,
}

/// Frame store of one split: keeps at most `cap` frames, the ones with the smallest random
/// keys (so the kept set does not depend on arrival order), for every latent column.
pub(super) struct FrameStore {
    pub(super) cap: usize,
    pub(super) seed: u64,
    pub(super) seen: usize,
    pub(super) labels: Vec<Labels>,
    /// Kept frames by key, largest on top: `(key, clip, frame, slot)`.
    pub(super) heap: BinaryHeap<(u64, u32, u32, usize)>,
    pub(super) columns: Vec<Column>,
    /// Label counts of every frame seen (before subsampling): instrument, pitch.
    pub(super) instrument_counts: BTreeMap<u32, usize>,
    pub(super) pitch_counts: BTreeMap<u32, usize>,
    /// Joint counts of every frame seen: (pitch, instrument).
    pub(super) joint_counts: BTreeMap<(u32, u32), usize>,
}

impl FrameStore {
    pub(super) fn new(cap: usize, seed: u64, dims: &[Option<usize>]) -> Self {
        Self {
            cap,
            seed,
            seen: 0,
            labels: Vec::new(),
            heap: BinaryHeap::new(),
            columns: dims
                .iter()
                .map(|d| Column {
                    dim: *d,
                    data: Vec::new(),
                })
                .collect(),
            instrument_counts: BTreeMap::new(),
            pitch_counts: BTreeMap::new(),
            joint_counts: BTreeMap::new(),
        }
    }

    /// Offers frame `row` of every column (`rows[c]` is column `c`'s matrix of the clip).
    pub(super) fn offer(&mut self, labels: Labels, row: usize, rows: &[Option<&[f32]>]) {
        self.seen += 1;
        *self.instrument_counts.entry(labels.instrument).or_default() += 1;
        *self.pitch_counts.entry(labels.pitch).or_default() += 1;
        *self
            .joint_counts
            .entry((labels.pitch, labels.instrument))
            .or_default() += 1;
        if self.cap == 0 {
            return;
        }
        let key = mix64(self.seed ^ mix64(((labels.clip as u64) << 32) | labels.frame as u64));
        let entry = (key, labels.clip, labels.frame);
        let slot = if self.labels.len() < self.cap {
            self.labels.push(labels);
            for (col, r) in self.columns.iter_mut().zip(rows) {
                if let (Some(dim), Some(r)) = (col.dim, r) {
                    col.data.extend_from_slice(&r[row * dim..(row + 1) * dim]);
                }
            }
            self.labels.len() - 1
        } else {
            match self.heap.peek() {
                Some(&(k, c, f, slot)) if entry < (k, c, f) => {
                    self.heap.pop();
                    self.labels[slot] = labels;
                    for (col, r) in self.columns.iter_mut().zip(rows) {
                        if let (Some(dim), Some(r)) = (col.dim, r) {
                            col.data[slot * dim..(slot + 1) * dim]
                                .copy_from_slice(&r[row * dim..(row + 1) * dim]);
                        }
                    }
                    slot
                }
                _ => return,
            }
        };
        self.heap.push((entry.0, entry.1, entry.2, slot));
    }

    /// Puts the kept frames in (clip, frame) order, so results do not depend on thread timing.
    pub(super) fn finish(&mut self) {
        self.heap.clear();
        let mut order: Vec<usize> = (0..self.labels.len()).collect();
        order.sort_by_key(|&s| (self.labels[s].clip, self.labels[s].frame));
        self.labels = order.iter().map(|&s| self.labels[s]).collect();
        for col in &mut self.columns {
            if let Some(dim) = col.dim {
                let mut sorted = Vec::with_capacity(col.data.len());
                for &s in &order {
                    sorted.extend_from_slice(&col.data[s * dim..(s + 1) * dim]);
                }
                col.data = sorted;
            }
        }
    }
}

/// Clip-level store of one split.
pub(super) struct ClipStore {
    pub(super) labels: Vec<Labels>,
    /// Per model: `z_t` rows, in `labels` order.
    pub(super) z_t: Vec<Vec<f32>>,
}

impl ClipStore {
    pub(super) fn finish(&mut self, dims: &[Option<usize>]) {
        let mut order: Vec<usize> = (0..self.labels.len()).collect();
        order.sort_by_key(|&i| self.labels[i].clip);
        self.labels = order.iter().map(|&i| self.labels[i]).collect();
        for (z, dim) in self.z_t.iter_mut().zip(dims) {
            if let Some(dim) = *dim {
                let mut sorted = Vec::with_capacity(z.len());
                for &i in &order {
                    sorted.extend_from_slice(&z[i * dim..(i + 1) * dim]);
                }
                *z = sorted;
            }
        }
    }
}

/// Reads a mono 16-bit WAV into `-1..1` samples and checks it against its record.
pub(super) fn read_clip(
    root: &Path,
    record: &ClipRecord,
    cfg: &StftConfig,
) -> Result<Vec<f32>, EvalError> {
    if record.hop != cfg.hop {
        return Err(EvalError::Hop {
            path: record.audio_path(root),
            found: record.hop,
            expected: cfg.hop,
        });
    }
    Ok(manifest::read_clip_audio(root, record, cfg.sample_rate)?)
}

/// Decodes, analyses and encodes one clip with every model. `None` for a clip without active
/// frames.
pub(super) fn process_clip(
    root: &Path,
    index: usize,
    record: &ClipRecord,
    cfg: &StftConfig,
    models: &[&dyn LatentModel],
    dims: &[LatentDims],
) -> Result<Option<ClipResult>, EvalError> {
    let samples = read_clip(root, record, cfg)?;
    let features = dsp_split::analyse_clip(&samples, cfg);
    if record.frame_notes.len() != features.frames {
        return Err(EvalError::FrameLabels {
            path: record.audio_path(root),
            labels: record.frame_notes.len(),
            frames: features.frames,
        });
    }
    let active = dsp_split::active_frames(&features, &record.frame_notes);
    if active.is_empty() {
        return Ok(None);
    }
    let input = ClipInput {
        record,
        samples: &samples,
        features: &features,
        active: &active,
        cfg,
    };
    let mut latents = Vec::with_capacity(models.len());
    for (model, dims) in models.iter().zip(dims) {
        let fail = |message: String| EvalError::Model {
            model: model.name(),
            message: format!("{}: {message}", record.path.display()),
        };
        let l = model.encode(&input).map_err(fail)?;
        let check =
            |name: &str, v: &Option<Vec<f32>>, dim: Option<usize>, rows: usize| match (v, dim) {
                (None, None) => Ok(()),
                (Some(v), Some(d)) if v.len() == rows * d => Ok(()),
                (Some(v), Some(d)) => Err(fail(format!(
                    "{name} has {} values, expected {rows} x {d}",
                    v.len()
                ))),
                (Some(_), None) => Err(fail(format!("{name} returned but not declared"))),
                (None, Some(_)) => Err(fail(format!("{name} declared but missing"))),
            };
        check("z_t", &l.z_t, dims.z_t, 1)?;
        check("z_v", &l.z_v, dims.z_v, active.len())?;
        check("z_p", &l.z_p, dims.z_p, active.len())?;
        for v in [&l.z_t, &l.z_v, &l.z_p].into_iter().flatten() {
            if v.iter().any(|x| !x.is_finite()) {
                return Err(fail("non-finite latent".to_string()));
            }
        }
        latents.push(l);
    }
    Ok(Some(ClipResult {
        index,
        split: record.split,
        program: record.program as u32,
        note: record.note.map(u32::from),
        frames: active
            .iter()
            .map(|&f| (f as u32, record.frame_notes[f] as u32))
            .collect(),
        latents,
    }))
}

/// `sum_c p_train(c) * p_test(c)`: the accuracy of guessing at random with the train label
/// frequencies. `None` when either side is empty.
pub(super) fn chance(train: &BTreeMap<u32, usize>, test: &BTreeMap<u32, usize>) -> Option<f64> {
    let nt: usize = train.values().sum();
    let ns: usize = test.values().sum();
    if nt == 0 || ns == 0 {
        return None;
    }
    Some(
        test.iter()
            .map(|(c, n)| {
                let p = train.get(c).copied().unwrap_or(0) as f64 / nt as f64;
                p * *n as f64 / ns as f64
            })
            .sum(),
    )
}

/// Instrument accuracy on test frames of the best guess from the frame's note alone: for each
/// note, the instrument most common among the train frames of that note (ties: the lower
/// program; a note never seen in training: the most common train instrument). This is what a
/// latent holding exactly the pitch and nothing else would score on "instrument on z_p" with an
/// ideal classifier: the floor of that column, set by how the instruments' ranges overlap.
pub(super) fn instrument_from_pitch(
    train: &BTreeMap<(u32, u32), usize>,
    test: &BTreeMap<(u32, u32), usize>,
) -> Option<f64> {
    let total: usize = test.values().sum();
    if total == 0 {
        return None;
    }
    let mut by_instrument: BTreeMap<u32, usize> = BTreeMap::new();
    let mut best: BTreeMap<u32, (usize, u32)> = BTreeMap::new();
    for (&(pitch, instrument), &n) in train {
        *by_instrument.entry(instrument).or_default() += n;
        let entry = best.entry(pitch).or_insert((0, instrument));
        if n > entry.0 {
            *entry = (n, instrument);
        }
    }
    let fallback = by_instrument
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
        .map(|(&i, _)| i)?;
    let correct: usize = test
        .iter()
        .filter(|((pitch, instrument), _)| {
            best.get(pitch).map_or(fallback, |&(_, i)| i) == *instrument
        })
        .map(|(_, &n)| n)
        .sum();
    Some(correct as f64 / total as f64)
}

pub(super) fn counts_of(values: impl Iterator<Item = u32>) -> BTreeMap<u32, usize> {
    let mut m = BTreeMap::new();
    for v in values {
        *m.entry(v).or_default() += 1;
    }
    m
}

/// Hits and items under the first labelling of [`knn_accuracies`], by breakdown key.
pub(super) type LabelHits = BTreeMap<u32, (usize, usize)>;

/// What [`knn_accuracies`] returns: per labelling the accuracy (`None` for an empty side) and
/// the votes (one per test row; empty for an empty side), and the first labelling's hits.
pub(super) type KnnScores = (Vec<Option<f64>>, Vec<Vec<u32>>, LabelHits);

/// Fits on `train` (row-major, `dim` per row; consumed to save a copy), scores `test`, and
/// returns the accuracy and the votes under each labelling `(train labels, test labels)`
/// (`None` and no votes for an empty side) and, for the first labelling, the hits and items of
/// the test rows of each breakdown key (`keys`, one per test row). `groups` (`(test groups,
/// train groups)`) keeps each test row from the train rows of its group.
pub(super) fn knn_accuracies(
    train: Vec<f32>,
    test: &[f32],
    dim: usize,
    labellings: &[(Vec<u32>, Vec<u32>)],
    groups: Option<&(Vec<u32>, Vec<u32>)>,
    keys: &[u32],
) -> Result<KnnScores, EvalError> {
    if labellings.is_empty() {
        return Ok((Vec::new(), Vec::new(), LabelHits::new()));
    }
    let (first_train, _) = &labellings[0];
    if first_train.is_empty() || test.is_empty() {
        let n = labellings.len();
        return Ok((vec![None; n], vec![Vec::new(); n], LabelHits::new()));
    }
    let index = KnnIndex::new(train, first_train.clone(), dim)?;
    let neighbours =
        index.nearest_excluding(test, groups.map(|(te, tr)| (te.as_slice(), tr.as_slice())));
    let mut hits = LabelHits::new();
    let votes: Vec<Vec<u32>> = labellings
        .iter()
        .map(|(tr, _)| neighbours.iter().map(|n| n.vote(tr)).collect())
        .collect();
    let (_, first_test) = &labellings[0];
    for ((p, t), key) in votes[0].iter().zip(first_test).zip(keys) {
        let entry = hits.entry(*key).or_default();
        entry.0 += usize::from(p == t);
        entry.1 += 1;
    }
    let accuracies = votes
        .iter()
        .zip(labellings)
        .map(|(pred, (_, te))| Some(knn::accuracy(pred, te)))
        .collect();
    Ok((accuracies, votes, hits))
}
