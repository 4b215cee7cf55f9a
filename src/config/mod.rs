//! Configuration: one TOML file plus `HOTLINE_<SECTION>__<KEY>` environment overrides.
//!
//! This module owns the shape of the configuration, its defaults, and every check that can be
//! made without starting anything. Unknown keys and values of the wrong kind are rejected by the
//! deserializer with the key's full name; checks across keys (port ranges that overlap, a
//! recordings directory that cannot be written) are collected by [`Config::problems`] and
//! reported all at once.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

pub use crate::engine::settings::{Port, SipConfig};
pub use crate::logging::{LogConfig, LogFormat};
pub use crate::tickets::settings::TicketsConfig;
use figment::providers::{Format, Serialized, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::de::{self, Unexpected};
use serde::{Deserialize, Deserializer, Serialize};

/// Prefix of the environment overrides: `HOTLINE_SIP__UDP_PORT=5070` sets `sip.udp_port`.
pub const ENV_PREFIX: &str = "HOTLINE_";

/// The whole configuration of one Hotline node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// SIP signaling listeners.
    pub sip: SipConfig,
    /// RTP media ports.
    pub rtp: RtpConfig,
    /// The HTTP server (API, agent desktop, wall board, health and metrics).
    pub http: HttpConfig,
    /// PostgreSQL: an external server, or the embedded private cluster.
    pub database: DatabaseConfig,
    /// Where call recordings are written.
    pub recordings: RecordingsConfig,
    /// The IVR script that answers calls.
    pub ivr: IvrConfig,
    /// The ticket workflow's limits and calendar.
    pub tickets: TicketsConfig,
    /// The knowledge base's search index and publishing rule.
    pub kb: KbConfig,
    /// How callers in queues reach agents.
    pub acd: AcdConfig,
    /// Logging format and privacy.
    pub log: LogConfig,
    /// How the node stops: the drain on SIGTERM and the pid file.
    pub node: crate::node::NodeConfig,
}

/// `[rtp]`: the port range media sessions take their ports from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RtpConfig {
    /// First port of the range (even: RTP takes even ports, RTCP the odd one above).
    pub port_min: Port,
    /// Last port of the range.
    pub port_max: Port,
    /// Address written in SDP `c=` lines; defaults to the SIP listen address.
    #[serde(deserialize_with = "de_opt_ip")]
    pub public_address: Option<IpAddr>,
    /// A call whose caller has sent no RTP for this many seconds is hung up (a dead call
    /// must not hold a line and a port); 0 turns the check off. Not applied while the caller
    /// holds the call.
    pub inactivity_timeout_secs: u64,
    /// Media worker threads carrying the calls' RTP; 0 means one per core but one (at least
    /// one), leaving a core for signaling, the database and HTTP: real-time media threads on
    /// every core starve the rest (benches/RESULTS.md).
    pub media_threads: usize,
    /// Run the media threads at real-time priority (SCHED_FIFO) when the process may, so a
    /// busy machine does not delay callers' audio.
    pub realtime: bool,
    /// The one UDP port every browser agent's media uses (ICE-lite, DTLS-SRTP, rtcp-mux;
    /// 0 picks a free port). Announced at `public_address` (or the SIP listen address).
    pub webrtc_port: Port,
}

impl Default for RtpConfig {
    fn default() -> Self {
        RtpConfig {
            port_min: Port(20000),
            port_max: Port(29999),
            public_address: None,
            inactivity_timeout_secs: 60,
            media_threads: 0,
            realtime: true,
            webrtc_port: Port(10000),
        }
    }
}

/// `[http]`: the HTTP server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Listen address and port (port 0 picks a free port; the bound address is logged).
    #[serde(deserialize_with = "de_socket_addr")]
    pub listen: SocketAddr,
    /// Bearer token of the admin API (`/api/admin/...`); without one the admin API is off.
    /// At least 16 characters; better set it through `HOTLINE_HTTP__ADMIN_TOKEN` than a file.
    pub admin_token: Option<String>,
    /// Where the built pages are (`scripts/web.sh` builds `web/` into `web/dist`); the agent
    /// desktop is served from its `agent/` folder at `/agent/`.
    pub web_dir: PathBuf,
    /// HTTPS: plain on loopback and a self-signed certificate elsewhere unless configured.
    pub tls: crate::http::tls::TlsConfig,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_token: None,
            web_dir: PathBuf::from("web/dist"),
            tls: Default::default(),
        }
    }
}

/// `[database]`: PostgreSQL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `postgres://` URL of an external server. When absent (and `DATABASE_URL` is unset too),
    /// `serve` and `migrate` start a private cluster in `embedded_dir`.
    pub url: Option<String>,
    /// Directory of the embedded cluster (data files, Unix socket, server log).
    pub embedded_dir: PathBuf,
    /// Largest number of pooled connections.
    pub max_connections: u32,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: None,
            embedded_dir: PathBuf::from("data/postgres"),
            max_connections: 10,
        }
    }
}

/// `[recordings]`: call recordings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordingsConfig {
    /// Directory the stereo WAV recordings are written to.
    pub dir: PathBuf,
    /// Record every answered call (the hotline's rule); off only for test benches.
    pub enabled: bool,
    /// Below this many MiB free on the recordings' disk, recordings stop (those in progress
    /// are finished where they are) and calls go on unrecorded, logged and counted; they
    /// start again at a tenth above it. 0: no check.
    pub min_free_mb: u64,
}

impl Default for RecordingsConfig {
    fn default() -> Self {
        RecordingsConfig {
            dir: PathBuf::from("recordings"),
            enabled: true,
            min_free_mb: 512,
        }
    }
}

/// `[ivr]`: the IVR script.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IvrConfig {
    /// Path of the IVR script that answers calls.
    pub script: Option<PathBuf>,
    /// Text-to-speech command for `text` prompts, `{out}` and `{text}` replaced (without
    /// `{text}` the text goes to standard input); default espeak-ng's Mandarin voice.
    pub tts_command: Option<Vec<String>>,
    /// The queues a script may send callers to; a script naming another is refused at load.
    /// Empty: not checked. (The ACD's own queue configuration, issue 8, will supply them.)
    pub queues: Vec<String>,
}

impl IvrConfig {
    /// The queue names as the validator takes them (`None`: not checked).
    pub fn queue_names(&self) -> Option<std::collections::BTreeSet<String>> {
        (!self.queues.is_empty()).then(|| self.queues.iter().cloned().collect())
    }
}

/// `[kb]`: the knowledge base.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KbConfig {
    /// Where this node keeps its search index (derived from PostgreSQL: rebuilt when missing,
    /// corrupt or behind).
    pub index_dir: PathBuf,
    /// A handling unit's article waits for the hotline office's approval to be published.
    pub require_approval: bool,
}

impl Default for KbConfig {
    fn default() -> Self {
        KbConfig {
            index_dir: PathBuf::from("data/kb-index"),
            require_approval: true,
        }
    }
}

/// `[acd]`: how the queues (`ivr.queues`) offer callers to agents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AcdConfig {
    /// `longest_idle`, `round_robin`, `fewest_calls`, `ring_all` or `skills`.
    pub strategy: String,
    /// Seconds an agent's phone rings before the call moves on (a miss).
    pub ring_timeout_secs: u64,
    /// Misses in a row after which an agent is paused (0: never).
    pub max_misses: u32,
    /// Seconds of wrap-up after each call.
    pub wrap_up_secs: u64,
    /// The service-level target, seconds (GB/T 33358-2016: 15).
    pub service_level_secs: u64,
    /// Speak each waiting caller's place and estimated wait this often, seconds (0: never).
    pub announce_secs: u64,
    /// Where callbacks are placed: a SIP URI with `{number}` for the caller's number and an
    /// IP address for host (the carrier gateway), e.g. `sip:{number}@10.0.0.1:5060`; empty:
    /// no callbacks.
    pub callback_route: String,
    /// The numbers the hotline may call back, a regular expression over the whole caller
    /// number (default: mainland mobile and landline numbers, with or without the area code;
    /// never international, premium or short codes). A caller with another number is not
    /// offered the callback. Empty: any number.
    pub callback_numbers: String,
    /// Tries in all of a callback that does not reach the caller (busy, no answer, refused)
    /// before the caller goes on the missed-call list (1: no retry).
    pub callback_attempts: u32,
    /// Seconds between those tries.
    pub callback_retry_secs: u64,
    /// When callbacks may be tried again, China time, `HH:MM-HH:MM` (empty: any time); a try
    /// due outside waits for the next opening.
    pub callback_hours: String,
    /// Most callback places kept at once; beyond it, and to a number that has one already,
    /// no callback is offered (the caller waits on as usual). 0: no callbacks offered.
    pub max_callbacks: usize,
    /// Where agents may send a caller in an emergency, by name: `{ "110" = "sip:110@10.0.0.1" }`
    /// (police 110, fire 119, ambulance 120, traffic 122; IP addresses, no DNS).
    pub emergency_routes: std::collections::BTreeMap<String, String>,
    /// One queue's own rules where they differ: `[acd.queues.general] overflow = "backup"`.
    pub queues: std::collections::BTreeMap<String, QueueRules>,
    /// `[acd.alerts]`: when the wall board raises alerts.
    pub alerts: AlertRules,
    /// A number that calls more than this many times in an hour is flagged to its agent and
    /// on the wall board (Art. 12, 34; never blocked). 0: nobody is flagged.
    pub frequent_calls_per_hour: u32,
}

/// `[acd.alerts]`: when the wall board alerts (beside a wait past a queue's service-level
/// target, which always does).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertRules {
    /// Seconds an agent may stay in a state before an alert, by state (`on_call`, `wrap_up`,
    /// `paused`, `ringing`, `available`, `offline`); states left out never alert.
    pub stuck_secs: std::collections::BTreeMap<String, u64>,
    /// The lowest acceptable connection rate over the last 24 hours, percent (GB/T
    /// 33358-2016: 95).
    pub min_connection_pct: f64,
}

impl Default for AlertRules {
    fn default() -> Self {
        AlertRules {
            stuck_secs: crate::acd::alerts::default_stuck(),
            min_connection_pct: 95.0,
        }
    }
}

/// `[acd.queues.NAME]`: a queue's own rules; what is left out comes from `[acd]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueRules {
    /// The strategy (see `acd.strategy`).
    pub strategy: Option<String>,
    /// Seconds an agent's phone rings.
    pub ring_timeout_secs: Option<u64>,
    /// Seconds of wrap-up.
    pub wrap_up_secs: Option<u64>,
    /// The service-level target, seconds.
    pub service_level_secs: Option<u64>,
    /// Skills every agent of the queue needs.
    pub skills: Vec<String>,
    /// Seconds a caller waits here before moving to `overflow`.
    pub max_wait_secs: Option<u64>,
    /// The queue callers move to after `max_wait_secs`.
    pub overflow: Option<String>,
}

impl Default for AcdConfig {
    fn default() -> Self {
        AcdConfig {
            strategy: "longest_idle".into(),
            ring_timeout_secs: 20,
            max_misses: 3,
            wrap_up_secs: 30,
            service_level_secs: 15,
            announce_secs: 60,
            callback_route: String::new(),
            callback_numbers: DOMESTIC_NUMBERS.into(),
            callback_attempts: 3,
            callback_retry_secs: 600,
            frequent_calls_per_hour: 5,
            callback_hours: "08:00-21:00".into(),
            max_callbacks: 200,
            emergency_routes: Default::default(),
            queues: Default::default(),
            alerts: Default::default(),
        }
    }
}

impl AcdConfig {
    /// The routing strategy named by `strategy`.
    pub fn strategy(&self) -> Option<crate::acd::routing::Strategy> {
        strategy_named(&self.strategy)
    }

    /// Every queue's rules (the queue names come from `ivr.queues`): `[acd]`, then the
    /// queue's own `[acd.queues.NAME]`.
    pub fn queue(&self, name: &str) -> crate::acd::routing::QueueConfig {
        use std::time::Duration;
        let base = crate::acd::routing::QueueConfig::new(name);
        let own = self.queues.get(name).cloned().unwrap_or_default();
        let secs = |own: Option<u64>, all: u64| Duration::from_secs(own.unwrap_or(all));
        crate::acd::routing::QueueConfig {
            strategy: own
                .strategy
                .as_deref()
                .and_then(strategy_named)
                .or_else(|| self.strategy())
                .unwrap_or(base.strategy),
            ring_timeout: secs(own.ring_timeout_secs, self.ring_timeout_secs),
            max_misses: self.max_misses,
            wrap_up: secs(own.wrap_up_secs, self.wrap_up_secs),
            service_level: secs(own.service_level_secs, self.service_level_secs),
            skills: own.skills,
            max_wait: own.max_wait_secs.map(Duration::from_secs),
            overflow: own.overflow,
            ..base
        }
    }

    /// The task's settings.
    pub fn settings(&self) -> crate::acd::service::AcdSettings {
        crate::acd::service::AcdSettings {
            announce_every: (self.announce_secs > 0)
                .then(|| std::time::Duration::from_secs(self.announce_secs)),
            alerts: crate::acd::alerts::AlertSettings {
                stuck_secs: self.alerts.stuck_secs.clone(),
                min_connection_pct: self.alerts.min_connection_pct,
            },
            callback_retry: crate::acd::service::CallbackRetry {
                attempts: self.callback_attempts.max(1),
                spacing: std::time::Duration::from_secs(self.callback_retry_secs),
                hours: callback_hours(&self.callback_hours).ok().flatten(),
            },
            max_callbacks: self.max_callbacks,
            ..Default::default()
        }
    }
}

/// Mainland China numbers a callback may dial: mobile (1[3-9] and 9 digits), landline with
/// its area code (0, then 9 to 11 digits), or a local landline (7 or 8 digits, not 0 or 1
/// first).
pub const DOMESTIC_NUMBERS: &str = r"^(?:1[3-9]\d{9}|0[1-9]\d{8,10}|[2-9]\d{6,7})$";

impl AcdConfig {
    /// `callback_numbers` compiled, anchored to the whole number (`None`: any number).
    pub fn callback_numbers(&self) -> Result<Option<std::sync::Arc<regex::Regex>>, regex::Error> {
        let p = self.callback_numbers.trim();
        if p.is_empty() {
            return Ok(None);
        }
        regex::Regex::new(&format!("^(?:{p})$")).map(|r| Some(std::sync::Arc::new(r)))
    }
}

/// `HH:MM-HH:MM` as two times (empty: any time).
fn callback_hours(text: &str) -> Result<Option<(chrono::NaiveTime, chrono::NaiveTime)>, ()> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let (a, b) = text.split_once('-').ok_or(())?;
    let t = |s: &str| chrono::NaiveTime::parse_from_str(s.trim(), "%H:%M").map_err(|_| ());
    let (from, until) = (t(a)?, t(b)?);
    if from == until {
        return Err(());
    }
    Ok(Some((from, until)))
}

/// The routing strategy of a name.
fn strategy_named(name: &str) -> Option<crate::acd::routing::Strategy> {
    use crate::acd::routing::Strategy;
    Some(match name {
        "longest_idle" => Strategy::LongestIdle,
        "round_robin" => Strategy::RoundRobin,
        "fewest_calls" => Strategy::FewestCalls,
        "ring_all" => Strategy::RingAll,
        "skills" => Strategy::Skills,
        _ => return None,
    })
}

fn parse_or_expect<'de, D: Deserializer<'de>, T: std::str::FromStr>(
    d: D,
    expected: &'static str,
) -> Result<T, D::Error> {
    let text = String::deserialize(d)?;
    text.trim()
        .parse()
        .map_err(|_| de::Error::invalid_value(Unexpected::Str(&text), &expected))
}

fn de_opt_ip<'de, D: Deserializer<'de>>(d: D) -> Result<Option<IpAddr>, D::Error> {
    const EXPECTED: &str = "an IP address such as 192.0.2.10 or 2001:db8::10";
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(text) => text
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| de::Error::invalid_value(Unexpected::Str(&text), &EXPECTED)),
    }
}

fn de_socket_addr<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    parse_or_expect(
        d,
        "an address and port such as 127.0.0.1:8080 or [::1]:8080",
    )
}

/// Why the configuration could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file named with `--config` does not exist.
    #[error("configuration file {0} not found")]
    Missing(PathBuf),
    /// A key is unknown, or a value is not what the key expects.
    #[error("{}", format_figment(.0))]
    Invalid(Box<figment::Error>),
}

fn format_figment(e: &figment::Error) -> String {
    e.clone()
        .into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let origin = match &e.metadata {
                Some(m) if m.name == ENV_METADATA => {
                    let profile = e.profile.clone().unwrap_or_default();
                    let keys: Vec<&str> = e.path.iter().map(String::as_str).collect();
                    format!(
                        " (from environment variable {})",
                        m.interpolate(&profile, &keys)
                    )
                }
                Some(m) => match &m.source {
                    Some(src) => format!(" (from {src})"),
                    None => format!(" (from {})", m.name),
                },
                None => String::new(),
            };
            if key.is_empty() {
                format!("configuration: {}{origin}", e.kind)
            } else {
                format!("configuration key `{key}`: {}{origin}", e.kind)
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// serde stops at the first error; to report a mistake in every section at once, each section
/// is extracted on its own, and unknown sections are looked for separately.
fn all_errors(fig: &Figment, first: figment::Error) -> figment::Error {
    fn section<T: for<'de> Deserialize<'de>>(
        fig: &Figment,
        name: &str,
        out: &mut Vec<figment::Error>,
    ) {
        if let Err(e) = fig.extract_inner::<T>(name) {
            // figment appends the section to the path of an inner extraction's errors; put it
            // back in front so the key reads `sip.udp_port`.
            out.extend(e.into_iter().map(|mut e| {
                if e.path.last().map(String::as_str) == Some(name) {
                    e.path.pop();
                    e.path.insert(0, name.to_string());
                }
                e
            }));
        }
    }
    let mut errors = Vec::new();
    section::<SipConfig>(fig, "sip", &mut errors);
    section::<RtpConfig>(fig, "rtp", &mut errors);
    section::<HttpConfig>(fig, "http", &mut errors);
    section::<DatabaseConfig>(fig, "database", &mut errors);
    section::<RecordingsConfig>(fig, "recordings", &mut errors);
    section::<IvrConfig>(fig, "ivr", &mut errors);
    section::<TicketsConfig>(fig, "tickets", &mut errors);
    section::<KbConfig>(fig, "kb", &mut errors);
    section::<AcdConfig>(fig, "acd", &mut errors);
    section::<LogConfig>(fig, "log", &mut errors);
    const KNOWN: [&str; 10] = [
        "sip",
        "rtp",
        "http",
        "database",
        "recordings",
        "ivr",
        "tickets",
        "kb",
        "acd",
        "log",
    ];
    if let Ok(data) = fig.data() {
        for dict in data.values() {
            for key in dict.keys().filter(|k| !KNOWN.contains(&k.as_str())) {
                let kind = figment::error::Kind::Message(format!(
                    "unknown section `{key}`, expected one of `{}`",
                    KNOWN.join("`, `")
                ));
                let mut e = figment::Error::from(kind);
                e.path = vec![key.clone()];
                if let Some(md) = fig.find_metadata(key) {
                    e.metadata = Some(md.clone());
                }
                errors.push(e);
            }
        }
    }
    let mut errors = errors.into_iter();
    match errors.next() {
        None => first,
        Some(mut all) => {
            for e in errors {
                all = all.chain(e);
            }
            all
        }
    }
}

const ENV_METADATA: &str = "HOTLINE_* environment variables";

/// The `HOTLINE_<SECTION>__<KEY>` variables as a figment provider. Only variables with a `__`
/// after the prefix are configuration: `HOTLINE_CONFIG` (the file path) is not. Values are
/// parsed the way figment parses environment values (`5060` is an integer, `true` a bool).
struct EnvOverrides(Dict);

impl EnvOverrides {
    fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut root = Dict::new();
        for (name, value) in vars {
            let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            if !rest.contains("__") {
                continue;
            }
            let path: Vec<String> = rest.split("__").map(|k| k.to_ascii_lowercase()).collect();
            let value = value
                .parse::<Value>()
                .unwrap_or_else(|never| match never {});
            insert_path(&mut root, &path, value);
        }
        EnvOverrides(root)
    }
}

fn insert_path(dict: &mut Dict, path: &[String], value: Value) {
    match path {
        [] => {}
        [last] => {
            dict.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let entry = dict
                .entry(first.clone())
                .or_insert_with(|| Value::from(Dict::new()));
            if entry.as_dict().is_none() {
                *entry = Value::from(Dict::new());
            }
            if let Value::Dict(_, inner) = entry {
                insert_path(inner, rest, value);
            }
        }
    }
}

impl Provider for EnvOverrides {
    fn metadata(&self) -> Metadata {
        Metadata::named(ENV_METADATA).interpolater(|_: &Profile, keys: &[&str]| {
            format!("{ENV_PREFIX}{}", keys.join("__").to_ascii_uppercase())
        })
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.0.clone()))
    }
}

impl Config {
    /// Reads the defaults, then `file` (if given), then the `HOTLINE_*` environment.
    pub fn load(file: Option<&Path>) -> Result<Config, LoadError> {
        let env = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
        Self::load_with_env(file, env)
    }

    /// [`Config::load`] with an explicit environment (for tests).
    pub fn load_with_env(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, LoadError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(LoadError::Missing(path.to_path_buf()));
            }
            fig = fig.merge(Toml::file_exact(path));
        }
        fig = fig.merge(EnvOverrides::from_vars(env));
        match fig.extract::<Config>() {
            Ok(cfg) => Ok(cfg),
            Err(first) => Err(LoadError::Invalid(Box::new(all_errors(&fig, first)))),
        }
    }

    /// Checks across keys and against the file system. Every problem found is returned, each
    /// naming the key and what is expected; an empty list means the configuration is usable.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let (min, max) = (self.rtp.port_min.0, self.rtp.port_max.0);
        if self.ivr.script.is_some()
            && self.rtp.public_address.is_none()
            && self.sip.listen.is_unspecified()
        {
            out.push(format!(
                "`rtp.public_address` is not set and `sip.listen` is {}: expected an address callers can send RTP to in one of them (SDP cannot announce {})",
                self.sip.listen, self.sip.listen
            ));
        }
        let w = self.rtp.webrtc_port.0;
        if w != 0 && (min..=max).contains(&w) {
            out.push(format!(
                "`rtp.webrtc_port` is {w}: expected a port outside the RTP range {min}-{max} (calls take their ports from it)"
            ));
        }
        if self.rtp.media_threads > 256 {
            out.push(format!(
                "`rtp.media_threads` is {}: expected 0 (one per core but one) to 256",
                self.rtp.media_threads
            ));
        }
        if let Some(t) = &self.http.admin_token
            && (t.chars().count() < 16 || t.chars().any(|c| c.is_whitespace()))
        {
            out.push(
                "`http.admin_token` is too weak: expected at least 16 characters without spaces"
                    .into(),
            );
        }
        out.extend(self.http.tls.problems(self.http.listen));
        out.extend(self.node.problems());
        if let Some(r) = self.http.tls.redirect_from
            && !self.http.tls.enabled(self.http.listen)
        {
            out.push(format!(
                "`http.tls.redirect_from` is {r} but the server does not speak TLS (`http.tls.mode`): expected TLS on, or no redirect"
            ));
        }
        let idle = self.rtp.inactivity_timeout_secs;
        if idle != 0 && !(5..=3600).contains(&idle) {
            out.push(format!(
                "`rtp.inactivity_timeout_secs` is {idle}: expected 0 (off) or 5 to 3600 seconds"
            ));
        }
        if min % 2 != 0 {
            out.push(format!(
                "`rtp.port_min` is {min}: expected an even port (RTP takes even ports, RTCP the odd one above)"
            ));
        }
        if min == 0 {
            out.push("`rtp.port_min` is 0: expected a port from 1024 to 65534".into());
        }
        if max <= min {
            out.push(format!(
                "`rtp.port_max` is {max}: expected a port above `rtp.port_min` ({min})"
            ));
        } else if max - min < 3 {
            out.push(format!(
                "`rtp.port_min`..`rtp.port_max` ({min}..{max}) holds fewer than 4 ports: expected room for at least one RTP/RTCP pair and a second call"
            ));
        }
        for (key, port) in [
            ("sip.udp_port", self.sip.udp_port.0),
            ("sip.tcp_port", self.sip.tcp_port.0),
        ] {
            if port != 0 && (min..=max).contains(&port) {
                out.push(format!(
                    "`{key}` is {port}, inside the RTP range `rtp.port_min`..`rtp.port_max` ({min}..{max}): expected a port outside it"
                ));
            }
        }
        let http = self.http.listen;
        if http.port() != 0
            && http.port() == self.sip.tcp_port.0
            && (http.ip() == self.sip.listen
                || http.ip().is_unspecified()
                || self.sip.listen.is_unspecified())
        {
            out.push(format!(
                "`http.listen` ({http}) and `sip.tcp_port` ({}) use the same TCP port: expected different ports",
                self.sip.tcp_port
            ));
        }
        if let Err(e) = self.sip.trunk_nets() {
            out.push(e);
        }
        let algs = &self.sip.digest_algorithms;
        let unknown: Vec<&String> = algs
            .iter()
            .filter(|a| hotline_sip::auth::Algorithm::parse(a).is_none())
            .collect();
        if algs.is_empty() || !unknown.is_empty() {
            out.push(format!(
                "`sip.digest_algorithms` is {algs:?}: expected a non-empty list of \"SHA-256\" and \"MD5\""
            ));
        } else if algs
            .iter()
            .enumerate()
            .any(|(i, a)| algs[..i].iter().any(|b| b.eq_ignore_ascii_case(a)))
        {
            out.push("`sip.digest_algorithms`: an algorithm is listed twice".into());
        }
        if self.sip.realm.is_empty() || self.sip.realm.contains('"') {
            out.push("`sip.realm`: expected a non-empty name without quotes".into());
        }
        if !(1024..=1 << 20).contains(&self.sip.max_message_bytes) {
            out.push(format!(
                "`sip.max_message_bytes` is {}: expected 1024 to 1048576",
                self.sip.max_message_bytes
            ));
        }
        if !(3..=3600).contains(&self.sip.ws_idle_secs) {
            out.push(format!(
                "`sip.ws_idle_secs` is {}: expected 3 to 3600 seconds",
                self.sip.ws_idle_secs
            ));
        }
        if self.sip.max_tcp_connections == 0 || self.sip.max_tcp_connections_per_ip == 0 {
            out.push("`sip.max_tcp_connections` and `sip.max_tcp_connections_per_ip`: expected at least 1".into());
        }
        if !self.sip.ws_path.starts_with('/') {
            out.push(format!(
                "`sip.ws_path` is {:?}: expected a path starting with /",
                self.sip.ws_path
            ));
        }
        if let Some(url) = &self.database.url
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            out.push("`database.url`: expected a postgres:// or postgresql:// URL".to_string());
        }
        if self.database.max_connections == 0 {
            out.push("`database.max_connections` is 0: expected at least 1".into());
        }
        if let Err(why) = check_writable_dir(&self.recordings.dir) {
            out.push(format!(
                "`recordings.dir` ({}): {why}",
                self.recordings.dir.display()
            ));
        }
        if let Some(script) = &self.ivr.script {
            if !script.is_file() {
                out.push(format!(
                    "`ivr.script` ({}): no such file; expected the path of an IVR script",
                    script.display()
                ));
            } else if let Err(problems) = crate::ivr::script::load(
                script,
                &crate::ivr::script::Context {
                    queues: self.ivr.queue_names(),
                    tts: None,
                },
            ) {
                out.extend(problems.iter().map(|p| format!("`ivr.script`: {p}")));
            }
        }
        if self.acd.strategy().is_none() {
            out.push(format!(
                "`acd.strategy` is {:?}: expected longest_idle, round_robin, fewest_calls, ring_all or skills",
                self.acd.strategy
            ));
        }
        if !(5..=300).contains(&self.acd.ring_timeout_secs) {
            out.push(format!(
                "`acd.ring_timeout_secs` is {}: expected 5 to 300",
                self.acd.ring_timeout_secs
            ));
        }
        if self.acd.wrap_up_secs > 3600 {
            out.push(format!(
                "`acd.wrap_up_secs` is {}: expected at most 3600",
                self.acd.wrap_up_secs
            ));
        }
        if self.acd.announce_secs != 0 && self.acd.announce_secs < 15 {
            out.push(format!(
                "`acd.announce_secs` is {}: expected 0 (never) or at least 15",
                self.acd.announce_secs
            ));
        }
        if !self.acd.callback_route.is_empty() {
            let uri = self.acd.callback_route.replace("{number}", "12345678");
            let ip = hotline_sip::message::Uri::parse(&uri)
                .ok()
                .and_then(|u| u.as_sip().and_then(|s| s.host.ip()));
            if !self.acd.callback_route.contains("{number}") || ip.is_none() {
                out.push(format!(
                    "`acd.callback_route` is {:?}: expected a SIP URI with {{number}} and an IP address, e.g. \"sip:{{number}}@10.0.0.1:5060\"",
                    self.acd.callback_route
                ));
            }
        }
        if !self.acd.callback_numbers.trim().is_empty()
            && let Err(e) = regex::Regex::new(&self.acd.callback_numbers)
        {
            out.push(format!(
                "`acd.callback_numbers` is not a regular expression: {e}"
            ));
        }
        if self.acd.frequent_calls_per_hour > 1000 {
            out.push(format!(
                "`acd.frequent_calls_per_hour` is {}: expected 0 (off) to 1000",
                self.acd.frequent_calls_per_hour
            ));
        }
        if !(1..=10).contains(&self.acd.callback_attempts) {
            out.push(format!(
                "`acd.callback_attempts` is {}: expected 1 (no retry) to 10",
                self.acd.callback_attempts
            ));
        }
        if !(5..=86_400).contains(&self.acd.callback_retry_secs) {
            out.push(format!(
                "`acd.callback_retry_secs` is {}: expected 5 to 86400 seconds",
                self.acd.callback_retry_secs
            ));
        }
        if callback_hours(&self.acd.callback_hours).is_err() {
            out.push(format!(
                "`acd.callback_hours` is {:?}: expected HH:MM-HH:MM in China time (e.g. \"08:00-21:00\"), two different times, or empty for any time",
                self.acd.callback_hours
            ));
        }
        let known: Vec<String> = if self.ivr.queues.is_empty() {
            vec!["general".into()]
        } else {
            self.ivr.queues.clone()
        };
        for (name, rules) in &self.acd.queues {
            let at = format!("`acd.queues.{name}`");
            if !known.contains(name) {
                out.push(format!(
                    "{at}: no such queue (ivr.queues: {})",
                    known.join(", ")
                ));
            }
            if let Some(s) = &rules.strategy
                && strategy_named(s).is_none()
            {
                out.push(format!(
                    "{at}.strategy is {s:?}: expected longest_idle, round_robin, fewest_calls, ring_all or skills"
                ));
            }
            if let Some(t) = rules.ring_timeout_secs
                && !(5..=300).contains(&t)
            {
                out.push(format!("{at}.ring_timeout_secs is {t}: expected 5 to 300"));
            }
            match (&rules.overflow, rules.max_wait_secs) {
                (Some(o), Some(_)) if o == name || !known.contains(o) => out.push(format!(
                    "{at}.overflow is {o:?}: expected another queue of ivr.queues"
                )),
                (Some(_), None) | (None, Some(_)) => out.push(format!(
                    "{at}: overflow and max_wait_secs go together (where to, and after how long)"
                )),
                _ => {}
            }
        }
        for state in self.acd.alerts.stuck_secs.keys() {
            if !crate::acd::alerts::STATES.contains(&state.as_str()) {
                out.push(format!(
                    "`acd.alerts.stuck_secs.{state}`: no such agent state (expected one of {})",
                    crate::acd::alerts::STATES.join(", ")
                ));
            }
        }
        if !(0.0..=100.0).contains(&self.acd.alerts.min_connection_pct) {
            out.push(format!(
                "`acd.alerts.min_connection_pct` is {}: expected a percentage, 0 to 100",
                self.acd.alerts.min_connection_pct
            ));
        }
        for (name, uri) in &self.acd.emergency_routes {
            let ip = hotline_sip::message::Uri::parse(uri)
                .ok()
                .and_then(|u| u.as_sip().and_then(|s| s.host.ip()));
            if ip.is_none() {
                out.push(format!(
                    "`acd.emergency_routes.{name}` is {uri:?}: expected a SIP URI with an IP address, e.g. \"sip:110@10.0.0.1:5060\""
                ));
            }
        }
        if let Err(e) = self.tickets.load_calendar() {
            out.push(format!("`tickets.calendar`: {e}"));
        }
        if !(1..=10).contains(&self.tickets.return_window_days) {
            out.push(format!(
                "`tickets.return_window_days` is {}: expected 1 to 10",
                self.tickets.return_window_days
            ));
        }
        if self.tickets.max_extension_days > 60 {
            out.push(format!(
                "`tickets.max_extension_days` is {}: expected at most 60",
                self.tickets.max_extension_days
            ));
        }
        if !(1..=24 * 30).contains(&self.tickets.session_hours) {
            out.push(format!(
                "`tickets.session_hours` is {}: expected 1 to 720",
                self.tickets.session_hours
            ));
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            out.push(format!(
                "`log.level` is {:?}: {e}; expected a filter such as `info` or `hotline=debug`",
                self.log.level
            ));
        }
        out
    }

    /// The effective configuration as TOML (what `check-config --show` prints). Secrets (the
    /// database URL's password, the admin token) are replaced by `***`.
    pub fn to_toml(&self) -> String {
        let mut shown = self.clone();
        if let Some(url) = &shown.database.url {
            shown.database.url = Some(redact_url_password(url));
        }
        if shown.http.admin_token.is_some() {
            shown.http.admin_token = Some("***".into());
        }
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

/// `postgres://user:secret@host/db` becomes `postgres://user:***@host/db`.
pub fn redact_url_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let Some(at) = rest.find('@') else {
        return url.to_string();
    };
    let userinfo = &rest[..at];
    match userinfo.find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &url[..scheme_end + 3],
            &userinfo[..colon],
            &rest[at..]
        ),
        None => url.to_string(),
    }
}

/// A directory is usable if it exists (or can be created) and a file can be created in it.
fn check_writable_dir(dir: &Path) -> Result<(), String> {
    if dir.exists() && !dir.is_dir() {
        return Err("exists but is not a directory".into());
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create the directory: {e}"))?;
    let probe = dir.join(format!(".hotline-write-check-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| format!("not writable: {e}"))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

#[cfg(test)]
mod tests;
