//! Identity and groups from headers set by an authenticating reverse proxy, such as
//! oauth2-proxy or Pomerium.
//!
//! The headers count only when the TCP peer is one of the configured proxy networks. From any
//! other address they are ignored, so the next provider runs, and a warning names the peer and
//! the headers, not their values.

use std::net::IpAddr;

use axum::http::{HeaderMap, HeaderName};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::{AuthFuture, AuthProvider, AuthRequest, Principal};
use crate::config::ConfigError;
use crate::error::ApiError;

/// `[auth.trusted_header]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedHeaderSection {
    /// Networks the proxy connects from, such as `["127.0.0.1/32", "10.0.0.0/8"]`. A bare
    /// address means that one address.
    pub trusted_proxies: Vec<String>,
    /// The header with the identity. Default `X-Forwarded-User`.
    #[serde(default = "default_identity_header")]
    pub identity_header: String,
    /// The header with the groups, separated by `groups_separator`. Default: no groups.
    pub groups_header: Option<String>,
    /// The separator between groups. Default `,`.
    #[serde(default = "default_separator")]
    pub groups_separator: String,
    /// Text put before every identity, such as `proxy:`. Default none.
    #[serde(default)]
    pub identity_prefix: String,
}

fn default_identity_header() -> String {
    "x-forwarded-user".into()
}

fn default_separator() -> String {
    ",".into()
}

/// The `trusted_header` provider.
#[derive(Debug, Clone)]
pub struct TrustedHeaderProvider {
    proxies: Vec<IpNet>,
    identity_header: HeaderName,
    groups_header: Option<HeaderName>,
    separator: String,
    identity_prefix: String,
}

impl TrustedHeaderProvider {
    /// Validates `[auth.trusted_header]`.
    ///
    /// # Errors
    ///
    /// Returns a [`ConfigError`] naming the key for an empty proxy list, an entry that is not
    /// an address or CIDR network, or a header name that is not valid.
    pub fn from_config(section: &TrustedHeaderSection) -> Result<Self, ConfigError> {
        if section.trusted_proxies.is_empty() {
            return Err(ConfigError::new(
                "auth.trusted_header.trusted_proxies",
                "list the addresses or CIDR networks your proxy connects from, such as \
                 [\"127.0.0.1/32\"]; headers from any other address are ignored",
            ));
        }
        let mut proxies = Vec::with_capacity(section.trusted_proxies.len());
        for (index, text) in section.trusted_proxies.iter().enumerate() {
            let network = crate::network::parse_network(text).map_err(|message| {
                ConfigError::new(
                    format!("auth.trusted_header.trusted_proxies[{index}]"),
                    message,
                )
            })?;
            proxies.push(network);
        }
        let identity_header = header_name("identity_header", &section.identity_header)?;
        let groups_header = section
            .groups_header
            .as_deref()
            .map(|name| header_name("groups_header", name))
            .transpose()?;
        if section.groups_separator.is_empty() {
            return Err(ConfigError::new(
                "auth.trusted_header.groups_separator",
                "is empty: use a separator such as \",\"",
            ));
        }
        Ok(TrustedHeaderProvider {
            proxies,
            identity_header,
            groups_header,
            separator: section.groups_separator.clone(),
            identity_prefix: section.identity_prefix.clone(),
        })
    }

    fn is_trusted(&self, peer: IpAddr) -> bool {
        crate::network::contains(&self.proxies, peer)
    }
}

fn header_name(key: &str, name: &str) -> Result<HeaderName, ConfigError> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
        ConfigError::new(
            format!("auth.trusted_header.{key}"),
            format!("{name:?} is not a valid header name"),
        )
    })
}

impl AuthProvider for TrustedHeaderProvider {
    fn name(&self) -> &'static str {
        "trusted_header"
    }

    fn authenticate<'a>(&'a self, request: &'a AuthRequest<'a>) -> AuthFuture<'a> {
        let result = (|| {
            let headers = request.headers;
            let has_identity = headers.contains_key(&self.identity_header);
            let has_groups = self
                .groups_header
                .as_ref()
                .is_some_and(|name| headers.contains_key(name));
            if !has_identity && !has_groups {
                return Ok(None);
            }
            let trusted = request.peer.is_some_and(|peer| self.is_trusted(peer.ip()));
            if !trusted {
                let peer = request
                    .peer
                    .map_or_else(|| "unknown".to_owned(), |peer| peer.ip().to_string());
                tracing::warn!(
                    peer = %peer,
                    identity_header = has_identity.then(|| self.identity_header.as_str()),
                    groups_header = has_groups
                        .then(|| self.groups_header.as_ref().map(HeaderName::as_str))
                        .flatten(),
                    "suspicious request: proxy identity headers from an address outside \
                     auth.trusted_header.trusted_proxies; the headers are ignored"
                );
                return Ok(None);
            }
            let identity = single_header(headers, &self.identity_header)?
                .map(str::trim)
                .filter(|identity| !identity.is_empty())
                .ok_or_else(|| {
                    ApiError::unauthorized(
                        "invalid_proxy_header",
                        format!(
                            "the proxy header {} is missing or empty: check the proxy's \
                             configuration",
                            self.identity_header
                        ),
                    )
                })?;
            let groups = match &self.groups_header {
                Some(name) => single_header(headers, name)?
                    .map(|value| {
                        value
                            .split(self.separator.as_str())
                            .map(str::trim)
                            .filter(|group| !group.is_empty())
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default(),
                None => Vec::new(),
            };
            let identity = format!("{}{identity}", self.identity_prefix);
            Ok(Some(Principal {
                identity: Some(identity.clone()),
                groups,
                method: "trusted_header",
                subject: identity,
                may_act_for: None,
            }))
        })();
        Box::pin(async move { result })
    }
}

/// Returns the one value of a proxy header as UTF-8 text, or `None` when it is absent.
///
/// A header that appears more than once is rejected, whatever its values, because a proxy that
/// appends its header instead of replacing the client's would otherwise let a client add an
/// identity or a group of its choosing.
fn single_header<'h>(
    headers: &'h HeaderMap,
    name: &HeaderName,
) -> Result<Option<&'h str>, ApiError> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::unauthorized(
            "invalid_proxy_header",
            format!(
                "the proxy header {name} appears more than once: check the proxy's configuration"
            ),
        ));
    }
    std::str::from_utf8(value.as_bytes())
        .map(Some)
        .map_err(|_| {
            ApiError::unauthorized(
                "invalid_proxy_header",
                format!(
                    "the proxy header {name} is not UTF-8 text: check the proxy's configuration"
                ),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(proxies: &[&str]) -> TrustedHeaderSection {
        TrustedHeaderSection {
            trusted_proxies: proxies.iter().map(|&p| p.to_owned()).collect(),
            identity_header: default_identity_header(),
            groups_header: None,
            groups_separator: default_separator(),
            identity_prefix: String::new(),
        }
    }

    #[test]
    fn proxies_parse_as_networks_or_addresses() {
        let provider =
            TrustedHeaderProvider::from_config(&section(&["127.0.0.1", "10.0.0.0/8", "::1/128"]))
                .expect("valid");
        assert!(provider.is_trusted("127.0.0.1".parse().expect("ip")));
        assert!(!provider.is_trusted("127.0.0.2".parse().expect("ip")));
        assert!(provider.is_trusted("10.200.0.1".parse().expect("ip")));
        assert!(provider.is_trusted("::ffff:127.0.0.1".parse().expect("ip")));
        assert!(provider.is_trusted("::1".parse().expect("ip")));

        let error = TrustedHeaderProvider::from_config(&section(&["127.0.0.1", "proxy.local"]))
            .expect_err("name");
        assert_eq!(error.key, "auth.trusted_header.trusted_proxies[1]");
        // Host bits after the prefix usually mean a mistyped network, which would trust more
        // addresses than intended.
        let error =
            TrustedHeaderProvider::from_config(&section(&["10.1.2.3/8"])).expect_err("host bits");
        assert_eq!(error.key, "auth.trusted_header.trusted_proxies[0]");
        assert!(error.message.contains("10.0.0.0/8"), "{}", error.message);
        let error = TrustedHeaderProvider::from_config(&section(&[])).expect_err("empty");
        assert_eq!(error.key, "auth.trusted_header.trusted_proxies");
    }
}
