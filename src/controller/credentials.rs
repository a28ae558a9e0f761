//! Git credentials from the Secret named by `spec.source.secretRef`, using Flux's key names.

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};

use crate::source::Credentials;

/// Why the Secret cannot give credentials.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("secret {0:?} (spec.source.secretRef) not found")]
    NotFound(String),
    #[error(
        "secret {name:?} (spec.source.secretRef) has none of username+password, bearerToken or identity+known_hosts"
    )]
    NoKnownKeys { name: String },
    #[error("secret {name:?} key {key:?} is not UTF-8")]
    NotUtf8 { name: String, key: String },
    #[error("cannot read secret {name:?}: {source}")]
    Kube { name: String, source: kube::Error },
}

/// Reads the Secret and picks the credential kind from its keys.
pub async fn load(client: &Client, namespace: &str, name: &str) -> Result<Credentials, CredentialsError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = secrets
        .get_opt(name)
        .await
        .map_err(|source| CredentialsError::Kube { name: name.to_owned(), source })?
        .ok_or_else(|| CredentialsError::NotFound(name.to_owned()))?;
    let data = secret.data.unwrap_or_default();
    let get = |key: &str| -> Result<Option<String>, CredentialsError> {
        data.get(key)
            .map(|bytes| {
                String::from_utf8(bytes.0.clone())
                    .map_err(|_| CredentialsError::NotUtf8 { name: name.to_owned(), key: key.to_owned() })
            })
            .transpose()
    };
    if let (Some(username), Some(password)) = (get("username")?, get("password")?) {
        return Ok(Credentials::Basic { username, password });
    }
    if let Some(token) = get("bearerToken")? {
        return Ok(Credentials::Bearer(token));
    }
    if let Some(identity) = get("identity")? {
        let known_hosts = get("known_hosts")?.unwrap_or_default();
        return Ok(Credentials::Ssh { identity, known_hosts });
    }
    Err(CredentialsError::NoKnownKeys { name: name.to_owned() })
}
