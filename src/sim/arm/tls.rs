//! The simulator's own CA and serving certificate. The CA key and certificate persist in the
//! state directory so a restarted simulator is still trusted by clients holding the CA file; the
//! serving certificate is re-issued from the same CA at each start.

use std::{path::Path, sync::Arc};

use anyhow::Context as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// PEM material of the CA and of the serving certificate.
pub struct Tls {
    pub ca_pem: String,
    pub server_config: Arc<rustls::ServerConfig>,
}

const CA_CERT: &str = "ca.pem";
const CA_KEY: &str = "ca-key.pem";

/// The CA's distinguished name must be the same each start: reloaded keys sign leaves whose
/// issuer field has to match the persisted CA certificate's subject.
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(
        DnType::CommonName,
        "azure-gallery-operator ARM simulator CA",
    );
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2045, 1, 1);
    params
}

/// Loads the CA from `state_dir` (or creates it there), then issues a serving certificate for
/// 127.0.0.1, ::1 and localhost.
pub fn load_or_create(state_dir: Option<&Path>) -> anyhow::Result<Tls> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let persisted = state_dir.and_then(|dir| {
        let cert = std::fs::read_to_string(dir.join(CA_CERT)).ok()?;
        let key = std::fs::read_to_string(dir.join(CA_KEY)).ok()?;
        Some((cert, key))
    });
    let (ca_pem, ca_key) = match persisted {
        Some((cert, key)) => (cert, KeyPair::from_pem(&key).context("reading the CA key")?),
        None => {
            let key = KeyPair::generate().context("generating the CA key")?;
            let cert = ca_params().self_signed(&key).context("signing the CA")?;
            let pem = cert.pem();
            if let Some(dir) = state_dir {
                super::store::write_atomic(&dir.join(CA_CERT), pem.as_bytes())?;
                super::store::write_atomic(&dir.join(CA_KEY), key.serialize_pem().as_bytes())?;
            }
            (pem, key)
        }
    };
    let issuer = Issuer::new(ca_params(), ca_key);

    let mut leaf = CertificateParams::new(vec!["localhost".to_string()])?;
    leaf.subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse()?));
    leaf.subject_alt_names
        .push(SanType::IpAddress("::1".parse()?));
    leaf.distinguished_name
        .push(DnType::CommonName, "ARM simulator");
    leaf.use_authority_key_identifier_extension = true;
    leaf.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.not_before = rcgen::date_time_ymd(2024, 1, 1);
    leaf.not_after = rcgen::date_time_ymd(2045, 1, 1);
    let leaf_key = KeyPair::generate()?;
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer)?;

    let chain = vec![rustls::pki_types::CertificateDer::from(
        leaf_cert.der().to_vec(),
    )];
    let key = rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der())
        .map_err(|e| anyhow::anyhow!("serving key: {e}"))?;
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("building the TLS configuration")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Tls {
        ca_pem,
        server_config: Arc::new(config),
    })
}
