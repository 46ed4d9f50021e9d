//! Route-level tests driven by the router's own route list (the OpenAPI document generated from
//! it): every protected route refuses anonymous requests with 401, and every role gets exactly
//! the answer its permissions call for on every route. A new route fails these tests until it
//! is authenticated and given an expectation here.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use axum::{
    Router,
    body::Body,
    http::{Method, Request, StatusCode},
};
use garrison_api::{ApiSettings, ApiState, ServerFacts, hash_secret, mint_token};
use garrison_core::{
    Permission, Role, TenantId, Username,
    audit::{Actor, AuditRecord},
    now_ms,
};
use garrison_store::{NewOperator, NewToken, SqliteStore, Store, TokenKind};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

/// Routes that answer without credentials. Anything else must be authenticated.
const PUBLIC: &[(&str, &str)] = &[
    ("post", "/api/v1/auth/login"),
    ("get", "/healthz"),
    ("get", "/readyz"),
];
const PASSWORD: &str = "correct horse battery staple";

struct Fixture {
    app: Router,
    store: Arc<dyn Store>,
    _intake: (
        tokio::sync::mpsc::Sender<garrison_inventory::Incoming>,
        tokio::sync::mpsc::Receiver<garrison_inventory::Incoming>,
    ),
    _hunts: tokio::sync::mpsc::Receiver<garrison_monitor::feeds::Hunt>,
    _dir: tempfile::TempDir,
}

async fn fixture(settings: ApiSettings) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&format!("sqlite://{}", dir.path().join("g.db").display()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let store: Arc<dyn Store> = Arc::new(store);
    let generated = garrison_pki::CertificateAuthority::generate("Test").unwrap();
    let ca = garrison_pki::CertificateAuthority::load(
        &generated.root_cert_pem,
        &generated.issuing_cert_pem,
        &generated.issuing_key_pem,
    )
    .unwrap();
    let ca = Arc::new(ca);
    let identity = garrison_identity::IdentityService::start(
        store.clone(),
        ca.clone(),
        garrison_identity::IdentitySettings::default(),
    )
    .await
    .unwrap();
    // A real broker, so session and message routes answer as in production.
    let server = ca
        .issue_server(&["127.0.0.1".into()], time::Duration::days(1))
        .unwrap();
    let write = |name: &str, text: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let (intake, mut messages) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move { while messages.recv().await.is_some() {} });
    let broker = garrison_broker::Broker::start(
        garrison_broker::BrokerSettings::new(
            "127.0.0.1:0".parse().unwrap(),
            write(
                "broker.pem",
                format!("{}{}", server.cert_pem, ca.issuing_pem()),
            ),
            write("broker.key", server.key_pem.clone()),
            write(
                "clients.pem",
                format!("{}{}", ca.issuing_pem(), ca.root_pem()),
            ),
        ),
        identity.clone(),
        intake,
    )
    .await
    .unwrap();
    let monitor_identity = identity.clone();
    let state = ApiState::new(
        store.clone(),
        identity,
        settings,
        garrison_api::metrics_handle(),
        ServerFacts::default(),
    );
    let broker: Arc<dyn garrison_broker::DeviceBroker> = Arc::new(broker);
    state.attach_broker(broker.clone());
    let index = Arc::new(garrison_inventory::FleetIndex::new(TenantId::default()));
    index.reload(store.as_ref()).await.unwrap();
    let responder = garrison_monitor::respond::LiveResponder::new(
        TenantId::default(),
        store.clone(),
        monitor_identity,
        garrison_inventory::InventoryService::new(store.clone(), index.clone()),
        Arc::new(std::sync::OnceLock::from(broker)),
    );
    state.attach_monitor(
        garrison_monitor::ResponseService::new(
            TenantId::default(),
            store.clone(),
            Arc::new(responder),
            garrison_monitor::playbook::parse(
                "built-in",
                garrison_monitor::playbook::DEFAULT_PLAYBOOKS,
            )
            .unwrap(),
        )
        .unwrap(),
    );
    let (intel, hunts) = garrison_monitor::feeds::IntelService::start(
        TenantId::default(),
        store.clone(),
        garrison_monitor::intel::ThreatIntel::default(),
        Vec::new(),
        75,
        garrison_monitor::intel::SharedIntel::default(),
    )
    .await
    .unwrap();
    state.attach_intel(intel);
    state.attach_releases(
        garrison_releases::Releases::open(
            store.clone(),
            TenantId::default(),
            dir.path().join("artifacts"),
            1 << 20,
        )
        .unwrap(),
    );
    state.attach_campaigns(garrison_campaigns::CampaignService::new(
        store.clone(),
        index.clone(),
        Arc::new(std::sync::OnceLock::new()),
        garrison_campaigns::CampaignSettings {
            tenant: TenantId::default(),
            download_base: "https://localhost:8443".into(),
            tick: std::time::Duration::from_secs(1),
            notices_per_tick: 100,
            ddi_poll: std::time::Duration::from_secs(10),
        },
    ));
    let intake = tokio::sync::mpsc::channel(1024);
    state.attach_intake(garrison_inventory::forward::Forwarder::new(
        &intake.0,
        index.clone(),
        store.clone(),
        garrison_contract::Limits::default(),
    ));
    state.attach_inventory(
        garrison_inventory::InventoryService::new(store.clone(), index.clone()),
        garrison_posture::PostureService::new(
            store.clone(),
            index,
            garrison_posture::PostureSettings {
                tenant: TenantId::default(),
                policy: garrison_posture::evaluate::Policy::default(),
                interval: std::time::Duration::ZERO,
                holder: "test".into(),
            },
        ),
    );
    Fixture {
        app: garrison_api::app(state),
        store,
        _intake: intake,
        _hunts: hunts,
        _dir: dir,
    }
}

async fn add_operator(store: &dyn Store, name: &str, role: Role) {
    let hash = hash_secret(PASSWORD).unwrap();
    let t = TenantId::default();
    store
        .operator_create(
            NewOperator {
                tenant: t.clone(),
                username: Username::new(name).unwrap(),
                role,
                password_hash: hash,
            },
            AuditRecord::new(&t, Actor::system("test"), "operator.create", name),
        )
        .await
        .unwrap();
}

async fn api_token(store: &dyn Store, owner: &str, role: Role) -> (String, String) {
    let minted = mint_token().unwrap();
    let t = TenantId::default();
    store
        .token_create(
            NewToken {
                id: minted.id.clone(),
                tenant: t.clone(),
                owner: Username::new(owner).unwrap(),
                kind: TokenKind::Api,
                name: "test".into(),
                role,
                secret_hash: minted.secret_hash,
                expires_at: Some(now_ms() + 3_600_000),
            },
            AuditRecord::new(&t, Actor::system("test"), "token.create", &minted.id),
        )
        .await
        .unwrap();
    (minted.id, minted.token)
}

async fn call(
    app: &Router,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = Request::builder()
        .method(Method::from_bytes(method.to_uppercase().as_bytes()).unwrap())
        .uri(path);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let body = match body {
        Some(b) => {
            req = req.header("content-type", "application/json");
            Body::from(b.to_string())
        }
        None => Body::empty(),
    };
    let resp = app.clone().oneshot(req.body(body).unwrap()).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Every (method, path, permission) in the router's OpenAPI document.
fn routes() -> Vec<(String, String, Option<Permission>)> {
    let doc = serde_json::to_value(garrison_api::openapi()).unwrap();
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let scopes: Vec<&str> = op["security"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r.get("bearer"))
                .filter_map(Value::as_array)
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            assert!(
                scopes.len() <= 1,
                "{method} {path} names more than one permission"
            );
            let perm = scopes.first().map(|s| {
                Permission::from_name(s)
                    .unwrap_or_else(|| panic!("{method} {path}: unknown permission {s}"))
            });
            out.push((method.clone(), path.clone(), perm));
        }
    }
    assert!(out.len() >= 18, "route list unexpectedly short: {out:?}");
    out
}

fn concrete(path: &str, token_id: &str) -> String {
    path.replace("{username}", "victim")
        .replace("{serial}", "4f00aa")
        .replace("{name}", "lab")
        .replace("{model}", "cam-x")
        .replace("{id}", token_id)
}

/// A valid body per route, so permission (not validation) decides the answer.
fn body_for(method: &str, path: &str, role: Role) -> Option<Value> {
    match (method, path) {
        ("post", "/api/v1/operators") => {
            Some(json!({ "username": format!("new-{}", role.as_str()), "role": "read-only" }))
        }
        ("post", "/api/v1/tokens") => Some(json!({ "name": "matrix", "role": "read-only" })),
        ("post", "/api/v1/enrollment/tokens") => Some(json!({ "device_pattern": "cam-*" })),
        ("post", "/api/v1/enrollment/claims") => {
            Some(json!({ "name": format!("factory-{}", role.as_str()), "max_uses": 5 }))
        }
        ("post", "/api/v1/enrollment/preauthorized") => Some(json!({ "device_id": "cam-7" })),
        ("post", "/api/v1/devices/{id}/messages") => {
            Some(json!({ "channel": "cmd", "payload": { "schema": 1 } }))
        }
        ("post", "/api/v1/groups") => Some(json!({
            "name": format!("group-{}", role.as_str()),
            "query": "model = cam-x",
            "impact": "high",
            "allowed_services": ["tcp/443"],
        })),
        ("put", "/api/v1/groups/{name}") => Some(json!({ "description": "matrix" })),
        ("post", "/api/v1/groups/{name}/members") => Some(json!({ "add": [] })),
        ("patch", "/api/v1/devices/{id}/tags") => Some(json!({ "set": { "site": "berlin" } })),
        ("post", "/api/v1/findings/{id}/suppress") => Some(json!({ "reason": "matrix" })),
        ("put", "/api/v1/posture/firmware-policies/{model}") => {
            Some(json!({ "minimum_version": "2.1" }))
        }
        ("post", "/api/v1/intake/messages") => Some(json!({ "messages": [] })),
        ("post", "/api/v1/updates/campaigns") => Some(json!({
            "name": "matrix", "release": "none", "target": { "group": "cams" },
        })),
        ("put", "/api/v1/devices/{id}/unpatchable") => {
            Some(json!({ "reason": "end-of-support", "control": "none" }))
        }
        ("put", "/api/v1/updates/windows/{group}") => {
            Some(json!({ "start": "02:00", "duration_minutes": 60 }))
        }
        ("post", "/api/v1/auth/password") => {
            Some(json!({ "current_password": PASSWORD, "new_password": PASSWORD }))
        }
        ("post", _) => Some(json!({})),
        _ => None,
    }
}

#[tokio::test]
async fn every_protected_route_rejects_anonymous_and_bad_tokens() {
    let f = fixture(ApiSettings::default()).await;
    for (method, path, perm) in routes() {
        let public = PUBLIC.contains(&(method.as_str(), path.as_str()));
        assert_eq!(
            perm.is_none(),
            public,
            "{method} {path}: a route without a permission must be in PUBLIC, and only those"
        );
        if public {
            continue;
        }
        let p = concrete(&path, "0193a1b2-0000-7000-8000-000000000000");
        let body = body_for(&method, &path, Role::Admin);
        let (status, json) = call(&f.app, &method, &p, None, body.clone()).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method} {path} without credentials"
        );
        assert_eq!(json["code"], "unauthenticated");
        let (status, _) = call(
            &f.app,
            &method,
            &p,
            Some("gar_0193a1b2000070008000000000000000_bogus"),
            body,
        )
        .await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method} {path} with a forged token"
        );
    }
}

#[tokio::test]
async fn role_matrix_for_every_route() {
    let f = fixture(ApiSettings::default()).await;
    add_operator(f.store.as_ref(), "victim", Role::ReadOnly).await;
    for (method, path, perm) in routes() {
        let Some(perm) = perm else { continue };
        for &role in Role::ALL {
            let owner = format!("{}-{}", role.as_str(), path.len());
            if f.store
                .operator_get(&TenantId::default(), &Username::new(owner.clone()).unwrap())
                .await
                .unwrap()
                .is_none()
            {
                add_operator(f.store.as_ref(), &owner, role).await;
            }
            let (_id, token) = api_token(f.store.as_ref(), &owner, role).await;
            let (own_id, _) = api_token(f.store.as_ref(), &owner, role).await;
            let p = concrete(&path, &own_id);
            let (status, json) = call(
                &f.app,
                &method,
                &p,
                Some(&token),
                body_for(&method, &path, role),
            )
            .await;
            if role.grants(perm) {
                assert!(
                    status != StatusCode::UNAUTHORIZED
                        && status != StatusCode::FORBIDDEN
                        && status.as_u16() < 500,
                    "{role} holds {perm} but {method} {p} answered {status}: {json}"
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{role} lacks {perm}: {method} {p} answered {status}: {json}"
                );
                assert_eq!(json["code"], "forbidden");
            }
        }
    }
}

#[tokio::test]
async fn login_session_logout_and_throttling() {
    let settings = ApiSettings {
        login_max_per_user: 3,
        ..ApiSettings::default()
    };
    let f = fixture(settings).await;
    add_operator(f.store.as_ref(), "alice", Role::Analyst).await;
    let (status, session) = call(
        &f.app,
        "post",
        "/api/v1/auth/login",
        None,
        Some(json!({"username":"alice","password":PASSWORD})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{session}");
    let token = session["token"].as_str().unwrap().to_owned();
    let (status, me) = call(&f.app, "get", "/api/v1/auth/whoami", Some(&token), None).await;
    assert_eq!(
        (status, me["role"].as_str()),
        (StatusCode::OK, Some("analyst"))
    );
    assert_eq!(me["credential"], "session");

    let (status, _) = call(
        &f.app,
        "post",
        "/api/v1/auth/logout",
        Some(&token),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(&f.app, "get", "/api/v1/auth/whoami", Some(&token), None).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a revoked session stops working at once"
    );

    for _ in 0..3 {
        let (status, _) = call(
            &f.app,
            "post",
            "/api/v1/auth/login",
            None,
            Some(json!({"username":"alice","password":"wrong password!"})),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, body) = call(
        &f.app,
        "post",
        "/api/v1/auth/login",
        None,
        Some(json!({"username":"alice","password":PASSWORD})),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["code"], "rate_limited");
    let failures = f
        .store
        .audit_list(
            &TenantId::default(),
            &garrison_store::PageRequest::first(100),
        )
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.action == "auth.login_failed")
        .count();
    assert_eq!(failures, 3, "every failed login is audited");
}

#[tokio::test]
async fn bad_bodies_get_clear_errors() {
    let settings = ApiSettings {
        max_body_bytes: 2048,
        ..ApiSettings::default()
    };
    let f = fixture(settings).await;
    add_operator(f.store.as_ref(), "root", Role::Admin).await;
    let (_, token) = api_token(f.store.as_ref(), "root", Role::Admin).await;
    let t = Some(token.as_str());

    // Each bad body gets a 400 that names the field to blame.
    let cases = [
        (
            "/api/v1/operators",
            json!({"username":"x","role":"wizard"}),
            "role",
        ),
        (
            "/api/v1/operators",
            json!({"username":"x","role":"analyst","colour":"red"}),
            "colour",
        ),
        (
            "/api/v1/operators",
            json!({"username":"Bad Name","role":"analyst"}),
            "username",
        ),
        ("/api/v1/operators", json!({"role":"analyst"}), "username"),
        (
            "/api/v1/tokens",
            json!({"name":"x","expires_in":"forever"}),
            "expires_in",
        ),
        ("/api/v1/tokens", json!({"name":""}), "name"),
    ];
    for (path, body, field) in cases {
        let (s, b) = call(&f.app, "post", path, t, Some(body.clone())).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body} -> {b}");
        assert_eq!(
            (b["code"].as_str(), b["field"].as_str()),
            (Some("invalid_body"), Some(field)),
            "{body} -> {b}"
        );
    }
    let (s, b) = call(
        &f.app,
        "post",
        "/api/v1/operators",
        t,
        Some(json!({"username":"x","role":"analyst","password": "y".repeat(4000)})),
    )
    .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large")),
        "{b}"
    );

    let req = Request::post("/api/v1/operators")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Body::from("{\"username\": \"x\", "))
        .unwrap();
    let resp = f.app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let req = Request::post("/api/v1/operators")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::from("x"))
        .unwrap();
    assert_eq!(
        f.app.clone().oneshot(req).await.unwrap().status(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );

    let (s, b) = call(&f.app, "get", "/api/v1/operators?limit=0", t, None).await;
    assert_eq!(
        (s, b["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("limit")),
        "{b}"
    );
    let (s, b) = call(&f.app, "get", "/api/v1/operators?limt=5", t, None).await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_query")),
        "{b}"
    );

    // Nothing invalid was half-applied.
    assert_eq!(
        f.store.operators_count(&TenantId::default()).await.unwrap(),
        1
    );
}

#[tokio::test]
async fn tokens_never_escalate_and_revocation_is_immediate() {
    let f = fixture(ApiSettings::default()).await;
    add_operator(f.store.as_ref(), "ana", Role::Analyst).await;
    let (_, token) = api_token(f.store.as_ref(), "ana", Role::Analyst).await;
    let (s, _) = call(
        &f.app,
        "post",
        "/api/v1/tokens",
        Some(&token),
        Some(json!({"name":"up","role":"admin"})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, created) = call(
        &f.app,
        "post",
        "/api/v1/tokens",
        Some(&token),
        Some(json!({"name":"ro","role":"read-only"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let new = created["token"].as_str().unwrap();
    let id = created["info"]["id"].as_str().unwrap();
    assert_eq!(
        call(&f.app, "get", "/api/v1/auth/whoami", Some(new), None)
            .await
            .0,
        StatusCode::OK
    );
    let (s, _) = call(
        &f.app,
        "delete",
        &format!("/api/v1/tokens/{id}"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        call(&f.app, "get", "/api/v1/auth/whoami", Some(new), None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let (s, list) = call(&f.app, "get", "/api/v1/tokens", Some(&token), None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == id && t["state"] == "revoked")
    );
}

#[tokio::test]
async fn probes_docs_and_metrics() {
    let f = fixture(ApiSettings::default()).await;
    add_operator(f.store.as_ref(), "root", Role::Admin).await;
    let (_, token) = api_token(f.store.as_ref(), "root", Role::Admin).await;
    assert_eq!(
        call(&f.app, "get", "/healthz", None, None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(&f.app, "get", "/readyz", None, None).await.1["status"],
        "ready"
    );
    let (s, spec) = call(&f.app, "get", "/api/openapi.json", Some(&token), None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(spec["paths"]["/api/v1/operators"].is_object());
    let (s, html) = get_text(&f.app, "/api/docs", &token).await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("/api/v1/tokens") && html.contains("operators:write"));
    let (s, text) = get_text(&f.app, "/metrics", &token).await;
    assert_eq!(s, StatusCode::OK);
    assert!(text.contains("garrison_http_requests_total"), "{text}");
    assert_eq!(
        call(&f.app, "get", "/nope", Some(&token), None).await.1["code"],
        "not_found"
    );
}

/// GET with a bearer token, returning the body as text (for non-JSON routes).
async fn get_text(app: &Router, path: &str, token: &str) -> (StatusCode, String) {
    let req = Request::get(path)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}
