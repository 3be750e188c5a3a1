//! Rendering a site: agent configs, systemd units, the Puppet site layer and
//! the Ansible inventory and playbook.
//!
//! The tera templates (`templates/`), the Puppet module (`puppet/`) and the
//! Ansible role (`ansible/roles/shoal`) are embedded in the binary, so `shoal`
//! works on an admin machine without the source tree. Rendering is
//! deterministic; writing into an existing output folder rewrites only the
//! files whose content changed and removes files a previous render wrote
//! that are no longer produced.

use crate::site::{agent_context, Gluster, GlusterServer, Host, Site, Sites, PER_REPOSITORY};
use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use include_dir::{include_dir, Dir, DirEntry};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;

/// The tera templates (`templates/`).
pub static TEMPLATES: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../templates");
/// The Puppet module `shoal` (`puppet/`), test-only parts left out by build.rs.
pub static PUPPET_MODULE: Dir<'static> = include_dir!("$OUT_DIR/embed/puppet");
/// The Ansible role `shoal` (`ansible/roles/shoal`), test-only parts left out by build.rs.
pub static ANSIBLE_ROLE: Dir<'static> = include_dir!("$OUT_DIR/embed/ansible-role");

/// The name of the list of files a render wrote, kept in the output folder.
pub const RENDER_LIST: &str = ".shoal-rendered";

// ---------------------------------------------------------------------------
// CLI
// ---------------------------------------------------------------------------

/// Render the site for a deployment tool, or one host's files.
#[derive(Debug, Subcommand)]
pub enum RenderCommand {
    /// Write a Puppet site layer: site.pp, Hiera data and the module.
    ///
    /// Writes OUT/manifests/site.pp (a node block per host declaring
    /// `class { 'shoal': ... }` with the settings the site gives it),
    /// OUT/hiera.yaml with OUT/data/common.yaml (the site defaults) and
    /// OUT/data/nodes/<host>.yaml (each host's own settings) for control
    /// repos that `include shoal`, and the module itself in
    /// OUT/modules/shoal. Apply with `puppet apply --modulepath OUT/modules
    /// --hiera_config OUT/hiera.yaml OUT/manifests/site.pp`, or copy the
    /// pieces into your control repo.
    Puppet(OutArgs),
    /// Write an Ansible tree: inventory, playbook and the role.
    ///
    /// Writes OUT/inventory.yml (groups shoal_origin and shoal_mirrors under
    /// a parent group shoal, each host's own settings as host variables
    /// shoal_<param>), OUT/group_vars/shoal.yml (the site defaults),
    /// OUT/site.yml (the playbook: the origin first, then the mirrors) and
    /// the role in OUT/roles/shoal. Run with
    /// `ansible-playbook -i OUT/inventory.yml OUT/site.yml`.
    Ansible(OutArgs),
    /// Print the shoal-agent configuration (agent.yaml) of one host.
    ///
    /// This is the file the host's agent reads from <config_dir>/agent.yaml;
    /// `shoal bootstrap` installs it over SSH.
    AgentConfig(HostArgs),
    /// Print the systemd unit (shoal-agent.service) of one host.
    ///
    /// The hardened unit that goes to <unit_dir>/shoal-agent.service on hosts
    /// whose service_manager is systemd.
    Unit(HostArgs),
}

/// Where the site is and where the rendered tree goes.
#[derive(Debug, Args)]
pub struct OutArgs {
    /// The site file to render.
    #[arg(long, value_name = "FILE", default_value = "site.yaml")]
    pub site: PathBuf,
    /// The output folder. Created if missing; in an existing folder only
    /// changed files are rewritten, and files an earlier render wrote that are
    /// no longer produced are removed. Files shoal did not write are never
    /// overwritten unless --force is given.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Overwrite files in the output folder that shoal did not write.
    #[arg(long)]
    pub force: bool,
}

/// Which site and which host.
#[derive(Debug, Args)]
pub struct HostArgs {
    /// The site file.
    #[arg(long, value_name = "FILE", default_value = "site.yaml")]
    pub site: PathBuf,
    /// The host, as named by `host:` in the site file.
    #[arg(long, value_name = "NAME")]
    pub host: String,
}

/// Runs `shoal render ...`.
pub fn run(cmd: &RenderCommand) -> anyhow::Result<ExitCode> {
    let load = |path: &Path| -> anyhow::Result<Site> {
        Site::load(path).map_err(|e| {
            anyhow::anyhow!(
                "{e}\n{}: {} problem(s); fix them (`shoal check --site {}` lists them) and render again",
                path.display(),
                e.0.len(),
                path.display()
            )
        })
    };
    match cmd {
        RenderCommand::Puppet(a) | RenderCommand::Ansible(a) => {
            let site = Sites::load(&a.site).map_err(|e| {
                anyhow::anyhow!(
                    "{e}\n{}: {} problem(s); fix them (`shoal check --site {}` lists them) and render again",
                    a.site.display(),
                    e.0.len(),
                    a.site.display()
                )
            })?;
            let one = (site.repositories.len() == 1 && site.repositories[0].repository.is_none())
                .then(|| &site.repositories[0]);
            let (tool, files) = match (cmd, one) {
                (RenderCommand::Puppet(_), Some(one)) => ("Puppet", render_puppet(one)?),
                (RenderCommand::Puppet(_), None) => ("Puppet", render_puppet_repositories(&site)?),
                (_, Some(one)) => ("Ansible", render_ansible(one)?),
                (_, None) => ("Ansible", render_ansible_repositories(&site)?),
            };
            let report = write_tree(&a.out, &files, a.force)?;
            println!(
                "{tool} tree for site '{}' in {}: {} file(s) written, {} unchanged, {} removed",
                site.name,
                a.out.display(),
                report.written.len(),
                report.unchanged,
                report.removed.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        RenderCommand::AgentConfig(a) | RenderCommand::Unit(a) => {
            let site = load(&a.site)?;
            let Some(host) = site.host(&a.host) else {
                let names: Vec<&str> = site.hosts.iter().map(|h| h.host.as_str()).collect();
                bail!(
                    "{}: no host '{}' in the site; hosts are: {}",
                    a.site.display(),
                    a.host,
                    names.join(", ")
                );
            };
            let text = match cmd {
                RenderCommand::AgentConfig(_) => render_agent_config(&site, host),
                _ => render_unit(&site, host),
            };
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

// ---------------------------------------------------------------------------
// Escaping filters
// ---------------------------------------------------------------------------

/// A YAML double-quoted scalar: safe for any string.
pub fn yaml_quote(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\t' => o.push_str("\\t"),
            '\r' => o.push_str("\\r"),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') => {
                o.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// A Puppet single-quoted string: `\` and `'` escaped, nothing interpolated.
pub fn puppet_quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

#[derive(Clone, Copy, PartialEq)]
enum Yaml {
    Plain,
    /// Hiera interpolates `%{...}` in strings; a literal `%{` is written
    /// `%{literal('%')}{`.
    Hiera,
    /// Ansible templates `{{ }}`, `{% %}` and `{# #}` in variables; strings
    /// that contain them are tagged `!unsafe`.
    Ansible,
}

fn yaml_value(v: &Value, flavor: Yaml) -> String {
    match v {
        Value::String(s) => {
            let s = match flavor {
                Yaml::Hiera => s.replace("%{", "%{literal('%')}{"),
                _ => s.clone(),
            };
            let q = yaml_quote(&s);
            if flavor == Yaml::Ansible && (s.contains("{{") || s.contains("{%") || s.contains("{#"))
            {
                format!("!unsafe {q}")
            } else {
                q
            }
        }
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".into(),
        Value::Array(a) => format!(
            "[{}]",
            a.iter()
                .map(|x| yaml_value(x, flavor))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, x)| format!("{}: {}", yaml_quote(k), yaml_value(x, flavor)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn puppet_value(v: &Value, indent: usize) -> String {
    match v {
        Value::String(s) => puppet_quote(s),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "undef".into(),
        Value::Array(a) => {
            let items: Vec<String> = a.iter().map(|x| puppet_value(x, indent + 2)).collect();
            let inline = format!("[{}]", items.join(", "));
            if inline.len() <= 72 {
                inline
            } else {
                let pad = " ".repeat(indent + 2);
                let mut s = String::from("[\n");
                for i in items {
                    s.push_str(&format!("{pad}{i},\n"));
                }
                s.push_str(&" ".repeat(indent));
                s.push(']');
                s
            }
        }
        Value::Object(m) => {
            let inline = format!(
                "{{ {} }}",
                m.iter()
                    .map(|(k, x)| format!("{} => {}", puppet_quote(k), puppet_value(x, indent + 2)))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            if inline.len() <= 72 {
                return inline;
            }
            // One key a line, arrows aligned (puppet-lint's arrow_alignment).
            let width = m.keys().map(|k| puppet_quote(k).len()).max().unwrap_or(0);
            let pad = " ".repeat(indent + 2);
            let mut s = String::from("{\n");
            for (k, x) in m {
                let key = puppet_quote(k);
                s.push_str(&format!(
                    "{pad}{key}{} => {},\n",
                    " ".repeat(width - key.len()),
                    puppet_value(x, indent + 2)
                ));
            }
            s.push_str(&" ".repeat(indent));
            s.push('}');
            s
        }
    }
}

/// A word for a systemd unit setting that unquotes (ExecStart=,
/// ReadWritePaths=): quoted when it has spaces or quotes, `%` doubled.
pub fn systemd_arg(s: &str) -> String {
    let s = s.replace('%', "%%");
    if s.is_empty() || s.chars().any(|c| c.is_whitespace() || "\"'\\;".contains(c)) {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        s
    }
}

fn as_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn register_filters(t: &mut tera::Tera) {
    t.register_filter("yaml", |v: &Value, _: &HashMap<String, Value>| {
        Ok(Value::String(yaml_value(v, Yaml::Plain)))
    });
    t.register_filter("hiera", |v: &Value, _: &HashMap<String, Value>| {
        Ok(Value::String(yaml_value(v, Yaml::Hiera)))
    });
    t.register_filter("ansible", |v: &Value, _: &HashMap<String, Value>| {
        Ok(Value::String(yaml_value(v, Yaml::Ansible)))
    });
    // What follows `key:` in the inventory: ` value`, or a block list on
    // the next lines (indented by `indent`) when the flow form is too long
    // for ansible-lint's line length.
    t.register_filter(
        "ansible_after_key",
        |v: &Value, args: &HashMap<String, Value>| {
            let indent = args.get("indent").and_then(Value::as_u64).unwrap_or(0) as usize;
            let flow = yaml_value(v, Yaml::Ansible);
            Ok(Value::String(match v {
                Value::Array(a) if !a.is_empty() && indent + flow.len() > 120 => a
                    .iter()
                    .map(|x| {
                        format!(
                            "\n{}- {}",
                            " ".repeat(indent + 2),
                            yaml_value(x, Yaml::Ansible)
                        )
                    })
                    .collect(),
                _ => format!(" {flow}"),
            }))
        },
    );
    t.register_filter("puppet", |v: &Value, args: &HashMap<String, Value>| {
        let indent = args.get("indent").and_then(Value::as_u64).unwrap_or(0) as usize;
        Ok(Value::String(puppet_value(v, indent)))
    });
    t.register_filter("systemd_arg", |v: &Value, _: &HashMap<String, Value>| {
        Ok(Value::String(systemd_arg(&as_str(v))))
    });
    t.register_filter("systemd_text", |v: &Value, _: &HashMap<String, Value>| {
        let s: String = as_str(v)
            .replace('%', "%%")
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        Ok(Value::String(s.trim_end_matches('\\').to_string()))
    });
    // Text inside a `#` comment: one line.
    t.register_filter("comment", |v: &Value, _: &HashMap<String, Value>| {
        Ok(Value::String(
            as_str(v)
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect(),
        ))
    });
}

/// The names of the templates this module renders.
const TEMPLATE_NAMES: &[&str] = &[
    "agent.yaml.tera",
    "shoal-agent.service.tera",
    "puppet/site.pp.tera",
    "puppet/hiera.yaml.tera",
    "puppet/hiera/common.yaml.tera",
    "puppet/hiera/node.yaml.tera",
    "ansible/inventory.yml.tera",
    "ansible/group_vars.yml.tera",
    "ansible/site.yml.tera",
];

/// The tera engine with the embedded templates and the escaping filters.
pub fn engine() -> tera::Tera {
    let mut t = tera::Tera::default();
    t.autoescape_on(vec![]);
    register_filters(&mut t);
    let templates: Vec<(&str, &str)> = TEMPLATE_NAMES
        .iter()
        .map(|n| {
            let f = TEMPLATES
                .get_file(n)
                .unwrap_or_else(|| panic!("template {n} is embedded"));
            (*n, f.contents_utf8().expect("templates are UTF-8"))
        })
        .collect();
    t.add_raw_templates(templates)
        .expect("the embedded templates parse");
    t
}

fn render(t: &tera::Tera, name: &str, ctx: Value) -> anyhow::Result<String> {
    let ctx = tera::Context::from_value(ctx).context("template context")?;
    t.render(name, &ctx).map_err(|e| {
        let mut msg = format!("rendering {name}: {e}");
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            msg.push_str(&format!(": {s}"));
            src = s.source();
        }
        anyhow::anyhow!(msg)
    })
}

// ---------------------------------------------------------------------------
// Per-host files
// ---------------------------------------------------------------------------

/// The shoal-agent configuration (`<config_dir>/agent.yaml`) of a host.
pub fn render_agent_config(site: &Site, host: &Host) -> String {
    render(
        &engine(),
        "agent.yaml.tera",
        Value::Object(agent_context(site, host)),
    )
    .expect("agent config renders for a validated site")
}

/// The systemd unit of a host (`<unit_dir>/shoal-agent.service`, or
/// `shoal-agent@<name>.service` for a repository of a multi-repository site;
/// see [`Site::unit_name`]).
pub fn render_unit(site: &Site, host: &Host) -> String {
    render(
        &engine(),
        "shoal-agent.service.tera",
        unit_context(site, host),
    )
    .expect("unit renders for a validated site")
}

/// The unit the Debian package installs (`/lib/systemd/system/shoal-agent.service`),
/// from the same template as a host's unit: it runs
/// `<agent_binary> --config <config_file> run`, so one unit serves an origin
/// or a mirror, and starts only once the config file exists. It runs as
/// root with the root capability set of [`render_unit`], because the
/// package cannot know which user owns the configured folders.
pub fn render_packaged_unit(agent_binary: &Path, config_file: &Path) -> String {
    render(
        &engine(),
        "shoal-agent.service.tera",
        json!({
            "packaged": true,
            "role": "",
            "agent_binary": agent_binary,
            "config_file": config_file,
            "user": "root",
            "group": "root",
            "protect_system": "full",
            "rw_paths": Vec::<String>::new(),
            "protect_home": "yes",
            "capabilities": "CAP_CHOWN CAP_DAC_OVERRIDE CAP_FOWNER CAP_NET_BIND_SERVICE",
            "capabilities_why": "Running as root: keep only what managing files owned by others and a low port need.",
            "ambient": false,
        }),
    )
    .expect("the packaged unit renders")
}

/// The hardening settings of a unit that depend on its parameters. Puppet
/// (`shoal::unit_settings`) and the Ansible role (`templates/shoal-agent.service.j2`)
/// compute the same from the same parameters; `tests/tests/unit_same.rs`
/// renders all three and compares the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitHardening {
    /// `strict` when the repository and the state folder have a common
    /// folder below `/`, else `full`.
    pub protect_system: &'static str,
    /// The `ReadWritePaths=` entries: the one common folder (strict), or the
    /// folders under /usr, /boot, /efi or /etc (full).
    pub rw_paths: Vec<PathBuf>,
    /// `yes`, `read-only` (the binary, the config or the key is under a home
    /// folder) or `no` (the repository or the state is).
    pub protect_home: &'static str,
    /// The capability bounding set, space-separated; empty for none.
    pub capabilities: &'static str,
    /// Why the capabilities are there (a comment in the unit).
    pub capabilities_why: &'static str,
    /// Whether the capabilities are also ambient (a non-root user).
    pub ambient: bool,
}

/// The inputs of [`unit_hardening`].
pub struct UnitInputs<'a> {
    pub repo_dir: &'a Path,
    pub state_dir: &'a Path,
    /// Files the agent reads: binary, config, origin key.
    pub reads: Vec<&'a Path>,
    pub user: &'a str,
    /// A listen or BitTorrent port below 1024.
    pub low_port: bool,
}

/// The deepest folder that contains both paths (`/` at worst).
pub fn common_folder(a: &Path, b: &Path) -> PathBuf {
    a.components()
        .zip(b.components())
        .take_while(|(x, y)| x == y)
        .map(|(x, _)| x)
        .collect()
}

/// Computes the hardening settings of a unit (see [`UnitHardening`]).
pub fn unit_hardening(i: &UnitInputs) -> UnitHardening {
    let under = |p: &Path, prefixes: &[&str]| prefixes.iter().any(|x| p.starts_with(x));
    let common = common_folder(i.repo_dir, i.state_dir);
    let (protect_system, rw_paths) = if common != Path::new("/") {
        ("strict", vec![common])
    } else {
        // ProtectSystem=full makes these read-only; folders the agent
        // writes that live there need an exception of their own.
        let protected = ["/usr", "/boot", "/efi", "/etc"];
        let rw = [i.repo_dir, i.state_dir]
            .into_iter()
            .filter(|p| under(p, &protected))
            .map(Path::to_path_buf)
            .collect();
        ("full", rw)
    };
    let homes = ["/home", "/root", "/run/user"];
    let protect_home = if [i.repo_dir, i.state_dir].iter().any(|p| under(p, &homes)) {
        "no"
    } else if i.reads.iter().any(|p| under(p, &homes)) {
        "read-only"
    } else {
        "yes"
    };
    let (capabilities, capabilities_why, ambient) = if i.user == "root" {
        (
            "CAP_CHOWN CAP_DAC_OVERRIDE CAP_FOWNER CAP_NET_BIND_SERVICE",
            "Running as root: keep only what managing files owned by others and a low port need.",
            false,
        )
    } else if i.low_port {
        ("CAP_NET_BIND_SERVICE", "A listen port below 1024.", true)
    } else {
        ("", "", false)
    };
    UnitHardening {
        protect_system,
        rw_paths,
        protect_home,
        capabilities,
        capabilities_why,
        ambient,
    }
}

fn unit_context(site: &Site, h: &Host) -> Value {
    let binary = h.agent_binary();
    let config = site.config_file(h);
    let mut reads = vec![binary.as_path(), config.as_path()];
    if h.role == shoal_config::Role::Origin {
        reads.push(&h.origin_key_file);
    }
    let low_port = h.listen.port() < 1024 || h.peer_addr().is_some_and(|a| a.port() < 1024);
    let hard = unit_hardening(&UnitInputs {
        repo_dir: &h.repo_dir,
        state_dir: &h.state_dir,
        reads,
        user: &h.user,
        low_port,
    });
    json!({
        "site": site.name,
        "host": h.host,
        "role": h.role.to_string(),
        "repo_dir": h.repo_dir,
        "state_dir": h.state_dir,
        "agent_binary": binary,
        "config_file": config,
        "user": h.user,
        "group": h.group,
        "protect_system": hard.protect_system,
        "rw_paths": hard.rw_paths,
        "protect_home": hard.protect_home,
        "capabilities": hard.capabilities,
        "capabilities_why": hard.capabilities_why,
        "ambient": hard.ambient,
    })
}

/// Renders every host's agent config and parses it with the agent's own
/// types; an error here is a bug in the templates, reported per host.
pub fn verify_agent_configs(site: &Site) -> Result<(), String> {
    for h in &site.hosts {
        let text = render_agent_config(site, h);
        let name = format!("agent config of {}", h.host);
        shoal_config::AgentConfig::from_yaml(&text, &name).map_err(|e| {
            format!("{e} (this is a bug in shoal's agent template; please report it)")
        })?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Trees
// ---------------------------------------------------------------------------

/// One file of a rendered tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutFile {
    /// Relative path inside the output folder.
    pub path: PathBuf,
    pub contents: Vec<u8>,
}

fn site_file_name(site: &Site) -> String {
    Path::new(&site.file)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn named(vals: Vec<(String, Value)>, prefix: &str) -> Vec<Value> {
    vals.into_iter()
        .map(|(n, v)| json!({"name": format!("{prefix}{n}"), "value": v}))
        .collect()
}

/// The `shoal::gluster` parameters (Ansible: `shoal_gluster_<name>`) for
/// one host of the site's GlusterFS volume, in the class's order: the
/// volume, the bricks in the planned order, the volume type, this host's
/// name in the bricks when it carries some, and the mount point when it is
/// a mirror on the volume. Empty when the host has no part in the volume.
pub fn gluster_values(g: &Gluster, host: &str) -> Vec<(String, Value)> {
    let server = g.server(host).is_some();
    let mounts = g.mirrors.iter().any(|m| m == host);
    if !server && !mounts {
        return Vec::new();
    }
    let mut v = vec![
        ("volume".to_string(), json!(g.volume)),
        ("bricks".to_string(), json!(g.bricks())),
    ];
    for (name, n) in g.type_params() {
        v.push((name.to_string(), json!(n)));
    }
    if server {
        v.push(("peer_name".into(), json!(host)));
    }
    if mounts {
        v.push(("mount_point".into(), json!(g.mount)));
    }
    v
}

/// Puppet parameters, aligned the way puppet-lint wants them.
fn aligned(vals: Vec<(String, Value)>) -> Vec<Value> {
    let width = vals.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    vals.into_iter()
        .map(|(n, v)| json!({"name": n, "pad": " ".repeat(width - n.len()), "value": v}))
        .collect()
}

/// `base` with the keys of `extra` added (both JSON objects).
fn merged(base: &Value, extra: Value) -> Value {
    let mut v = base.clone();
    if let (Some(b), Value::Object(e)) = (v.as_object_mut(), extra) {
        b.extend(e);
    }
    v
}

/// The files of `shoal render puppet`, sorted by path.
pub fn render_puppet(site: &Site) -> anyhow::Result<Vec<OutFile>> {
    let t = engine();
    let base = json!({"site": site.name, "site_file": site_file_name(site)});
    let with = |extra: Value| merged(&base, extra);
    // Every parameter passed must exist in the embedded class, or the
    // catalog would fail on every node; say so now instead.
    let init = PUPPET_MODULE
        .get_file("manifests/init.pp")
        .and_then(|f| f.contents_utf8())
        .context("this shoal binary was built without the Puppet module (puppet/); rebuild it from a complete source tree")?;
    let declared = |name: &str| {
        init.match_indices(&format!("${name}")).any(|(i, m)| {
            !init[i + m.len()..].starts_with(|c: char| c.is_alphanumeric() || c == '_')
        })
    };
    for h in &site.hosts {
        for (name, _) in site.merged_values(h) {
            if !declared(&name) {
                let own = format!("{}.{name}", h.path);
                let key = site
                    .spans
                    .get(&own)
                    .or_else(|| site.spans.get(&format!("defaults.{name}")))
                    .unwrap_or_else(|| site.spans.nearest(&own));
                bail!(
                    "{}:{}: {name}: the Puppet class `shoal` in this build has no parameter `{name}`; \
                     remove it from the site file when deploying with Puppet, or use a newer shoal",
                    site.file,
                    key.0
                );
            }
        }
    }
    let gluster = site.gluster();
    let gluster_of = |host: &str| {
        gluster
            .as_ref()
            .map(|g| gluster_values(g, host))
            .unwrap_or_default()
    };
    if let Some(g) = &gluster {
        let class = PUPPET_MODULE
            .get_file("manifests/gluster.pp")
            .and_then(|f| f.contents_utf8())
            .context("this shoal binary was built without the class shoal::gluster (puppet/manifests/gluster.pp); rebuild it from a complete source tree")?;
        let involved = g.servers.iter().map(|s| &s.host).chain(&g.mirrors);
        for host in involved {
            for (name, _) in gluster_values(g, host) {
                if !class.contains(&format!("${name},")) {
                    bail!(
                        "{}: storage.gluster: the Puppet class `shoal::gluster` in this build has no parameter \
                         `{name}`; use a newer shoal",
                        site.file
                    );
                }
            }
        }
    }
    let mut nodes: Vec<Value> = site
        .hosts
        .iter()
        .map(|h| {
            json!({
                "host": h.host,
                "params": aligned(site.merged_values(h)),
                "gluster": aligned(gluster_of(&h.host)),
            })
        })
        .collect();
    // Gluster servers that run no agent get a node of their own.
    let extra_servers: Vec<GlusterServer> = gluster
        .as_ref()
        .map(|g| g.servers.iter().filter(|s| !s.site_host).cloned().collect())
        .unwrap_or_default();
    for s in &extra_servers {
        nodes.push(json!({"host": s.host, "params": [], "gluster": aligned(gluster_of(&s.host))}));
    }
    let mut files = vec![
        OutFile {
            path: "manifests/site.pp".into(),
            contents: render(
                &t,
                "puppet/site.pp.tera",
                with(json!({"nodes": nodes, "has_gluster": gluster.is_some()})),
            )?
            .into_bytes(),
        },
        OutFile {
            path: "hiera.yaml".into(),
            contents: render(&t, "puppet/hiera.yaml.tera", base.clone())?.into_bytes(),
        },
        OutFile {
            path: "data/common.yaml".into(),
            contents: render(
                &t,
                "puppet/hiera/common.yaml.tera",
                with(json!({"params": named(site.default_values(), "")})),
            )?
            .into_bytes(),
        },
    ];
    for h in &site.hosts {
        let mut params = named(site.host_values(h), "");
        params.extend(named(gluster_of(&h.host), "gluster::"));
        files.push(OutFile {
            path: PathBuf::from("data/nodes").join(format!("{}.yaml", h.host)),
            contents: render(
                &t,
                "puppet/hiera/node.yaml.tera",
                with(json!({"host": h.host, "role": h.role.to_string(), "params": params})),
            )?
            .into_bytes(),
        });
    }
    for s in &extra_servers {
        files.push(OutFile {
            path: PathBuf::from("data/nodes").join(format!("{}.yaml", s.host)),
            contents: render(
                &t,
                "puppet/hiera/node.yaml.tera",
                with(json!({"host": s.host, "role": "gluster server", "params": named(gluster_of(&s.host), "gluster::")})),
            )?
            .into_bytes(),
        });
    }
    files.extend(embedded_tree(
        &PUPPET_MODULE,
        Path::new("modules/shoal"),
        "the Puppet module (puppet/)",
    )?);
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// The files of `shoal render ansible`, sorted by path.
pub fn render_ansible(site: &Site) -> anyhow::Result<Vec<OutFile>> {
    let t = engine();
    let base = json!({"site": site.name, "site_file": site_file_name(site)});
    let with = |extra: Value| merged(&base, extra);
    let gluster = site.gluster();
    let gluster_of = |host: &str| {
        gluster
            .as_ref()
            .map(|g| named(gluster_values(g, host), "shoal_gluster_"))
            .unwrap_or_default()
    };
    let host_entry = |h: &Host| {
        let mut vars = Vec::new();
        if h.address != h.host {
            vars.push(json!({"name": "ansible_host", "value": h.address}));
        }
        vars.extend(named(site.host_values(h), "shoal_"));
        vars.extend(gluster_of(&h.host));
        json!({"host": h.host, "vars": vars})
    };
    let origin = vec![host_entry(site.origin())];
    let mirrors: Vec<Value> = site.mirrors().iter().map(host_entry).collect();
    // Every gluster server is in the group shoal_gluster; the variables of
    // those that run no agent are there too (the others have theirs above).
    let gluster_hosts: Vec<Value> = gluster
        .as_ref()
        .map(|g| {
            g.servers
                .iter()
                .map(|s| {
                    let mut vars = Vec::new();
                    if !s.site_host {
                        if s.address != s.host {
                            vars.push(json!({"name": "ansible_host", "value": s.address}));
                        }
                        vars.extend(gluster_of(&s.host));
                    }
                    json!({"host": s.host, "vars": vars})
                })
                .collect()
        })
        .unwrap_or_default();
    let mut files = vec![
        OutFile {
            path: "inventory.yml".into(),
            contents: render(
                &t,
                "ansible/inventory.yml.tera",
                with(json!({"origin": origin, "mirrors": mirrors, "gluster": gluster_hosts})),
            )?
            .into_bytes(),
        },
        OutFile {
            path: "group_vars/shoal.yml".into(),
            contents: render(
                &t,
                "ansible/group_vars.yml.tera",
                with(json!({"vars": named(site.default_values(), "shoal_")})),
            )?
            .into_bytes(),
        },
        OutFile {
            path: "site.yml".into(),
            contents: render(
                &t,
                "ansible/site.yml.tera",
                with(json!({"gluster": gluster.is_some()})),
            )?
            .into_bytes(),
        },
    ];
    files.extend(embedded_tree(
        &ANSIBLE_ROLE,
        Path::new("roles/shoal"),
        "the Ansible role (ansible/roles/shoal)",
    )?);
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// A host's values of a multi-repository site: its shared settings (from
/// its first agent; `shoal check` made sure its agents agree on them) and
/// `repositories`, each repository's own settings by name.
fn repositories_values(g: &crate::site::HostAgents) -> (Vec<(String, Value)>, Value) {
    let (site, first) = g.agents[0];
    let shared = site
        .merged_values(first)
        .into_iter()
        .filter(|(n, _)| !PER_REPOSITORY.contains(&n.as_str()))
        .collect();
    let mut repos = serde_json::Map::new();
    for (site, h) in &g.agents {
        let own: serde_json::Map<String, Value> = site
            .merged_values(h)
            .into_iter()
            .filter(|(n, _)| PER_REPOSITORY.contains(&n.as_str()))
            .collect();
        let name = site.repository.clone().unwrap_or_default();
        repos.insert(name, Value::Object(own));
    }
    (shared, Value::Object(repos))
}

/// The files of `shoal render puppet` for a site with `repositories:`: each
/// node declares the class `shoal` with its shared settings and
/// `repositories` (one `shoal::repository` each), in site.pp and as Hiera
/// node data.
pub fn render_puppet_repositories(sites: &Sites) -> anyhow::Result<Vec<OutFile>> {
    let t = engine();
    let file_name = Path::new(&sites.file)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let base = json!({"site": sites.name, "site_file": file_name});
    let with = |extra: Value| merged(&base, extra);
    let hosts = sites.hosts();
    let mut nodes = Vec::new();
    let mut files = Vec::new();
    for g in &hosts {
        let (mut params, repos) = repositories_values(g);
        params.push(("repositories".into(), repos));
        nodes.push(json!({"host": g.first.host, "params": aligned(params.clone()), "gluster": []}));
        let roles: Vec<String> = g
            .agents
            .iter()
            .map(|(s, h)| format!("{} of {}", h.role, s.repository.as_deref().unwrap_or("")))
            .collect();
        files.push(OutFile {
            path: PathBuf::from("data/nodes").join(format!("{}.yaml", g.first.host)),
            contents: render(
                &t,
                "puppet/hiera/node.yaml.tera",
                with(json!({"host": g.first.host, "role": roles.join(", "), "params": named(params, "")})),
            )?
            .into_bytes(),
        });
    }
    files.push(OutFile {
        path: "manifests/site.pp".into(),
        contents: render(
            &t,
            "puppet/site.pp.tera",
            with(json!({"nodes": nodes, "has_gluster": false})),
        )?
        .into_bytes(),
    });
    files.push(OutFile {
        path: "hiera.yaml".into(),
        contents: render(&t, "puppet/hiera.yaml.tera", base.clone())?.into_bytes(),
    });
    files.push(OutFile {
        path: "data/common.yaml".into(),
        contents: render(
            &t,
            "puppet/hiera/common.yaml.tera",
            with(json!({"params": []})),
        )?
        .into_bytes(),
    });
    files.extend(embedded_tree(
        &PUPPET_MODULE,
        Path::new("modules/shoal"),
        "the Puppet module (puppet/)",
    )?);
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// The files of `shoal render ansible` for a site with `repositories:`:
/// each host's shared settings and `shoal_repositories` as host variables;
/// hosts that are the origin of any repository in `shoal_origin` (played
/// first), the others in `shoal_mirrors`.
pub fn render_ansible_repositories(sites: &Sites) -> anyhow::Result<Vec<OutFile>> {
    let t = engine();
    let file_name = Path::new(&sites.file)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let base = json!({"site": sites.name, "site_file": file_name});
    let with = |extra: Value| merged(&base, extra);
    let (mut origin, mut mirrors) = (Vec::new(), Vec::new());
    for g in sites.hosts() {
        let (shared, repos) = repositories_values(&g);
        let mut vars = Vec::new();
        if g.first.address != g.first.host {
            vars.push(json!({"name": "ansible_host", "value": g.first.address}));
        }
        vars.extend(named(shared, "shoal_"));
        let list: Vec<Value> = repos
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(name, v)| {
                        let mut item = serde_json::Map::new();
                        item.insert("name".into(), json!(name));
                        if let Value::Object(o) = v {
                            item.extend(o.clone());
                        }
                        Value::Object(item)
                    })
                    .collect()
            })
            .unwrap_or_default();
        vars.push(json!({"name": "shoal_repositories", "value": list}));
        let entry = json!({"host": g.first.host, "vars": vars});
        if g.agents
            .iter()
            .any(|(_, h)| h.role == shoal_config::Role::Origin)
        {
            origin.push(entry);
        } else {
            mirrors.push(entry);
        }
    }
    let mut files = vec![
        OutFile {
            path: "inventory.yml".into(),
            contents: render(
                &t,
                "ansible/inventory.yml.tera",
                with(json!({"origin": origin, "mirrors": mirrors, "gluster": []})),
            )?
            .into_bytes(),
        },
        OutFile {
            path: "group_vars/shoal.yml".into(),
            contents: render(&t, "ansible/group_vars.yml.tera", with(json!({"vars": []})))?
                .into_bytes(),
        },
        OutFile {
            path: "site.yml".into(),
            contents: render(&t, "ansible/site.yml.tera", with(json!({"gluster": false})))?
                .into_bytes(),
        },
    ];
    files.extend(embedded_tree(
        &ANSIBLE_ROLE,
        Path::new("roles/shoal"),
        "the Ansible role (ansible/roles/shoal)",
    )?);
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// The files of an embedded folder under `dest`.
fn embedded_tree(dir: &Dir<'static>, dest: &Path, what: &str) -> anyhow::Result<Vec<OutFile>> {
    let mut out = Vec::new();
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        for e in d.entries() {
            match e {
                DirEntry::Dir(sub) => stack.push(sub),
                DirEntry::File(f) => out.push(OutFile {
                    path: dest.join(f.path()),
                    contents: f.contents().to_vec(),
                }),
            }
        }
    }
    if out.is_empty() {
        bail!("this shoal binary was built without {what}; rebuild it from a complete source tree");
    }
    Ok(out)
}

/// What [`write_tree`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WriteReport {
    /// Files created or rewritten (relative paths).
    pub written: Vec<PathBuf>,
    /// Files already up to date.
    pub unchanged: usize,
    /// Files of an earlier render that are no longer produced, removed.
    pub removed: Vec<PathBuf>,
}

fn safe_relative(p: &Path) -> bool {
    !p.as_os_str().is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)))
}

/// Writes `files` under `out`: only files whose content differs are
/// rewritten (atomically, via a temporary name and rename), files listed by
/// an earlier render but not produced now are removed, and a file shoal did
/// not write is never overwritten unless `force`.
pub fn write_tree(out: &Path, files: &[OutFile], force: bool) -> anyhow::Result<WriteReport> {
    let list_path = out.join(RENDER_LIST);
    let previous: BTreeSet<PathBuf> = match std::fs::read_to_string(&list_path) {
        Ok(s) => s
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(PathBuf::from)
            .filter(|p| safe_relative(p))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeSet::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", list_path.display())),
    };
    let mut seen = BTreeMap::new();
    for f in files {
        assert!(
            safe_relative(&f.path),
            "rendered path {} is relative",
            f.path.display()
        );
        if seen.insert(f.path.clone(), ()).is_some() {
            bail!("two rendered files have the same path {}", f.path.display());
        }
    }
    // Refuse to clobber files we did not write, before changing anything.
    if !force {
        let foreign: Vec<String> = files
            .iter()
            .filter(|f| !previous.contains(&f.path))
            .filter_map(|f| {
                let p = out.join(&f.path);
                match std::fs::read(&p) {
                    Ok(cur) if cur != f.contents => Some(p.display().to_string()),
                    _ => None,
                }
            })
            .collect();
        if !foreign.is_empty() {
            bail!(
                "{} exist(s) in {} and were not written by shoal: {}; move them away, choose another --out, \
                 or pass --force to overwrite them",
                if foreign.len() == 1 { "a file" } else { "files" },
                out.display(),
                foreign.join(", ")
            );
        }
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut report = WriteReport::default();
    for f in files {
        let p = out.join(&f.path);
        if std::fs::read(&p).ok().as_deref() == Some(&f.contents[..]) {
            report.unchanged += 1;
            continue;
        }
        let dir = p.parent().expect("has a parent");
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let tmp = dir.join(format!(
            ".{}.shoal-tmp",
            p.file_name().expect("has a name").to_string_lossy()
        ));
        std::fs::write(&tmp, &f.contents).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &p)
            .with_context(|| format!("renaming {} to {}", tmp.display(), p.display()))?;
        report.written.push(f.path.clone());
    }
    let now: BTreeSet<PathBuf> = files.iter().map(|f| f.path.clone()).collect();
    for old in previous.difference(&now) {
        let p = out.join(old);
        match std::fs::remove_file(&p) {
            Ok(()) => report.removed.push(old.clone()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", p.display())),
        }
        // Remove folders the removal emptied, up to the output folder.
        let mut d = p.parent();
        while let Some(dir) = d {
            if dir == out || std::fs::remove_dir(dir).is_err() {
                break;
            }
            d = dir.parent();
        }
    }
    let mut list =
        String::from("# Files written by `shoal render`; used to tidy up on the next render.\n");
    for p in &now {
        list.push_str(&p.to_string_lossy());
        list.push('\n');
    }
    if std::fs::read_to_string(&list_path).ok().as_deref() != Some(list.as_str()) {
        std::fs::write(&list_path, list)
            .with_context(|| format!("writing {}", list_path.display()))?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(yaml_quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(yaml_quote("x\ny"), r#""x\ny""#);
        assert_eq!(puppet_quote(r"it's a\b"), r"'it\'s a\\b'");
        assert_eq!(systemd_arg("/usr/bin/x"), "/usr/bin/x");
        assert_eq!(systemd_arg("/opt/my dir/x"), "\"/opt/my dir/x\"");
        assert_eq!(systemd_arg("/a%b"), "/a%%b");
        assert_eq!(
            yaml_value(&json!("100%{x}"), Yaml::Hiera),
            "\"100%{literal('%')}{x}\""
        );
        assert_eq!(
            yaml_value(&json!("{{ x }}"), Yaml::Ansible),
            "!unsafe \"{{ x }}\""
        );
        assert_eq!(yaml_value(&json!("plain"), Yaml::Ansible), "\"plain\"");
    }

    #[test]
    fn every_template_parses() {
        let t = engine();
        for n in TEMPLATE_NAMES {
            assert!(t.get_template_names().any(|x| x == *n), "{n}");
        }
    }

    #[test]
    fn packaged_unit() {
        let u = render_packaged_unit(
            Path::new("/usr/bin/shoal-agent"),
            Path::new("/etc/shoal/agent.yaml"),
        );
        assert!(
            u.starts_with("# shoal-agent, as installed by the Debian package"),
            "{u}"
        );
        assert!(
            u.contains("\nExecStart=/usr/bin/shoal-agent --config /etc/shoal/agent.yaml run\n"),
            "{u}"
        );
        assert!(
            u.contains("\nConditionPathExists=/etc/shoal/agent.yaml\n"),
            "{u}"
        );
        assert!(u.contains(" remote-fs.target\n\n[Service]\n"), "{u}");
        assert!(
            !u.contains("ExecReload") && !u.contains("\nRequiresMountsFor="),
            "{u}"
        );
        assert!(
            u.contains("\nUser=root\n") && u.ends_with("WantedBy=multi-user.target\n"),
            "{u}"
        );
    }
}
