"""The VST3 bundle in a host nobody on the team wrote: pedalboard (JUCE's VST3 hosting).

Run by `tests/tests/vst3_host.rs` (part of `cargo xtask test`):

    python3 tests/vst3/pedalboard_host.py BUNDLE TIMBRE_JSON

TIMBRE_JSON is a timbre descriptor (with its latent for the built-in model) as the plugin
saves it; it is loaded into slot A through the plugin's saved state. Every check raises
AssertionError with what differed; the exit status is 0 only when all pass.
"""

import json
import re
import struct
import sys

import numpy as np
import pedalboard

# JUCE's MemoryBlock base-64 alphabet: the state's bytes as a little-endian bit stream, six
# bits per character, after "<byte count>.".
JUCE_BASE64 = ".ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+"
RATES = [44_100.0, 48_000.0, 96_000.0]
BLOCKS = [32, 64, 128, 256, 512, 1024, 2048]
# Rates a host or validator may ask for, outside the engine's 8-384 kHz included.
ANY_RATES = [1_000.0, 1_234.5678, 7_999.0, 44_100.0, 384_000.0, 768_000.0, 1_234_567.8, 2_000_000.0]


def juce_decode(text):
    size, _, chars = text.partition(".")
    value = 0
    for i, c in enumerate(chars):
        value |= JUCE_BASE64.index(c) << (6 * i)
    return value.to_bytes(int(size), "little")


def juce_encode(data):
    value = int.from_bytes(data, "little")
    count = (len(data) * 8 + 5) // 6
    return f"{len(data)}." + "".join(
        JUCE_BASE64[(value >> (6 * i)) & 63] for i in range(count)
    )


def plugin_state(plugin):
    """The plugin's own state (nice-plug's JSON) inside pedalboard's VST3 state blob."""
    xml = plugin.raw_state[8:].rstrip(b"\0").decode()
    found = re.search(r"<IComponent>([^<]*)</IComponent>", xml)
    assert found, f"no component state in {xml[:200]!r}"
    return json.loads(juce_decode(found.group(1)))


def set_plugin_state(plugin, state):
    """Replaces the component state in the VST3 state blob and loads it."""
    raw = plugin.raw_state
    xml = raw[8:].rstrip(b"\0").decode()
    encoded = juce_encode(json.dumps(state, separators=(",", ":")).encode())
    xml = re.sub(
        r"<IComponent>[^<]*</IComponent>",
        lambda _: f"<IComponent>{encoded}</IComponent>",
        xml,
    )
    body = xml.encode() + b"\0"
    plugin.raw_state = raw[:4] + struct.pack("<I", len(body)) + body


def tone(rate, seconds):
    """Stereo: a harmonic tone with a swell on the left, a quieter copy on the right."""
    t = np.arange(int(rate * seconds)) / rate
    swell = 0.6 + 0.4 * np.sin(2 * np.pi * 1.7 * t)
    left = sum(np.sin(2 * np.pi * 233.0 * h * t) / h for h in range(1, 12))
    left = (0.25 * swell * left).astype(np.float32)
    return np.stack([left, 0.5 * left])


def rms_db(x):
    return 10 * np.log10(np.mean(np.square(x.astype(np.float64))) + 1e-30)


def check_parameters(plugin):
    expected = {
        "mix": (0.0, 100.0),
        "output_db": (-24.0, 24.0),
        "morph": (0.0, 100.0),
        "variation": (0.0, 200.0),
        "transpose_st": (-12.0, 12.0),
        "timbre_x": (-1.0, 1.0),
        "timbre_y": (-1.0, 1.0),
        "map_amount": (0.0, 100.0),
        "decay": (0.0, 100.0),
    }
    params = plugin.parameters
    for name, (low, high) in expected.items():
        assert name in params, f"parameter {name} missing: {sorted(params)}"
        got = params[name].range[:2]
        assert got == (low, high), f"{name}: range {got}, expected {(low, high)}"
        print(f"  {name}: {got[0]} .. {got[1]}")
    for name, values in {"mode": {"Classic", "Neural", "Exemplar"}, "phase": {"Input", "Reconstruct"}}.items():
        assert set(params[name].valid_values) == values, f"{name}: {params[name].valid_values}"
        print(f"  {name}: {', '.join(sorted(values))}")


def check_any_rate(plugin):
    """Every rate a host may ask for activates, and with no reference the output is the input,
    exactly, after pedalboard's latency compensation: inside the engine's 8-384 kHz the plugin
    runs with its reported latency, outside it passes through and reports none."""
    plugin.mode = "Classic"
    plugin.mix = 100.0
    for rate in ANY_RATES:
        x = tone(max(rate, 8_000.0), 0.3)
        for block in [1, 333, 4_096] if rate <= 50_000 else [333, 4_096]:
            y = plugin(x, rate, buffer_size=block, reset=True)
            assert np.array_equal(y, x), (
                f"{rate} Hz / {block}: max difference {np.abs(y - x).max()}"
            )
        print(f"  {rate} Hz: the input, exactly")


def check_hostile(plugin):
    """Hostile audio with a reference loaded: silence gives exact zeros; a 1e30 burst, NaN and
    infinities give finite output at most WET_PEAK_LIMIT (4) times the input's finite peak."""
    rate = 48_000.0
    x = tone(rate, 0.5)
    bad = x.copy()
    bad[:, 6_000:6_480:2] = 1e30
    bad[:, 6_001:6_480:2] = -1e30
    bad[:, 9_000:9_400:3] = np.nan
    bad[:, 9_001:9_400:3] = np.inf
    finite_peak = np.abs(np.where(np.isfinite(bad), bad, 0.0)).max()
    plugin.mix = 100.0
    for mode in ["Classic", "Neural", "Exemplar"]:
        plugin.mode = mode
        y = plugin(np.zeros_like(x), rate, buffer_size=256, reset=True)
        assert not y.any(), f"{mode}: silence in gave {np.abs(y).max()}"
        y = plugin(bad, rate, buffer_size=256, reset=True)
        assert np.isfinite(y).all(), f"{mode}: non-finite output from hostile input"
        assert np.abs(y).max() <= 4.0 * finite_peak * 1.0001, (
            f"{mode}: peak {np.abs(y).max()} from a finite input peak of {finite_peak}"
        )
        print(f"  {mode}: silence gives zeros; bursts, NaN and Inf give bounded, finite output")


def main():
    bundle, timbre_path = sys.argv[1], sys.argv[2]
    with open(timbre_path) as f:
        timbre = f.read()

    plugin = pedalboard.load_plugin(bundle)
    print(f"loaded {plugin.name}; parameters:")
    check_parameters(plugin)
    print("any rate, no reference:")
    check_any_rate(plugin)

    # The reference through the saved state (slot A), then the state round trip.
    state = plugin_state(plugin)
    state["fields"]["timbre-a"] = timbre
    set_plugin_state(plugin, state)
    assert plugin_state(plugin)["fields"]["timbre-a"] == timbre, "slot A did not stick"
    print("state: slot A loaded through the saved state")
    print("hostile audio:")
    check_hostile(plugin)

    for rate in RATES:
        x = tone(rate, 0.6)
        # Mix 0: after pedalboard's latency compensation, the input exactly.
        plugin.mode = "Classic"
        plugin.mix = 0.0
        # The first call ramps Mix from 100 % to 0 % over the 20 ms smoothing time.
        plugin(x, rate, buffer_size=512, reset=True)
        y = plugin(x, rate, buffer_size=512, reset=True)
        assert np.array_equal(y, x), f"{rate} Hz, mix 0: max difference {np.abs(y - x).max()}"
        plugin.mix = 100.0
        for mode in ["Classic", "Neural", "Exemplar"]:
            plugin.mode = mode
            for map_amount in [0.0, 100.0] if mode == "Neural" else [0.0]:
                plugin.map_amount = map_amount
                plugin.timbre_x = 0.3
                for block in BLOCKS:
                    y = plugin(x, rate, buffer_size=block, reset=True)
                    assert y.shape == x.shape, f"{y.shape} from {x.shape}"
                    assert np.isfinite(y).all(), f"{mode} {rate} Hz / {block}: non-finite"
                    # The level matching keeps the input's level (after the first frames).
                    skip = int(0.1 * rate)
                    diff = rms_db(y[:, skip:]) - rms_db(x[:, skip:])
                    assert abs(diff) < 3.0, f"{mode} map {map_amount} {rate} Hz / {block}: {diff:+.1f} dB"
                    changed = rms_db(y[:, skip:] - x[:, skip:]) - rms_db(x[:, skip:])
                    assert changed > -20.0, f"{mode} {rate} Hz / {block}: the timbre barely changed"
                print(f"  {rate:.0f} Hz {mode} map {map_amount:.0f} %: blocks {BLOCKS[0]}..{BLOCKS[-1]} ok")
            plugin.map_amount = 0.0

    # The state round-trips through a second instance of the bundle.
    plugin.mode = "Neural"
    plugin.morph = 30.0
    plugin.variation = 70.0
    # pedalboard hands parameter changes to the plugin with the next audio it processes, so
    # the state read before that would still hold the previous values.
    plugin(tone(48_000.0, 0.1), 48_000.0, buffer_size=256, reset=True)
    saved = plugin.raw_state
    params = plugin_state(plugin)["params"]
    assert params["mode"] == {"string": "neural"}, params["mode"]
    assert abs(params["morph"]["f32"] - 0.3) < 1e-6, params["morph"]
    other = pedalboard.load_plugin(bundle)
    other.raw_state = saved
    assert plugin_state(other) == plugin_state(plugin), "the state did not round-trip"
    assert (other.mode, other.morph, other.variation) == ("Neural", 30.0, 70.0), (
        f"the host sees {other.mode}, {other.morph}, {other.variation} after the round trip"
    )
    x = tone(48_000.0, 0.5)
    a = plugin(x, 48_000.0, buffer_size=256, reset=True)
    b = other(x, 48_000.0, buffer_size=256, reset=True)
    assert np.isfinite(a).all() and np.isfinite(b).all()
    assert abs(rms_db(a) - rms_db(b)) < 0.5, f"{rms_db(a):.2f} vs {rms_db(b):.2f} dBFS"
    print("state: round trip through a second instance ok")
    print("all VST3 checks passed")


if __name__ == "__main__":
    main()
