//! Which clips the Exemplar analysis reads as having a background (a room's noise in their
//! pauses, taken out of their notes), and at what level.
//!
//! `cargo run --release -p timbreswap-engine --example background_levels -- DIR [DIR ...]`
//! reads every `.wav` under each folder (recursively, in name order), prints each clip that
//! has a background with its level in dB under the clip's loudest frame
//! (`ExemplarBank::background_db`), then the counts. A file that cannot be read is counted
//! apart and named.

use std::path::{Path, PathBuf};

use timbreswap_engine::clip::load_reference_clip;
use timbreswap_engine::exemplar::ExemplarBank;
use timbreswap_engine::StftConfig;

fn main() {
    let cfg = StftConfig::default();
    let (mut clips, mut with, mut unread) = (0usize, 0usize, 0usize);
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
            if let Some(db) = level {
                with += 1;
                println!("{}\t{db:.1} dB", path.display());
            }
        }
    }
    println!("{clips} clips, {with} with a background, {unread} unreadable");
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
