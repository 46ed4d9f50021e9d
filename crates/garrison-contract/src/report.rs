//! What a device publishes, by channel, and the one entry point that decodes and validates it.

use std::fmt;

use garrison_core::DeviceId;
use serde::de::DeserializeOwned;

use crate::{
    Birth, CommandResult, Events, Inventory, Limits, SCHEMA_VERSION, Telemetry, UpdateStatus,
    codec::decode_bytes,
};

/// A device → server channel of the contract (`garrison/v1/d/<id>/<channel>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// Sent once per connection: who the agent is.
    Birth,
    /// Facts about the device: hardware, OS, software, network exposure, configuration.
    Inventory,
    /// Periodic metrics.
    Telemetry,
    /// Security events.
    Events,
    /// The outcome of a command.
    CommandResult,
    /// Progress of an update.
    UpdateStatus,
}

impl Channel {
    /// Every device → server channel.
    pub const ALL: [Channel; 6] = [
        Channel::Birth,
        Channel::Inventory,
        Channel::Telemetry,
        Channel::Events,
        Channel::CommandResult,
        Channel::UpdateStatus,
    ];

    /// The channel's topic suffix (`cmd/result`).
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Birth => "birth",
            Channel::Inventory => "inventory",
            Channel::Telemetry => "telemetry",
            Channel::Events => "events",
            Channel::CommandResult => "cmd/result",
            Channel::UpdateStatus => "update/status",
        }
    }

    /// The channel a topic suffix names.
    pub fn parse(suffix: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == suffix)
    }

    /// The channel of a full device topic, with the device id it names.
    pub fn of_topic(topic: &str) -> Option<(&str, Channel)> {
        let rest = topic.strip_prefix(garrison_core::device::TOPIC_ROOT)?;
        let (device, suffix) = rest.split_once('/')?;
        Some((device, Channel::parse(suffix)?))
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A decoded, validated device message.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    /// `birth`.
    Birth(Birth),
    /// `inventory`.
    Inventory(Box<Inventory>),
    /// `telemetry`.
    Telemetry(Telemetry),
    /// `events`.
    Events(Events),
    /// `cmd/result`.
    CommandResult(CommandResult),
    /// `update/status`.
    UpdateStatus(UpdateStatus),
}

/// Why a payload was refused. [`ReportError::reason`] is a stable label for metrics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// Over a size limit (as received, or after decompression).
    #[error("payload of {size} bytes is over the limit of {limit} bytes")]
    TooLarge {
        /// Size seen (after decompression, up to one byte past the limit).
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Not JSON, CBOR or gzip of either, or not the expected structure.
    #[error("malformed payload: {0}")]
    Malformed(String),
    /// A `schema` this server does not speak.
    #[error("unsupported schema version {found}: this server speaks schema {SCHEMA_VERSION}")]
    UnsupportedSchema {
        /// The version the payload declared.
        found: u32,
    },
    /// The payload names a device other than the one whose topic it came on.
    #[error("payload names device {claimed:?} but was published by {actual}")]
    DeviceMismatch {
        /// What the payload said.
        claimed: String,
        /// The publishing device.
        actual: DeviceId,
    },
    /// A field is out of bounds.
    #[error("invalid field {field}: {reason}")]
    Invalid {
        /// Path of the field (`network.listening[3].port`).
        field: String,
        /// What is wrong.
        reason: String,
    },
}

impl ReportError {
    /// A short stable label (`too_large`, `malformed`, …) for counters and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            ReportError::TooLarge { .. } => "too_large",
            ReportError::Malformed(_) => "malformed",
            ReportError::UnsupportedSchema { .. } => "unsupported_schema",
            ReportError::DeviceMismatch { .. } => "device_mismatch",
            ReportError::Invalid { .. } => "invalid_field",
        }
    }
}

/// Decodes what `device` published on `channel`: format, size, schema version, device id and
/// every bound in `limits`.
pub fn decode_report(
    channel: Channel,
    device: &DeviceId,
    payload: &[u8],
    limits: &Limits,
) -> Result<Report, ReportError> {
    decode_report_sized(channel, device, payload, limits).map(|(r, _)| r)
}

/// [`decode_report`], also returning the payload's size after decompression (so a consumer
/// can bound how much decoded data it holds at once).
pub fn decode_report_sized(
    channel: Channel,
    device: &DeviceId,
    payload: &[u8],
    limits: &Limits,
) -> Result<(Report, usize), ReportError> {
    let size = crate::codec::decoded_len(payload, limits)?;
    decode_report_unsized(channel, device, payload, limits).map(|r| (r, size))
}

fn decode_report_unsized(
    channel: Channel,
    device: &DeviceId,
    payload: &[u8],
    limits: &Limits,
) -> Result<Report, ReportError> {
    fn typed<T: DeserializeOwned + Validate>(
        device: &DeviceId,
        payload: &[u8],
        limits: &Limits,
    ) -> Result<T, ReportError> {
        let value: T = decode_bytes(payload, limits)?;
        let mut check = Check::new(limits);
        check.schema(value.schema())?;
        if let Some(claimed) = value.device_id()
            && claimed != device.as_str()
        {
            return Err(ReportError::DeviceMismatch {
                claimed: claimed.chars().take(128).collect(),
                actual: device.clone(),
            });
        }
        value.validate(&mut check)?;
        Ok(value)
    }
    Ok(match channel {
        Channel::Birth => Report::Birth(typed(device, payload, limits)?),
        Channel::Inventory => Report::Inventory(Box::new(typed(device, payload, limits)?)),
        Channel::Telemetry => Report::Telemetry(typed(device, payload, limits)?),
        Channel::Events => Report::Events(typed(device, payload, limits)?),
        Channel::CommandResult => Report::CommandResult(typed(device, payload, limits)?),
        Channel::UpdateStatus => Report::UpdateStatus(typed(device, payload, limits)?),
    })
}

/// Implemented by every message a device sends: what [`decode_report`] checks beyond serde.
pub(crate) trait Validate {
    /// The declared schema version.
    fn schema(&self) -> u32;
    /// The device id the payload names, if it names one.
    fn device_id(&self) -> Option<&str>;
    /// Checks every bound.
    fn validate(&self, check: &mut Check<'_>) -> Result<(), ReportError>;
}

/// Bound checks with field paths in their errors.
pub(crate) struct Check<'l> {
    pub(crate) limits: &'l Limits,
}

impl<'l> Check<'l> {
    pub(crate) fn new(limits: &'l Limits) -> Self {
        Check { limits }
    }

    pub(crate) fn schema(&self, found: u32) -> Result<(), ReportError> {
        if found == SCHEMA_VERSION {
            Ok(())
        } else {
            Err(ReportError::UnsupportedSchema { found })
        }
    }

    pub(crate) fn fail(field: impl Into<String>, reason: impl Into<String>) -> ReportError {
        ReportError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// A string within the length limit and free of control characters.
    pub(crate) fn text(&self, field: &str, value: &str) -> Result<(), ReportError> {
        if value.len() > self.limits.max_string {
            return Err(Self::fail(
                field,
                format!("longer than {} bytes", self.limits.max_string),
            ));
        }
        if value.chars().any(|c| c.is_control() && c != '\t') {
            return Err(Self::fail(field, "contains control characters"));
        }
        Ok(())
    }

    pub(crate) fn opt_text(&self, field: &str, value: Option<&str>) -> Result<(), ReportError> {
        value.map_or(Ok(()), |v| self.text(field, v))
    }

    /// A list no longer than `max`.
    pub(crate) fn list<T>(&self, field: &str, list: &[T], max: usize) -> Result<(), ReportError> {
        if list.len() > max {
            return Err(Self::fail(
                field,
                format!("has {} entries; at most {max} are accepted", list.len()),
            ));
        }
        Ok(())
    }

    /// A timestamp in Unix milliseconds: not before 2000 and not absurdly far ahead. Device
    /// clocks are wrong often enough that "ahead of the server" is not refused here.
    pub(crate) fn time(&self, field: &str, ms: i64) -> Result<(), ReportError> {
        const Y2000: i64 = 946_684_800_000;
        const Y2200: i64 = 7_258_118_400_000;
        if !(Y2000..Y2200).contains(&ms) {
            return Err(Self::fail(
                field,
                "must be Unix milliseconds between 2000 and 2200",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_name_their_channel() {
        assert_eq!(
            Channel::of_topic("garrison/v1/d/cam-1/cmd/result"),
            Some(("cam-1", Channel::CommandResult))
        );
        assert_eq!(
            Channel::of_topic("garrison/v1/d/cam-1/inventory"),
            Some(("cam-1", Channel::Inventory))
        );
        assert_eq!(Channel::of_topic("garrison/v1/d/cam-1/cmd"), None);
        assert_eq!(Channel::of_topic("other/cam-1/inventory"), None);
        for c in Channel::ALL {
            assert_eq!(Channel::parse(c.as_str()), Some(c));
        }
    }
}
