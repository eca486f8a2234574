//! Which sources and references a transfer evaluation plays: the test-split phrases, each
//! with one note of another instrument as its reference (or, [`phrase_references`], one
//! phrase of it; or, [`same_instrument_references`], a note of the source's own instrument).

use super::*;

/// Note ranges of the instruments, from the manifest's note clips (all splits): the
/// instrument list the dataset was rendered with, as the phrase generator needs it.
pub fn instruments_from_manifest(records: &[ClipRecord]) -> BTreeMap<u8, Instrument> {
    let mut out: BTreeMap<u8, Instrument> = BTreeMap::new();
    for r in records.iter().filter(|r| r.set == Set::Notes) {
        let Some(note) = r.note else { continue };
        let inst = out.entry(r.program).or_insert_with(|| Instrument {
            program: r.program,
            name: r.instrument.clone(),
            family: r.family.clone(),
            low: note,
            high: note,
        });
        inst.low = inst.low.min(note);
        inst.high = inst.high.max(note);
    }
    out
}

/// Sources (test-split phrases) and their references, as indices into `records`: at most
/// `max_sources` sources, taken round-robin over the instruments in a seeded order; for each,
/// B drawn with the seed among the other instruments with test-split notes, and B's
/// test-split note clip at velocity 80 (any velocity when there is none) nearest the middle of
/// B's range. Sorted by (program, phrase).
pub fn plan_pairs(
    records: &[ClipRecord],
    max_sources: Option<usize>,
    seed: u64,
) -> Result<Vec<(usize, usize)>, TransferError> {
    plan_pairs_of(records, max_sources, seed, |_| true)
}

/// [`plan_pairs`] over the test-split phrases that `accept` takes.
pub fn plan_pairs_of(
    records: &[ClipRecord],
    max_sources: Option<usize>,
    seed: u64,
    accept: impl Fn(&ClipRecord) -> bool,
) -> Result<Vec<(usize, usize)>, TransferError> {
    let mut by_program: BTreeMap<u8, Vec<usize>> = BTreeMap::new();
    for (i, r) in records.iter().enumerate() {
        if r.set == Set::Phrases && r.split == Split::Test && accept(r) {
            by_program.entry(r.program).or_default().push(i);
        }
    }
    let key = |i: usize| phrase_hash(&records[i]);
    let total: usize = by_program.values().map(Vec::len).sum();
    let cap = max_sources.unwrap_or(total).min(total);
    let mut chosen = Vec::with_capacity(cap);
    if cap == total {
        chosen.extend(by_program.values().flatten().copied());
    } else {
        let mut queues: Vec<Vec<usize>> = by_program
            .values()
            .map(|v| {
                let mut v = v.clone();
                // Seeded order inside an instrument; taken from the back.
                v.sort_by_key(|&i| std::cmp::Reverse(mix64(seed ^ key(i))));
                v
            })
            .collect();
        while chosen.len() < cap {
            for q in &mut queues {
                if chosen.len() < cap {
                    if let Some(i) = q.pop() {
                        chosen.push(i);
                    }
                }
            }
        }
    }
    if chosen.is_empty() {
        return Err(TransferError::NoSources);
    }
    chosen.sort_by_key(|&i| (records[i].program, records[i].phrase, i));

    let ranges = instruments_from_manifest(records);
    let refs = test_clips_by_program(records, Set::Notes);
    chosen
        .into_iter()
        .map(|s| {
            let a = records[s].program;
            let others: Vec<u8> = refs.keys().copied().filter(|p| *p != a).collect();
            if others.is_empty() {
                return Err(TransferError::NoReference { program: a });
            }
            let mut rng = SplitMix64::new(mix64(seed ^ key(s)));
            let b = others[rng.int(0, others.len() as i32 - 1) as usize];
            let clips = &refs[&b];
            let preferred: Vec<usize> = clips
                .iter()
                .copied()
                .filter(|&i| records[i].velocity == REFERENCE_VELOCITY)
                .collect();
            let pool = if preferred.is_empty() {
                clips
            } else {
                &preferred
            };
            let middle2 = ranges
                .get(&b)
                .map_or(120, |inst| inst.low as i32 + inst.high as i32);
            let r = pool
                .iter()
                .copied()
                .min_by_key(|&i| {
                    let rec = &records[i];
                    let note = rec.note.unwrap_or(0) as i32;
                    (
                        (2 * note - middle2).abs(),
                        (rec.velocity as i32 - REFERENCE_VELOCITY as i32).abs(),
                        note,
                        i,
                    )
                })
                .ok_or(TransferError::NoReference { program: a })?;
            Ok((s, r))
        })
        .collect()
}

/// `pairs` ([`plan_pairs_of`]) with each reference note replaced by a test-split phrase of the
/// same instrument B, drawn with `seed` and the source's key: the same sources and the same B,
/// so the two kinds of reference compare output for output. Errors when B has no test-split
/// phrase.
pub fn phrase_references(
    records: &[ClipRecord],
    pairs: &[(usize, usize)],
    seed: u64,
) -> Result<Vec<(usize, usize)>, TransferError> {
    let phrases = test_clips_by_program(records, Set::Phrases);
    pairs
        .iter()
        .map(|&(s, r)| {
            let b = records[r].program;
            let pool = phrases
                .get(&b)
                .ok_or(TransferError::NoReferencePhrase { program: b })?;
            let key = phrase_hash(&records[s]);
            let mut rng = SplitMix64::new(mix64(seed ^ key ^ PHRASE_REFERENCE_SALT));
            Ok((s, pool[rng.int(0, pool.len() as i32 - 1) as usize]))
        })
        .collect()
}

/// `pairs` ([`plan_pairs_of`]) with each reference replaced by a test-split note of the
/// source's own instrument: at velocity 80 where there is one, the nearest to the median of
/// the phrase's labelled notes (ties to the lower note). B is then A, and the oracle renders
/// the source's own score with its own instrument: what a swap keeps of an instrument when
/// nothing has to change, the synthesis' own fidelity. Errors when A has no test-split note.
pub fn same_instrument_references(
    records: &[ClipRecord],
    pairs: &[(usize, usize)],
) -> Result<Vec<(usize, usize)>, TransferError> {
    let notes = test_clips_by_program(records, Set::Notes);
    pairs
        .iter()
        .map(|&(s, _)| {
            let a = records[s].program;
            let clips = notes
                .get(&a)
                .ok_or(TransferError::NoReference { program: a })?;
            let mut labelled: Vec<i16> = records[s]
                .frame_notes
                .iter()
                .copied()
                .filter(|n| *n >= 0)
                .collect();
            labelled.sort_unstable();
            // Twice the median, so that an even count's midpoint stays an integer.
            let median2 = match labelled.len() {
                0 => None,
                n if n % 2 == 1 => Some(2 * labelled[n / 2] as i32),
                n => Some(labelled[n / 2 - 1] as i32 + labelled[n / 2] as i32),
            };
            let r = clips
                .iter()
                .copied()
                .min_by_key(|&i| {
                    let rec = &records[i];
                    let note = rec.note.unwrap_or(0) as i32;
                    (
                        rec.velocity != REFERENCE_VELOCITY,
                        median2.map_or(0, |m| (2 * note - m).abs()),
                        note,
                        i,
                    )
                })
                .ok_or(TransferError::NoReference { program: a })?;
            Ok((s, r))
        })
        .collect()
}

/// The test-split clips of `set` by program, as indices into `records` in manifest order
/// (notes only where they name their note).
fn test_clips_by_program(records: &[ClipRecord], set: Set) -> BTreeMap<u8, Vec<usize>> {
    let mut by_program: BTreeMap<u8, Vec<usize>> = BTreeMap::new();
    for (i, r) in records.iter().enumerate() {
        if r.set == set && r.split == Split::Test && (set != Set::Notes || r.note.is_some()) {
            by_program.entry(r.program).or_default().push(i);
        }
    }
    by_program
}

/// Keeps the phrase draw of [`phrase_references`] apart from the draw of B.
const PHRASE_REFERENCE_SALT: u64 = 0x5048_5241_5345_5245;

/// A phrase record's stable hash (its program and phrase index), the seed of its draws.
fn phrase_hash(r: &ClipRecord) -> u64 {
    manifest::fnv1a(manifest::phrase_key(r.program, r.phrase.unwrap_or(u32::MAX)).as_bytes())
}
