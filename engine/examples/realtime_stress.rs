//! Plays the engine in realtime mode the way a host's audio callback does, paced by the clock,
//! and reports dropouts: the real-time safety check of the neural (or classic) path.
//!
//! `cargo run --release -p timbreswap-engine --example realtime_stress -- [SECONDS] [BLOCK]
//! [RATE] [neural|neural-f32|neural-f16|neural-int8|neural-mixed|exemplar|classic|none|mix0]
//! [busy|idle] [realtime|normal]` (defaults: 60 s, 64 samples, 48 kHz, neural, busy, realtime;
//! `neural`: the built-in model as it ships; `neural-f32`, `-f16`, `-int8`, `-mixed`: its
//! matrices as f32, f16, int8 or mixed; `exemplar`: the plugin's default Mode, the trumpet clip's analysis in slot A (the
//! built-in model loaded beside it, as in the plugin);
//! `none`: no reference, the pass-through an idle instance runs; `mix0`: Neural with a
//! reference at Mix 0, the other idle instance).
//! Two more optional arguments, `[BURST] [worker|covered|inline]` (defaults 1, worker): the
//! host calls `process` in groups of BURST blocks back to back, then waits until the group's
//! audio is due (VST3 `kBuffered`/prefetch, anticipative processing); `covered` builds the
//! latency for a whole burst (`EngineSettings::latency_block`, what the plugin asks the host to
//! restart with once it has seen the bursts); `inline` builds the engine in its inline
//! (offline) mode, the frames processed on the calling thread, as the plugin does for a
//! buffered host. A last optional argument, `[normal|low]` (default normal), is the latency
//! mode the engine is built for, and after it `[reconstruct|input]` (default reconstruct) the
//! Neural Phase: Reconstruct runs RTPGHI on every frame (the costlier path, for the safety
//! check), Input is the plugin's default (what an instance costs as it ships). With `busy`, one
//! extra thread spins for the whole run, so on a
//! 2-core machine the audio thread and the engine's worker share the other core. The last
//! argument is the worker's requested priority (what the plugin asks for is `realtime`; it is
//! only granted where the OS permits). The pacing thread plays the host's audio thread and, like
//! a DAW's, asks for real-time priority (SCHED_FIFO 10, above the worker's 5) where permitted.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use timbreswap_engine::kernels::Kernels;
use timbreswap_engine::model_file::{self, Precision};
use timbreswap_engine::network::Network;
use timbreswap_engine::neural::PhaseMode;
use timbreswap_engine::processor::SwapMode;
use timbreswap_engine::resampler::resample_all;
use timbreswap_engine::{
    BlockParams, Engine, EngineSettings, EngineStats, ProcessingMode, Slot, StftConfig,
    WorkerPriority,
};

/// Gives the calling thread SCHED_FIFO priority `priority` if the OS permits; true if granted.
#[cfg(unix)]
fn realtime_thread(priority: i32) -> bool {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: `pthread_self` is the calling thread's valid handle and `param` is a fully
    // initialised `sched_param` that outlives the call; only this thread's scheduling changes.
    unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param) == 0 }
}

#[cfg(not(unix))]
fn realtime_thread(_priority: i32) -> bool {
    false
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or_else(|| default.into());
    let seconds: f64 = arg(0, "60").parse().expect("SECONDS");
    let block: usize = arg(1, "64").parse().expect("BLOCK");
    let rate: f64 = arg(2, "48000").parse().expect("RATE");
    let what = arg(3, "neural");
    let mix0 = what == "mix0";
    let precision = match what.as_str() {
        "neural-f32" => Some(Precision::F32),
        "neural-f16" => Some(Precision::F16),
        "neural-int8" => Some(Precision::Int8),
        "neural-mixed" => Some(Precision::Mixed),
        _ => None,
    };
    let neural = what == "neural" || precision.is_some() || mix0;
    let none = what == "none";
    let exemplar = what == "exemplar";
    let busy = arg(4, "busy") == "busy";
    let worker_priority = if arg(5, "realtime") == "realtime" {
        WorkerPriority::Realtime
    } else {
        WorkerPriority::Normal
    };
    let burst: usize = arg(6, "1").parse::<usize>().expect("BURST").max(1);
    let inline = arg(7, "worker") == "inline";
    let covered = arg(7, "worker") == "covered";
    let latency_mode = match arg(8, "normal").as_str() {
        "low" => timbreswap_engine::LatencyMode::Low,
        _ => timbreswap_engine::LatencyMode::Normal,
    };
    let phase = match arg(9, "reconstruct").as_str() {
        "input" => PhaseMode::Input,
        _ => PhaseMode::Reconstruct,
    };

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut file = model_file::load(&root.join("assets/models/default.safetensors")).unwrap();
    if let Some(p) = precision {
        // The matrices as `timbreswap convert-model --to P` writes them.
        file = file.with_precision(p);
    }
    let net = Arc::new(Network::new(&file, "default", Kernels::best()).unwrap());
    let reference = timbreswap_engine::clip::load_reference_clip(
        &root.join("assets/examples/ref-trumpet.wav"),
        &StftConfig::default(),
    )
    .unwrap();
    let z = net.clip_timbre(&reference.samples);
    let voice =
        timbreswap_engine::clip::decode_file(&root.join("assets/examples/input-voice.wav"), 60.0)
            .unwrap();
    let input = resample_all(&voice.mono(), voice.sample_rate, rate as u32);

    let stats = Arc::new(EngineStats::default());
    let (mut engine, mut control) = Engine::new(
        EngineSettings {
            host_rate: rate,
            max_block: block,
            channels: 2,
            mode: if inline {
                ProcessingMode::Offline
            } else {
                ProcessingMode::Realtime
            },
            stft: StftConfig::default(),
            worker_priority,
            latency_mode,
            latency_block: covered.then_some(burst * block),
        },
        stats.clone(),
        (!none).then_some(&reference.descriptor),
        None,
    )
    .unwrap();
    if !none {
        control
            .set_model(Some(net.clone()), Some(&z), None)
            .unwrap();
        control.set_latent(Slot::A, Some(&z)).unwrap();
    }
    if exemplar {
        let bank = timbreswap_engine::exemplar::ExemplarBank::new(
            &StftConfig::default(),
            &reference.samples,
        )
        .expect("the trumpet clip sounds");
        control.set_exemplar(Slot::A, Some(Arc::new(bank))).unwrap();
    }

    let stop = Arc::new(AtomicBool::new(false));
    let spinner = busy.then(|| {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut x = 0u64;
            while !stop.load(Ordering::Relaxed) {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                std::hint::black_box(x);
            }
        })
    });

    let (mix, gain, morph) = (
        vec![if mix0 { 0.0f32 } else { 1.0 }; block],
        vec![1.0f32; block],
        vec![0.0f32; block],
    );
    let params = BlockParams {
        mode: if neural {
            SwapMode::Neural
        } else if exemplar {
            SwapMode::Exemplar
        } else {
            SwapMode::Classic
        },
        phase,
        ..BlockParams::new(&mix, &gain, &morph)
    };
    let host_realtime = realtime_thread(10);
    let blocks = (seconds * rate / block as f64) as usize;
    let period = Duration::from_secs_f64(block as f64 / rate);
    let (mut left, mut right) = (vec![0.0f32; block], vec![0.0f32; block]);
    let mut times = Vec::with_capacity(blocks);
    let mut late_callbacks = 0usize;
    // The worker names itself once it runs.
    std::thread::sleep(Duration::from_millis(200));
    let cpu_start = process_cpu_seconds();
    let worker_start = worker_cpu_seconds();
    let start = Instant::now();
    let mut pos = 0;
    for i in 0..blocks {
        // The host calls back once per block period (or once per group of BURST blocks,
        // back to back).
        let due = start + period * (i - i % burst) as u32;
        let now = Instant::now();
        if now < due {
            std::thread::sleep(due - now);
        } else if now > due + period {
            late_callbacks += 1;
        }
        for (l, r) in left.iter_mut().zip(right.iter_mut()) {
            *l = input[pos];
            *r = input[pos];
            pos = (pos + 1) % input.len();
        }
        let t0 = Instant::now();
        engine.process(&mut [&mut left[..], &mut right[..]], &params);
        times.push(t0.elapsed());
    }
    let wall = start.elapsed();
    let cpu = process_cpu_seconds() - cpu_start;
    let worker_cpu = worker_cpu_seconds().zip(worker_start).map(|(b, a)| b - a);
    stop.store(true, Ordering::Relaxed);
    if let Some(s) = spinner {
        let _ = s.join();
    }
    let audio_thread: f64 = times.iter().map(Duration::as_secs_f64).sum();
    times.sort();
    let frames = stats.frames.load(Ordering::Relaxed);
    let dropouts = stats.dropouts();
    println!(
        "{} mode{}, {seconds} s at {rate} Hz in {block}-sample blocks, bursts of {burst} ({}), wall {:.1} s",
        what,
        if inline {
            " (inline)"
        } else if covered {
            " (latency built for a burst)"
        } else {
            ""
        },
        if busy {
            "other core busy"
        } else {
            "idle machine"
        },
        wall.as_secs_f64()
    );
    println!("latency {} samples", engine.latency_samples());
    println!(
        "host audio thread: {}",
        if host_realtime {
            "real-time (SCHED_FIFO 10)"
        } else {
            "normal"
        }
    );
    println!("worker priority: {}", stats.worker_scheduling().describe());
    println!(
        "frames {frames}, dropouts {dropouts}, late callbacks {late_callbacks}, worker load {:.1} %",
        stats.worker_load(StftConfig::default().hop as f64 / StftConfig::default().sample_rate as f64) * 100.0
    );
    println!(
        "audio-thread time per block: median {:.1} us, p99 {:.1} us, max {:.1} us (period {:.0} us)",
        times[times.len() / 2].as_secs_f64() * 1e6,
        times[times.len() * 99 / 100].as_secs_f64() * 1e6,
        times[times.len() - 1].as_secs_f64() * 1e6,
        period.as_secs_f64() * 1e6
    );
    if let Some(w) = worker_cpu {
        println!(
            "worker thread CPU (from /proc, 10 ms ticks): {:.2} % of one core",
            100.0 * w / wall.as_secs_f64()
        );
        // What the plugin itself costs: its worker and the time inside its process calls;
        // the rest of the process is this host's pacing (its sleeps and wake-ups).
        println!(
            "the plugin's threads (process calls + worker): {:.2} % of one core",
            100.0 * (audio_thread + w) / wall.as_secs_f64()
        );
    }
    if !busy {
        println!(
            "CPU of one core, whole process: {:.2} % (audio thread's process calls {:.2} %, the \
             rest, mostly the worker, {:.2} %)",
            100.0 * cpu / wall.as_secs_f64(),
            100.0 * audio_thread / wall.as_secs_f64(),
            100.0 * (cpu - audio_thread) / wall.as_secs_f64()
        );
    }
}

/// User plus system CPU time of the whole process so far, in seconds.
#[cfg(unix)]
fn process_cpu_seconds() -> f64 {
    // SAFETY: `getrusage` writes a `rusage` into the zeroed, valid struct it is given and
    // reads nothing else.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

#[cfg(not(unix))]
fn process_cpu_seconds() -> f64 {
    0.0
}

/// CPU time (user plus system) of the engine's worker thread so far, in seconds, from
/// `/proc/self/task/*/stat` (Linux; clock ticks of 10 ms); `None` elsewhere or if not found.
fn worker_cpu_seconds() -> Option<f64> {
    let tasks = std::fs::read_dir("/proc/self/task").ok()?;
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !comm.starts_with("timbreswap-work") {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
        // Fields after the parenthesised name: state is field 3, utime 14, stime 15.
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 =
            fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
        return Some(ticks / 100.0);
    }
    None
}
