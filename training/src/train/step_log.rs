//! What a training step reports: its loss terms by name, the step's record in `train.jsonl`,
//! its progress line, and their sums over an epoch for the epoch's record.

use serde_json::{Map, Value};

/// One step's loss terms as the step computed them, each in its own term's units
/// (docs/model.md); `NaN` for a term the configuration does not train (written as `null`, left
/// out of the progress line).
#[derive(Debug, Clone, Copy)]
pub(crate) struct StepTerms {
    /// The step's whole loss (every term, weighted).
    pub loss: f64,
    /// Reconstruction of the main pass.
    pub recon: f64,
    /// Reconstruction of the re-entry pass.
    pub recon_reentry: f64,
    /// KL of the timbre latent.
    pub kl_t: f64,
    /// KL of the variation latent (0 without one).
    pub kl_v: f64,
    /// KL of the pitch latent.
    pub kl_p: f64,
    /// Pitch-invariance term.
    pub pitch_invariance: f64,
    /// Pitch-contrast term.
    pub pitch_contrast: f64,
    /// The pitch ruler's cross-entropy.
    pub pitch_classifier: f64,
    /// Swap term on the pairs.
    pub swap: f64,
    /// Cross-library timbre term.
    pub cross_library: f64,
    /// `z_v` invariance on the pairs.
    pub variation_invariance: f64,
    /// The instrument classifier against `z_v`.
    pub adversary: f64,
    /// Cycle term on the pairs.
    pub cycle: f64,
}

/// `Some(v)` where `v` was trained (finite), `None` (JSON `null`) where not.
fn trained(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

/// The terms' names in the records, in the order of [`StepTerms::values`].
const TERM_NAMES: [&str; 14] = [
    "loss",
    "recon",
    "recon_reentry",
    "kl_t",
    "kl_v",
    "kl_p",
    "pitch_invariance",
    "pitch_contrast",
    "pitch_classifier",
    "swap",
    "cross_library",
    "variation_invariance",
    "adversary",
    "cycle",
];

/// The terms every record writes as numbers (every configuration trains them).
fn always_written(name: &str) -> bool {
    matches!(name, "loss" | "recon" | "kl_t" | "kl_v" | "kl_p")
}

impl StepTerms {
    /// The terms in the order of [`TERM_NAMES`].
    fn values(&self) -> [f64; 14] {
        [
            self.loss,
            self.recon,
            self.recon_reentry,
            self.kl_t,
            self.kl_v,
            self.kl_p,
            self.pitch_invariance,
            self.pitch_contrast,
            self.pitch_classifier,
            self.swap,
            self.cross_library,
            self.variation_invariance,
            self.adversary,
            self.cycle,
        ]
    }

    /// The step's record for `train.jsonl`: its terms (`null` where not trained; the loss,
    /// main reconstruction and KL terms always written), with the KL weight `beta`, learning
    /// rate `lr`, gradient norm and throughput (frames per second of the step).
    pub(crate) fn record(
        &self,
        epoch: usize,
        step: u64,
        beta: f64,
        lr: f64,
        grad_norm: f64,
        frames_per_s: f64,
    ) -> Value {
        let mut record = Map::new();
        record.insert("kind".into(), "step".into());
        record.insert("epoch".into(), epoch.into());
        record.insert("step".into(), step.into());
        for (name, v) in TERM_NAMES.into_iter().zip(self.values()) {
            let value = if always_written(name) {
                Some(v)
            } else {
                trained(v)
            };
            record.insert(name.into(), value.into());
        }
        record.insert("beta".into(), beta.into());
        record.insert("lr".into(), lr.into());
        record.insert("grad_norm".into(), grad_norm.into());
        record.insert("frames_per_s".into(), frames_per_s.into());
        Value::Object(record)
    }

    /// The progress line: the loss, reconstruction and KL terms, each trained optional term,
    /// the KL weight and the run's throughput so far (frames per second).
    pub(crate) fn progress_line(&self, beta: f64, frames_per_s: f64) -> String {
        let mut line = format!("loss {:.1} recon {:.1}", self.loss, self.recon);
        // The re-entry reconstruction sits beside the main one, before the KL terms.
        if self.recon_reentry.is_finite() {
            line += &format!(" re-entry {:.1}", self.recon_reentry);
        }
        line += &format!(
            " KL t {:.2} v {:.2} p {:.2}",
            self.kl_t, self.kl_v, self.kl_p
        );
        let optional = [
            (self.pitch_invariance, "inv", 3),
            (self.pitch_contrast, "contrast", 3),
            (self.pitch_classifier, "pitch CE", 3),
            (self.swap, "swap", 1),
            (self.cross_library, "cross-library", 3),
            (self.variation_invariance, "z_v gap", 3),
            (self.adversary, "z_v instrument CE", 3),
            (self.cycle, "cycle", 2),
        ];
        for (v, name, digits) in optional {
            if v.is_finite() {
                line += &format!(" {name} {v:.digits$}");
            }
        }
        line + &format!(" beta {beta:.2} {frames_per_s:.0} frames/s")
    }
}

/// Each term summed over an epoch's steps (a term not trained sums to `NaN`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TermSums {
    sums: [f64; 14],
}

impl TermSums {
    /// Adds one step's terms.
    pub(crate) fn add(&mut self, terms: &StepTerms) {
        for (s, v) in self.sums.iter_mut().zip(terms.values()) {
            *s += v;
        }
    }

    /// The epoch record's means over `steps` steps, `train_` before each term's name: `null`
    /// for a term not trained, and for the re-entry reconstruction unless `reentry`.
    pub(crate) fn epoch_fields(&self, steps: f64, reentry: bool) -> Map<String, Value> {
        TERM_NAMES
            .into_iter()
            .zip(self.sums)
            .map(|(name, sum)| {
                let mean = sum / steps;
                let value = if always_written(name) {
                    Some(mean)
                } else if name == "recon_reentry" {
                    reentry.then_some(mean)
                } else {
                    trained(mean)
                };
                (format!("train_{name}"), value.into())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(trained_extra: bool) -> StepTerms {
        let extra = if trained_extra { 0.3 } else { f64::NAN };
        StepTerms {
            loss: 40.0,
            recon: 30.0,
            recon_reentry: extra,
            kl_t: 1.5,
            kl_v: 2.5,
            kl_p: 3.5,
            pitch_invariance: extra,
            pitch_contrast: extra,
            pitch_classifier: extra,
            swap: extra,
            cross_library: extra,
            variation_invariance: extra,
            adversary: extra,
            cycle: extra,
        }
    }

    /// A step's record names every term; an untrained one is `null`; the epoch's fields are
    /// the steps' means under `train_` names, `null` for the untrained terms and for re-entry
    /// unless it is trained.
    #[test]
    fn records_name_each_term_and_null_the_untrained_ones() {
        let record = terms(false).record(2, 7, 0.5, 1e-3, 4.0, 1000.0);
        assert_eq!(record["kind"], "step");
        assert_eq!(record["step"], 7);
        assert_eq!(record["loss"], 40.0);
        assert_eq!(record["kl_p"], 3.5);
        assert!(record["swap"].is_null() && record["cycle"].is_null());
        assert_eq!(
            terms(true).record(2, 7, 0.5, 1e-3, 4.0, 1000.0)["cycle"],
            0.3
        );

        let mut sums = TermSums::default();
        sums.add(&terms(true));
        sums.add(&StepTerms {
            loss: 20.0,
            ..terms(true)
        });
        let fields = sums.epoch_fields(2.0, true);
        assert_eq!(fields["train_loss"], 30.0);
        assert_eq!(fields["train_recon_reentry"], 0.3);
        assert_eq!(fields["train_variation_invariance"], 0.3);
        assert!(sums.epoch_fields(2.0, false)["train_recon_reentry"].is_null());
        let mut untrained = TermSums::default();
        untrained.add(&terms(false));
        let fields = untrained.epoch_fields(1.0, false);
        assert!(fields["train_swap"].is_null() && fields["train_adversary"].is_null());
        assert_eq!(fields["train_kl_v"], 2.5);
    }

    /// The progress line writes the optional terms only when trained, the re-entry
    /// reconstruction beside the main one.
    #[test]
    fn the_progress_line_shows_the_trained_terms() {
        assert_eq!(
            terms(false).progress_line(0.5, 1234.4),
            "loss 40.0 recon 30.0 KL t 1.50 v 2.50 p 3.50 beta 0.50 1234 frames/s"
        );
        assert_eq!(
            terms(true).progress_line(1.0, 10.0),
            "loss 40.0 recon 30.0 re-entry 0.3 KL t 1.50 v 2.50 p 3.50 inv 0.300 \
             contrast 0.300 pitch CE 0.300 swap 0.3 cross-library 0.300 z_v gap 0.300 \
             z_v instrument CE 0.300 cycle 0.30 beta 1.00 10 frames/s"
        );
    }
}
