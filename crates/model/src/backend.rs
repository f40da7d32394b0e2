//! Choice of burn backend at run time: a CPU backend, or burn's wgpu backend on a GPU.

use burn::tensor::Device;

use crate::{Error, Result};

/// A burn backend compiled into this build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// burn's pure-Rust `flex` CPU backend.
    Flex,
    /// burn's `ndarray` CPU backend.
    Ndarray,
    /// burn's wgpu backend: the GPU wgpu finds (Vulkan, Metal or DirectX 12; with Mesa's
    /// software Vulkan, the processor). Built with the `wgpu` feature.
    Wgpu,
}

impl Backend {
    /// The default: `flex` when compiled in (it measured faster on this model), else ndarray.
    pub fn default_compiled() -> Result<Self> {
        if cfg!(feature = "flex") {
            Ok(Backend::Flex)
        } else if cfg!(feature = "ndarray") {
            Ok(Backend::Ndarray)
        } else {
            Err(Error::Backend("flex or ndarray".into()))
        }
    }

    /// Parses a name (`flex`, `ndarray`, `wgpu`).
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "flex" => Ok(Backend::Flex),
            "ndarray" => Ok(Backend::Ndarray),
            "wgpu" => Ok(Backend::Wgpu),
            other => Err(Error::Backend(other.into())),
        }
    }

    /// Name as used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Flex => "flex",
            Backend::Ndarray => "ndarray",
            Backend::Wgpu => "wgpu",
        }
    }

    /// Whether it trains on a GPU.
    pub fn is_gpu(self) -> bool {
        self == Backend::Wgpu
    }

    /// The plain (non-autodiff) device of this backend. For wgpu the adapter is acquired
    /// on the first call (once per process): no adapter is [`Error::Gpu`], not a panic at
    /// the first tensor.
    pub fn device(self) -> Result<Device> {
        match self {
            #[cfg(feature = "flex")]
            Backend::Flex => Ok(Device::flex()),
            #[cfg(feature = "ndarray")]
            #[allow(deprecated)] // deprecated upstream, offered because the design names it
            Backend::Ndarray => Ok(Device::ndarray()),
            #[cfg(feature = "wgpu")]
            Backend::Wgpu => gpu::device(),
            #[cfg(not(feature = "wgpu"))]
            Backend::Wgpu => Err(Error::Gpu(
                "this build has no GPU backend; build unmix with `--features wgpu` (burn's wgpu backend)".into(),
            )),
            #[allow(unreachable_patterns)]
            other => Err(Error::Backend(other.name().into())),
        }
    }

    /// The adapter this backend runs on, as it names itself (`llvmpipe (LLVM 15.0.6, 256
    /// bits)`, `NVIDIA GeForce RTX 4090`): `None` for the CPU backends or when there is
    /// no GPU.
    pub fn adapter(self) -> Option<String> {
        #[cfg(feature = "wgpu")]
        if self == Backend::Wgpu {
            return gpu::adapter();
        }
        None
    }
}

/// Whether a GPU is there for [`Backend::Wgpu`] (always `false` without the `wgpu`
/// feature). Acquires the adapter, once per process.
pub fn gpu_available() -> bool {
    cfg!(feature = "wgpu") && Backend::Wgpu.device().is_ok()
}

/// Whether tensors on `device` live on the host, where the model's fused CPU kernels read
/// them directly (for the others the composed tensor operations run instead).
pub(crate) fn on_host(device: &Device) -> bool {
    #[cfg(feature = "wgpu")]
    {
        use burn::backend::DispatchDevice;
        !matches!(device.as_dispatch().clone().inner(), DispatchDevice::Cube(_))
    }
    #[cfg(not(feature = "wgpu"))]
    {
        let _ = device;
        true
    }
}

#[cfg(feature = "wgpu")]
mod gpu {
    use std::sync::OnceLock;

    use burn::tensor::Device;

    use crate::{Error, Result};

    /// wgpu's device with its adapter's name, or why there is none: its runtime is set up
    /// once per process.
    fn acquired() -> &'static std::result::Result<(Device, String), String> {
        static DEVICE: OnceLock<std::result::Result<(Device, String), String>> = OnceLock::new();
        DEVICE.get_or_init(|| {
            let device = Device::wgpu_options().init().map_err(|e| {
                let text = e.to_string();
                // burn's own words name its device's Debug form; the user needs what to do.
                if text.contains("No adapter") || text.contains("no adapter") {
                    "wgpu found no adapter (a GPU with Vulkan, Metal, DirectX 12 or OpenGL, or Mesa's software \
                     Vulkan); --device auto trains on the processor when there is none"
                        .to_string()
                } else {
                    text
                }
            })?;
            let name = device.as_dispatch().identity().map_or_else(|| "unnamed adapter".into(), |id| id.name);
            Ok((device, name))
        })
    }

    pub(super) fn device() -> Result<Device> {
        acquired().as_ref().map(|(device, _)| device.clone()).map_err(|e| Error::Gpu(e.clone()))
    }

    pub(super) fn adapter() -> Option<String> {
        acquired().as_ref().ok().map(|(_, name)| name.clone())
    }
}
