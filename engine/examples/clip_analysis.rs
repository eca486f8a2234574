//! Which clips the Exemplar analysis reads as having a background (a room's noise in their
//! pauses, taken out of their notes) or a hard cut (frames over it left out), and where.
//!
//! `cargo run --release -p timbreswap-engine --example clip_analysis -- DIR [DIR ...]` reads
//! every `.wav` under each folder (recursively, in name order), as the plugin's loader reads
//! a reference (mono, at the model's rate), and prints each clip that has either: its
//! background's level in dB under the clip's loudest frame (`ExemplarBank::background_db`)
//! and its cuts' times in seconds (`exemplar::hard_cuts`). Then the counts. A file that
//! cannot be read is counted apart and named.

use std::path::{Path, PathBuf};

use timbreswap_engine::clip::load_reference_clip;
use timbreswap_engine::exemplar::{hard_cuts, ExemplarBank};
use timbreswap_engine::StftConfig;

fn main() {
    let cfg = StftConfig::default();
    let (mut clips, mut with_background, mut with_cuts, mut unread) = (0usize, 0, 0, 0);
    let sr = cfg.sample_rate as f32;
    for dir in std::env::args().skip(1) {
        for path in wav_files(Path::new(&dir)) {
            let clip = match load_reference_clip(&path, &cfg) {
                Ok(clip) => clip,
                Err(e) => {
                    unread += 1;
                    eprintln!("{e}");
                    continue;
                }
            };
            clips += 1;
            let level = ExemplarBank::new(&cfg, &clip.samples).and_then(|b| b.background_db());
            let cuts = hard_cuts(&clip.samples, sr);
            with_background += usize::from(level.is_some());
            with_cuts += usize::from(!cuts.is_empty());
            if level.is_none() && cuts.is_empty() {
                continue;
            }
            let level = level.map_or("-".to_string(), |db| format!("{db:.1} dB"));
            let at: Vec<String> = cuts
                .iter()
                .map(|c| format!("{:.3} s", c.start as f32 / sr))
                .collect();
            println!("{}\t{level}\t{}", path.display(), at.join(" "));
        }
    }
    println!(
        "{clips} clips, {with_background} with a background, {with_cuts} with a hard cut, \
         {unread} unreadable"
    );
}

/// Every `.wav` file under `dir`, in name order.
fn wav_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            out.extend(wav_files(&path));
        } else if path.extension().is_some_and(|x| x == "wav") {
            out.push(path);
        }
    }
    out
}
