//! Threat-intelligence sources managed at run time: imported through the API, kept in the store
//! (the file as imported, re-read at every start), put in force at once beside the configured
//! files, and each import followed by a retro-hunt over the events already stored.
//!
//! An import is checked whole before anything changes: a list or CSV with a bad line is
//! refused with the line named; a STIX bundle or MISP feed loads what Garrison can match and
//! reports each entry it skipped. Imports and deletions are audited (without the content).

use std::sync::Arc;

use garrison_core::{TenantId, audit::AuditRecord};
use garrison_store::{Store, monitor::IntelSource};
use tokio::sync::{Mutex, mpsc};

use crate::{
    MonitorError,
    intel::{LoadSummary, SharedIntel, ThreatIntel},
};

/// Imports queued for a retro-hunt before an import waits.
pub const HUNT_QUEUE: usize = 16;

/// A request to look for a source's indicators in the events already stored.
#[derive(Debug)]
pub struct Hunt {
    /// The source just imported.
    pub source: String,
    /// Its indicators alone (the others were hunted for when they arrived).
    pub intel: ThreatIntel,
}

/// How a file's content is to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedFormat {
    /// One indicator per line.
    List,
    /// `indicator,type,confidence,expires`.
    Csv,
    /// A STIX 2.1 bundle or MISP feed JSON (told apart by content).
    Json,
}

impl FeedFormat {
    /// The format a stored source's `format` names.
    pub fn of_stored(format: &str) -> FeedFormat {
        match format {
            "csv" => FeedFormat::Csv,
            "stix" | "misp" => FeedFormat::Json,
            _ => FeedFormat::List,
        }
    }

    /// The format by name: `list`, `csv` or `json` (also `stix`, `misp`).
    pub fn parse(name: &str) -> Option<FeedFormat> {
        match name {
            "list" | "txt" => Some(FeedFormat::List),
            "csv" => Some(FeedFormat::Csv),
            "json" | "stix" | "misp" => Some(FeedFormat::Json),
            _ => None,
        }
    }

    /// The file name the loader dispatches on.
    fn file_name(self, source: &str) -> String {
        match self {
            FeedFormat::List => format!("{source}.txt"),
            FeedFormat::Csv => format!("{source}.csv"),
            FeedFormat::Json => format!("{source}.json"),
        }
    }
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// The source.
    pub source: String,
    /// What loading it found.
    pub summary: LoadSummary,
    /// Whether it replaced an earlier import of the same name.
    pub replaced: bool,
}

/// Imported threat-intelligence sources. Cheap to clone.
#[derive(Clone)]
pub struct IntelService {
    inner: Arc<Inner>,
}

struct Inner {
    tenant: TenantId,
    store: Arc<dyn Store>,
    /// The configured files' indicators.
    base: ThreatIntel,
    /// Their source names, which imports may not take.
    base_sources: Vec<String>,
    confidence: u8,
    shared: SharedIntel,
    hunts: mpsc::Sender<Hunt>,
    /// One change at a time, so two imports cannot swap in each other's stale sets.
    changing: Mutex<()>,
}

impl IntelService {
    /// Puts the configured files' indicators (`base`, whose sources are `base_sources`) and
    /// every stored source in force in `shared`; imports later queue a retro-hunt on the
    /// returned receiver, for the monitor. A stored source that no longer loads is logged and
    /// left out.
    pub async fn start(
        tenant: TenantId,
        store: Arc<dyn Store>,
        base: ThreatIntel,
        base_sources: Vec<String>,
        confidence: u8,
        shared: SharedIntel,
    ) -> Result<(IntelService, mpsc::Receiver<Hunt>), MonitorError> {
        let (hunts, receiver) = mpsc::channel(HUNT_QUEUE);
        let service = IntelService {
            inner: Arc::new(Inner {
                tenant,
                store,
                base,
                base_sources,
                confidence,
                shared,
                hunts,
                changing: Mutex::new(()),
            }),
        };
        let sources = service
            .inner
            .store
            .intel_sources(&service.inner.tenant, true)
            .await?;
        let intel = service.build(&sources);
        tracing::info!(
            sources = sources.len(),
            indicators = intel.len(),
            "Threat intelligence in force"
        );
        service.inner.shared.replace(intel);
        Ok((service, receiver))
    }

    /// The imported sources (without their content), by name.
    pub async fn sources(&self) -> Result<Vec<IntelSource>, MonitorError> {
        Ok(self
            .inner
            .store
            .intel_sources(&self.inner.tenant, false)
            .await?)
    }

    /// Imports `content` as source `name` (replacing an earlier import of that name), puts it
    /// in force and queues a retro-hunt for its indicators. `audit` is the caller's record of
    /// `intel.import`; `imported_by` names the caller.
    pub async fn import(
        &self,
        name: &str,
        format: FeedFormat,
        content: String,
        imported_by: String,
        audit: AuditRecord,
    ) -> Result<Imported, MonitorError> {
        validate_name(name)?;
        if self.inner.base_sources.iter().any(|s| s == name) {
            return Err(MonitorError::Refused(format!(
                "{name:?} is the source of a monitor.intel file; import under another name"
            )));
        }
        let now = garrison_core::now_ms();
        let mut own = ThreatIntel::default();
        let summary = own.load(
            &format.file_name(name),
            &content,
            name,
            self.inner.confidence,
            now,
        )?;
        if summary.added == 0 {
            return Err(MonitorError::Refused(format!(
                "{name}: no indicator Garrison can match ({} entries skipped{})",
                summary.skipped.len(),
                summary
                    .skipped
                    .first()
                    .map(|s| format!(", the first because {}", s.reason))
                    .unwrap_or_default()
            )));
        }
        let _changing = self.inner.changing.lock().await;
        let mut others = self
            .inner
            .store
            .intel_sources(&self.inner.tenant, true)
            .await?;
        let replaced = others.iter().any(|s| s.name == name);
        others.retain(|s| s.name != name);
        let source = IntelSource {
            tenant: self.inner.tenant.clone(),
            name: name.to_owned(),
            format: summary.format.to_owned(),
            indicators: summary.added as i64,
            skipped: summary.skipped.len() as i64,
            content,
            imported_at: now,
            imported_by,
        };
        // The new source was read once, above; the others are read again from the store so a
        // replaced source's old indicators go.
        let mut intel = self.build(&others);
        intel.merge(&own);
        self.inner.store.intel_source_put(&source, audit).await?;
        self.inner.shared.replace(intel);
        metrics::counter!("garrison_intel_imports_total").increment(1);
        // The hunt runs in the monitor's task; waiting here (the queue is full only when many
        // imports arrive at once) keeps every import hunted for.
        if self
            .inner
            .hunts
            .send(Hunt {
                source: name.to_owned(),
                intel: own,
            })
            .await
            .is_err()
        {
            tracing::warn!(
                source = name,
                "Monitoring has stopped; no retro-hunt for this import"
            );
        }
        Ok(Imported {
            source: name.to_owned(),
            summary,
            replaced,
        })
    }

    /// Removes an imported source and its indicators. `audit` records `intel.delete`.
    pub async fn delete(&self, name: &str, audit: AuditRecord) -> Result<(), MonitorError> {
        let _changing = self.inner.changing.lock().await;
        if !self
            .inner
            .store
            .intel_source_delete(&self.inner.tenant, name, audit)
            .await?
        {
            return Err(MonitorError::NotFound(format!("intel source {name}")));
        }
        let sources = self
            .inner
            .store
            .intel_sources(&self.inner.tenant, true)
            .await?;
        let intel = self.build(&sources);
        self.inner.shared.replace(intel);
        Ok(())
    }

    /// The configured indicators plus `sources`'. A stored source that no longer loads is
    /// left out with a warning.
    fn build(&self, sources: &[IntelSource]) -> ThreatIntel {
        let mut intel = self.inner.base.clone();
        let now = garrison_core::now_ms();
        for source in sources {
            let file = FeedFormat::of_stored(&source.format).file_name(&source.name);
            if let Err(e) = intel.load(
                &file,
                &source.content,
                &source.name,
                self.inner.confidence,
                now,
            ) {
                tracing::warn!(source = %source.name, error = %e, "A stored threat-intelligence source no longer loads; import it again");
            }
        }
        intel
    }
}

/// Source names are short and plain: they appear in alerts, URLs and the audit log.
fn validate_name(name: &str) -> Result<(), MonitorError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(MonitorError::Refused(format!(
            "{name:?} is not a source name: 1–64 letters, digits, '-', '_' or '.'"
        )))
    }
}
