//! Detection: Sigma rules and Sigma correlation rules evaluated over JSON events, and the
//! tooling rule authors use (per-rule load reports, lint, tests against events).
//!
//! The Sigma engine is [rsigma](https://crates.io/crates/rsigma-eval), pinned to 0.23 — the
//! last release whose MSRV fits our toolchain (see `ARCHITECTURE.md`). This crate owns what
//! Garrison adds around it:
//!
//! - [`rules`]: loading files and directories one document at a time, so one bad rule is
//!   reported with its file and reason instead of failing the whole set;
//! - [`detector`]: the running engine, with rule levels mapped onto Garrison's
//!   [`Severity`](garrison_core::Severity) scale, and a literal pre-filter (`prefilter`) for
//!   the keyword rules rsigma cannot index;
//! - [`lint`]: spec and best-practice checks plus what only a whole rule set shows (rules that
//!   do not compile, duplicate ids, correlations that reference nothing);
//! - [`testing`]: replaying JSON-lines events against rules with an expectation, and the
//!   rules' own embedded exemplars (`rsigma.exemplars`);
//! - [`builtin`]: the IoT rule pack compiled into the binary.
#![forbid(unsafe_code)]

pub mod builtin;
pub mod detector;
mod error;
pub mod lint;
mod prefilter;
pub mod rules;
pub mod testing;

pub use detector::{Detection, DetectionKind, Detector, DetectorOptions};
pub use error::DetectError;
pub use rules::{LoadOutcome, RuleKind, RuleLoad, RuleSet};
