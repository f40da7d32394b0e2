//! `unmix._unmix`, the extension module of the Python package `unmix`: the separation job,
//! saved models and their monitoring scores on NumPy arrays, by the same code as the
//! command line. The package's Python half (`python/unmix`) checks and converts arrays,
//! shows progress and holds the scikit-learn estimator; this half does the work with the
//! interpreter released.
//!
//! Arrays arrive here as `float32`, C-contiguous, frames × channels: the Python half
//! converts any other layout or type (and passes such an array on as it is, uncopied).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use unmix::embedded::{self, SeparateOptions, Step};
use unmix_core::{BoxError, CancelToken, Recording, SCORE_CHANNELS, Sink};
use unmix_format::{AnyModel, ModelFile};
use unmix_infer::{ScoredSeparator, Separator};
use unmix_io::WavStreamWriter;
use unmix_monitor::{WindowMonitor, WindowSpec, score_columns};

/// How often a running job lets the interpreter see Ctrl-C (and how often progress is
/// shown, at most).
const POLL: Duration = Duration::from_millis(50);

/// Frames below which `Model.apply` does not start another thread.
const FRAMES_PER_THREAD: usize = 1 << 16;

/// Frames the scoring pass hands the window monitor at a time.
const SCORE_BLOCK_FRAMES: usize = 1 << 14;

/// An affine model's `(W, b)`: sources × channels, and one offset per source.
type AffineMap<'py> = (Bound<'py, PyArray2<f64>>, Bound<'py, PyArray1<f64>>);

/// A model saved by `unmix separate` (or by `Model.save`): the sources of any recording
/// with its channels, and the scores a monitor watches. Of the time domain, or a room's
/// (`domain stft`).
#[pyclass(name = "Model", module = "unmix", frozen)]
struct Model {
    model: AnyModel,
}

#[pymethods]
impl Model {
    /// Reads a model file (`model.unmix`).
    #[staticmethod]
    fn load(path: PathBuf) -> PyResult<Self> {
        Ok(Self { model: AnyModel::load(&path).map_err(|e| file_error(&path, &e))? })
    }

    /// A model from the bytes of a model file (what `to_bytes` and pickling give).
    #[staticmethod]
    fn from_bytes(bytes: &[u8]) -> PyResult<Self> {
        Ok(Self { model: AnyModel::from_bytes(bytes).map_err(|e| PyValueError::new_err(e.to_string()))? })
    }

    /// Writes the model file, all of it or nothing (a temporary file, then renamed).
    fn save(&self, path: PathBuf) -> PyResult<()> {
        let saved = match &self.model {
            AnyModel::Time(file) => file.save(&path),
            AnyModel::Room(room) => room.save(&path),
        };
        saved.map_err(|e| file_error(&path, &e))
    }

    /// The bytes of the model file.
    fn to_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let bytes = match &self.model {
            AnyModel::Time(file) => file.to_bytes(),
            AnyModel::Room(room) => room.to_bytes(),
        };
        let bytes = bytes.map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// The sources of `x` (frames × channels): frames × sources, `float32`. A room's model
    /// runs its filters frame by frame as `unmix apply` does (`x` at the model's sample
    /// rate), each source its image at the first channel.
    fn apply<'py>(&self, py: Python<'py>, x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let x = as_frames(x)?;
        let (m, n, rate) = self.dims();
        let (frames, samples) = frames_of(&x, m)?;
        let sources = match &self.model {
            AnyModel::Time(file) => py.detach(|| apply_on_every_core(file, samples, frames)),
            AnyModel::Room(room) => py.detach(|| {
                let recording = Recording::from_interleaved(rate, m, samples.to_vec()).map_err(|e| e.to_string())?;
                let sources = embedded::apply_room(room, &recording).map_err(|e| e.to_string())?;
                Ok(sources.into_interleaved())
            }),
        };
        to_array(py, frames, n, sources.map_err(PyValueError::new_err)?)
    }

    /// The frames the model's decoder reconstructs from `sources` (frames × sources, as
    /// `apply` gives them): frames × channels, `float32`. The input back for the linear and
    /// post-nonlinear models (with more channels than sources, its projection on the
    /// sources' subspace); the decoder's mean for PDGMM-VAE.
    fn reconstruct<'py>(&self, py: Python<'py>, sources: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let file = self.time("a decoder")?;
        let sources = as_frames(sources)?;
        let n = file.header.sources;
        let (frames, values) = frames_of(&sources, n).map_err(|_| {
            PyValueError::new_err(format!("sources have {} columns, the model writes {n}", sources.shape()[1]))
        })?;
        let m = file.header.channels;
        let frames_back = py.detach(|| -> Result<Vec<f32>, String> {
            let mut separator = Separator::new(file);
            let mut out = vec![0.0f32; frames * m];
            separator.reconstruct(values, &mut out).map_err(|e| e.to_string())?;
            Ok(out)
        });
        to_array(py, frames, m, frames_back.map_err(PyValueError::new_err)?)
    }

    /// For a model whose sources are an affine map of the frames, `s = W x + b` (the
    /// linear model; a PDGMM-VAE without hidden layers): `(W, b)`, `W` sources × channels,
    /// `float64`. `None` for the others.
    #[getter]
    fn affine<'py>(&self, py: Python<'py>) -> PyResult<Option<AffineMap<'py>>> {
        let AnyModel::Time(file) = &self.model else { return Ok(None) };
        let Some((matrix, offset)) = unmix_infer::affine_map(file) else { return Ok(None) };
        let (n, m) = (file.header.sources, file.header.channels);
        let matrix = Array2::from_shape_vec((n, m), matrix).map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        Ok(Some((matrix.into_pyarray(py), PyArray1::from_vec(py, offset))))
    }

    /// Per-window monitoring scores of `x`, as `unmix apply --scores` writes them to
    /// scores.csv, one row per window of `window_s` seconds (`None`: the command line's
    /// 1 s) every `hop_s` (`None`: the window): a pandas DataFrame when pandas is
    /// installed, else a dict of column name → values.
    #[pyo3(signature = (x, window_s = None, hop_s = None))]
    fn scores<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        window_s: Option<f64>,
        hop_s: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let file = self.time("learned priors to score frames against")?;
        let x = as_frames(x)?;
        let (_, samples) = frames_of(&x, file.header.channels)?;
        let n = file.header.sources;
        let spec = embedded::score_windows(window_s, hop_s, file.header.sample_rate_hz)
            .map_err(|e| PyValueError::new_err(unmix::one_line(&e)))?;
        let rows = py.detach(|| window_scores(file, spec, samples)).map_err(PyValueError::new_err)?;
        let columns = score_columns(n);
        let windows = rows.len() / columns.len();
        let table = PyDict::new(py);
        for (c, name) in columns.iter().enumerate() {
            let values: Vec<f64> = (0..windows).map(|w| f64::from(rows[w * columns.len() + c])).collect();
            table.set_item(name, PyArray1::from_vec(py, values))?;
        }
        match py.import("pandas") {
            Ok(pandas) => pandas.getattr("DataFrame")?.call1((table,)),
            Err(_) => Ok(table.into_any()),
        }
    }

    /// Each source's learned prior, a Gaussian mixture of `K` components: `weights`,
    /// `means` and `variances` (sources × K), in the units of the posterior means (before
    /// `output_gains`).
    #[getter]
    fn priors<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let file = self.time("learned priors")?;
        let w = &file.weights;
        let (n, k) = (w.sources(), w.prior.components);
        let weights: Vec<f32> = (0..n).flat_map(|j| w.prior.weights(j)).collect();
        let variances: Vec<f32> = w.prior.log_vars.iter().map(|v| v.exp()).collect();
        let priors = PyDict::new(py);
        priors.set_item("weights", to_array(py, n, k, weights)?)?;
        priors.set_item("means", to_array(py, n, k, w.prior.means.clone())?)?;
        priors.set_item("variances", to_array(py, n, k, variances)?)?;
        priors.set_item("output_gains", PyArray1::from_vec(py, file.source_gains()))?;
        Ok(priors)
    }

    /// Channels the model reads.
    #[getter]
    fn n_channels(&self) -> usize {
        self.dims().0
    }

    /// Sources it writes.
    #[getter]
    fn n_sources(&self) -> usize {
        self.dims().1
    }

    /// Sample rate of the recording it was trained on, in hertz.
    #[getter]
    fn sample_rate(&self) -> u32 {
        self.dims().2
    }

    /// `"time"` for a model of the time domain, `"stft"` for a room's.
    #[getter]
    fn domain(&self) -> &'static str {
        match self.model {
            AnyModel::Time(_) => "time",
            AnyModel::Room(_) => "stft",
        }
    }

    /// The model's header as a dict: version, normalisation, training configuration and
    /// summary, score baseline.
    #[getter]
    fn header<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let text = match &self.model {
            AnyModel::Time(file) => serde_json::to_string(&file.header),
            AnyModel::Room(room) => serde_json::to_string(&room.header),
        };
        let text = text.map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        py.import("json")?.call_method1("loads", (text,))
    }

    fn __repr__(&self) -> String {
        let (m, n, rate) = self.dims();
        format!("Model(n_channels={m}, n_sources={n}, sample_rate={rate}, domain='{}')", self.domain())
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, (Bound<'py, PyBytes>,))> {
        let from_bytes = slf.get_type().getattr("from_bytes")?;
        Ok((from_bytes, (slf.get().to_bytes(slf.py())?,)))
    }
}

impl Model {
    /// Channels, sources and sample rate.
    fn dims(&self) -> (usize, usize, u32) {
        match &self.model {
            AnyModel::Time(file) => (file.header.channels, file.header.sources, file.header.sample_rate_hz),
            AnyModel::Room(room) => (room.header.channels, room.header.sources, room.header.sample_rate_hz),
        }
    }

    /// The model of the time domain, or an error saying that a room's model has no `what`.
    fn time(&self, what: &str) -> PyResult<&ModelFile> {
        match &self.model {
            AnyModel::Time(file) => Ok(file),
            AnyModel::Room(_) => Err(PyValueError::new_err(format!("a room's model (domain stft) has no {what}"))),
        }
    }
}

/// The sources of `frames` frames of `samples` under `file`: the frames cut into one run
/// per core (of at least [`FRAMES_PER_THREAD`]), each separated by a separator of its own.
/// Frames are separated independently, so the cut does not change a value.
fn apply_on_every_core(file: &ModelFile, samples: &[f32], frames: usize) -> Result<Vec<f32>, String> {
    let (m, n) = (file.header.channels, file.header.sources);
    let mut out = vec![0.0f32; frames * n];
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let threads = cores.min(frames / FRAMES_PER_THREAD).max(1);
    let run = frames.div_ceil(threads).max(1);
    let separator = Separator::new(file);
    std::thread::scope(|scope| {
        let workers: Vec<_> = samples
            .chunks(run * m)
            .zip(out.chunks_mut(run * n))
            .map(|(input, output)| {
                let mut separator = separator.clone();
                scope.spawn(move || separator.process(input, output).map_err(|e| e.to_string()))
            })
            .collect();
        workers.into_iter().try_for_each(|w| w.join().map_err(|_| "a separating thread panicked".to_string())?)
    })?;
    Ok(out)
}

/// The monitoring rows of `samples` under `file`, as `unmix apply --scores` computes them.
fn window_scores(file: &ModelFile, spec: WindowSpec, samples: &[f32]) -> Result<Vec<f32>, String> {
    let (m, n) = (file.header.channels, file.header.sources);
    let rows = Arc::new(Mutex::new(Vec::new()));
    let sink = Box::new(Collect(Arc::clone(&rows)));
    let mut monitor =
        WindowMonitor::new(n, spec, SCORE_BLOCK_FRAMES, Box::new(Discard), sink).map_err(|e| e.to_string())?;
    let mut separator = ScoredSeparator::new(file);
    let mut scored = vec![0.0f32; SCORE_BLOCK_FRAMES * (n + SCORE_CHANNELS)];
    for block in samples.chunks(SCORE_BLOCK_FRAMES * m) {
        let out = &mut scored[..block.len() / m * (n + SCORE_CHANNELS)];
        separator.process(block, out).map_err(|e| e.to_string())?;
        monitor.write(out).map_err(|e| e.to_string())?;
    }
    Box::new(monitor).finish().map_err(|e| e.to_string())?;
    Ok(std::mem::take(&mut *rows.lock().unwrap_or_else(PoisonError::into_inner)))
}

/// A sink that keeps what it is given.
struct Collect(Arc<Mutex<Vec<f32>>>);

impl Sink for Collect {
    fn write(&mut self, samples: &[f32]) -> Result<(), BoxError> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).extend_from_slice(samples);
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<(), BoxError> {
        Ok(())
    }
}

/// A sink that drops what it is given.
struct Discard;

impl Sink for Discard {
    fn write(&mut self, _: &[f32]) -> Result<(), BoxError> {
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<(), BoxError> {
        Ok(())
    }
}

/// `x` as a C-ordered `float32` frames × channels array, by the package's `as_frames`
/// (which hands such an array on as it is, and names what else is wrong).
fn as_frames<'py>(x: &Bound<'py, PyAny>) -> PyResult<PyReadonlyArray2<'py, f32>> {
    x.py().import("unmix")?.getattr("as_frames")?.call1((x,))?.extract()
}

/// The frame count and the samples of a frames × channels array of `channels` columns.
fn frames_of<'a>(x: &'a PyReadonlyArray2<'_, f32>, channels: usize) -> PyResult<(usize, &'a [f32])> {
    let [frames, columns] = [x.shape()[0], x.shape()[1]];
    if columns != channels {
        let e = format!("the array has {columns} channels (columns), the model reads {channels}");
        return Err(PyValueError::new_err(e));
    }
    let samples = x.as_slice().map_err(|_| PyValueError::new_err("the array is not C-contiguous"))?;
    Ok((frames, samples))
}

/// A frames × width array that takes over `values`.
fn to_array(py: Python<'_>, frames: usize, width: usize, values: Vec<f32>) -> PyResult<Bound<'_, PyArray2<f32>>> {
    let array = Array2::from_shape_vec((frames, width), values).map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
    Ok(array.into_pyarray(py))
}

/// A model file's error: `OSError` when the file could not be read or written, else
/// `ValueError` (not a model, corrupt, from a newer unmix). The message names the file once.
fn file_error(path: &std::path::Path, error: &unmix_format::Error) -> PyErr {
    let (text, name) = (error.to_string(), path.display().to_string());
    let message = if text.starts_with(&name) { text } else { format!("{name}: {text}") };
    match error {
        unmix_format::Error::Io { .. } | unmix_format::Error::Output(_) => PyOSError::new_err(message),
        _ => PyValueError::new_err(message),
    }
}

/// An option of `unmix separate` as Python receives it: `(name, default, kind, choices,
/// list, help)`, the kind `switch`, `integer`, `real` or `text`.
type OptionRow = (String, Option<String>, &'static str, Vec<String>, bool, String);

/// The options of `unmix separate` a separation in memory takes, in the order of
/// `unmix separate --help`.
#[pyfunction]
fn separate_options() -> Vec<OptionRow> {
    embedded::separate_options()
        .into_iter()
        .map(|o| (o.name, o.default, o.kind.name(), o.choices, o.list, o.help))
        .collect()
}

/// What `separate` hands Python: the sources, the model, report.json's fields as JSON
/// text, and the warnings.
type SeparateOutput<'py> = (Bound<'py, PyArray2<f32>>, Model, String, Vec<String>);

/// Separates `x` (frames × channels, `float32`, C order) into `n_sources` sources (a count
/// or `"auto"`) as `unmix separate` does; `options` are `(name, value)` pairs as the
/// command line writes them. Returns the sources, the model, report.json's fields as JSON
/// text, and the warnings. `progress(phase, new_phase, done, total, message)` is called
/// at most every 50 ms. Ctrl-C stops the training at its next epoch and raises
/// `KeyboardInterrupt`.
#[pyfunction]
#[pyo3(signature = (x, n_sources, sample_rate, options, name, progress = None))]
fn separate<'py>(
    py: Python<'py>,
    x: PyReadonlyArray2<'py, f32>,
    n_sources: String,
    sample_rate: u32,
    options: Vec<(String, String)>,
    name: String,
    progress: Option<Py<PyAny>>,
) -> PyResult<SeparateOutput<'py>> {
    let options = SeparateOptions::parse(&n_sources, &options).map_err(|e| PyValueError::new_err(e.to_string()))?;
    let channels = x.shape()[1];
    let samples = x.as_slice().map_err(|_| PyValueError::new_err("the array is not C-contiguous"))?;
    if sample_rate == 0 {
        return Err(PyValueError::new_err("sample_rate must be a positive number of hertz"));
    }
    let cancel = CancelToken::new();
    // The progress callback's own error (a broken tqdm, say) ends the fit and is raised.
    let callback_error: Mutex<Option<PyErr>> = Mutex::new(None);
    let job = || {
        let recording = Recording::from_interleaved(sample_rate, channels, samples.to_vec())
            .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        let mut shown = Instant::now().checked_sub(POLL).unwrap_or_else(Instant::now);
        let mut on_step = |step: Step| {
            let Some(callback) = &progress else { return };
            // Every phase's start and end are shown; the steps between, every POLL.
            if !(step.new_phase || step.done >= step.total || shown.elapsed() >= POLL) {
                return;
            }
            shown = Instant::now();
            let outcome = Python::attach(|py| {
                callback.call1(py, (step.phase, step.new_phase, step.done, step.total, step.message)).map(drop)
            });
            if let Err(e) = outcome {
                callback_error.lock().unwrap_or_else(PoisonError::into_inner).get_or_insert(e);
                cancel.cancel();
            }
        };
        let separation = embedded::separate(&name, &recording, &options, &cancel, &mut on_step)?;
        let report = serde_json::to_string(&separation.report)?;
        anyhow::Ok((separation.sources, separation.model, report, separation.warnings))
    };
    let outcome = run_interruptibly(py, &cancel, job)?;
    if let Some(e) = callback_error.into_inner().unwrap_or_else(PoisonError::into_inner) {
        return Err(e);
    }
    let (sources, model, report, warnings) = outcome.map_err(|e| {
        if e.downcast_ref::<embedded::Interrupted>().is_some() {
            pyo3::exceptions::PyKeyboardInterrupt::new_err(e.to_string())
        } else {
            PyValueError::new_err(unmix::one_line(&e))
        }
    })?;
    let (frames, n) = (sources.frames(), sources.channels());
    let array = to_array(py, frames, n, sources.into_interleaved())?;
    Ok((array, Model { model }, report, warnings))
}

/// Runs `job` on a thread of its own with the interpreter released, looking for Ctrl-C
/// every [`POLL`] on this thread (signals reach Python's main thread only): a signal
/// cancels `cancel`, waits for the job to stop, and is raised.
fn run_interruptibly<T: Send>(py: Python<'_>, cancel: &CancelToken, job: impl FnOnce() -> T + Send) -> PyResult<T> {
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("unmix-separate".into())
            .spawn_scoped(scope, job)
            .map_err(|e| PyRuntimeError::new_err(format!("cannot start the separation's thread: {e}")))?;
        let mut interrupted = None;
        while !worker.is_finished() {
            py.detach(|| std::thread::sleep(POLL));
            if interrupted.is_none()
                && let Err(signal) = py.check_signals()
            {
                cancel.cancel();
                interrupted = Some(signal);
            }
        }
        let result = py.detach(|| worker.join());
        match (interrupted, result) {
            (Some(signal), _) => Err(signal),
            (None, Ok(value)) => Ok(value),
            (None, Err(_)) => Err(PyRuntimeError::new_err("the separation's thread panicked")),
        }
    })
}

/// Identifies `n_modes` modes of `x` (frames × sensors, `float32`, C order) as `unmix modes`
/// does: returns every mode's coordinate (frames × modes) and modes.json's fields as JSON
/// text. `reference` is a modes.json or a synth meta.json to compare with, `truth` the true
/// coordinates to score against.
#[pyfunction]
#[pyo3(signature = (x, n_modes, sample_rate, blocks, reference, truth, name))]
#[allow(clippy::too_many_arguments)]
fn modes<'py>(
    py: Python<'py>,
    x: PyReadonlyArray2<'py, f32>,
    n_modes: usize,
    sample_rate: u32,
    blocks: usize,
    reference: Option<PathBuf>,
    truth: Option<PyReadonlyArray2<'py, f32>>,
    name: String,
) -> PyResult<(Bound<'py, PyArray2<f32>>, String)> {
    let recording = recording_of(&x, sample_rate)?;
    let truth = truth.map(|t| recording_of(&t, sample_rate)).transpose()?;
    let run = py.detach(|| -> anyhow::Result<_> {
        let run = embedded::modes(&name, &recording, n_modes, blocks, reference.as_deref(), truth)?;
        Ok((serde_json::to_string(&run.report)?, run.analysis.coordinates))
    });
    let (report, coordinates) = run.map_err(|e| {
        // A reference file that cannot be read is the file system's error; the rest is
        // the data's.
        let message = unmix::one_line(&e);
        if e.chain().any(|cause| cause.is::<std::io::Error>()) {
            PyOSError::new_err(message)
        } else {
            PyValueError::new_err(message)
        }
    })?;
    let (frames, n) = (coordinates.frames(), coordinates.channels());
    Ok((to_array(py, frames, n, coordinates.into_interleaved())?, report))
}

/// A structure's health monitor, as `unmix monitor` runs one: a modal baseline fitted on a
/// healthy head of the sensors' record, then every window assessed against it — its modes,
/// a damage index the environment does not move, and an alarm above the control limit.
#[pyclass(name = "Monitor", module = "unmix", frozen)]
struct Monitor {
    monitor: embedded::Monitor,
}

#[pymethods]
impl Monitor {
    /// Fits the baseline on the first `baseline` of `head` (frames × sensors; all of it
    /// when `baseline` is `None`). Durations are seconds or text as the command line takes
    /// them (`600`, `"600s"`, `"10min"`); `None` leaves an option at the command line's
    /// default (`window` 60 s, `hop` the window, `modes` one per channel,
    /// `environment_factors` 1, `false_alarm_rate` 0.01).
    #[staticmethod]
    #[pyo3(signature = (head, sample_rate, *, baseline = None, modes = None, window = None, hop = None,
        environment_factors = None, false_alarm_rate = None, name = "x".to_string()))]
    #[allow(clippy::too_many_arguments)]
    fn fit(
        py: Python<'_>,
        head: &Bound<'_, PyAny>,
        sample_rate: u32,
        baseline: Option<Bound<'_, PyAny>>,
        modes: Option<Bound<'_, PyAny>>,
        window: Option<Bound<'_, PyAny>>,
        hop: Option<Bound<'_, PyAny>>,
        environment_factors: Option<Bound<'_, PyAny>>,
        false_alarm_rate: Option<Bound<'_, PyAny>>,
        name: String,
    ) -> PyResult<Self> {
        let head = as_frames(head)?;
        let recording = recording_of(&head, sample_rate)?;
        let given = [
            ("baseline", baseline),
            ("modes", modes),
            ("window", window),
            ("hop", hop),
            ("environment_factors", environment_factors),
            ("false_alarm_rate", false_alarm_rate),
        ];
        let mut options = Vec::new();
        for (option, value) in given {
            if let Some(value) = value {
                if value.is_instance_of::<pyo3::types::PyBool>() {
                    return Err(PyValueError::new_err(format!(
                        "{option}: not a switch; {value} is not one of its values"
                    )));
                }
                options.push((option.to_string(), value.str()?.to_string()));
            }
        }
        let monitor = py.detach(|| embedded::Monitor::fit(&name, &recording, &options));
        Ok(Self { monitor: monitor.map_err(|e| PyValueError::new_err(unmix::one_line(&e)))? })
    }

    /// Assesses one window of `window_frames` frames that starts `t_start` seconds into
    /// the record: `unmix monitor`'s JSON line for it, as a dict.
    #[pyo3(signature = (window, t_start = 0.0))]
    fn assess<'py>(&self, py: Python<'py>, window: &Bound<'py, PyAny>, t_start: f64) -> PyResult<Bound<'py, PyAny>> {
        let window = as_frames(window)?;
        let channels = self.monitor.plan.channels;
        let (_, samples) = frames_of(&window, channels).map_err(|_| {
            PyValueError::new_err(format!(
                "the window has {} channels (columns), the monitor's baseline {channels}",
                window.shape()[1]
            ))
        })?;
        let line = py.detach(|| self.monitor.assess(samples, t_start));
        json_value(py, &line.map_err(|e| PyValueError::new_err(unmix::one_line(&e)))?)
    }

    /// The baseline: `unmix monitor`'s first JSON line (its modes, windows, control limit).
    #[getter]
    fn baseline<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_value(py, &self.monitor.baseline_line)
    }

    /// Frames of the baseline.
    #[getter]
    fn baseline_frames(&self) -> usize {
        self.monitor.plan.baseline_frames
    }

    /// Frames of a window.
    #[getter]
    fn window_frames(&self) -> usize {
        self.monitor.plan.window
    }

    /// Frames from one window's start to the next's.
    #[getter]
    fn hop_frames(&self) -> usize {
        self.monitor.plan.hop
    }

    /// The damage index above which a window alarms.
    #[getter]
    fn limit(&self) -> f64 {
        self.monitor.baseline.limit
    }

    /// Modes followed.
    #[getter]
    fn n_modes(&self) -> usize {
        self.monitor.plan.modes
    }

    /// Channels (sensors) of the record.
    #[getter]
    fn n_channels(&self) -> usize {
        self.monitor.plan.channels
    }

    /// Sample rate of the record, in hertz.
    #[getter]
    fn sample_rate(&self) -> u32 {
        self.monitor.baseline.sample_rate_hz
    }

    fn __repr__(&self) -> String {
        let plan = &self.monitor.plan;
        format!(
            "Monitor(n_channels={}, n_modes={}, sample_rate={}, window_frames={}, hop_frames={}, limit={:.3})",
            plan.channels,
            plan.modes,
            self.monitor.baseline.sample_rate_hz,
            plan.window,
            plan.hop,
            self.monitor.baseline.limit
        )
    }
}

/// A JSON value as the Python value `json.loads` makes of it.
fn json_value<'py>(py: Python<'py>, value: &serde_json::Value) -> PyResult<Bound<'py, PyAny>> {
    py.import("json")?.call_method1("loads", (value.to_string(),))
}

/// A frames × channels array as a recording at `sample_rate` hertz (its samples copied).
fn recording_of(x: &PyReadonlyArray2<'_, f32>, sample_rate: u32) -> PyResult<Recording> {
    let samples = x.as_slice().map_err(|_| PyValueError::new_err("the array is not C-contiguous"))?;
    Recording::from_interleaved(sample_rate, x.shape()[1], samples.to_vec())
        .map_err(|e| PyValueError::new_err(e.to_string()))
}

/// Reads a WAV (any of the formats unmix reads) or CSV file as the command line does:
/// frames × channels `float32` and the sample rate (a CSV's from its time stamps, else
/// `csv_rate`, else 1 Hz).
#[pyfunction]
#[pyo3(signature = (path, csv_rate = None))]
fn read<'py>(py: Python<'py>, path: PathBuf, csv_rate: Option<u32>) -> PyResult<(Bound<'py, PyArray2<f32>>, u32)> {
    let recording = py.detach(|| unmix_io::read_recording(&path, csv_rate.unwrap_or(1))).map_err(|e| {
        // The file system's failures are OSError; a file that ends early or holds what is
        // not a recording is the data's fault, ValueError.
        let system = matches!(&e, unmix_io::Error::Io { source, .. }
            if !matches!(source.kind(), std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidData));
        let message = unmix::one_line(&anyhow::Error::new(e).context(path.display().to_string()));
        if system { PyOSError::new_err(message) } else { PyValueError::new_err(message) }
    })?;
    let (frames, channels, rate) = (recording.frames(), recording.channels(), recording.sample_rate_hz());
    Ok((to_array(py, frames, channels, recording.into_interleaved())?, rate))
}

/// Writes frames × channels as a 32-bit float WAV, all of it or nothing.
#[pyfunction]
fn write_wav(py: Python<'_>, path: PathBuf, x: &Bound<'_, PyAny>, sample_rate: u32) -> PyResult<()> {
    let x = as_frames(x)?;
    let channels = x.shape()[1];
    let samples = x.as_slice().map_err(|_| PyValueError::new_err("the array is not C-contiguous"))?;
    if channels == 0 || sample_rate == 0 {
        let e = format!("{}: a WAV needs at least one channel and a positive sample rate", path.display());
        return Err(PyValueError::new_err(e));
    }
    // Written from the array where it lies, a block at a time.
    let written = py.detach(|| {
        let mut writer = WavStreamWriter::create(&path, channels, sample_rate)?;
        for block in samples.chunks(channels * SCORE_BLOCK_FRAMES) {
            writer.write(block)?;
        }
        writer.finish()
    });
    written.map_err(|e| PyOSError::new_err(unmix::one_line(&anyhow::Error::new(e).context(path.display().to_string()))))
}

/// The extension module.
#[pymodule]
fn _unmix(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<Model>()?;
    module.add_class::<Monitor>()?;
    module.add_function(wrap_pyfunction!(modes, module)?)?;
    module.add_function(wrap_pyfunction!(separate, module)?)?;
    module.add_function(wrap_pyfunction!(separate_options, module)?)?;
    module.add_function(wrap_pyfunction!(read, module)?)?;
    module.add_function(wrap_pyfunction!(write_wav, module)?)?;
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    module.add("MIN_TRAIN_FRAMES", unmix_separate::MIN_TRAIN_FRAMES)?;
    Ok(())
}
