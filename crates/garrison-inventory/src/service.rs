//! The inventory as the API sees it: search, tags, groups and firmware policies, each change
//! written to the store (audited) and then to the fleet index.

use std::{collections::BTreeMap, sync::Arc};

use garrison_core::{DeviceId, Impact, TenantId, audit::AuditRecord, now_ms};
use garrison_query::{Query, QueryError};
use garrison_store::{
    Store, StoreError,
    inventory::{FirmwarePolicy, Group},
};

use crate::{FleetIndex, SearchPage, compile_group_query, device_schema, index::GroupQueryError};

/// What can go wrong with an inventory request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InventoryError {
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A search query does not parse.
    #[error("invalid query: {0}")]
    Query(#[from] QueryError),
    /// A dynamic group's query is refused.
    #[error("invalid group query: {0}")]
    GroupQuery(#[from] GroupQueryError),
    /// A value is out of bounds.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

fn invalid(field: &'static str, reason: impl Into<String>) -> InventoryError {
    InventoryError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// A name (group, tag key): 1–64 of `A-Z a-z 0-9 . _ -`, starting with a letter or digit.
fn check_name(field: &'static str, name: &str) -> Result<(), InventoryError> {
    if name.is_empty() || name.len() > 64 {
        return Err(invalid(field, "must be 1–64 characters"));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric())
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(invalid(
            field,
            "may contain only A-Z, a-z, 0-9, '.', '_' and '-', starting with a letter or digit",
        ));
    }
    Ok(())
}

/// Checks a tag: the key as a name, the value at most 256 printable characters.
pub fn validate_tag(key: &str, value: &str) -> Result<(), InventoryError> {
    check_name("tag key", key)?;
    if value.chars().count() > 256 || value.chars().any(char::is_control) {
        return Err(invalid(
            "tag value",
            "must be at most 256 characters without control characters",
        ));
    }
    Ok(())
}

/// A listening service as allow-lists write it: `tcp/443`, `udp/1900`.
fn check_service(entry: &str) -> Result<(), InventoryError> {
    let ok = entry
        .split_once('/')
        .is_some_and(|(proto, port)| matches!(proto, "tcp" | "udp") && port.parse::<u16>().is_ok());
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "allowed_services",
            format!("{entry:?} is not PROTOCOL/PORT such as tcp/443 or udp/1900"),
        ))
    }
}

/// A group as an operator describes it.
#[derive(Debug, Clone, Default)]
pub struct GroupSpec {
    /// Name.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// A query makes the group dynamic.
    pub query: Option<String>,
    /// Impact of a compromise of its members.
    pub impact: Option<Impact>,
    /// Listening services its members may have.
    pub allowed_services: Option<Vec<String>>,
}

/// The inventory's operations for the API.
#[derive(Clone)]
pub struct InventoryService {
    store: Arc<dyn Store>,
    index: Arc<FleetIndex>,
}

impl InventoryService {
    /// A service over `store` and its fleet `index`.
    pub fn new(store: Arc<dyn Store>, index: Arc<FleetIndex>) -> InventoryService {
        InventoryService { store, index }
    }

    /// The fleet index.
    pub fn index(&self) -> &Arc<FleetIndex> {
        &self.index
    }

    fn tenant(&self) -> &TenantId {
        self.index.tenant()
    }

    /// Parses a search query.
    pub fn parse_query(&self, text: &str) -> Result<Query, InventoryError> {
        Ok(Query::parse(text, device_schema())?)
    }

    /// Devices matching `query`, ordered by id.
    pub fn search(
        &self,
        query: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<SearchPage, InventoryError> {
        let query = query
            .filter(|q| !q.trim().is_empty())
            .map(|q| self.parse_query(q))
            .transpose()?;
        Ok(self.index.search(query.as_ref(), after, limit))
    }

    /// Sets and removes tags.
    pub async fn update_tags(
        &self,
        device: &DeviceId,
        set: BTreeMap<String, String>,
        remove: Vec<String>,
        audit: AuditRecord,
    ) -> Result<BTreeMap<String, String>, InventoryError> {
        for (k, v) in &set {
            validate_tag(k, v)?;
        }
        for k in &remove {
            check_name("tag key", k)?;
        }
        let tags = self
            .store
            .device_tags_update(self.tenant(), device, set, remove, audit)
            .await?;
        self.index.set_tags(device, tags.clone());
        Ok(tags)
    }

    fn check_spec(spec: &GroupSpec) -> Result<Option<Query>, InventoryError> {
        check_name("group name", &spec.name)?;
        if spec.description.chars().count() > 1024 {
            return Err(invalid("description", "must be at most 1024 characters"));
        }
        for s in spec.allowed_services.iter().flatten() {
            check_service(s)?;
        }
        Ok(spec.query.as_deref().map(compile_group_query).transpose()?)
    }

    /// Creates a group.
    pub async fn create_group(
        &self,
        spec: GroupSpec,
        created_by: &str,
        audit: AuditRecord,
    ) -> Result<Group, InventoryError> {
        let query = Self::check_spec(&spec)?;
        let now = now_ms();
        let group = self
            .store
            .group_create(
                Group {
                    tenant: self.tenant().clone(),
                    name: spec.name,
                    description: spec.description,
                    query: query.as_ref().map(|q| q.text().to_owned()),
                    impact: spec.impact,
                    allowed_services: spec.allowed_services,
                    created_by: created_by.to_owned(),
                    created_at: now,
                    updated_at: now,
                },
                audit,
            )
            .await?;
        self.index.put_group(group.clone(), query);
        Ok(group)
    }

    /// Replaces a group's description, query, impact and allow-list.
    pub async fn update_group(
        &self,
        spec: GroupSpec,
        audit: AuditRecord,
    ) -> Result<Group, InventoryError> {
        let query = Self::check_spec(&spec)?;
        let existing = self
            .store
            .group_get(self.tenant(), &spec.name)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: format!("group {:?}", spec.name),
            })?;
        let group = self
            .store
            .group_update(
                Group {
                    description: spec.description,
                    query: query.as_ref().map(|q| q.text().to_owned()),
                    impact: spec.impact,
                    allowed_services: spec.allowed_services,
                    updated_at: now_ms(),
                    ..existing
                },
                audit,
            )
            .await?;
        self.index.put_group(group.clone(), query);
        Ok(group)
    }

    /// Deletes a group.
    pub async fn delete_group(
        &self,
        name: &str,
        audit: AuditRecord,
    ) -> Result<Group, InventoryError> {
        let group = self.store.group_delete(self.tenant(), name, audit).await?;
        self.index.remove_group(name);
        Ok(group)
    }

    /// Adds devices to, or removes them from, a static group.
    pub async fn change_members(
        &self,
        name: &str,
        devices: Vec<DeviceId>,
        add: bool,
        audit: AuditRecord,
    ) -> Result<u64, InventoryError> {
        if devices.len() > 10_000 {
            return Err(invalid("devices", "at most 10,000 per request"));
        }
        let changed = self
            .store
            .group_members_change(self.tenant(), name, devices.clone(), add, audit)
            .await?;
        self.index.change_members(name, &devices, add);
        Ok(changed)
    }

    /// Groups with their member counts.
    pub async fn groups(&self) -> Result<Vec<(Group, usize)>, InventoryError> {
        let sizes = self.index.group_sizes();
        Ok(self
            .store
            .groups_list(self.tenant())
            .await?
            .into_iter()
            .map(|g| {
                let n = sizes.get(&g.name).copied().unwrap_or(0);
                (g, n)
            })
            .collect())
    }

    /// Sets or removes a model's minimum firmware version.
    pub async fn set_firmware_policy(
        &self,
        model: &str,
        minimum: Option<&str>,
        by: &str,
        audit: AuditRecord,
    ) -> Result<Option<FirmwarePolicy>, InventoryError> {
        if model.is_empty() || model.len() > 128 {
            return Err(invalid("model", "must be 1–128 characters"));
        }
        if let Some(m) = minimum
            && (m.is_empty() || m.len() > 64 || m.chars().any(char::is_whitespace))
        {
            return Err(invalid(
                "minimum_version",
                "must be 1–64 characters without spaces",
            ));
        }
        Ok(self
            .store
            .firmware_policy_set(self.tenant(), model, minimum, by, audit)
            .await?)
    }
}
