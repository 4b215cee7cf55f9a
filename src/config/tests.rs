//! The configuration's loading, validation and composition, tested.

mod general {
    use super::super::*;

    fn load_str(toml: &str, env: &[(&str, &str)]) -> Result<Config, LoadError> {
        let dir = tempfile::tempdir().map_err(|e| LoadError::Missing(e.to_string().into()))?;
        let path = dir.path().join("hotline.toml");
        std::fs::write(&path, toml).map_err(|e| LoadError::Missing(e.to_string().into()))?;
        Config::load_with_env(
            Some(&path),
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn defaults_are_usable_without_a_file() {
        let cfg = Config::load_with_env(None, Vec::new()).unwrap();
        assert_eq!(cfg.sip.udp_port, Port(5060));
        assert_eq!(cfg.log.format, LogFormat::Human);
        assert!(cfg.log.mask_numbers);
        assert!(cfg.database.url.is_none());
    }

    #[test]
    fn file_values_override_defaults_and_env_overrides_file() {
        let cfg = load_str(
            "[sip]\nudp_port = 5070\n[log]\nformat = \"json\"\n",
            &[
                ("HOTLINE_SIP__UDP_PORT", "5080"),
                ("HOTLINE_RTP__PORT_MIN", "40000"),
                ("HOTLINE_RTP__PORT_MAX", "40100"),
                ("HOTLINE_CONFIG", "ignored.toml"),
                ("UNRELATED__THING", "x"),
            ],
        )
        .unwrap();
        assert_eq!(cfg.sip.udp_port, Port(5080));
        assert_eq!(cfg.rtp.port_min, Port(40000));
        assert_eq!(cfg.rtp.port_max, Port(40100));
        assert_eq!(cfg.log.format, LogFormat::Json);
    }

    #[test]
    fn unknown_key_in_file_is_named() {
        let err = load_str("[sip]\nudp_prot = 5070\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("sip.udp_prot"), "{err}");
        assert!(
            err.contains("udp_port"),
            "should list the expected keys: {err}"
        );
    }

    #[test]
    fn unknown_section_is_named() {
        let err = load_str("[sipp]\nudp_port = 5070\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("sipp"), "{err}");
    }

    #[test]
    fn unknown_key_in_env_is_named() {
        let err = load_str("", &[("HOTLINE_SIP__UDP_PROT", "5070")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("sip.udp_prot"), "{err}");
    }

    #[test]
    fn out_of_range_port_names_key_and_range() {
        let err = load_str("[sip]\nudp_port = 70000\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("sip.udp_port"), "{err}");
        assert!(err.contains("0 to 65535"), "{err}");
        let err = load_str("", &[("HOTLINE_SIP__TCP_PORT", "-1")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("sip.tcp_port"), "{err}");
    }

    #[test]
    fn mistakes_in_several_sections_are_reported_together() {
        let err = load_str(
            "[sip]\nudp_prot = 5070\n[http]\nlisten = \"localhost\"\n[extra]\na = 1\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("sip.udp_prot"), "{err}");
        assert!(
            err.contains("http.listen") && err.contains("127.0.0.1:8080"),
            "{err}"
        );
        assert!(err.contains("unknown section `extra`"), "{err}");
    }

    #[test]
    fn bad_enum_value_says_what_is_expected() {
        let err = load_str("[log]\nformat = \"xml\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("log.format"), "{err}");
        assert!(err.contains("human") && err.contains("json"), "{err}");
    }

    #[test]
    fn cross_key_problems_are_all_reported() {
        let mut cfg = Config::default();
        cfg.rtp.port_min = Port(5001);
        cfg.rtp.port_max = Port(6000);
        cfg.sip.ws_path = "sip".into();
        cfg.recordings.dir = std::env::temp_dir().join(format!("hl-rec-{}", std::process::id()));
        let p = cfg.problems();
        assert!(
            p.iter()
                .any(|m| m.contains("rtp.port_min") && m.contains("even")),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|m| m.contains("sip.udp_port") && m.contains("RTP range")),
            "{p:?}"
        );
        assert!(p.iter().any(|m| m.contains("sip.ws_path")), "{p:?}");
        let _ = std::fs::remove_dir_all(&cfg.recordings.dir);
    }

    #[test]
    fn http_and_sip_tcp_on_one_port_is_a_problem() {
        let mut cfg = Config::default();
        cfg.http.listen = "0.0.0.0:5060".parse().unwrap();
        cfg.recordings.dir = std::env::temp_dir();
        let p = cfg.problems();
        assert!(
            p.iter()
                .any(|m| m.contains("http.listen") && m.contains("sip.tcp_port")),
            "{p:?}"
        );
    }

    #[test]
    fn shown_config_hides_the_database_password() {
        let mut cfg = Config::default();
        cfg.database.url = Some("postgres://hl:s3cret@db:5432/hotline".into());
        let shown = cfg.to_toml();
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(
            shown.contains("postgres://hl:***@db:5432/hotline"),
            "{shown}"
        );
    }
}

mod acd {
    use super::super::*;

    #[test]
    fn a_queue_takes_its_own_rules_and_the_rest_from_acd() {
        let acd: AcdConfig = toml::from_str(
            r#"
strategy = "round_robin"
ring_timeout_secs = 15
[queues.general]
strategy = "skills"
skills = ["mandarin"]
max_wait_secs = 120
overflow = "backup"
"#,
        )
        .unwrap();
        let general = acd.queue("general");
        assert_eq!(general.strategy, crate::acd::routing::Strategy::Skills);
        assert_eq!(general.skills, ["mandarin"]);
        assert_eq!(general.max_wait, Some(std::time::Duration::from_secs(120)));
        assert_eq!(general.overflow.as_deref(), Some("backup"));
        assert_eq!(general.ring_timeout, std::time::Duration::from_secs(15));
        let backup = acd.queue("backup");
        assert_eq!(backup.strategy, crate::acd::routing::Strategy::RoundRobin);
        assert_eq!(backup.overflow, None);
        assert_eq!(backup.wrap_up, std::time::Duration::from_secs(30));
    }

    #[test]
    fn the_callback_retry_rule_is_read_and_a_bad_one_named() {
        let acd: AcdConfig = toml::from_str(
            "callback_attempts = 2\ncallback_retry_secs = 300\ncallback_hours = \"09:00-18:00\"\n",
        )
        .unwrap();
        let rule = acd.settings().callback_retry;
        assert_eq!(rule.attempts, 2);
        assert_eq!(rule.spacing, std::time::Duration::from_secs(300));
        assert_eq!(
            rule.hours,
            chrono::NaiveTime::from_hms_opt(9, 0, 0).zip(chrono::NaiveTime::from_hms_opt(18, 0, 0))
        );
        let cfg = Config {
            acd: AcdConfig {
                callback_attempts: 0,
                callback_retry_secs: 4,
                callback_hours: "9-18".into(),
                ..AcdConfig::default()
            },
            ..Config::default()
        };
        let p = cfg.problems().join("\n");
        for key in [
            "acd.callback_attempts",
            "acd.callback_retry_secs",
            "acd.callback_hours",
        ] {
            assert!(p.contains(key), "{key}: {p}");
        }
        let any: AcdConfig = toml::from_str("callback_hours = \"\"\n").unwrap();
        assert_eq!(any.settings().callback_retry.hours, None);
    }

    #[test]
    fn callbacks_dial_only_mainland_numbers_by_default() {
        let allowed = AcdConfig::default().callback_numbers().unwrap().unwrap();
        for n in [
            "13812345678",
            "19912345678",
            "02012345678",
            "051012345678",
            "88886666",
        ] {
            assert!(allowed.is_match(n), "{n} may be called back");
        }
        for n in [
            "008613812345678",
            "+8613812345678",
            "0044207946000",
            "95588",
            "12345",
            "1381234567",
            "13812345678;phone-context=x",
            "",
            "anonymous",
        ] {
            assert!(!allowed.is_match(n), "{n:?} may not");
        }
        let any = AcdConfig {
            callback_numbers: String::new(),
            ..AcdConfig::default()
        };
        assert!(any.callback_numbers().unwrap().is_none());
        let cfg = Config {
            acd: AcdConfig {
                callback_numbers: "(".into(),
                ..AcdConfig::default()
            },
            ..Config::default()
        };
        assert!(cfg.problems().join("\n").contains("acd.callback_numbers"));
    }

    #[test]
    fn trunks_are_addresses_or_blocks_and_anything_else_is_named() {
        let mut cfg = Config::default();
        cfg.sip.trunks = vec![
            "10.1.2.3".into(),
            "10.9.0.0/16".into(),
            "2001:db8::/32".into(),
        ];
        let nets = cfg.sip.trunk_nets().unwrap();
        assert!(nets[0].contains(&"10.1.2.3".parse::<std::net::IpAddr>().unwrap()));
        assert!(nets[1].contains(&"10.9.8.7".parse::<std::net::IpAddr>().unwrap()));
        assert!(!nets[1].contains(&"10.8.0.1".parse::<std::net::IpAddr>().unwrap()));
        assert!(cfg.problems().is_empty(), "{:?}", cfg.problems());
        cfg.sip.trunks.push("carrier.example".into());
        let problems = cfg.problems().join("\n");
        assert!(
            problems.contains("`sip.trunks` entry \"carrier.example\""),
            "{problems}"
        );
    }
}
