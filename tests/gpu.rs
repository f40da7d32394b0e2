//! Training on a GPU (`--features wgpu`): the same separation as on the processor and the
//! same model file; without a graphics card, Debian's `mesa-vulkan-drivers` gives wgpu the
//! software adapter llvmpipe (what `.ci/run` installs). A build without the feature refuses
//! `--device gpu` clearly.

use std::path::Path;

use crate::util::{stderr, unmix};

/// `separate --model vae` of the paper's linear case (seed 1) on `device`, into `out`:
/// the report.
fn separate_on(data: &Path, device: &str, out: &Path, env: &[(&str, &str)]) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_unmix"));
    command.args([
        "separate",
        data.join("mixture.wav").to_str().unwrap(),
        "-n",
        "3",
        "--model",
        "vae",
        "--restarts",
        "1",
        "--device",
        device,
        "--truth",
        data.join("truth.wav").to_str().unwrap(),
        "--quiet",
        "--no-plots",
        "-o",
        out.to_str().unwrap(),
    ]);
    command.env("XDG_RUNTIME_DIR", std::env::temp_dir());
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("the unmix binary runs")
}

fn report(out: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap()
}

/// The PDGMM-VAE trained on the GPU separates the paper's linear case as well as on the
/// processor (mean |corr| within 0.01), the report names the adapter, and its model file
/// applies on the processor to the sources it wrote.
#[cfg(feature = "wgpu")]
#[test]
fn a_gpu_trains_the_same_separation_as_the_processor() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("linear");
    let o = unmix(&["synth", "linear", "--seed", "1", "-o", data.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (cpu, gpu) = (dir.path().join("cpu"), dir.path().join("gpu"));
    for (device, out) in [("cpu", &cpu), ("gpu", &gpu)] {
        let o = separate_on(&data, device, out, &[]);
        assert!(o.status.success(), "--device {device}: {}", stderr(&o));
    }
    let (cpu_report, gpu_report) = (report(&cpu), report(&gpu));
    let mean = |r: &serde_json::Value| r["score"]["mean_abs_corr"].as_f64().unwrap();
    eprintln!("mean |corr|: cpu {:.5}, gpu {:.5}", mean(&cpu_report), mean(&gpu_report));
    assert!(
        (mean(&cpu_report) - mean(&gpu_report)).abs() <= 0.01,
        "{} against {}",
        mean(&gpu_report),
        mean(&cpu_report)
    );
    assert!(mean(&gpu_report) > 0.99);
    assert_eq!(gpu_report["training_device"]["backend"], "wgpu");
    assert!(gpu_report["training_device"]["adapter"].as_str().is_some_and(|name| !name.is_empty()));
    assert_eq!(cpu_report["training_device"]["gpu"], false);
    // The model file does not say where it trained: it applies here as any other.
    let applied = dir.path().join("applied.wav");
    let o = unmix(&[
        "apply",
        gpu.join("model.unmix").to_str().unwrap(),
        data.join("mixture.wav").to_str().unwrap(),
        "-o",
        applied.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let read = crate::util::read;
    crate::util::assert_close_to(&read(&applied), &read(&gpu.join("sources.wav")), 1e-5);
}

/// `--device gpu` where there is none to train on: refused in one line that contains every
/// one of `says`, nothing written; then `--device auto`, which must train on the processor
/// (`training_device.gpu` false): its report. `env` is what the runs see.
fn refused_on_gpu_trained_on_auto(dir: &Path, env: &[(&str, &str)], says: &[&str]) -> serde_json::Value {
    let data = dir.join("linear");
    let o = unmix(&["synth", "linear", "--seed", "2", "--frames", "2000", "-o", data.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = dir.join("gpu");
    let o = separate_on(&data, "gpu", &out, env);
    assert!(!o.status.success());
    let message = stderr(&o);
    assert_eq!(message.trim().lines().count(), 1, "{message}");
    assert!(says.iter().all(|s| message.contains(s)), "{message}");
    assert!(!out.exists(), "nothing written");
    let out = dir.join("auto");
    let o = separate_on(&data, "auto", &out, env);
    assert!(o.status.success(), "{}", stderr(&o));
    let report = report(&out);
    assert_eq!(report["training_device"]["gpu"], false);
    report
}

/// With the `wgpu` feature but no adapter — every Vulkan driver and EGL vendor hidden from
/// the loader, as on a machine without a graphics stack — `--device gpu` is one line that
/// says so (nothing written) and `--device auto` trains on the processor.
#[cfg(feature = "wgpu")]
#[test]
fn with_no_adapter_gpu_is_refused_and_auto_falls_back() {
    let dir = tempfile::tempdir().unwrap();
    let nowhere = dir.path().join("none.json");
    let nowhere = nowhere.to_str().unwrap();
    let hidden =
        [("VK_DRIVER_FILES", nowhere), ("VK_ICD_FILENAMES", nowhere), ("__EGL_VENDOR_LIBRARY_FILENAMES", nowhere)];
    let report = refused_on_gpu_trained_on_auto(dir.path(), &hidden, &["no adapter", "--device auto"]);
    assert_eq!(report["training_device"]["adapter"], serde_json::Value::Null);
}

/// A build without the `wgpu` feature says how to get one for `--device gpu` (one line,
/// nothing written) and trains on the processor for `--device auto`.
#[cfg(not(feature = "wgpu"))]
#[test]
fn a_build_without_a_gpu_backend_refuses_gpu_and_falls_back_for_auto() {
    let dir = tempfile::tempdir().unwrap();
    let report = refused_on_gpu_trained_on_auto(dir.path(), &[], &["no GPU", "--features wgpu"]);
    assert_eq!(report["training_device"]["backend"], "flex");
}
