//! Which addresses a server-side fetch (a web page added by URL, a model pulled by URL) may
//! connect to. A name is resolved once, every address it resolves to is checked here, and
//! the connection is made to a checked address, so no DNS answer can change between the
//! check and the connect; every redirect goes through the same check.
//!
//! Refused unless an admin setting allows the network by name: loopback, private (RFC 1918,
//! unique local), link-local (with the cloud metadata address 169.254.169.254), carrier-grade
//! NAT, multicast, broadcast, documentation and reserved ranges, the unspecified address, and
//! IPv6 forms that carry an IPv4 address (mapped, compatible, NAT64, 6to4, Teredo), judged
//! by the address they carry.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// Why an address is refused, for the user's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Loopback,
    Private,
    LinkLocal,
    Metadata,
    Multicast,
    Unspecified,
    Reserved,
}

impl Refusal {
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Loopback => "the address points to this machine (loopback)",
            Refusal::Private => "the address points to a private network",
            Refusal::LinkLocal => "the address is link-local",
            Refusal::Metadata => "the address is a cloud metadata service",
            Refusal::Multicast => "the address is multicast or broadcast",
            Refusal::Unspecified => "the address is unspecified (0.0.0.0 or ::)",
            Refusal::Reserved => "the address is in a reserved or documentation range",
        }
    }
}

/// The IPv4 address an IPv6 one carries, if it is a form that does: mapped
/// (`::ffff:a.b.c.d`), compatible (`::a.b.c.d`), NAT64 (`64:ff9b::/96`), 6to4 (`2002::/16`)
/// or Teredo (`2001::/32`, the client address inverted).
fn carried_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    if s[..6] == [0; 6] && !(s[6] == 0 && s[7] <= 1) {
        return Some(tail);
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(tail);
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    if s[0] == 0x2001 && s[1] == 0 {
        let x = !tail.to_bits();
        return Some(Ipv4Addr::from_bits(x));
    }
    None
}

fn check_v4(ip: Ipv4Addr) -> Result<(), Refusal> {
    let o = ip.octets();
    if ip.is_unspecified() || o[0] == 0 {
        return Err(Refusal::Unspecified);
    }
    if ip.is_loopback() {
        return Err(Refusal::Loopback);
    }
    if o == [169, 254, 169, 254] || o == [100, 100, 100, 200] {
        return Err(Refusal::Metadata);
    }
    if ip.is_link_local() {
        return Err(Refusal::LinkLocal);
    }
    // RFC 1918 and carrier-grade NAT (100.64.0.0/10).
    if ip.is_private() || (o[0] == 100 && (o[1] & 0xc0) == 64) {
        return Err(Refusal::Private);
    }
    if ip.is_multicast() || ip.is_broadcast() {
        return Err(Refusal::Multicast);
    }
    // Documentation, benchmarking, IETF protocol assignments, reserved (240/4).
    if ip.is_documentation()
        || (o[0] == 198 && (o[1] & 0xfe) == 18)
        || (o[0] == 192 && o[1] == 0 && o[2] == 0)
        || o[0] >= 240
    {
        return Err(Refusal::Reserved);
    }
    Ok(())
}

fn check_v6(ip: Ipv6Addr) -> Result<(), Refusal> {
    if let Some(v4) = carried_v4(ip) {
        return check_v4(v4);
    }
    let s = ip.segments();
    if ip.is_unspecified() {
        return Err(Refusal::Unspecified);
    }
    if ip.is_loopback() {
        return Err(Refusal::Loopback);
    }
    if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
        return Err(Refusal::Metadata);
    }
    if (s[0] & 0xffc0) == 0xfe80 {
        return Err(Refusal::LinkLocal);
    }
    // Unique local (fc00::/7) and the deprecated site-local (fec0::/10).
    if (s[0] & 0xfe00) == 0xfc00 || (s[0] & 0xffc0) == 0xfec0 {
        return Err(Refusal::Private);
    }
    if ip.is_multicast() {
        return Err(Refusal::Multicast);
    }
    // Documentation (2001:db8::/32), discard-only (100::/64).
    if (s[0] == 0x2001 && s[1] == 0x0db8) || (s[0] == 0x0100 && s[1..4] == [0, 0, 0]) {
        return Err(Refusal::Reserved);
    }
    Ok(())
}

/// Whether a fetch may connect to `ip`: allowed when it is public, or inside one of the
/// networks an admin allowed by name.
pub fn check(ip: IpAddr, allowed: &[IpNet]) -> Result<(), Refusal> {
    if allowed.iter().any(|net| net.contains(&ip)) {
        return Ok(());
    }
    match ip {
        IpAddr::V4(v4) => check_v4(v4),
        IpAddr::V6(v6) => check_v6(v6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(s: &str) -> Option<Refusal> {
        check(s.parse().unwrap(), &[]).err()
    }

    #[test]
    fn private_loopback_metadata_and_carried_v4_addresses_are_refused() {
        for (ip, why) in [
            ("127.0.0.1", Refusal::Loopback),
            ("127.255.1.2", Refusal::Loopback),
            ("::1", Refusal::Loopback),
            ("0.0.0.0", Refusal::Unspecified),
            ("::", Refusal::Unspecified),
            ("10.1.2.3", Refusal::Private),
            ("172.16.0.1", Refusal::Private),
            ("192.168.1.1", Refusal::Private),
            ("100.64.0.1", Refusal::Private),
            ("fd12:3456::1", Refusal::Private),
            ("169.254.169.254", Refusal::Metadata),
            ("fd00:ec2::254", Refusal::Metadata),
            ("169.254.1.1", Refusal::LinkLocal),
            ("fe80::1", Refusal::LinkLocal),
            ("224.0.0.1", Refusal::Multicast),
            ("255.255.255.255", Refusal::Multicast),
            ("ff02::1", Refusal::Multicast),
            ("192.0.2.7", Refusal::Reserved),
            ("2001:db8::1", Refusal::Reserved),
            ("240.0.0.1", Refusal::Reserved),
            // IPv6 forms carrying a forbidden IPv4 address.
            ("::ffff:127.0.0.1", Refusal::Loopback),
            ("::ffff:169.254.169.254", Refusal::Metadata),
            ("::127.0.0.1", Refusal::Loopback),
            ("64:ff9b::10.0.0.1", Refusal::Private),
            ("2002:7f00:1::", Refusal::Loopback),
            ("2001:0:4136:e378:8000:63bf:80ff:fffe", Refusal::Loopback),
        ] {
            assert_eq!(refused(ip), Some(why), "{ip}");
        }
    }

    #[test]
    fn public_addresses_and_allowed_networks_pass() {
        for ip in [
            "93.184.215.14",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert_eq!(refused(ip), None, "{ip}");
        }
        let allowed: Vec<IpNet> = vec!["127.0.0.0/8".parse().unwrap(), "10.0.0.0/8".parse().unwrap()];
        assert!(check("127.0.0.1".parse().unwrap(), &allowed).is_ok());
        assert!(check("10.9.9.9".parse().unwrap(), &allowed).is_ok());
        assert!(check("192.168.0.1".parse().unwrap(), &allowed).is_err());
    }
}
