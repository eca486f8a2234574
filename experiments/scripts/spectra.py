#!/usr/bin/env python3
"""Spectra of the audio `timbreswap eval-transfer --write-audio DIR` writes, for the
experiment log and docs/quality.md ("A reference in a room").

  bands OUT_DIR[=NAME] ... -- PAIR ...
      Each pair's long-term spectrum in octave bands (50 Hz to 16 kHz): 2048-point Hann
      frames, hop 512, the frames within 40 dB of the loudest, dB under the loudest band.
      The oracle from the first folder, then `engine_exemplar` from each folder.
      PAIR is `SOURCE__REFERENCE`, e.g. 021_p17__071_073_080.

  partials CLEAN_WAV WRITTEN_WAV MIDI_NOTE
      A reference note's partial levels, clean against as the eval wrote it (with its room):
      partials 1-12, the largest bin within half a spacing of each, mean over the frames of
      0.02-0.1, 0.2-0.5 and 0.8-1.2 s, dB under the strongest.

Needs numpy. Reads 16-bit PCM and 32-bit float WAV.
"""
import struct
import sys

import numpy as np


def load(path):
    """Mono samples (the channels' mean) and the rate of a WAV file."""
    data = open(path, "rb").read()
    i, fmt, pcm = 12, None, None
    while i < len(data):
        kind, size = data[i:i + 4], struct.unpack("<I", data[i + 4:i + 8])[0]
        chunk = data[i + 8:i + 8 + size]
        if kind == b"fmt ":
            fmt = struct.unpack("<HHIIHH", chunk[:16])
        elif kind == b"data":
            pcm = chunk
        i += 8 + size + (size & 1)
    tag, channels, rate, _, _, bits = fmt
    if bits == 16:
        x = np.frombuffer(pcm, dtype="<i2") / 32768.0
    else:
        x = np.frombuffer(pcm, dtype="<f4").astype(np.float64)
    return x.reshape(-1, channels).mean(axis=1), rate


def octave_bands(x, rate, n=2048, hop=512):
    window = np.hanning(n + 1)[:n]
    power = np.array([np.abs(np.fft.rfft(x[s:s + n] * window)) ** 2
                      for s in range(0, len(x) - n, hop)])
    energy = power.sum(axis=1)
    mean = power[energy > energy.max() * 1e-4].mean(axis=0)
    hz = np.arange(len(mean)) * rate / n
    edges = [50, 100, 200, 400, 800, 1600, 3200, 6400, 12800, 16000]
    db = np.array([10 * np.log10(mean[(hz >= a) & (hz < b)].sum() + 1e-20)
                   for a, b in zip(edges[:-1], edges[1:])])
    return db - db.max()


def partial_levels(x, rate, f0, t0, t1, n=2048, hop=160, count=12):
    window = np.hanning(n + 1)[:n]
    bin_hz = rate / n
    rows = []
    for s in range(int(t0 * rate), int(t1 * rate) - n, hop):
        mag = np.abs(np.fft.rfft(x[s:s + n] * window))
        row = []
        for h in range(1, count + 1):
            centre = h * f0 / bin_hz
            lo = int(np.ceil(centre - 0.5 * f0 / bin_hz))
            hi = int(np.floor(centre + 0.5 * f0 / bin_hz))
            row.append(mag[lo:hi + 1].max())
        rows.append(row)
    db = 20 * np.log10(np.array(rows) + 1e-9).mean(axis=0)
    return db - db.max()


def main(args):
    if args[:1] == ["bands"]:
        split = args.index("--")
        folders = [a.split("=", 1) if "=" in a else (a, a) for a in args[1:split]]
        for pair in args[split + 1:]:
            print(pair)
            first = folders[0][0]
            rows = [("oracle", f"{first}/{pair}__oracle.wav")]
            rows += [(name, f"{folder}/{pair}__engine_exemplar.wav") for folder, name in folders]
            for name, path in rows:
                x, rate = load(path)
                print(f"  {name:>10}", " ".join(f"{v:6.1f}" for v in octave_bands(x, rate)))
    elif args[:1] == ["partials"] and len(args) == 4:
        clean, _ = load(args[1])
        written, rate = load(args[2])
        f0 = 440.0 * 2 ** ((int(args[3]) - 69) / 12)
        for t0, t1 in [(0.02, 0.1), (0.2, 0.5), (0.8, 1.2)]:
            for name, x in [("clean", clean), ("written", written)]:
                levels = partial_levels(x, rate, f0, t0, t1)
                print(f"  {t0}-{t1} s {name:>7}", " ".join(f"{v:4.0f}" for v in levels))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
