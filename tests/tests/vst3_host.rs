//! The VST3 bundle (`target/bundled/Timbreswap.vst3`) in a host nobody on the team wrote:
//! Spotify's pedalboard (JUCE's VST3 hosting), driven by `tests/vst3/pedalboard_host.py`.
//! It lists the parameters with their ranges, activates at every rate a host may ask for (1 kHz
//! to 2 MHz, fractional ones included; with no reference the output is the input exactly, with
//! the reported latency inside the engine's range and none outside), checks that Mix 0 is the input exactly after the
//! host's latency compensation, plays Classic and Neural (map point, and a reference loaded
//! through the saved state) at 44.1, 48 and 96 kHz with blocks of 32 to 2048 samples, and
//! round-trips the state; hostile audio (silence, 1e30 bursts, NaN, Inf) gives safe output.
//!
//! Needs `python3` with `pedalboard` and `numpy` (`bash .ci/deps.sh` installs them) and the
//! bundle (`cargo xtask test` builds it first).

use std::path::Path;
use std::process::Command;

use timbreswap_engine::clip::load_reference_clip;
use timbreswap_engine::kernels::Kernels;
use timbreswap_engine::model_file;
use timbreswap_engine::network::Network;
use timbreswap_engine::timbre::TimbreLatent;
use timbreswap_engine::StftConfig;

#[test]
fn the_vst3_bundle_works_in_pedalboard() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let bundle = root.join("target/bundled/Timbreswap.vst3");
    assert!(
        bundle.exists(),
        "{} is missing: run `cargo xtask bundle timbreswap --release` first",
        bundle.display()
    );
    // The trumpet example with its latent for the built-in model, as the plugin saves it.
    let clip = load_reference_clip(
        &root.join("assets/examples/ref-trumpet.wav"),
        &StftConfig::default(),
    )
    .unwrap();
    let file = model_file::load(&root.join("assets/models/default.safetensors")).unwrap();
    let net = Network::new(&file, "default", Kernels::best()).unwrap();
    let mut descriptor = clip.descriptor;
    descriptor.latent = Some(TimbreLatent {
        model_id: net.id().to_string(),
        z_t: net.clip_timbre(&clip.samples),
    });
    let dir = std::env::temp_dir().join(format!("timbreswap-vst3-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let timbre = dir.join("timbre-a.json");
    std::fs::write(&timbre, serde_json::to_string(&Some(&descriptor)).unwrap()).unwrap();

    let output = Command::new("python3")
        .arg(root.join("tests/vst3/pedalboard_host.py"))
        .arg(&bundle)
        .arg(&timbre)
        .output()
        .expect("python3 runs (bash .ci/deps.sh installs it)");
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "the pedalboard checks failed ({}):\n{stdout}\n{stderr}\n(missing pedalboard? run `bash .ci/deps.sh`)",
        output.status
    );
    assert!(stdout.contains("all VST3 checks passed"));
}
