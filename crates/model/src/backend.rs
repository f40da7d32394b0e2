//! Choice of burn CPU backend at run time.

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

    /// Parses a name (`flex`, `ndarray`).
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "flex" => Ok(Backend::Flex),
            "ndarray" => Ok(Backend::Ndarray),
            other => Err(Error::Backend(other.into())),
        }
    }

    /// Name as used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Flex => "flex",
            Backend::Ndarray => "ndarray",
        }
    }

    /// The plain (non-autodiff) device of this backend.
    pub fn device(self) -> Result<Device> {
        match self {
            #[cfg(feature = "flex")]
            Backend::Flex => Ok(Device::flex()),
            #[cfg(feature = "ndarray")]
            #[allow(deprecated)] // deprecated upstream, offered because the design names it
            Backend::Ndarray => Ok(Device::ndarray()),
            #[allow(unreachable_patterns)]
            other => Err(Error::Backend(other.name().into())),
        }
    }
}
