//! site.example.yaml loads, validates and renders, and the agent config
//! rendered for every one of its hosts parses with the agent's own types
//! (`shoal_config::AgentConfig`) and says what the site file says.
//!
//! The expectations are read from the example with plain serde_yaml, not
//! from the site model under test.

use serde_yaml::Value;
use shoal_config::{AgentConfig, LogFormat, Profile, Role};
use shoal_provisioner::render::{render_agent_config, render_ansible, render_puppet, render_unit};
use shoal_provisioner::site::Site;
use std::net::SocketAddr;
use std::path::PathBuf;

fn example_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../site.example.yaml")
}

fn raw() -> Value {
    serde_yaml::from_str(&std::fs::read_to_string(example_path()).unwrap()).unwrap()
}

/// A host's setting: its own entry, else `defaults:`.
fn setting<'a>(entry: &'a Value, raw: &'a Value, key: &str) -> Option<&'a Value> {
    entry.get(key).or_else(|| raw["defaults"].get(key))
}

fn s(v: Option<&Value>) -> Option<String> {
    v.and_then(|v| v.as_str()).map(str::to_string)
}

#[test]
fn the_example_is_valid_and_describes_an_origin_and_three_mirrors() {
    let site = Site::load(&example_path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(site.origin().role, Role::Origin);
    assert_eq!(site.mirrors().len(), 3);
    assert_eq!(site.origin().profile, Profile::Debian);
    assert!(site.hosts.iter().all(|h| h.profile == Profile::Debian));
    // It renders for every target.
    assert!(!render_puppet(&site).unwrap().is_empty());
    assert!(!render_ansible(&site).unwrap().is_empty());
    for h in &site.hosts {
        assert!(render_unit(&site, h)
            .contains("ExecStart=/usr/local/bin/shoal-agent --config /etc/shoal/agent.yaml run"));
    }
}

#[test]
fn one_schema_every_rendered_agent_config_parses_with_the_agents_types() {
    let raw = raw();
    let site = Site::load(&example_path()).unwrap();
    let origin = &raw["origin"];
    let origin_key = origin["origin_public_key"].as_str().unwrap();
    let port_of = |entry: &Value| -> u16 {
        let l = s(setting(entry, &raw, "listen")).unwrap_or_else(|| "0.0.0.0:8780".into());
        l.parse::<SocketAddr>().unwrap().port()
    };
    let url_of = |entry: &Value| {
        format!(
            "http://{}:{}",
            entry["host"].as_str().unwrap(),
            port_of(entry)
        )
    };
    let mut entries = vec![(Role::Origin, origin.clone())];
    for m in raw["mirrors"].as_sequence().unwrap() {
        entries.push((Role::Mirror, m.clone()));
    }
    assert_eq!(entries.len(), site.hosts.len());

    for (role, entry) in &entries {
        let name = entry["host"].as_str().unwrap();
        let host = site.host(name).unwrap();
        let text = render_agent_config(&site, host);
        let cfg = AgentConfig::from_yaml(&text, &format!("agent config of {name}"))
            .unwrap_or_else(|e| panic!("{e}\n--- rendered:\n{text}"));

        assert_eq!(cfg.role, *role, "{name}");
        let port = port_of(entry);
        assert_eq!(cfg.listen.port(), port, "{name}");
        assert_eq!(
            cfg.peer_listen().unwrap().port(),
            port + 1,
            "{name}: BitTorrent is listen port + 1"
        );
        assert_eq!(cfg.advertise_url(), url_of(entry), "{name}");
        assert_eq!(
            cfg.repo.to_str().unwrap(),
            s(setting(entry, &raw, "repo_dir")).unwrap(),
            "{name}"
        );
        assert_eq!(
            cfg.state.to_str().unwrap(),
            s(setting(entry, &raw, "state_dir")).unwrap()
        );
        assert_eq!(cfg.profile, Profile::Debian);
        assert_eq!(cfg.log.format, LogFormat::Json);
        assert!(
            !cfg.network.dht && !cfg.network.lsd && !cfg.network.upnp,
            "{name}: public networks stay off"
        );
        let limit = |key: &str| match setting(entry, &raw, key) {
            None => 0,
            Some(v) => shoal_config::parse_bytes(v.as_str().unwrap()).unwrap(),
        };
        assert_eq!(cfg.network.upload_limit, limit("upload_limit"), "{name}");
        assert_eq!(
            cfg.network.download_limit,
            limit("download_limit"),
            "{name}"
        );
        match role {
            Role::Origin => {
                assert_eq!(
                    cfg.origin.key.as_deref().unwrap().to_str(),
                    Some("/etc/shoal/origin.key")
                );
                assert_eq!(cfg.origin.publish_interval.as_secs(), 300);
                assert_eq!(cfg.origin.manifest_ttl.as_secs(), 7 * 86400);
            }
            Role::Mirror => {
                assert_eq!(cfg.mirror.origin_key.as_deref(), Some(origin_key), "{name}");
                let want: Vec<String> = match entry.get("upstreams") {
                    None => vec![url_of(origin)],
                    Some(list) => list
                        .as_sequence()
                        .unwrap()
                        .iter()
                        .map(|u| {
                            let u = u.as_str().unwrap();
                            let target = entries
                                .iter()
                                .find(|(_, e)| e["host"].as_str() == Some(u))
                                .unwrap();
                            url_of(&target.1)
                        })
                        .collect(),
                };
                assert_eq!(cfg.mirror.upstreams, want, "{name}");
                assert_eq!(cfg.mirror.poll_interval.as_secs(), 30);
                assert_eq!(cfg.mirror.delete_grace.as_secs(), 3600);
            }
        }
    }
}

#[test]
fn values_that_need_escaping_survive_the_agent_config() {
    let text = std::fs::read_to_string(example_path()).unwrap().replace(
        "  - host: mirror1.example.org\n",
        "  - host: mirror1.example.org\n    agent_name: \"o'brien\\\"s#1:{x}\"\n",
    );
    let site = Site::from_yaml(&text, "site.yaml").unwrap_or_else(|e| panic!("{e}"));
    let h = site.host("mirror1.example.org").unwrap();
    let cfg = AgentConfig::from_yaml(&render_agent_config(&site, h), "agent.yaml").unwrap();
    assert_eq!(cfg.name.as_deref(), Some("o'brien\"s#1:{x}"));
}

#[test]
fn rendering_is_deterministic() {
    let a = Site::load(&example_path()).unwrap();
    let b = Site::load(&example_path()).unwrap();
    assert_eq!(render_puppet(&a).unwrap(), render_puppet(&b).unwrap());
    assert_eq!(render_ansible(&a).unwrap(), render_ansible(&b).unwrap());
    for (x, y) in a.hosts.iter().zip(&b.hosts) {
        assert_eq!(render_agent_config(&a, x), render_agent_config(&b, y));
    }
}
