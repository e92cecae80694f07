//! HTTPS: rustls over the accepted TCP streams, hyper serving the router.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;

/// A certificate chain and its private key, PEM.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert_chain_pem: String,
    pub key_pem: String,
}

/// A throwaway certificate authority and a certificate for `localhost` and
/// `127.0.0.1` signed by it: (CA certificate PEM, server files). For
/// development, tests and benchmarks; never for a store in production.
pub fn dev_pki() -> anyhow::Result<(String, TlsFiles)> {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Aisle HQ development CA");
    let ca_key = rcgen::KeyPair::generate()?;
    let ca = ca_params.self_signed(&ca_key)?;
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    let key = rcgen::KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca, &ca_key)?;
    Ok((
        ca.pem(),
        TlsFiles {
            cert_chain_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        },
    ))
}

pub fn server_config(files: &TlsFiles) -> anyhow::Result<rustls::ServerConfig> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_slice_iter(files.cert_chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .context("reading the TLS certificate chain")?;
    if certs.is_empty() {
        anyhow::bail!("no certificate in the TLS certificate file");
    }
    let key = PrivateKeyDer::from_pem_slice(files.key_pem.as_bytes())
        .context("reading the TLS private key (no PEM private key in the file?)")?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the TLS certificate and key do not match")?;
    Ok(config)
}

pub async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    files: &TlsFiles,
    limits: crate::ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config(files)?));
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    tracing::warn!(error = %err, "accept failed");
                    continue;
                }
            },
        };
        // Over the cap: closed at once (the client retries later).
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::warn!(%peer, max = limits.max_connections, "connection cap reached: connection closed");
            drop(stream);
            continue;
        };
        // Small answers must not wait for Nagle's algorithm and delayed ACKs (40 ms each).
        stream.set_nodelay(true).ok();
        let acceptor = acceptor.clone();
        // Handlers see the client's address (per-address limits).
        let app = app
            .clone()
            .layer(axum::Extension(axum::extract::ConnectInfo(peer)));
        tokio::spawn(async move {
            let _slot = slot;
            let stream =
                match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(stream)).await
                {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(err)) => {
                        tracing::debug!(%peer, error = %err, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out: connection closed");
                        return;
                    }
                };
            let service = hyper_util::service::TowerToHyperService::new(app);
            if let Err(err) = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, error = %err, "connection ended with an error");
            }
        });
    }
}
