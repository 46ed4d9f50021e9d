//! `cmd` and `cmd/result`: what the server asks of a device and how the device answers.

use serde::{Deserialize, Serialize};

use crate::{
    ReportError,
    report::{Check, Validate},
};

/// `garrison/v1/d/<id>/cmd`: a request to the device. Unknown commands are answered with
/// [`CommandStatus::Unsupported`], never ignored silently.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// Always [`SCHEMA_VERSION`](crate::SCHEMA_VERSION).
    pub schema: u32,
    /// Correlates the result (absent: the device answers with none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `rotate-certificate`, `report-inventory`, …
    pub command: String,
    /// For `rotate-certificate`: the serial the server wants replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_serial: Option<String>,
}

impl Command {
    /// Make a new key, renew over EST with it; the renewal supersedes the current certificate.
    pub const ROTATE_CERTIFICATE: &'static str = "rotate-certificate";
    /// Send the inventory now.
    pub const REPORT_INVENTORY: &'static str = "report-inventory";
}

/// `garrison/v1/d/<id>/cmd/result`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResult {
    /// Always [`SCHEMA_VERSION`](crate::SCHEMA_VERSION).
    pub schema: u32,
    /// The device id; must equal the publishing device's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// The command's `id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The command's name.
    pub command: String,
    /// How it went.
    pub status: CommandStatus,
    /// Details, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// How a command went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CommandStatus {
    /// Done.
    Ok,
    /// Tried and failed.
    Failed,
    /// The device does not know this command.
    Unsupported,
}

impl Validate for CommandResult {
    fn schema(&self) -> u32 {
        self.schema
    }
    fn device_id(&self) -> Option<&str> {
        self.device_id.as_deref()
    }
    fn validate(&self, check: &mut Check<'_>) -> Result<(), ReportError> {
        check.opt_text("id", self.id.as_deref())?;
        check.text("command", &self.command)?;
        check.opt_text("message", self.message.as_deref())
    }
}
