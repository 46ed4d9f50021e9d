//! Campaigns (rollouts) without I/O: how a release reaches a fleet in phases, and every rule
//! that decides what happens next. The service that stores campaigns, notifies devices and
//! runs the clock lives in `garrison-campaigns`; everything it decides comes from here.
//!
//! - A campaign's devices are put into phases once, when it starts ([`assign_phases`]): the
//!   order is a hash of campaign and device, so it is stable across restarts and unrelated to
//!   device names, and phase *n* holds the devices up to its cumulative percentage.
//! - Each device moves through [`Stage`]s on the device's own reports ([`apply_report`]),
//!   on the server's notices ([`notified`]) and on the clock ([`expire`]). A failed attempt
//!   is retried with exponential back-off until `max_attempts`; a soft update may be deferred.
//! - After every change the campaign is judged ([`evaluate`]): a phase whose failures pass
//!   the error threshold aborts the campaign; one whose successes reach the success threshold
//!   lets the next phase start (at once, or after an operator's approval).
//! - [`TokenBucket`] limits notices per minute; [`MaintenanceWindow`] says when a group's
//!   devices may be asked.

use std::fmt;

use aws_lc_rs::digest;
use garrison_contract::{UpdateAction, UpdateState};
use serde::{Deserialize, Serialize};

/// Phases a campaign may have.
pub const MAX_PHASES: usize = 10;
/// Attempts a device may be given.
pub const MAX_ATTEMPTS: u32 = 10;
/// The longest back-off between attempts.
pub const MAX_BACKOFF_MS: i64 = 24 * 3_600_000;

/// Why a campaign specification is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid campaign {field}: {reason}")]
pub struct SpecError {
    /// The offending field (`phases[1].percent`).
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

fn spec_error(field: impl Into<String>, reason: impl Into<String>) -> SpecError {
    SpecError {
        field: field.into(),
        reason: reason.into(),
    }
}

/// How a phase is allowed to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Approval {
    /// As soon as the previous phase reached its success threshold.
    Automatic,
    /// Only after an operator approves it.
    Manual,
}

/// One phase: the devices up to `percent` of the target (cumulative).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhaseSpec {
    /// Cumulative share of the target, 1–100; strictly increasing, the last one 100.
    pub percent: u8,
    /// How the phase starts (the first phase starts with the campaign).
    #[serde(default = "automatic")]
    pub approval: Approval,
}

fn automatic() -> Approval {
    Approval::Automatic
}

/// The rules of a campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignSpec {
    /// The phases, smallest first.
    pub phases: Vec<PhaseSpec>,
    /// Share of a phase's devices (percent) that must succeed before the next phase starts.
    pub success_threshold: u8,
    /// Share of a phase's devices (percent) whose final failure aborts the whole campaign:
    /// the campaign aborts when failures exceed it.
    pub error_threshold: u8,
    /// Notices per minute at most (none: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_per_minute: Option<u32>,
    /// What devices are asked to do.
    pub action: Action,
    /// Attempts per device, 1–10.
    pub max_attempts: u32,
    /// Back-off before the second attempt (ms); doubled for each further one, at most a day.
    pub retry_backoff_ms: i64,
    /// A device silent this long (ms) since its last report has failed its attempt.
    pub device_timeout_ms: i64,
    /// The release's SBOM must pass the server's release gate before the campaign starts.
    #[serde(default)]
    pub sbom_gate: bool,
}

impl Default for CampaignSpec {
    fn default() -> CampaignSpec {
        CampaignSpec {
            phases: vec![
                PhaseSpec {
                    percent: 1,
                    approval: Approval::Automatic,
                },
                PhaseSpec {
                    percent: 10,
                    approval: Approval::Automatic,
                },
                PhaseSpec {
                    percent: 100,
                    approval: Approval::Automatic,
                },
            ],
            success_threshold: 90,
            error_threshold: 10,
            rate_per_minute: None,
            action: Action::Forced,
            max_attempts: 3,
            retry_backoff_ms: 60_000,
            device_timeout_ms: 3_600_000,
            sbom_gate: false,
        }
    }
}

impl CampaignSpec {
    /// Checks every rule; the error names the field.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.phases.is_empty() || self.phases.len() > MAX_PHASES {
            return Err(spec_error(
                "phases",
                format!("needs 1 to {MAX_PHASES} phases"),
            ));
        }
        let mut previous = 0;
        for (i, phase) in self.phases.iter().enumerate() {
            if phase.percent <= previous || phase.percent > 100 {
                return Err(spec_error(
                    format!("phases[{i}].percent"),
                    "must be above the previous phase's and at most 100 (percentages are cumulative)",
                ));
            }
            previous = phase.percent;
        }
        if previous != 100 {
            return Err(spec_error(
                format!("phases[{}].percent", self.phases.len() - 1),
                "the last phase must reach 100",
            ));
        }
        if !(1..=100).contains(&self.success_threshold) {
            return Err(spec_error("success_threshold", "must be 1–100 (percent)"));
        }
        if self.error_threshold > 100 {
            return Err(spec_error("error_threshold", "must be 0–100 (percent)"));
        }
        if self.rate_per_minute == Some(0) {
            return Err(spec_error(
                "rate_per_minute",
                "must be at least 1 (omit it for no limit)",
            ));
        }
        if !(1..=MAX_ATTEMPTS).contains(&self.max_attempts) {
            return Err(spec_error(
                "max_attempts",
                format!("must be 1–{MAX_ATTEMPTS}"),
            ));
        }
        if !(0..=MAX_BACKOFF_MS).contains(&self.retry_backoff_ms) {
            return Err(spec_error("retry_backoff_ms", "must be 0 to one day"));
        }
        if self.device_timeout_ms < 1_000 {
            return Err(spec_error("device_timeout_ms", "must be at least 1 s"));
        }
        Ok(())
    }

    /// The back-off before attempt `next` (2 for the first retry).
    pub fn backoff_before(&self, next: u32) -> i64 {
        let doublings = next.saturating_sub(2).min(30);
        self.retry_backoff_ms
            .saturating_mul(1_i64 << doublings)
            .min(MAX_BACKOFF_MS)
    }
}

/// What a campaign asks its devices to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Install without asking.
    Forced,
    /// Install; the device may defer.
    Soft,
    /// Download and verify only.
    DownloadOnly,
}

impl Action {
    /// The notice's action.
    pub fn notice(self) -> UpdateAction {
        match self {
            Action::Forced => UpdateAction::Forced,
            Action::Soft => UpdateAction::Soft,
            Action::DownloadOnly => UpdateAction::DownloadOnly,
        }
    }
}

/// Where one device is in a campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// Not asked yet (its phase has not started, or it waits for its window or the rate).
    Pending,
    /// Sent the notice.
    Notified,
    /// Reported `downloading`.
    Downloading,
    /// Reported `downloaded`.
    Downloaded,
    /// Reported `verified`.
    Verified,
    /// Reported `installing`.
    Installing,
    /// Reported `installed`.
    Installed,
    /// Reported `rebooted`.
    Rebooted,
    /// Done: installed and healthy (for download-only: verified).
    Succeeded,
    /// An attempt failed; the next one waits for its back-off.
    Retrying,
    /// A soft update was put off; it is offered again later.
    Deferred,
    /// Every attempt failed (final).
    Failed,
    /// The last attempt was rolled back by the device (final).
    RolledBack,
    /// The campaign stopped before this device finished (final).
    Cancelled,
}

impl Stage {
    /// Every stage.
    pub const ALL: [Stage; 14] = [
        Stage::Pending,
        Stage::Notified,
        Stage::Downloading,
        Stage::Downloaded,
        Stage::Verified,
        Stage::Installing,
        Stage::Installed,
        Stage::Rebooted,
        Stage::Succeeded,
        Stage::Retrying,
        Stage::Deferred,
        Stage::Failed,
        Stage::RolledBack,
        Stage::Cancelled,
    ];

    /// The wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Pending => "pending",
            Stage::Notified => "notified",
            Stage::Downloading => "downloading",
            Stage::Downloaded => "downloaded",
            Stage::Verified => "verified",
            Stage::Installing => "installing",
            Stage::Installed => "installed",
            Stage::Rebooted => "rebooted",
            Stage::Succeeded => "succeeded",
            Stage::Retrying => "retrying",
            Stage::Deferred => "deferred",
            Stage::Failed => "failed",
            Stage::RolledBack => "rolled-back",
            Stage::Cancelled => "cancelled",
        }
    }

    /// The stage with this name.
    pub fn parse(name: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// No further change will happen.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Stage::Succeeded | Stage::Failed | Stage::RolledBack | Stage::Cancelled
        )
    }

    /// A final failure.
    pub fn is_failure(self) -> bool {
        matches!(self, Stage::Failed | Stage::RolledBack)
    }

    /// The device is working on a notice now.
    pub fn in_flight(self) -> bool {
        self.progress().is_some()
    }

    /// Order of the stages of one attempt (a report never moves a device backwards).
    fn progress(self) -> Option<u8> {
        Some(match self {
            Stage::Notified => 1,
            Stage::Downloading => 2,
            Stage::Downloaded => 3,
            Stage::Verified => 4,
            Stage::Installing => 5,
            Stage::Installed => 6,
            Stage::Rebooted => 7,
            _ => return None,
        })
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One device's place in a campaign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Its phase (0-based).
    pub phase: u32,
    /// Its stage.
    pub stage: Stage,
    /// Notices sent so far (the current attempt's number).
    pub attempts: u32,
    /// When it may next be notified (retries and deferrals).
    pub next_attempt_at: Option<i64>,
    /// When its stage last changed (ms).
    pub updated_at: i64,
    /// The last failure or deferral reason.
    pub reason: Option<String>,
}

impl Progress {
    /// A device not yet asked.
    pub fn new(phase: u32, now: i64) -> Progress {
        Progress {
            phase,
            stage: Stage::Pending,
            attempts: 0,
            next_attempt_at: None,
            updated_at: now,
            reason: None,
        }
    }

    /// Whether it may be sent a notice at `now` (its phase permitting).
    pub fn due(&self, now: i64) -> bool {
        match self.stage {
            Stage::Pending => true,
            Stage::Retrying | Stage::Deferred => self.next_attempt_at.is_none_or(|at| at <= now),
            _ => false,
        }
    }
}

/// The device was sent a notice: a new attempt starts (deferrals do not use one up).
pub fn notified(progress: &Progress, now: i64) -> Progress {
    let attempts = if progress.stage == Stage::Deferred {
        progress.attempts.max(1)
    } else {
        progress.attempts + 1
    };
    Progress {
        phase: progress.phase,
        stage: Stage::Notified,
        attempts,
        next_attempt_at: None,
        updated_at: now,
        reason: None,
    }
}

/// The result of a device's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The device moved on.
    Moved(Progress),
    /// The report changes nothing (a repeat, an earlier stage, an earlier attempt, or a
    /// device not working on this campaign now); it is kept in the device's history only.
    Stale(&'static str),
}

/// Applies what a device reported. A failure is retried while attempts remain; a deferral of a
/// soft update is offered again after the back-off; `verified` completes a download-only
/// campaign.
pub fn apply_report(
    progress: &Progress,
    spec: &CampaignSpec,
    state: UpdateState,
    attempt: Option<u32>,
    reason: Option<&str>,
    now: i64,
) -> Applied {
    let Some(current) = progress.stage.progress() else {
        return Applied::Stale("the device has no notice outstanding");
    };
    if attempt.is_some_and(|a| a != progress.attempts) {
        return Applied::Stale("the report answers an earlier attempt");
    }
    let moved = |stage: Stage, reason: Option<String>| {
        Applied::Moved(Progress {
            phase: progress.phase,
            stage,
            attempts: progress.attempts,
            next_attempt_at: None,
            updated_at: now,
            reason,
        })
    };
    let target = match state {
        UpdateState::Downloading => Stage::Downloading,
        UpdateState::Downloaded => Stage::Downloaded,
        UpdateState::Verified if spec.action == Action::DownloadOnly => {
            return moved(Stage::Succeeded, None);
        }
        UpdateState::Verified => Stage::Verified,
        UpdateState::Installing => Stage::Installing,
        UpdateState::Installed => Stage::Installed,
        UpdateState::Rebooted => Stage::Rebooted,
        UpdateState::Succeeded => return moved(Stage::Succeeded, None),
        UpdateState::Failed => {
            return Applied::Moved(failed_attempt(
                progress,
                spec,
                Stage::Failed,
                reason.unwrap_or("the device reported a failure"),
                now,
            ));
        }
        UpdateState::RolledBack => {
            return Applied::Moved(failed_attempt(
                progress,
                spec,
                Stage::RolledBack,
                reason.unwrap_or("the device rolled the update back"),
                now,
            ));
        }
        UpdateState::Deferred if spec.action == Action::Soft => {
            return Applied::Moved(Progress {
                phase: progress.phase,
                stage: Stage::Deferred,
                attempts: progress.attempts,
                next_attempt_at: Some(now + spec.retry_backoff_ms.max(1_000)),
                updated_at: now,
                reason: reason.map(str::to_owned),
            });
        }
        UpdateState::Deferred => {
            return Applied::Moved(failed_attempt(
                progress,
                spec,
                Stage::Failed,
                "the device deferred an update that may not be deferred",
                now,
            ));
        }
        UpdateState::Cancelled => return Applied::Stale("nothing was cancelled"),
    };
    match target.progress() {
        Some(next) if next > current => moved(target, None),
        _ => Applied::Stale("the device is already at or past this stage"),
    }
}

/// An attempt ended in failure: retry after the back-off while attempts remain, else final.
fn failed_attempt(
    progress: &Progress,
    spec: &CampaignSpec,
    final_stage: Stage,
    reason: &str,
    now: i64,
) -> Progress {
    let (stage, next_attempt_at) = if progress.attempts < spec.max_attempts {
        (
            Stage::Retrying,
            Some(now + spec.backoff_before(progress.attempts + 1)),
        )
    } else {
        (final_stage, None)
    };
    Progress {
        phase: progress.phase,
        stage,
        attempts: progress.attempts,
        next_attempt_at,
        updated_at: now,
        reason: Some(reason.chars().take(512).collect()),
    }
}

/// A device silent past `device_timeout_ms` in the middle of an attempt has failed it.
pub fn expire(progress: &Progress, spec: &CampaignSpec, now: i64) -> Option<Progress> {
    if progress.stage.in_flight() && now - progress.updated_at >= spec.device_timeout_ms {
        let reason = format!(
            "no report for {} s while {}",
            spec.device_timeout_ms / 1000,
            progress.stage
        );
        Some(failed_attempt(progress, spec, Stage::Failed, &reason, now))
    } else {
        None
    }
}

/// Puts each device in its phase: devices are ordered by SHA-256 of campaign and device id
/// (stable, and unrelated to how devices are named), and phase *n* takes them up to
/// `ceil(percent × total / 100)`. Returns each device's phase, in the input's order.
pub fn assign_phases<S: AsRef<str>>(
    campaign: &str,
    devices: &[S],
    phases: &[PhaseSpec],
) -> Vec<u32> {
    let mut order: Vec<(digest::Digest, usize)> = devices
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let mut ctx = digest::Context::new(&digest::SHA256);
            ctx.update(campaign.as_bytes());
            ctx.update(&[0]);
            ctx.update(d.as_ref().as_bytes());
            (ctx.finish(), i)
        })
        .collect();
    order.sort_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()).then(a.1.cmp(&b.1)));
    let total = devices.len();
    let bounds: Vec<usize> = phases
        .iter()
        .map(|p| (usize::from(p.percent) * total).div_ceil(100))
        .collect();
    let mut out = vec![0u32; total];
    let mut phase = 0usize;
    for (rank, (_, index)) in order.into_iter().enumerate() {
        while phase + 1 < bounds.len() && rank >= bounds[phase] {
            phase += 1;
        }
        out[index] = u32::try_from(phase).unwrap_or(u32::MAX);
    }
    out
}

/// A campaign's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CampaignState {
    /// Notifying devices of the started phases.
    Running,
    /// The current phase reached its success threshold; the next needs an operator's
    /// approval.
    WaitingApproval,
    /// Every device finished.
    Completed,
    /// A phase passed its error threshold; no new device is notified.
    Aborted,
    /// An operator cancelled it.
    Cancelled,
}

impl CampaignState {
    /// The wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignState::Running => "running",
            CampaignState::WaitingApproval => "waiting-approval",
            CampaignState::Completed => "completed",
            CampaignState::Aborted => "aborted",
            CampaignState::Cancelled => "cancelled",
        }
    }

    /// The state with this name.
    pub fn parse(name: &str) -> Option<CampaignState> {
        [
            CampaignState::Running,
            CampaignState::WaitingApproval,
            CampaignState::Completed,
            CampaignState::Aborted,
            CampaignState::Cancelled,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }

    /// Nothing more will happen.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            CampaignState::Completed | CampaignState::Aborted | CampaignState::Cancelled
        )
    }
}

impl fmt::Display for CampaignState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Counts of one phase's devices.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PhaseTally {
    /// Devices in the phase.
    pub total: u64,
    /// Succeeded.
    pub succeeded: u64,
    /// Failed or rolled back, finally.
    pub failed: u64,
    /// Not finished (pending, in flight, retrying, deferred).
    pub open: u64,
}

impl PhaseTally {
    /// Counts `stage` in the tally.
    pub fn add(&mut self, stage: Stage) {
        self.total += 1;
        if stage == Stage::Succeeded {
            self.succeeded += 1;
        } else if stage.is_failure() {
            self.failed += 1;
        } else if !stage.is_final() {
            self.open += 1;
        }
    }
}

/// What the campaign should do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing changes.
    Continue,
    /// Start phase `to`.
    Advance {
        /// The phase to start.
        to: u32,
    },
    /// Wait for an operator to approve phase `next`.
    AwaitApproval {
        /// The phase waiting.
        next: u32,
    },
    /// Every device is finished.
    Complete,
    /// Stop: too many failures.
    Abort {
        /// Which phase, how many, and the threshold, for people.
        reason: String,
    },
}

/// Judges a running campaign at phase `current`, given every phase's tally.
pub fn evaluate(spec: &CampaignSpec, current: u32, tallies: &[PhaseTally]) -> Decision {
    let current_index = usize::try_from(current).unwrap_or(usize::MAX);
    for (i, tally) in tallies.iter().enumerate().take(current_index + 1) {
        if tally.total > 0 && tally.failed * 100 > u64::from(spec.error_threshold) * tally.total {
            return Decision::Abort {
                reason: format!(
                    "phase {} of {}: {} of {} devices failed ({}%), above the error threshold of {}%",
                    i + 1,
                    spec.phases.len(),
                    tally.failed,
                    tally.total,
                    tally.failed * 100 / tally.total,
                    spec.error_threshold
                ),
            };
        }
    }
    let Some(tally) = tallies.get(current_index) else {
        return Decision::Continue;
    };
    let reached = tally.succeeded * 100 >= u64::from(spec.success_threshold) * tally.total;
    let is_last = current_index + 1 >= spec.phases.len();
    if is_last {
        return if tallies.iter().all(|t| t.open == 0) {
            Decision::Complete
        } else {
            Decision::Continue
        };
    }
    if !reached {
        // A phase that can no longer reach its threshold would wait forever: with nothing
        // open, the failures below the error threshold still leave it short.
        if tally.open == 0 {
            return Decision::Abort {
                reason: format!(
                    "phase {} of {} finished with {} of {} devices succeeded, below the success threshold of {}%",
                    current_index + 1,
                    spec.phases.len(),
                    tally.succeeded,
                    tally.total,
                    spec.success_threshold
                ),
            };
        }
        return Decision::Continue;
    }
    let next = current + 1;
    match spec.phases.get(current_index + 1).map(|p| p.approval) {
        Some(Approval::Manual) => Decision::AwaitApproval { next },
        _ => Decision::Advance { to: next },
    }
}

/// Limits notices to `per_minute`, with a burst of at most one minute's worth.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBucket {
    per_minute: u32,
    tokens: f64,
    last: i64,
}

impl TokenBucket {
    /// A bucket that starts with one token (so a restart cannot burst a whole minute).
    pub fn new(per_minute: u32, now: i64) -> TokenBucket {
        TokenBucket {
            per_minute,
            tokens: 1.0,
            last: now,
        }
    }

    /// Takes a token if one is available at `now`.
    pub fn take(&mut self, now: i64) -> bool {
        let elapsed = (now - self.last).max(0) as f64;
        let capacity = f64::from(self.per_minute.max(1));
        self.tokens = (self.tokens + elapsed * capacity / 60_000.0).min(capacity);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// When a group's devices may be asked to update: on the listed weekdays (all when empty),
/// from `start` for `duration_minutes`, in a fixed offset from UTC. A window may run past
/// midnight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceWindow {
    /// Weekdays the window opens (`mon` … `sun`); empty: every day.
    #[serde(default)]
    pub days: Vec<Weekday>,
    /// Opening time, `HH:MM`.
    pub start: String,
    /// How long it stays open, 1 minute to 7 days.
    pub duration_minutes: u32,
    /// The local time's offset from UTC in minutes (`60` for UTC+1).
    #[serde(default)]
    pub utc_offset_minutes: i16,
}

/// A day of the week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Weekday {
    /// The weekday of a day counted from 1970-01-01 (a Thursday).
    fn of_day(day: i64) -> Weekday {
        const ORDER: [Weekday; 7] = [
            Weekday::Thu,
            Weekday::Fri,
            Weekday::Sat,
            Weekday::Sun,
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
        ];
        ORDER[usize::try_from(day.rem_euclid(7)).unwrap_or(0)]
    }
}

impl MaintenanceWindow {
    /// Checks the fields; the error names the one that is wrong.
    pub fn validate(&self) -> Result<(), SpecError> {
        self.start_minute()?;
        if !(1..=7 * 1440).contains(&self.duration_minutes) {
            return Err(spec_error(
                "duration_minutes",
                "must be 1 minute to 7 days (10080)",
            ));
        }
        if !(-14 * 60..=14 * 60).contains(&self.utc_offset_minutes) {
            return Err(spec_error("utc_offset_minutes", "must be within ±14 h"));
        }
        Ok(())
    }

    fn start_minute(&self) -> Result<i64, SpecError> {
        let bad = || {
            spec_error(
                "start",
                format!("{:?} is not a time of day HH:MM", self.start),
            )
        };
        let (h, m) = self.start.split_once(':').ok_or_else(bad)?;
        if h.len() != 2 || m.len() != 2 {
            return Err(bad());
        }
        let h: i64 = h.parse().map_err(|_| bad())?;
        let m: i64 = m.parse().map_err(|_| bad())?;
        if !(0..24).contains(&h) || !(0..60).contains(&m) {
            return Err(bad());
        }
        Ok(h * 60 + m)
    }

    /// Whether the window is open at `now_ms` (Unix ms). An invalid window is never open.
    pub fn is_open(&self, now_ms: i64) -> bool {
        let Ok(start) = self.start_minute() else {
            return false;
        };
        let local_minute = now_ms.div_euclid(60_000) + i64::from(self.utc_offset_minutes);
        let today = local_minute.div_euclid(1440);
        let duration = i64::from(self.duration_minutes);
        // Windows opened on this day or on the days before it that could still be open.
        (0..=(duration + 1439) / 1440).any(|back| {
            let day = today - back;
            let opens = day * 1440 + start;
            (self.days.is_empty() || self.days.contains(&Weekday::of_day(day)))
                && opens <= local_minute
                && local_minute < opens + duration
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(phases: &[(u8, Approval)]) -> CampaignSpec {
        CampaignSpec {
            phases: phases
                .iter()
                .map(|&(percent, approval)| PhaseSpec { percent, approval })
                .collect(),
            ..CampaignSpec::default()
        }
    }

    #[test]
    fn phases_take_cumulative_shares_in_a_stable_order() {
        let devices: Vec<String> = (0..1000).map(|i| format!("dev-{i:04}")).collect();
        let s = CampaignSpec::default();
        let phases = assign_phases("c1", &devices, &s.phases);
        let count = |p: u32| phases.iter().filter(|&&x| x == p).count();
        assert_eq!((count(0), count(1), count(2)), (10, 90, 900));
        assert_eq!(phases, assign_phases("c1", &devices, &s.phases));
        // Another campaign draws another first phase.
        let other = assign_phases("c2", &devices, &s.phases);
        assert_ne!(phases, other);
        // Tiny fleets: the first phase still gets a device.
        let few = assign_phases("c1", &["a", "b", "c"], &s.phases);
        assert_eq!(few.iter().filter(|&&p| p == 0).count(), 1);
        assert!(assign_phases::<&str>("c1", &[], &s.phases).is_empty());
    }

    #[test]
    fn specs_are_checked_field_by_field() {
        assert!(CampaignSpec::default().validate().is_ok());
        let e = spec(&[(10, Approval::Automatic), (5, Approval::Automatic)])
            .validate()
            .unwrap_err();
        assert_eq!(e.field, "phases[1].percent");
        let e = spec(&[(10, Approval::Automatic)]).validate().unwrap_err();
        assert!(e.reason.contains("100"));
        let s = CampaignSpec {
            max_attempts: 0,
            ..CampaignSpec::default()
        };
        assert_eq!(s.validate().unwrap_err().field, "max_attempts");
        let s = CampaignSpec {
            rate_per_minute: Some(0),
            ..CampaignSpec::default()
        };
        assert_eq!(s.validate().unwrap_err().field, "rate_per_minute");
    }

    #[test]
    fn reports_move_devices_forward_only() {
        let s = CampaignSpec::default();
        let p = notified(&Progress::new(0, 0), 10);
        assert_eq!((p.stage, p.attempts), (Stage::Notified, 1));
        let Applied::Moved(p) = apply_report(&p, &s, UpdateState::Installing, Some(1), None, 20)
        else {
            panic!("installing must apply")
        };
        assert_eq!(p.stage, Stage::Installing);
        assert!(matches!(
            apply_report(&p, &s, UpdateState::Downloading, None, None, 30),
            Applied::Stale(_)
        ));
        assert!(matches!(
            apply_report(&p, &s, UpdateState::Succeeded, Some(2), None, 30),
            Applied::Stale(_)
        ));
        let Applied::Moved(done) = apply_report(&p, &s, UpdateState::Succeeded, None, None, 40)
        else {
            panic!("succeeded must apply")
        };
        assert_eq!(done.stage, Stage::Succeeded);
        // Nothing moves a finished device.
        assert!(matches!(
            apply_report(&done, &s, UpdateState::Failed, None, None, 50),
            Applied::Stale(_)
        ));
    }

    #[test]
    fn failures_are_retried_with_back_off_then_final() {
        let s = CampaignSpec {
            max_attempts: 2,
            retry_backoff_ms: 1_000,
            ..CampaignSpec::default()
        };
        let p = notified(&Progress::new(0, 0), 0);
        let Applied::Moved(p) =
            apply_report(&p, &s, UpdateState::Failed, None, Some("disk full"), 100)
        else {
            panic!()
        };
        assert_eq!(p.stage, Stage::Retrying);
        assert_eq!(p.next_attempt_at, Some(1_100));
        assert_eq!(p.reason.as_deref(), Some("disk full"));
        assert!(!p.due(1_099) && p.due(1_100));
        let p = notified(&p, 1_100);
        assert_eq!(p.attempts, 2);
        let Applied::Moved(p) = apply_report(&p, &s, UpdateState::RolledBack, None, None, 1_200)
        else {
            panic!()
        };
        assert_eq!(p.stage, Stage::RolledBack);
        assert!(p.stage.is_final() && p.stage.is_failure());
        assert_eq!(s.backoff_before(2), 1_000);
        assert_eq!(s.backoff_before(4), 4_000);
    }

    #[test]
    fn deferral_is_for_soft_updates_and_uses_no_attempt() {
        let soft = CampaignSpec {
            action: Action::Soft,
            ..CampaignSpec::default()
        };
        let p = notified(&Progress::new(0, 0), 0);
        let Applied::Moved(d) = apply_report(&p, &soft, UpdateState::Deferred, None, None, 10)
        else {
            panic!()
        };
        assert_eq!(d.stage, Stage::Deferred);
        assert_eq!(notified(&d, 100_000).attempts, 1);
        let forced = CampaignSpec::default();
        let Applied::Moved(f) = apply_report(&p, &forced, UpdateState::Deferred, None, None, 10)
        else {
            panic!()
        };
        assert_eq!(f.stage, Stage::Retrying);
    }

    #[test]
    fn download_only_succeeds_when_verified() {
        let s = CampaignSpec {
            action: Action::DownloadOnly,
            ..CampaignSpec::default()
        };
        let p = notified(&Progress::new(0, 0), 0);
        let Applied::Moved(p) = apply_report(&p, &s, UpdateState::Verified, None, None, 10) else {
            panic!()
        };
        assert_eq!(p.stage, Stage::Succeeded);
    }

    #[test]
    fn silent_devices_time_out() {
        let s = CampaignSpec {
            device_timeout_ms: 5_000,
            max_attempts: 1,
            ..CampaignSpec::default()
        };
        let p = notified(&Progress::new(0, 0), 0);
        assert!(expire(&p, &s, 4_999).is_none());
        let e = expire(&p, &s, 5_000).unwrap();
        assert_eq!(e.stage, Stage::Failed);
        assert!(e.reason.unwrap().contains("no report"));
        assert!(expire(&Progress::new(0, 0), &s, 1_000_000).is_none());
    }

    fn tally(total: u64, succeeded: u64, failed: u64) -> PhaseTally {
        PhaseTally {
            total,
            succeeded,
            failed,
            open: total - succeeded - failed,
        }
    }

    #[test]
    fn phases_advance_on_success_and_abort_on_errors() {
        let s = spec(&[
            (1, Approval::Automatic),
            (10, Approval::Manual),
            (100, Approval::Automatic),
        ]);
        let t = [tally(10, 8, 0), tally(90, 0, 0), tally(900, 0, 0)];
        assert_eq!(evaluate(&s, 0, &t), Decision::Continue);
        // Phase 2 needs approval; phase 3 starts by itself.
        let t = [tally(10, 9, 0), tally(90, 0, 0), tally(900, 0, 0)];
        assert_eq!(evaluate(&s, 0, &t), Decision::AwaitApproval { next: 1 });
        let t = [tally(10, 10, 0), tally(90, 81, 0), tally(900, 0, 0)];
        assert_eq!(evaluate(&s, 1, &t), Decision::Advance { to: 2 });
        // 10% failures is at the threshold, not above it.
        let t = [tally(10, 9, 1), tally(90, 0, 0), tally(900, 0, 0)];
        assert_eq!(evaluate(&s, 0, &t), Decision::AwaitApproval { next: 1 });
        let t = [tally(10, 8, 2), tally(90, 0, 0), tally(900, 0, 0)];
        let Decision::Abort { reason } = evaluate(&s, 0, &t) else {
            panic!()
        };
        assert!(reason.contains("2 of 10"), "{reason}");
        // The last phase completes when nothing is open anywhere.
        let t = [tally(10, 10, 0), tally(90, 90, 0), tally(900, 899, 0)];
        assert_eq!(evaluate(&s, 2, &t), Decision::Continue);
        let t = [tally(10, 10, 0), tally(90, 90, 0), tally(900, 900, 0)];
        assert_eq!(evaluate(&s, 2, &t), Decision::Complete);
    }

    #[test]
    fn a_phase_that_cannot_reach_its_threshold_aborts() {
        let s = CampaignSpec {
            success_threshold: 100,
            error_threshold: 50,
            ..CampaignSpec::default()
        };
        let t = [tally(10, 9, 1), tally(90, 0, 0), tally(900, 0, 0)];
        assert!(matches!(evaluate(&s, 0, &t), Decision::Abort { .. }));
    }

    #[test]
    fn the_bucket_limits_the_rate() {
        let mut b = TokenBucket::new(60, 0);
        assert!(b.take(0));
        assert!(!b.take(500));
        assert!(b.take(1_000));
        // A long pause allows at most a minute's worth at once.
        let burst = (0..200).filter(|_| b.take(3_600_000)).count();
        assert_eq!(burst, 60);
    }

    #[test]
    fn maintenance_windows_open_on_their_days_across_midnight() {
        // 2026-12-05 is a Saturday; 23:00 UTC for 3 h.
        let w = MaintenanceWindow {
            days: vec![Weekday::Sat],
            start: "23:00".into(),
            duration_minutes: 180,
            utc_offset_minutes: 0,
        };
        w.validate().unwrap();
        let day = |days: i64| days * 86_400_000;
        // Day 20_792 since the epoch is 2026-12-05, a Saturday.
        assert_eq!(Weekday::of_day(20_792), Weekday::Sat);
        assert_eq!(Weekday::of_day(0), Weekday::Thu);
        let saturday = day(20_792);
        assert!(!w.is_open(saturday + 22 * 3_600_000 + 59 * 60_000));
        assert!(w.is_open(saturday + 23 * 3_600_000));
        assert!(w.is_open(saturday + 25 * 3_600_000 + 59 * 60_000));
        assert!(!w.is_open(saturday + 26 * 3_600_000));
        // Not on the following Saturday's eve (Friday).
        assert!(!w.is_open(saturday - 3_600_000));
        // An offset shifts it: 23:00 at UTC+1 is 22:00 UTC.
        let shifted = MaintenanceWindow {
            utc_offset_minutes: 60,
            ..w.clone()
        };
        assert!(shifted.is_open(saturday + 22 * 3_600_000));
        let bad = MaintenanceWindow {
            start: "25:00".into(),
            ..w
        };
        assert_eq!(bad.validate().unwrap_err().field, "start");
        assert!(!bad.is_open(saturday + 23 * 3_600_000));
    }
}
