//! Enrollment over Secure Transport (RFC 7030) and the public PKI documents.
//!
//! `/.well-known/est/{cacerts,simpleenroll,simplereenroll,csrattrs}` speak the RFC's wire
//! format — `application/pkcs10` requests and `application/pkcs7-mime` certs-only responses,
//! both base64 — so stock EST clients and `openssl` + `curl` work. A device authenticates with
//! a bootstrap token as the HTTP Basic password (or `Bearer gbt_…`), with a client certificate
//! (its own, to renew; or a factory claim certificate), or with nothing, in which case its
//! request waits in the approval queue (202 + `Retry-After`, as §4.2.3 prescribes).
//!
//! `/pki/ca.pem` and `/pki/crl` (DER; `/pki/crl.pem` for people) are public by nature.
//! These routes are not part of the OpenAPI document: they are a standard protocol, not
//! Garrison's API.

use axum::{
    Router,
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use base64::Engine;
use garrison_identity::{Credential, EnrollError, EnrollOutcome, EnrollRequest};

use crate::{ApiState, ClientAddr, ClientCertificate};

pub(crate) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/.well-known/est/cacerts", get(cacerts))
        .route("/.well-known/est/csrattrs", get(csrattrs))
        .route(
            "/.well-known/est/simpleenroll",
            post(|State(state), request| enroll(state, false, request)),
        )
        .route(
            "/.well-known/est/simplereenroll",
            post(|State(state), request| enroll(state, true, request)),
        )
        .route("/pki/ca.pem", get(ca_pem))
        .route("/pki/crl", get(crl_der))
        .route("/pki/crl.pem", get(crl_pem))
}

/// Base64 with 64-character lines, which every decoder (including `openssl base64 -d`) reads.
fn base64_lines(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 1);
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out
}

fn base64_body(content_type: &'static str, der: &[u8]) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::HeaderName::from_static("content-transfer-encoding"),
                HeaderValue::from_static("base64"),
            ),
        ],
        base64_lines(der),
    )
        .into_response()
}

fn text(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{}\n", message.into()),
    )
        .into_response()
}

async fn cacerts(State(state): State<ApiState>) -> Response {
    match state.identity().ca_certs_pkcs7() {
        Ok(der) => base64_body("application/pkcs7-mime", &der),
        Err(e) => {
            tracing::error!(error = %e, "Cannot encode the CA certificates");
            text(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}

async fn csrattrs() -> Response {
    base64_body("application/csrattrs", &garrison_pki::csr_attributes())
}

async fn ca_pem(State(state): State<ApiState>) -> Response {
    let ca = state.identity().ca();
    (
        [(header::CONTENT_TYPE, "application/x-pem-file")],
        format!("{}{}", ca.root_pem(), ca.issuing_pem()),
    )
        .into_response()
}

async fn crl_der(State(state): State<ApiState>) -> Response {
    let crl = state.identity().crl().await;
    (
        [(header::CONTENT_TYPE, "application/pkix-crl")],
        crl.der.clone(),
    )
        .into_response()
}

async fn crl_pem(State(state): State<ApiState>) -> Response {
    let crl = state.identity().crl().await;
    (
        [(header::CONTENT_TYPE, "application/x-pem-file")],
        crl.pem.clone(),
    )
        .into_response()
}

/// The bootstrap token from `Authorization: Basic` (the password; the user name is ignored,
/// as devices often put their id there) or `Authorization: Bearer gbt_…`.
fn bootstrap_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    if let Some(b64) = value.strip_prefix("Basic ") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        return text
            .split_once(':')
            .map(|(_, password)| password.to_owned());
    }
    value.strip_prefix("Bearer ").map(|t| t.trim().to_owned())
}

/// `simpleenroll` (any credential) and `simplereenroll` (`renewal_only`: the client
/// certificate).
async fn enroll(state: ApiState, renewal_only: bool, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    let source = parts
        .extensions
        .get::<ClientAddr>()
        .map(|a| a.0.ip().to_string());
    let cert = parts.extensions.get::<ClientCertificate>().cloned();
    // A CSR is a few hundred bytes; anything near this limit is refused by the CSR parser.
    let body = match axum::body::to_bytes(body, 4 * garrison_pki::MAX_CSR_BYTES).await {
        Ok(body) => body,
        Err(_) => {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                source.as_deref(),
                "the request body is too large for a CSR",
            );
        }
    };
    let credential = match (bootstrap_token(&headers), cert) {
        (_, Some(ClientCertificate(cert))) => Credential::Certificate(cert),
        (Some(token), None) if !renewal_only => Credential::BootstrapToken(token),
        (_, None) if renewal_only => {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "renewal",
                source.as_deref(),
                "simplereenroll needs the device's current certificate as the TLS client certificate",
            );
        }
        (None, None) | (Some(_), None) => Credential::None,
    };
    let request = EnrollRequest {
        csr: body.to_vec(),
        credential,
        source: source.clone(),
    };
    match state.identity().enroll(request).await {
        Ok(EnrollOutcome::Issued { der, certificate }) => {
            // The fleet index learns of the device now, not at its first message, so it is
            // listed (and searchable) from the moment it has an identity.
            if let Ok(inventory) = state.inventory()
                && let Ok(device) = garrison_core::DeviceId::new(certificate.subject.clone())
                && let Ok(Some(d)) = state.store().device_get(&certificate.tenant, &device).await
            {
                inventory.index().upsert_device(&d);
            }
            let p7 = garrison_pki::pkcs7_certs_only(&[der.into()]);
            let mut response = base64_body("application/pkcs7-mime; smime-type=certs-only", &p7);
            *response.status_mut() = StatusCode::OK;
            response
        }
        Ok(EnrollOutcome::Pending { retry_after }) => {
            metrics::counter!("garrison_enrollment_pending_total").increment(1);
            let mut response = text(
                StatusCode::ACCEPTED,
                "the request is waiting for an operator's approval; ask again later",
            );
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after.as_secs().max(1)),
            );
            response
        }
        Err(EnrollError::Csr(e)) => refuse(
            StatusCode::BAD_REQUEST,
            "bad_csr",
            source.as_deref(),
            &e.to_string(),
        ),
        Err(EnrollError::Unauthenticated(m)) => {
            let mut response = refuse(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                source.as_deref(),
                &m,
            );
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"garrison-est\""),
            );
            response
        }
        Err(EnrollError::Forbidden(m)) => {
            refuse(StatusCode::FORBIDDEN, "forbidden", source.as_deref(), &m)
        }
        Err(e @ EnrollError::QueueFull(_)) => {
            let mut response = refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "queue_full",
                source.as_deref(),
                &e.to_string(),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(300u32));
            response
        }
        Err(e) => {
            tracing::error!(error = %e, "Enrollment failed");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error; the server log has the details",
            )
        }
    }
}

fn refuse(
    status: StatusCode,
    reason: &'static str,
    source: Option<&str>,
    message: &str,
) -> Response {
    metrics::counter!("garrison_enrollment_refused_total", "reason" => reason).increment(1);
    tracing::warn!(
        source,
        reason,
        detail = message,
        "Refused an enrollment request"
    );
    text(status, message)
}
