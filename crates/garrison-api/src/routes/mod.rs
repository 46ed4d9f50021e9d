//! Route handlers, one module per resource. Each handler carries its `#[utoipa::path]`
//! (method, path, permission as the security scope, responses) beside its code.

mod audit;
mod auth;
mod campaigns;
mod devices;
mod enrollment;
mod intake;
mod intel;
mod inventory;
mod monitor;
mod operators;
mod posture;
mod system;
mod tokens;
mod updates;

pub(crate) use campaigns::campaign_error;
pub(crate) use updates::release_error;

use utoipa_axum::{router::OpenApiRouter, routes};

use crate::ApiState;

/// Routes that must answer without credentials: login and the probes.
pub(crate) fn public() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(auth::login))
        .routes(routes!(system::healthz))
        .routes(routes!(system::readyz))
}

/// Everything else; the caller layer in [`crate::app`] authenticates all of it.
/// Authenticated routes whose bodies are streamed: exempt from the body limit, the whole-body
/// read and the request timeout of [`protected`] (they bound what they read themselves).
pub(crate) fn streaming() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new().routes(routes!(
        updates::upload_artifact,
        updates::download_artifact
    ))
}

pub(crate) fn protected() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(auth::logout))
        .routes(routes!(auth::whoami))
        .routes(routes!(auth::change_password))
        .routes(routes!(operators::list, operators::create))
        .routes(routes!(operators::get))
        .routes(routes!(operators::disable))
        .routes(routes!(operators::enable))
        .routes(routes!(tokens::list, tokens::create))
        .routes(routes!(tokens::revoke))
        .routes(routes!(audit::list))
        .routes(routes!(audit::verify))
        .routes(routes!(inventory::list))
        .routes(routes!(inventory::get))
        .routes(routes!(inventory::export))
        .routes(routes!(inventory::fields))
        .routes(routes!(inventory::inventory))
        .routes(routes!(inventory::sbom))
        .routes(routes!(inventory::history))
        .routes(routes!(inventory::tags))
        .routes(routes!(inventory::drift))
        .routes(routes!(inventory::events))
        .routes(routes!(inventory::destinations))
        .routes(routes!(inventory::unmanaged))
        .routes(routes!(inventory::groups, inventory::create_group))
        .routes(routes!(
            inventory::group,
            inventory::update_group,
            inventory::delete_group
        ))
        .routes(routes!(inventory::group_devices))
        .routes(routes!(inventory::members))
        .routes(routes!(posture::checks))
        .routes(routes!(posture::runs, posture::run))
        .routes(routes!(posture::findings))
        .routes(routes!(posture::export_findings))
        .routes(routes!(posture::finding))
        .routes(routes!(posture::suppress))
        .routes(routes!(posture::unsuppress))
        .routes(routes!(posture::firmware_policies))
        .routes(routes!(
            posture::set_firmware_policy,
            posture::delete_firmware_policy
        ))
        .routes(routes!(monitor::alerts))
        .routes(routes!(monitor::alert, monitor::update_alert))
        .routes(routes!(monitor::incidents))
        .routes(routes!(monitor::responses))
        .routes(routes!(monitor::approve))
        .routes(routes!(monitor::reject))
        .routes(routes!(monitor::undo))
        .routes(routes!(monitor::playbooks))
        .routes(routes!(intake::messages))
        .routes(routes!(intel::sources))
        .routes(routes!(intel::import, intel::delete))
        .routes(routes!(updates::root, updates::pin_root))
        .routes(routes!(updates::root_document))
        .routes(routes!(updates::releases, updates::publish))
        .routes(routes!(updates::release))
        .routes(routes!(updates::manifest))
        .routes(routes!(
            devices::create_ddi_token,
            devices::delete_ddi_token
        ))
        .routes(routes!(
            devices::mark_unpatchable,
            devices::unmark_unpatchable
        ))
        .routes(routes!(devices::unpatchable))
        .routes(routes!(campaigns::list, campaigns::create))
        .routes(routes!(campaigns::get))
        .routes(routes!(campaigns::approve))
        .routes(routes!(campaigns::cancel))
        .routes(routes!(campaigns::devices))
        .routes(routes!(campaigns::history))
        .routes(routes!(campaigns::windows))
        .routes(routes!(campaigns::set_window, campaigns::delete_window))
        .routes(routes!(devices::quarantine))
        .routes(routes!(devices::release))
        .routes(routes!(devices::rotate))
        .routes(routes!(devices::session))
        .routes(routes!(devices::send_message))
        .routes(routes!(devices::certificates))
        .routes(routes!(devices::certificate))
        .routes(routes!(devices::revoke))
        .routes(routes!(enrollment::tokens, enrollment::create_token))
        .routes(routes!(enrollment::revoke_token))
        .routes(routes!(enrollment::claims, enrollment::create_claim))
        .routes(routes!(enrollment::requests))
        .routes(routes!(enrollment::approve))
        .routes(routes!(enrollment::reject))
        .routes(routes!(enrollment::preauthorize))
        .routes(routes!(system::info))
        .routes(routes!(system::metrics))
        .routes(routes!(system::openapi_json))
        .routes(routes!(system::docs))
}

/// Parses a username from a path segment.
pub(crate) fn path_username(raw: &str) -> crate::ApiResult<garrison_core::Username> {
    garrison_core::Username::new(raw)
        .map_err(|e| crate::ApiError::invalid_path("username", e.to_string()))
}

/// Checks a new password's strength.
pub(crate) fn check_password(field: &str, password: &str) -> crate::ApiResult<()> {
    if password.chars().count() < 12 {
        return Err(crate::ApiError::invalid_body(
            Some(field.to_owned()),
            "passwords must be at least 12 characters",
        ));
    }
    if password.len() > 1024 {
        return Err(crate::ApiError::invalid_body(
            Some(field.to_owned()),
            "passwords must be at most 1024 bytes",
        ));
    }
    Ok(())
}

/// Runs argon2 hashing off the async runtime.
pub(crate) async fn hash_blocking(secret: String) -> crate::ApiResult<String> {
    tokio::task::spawn_blocking(move || crate::hash_secret(&secret))
        .await
        .map_err(crate::ApiError::internal)?
        .map_err(crate::ApiError::internal)
}

/// Mints a token off the async runtime (its secret is argon2-hashed).
pub(crate) async fn mint_blocking() -> crate::ApiResult<crate::MintedToken> {
    tokio::task::spawn_blocking(crate::mint_token)
        .await
        .map_err(crate::ApiError::internal)?
        .map_err(crate::ApiError::internal)
}
