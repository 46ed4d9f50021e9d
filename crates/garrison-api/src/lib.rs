//! Garrison's operator REST API: routes, authentication, RBAC, OpenAPI, metrics, and the HTTPS
//! server that carries them.
//!
//! Conventions every capability reuses (see `ARCHITECTURE.md`):
//! - routes live under `/api/v1/…` and are registered through [`utoipa_axum`], so the OpenAPI
//!   document is generated from the router itself and cannot drift from it;
//! - every route except `login`, `/healthz` and `/readyz` sits behind the authentication layer,
//!   and each handler's first act is `caller.require(Permission::…)`; the permission is the
//!   OpenAPI security scope of the route, and a test checks every role against every route;
//! - errors are [`ErrorBody`] JSON with a stable `code`; bodies are read through [`ApiJson`]
//!   (size-limited, strict, field-naming errors); lists take [`Pagination`] and return
//!   [`views::PageOf`].
//!
//! Architecture invariant: only this crate knows HTTP and the wire JSON; it converts store
//! records to [`views`] by hand, since a serialised shape is a compatibility promise.
#![forbid(unsafe_code)]

mod auth;
mod device;
mod docs;
mod error;
mod est;
mod extract;
mod hawkbit;
mod middleware;
mod routes;
mod server;
pub mod views;

use std::{
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};

use axum::{
    Extension, Router,
    extract::DefaultBodyLimit,
    http::{HeaderValue, StatusCode, header},
};
use garrison_core::TenantId;
use garrison_identity::IdentityService;
use garrison_store::Store;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tower_http::{set_header::SetResponseHeaderLayer, timeout::TimeoutLayer};
use utoipa::OpenApi;

pub use auth::{
    Authenticator, Caller, ClientAddr, ClientCertificate, HashError, LoginThrottle, MintedToken,
    generate_password, hash_secret, mint_token, verify_secret,
};
pub use error::{ApiError, ApiResult, ErrorBody};
pub use extract::{ApiJson, Pagination, StrictQuery};
pub use server::{ServeError, bind, serve_tls};

/// Settings the API needs, resolved from the server configuration.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// The tenant operators act in (single-tenant installs: `default`).
    pub tenant: TenantId,
    /// How long a login session lasts.
    pub session_ttl: Duration,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// A request taking longer is answered with 408.
    pub request_timeout: Duration,
    /// Failed-login window.
    pub login_window: Duration,
    /// Failed logins allowed per username per window.
    pub login_max_per_user: u32,
    /// Failed logins allowed per source address per window.
    pub login_max_per_source: u32,
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            tenant: TenantId::default(),
            session_ttl: Duration::from_secs(12 * 3600),
            max_body_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            login_window: Duration::from_secs(300),
            login_max_per_user: 5,
            login_max_per_source: 20,
        }
    }
}

/// Facts about the running server shown by `/api/v1/system/info`.
#[derive(Debug, Clone, Default)]
pub struct ServerFacts {
    /// SHA-256 fingerprint of the root CA certificate clients should trust.
    pub ca_fingerprint: String,
}

/// Shared state of every handler.
#[derive(Clone)]
pub struct ApiState {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    identity: IdentityService,
    broker: OnceLock<Arc<dyn garrison_broker::DeviceBroker>>,
    inventory: OnceLock<(
        garrison_inventory::InventoryService,
        garrison_posture::PostureService,
    )>,
    responses: OnceLock<garrison_monitor::ResponseService>,
    forwarder: OnceLock<garrison_inventory::forward::Forwarder>,
    intel: OnceLock<garrison_monitor::feeds::IntelService>,
    releases: OnceLock<garrison_releases::Releases>,
    campaigns: OnceLock<garrison_campaigns::CampaignService>,
    auth: Authenticator,
    throttle: LoginThrottle,
    settings: ApiSettings,
    metrics: PrometheusHandle,
    facts: ServerFacts,
    started: Instant,
    spec: OnceLock<utoipa::openapi::OpenApi>,
}

impl ApiState {
    /// State over `store`, enrolling devices through `identity`.
    pub fn new(
        store: Arc<dyn Store>,
        identity: IdentityService,
        settings: ApiSettings,
        metrics: PrometheusHandle,
        facts: ServerFacts,
    ) -> ApiState {
        ApiState {
            inner: Arc::new(Inner {
                auth: Authenticator::new(store.clone()),
                throttle: LoginThrottle::new(
                    settings.login_window,
                    settings.login_max_per_user,
                    settings.login_max_per_source,
                ),
                store,
                identity,
                broker: OnceLock::new(),
                inventory: OnceLock::new(),
                responses: OnceLock::new(),
                forwarder: OnceLock::new(),
                intel: OnceLock::new(),
                releases: OnceLock::new(),
                campaigns: OnceLock::new(),
                settings,
                metrics,
                facts,
                started: Instant::now(),
                spec: OnceLock::new(),
            }),
        }
    }

    pub(crate) fn store(&self) -> &dyn Store {
        self.inner.store.as_ref()
    }

    /// Attaches the running MQTT broker, for session state and server-to-device messages.
    pub fn attach_broker(&self, broker: Arc<dyn garrison_broker::DeviceBroker>) {
        let _ = self.inner.broker.set(broker);
    }

    pub(crate) fn broker(&self) -> Option<&dyn garrison_broker::DeviceBroker> {
        self.inner.broker.get().map(Arc::as_ref)
    }

    /// Attaches the inventory and the posture audit, for the inventory, group and finding
    /// routes.
    pub fn attach_inventory(
        &self,
        inventory: garrison_inventory::InventoryService,
        posture: garrison_posture::PostureService,
    ) {
        let _ = self.inner.inventory.set((inventory, posture));
    }

    /// Lets the API list playbooks and decide response actions.
    pub fn attach_monitor(&self, responses: garrison_monitor::ResponseService) {
        let _ = self.inner.responses.set(responses);
    }

    /// Opens the HTTP intake (`POST /api/v1/intake/messages`) into `forwarder`.
    pub fn attach_intake(&self, forwarder: garrison_inventory::forward::Forwarder) {
        let _ = self.inner.forwarder.set(forwarder);
    }

    /// Opens the release repository (`/api/v1/updates/…`).
    pub fn attach_releases(&self, releases: garrison_releases::Releases) {
        let _ = self.inner.releases.set(releases);
    }

    pub(crate) fn releases(&self) -> ApiResult<&garrison_releases::Releases> {
        self.inner.releases.get().ok_or_else(|| {
            ApiError::unavailable("the release repository is not running on this server")
        })
    }

    /// Opens the campaigns (`/api/v1/updates/campaigns`, `/api/v1/updates/windows`) and the
    /// devices' downloads (`/device/v1/artifacts/…`).
    pub fn attach_campaigns(&self, campaigns: garrison_campaigns::CampaignService) {
        let _ = self.inner.campaigns.set(campaigns);
    }

    pub(crate) fn campaigns(&self) -> ApiResult<&garrison_campaigns::CampaignService> {
        self.inner
            .campaigns
            .get()
            .ok_or_else(|| ApiError::unavailable("campaigns are not running on this server"))
    }

    /// Lets the API import and remove threat-intelligence sources.
    pub fn attach_intel(&self, intel: garrison_monitor::feeds::IntelService) {
        let _ = self.inner.intel.set(intel);
    }

    pub(crate) fn intel(&self) -> ApiResult<&garrison_monitor::feeds::IntelService> {
        self.inner
            .intel
            .get()
            .ok_or_else(|| ApiError::unavailable("monitoring is not running on this server"))
    }

    pub(crate) fn forwarder(&self) -> ApiResult<&garrison_inventory::forward::Forwarder> {
        self.inner
            .forwarder
            .get()
            .ok_or_else(|| ApiError::unavailable("the intake is not running on this server"))
    }

    pub(crate) fn responses(&self) -> ApiResult<&garrison_monitor::ResponseService> {
        self.inner
            .responses
            .get()
            .ok_or_else(|| ApiError::unavailable("monitoring is not running on this server"))
    }

    pub(crate) fn inventory(&self) -> ApiResult<&garrison_inventory::InventoryService> {
        self.inner
            .inventory
            .get()
            .map(|(i, _)| i)
            .ok_or_else(|| ApiError::unavailable("the inventory is not running on this server"))
    }

    pub(crate) fn posture(&self) -> ApiResult<&garrison_posture::PostureService> {
        self.inner
            .inventory
            .get()
            .map(|(_, p)| p)
            .ok_or_else(|| ApiError::unavailable("the posture audit is not running on this server"))
    }

    pub(crate) fn identity(&self) -> &IdentityService {
        &self.inner.identity
    }

    pub(crate) fn settings(&self) -> &ApiSettings {
        &self.inner.settings
    }

    /// The OpenAPI document built by [`app`] (or built afresh if `app` was not called).
    pub(crate) fn openapi(&self) -> utoipa::openapi::OpenApi {
        self.inner.spec.get().cloned().unwrap_or_else(openapi)
    }
}

/// Bucket bounds, in seconds, of the metrics exported as Prometheus histograms rather than
/// summaries: latencies whose distribution over any interval matters (a summary only gives
/// quantiles over its own rolling minute, and cannot be aggregated across replicas).
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0,
];

/// The process-wide Prometheus recorder, installed on first use. Later calls return the same
/// handle, so several routers in one process (tests) share it.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            // Fails only for an empty bucket list.
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("garrison_monitor_lag_seconds".into()),
                    LATENCY_BUCKETS,
                )
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder was installed first; then ours just stays local.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Garrison API",
        description = "Operator API of Garrison, the self-hosted IoT security server. \
            Authenticate with `Authorization: Bearer <token>`: a session token from \
            `POST /api/v1/auth/login` or an API token from `POST /api/v1/tokens`. Each \
            operation's security scope names the permission it needs; roles grant permissions \
            (see `GET /api/v1/auth/whoami`)."
    ),
    modifiers(&SecurityAddon),
    tags(
        (name = "auth", description = "Login, sessions and the caller's identity"),
        (name = "operators", description = "Operator accounts"),
        (name = "tokens", description = "API tokens"),
        (name = "audit", description = "The tamper-evident audit log"),
        (name = "devices", description = "Devices: inventory, search, tags, quarantine"),
        (name = "groups", description = "Device groups: static, or dynamic by query"),
        (name = "posture", description = "Posture audit: checks, runs, findings, firmware policies"),
        (name = "monitoring", description = "Monitoring and response: alerts, response actions, playbooks"),
        (name = "intake", description = "Device messages forwarded by gateways and collectors"),
        (name = "intel", description = "Threat-intelligence sources: import, list, remove"),
        (name = "updates", description = "Signed updates: the pinned trust root, artifacts, releases"),
        (name = "certificates", description = "Certificates Garrison issued: inspect, revoke, expiry"),
        (name = "enrollment", description = "Bootstrap tokens, claim certificates and the approval queue"),
        (name = "system", description = "Health, readiness, metrics, server information"),
    )
)]
struct ApiDoc;

struct SecurityAddon;

impl utoipa::Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A Garrison session or API token (`gar_…`)"))
                    .build(),
            ),
        );
    }
}

/// Builds the whole HTTP application: routes, auth layer, limits, metrics, security headers.
pub fn app(state: ApiState) -> Router {
    let (public, public_spec) = routes::public().split_for_parts();
    let (protected, protected_spec) = routes::protected().split_for_parts();
    let (streaming, streaming_spec) = routes::streaming().split_for_parts();
    let mut spec = ApiDoc::openapi();
    spec.merge(public_spec);
    spec.merge(protected_spec);
    spec.merge(streaming_spec);
    let _ = state.inner.spec.set(spec);

    let limit = state.settings().max_body_bytes;
    let protected = protected.layer(axum::middleware::from_fn_with_state(
        state.clone(),
        middleware::require_auth,
    ));
    // Uploads of artifacts are streamed to storage, which enforces its own size limit; they
    // are exempt from the body limit and the request timeout every other route has.
    let streaming = streaming
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::require_auth_streaming,
        ))
        .layer(DefaultBodyLimit::disable());
    let bounded = Router::new()
        .merge(public)
        .merge(protected)
        .merge(est::routes())
        .fallback(middleware::not_found)
        .method_not_allowed_fallback(middleware::method_not_allowed)
        .layer(Extension(extract::BodyLimit(limit)))
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(
            limit,
            middleware::read_whole_body,
        ))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            state.settings().request_timeout,
        ));
    Router::new()
        .merge(streaming)
        .merge(device::routes())
        .merge(hawkbit::routes())
        .merge(bounded)
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        ))
        .layer(axum::middleware::from_fn(middleware::record_metrics))
        .with_state(state)
}

/// The OpenAPI document of the application (built from the router's own route list).
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut spec = ApiDoc::openapi();
    spec.merge(routes::public().into_openapi());
    spec.merge(routes::protected().into_openapi());
    spec.merge(routes::streaming().into_openapi());
    spec
}
