//! What audio hardware there is: hosts, devices, their configurations and the defaults
//! (`unmix devices`), and finding a device by name.

use cpal::traits::{DeviceTrait, HostTrait};
use serde::Serialize;

use crate::error::{Error, Result, backend};

/// One supported configuration range of a device.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfigRange {
    /// Channels.
    pub channels: u16,
    /// Lowest sample rate, Hz.
    pub min_sample_rate_hz: u32,
    /// Highest sample rate, Hz.
    pub max_sample_rate_hz: u32,
    /// Sample format (`f32`, `i16`, …).
    pub sample_format: String,
}

/// A device and what it supports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceInfo {
    /// Stable id, as `--input`/`--output` take it (e.g. `alsa:hw:1,0`, `jack:system`).
    pub id: String,
    /// Human-readable description.
    pub description: String,
    /// Input configurations.
    pub inputs: Vec<ConfigRange>,
    /// Output configurations.
    pub outputs: Vec<ConfigRange>,
    /// Default input configuration (channels, Hz, format).
    pub default_input: Option<(u16, u32, String)>,
    /// Default output configuration.
    pub default_output: Option<(u16, u32, String)>,
}

/// A host (audio API) and its devices.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostInfo {
    /// Host name (ALSA, JACK, …).
    pub name: String,
    /// Id of the default input device.
    pub default_input: Option<String>,
    /// Id of the default output device.
    pub default_output: Option<String>,
    /// Devices.
    pub devices: Vec<DeviceInfo>,
}

/// Lists every available host and device.
pub fn list() -> Result<Vec<HostInfo>> {
    let mut hosts = Vec::new();
    for id in cpal::available_hosts() {
        let host = cpal::host_from_id(id).map_err(|e| backend(format!("host {}", id.name()), e))?;
        let devices = host.devices().map_err(|e| backend(format!("devices of {}", id.name()), e))?;
        hosts.push(HostInfo {
            name: id.name().to_string(),
            default_input: host.default_input_device().map(|d| device_id(&d)),
            default_output: host.default_output_device().map(|d| device_id(&d)),
            devices: devices.map(|d| describe(&d)).collect(),
        });
    }
    Ok(hosts)
}

fn ranges<I: Iterator<Item = cpal::SupportedStreamConfigRange>>(configs: I) -> Vec<ConfigRange> {
    configs
        .map(|c| ConfigRange {
            channels: c.channels(),
            min_sample_rate_hz: c.min_sample_rate(),
            max_sample_rate_hz: c.max_sample_rate(),
            sample_format: c.sample_format().to_string(),
        })
        .collect()
}

fn describe(d: &cpal::Device) -> DeviceInfo {
    let plain = |c: cpal::SupportedStreamConfig| (c.channels(), c.sample_rate(), c.sample_format().to_string());
    DeviceInfo {
        id: device_id(d),
        description: d.description().map(|x| x.to_string()).unwrap_or_default(),
        inputs: d.supported_input_configs().map(ranges).unwrap_or_default(),
        outputs: d.supported_output_configs().map(ranges).unwrap_or_default(),
        default_input: d.default_input_config().ok().map(plain),
        default_output: d.default_output_config().ok().map(plain),
    }
}

/// The device's stable id as a string (`host:name`).
pub fn device_id(d: &cpal::Device) -> String {
    d.id().map(|i| i.to_string()).unwrap_or_else(|_| "unknown".into())
}

/// Finds a device: `default` (the default host's default device), a full id
/// (`alsa:hw:1,0`, `jack:cpal_client_in`: only that host is asked), or a bare name
/// (`hw:1,0`, `filecap`: every host but JACK is asked). JACK is only touched when named:
/// creating its host opens clients on the server (and prints to stdout when none runs).
pub(crate) fn find(name: &str, input: bool) -> Result<cpal::Device> {
    let direction = if input { "input" } else { "output" };
    let mut available = Vec::new();
    let host_named = name
        .split_once(':')
        .and_then(|(prefix, _)| cpal::available_hosts().into_iter().find(|h| h.name().eq_ignore_ascii_case(prefix)));
    let hosts: Vec<cpal::HostId> = if name == "default" {
        vec![cpal::default_host().id()]
    } else if let Some(host) = host_named {
        vec![host]
    } else {
        cpal::available_hosts().into_iter().filter(|h| !h.name().eq_ignore_ascii_case("jack")).collect()
    };
    for id in hosts {
        let Ok(host) = cpal::host_from_id(id) else { continue };
        if name == "default" {
            let d = if input { host.default_input_device() } else { host.default_output_device() };
            if let Some(d) = d {
                return Ok(d);
            }
            continue;
        }
        let Ok(devices) = host.devices() else { continue };
        for d in devices {
            let id = device_id(&d);
            let short = id.split_once(':').map_or(id.as_str(), |(_, rest)| rest).to_string();
            if id == name || short == name {
                return Ok(d);
            }
            available.push(id);
        }
    }
    Err(Error::NoDevice {
        direction,
        name: name.into(),
        available: if available.is_empty() { "none".into() } else { available.join(", ") },
    })
}

/// Whether a stream error means the device is gone (unplugged, its server shut down) or the
/// stream must be rebuilt, rather than a passing glitch. cpal's JACK host reports a server
/// that shut down — JACK's form of an unplug — only as a backend-specific message, so that
/// message is recognised by its wording.
#[cfg(feature = "cpal")]
pub(crate) fn is_fatal(e: &cpal::StreamError) -> bool {
    match e {
        cpal::StreamError::DeviceNotAvailable | cpal::StreamError::StreamInvalidated => true,
        cpal::StreamError::BackendSpecific { err } => err.description.contains("was shut down"),
        cpal::StreamError::BufferUnderrun => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lost device (or JACK server) ends a session; glitches and passing complaints do not.
    #[cfg(feature = "cpal")]
    #[test]
    fn only_a_lost_device_is_fatal() {
        let backend = |description: &str| cpal::StreamError::BackendSpecific {
            err: cpal::BackendSpecificError { description: description.into() },
        };
        assert!(is_fatal(&cpal::StreamError::DeviceNotAvailable));
        assert!(is_fatal(&cpal::StreamError::StreamInvalidated));
        // cpal's JACK host, when the server goes away.
        assert!(is_fatal(&backend("JACK was shut down for reason: server is exiting")));
        assert!(!is_fatal(&cpal::StreamError::BufferUnderrun));
        assert!(!is_fatal(&backend("buffer size changed")));
    }
}
