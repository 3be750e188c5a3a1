//! The rendered systemd unit passes `systemd-analyze verify` without a
//! single warning, for root and non-root agents, low and high ports, and
//! folders that need exceptions to the hardening. The ExecStart binary must
//! exist for verify, so install_dir points at a temp dir holding a real
//! executable. Needs the Debian package systemd.

use shoal_provisioner::render::render_unit;
use shoal_provisioner::site::Site;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

const KEY: &str = "ed25519:3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29";

fn site(bin_dir: &Path) -> Site {
    let text = format!(
        "defaults:\n  binary_source: /srv/dist/shoal-agent\n  install_dir: {}\n\
         origin:\n  host: origin.example.org\n  origin_public_key: {KEY}\n\
         mirrors:\n\
         \x20 - host: low.example.org\n    user: shoal\n    group: shoal\n    listen: 0.0.0.0:80\n\
         \x20 - host: etc.example.org\n    user: shoal\n    group: shoal\n    state_dir: /etc/shoal-state\n\
         \x20 - host: home.example.org\n    repo_dir: /home/mirror/repo\n\
         \x20 - host: sibling.example.org\n    repo_dir: /srv/shoal/repo\n    state_dir: /srv/shoal/state\n",
        bin_dir.display()
    );
    Site::from_yaml(&text, "site.yaml").unwrap_or_else(|e| panic!("{e}"))
}

fn verify(unit: &str, dir: &Path) -> String {
    let unit_dir = dir.join("units");
    std::fs::create_dir_all(&unit_dir).unwrap();
    let path = unit_dir.join("shoal-agent.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .env("SYSTEMD_LOG_COLOR", "0")
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run systemd-analyze: {e}; install the Debian package systemd")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{text}\n--- unit:\n{unit}"
    );
    text
}

#[test]
fn every_hosts_unit_verifies_without_warnings() {
    let tmp = tempfile::Builder::new()
        .prefix("shoal-render-unit-")
        .tempdir()
        .unwrap();
    let bin = tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy("/bin/true", bin.join("shoal-agent")).unwrap();
    std::fs::set_permissions(
        bin.join("shoal-agent"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let site = site(&bin);
    for h in &site.hosts {
        let unit = render_unit(&site, h);
        let text = verify(&unit, tmp.path());
        assert!(
            text.trim().is_empty(),
            "systemd-analyze warned about {}:\n{text}\n--- unit:\n{unit}",
            h.host
        );
        let exec = format!(
            "ExecStart={}/shoal-agent --config /etc/shoal/agent.yaml run",
            bin.display()
        );
        assert!(unit.contains(&exec), "{unit}");
        // Started only once its folders are mounted (a GlusterFS repository
        // comes from fstab at boot), on every host.
        let mounts = format!(
            "\nRequiresMountsFor={} {}\n",
            h.repo_dir.display(),
            h.state_dir.display()
        );
        assert!(unit.contains(&mounts), "{unit}");
        assert!(
            unit.contains("\nAfter=network-online.target remote-fs.target\n"),
            "{unit}"
        );
        assert!(unit.contains("NoNewPrivileges=yes"), "{unit}");
        // Repository and state share only `/`, except on the sibling host:
        // there their one common folder is the one writable entry.
        let protect = if h.host == "sibling.example.org" {
            "\nProtectSystem=strict\nReadWritePaths=/srv/shoal\n"
        } else {
            "\nProtectSystem=full\n"
        };
        assert!(unit.contains(protect), "{unit}");
        match h.host.as_str() {
            "origin.example.org" => {
                assert!(unit.contains("User=root"), "{unit}");
                assert!(
                    unit.contains("ExecReload="),
                    "the origin publishes on reload: {unit}"
                );
                assert!(unit.contains("ProtectHome=yes"), "{unit}");
            }
            "low.example.org" => {
                assert!(unit.contains("User=shoal"), "{unit}");
                assert!(
                    unit.contains("AmbientCapabilities=CAP_NET_BIND_SERVICE"),
                    "port 80 needs it: {unit}"
                );
            }
            "etc.example.org" => {
                assert!(unit.contains("ReadWritePaths=/etc/shoal-state"), "{unit}");
                assert!(
                    unit.contains("CapabilityBoundingSet=\n"),
                    "no capabilities: {unit}"
                );
            }
            "home.example.org" => {
                assert!(unit.contains("ProtectHome=no"), "{unit}");
                assert!(
                    unit.contains("\nRequiresMountsFor=/home/mirror/repo /var/lib/shoal\n"),
                    "{unit}"
                );
            }
            "sibling.example.org" => {
                assert_eq!(
                    unit.lines()
                        .filter(|l| l.starts_with("ReadWritePaths="))
                        .count(),
                    1,
                    "{unit}"
                );
            }
            other => panic!("unexpected host {other}"),
        }
    }
}

#[test]
fn verify_does_catch_a_broken_unit() {
    // The check above means something: a misspelt hardening key is reported.
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy("/bin/true", bin.join("shoal-agent")).unwrap();
    let site = site(&bin);
    let unit = render_unit(&site, site.origin()).replace("ProtectSystem=full", "ProtectSytem=full");
    let text = verify(&unit, tmp.path());
    assert!(
        text.contains("Unknown key") && text.contains("ProtectSytem"),
        "{text}"
    );
}
