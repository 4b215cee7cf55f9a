//! `[sip]`: where the SIP engine listens and what it admits. The engine owns its settings;
//! `crate::config` composes them with the other domains' into the node's configuration.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use serde::de::{self, Unexpected, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `[sip]`: where the SIP engine listens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SipConfig {
    /// Address the UDP and TCP listeners bind to.
    #[serde(deserialize_with = "de_ip")]
    pub listen: IpAddr,
    /// UDP port (0 picks a free port).
    pub udp_port: Port,
    /// TCP port (0 picks a free port).
    pub tcp_port: Port,
    /// Path of the SIP-over-WebSocket endpoint on the HTTP server (RFC 7118).
    pub ws_path: String,
    /// Digest realm agents authenticate in.
    pub realm: String,
    /// Largest SIP message accepted, in bytes (larger: 513, and a TCP connection is closed).
    pub max_message_bytes: usize,
    /// Most TCP connections open at once, and from one address (SIP over WebSocket counts
    /// its own connections against the same limits).
    pub max_tcp_connections: usize,
    /// See `max_tcp_connections`.
    pub max_tcp_connections_per_ip: usize,
    /// A SIP WebSocket connection that sends nothing (not even the answer to the node's ping
    /// every third of this) for this many seconds is closed.
    pub ws_idle_secs: u64,
    /// Digest algorithms offered to registering phones, most preferred first: `SHA-256`,
    /// `MD5`. Some old phones (and SIPp 3.6) read only the first challenge; put `MD5` first,
    /// or alone, for them.
    pub digest_algorithms: Vec<String>,
    /// The carrier trunks and front proxies that bring citizens' calls, as addresses
    /// (`10.1.2.3`) or blocks (`10.1.2.0/24`). When set, an INVITE from any other address is
    /// refused 403 (toll fraud and floods come from anywhere; the carrier from known places).
    /// Empty: calls from any address.
    pub trunks: Vec<String>,
    /// Most calls in progress from one address that is neither a trunk nor loopback (a
    /// local proxy); beyond it new calls get 503 with Retry-After. 0: no cap.
    pub max_calls_per_source: usize,
}

impl Default for SipConfig {
    fn default() -> Self {
        SipConfig {
            listen: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            udp_port: Port(5060),
            tcp_port: Port(5060),
            ws_path: "/sip".into(),
            realm: "hotline".into(),
            max_message_bytes: 65_535,
            max_tcp_connections: 4096,
            max_tcp_connections_per_ip: 32,
            ws_idle_secs: 90,
            digest_algorithms: vec!["SHA-256".into(), "MD5".into()],
            trunks: Vec::new(),
            max_calls_per_source: 20,
        }
    }
}

impl SipConfig {
    /// `trunks` parsed; `Err` names the first entry that is neither an address nor a block.
    pub fn trunk_nets(&self) -> Result<Vec<ipnet::IpNet>, String> {
        self.trunks
            .iter()
            .map(|t| {
                let t = t.trim();
                t.parse::<ipnet::IpNet>()
                    .or_else(|_| t.parse::<IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        format!(
                            "`sip.trunks` entry {t:?} is not an address or a block such as \"10.1.2.0/24\""
                        )
                    })
            })
            .collect()
    }

    /// The digest algorithms, parsed (unknown names were refused by [`Config::problems`]).
    pub fn algorithms(&self) -> Vec<hotline_sip::auth::Algorithm> {
        self.digest_algorithms
            .iter()
            .filter_map(|a| hotline_sip::auth::Algorithm::parse(a))
            .collect()
    }
}

/// A TCP/UDP port number. Deserializes from an integer or a numeric string and says
/// "a port number from 0 to 65535" when the value is anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Port(pub u16);

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Port {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u16(self.0)
    }
}

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct PortVisitor;
        const EXPECTED: &str = "a port number from 0 to 65535";
        impl Visitor<'_> for PortVisitor {
            type Value = Port;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(EXPECTED)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Port, E> {
                u16::try_from(v)
                    .map(Port)
                    .map_err(|_| E::invalid_value(Unexpected::Unsigned(v), &EXPECTED))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Port, E> {
                u16::try_from(v)
                    .map(Port)
                    .map_err(|_| E::invalid_value(Unexpected::Signed(v), &EXPECTED))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Port, E> {
                v.trim()
                    .parse::<u16>()
                    .map(Port)
                    .map_err(|_| E::invalid_value(Unexpected::Str(v), &EXPECTED))
            }
        }
        d.deserialize_any(PortVisitor)
    }
}

fn de_ip<'de, D: Deserializer<'de>>(d: D) -> Result<IpAddr, D::Error> {
    let text = String::deserialize(d)?;
    text.trim().parse().map_err(|_| {
        de::Error::invalid_value(
            Unexpected::Str(&text),
            &"an IP address such as 0.0.0.0, 127.0.0.1 or ::1",
        )
    })
}
