//! The three-factor model with tiny configs: streaming equals whole-sequence output, the model
//! file round-trips bit-exactly and refuses malformed files, the loss falls on a few notes,
//! and a resumed run ends where an uninterrupted one does.

mod common;

use common::{max_abs, max_abs_diff};

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use timbreswap_training::dataset::render_dataset;
use timbreswap_training::model::file::{self, MapInstrument, ModelFileError, TimbreMap};
use timbreswap_training::model::layers::{CausalStack, StackShape};
use timbreswap_training::model::{Config, FeatureStats, ThreeFactor};
use timbreswap_training::rng::SplitMix64;
use timbreswap_training::train::{
    initial_model, train, trainable_vars, weights_of, AdversaryConfig, CrossLibraryConfig,
    TrainConfig, LOG_FILE, MODEL_FILE,
};

fn tiny_config() -> Config {
    Config {
        z_t: 6,
        z_v: 5,
        z_p: 4,
        hidden: 16,
        kernel: 3,
        dilations: vec![1, 2, 4],
        timbre_layers: 1,
        ..Config::default()
    }
}

fn random(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = SplitMix64::new(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.range(-2.0, 2.0) as f32).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// Streams `x` `(batch, frames, in)` through `step`, one frame at a time, and stacks the
/// outputs along frames.
fn stream(x: &Tensor, mut step: impl FnMut(&Tensor) -> Tensor) -> Tensor {
    let frames = x.dim(1).unwrap();
    let outs: Vec<Tensor> = (0..frames)
        .map(|t| {
            let frame = x.narrow(1, t, 1).unwrap().squeeze(1).unwrap();
            step(&frame).unsqueeze(1).unwrap()
        })
        .collect();
    Tensor::cat(&outs, 1).unwrap()
}

#[test]
fn every_causal_stack_streams_like_the_whole_sequence() {
    for (kernel, dilations) in [(2, vec![1, 2, 4, 8]), (3, vec![1, 3]), (1, vec![1, 1])] {
        let shape = StackShape {
            input: 7,
            hidden: 12,
            output: 5,
            kernel,
            dilations,
        };
        let varmap = VarMap::new();
        let stack = CausalStack::new(
            &shape,
            VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
        )
        .unwrap();
        let x = random(&[3, 37, 7], kernel as u64);
        let whole = stack.forward(&x).unwrap();
        let mut state = stack.state();
        let streamed = stream(&x, |f| stack.step(f, &mut state).unwrap());
        let err = max_abs_diff(&whole, &streamed);
        assert!(
            err <= 1e-5 * max_abs(&whole).max(1.0),
            "kernel {kernel}: streaming differs by {err}"
        );
        // Causality: changing a late frame leaves every earlier output unchanged.
        let late = x.narrow(1, 0, 30).unwrap().pad_with_zeros(1, 0, 7).unwrap();
        let out_late = stack.forward(&late).unwrap();
        assert_eq!(
            max_abs_diff(
                &whole.narrow(1, 0, 30).unwrap(),
                &out_late.narrow(1, 0, 30).unwrap()
            ),
            0.0
        );
    }
}

#[test]
fn the_model_streams_like_the_whole_sequence() {
    for variation in [true, false] {
        let cfg = Config {
            variation,
            ..tiny_config()
        };
        let (_, model) = initial_model(&cfg, &FeatureStats::identity(cfg.bins()), 5).unwrap();
        let frames = 23;
        let tv = random(&[2, frames, cfg.bins()], 11);
        let p = random(&[2, frames, cfg.bins()], 12);
        let weights =
            (Tensor::ones((2, frames), DType::F32, &Device::Cpu).unwrap() / frames as f64).unwrap();
        let z_t = model.encode_timbre(&tv, &p, &weights).unwrap().mean;
        let z_swap = random(&[2, cfg.z_t], 13);
        let local = model.encode_local(&tv, &p, &z_t).unwrap();
        let y = model
            .decode(
                &z_swap,
                local.variation.as_ref().map(|v| &v.mean),
                &local.pitch.mean,
            )
            .unwrap();
        let mut state = model.stream_state();
        let mut pitch = Vec::new();
        let mut outs = Vec::new();
        for t in 0..frames {
            let f = |x: &Tensor| x.narrow(1, t, 1).unwrap().squeeze(1).unwrap();
            let (post, out) = model
                .step(&f(&tv), &f(&p), &z_t, &z_swap, &mut state)
                .unwrap();
            assert_eq!(post.variation.is_some(), variation);
            pitch.push(post.pitch.mean.unsqueeze(1).unwrap());
            outs.push(out.unsqueeze(1).unwrap());
        }
        let pitch = Tensor::cat(&pitch, 1).unwrap();
        let outs = Tensor::cat(&outs, 1).unwrap();
        let tol = |t: &Tensor| 1e-5 * max_abs(t).max(1.0);
        assert!(max_abs_diff(&pitch, &local.pitch.mean) <= tol(&pitch));
        assert!(max_abs_diff(&outs, &y) <= tol(&y), "decoder output differs");
    }
}

fn tiny_map(cfg: &Config) -> TimbreMap {
    TimbreMap {
        instruments: vec![
            MapInstrument {
                program: 0,
                name: "Piano".into(),
                family: "piano".into(),
            },
            MapInstrument {
                program: 40,
                name: "Violin".into(),
                family: "strings".into(),
            },
        ],
        z_t: (0..2 * cfg.z_t).map(|i| i as f32 * 0.25 - 1.0).collect(),
        pca_mean: vec![0.5; cfg.z_t],
        pca_basis: (0..2 * cfg.z_t).map(|i| (i % 3) as f32 - 1.0).collect(),
    }
}

/// Asserts that every tensor of `expected` is in `got` with the same shape and the same bits;
/// `what` ends the message naming the tensor that is not.
fn assert_same_bits(expected: &HashMap<String, Tensor>, got: &HashMap<String, Tensor>, what: &str) {
    for (name, t) in expected {
        assert_eq!(t.dims(), got[name].dims(), "{name} {what}");
        let x = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let y = got[name].flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(
            x.iter().zip(&y).all(|(p, q)| p.to_bits() == q.to_bits()),
            "{name} {what}"
        );
    }
}

fn saved_tiny_model(dir: &Path) -> (std::path::PathBuf, HashMap<String, Tensor>, ThreeFactor) {
    let cfg = tiny_config();
    let (varmap, model) = initial_model(&cfg, &FeatureStats::identity(cfg.bins()), 9).unwrap();
    let weights = weights_of(&varmap);
    let path = dir.join("tiny.safetensors");
    file::save(
        &path,
        &cfg,
        &weights,
        &tiny_map(&cfg),
        &serde_json::json!({"note": "test"}),
    )
    .unwrap();
    (path, weights, model)
}

#[test]
fn export_and_load_round_trip_bit_exactly() {
    let dir = common::temp_dir("model-roundtrip");
    std::fs::create_dir_all(&dir).unwrap();
    let (path, weights, model) = saved_tiny_model(&dir);
    let loaded = file::load(&path).unwrap();
    assert_eq!(loaded.model.config(), model.config());
    assert_eq!(loaded.map, tiny_map(model.config()));
    assert_eq!(loaded.training["note"], "test");
    let raw = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    assert_same_bits(&weights, &raw, "changed in the round trip");
    // Saving the same model again writes the same bytes (so the same model id).
    let again = dir.join("tiny-again.safetensors");
    file::save(
        &again,
        model.config(),
        &weights,
        &tiny_map(model.config()),
        &serde_json::json!({"note": "test"}),
    )
    .unwrap();
    assert_eq!(
        std::fs::read(&path).unwrap(),
        std::fs::read(&again).unwrap()
    );
    // Same outputs, bit for bit.
    let cfg = model.config();
    let tv = random(&[1, 19, cfg.bins()], 1);
    let p = random(&[1, 19, cfg.bins()], 2);
    let w = (Tensor::ones((1, 19), DType::F32, &Device::Cpu).unwrap() / 19.0).unwrap();
    let run = |m: &ThreeFactor| {
        let z_t = m.encode_timbre(&tv, &p, &w).unwrap().mean;
        let l = m.encode_local(&tv, &p, &z_t).unwrap();
        m.decode(&z_t, l.variation.as_ref().map(|v| &v.mean), &l.pitch.mean)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    let (a, b) = (run(&model), run(&loaded.model));
    assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
}

/// One tensor of a safetensors file as stored: name, dtype, shape and raw bytes.
type RawTensor = (String, safetensors::Dtype, Vec<usize>, Vec<u8>);

/// Every tensor of the safetensors bytes `data` as stored, sorted by name.
fn raw_tensors(data: &[u8]) -> Vec<RawTensor> {
    let mut tensors: Vec<RawTensor> = safetensors::SafeTensors::deserialize(data)
        .unwrap()
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    tensors
}

/// `convert-model`: the copy stores every weight matrix as f16 (the nearest f16 to each
/// weight, by the engine's conversion, checked here against the F16 type of the `half`
/// crate candle uses) and everything else bit for bit; it loads in the engine and in the
/// training crate, with the same config, map and metadata.
#[test]
fn a_half_copy_rounds_the_matrices_and_keeps_the_rest() {
    let dir = common::temp_dir("model-half");
    std::fs::create_dir_all(&dir).unwrap();
    let (path, weights, model) = saved_tiny_model(&dir);
    let out = dir.join("tiny-f16.safetensors");
    let report = file::convert(&path, &out, file::Precision::F16).unwrap();
    let raw = raw_tensors(&std::fs::read(&out).unwrap())
        .into_iter()
        .map(|(n, dtype, _, bytes)| (n, (dtype, bytes)))
        .collect::<HashMap<_, _>>();
    let mut matrices = 0;
    for (name, t) in &weights {
        let x = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let (dtype, bytes) = &raw[name];
        if t.dims().len() == 2 && name.ends_with(".weight") {
            matrices += 1;
            assert_eq!(*dtype, safetensors::Dtype::F16, "{name}");
            for (v, b) in x.iter().zip(bytes.chunks_exact(2)) {
                let got = u16::from_le_bytes([b[0], b[1]]);
                assert_eq!(got, half::f16::from_f32(*v).to_bits(), "{name}: {v}");
            }
        } else {
            assert_eq!(*dtype, safetensors::Dtype::F32, "{name}");
            let want: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
            assert_eq!(bytes, &want, "{name}");
        }
    }
    assert_eq!(report.matrices, matrices);
    assert!(matrices > 5);
    assert!(report.worst_relative_change > 0.0 && report.worst_relative_change < 1e-3);
    assert!(report.bytes.1 < report.bytes.0);
    let loaded = file::load(&out).unwrap();
    assert_eq!(loaded.model.config(), model.config());
    assert_eq!(loaded.map, tiny_map(model.config()));
    assert_eq!(loaded.training["note"], "test");
    let engine = timbreswap_engine::model_file::load(&out).unwrap();
    assert!(engine.weights.iter().all(
        |(n, t)| t.half.is_some() == timbreswap_engine::model_file::ModelFile::is_matrix(n, t)
    ));
    // Converting again writes the same bytes (the header's keys are sorted).
    let again = dir.join("tiny-f16-again.safetensors");
    file::convert(&path, &again, file::Precision::F16).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&again).unwrap());
    // A file that is not a model is refused before anything is written.
    let junk = dir.join("junk.safetensors");
    std::fs::write(&junk, b"not a model").unwrap();
    let target = dir.join("never.safetensors");
    assert!(file::convert(&junk, &target, file::Precision::F16).is_err());
    assert!(!target.exists());
}

/// `convert-model --to int8`: every weight matrix becomes an I8 tensor and an f32 tensor of
/// row scales, computed here independently (largest magnitude over 127, values rounded to
/// the nearest step); everything else stays bit for bit; the copy loads in the engine (the
/// int8 rows kept) and in the training crate (the values they stand for), writes the same
/// bytes twice, and a copy back to f32 holds exactly those values. Damaged int8 files are
/// refused with the reason.
#[test]
fn an_int8_copy_quantises_each_row_and_keeps_the_rest() {
    use timbreswap_engine::model_file::{self as engine_file, ModelFile};
    let dir = common::temp_dir("model-int8");
    std::fs::create_dir_all(&dir).unwrap();
    let (path, weights, model) = saved_tiny_model(&dir);
    let out = dir.join("tiny-int8.safetensors");
    let report = file::convert(&path, &out, file::Precision::Int8).unwrap();
    let bytes = std::fs::read(&out).unwrap();
    let raw = raw_tensors(&bytes)
        .into_iter()
        .map(|(n, dtype, shape, data)| (n, (dtype, shape, data)))
        .collect::<HashMap<_, _>>();
    let mut matrices = 0;
    for (name, t) in &weights {
        let x = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let (dtype, shape, data) = &raw[name];
        if t.dims().len() == 2 && name.ends_with(".weight") {
            matrices += 1;
            assert_eq!(*dtype, safetensors::Dtype::I8, "{name}");
            let (scale_type, scale_shape, scale_bytes) = &raw[&format!("{name}_scales")];
            assert_eq!(
                (*scale_type, scale_shape),
                (safetensors::Dtype::F32, &vec![shape[0]])
            );
            let scales: Vec<f32> = scale_bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            for (r, row) in x.chunks_exact(shape[1]).enumerate() {
                let max = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                assert_eq!(scales[r], max / 127.0, "{name} row {r}");
                for (c, v) in row.iter().enumerate() {
                    let q = data[r * shape[1] + c] as i8;
                    assert_eq!(f32::from(q), (v / scales[r]).round(), "{name} [{r}, {c}]");
                }
            }
        } else {
            assert_eq!(*dtype, safetensors::Dtype::F32, "{name}");
            let want: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
            assert_eq!(data, &want, "{name}");
        }
    }
    assert_eq!(report.matrices, matrices);
    assert!(matrices > 5);
    // At most half a step of the row's scale, so at most 1/254 of the matrix's largest.
    assert!(report.worst_relative_change > 0.0 && report.worst_relative_change <= 0.5 / 127.0);
    assert!(report.bytes.1 < report.bytes.0);
    let engine = engine_file::load(&out).unwrap();
    assert_eq!(engine.precision(), file::Precision::Int8);
    assert!(engine
        .weights
        .iter()
        .all(|(n, t)| t.int8.is_some() == ModelFile::is_matrix(n, t)));
    let loaded = file::load(&out).unwrap();
    assert_eq!(loaded.model.config(), model.config());
    assert_eq!(loaded.map, tiny_map(model.config()));
    // The same bytes twice; back to f32 gives the values the rows stand for.
    let again = dir.join("tiny-int8-again.safetensors");
    file::convert(&path, &again, file::Precision::Int8).unwrap();
    assert_eq!(bytes, std::fs::read(&again).unwrap());
    let back = dir.join("tiny-back.safetensors");
    file::convert(&out, &back, file::Precision::F32).unwrap();
    let back = engine_file::load(&back).unwrap();
    for (name, t) in &engine.weights {
        assert_eq!(back.weights[name].data, t.data, "{name}");
        assert!(back.weights[name].int8.is_none());
    }

    // Damaged int8 files: the scales missing, of the wrong length, -128, an I8 bias.
    let rebuilt = |edit: &dyn Fn(&mut Vec<RawTensor>)| {
        let mut tensors = raw_tensors(&bytes);
        edit(&mut tensors);
        let views = tensors
            .iter()
            .map(|(n, d, s, b)| {
                (
                    n.clone(),
                    safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
                )
            })
            .collect::<Vec<_>>();
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let out = safetensors::serialize(views, header.metadata().clone()).unwrap();
        engine_file::parse(&out)
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    let first = |t: &Vec<RawTensor>, ty| t.iter().position(|x| x.1 == ty).unwrap();
    let err = rebuilt(&|t| {
        let i = t.iter().position(|x| x.0.ends_with("_scales")).unwrap();
        t.remove(i);
    });
    assert!(err.contains("_scales is missing"), "{err}");
    let err = rebuilt(&|t| {
        let i = t.iter().position(|x| x.0.ends_with("_scales")).unwrap();
        t[i].2[0] -= 1;
        let len = t[i].3.len() - 4;
        t[i].3.truncate(len);
    });
    assert!(err.contains("needs f32"), "{err}");
    let err = rebuilt(&|t| {
        let i = first(t, safetensors::Dtype::I8);
        t[i].3[0] = 0x80;
    });
    assert!(err.contains("-128"), "{err}");
    let err = rebuilt(&|t| {
        let i = t.iter().position(|x| x.0.ends_with(".bias")).unwrap();
        let n: usize = t[i].2.iter().product();
        t[i].1 = safetensors::Dtype::I8;
        t[i].3 = vec![1; n];
    });
    assert!(err.contains("only weight matrices"), "{err}");
}

/// `convert-model --to mixed`: the variation encoder's matrices (and their row scales) are
/// byte for byte what `--to int8` writes, every other tensor what `--to f16` writes; the engine
/// reads the copy as mixed, and reading the f32 file as mixed in memory gives the same values.
#[test]
fn a_mixed_copy_is_the_int8_variation_encoder_and_the_f16_rest() {
    use timbreswap_engine::model_file::{self as engine_file, MIXED_INT8_STACKS};
    let dir = common::temp_dir("model-mixed");
    std::fs::create_dir_all(&dir).unwrap();
    let (path, _, _) = saved_tiny_model(&dir);
    let copy = |precision, name: &str| {
        let out = dir.join(name);
        let report = file::convert(&path, &out, precision).unwrap();
        (std::fs::read(&out).unwrap(), report)
    };
    let (mixed, report) = copy(file::Precision::Mixed, "tiny-mixed.safetensors");
    let (int8, _) = copy(file::Precision::Int8, "tiny-int8.safetensors");
    let (half, _) = copy(file::Precision::F16, "tiny-f16.safetensors");
    let by_name = |bytes: &[u8]| -> HashMap<String, (safetensors::Dtype, Vec<u8>)> {
        raw_tensors(bytes)
            .into_iter()
            .map(|(n, dtype, _, data)| (n, (dtype, data)))
            .collect()
    };
    let (mixed, int8, half) = (by_name(&mixed), by_name(&int8), by_name(&half));
    let in_int8 = |name: &str| MIXED_INT8_STACKS.iter().any(|s| name.starts_with(s));
    let mut from_int8 = 0;
    for (name, tensor) in &mixed {
        let int8_matrix = in_int8(name) && int8[name].0 == safetensors::Dtype::I8;
        if int8_matrix || name.ends_with("_scales") {
            from_int8 += usize::from(int8_matrix);
            assert!(in_int8(name), "{name}");
            assert_eq!(tensor, &int8[name], "{name}");
        } else {
            assert_eq!(tensor, &half[name], "{name}");
        }
    }
    // The f16 copy's tensors plus one scales tensor per int8 matrix.
    assert!(mixed.len() == half.len() + from_int8 && from_int8 > 0);
    assert_eq!(report.narrowed, (report.matrices - from_int8, from_int8));
    let engine = engine_file::load(&dir.join("tiny-mixed.safetensors")).unwrap();
    assert_eq!(engine.precision(), file::Precision::Mixed);
    let in_memory = engine_file::load(&path)
        .unwrap()
        .with_precision(file::Precision::Mixed);
    assert_eq!(in_memory.precision(), file::Precision::Mixed);
    for (name, t) in &engine.weights {
        assert_eq!(in_memory.weights[name].data, t.data, "{name}");
        assert_eq!(in_memory.weights[name].half, t.half, "{name}");
        assert_eq!(in_memory.weights[name].int8, t.int8, "{name}");
    }
}

#[test]
fn malformed_and_mismatched_model_files_are_refused() {
    let dir = common::temp_dir("model-bad");
    std::fs::create_dir_all(&dir).unwrap();
    let (path, weights, model) = saved_tiny_model(&dir);
    let good = std::fs::read(&path).unwrap();
    let cfg = model.config().clone();

    // Damaged bytes.
    assert!(matches!(
        file::load_bytes(&good[..good.len() / 2]),
        Err(ModelFileError::Safetensors(_))
    ));
    assert!(matches!(
        file::load_bytes(b"definitely not a model"),
        Err(ModelFileError::Safetensors(_))
    ));
    assert!(matches!(
        file::load(&dir.join("missing.safetensors")),
        Err(ModelFileError::Io { .. })
    ));

    // A plain safetensors file without our metadata.
    let plain = dir.join("plain.safetensors");
    candle_core::safetensors::save(&weights, &plain).unwrap();
    assert!(matches!(
        file::load(&plain),
        Err(ModelFileError::MissingMetadata(_))
    ));

    // Rewrites the file with one metadata value changed.
    let with_meta = |key: &str, value: &str| -> Vec<u8> {
        let (_, header) = safetensors::SafeTensors::read_metadata(&good).unwrap();
        let mut meta = header.metadata().clone().unwrap();
        meta.insert(key.to_string(), value.to_string());
        let st = safetensors::SafeTensors::deserialize(&good).unwrap();
        let tensors: Vec<(String, safetensors::tensor::TensorView)> = st.tensors();
        safetensors::serialize(tensors, Some(meta)).unwrap()
    };
    assert!(matches!(
        file::load_bytes(&with_meta("format", "someone-elses-model")),
        Err(ModelFileError::WrongFormat(_))
    ));
    assert!(matches!(
        file::load_bytes(&with_meta("format_version", "99")),
        Err(ModelFileError::Version { .. })
    ));
    assert!(matches!(
        file::load_bytes(&with_meta("config", "{not json")),
        Err(ModelFileError::Config(_))
    ));
    // A config whose shapes do not match the weights.
    let bigger = Config {
        hidden: cfg.hidden + 1,
        ..cfg.clone()
    };
    assert!(matches!(
        file::load_bytes(&with_meta(
            "config",
            &serde_json::to_string(&bigger).unwrap()
        )),
        Err(ModelFileError::Weights(_))
    ));
    // A two-factor config over three-factor weights: the variation weights are foreign.
    let two = Config {
        variation: false,
        ..cfg.clone()
    };
    assert!(matches!(
        file::load_bytes(&with_meta("config", &serde_json::to_string(&two).unwrap())),
        Err(ModelFileError::Weights(_))
    ));
    let invalid = Config {
        kernel: 0,
        ..cfg.clone()
    };
    assert!(matches!(
        file::load_bytes(&with_meta(
            "config",
            &serde_json::to_string(&invalid).unwrap()
        )),
        Err(ModelFileError::Config(_))
    ));

    // Missing and non-finite weights.
    let save_with = |edit: &dyn Fn(&mut HashMap<String, Tensor>)| -> Result<_, ModelFileError> {
        let mut w = weights.clone();
        edit(&mut w);
        let p = dir.join("edited.safetensors");
        file::save(&p, &cfg, &w, &tiny_map(&cfg), &serde_json::Value::Null)?;
        file::load(&p)
    };
    assert!(matches!(
        save_with(&|w| {
            w.remove("pitch.output.weight");
        }),
        Err(ModelFileError::Weights(_))
    ));
    assert!(matches!(
        save_with(&|w| {
            let t = &w["decoder.output.bias"];
            let mut v = t.to_vec1::<f32>().unwrap();
            v[0] = f32::NAN;
            let n = v.len();
            w.insert(
                "decoder.output.bias".into(),
                Tensor::from_vec(v, n, &Device::Cpu).unwrap(),
            );
        }),
        Err(ModelFileError::Weights(_))
    ));
    assert!(matches!(
        save_with(&|w| {
            w.insert(
                "features.scale".into(),
                Tensor::new(&[1.0f32, -1.0, 1.0], &Device::Cpu).unwrap(),
            );
        }),
        Err(ModelFileError::Weights(_))
    ));
    // The good file still loads.
    assert!(file::load_bytes(&good).is_ok());
}

/// A binary pitch code is exactly +-1, streams like the whole sequence, and passes gradients
/// straight through the sign to every weight of the pitch encoder (else it could not learn);
/// with a pitch ruler its first value is the classifier's expected note instead, within the
/// bins' range, and streams alike too.
#[test]
fn a_binary_pitch_code_is_signs_and_passes_gradients_through() {
    for pitch_bins in [0, 12] {
        let cfg = Config {
            pitch_binary: true,
            pitch_bins,
            ..tiny_config()
        };
        let bins = cfg.bins();
        let (varmap, model) = initial_model(&cfg, &FeatureStats::identity(bins), 3).unwrap();
        let p = random(&[2, 30, bins], 4);
        let code = model.encode_pitch(&p).unwrap().mean;
        let first = usize::from(cfg.pitch_ruler());
        let bits = code.narrow(2, first, cfg.z_p - first).unwrap();
        let values = bits.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(values.iter().all(|&v| v == 1.0 || v == -1.0));
        let positive = values.iter().filter(|&&v| v > 0.0).count();
        assert!(positive > 0 && positive < values.len(), "a constant code");
        if cfg.pitch_ruler() {
            // Semitones from middle C: bins 0..12 are MIDI 24..35, -36..-25.
            let ruler = code.narrow(2, 0, 1).unwrap().flatten_all().unwrap();
            let ruler = ruler.to_vec1::<f32>().unwrap();
            assert!(
                ruler.iter().all(|&r| (-36.0..=-25.0).contains(&r)),
                "{ruler:?}"
            );
        }
        // Streaming: the same code frame by frame (the pitch encoder reads only `p`).
        let z_t = random(&[2, cfg.z_t], 5);
        let tv_frame = Tensor::zeros((2, bins), DType::F32, &Device::Cpu).unwrap();
        let mut state = model.stream_state();
        let streamed = stream(&p, |frame| {
            let (local, _) = model
                .step(&tv_frame, frame, &z_t, &z_t, &mut state)
                .unwrap();
            local.pitch.mean
        });
        let part = |t: &Tensor, from: usize, n: usize| t.narrow(2, from, n).unwrap();
        let n_bits = cfg.z_p - first;
        assert_eq!(
            max_abs_diff(&part(&streamed, first, n_bits), &part(&code, first, n_bits)),
            0.0
        );
        if first > 0 {
            assert!(max_abs_diff(&part(&streamed, 0, 1), &part(&code, 0, 1)) < 1e-4);
        }
        // Gradients: a random linear function of the code.
        let r = random(code.dims(), 7);
        let loss = (&code * &r).unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        for (name, var) in trainable_vars(&varmap) {
            if name.starts_with("pitch.") {
                let g = grads.get(var.as_tensor()).expect(&name);
                assert!(max_abs(g) > 0.0, "{name} gets no gradient");
            }
        }
    }
}

/// Training `config` on `data` is refused before it starts, with a message naming `named`.
fn assert_refused(data: &Path, config: &TrainConfig, named: &str) {
    let err = train(
        data,
        &common::temp_dir("model-refused"),
        config,
        false,
        &|_, _, _, _| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains(named), "{err}");
}

/// The step records of a run's log.
fn step_records(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join(LOG_FILE))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["kind"] == "step")
        .collect()
}

/// `(step, reconstruction term)` of every step of a run.
fn step_losses(run: &Path) -> Vec<(u64, f64)> {
    step_records(run)
        .iter()
        .map(|v| (v["step"].as_u64().unwrap(), v["recon"].as_f64().unwrap()))
        .collect()
}

#[test]
fn training_lowers_the_loss_and_resumes_to_the_same_result() {
    let data = common::temp_dir("model-data");
    render_dataset(&common::tiny_dataset(data.clone()), &|_, _| {}).unwrap();

    // Uninterrupted: 8 epochs.
    let full = common::temp_dir("model-full");
    let summary = train(&data, &full, &common::tiny_run(8), false, &|_, _, _, _| {}).unwrap();
    assert_eq!(summary.epochs, 8);
    let losses = step_losses(&full);
    assert_eq!(losses.len() as u64, summary.steps);
    let n = 5.min(losses.len() / 3);
    let first: f64 = losses[..n].iter().map(|l| l.1).sum::<f64>() / n as f64;
    let last: f64 = losses[losses.len() - n..].iter().map(|l| l.1).sum::<f64>() / n as f64;
    assert!(
        last < 0.5 * first,
        "reconstruction term went from {first:.1} to {last:.1} over {} steps",
        losses.len()
    );
    assert!(full.join("loss.png").exists());
    let exported = file::load(&full.join(MODEL_FILE)).unwrap();
    assert_eq!(exported.map.instruments.len(), 2);

    // Interrupted after 3 epochs, then resumed to 8.
    let parts = common::temp_dir("model-resumed");
    train(&data, &parts, &common::tiny_run(3), false, &|_, _, _, _| {}).unwrap();
    let resumed = train(&data, &parts, &common::tiny_run(8), true, &|_, _, _, _| {}).unwrap();
    assert_eq!(resumed.steps, summary.steps);
    assert_eq!(common::epoch_records(&parts), common::epoch_records(&full));
    let a = candle_core::safetensors::load(full.join(MODEL_FILE), &Device::Cpu).unwrap();
    let b = candle_core::safetensors::load(parts.join(MODEL_FILE), &Device::Cpu).unwrap();
    assert_eq!(a.len(), b.len());
    assert_same_bits(&a, &b, "differs after resuming");
    // Resuming a finished run trains nothing, exports the same weights again and redraws the
    // loss plot from the log.
    std::fs::remove_file(parts.join("loss.png")).unwrap();
    let again = train(&data, &parts, &common::tiny_run(8), true, &|_, _, _, _| {}).unwrap();
    assert_eq!((again.steps, again.frames_per_s), (summary.steps, None));
    assert!(parts.join("loss.png").exists());
    let c = candle_core::safetensors::load(parts.join(MODEL_FILE), &Device::Cpu).unwrap();
    assert_same_bits(&b, &c, "differs after a resume that trains nothing");
    // Weighting a latent's KL term squeezes that latent: the same run with `z_v`'s and `z_p`'s
    // terms weighted 16x ends with far fewer nats in both (the measured figures of the last
    // epoch, where the annealed KL weight is 1 in both runs).
    let squeezed = common::temp_dir("model-squeezed");
    let weighted = TrainConfig {
        kl_variation_weight: 16.0,
        kl_pitch_weight: 16.0,
        ..common::tiny_run(8)
    };
    train(&data, &squeezed, &weighted, false, &|_, _, _, _| {}).unwrap();
    let last_of = |run: &Path, key: &str| {
        common::epoch_records(run).last().unwrap()[key]
            .as_f64()
            .unwrap()
    };
    for key in ["train_kl_v", "train_kl_p"] {
        let (plain, weighted) = (last_of(&full, key), last_of(&squeezed, key));
        println!("{key}: {plain:.3} nats with weight 1, {weighted:.3} with weight 16");
        assert!(
            weighted < 0.5 * plain,
            "{key}: {weighted:.3} nats with weight 16 against {plain:.3} with weight 1"
        );
    }

    // Each pitch term, weighted 10, ends far below what the plain run measures for it (every
    // run logs both; the plain run only measures them). The invariance term pulls the pitch
    // encoder's answer for the distorted crop towards its answer for the clean one; the
    // contrast term also keeps it far from its answer for the pitch-shifted crop.
    let weighted_terms = [
        (
            "model-invariant",
            "train_pitch_invariance",
            TrainConfig {
                pitch_invariance_weight: 10.0,
                ..common::tiny_run(8)
            },
        ),
        (
            "model-contrasted",
            "train_pitch_contrast",
            TrainConfig {
                pitch_contrast_weight: 10.0,
                ..common::tiny_run(8)
            },
        ),
    ];
    for (name, key, config) in weighted_terms {
        let run = common::temp_dir(name);
        train(&data, &run, &config, false, &|_, _, _, _| {}).unwrap();
        let (plain, weighted) = (last_of(&full, key), last_of(&run, key));
        println!("{key}: {plain:.4} with weight 0, {weighted:.4} with weight 10");
        assert!(
            weighted < 0.5 * plain,
            "{key}: {weighted:.4} with weight 10 against {plain:.4} with weight 0"
        );
    }
    // Refused before they start: the contrast term without the pitch shift (it needs both
    // perturbations), a pitch ruler without its classifier's weight, and that weight without a
    // ruler.
    let contrast_unshifted = TrainConfig {
        pitch_contrast_weight: 10.0,
        pitch_shift: false,
        ..common::tiny_run(8)
    };
    let mut ruler_unweighted = common::tiny_run(8);
    ruler_unweighted.model.pitch_bins = 48;
    let ruler_unasked = TrainConfig {
        pitch_classifier_weight: 10.0,
        ..common::tiny_run(8)
    };
    for (config, named) in [
        (contrast_unshifted, "pitch_contrast_weight"),
        (ruler_unweighted, "pitch_classifier_weight"),
        (ruler_unasked, "pitch_classifier_weight"),
    ] {
        assert_refused(&data, &config, named);
    }

    // A binary pitch code with a ruler trains too: no KL term for `z_p`, the reconstruction
    // falls as in the plain run, and the classifier's cross-entropy against pYIN's pitch falls
    // (measured: 3.59 -> 2.11 nats over the 8 epochs).
    let binary = common::temp_dir("model-binary");
    let mut config = TrainConfig {
        pitch_classifier_weight: 10.0,
        ..common::tiny_run(8)
    };
    config.model.pitch_binary = true;
    config.model.pitch_bins = 84;
    config.model.pitch_ruler_scale = 2.0;
    train(&data, &binary, &config, false, &|_, _, _, _| {}).unwrap();
    let records = common::epoch_records(&binary);
    assert!(records
        .iter()
        .all(|e| e["train_kl_p"].as_f64() == Some(0.0)));
    let losses = step_losses(&binary);
    let first: f64 = losses[..n].iter().map(|l| l.1).sum::<f64>() / n as f64;
    let last: f64 = losses[losses.len() - n..].iter().map(|l| l.1).sum::<f64>() / n as f64;
    assert!(last < 0.5 * first, "binary: {first:.1} -> {last:.1}");
    let ce = |e: &serde_json::Value| e["train_pitch_classifier"].as_f64().unwrap();
    let (first, last) = (ce(&records[0]), ce(records.last().unwrap()));
    println!("train_pitch_classifier: {first:.3} in epoch 0, {last:.3} in the last");
    assert!(last < first, "pitch classifier: {first:.3} -> {last:.3}");
    let exported = file::load(&binary.join(MODEL_FILE)).unwrap();
    let exported = exported.model.config();
    assert!(exported.pitch_binary && exported.pitch_ruler());

    // Another library's folder joins the training clips split for split: the same tiny set as
    // a second library doubles the steps of an epoch, and the timbre map still has one entry
    // per program (its notes taken from both folders).
    let one = common::temp_dir("model-one-library");
    train(&data, &one, &common::tiny_run(1), false, &|_, _, _, _| {}).unwrap();
    let doubled = TrainConfig {
        libraries: vec![data.clone()],
        ..common::tiny_run(1)
    };
    let two = common::temp_dir("model-two-libraries");
    train(&data, &two, &doubled, false, &|_, _, _, _| {}).unwrap();
    let (one, two) = (
        file::load(&one.join(MODEL_FILE)).unwrap(),
        file::load(&two.join(MODEL_FILE)).unwrap(),
    );
    let clips = |f: &file::ModelFile| f.training["train_clips"].as_u64().unwrap();
    assert_eq!(clips(&two), 2 * clips(&one));
    assert_eq!(two.map.instruments.len(), 2);

    // The cross-library term needs a second library, and says so.
    let lonely = TrainConfig {
        cross_library: CrossLibraryConfig {
            weight: 1.0,
            ..CrossLibraryConfig::default()
        },
        ..common::tiny_run(1)
    };
    assert_refused(&data, &lonely, "libraries");
    // With one, every step logs it and every epoch validates it: a mean negative
    // log-probability over the other crops, so between 0 and far above ln(crops).
    let crossed = common::temp_dir("model-cross-library");
    let config = TrainConfig {
        libraries: vec![data.clone()],
        ..lonely
    };
    train(&data, &crossed, &config, false, &|_, _, _, _| {}).unwrap();
    let steps = step_records(&crossed);
    assert!(!steps.is_empty());
    for s in &steps {
        let v = s["cross_library"].as_f64().unwrap();
        assert!(v.is_finite() && v > 0.0, "{v}");
    }
    let valid = common::epoch_records(&crossed)[0]["valid_cross_library"]
        .as_f64()
        .unwrap();
    assert!(valid.is_finite() && valid > 0.0, "{valid}");

    // The instrument classifier on `z_v`: every step logs its cross-entropy (0 < CE; the tiny
    // set's two programs), the classifier travels in the checkpoint so a run interrupted and
    // resumed ends bit for bit where the uninterrupted one does, and the exported model holds
    // no classifier weight. A two-factor model has no `z_v` for it, and is refused.
    let adversarial = TrainConfig {
        adversary: AdversaryConfig {
            weight: 1.0,
            hidden: 8,
            classifier_steps: 2,
            ..AdversaryConfig::default()
        },
        ..common::tiny_run(3)
    };
    let whole = common::temp_dir("model-adversary");
    train(&data, &whole, &adversarial, false, &|_, _, _, _| {}).unwrap();
    let ces: Vec<f64> = step_records(&whole)
        .iter()
        .map(|s| s["adversary"].as_f64().unwrap())
        .collect();
    assert!(
        !ces.is_empty() && ces.iter().all(|v| v.is_finite() && *v > 0.0),
        "{ces:?}"
    );
    let halves = common::temp_dir("model-adversary-resumed");
    let first_epoch = TrainConfig {
        epochs: 1,
        ..adversarial.clone()
    };
    train(&data, &halves, &first_epoch, false, &|_, _, _, _| {}).unwrap();
    train(&data, &halves, &adversarial, true, &|_, _, _, _| {}).unwrap();
    assert_eq!(
        common::epoch_records(&halves),
        common::epoch_records(&whole)
    );
    let a = candle_core::safetensors::load(whole.join(MODEL_FILE), &Device::Cpu).unwrap();
    let b = candle_core::safetensors::load(halves.join(MODEL_FILE), &Device::Cpu).unwrap();
    assert_same_bits(&a, &b, "the adversarial run differs after resuming");
    assert!(a.keys().all(|k| !k.starts_with("adversary")));
    let mut two_factor = adversarial.clone();
    two_factor.model.variation = false;
    assert_refused(&data, &two_factor, "adversary");

    // A resume with another config is refused.
    let mut other = common::tiny_run(8);
    other.learning_rate *= 2.0;
    assert!(train(&data, &parts, &other, true, &|_, _, _, _| {}).is_err());
}

/// `cargo xtask default-model` retrains the shipped model from the committed config: that
/// config must be the one the shipped file records as trained with.
#[test]
fn the_committed_training_config_is_the_shipped_models() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let committed: TrainConfig = serde_json::from_str(
        &std::fs::read_to_string(root.join("assets/models/default-train.json")).unwrap(),
    )
    .unwrap();
    let shipped = file::load(&root.join("assets/models/default.safetensors")).unwrap();
    let recorded: TrainConfig =
        serde_json::from_value(shipped.training["train_config"].clone()).unwrap();
    assert_eq!(committed, recorded);
    assert_eq!(
        shipped.training["epochs"].as_u64(),
        Some(committed.epochs as u64)
    );
}
