//! The protocol's instrument list (`eval-instruments.tsv`: 0-based GM program, name, family,
//! lowest and highest MIDI note).

use std::path::Path;

/// The list shipped with the repository (a copy of the team's `shared/eval-instruments.tsv`).
pub const DEFAULT_INSTRUMENTS_TSV: &str = include_str!("../data/eval-instruments.tsv");

/// One instrument of the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instrument {
    /// General MIDI program, 0-based.
    pub program: u8,
    /// Display name.
    pub name: String,
    /// Family (keys, strings, brass, ...).
    pub family: String,
    /// Lowest MIDI note rendered.
    pub low: u8,
    /// Highest MIDI note rendered.
    pub high: u8,
}

/// Why an instrument list could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InstrumentsError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A line is malformed.
    #[error("line {line}: {detail}")]
    Parse {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        detail: String,
    },
}

/// Parses the TSV text (header line first).
pub fn parse(text: &str) -> Result<Vec<Instrument>, InstrumentsError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let err = |detail: &str| InstrumentsError::Parse {
            line: i + 1,
            detail: detail.to_string(),
        };
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.len() != 5 {
            return Err(err("expected 5 tab-separated columns"));
        }
        let num = |s: &str, what: &str| s.trim().parse::<u8>().map_err(|_| err(what));
        let (program, low, high) = (
            num(cols[0], "bad program")?,
            num(cols[3], "bad low note")?,
            num(cols[4], "bad high note")?,
        );
        if program > 127 || low > high || high > 127 {
            return Err(err("program or note range out of bounds"));
        }
        out.push(Instrument {
            program,
            name: cols[1].trim().to_string(),
            family: cols[2].trim().to_string(),
            low,
            high,
        });
    }
    Ok(out)
}

/// Reads a TSV file, or the shipped list when `path` is `None`.
pub fn load(path: Option<&Path>) -> Result<Vec<Instrument>, InstrumentsError> {
    match path {
        None => parse(DEFAULT_INSTRUMENTS_TSV),
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|source| InstrumentsError::Io {
                path: p.display().to_string(),
                source,
            })?;
            parse(&text)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_list_has_36_instruments_with_sane_ranges() {
        let list = load(None).unwrap();
        assert_eq!(list.len(), 36);
        assert!(list.iter().all(|i| i.low < i.high));
        assert_eq!(list[0].name, "Acoustic Grand Piano");
        assert_eq!((list[0].low, list[0].high), (33, 96));
    }
}
