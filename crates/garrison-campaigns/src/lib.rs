//! Update campaigns: a signed release rolled out to a group or a query in phases that stop
//! themselves when things go wrong.
//!
//! [`CampaignService`] owns the running campaigns. Every rule it applies — phase assignment,
//! device stages, retries, thresholds, rate limits, maintenance windows — is
//! `garrison_update::campaign`'s, which has no I/O; this crate stores, notifies and keeps
//! time:
//!
//! - **Create** resolves the target once (a group's members or a query's matches, of the
//!   release's model, not busy in another campaign), puts each device in its phase, and
//!   stores the campaign with all its devices in one audited transaction.
//! - **Tick** (every `tick`): devices silent past their timeout fail their attempt; due devices
//!   of the started phases that are connected, inside their groups' maintenance windows and
//!   within the rate limit are marked `notified` — stored first — and then sent the notice on
//!   `garrison/v1/d/<id>/update` (the signed manifest and HTTPS download addresses).
//! - **Reports** from `update/status` (through the intake, after it stored them) move devices
//!   on; every change is stored with a history entry.
//! - After either, the campaign is judged: advance, wait for approval, complete, or abort.
//!   Campaign decisions are audited (operators' and the engine's alike).
//! - **Resume**: everything is in the store, so a restarted server loads the unfinished
//!   campaigns as they were and sends the notice again to devices left at `notified`.
#![forbid(unsafe_code)]

mod ddi;
mod engine;
mod gate;
mod service;

pub use ddi::{DdiDeployment, DdiPoll};
pub use gate::{DeniedComponent, PolicyError, ReleaseGate, SbomPolicy};
pub use service::{
    CampaignError, CampaignService, CampaignSettings, CampaignSummary, NewCampaign, Target,
};
