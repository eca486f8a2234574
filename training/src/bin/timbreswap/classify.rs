//! `timbreswap classify`: the transfer table's instrument classifier on any audio files, with
//! the votes behind each label and, on request, which stretch of a file was heard as what.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use timbreswap_engine::clip::{decode_file, mono_at};
use timbreswap_training::knn;
use timbreswap_training::manifest::{read_manifest, Set};
use timbreswap_training::transfer::{fit_classifier, FEATURE_HOP};

use crate::cli::ClassifyArgs;

/// Longest file classified, in seconds.
const MAX_SECONDS: f64 = 600.0;
/// Labels listed per file, most votes first.
const SHOWN_LABELS: usize = 5;

/// Runs `classify` with its arguments.
pub(crate) fn run(args: ClassifyArgs) -> Result<()> {
    // A mistyped file name is reported before the fit's seconds, not after.
    for file in &args.files {
        std::fs::metadata(file).with_context(|| format!("cannot read {}", file.display()))?;
    }
    let records = read_manifest(&args.data)
        .with_context(|| format!("reading the manifest in {}", args.data.display()))?;
    let Some(rate) = records
        .iter()
        .find(|r| r.set == Set::Notes)
        .map(|r| r.sample_rate)
    else {
        bail!(
            "{} has no note clips to fit the classifier on",
            args.data.display()
        );
    };
    let names: BTreeMap<u32, String> = records
        .iter()
        .map(|r| (r.program as u32, r.instrument.clone()))
        .collect();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let (classifier, clips, _) = fit_classifier(
        &args.data,
        &records,
        rate,
        args.seed,
        threads,
        &|_, _, _| {},
    )?;
    println!(
        "Classifier: k-NN (k = {}) on {} frames of {clips} note clips of {} ({} instruments), seed {}.",
        knn::K,
        classifier.fit_frames,
        args.data.display(),
        classifier.classes.len(),
        args.seed
    );
    let name = |label: u32| {
        names
            .get(&label)
            .map_or_else(|| format!("program {label}"), |n| format!("{n} ({label})"))
    };
    let hop_s = FEATURE_HOP as f64 / rate as f64;
    for file in &args.files {
        let audio = decode_file(file, MAX_SECONDS).with_context(|| file.display().to_string())?;
        let labelled = classifier.frame_labels(&mono_at(&audio, rate));
        let mut votes: BTreeMap<u32, usize> = BTreeMap::new();
        for (_, label) in &labelled {
            *votes.entry(*label).or_default() += 1;
        }
        let mut ranked: Vec<(u32, usize)> = votes.into_iter().collect();
        // Most votes first; ties to the smaller label, as the clip's vote breaks them.
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let Some(&(winner, _)) = ranked.first() else {
            println!(
                "{}: silent (no frame within 40 dB of a sounding one)",
                file.display()
            );
            continue;
        };
        let shown: Vec<String> = ranked
            .iter()
            .take(SHOWN_LABELS)
            .map(|(l, n)| format!("{} {n}", name(*l)))
            .collect();
        println!(
            "{}: {} ({} active frames: {})",
            file.display(),
            name(winner),
            labelled.len(),
            shown.join(", ")
        );
        if args.frames {
            // Runs of consecutive active frames with one label.
            let mut start = 0;
            for i in 1..=labelled.len() {
                let ends = i == labelled.len()
                    || labelled[i].1 != labelled[start].1
                    || labelled[i].0 != labelled[i - 1].0 + 1;
                if ends {
                    let (first, last) = (labelled[start].0, labelled[i - 1].0);
                    println!(
                        "  {:7.2} - {:7.2} s  {}",
                        first as f64 * hop_s,
                        (last + 1) as f64 * hop_s,
                        name(labelled[start].1)
                    );
                    start = i;
                }
            }
        }
    }
    Ok(())
}
