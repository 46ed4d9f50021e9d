//! Shared set-up for the broker's integration tests: a throwaway store, CA and identity
//! service, a broker on an ephemeral loopback port, and device certificates issued by that CA.
//! Owns nothing a test asserts on; each test file brings its own clients.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs, dead_code)]

use std::sync::Arc;

use garrison_broker::{Broker, BrokerSettings, DeviceMessage};
use garrison_identity::{IdentityService, IdentitySettings};
use garrison_pki::{CertificateAuthority, DeviceCsr};
use garrison_store::{SqliteStore, Store};
use rcgen::{CertificateParams, DnType, KeyPair, PKCS_ECDSA_P256_SHA256};
use tokio::sync::mpsc;

/// A device identity: its id (certificate CN and MQTT client id) and PEM credentials.
#[derive(Clone)]
pub(crate) struct Device {
    pub(crate) id: String,
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
}

/// A running broker with everything it needs; dropping it removes the scratch directory.
pub(crate) struct TestBroker {
    pub(crate) broker: Broker,
    pub(crate) ca: Arc<CertificateAuthority>,
    pub(crate) identity: IdentityService,
    /// The root CA clients trust the broker's certificate by.
    pub(crate) root_pem: String,
    pub(crate) messages: mpsc::Receiver<DeviceMessage>,
    _dir: tempfile::TempDir,
}

impl TestBroker {
    /// Starts a broker with Garrison's default settings, adjusted by `adjust`.
    pub(crate) async fn start(name: &str, adjust: impl FnOnce(&mut BrokerSettings)) -> TestBroker {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        // RUST_LOG=rmqtt=info shows rmqtt's own log lines (it logs through `log`), e.g. why
        // it refused a connect.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&format!("sqlite://{}", dir.path().join("g.db").display()))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let store: Arc<dyn Store> = Arc::new(store);
        let generated = CertificateAuthority::generate(name).unwrap();
        let ca = Arc::new(
            CertificateAuthority::load(
                &generated.root_cert_pem,
                &generated.issuing_cert_pem,
                &generated.issuing_key_pem,
            )
            .unwrap(),
        );
        let identity = IdentityService::start(store, ca.clone(), IdentitySettings::default())
            .await
            .unwrap();
        let server = ca
            .issue_server(&["127.0.0.1".into()], time::Duration::days(1))
            .unwrap();
        let files = |file: &str, content: String| {
            let path = dir.path().join(file);
            std::fs::write(&path, content).unwrap();
            path
        };
        let mut settings = BrokerSettings::new(
            "127.0.0.1:0".parse().unwrap(),
            files(
                "server.pem",
                format!("{}{}", server.cert_pem, ca.issuing_pem()),
            ),
            files("server.key", server.key_pem.clone()),
            files(
                "clients.pem",
                format!("{}{}", ca.issuing_pem(), ca.root_pem()),
            ),
        );
        adjust(&mut settings);
        let (intake, messages) = mpsc::channel::<DeviceMessage>(settings.intake_capacity);
        let broker = Broker::start(settings, identity.clone(), intake)
            .await
            .unwrap();
        TestBroker {
            broker,
            root_pem: ca.root_pem().to_owned(),
            ca,
            identity,
            messages,
            _dir: dir,
        }
    }

    /// Issues a device certificate for `id` from the broker's CA.
    pub(crate) fn device(&self, id: &str) -> Device {
        device(&self.ca, id)
    }
}

/// Issues a device certificate for `id` (CN = id) from `ca`.
pub(crate) fn device(ca: &CertificateAuthority, id: &str) -> Device {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, id);
    let csr = params.serialize_request(&key).unwrap();
    let issued = ca
        .issue_device(
            &DeviceCsr::parse(csr.der()).unwrap(),
            time::Duration::days(1),
        )
        .unwrap();
    Device {
        id: id.into(),
        cert_pem: issued.pem,
        key_pem: key.serialize_pem(),
    }
}
