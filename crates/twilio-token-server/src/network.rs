//! The addresses of trusted reverse proxies, as written in `trusted_proxies` lists.

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net};

/// Parses an address (`10.0.0.5`, `::1`) or a CIDR network (`10.0.0.0/8`, `fd00::/8`).
///
/// An IPv4-mapped IPv6 network such as `::ffff:10.0.0.0/104` becomes the IPv4 network it
/// covers, because [`contains`] compares IPv4-mapped peers as IPv4 addresses.
///
/// # Errors
///
/// Returns a message for a value that is not an address or network, has spaces around it, or
/// has bits set after the prefix (`10.0.0.1/8`), which usually means a mistyped network.
pub(crate) fn parse_network(text: &str) -> Result<IpNet, String> {
    if text.trim() != text {
        return Err(format!(
            "{text:?} has spaces around it: write the address or network alone, such as \
             10.0.0.0/8"
        ));
    }
    let network = match text.parse::<IpNet>() {
        Ok(network) => network,
        Err(_) => match text.parse::<IpAddr>() {
            Ok(address) => IpNet::from(address),
            Err(_) => {
                return Err(format!(
                    "{text:?} is not an IP address or CIDR network: write one such as 10.0.0.5, \
                     10.0.0.0/8 or fd00::/8"
                ));
            }
        },
    };
    if network.trunc() != network {
        return Err(format!(
            "{text:?} has address bits set after the /{} prefix: write the network as {}, or \
             the single address as {}",
            network.prefix_len(),
            network.trunc(),
            network.addr()
        ));
    }
    Ok(to_ipv4_if_mapped(network))
}

/// Returns true when `address`, with an IPv4-mapped IPv6 address taken as IPv4, is in one of
/// `networks`.
pub(crate) fn contains(networks: &[IpNet], address: IpAddr) -> bool {
    let address = address.to_canonical();
    networks.iter().any(|network| network.contains(&address))
}

fn to_ipv4_if_mapped(network: IpNet) -> IpNet {
    // ::ffff:0:0/96 contains the IPv4-mapped addresses, so a longer prefix is an IPv4 network.
    const MAPPED_PREFIX: u8 = 96;
    if let IpNet::V6(v6) = network
        && let Some(v4) = v6.network().to_ipv4_mapped()
        && let Some(prefix) = v6.prefix_len().checked_sub(MAPPED_PREFIX)
        && let Ok(v4) = Ipv4Net::new(v4, prefix)
    {
        return IpNet::V4(v4);
    }
    network
}

#[cfg(test)]
mod tests {
    use super::*;

    fn networks(texts: &[&str]) -> Vec<IpNet> {
        texts
            .iter()
            .map(|text| parse_network(text).expect("valid"))
            .collect()
    }

    #[test]
    fn addresses_and_networks_match() {
        let trusted = networks(&[
            "10.0.0.0/8",
            "192.168.1.7",
            "fd00::/8",
            "::ffff:172.16.0.0/108",
        ]);
        for (address, expected) in [
            ("10.1.2.3", true),
            ("11.0.0.1", false),
            ("192.168.1.7", true),
            ("192.168.1.8", false),
            ("fd12::1", true),
            ("fe80::1", false),
            ("::ffff:10.9.9.9", true),
            ("172.16.5.5", true),
            ("172.32.0.1", false),
        ] {
            let address: IpAddr = address.parse().expect("address");
            assert_eq!(contains(&trusted, address), expected, "{address}");
        }
    }

    #[test]
    fn invalid_entries_say_why() {
        for (text, expected) in [
            (
                "10.0.0.1/8",
                "has address bits set after the /8 prefix: write the network as 10.0.0.0/8",
            ),
            (" 10.0.0.0/8", "has spaces around it"),
            ("10.0.0.0/33", "is not an IP address or CIDR network"),
            ("proxy.internal", "is not an IP address or CIDR network"),
            ("", "is not an IP address or CIDR network"),
        ] {
            let error = parse_network(text).expect_err(text);
            assert!(error.contains(expected), "{text:?}: {error}");
        }
    }
}
