//! `shoal gluster layout`: plans the brick order of a GlusterFS volume for
//! mirror storage and prints it as a brick list, a `gluster volume create`
//! command, or JSON. The planning itself lives in the `shoal-gluster` crate.

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use shoal_gluster::{parse_bricks, plan, Layout, Plan, VolumeType};
use std::io::Write;

/// Arguments of `shoal gluster layout`.
#[derive(Debug, Clone, Args)]
pub struct LayoutArgs {
    /// Copies of every file: each replica set holds R bricks on R different
    /// hosts. Use 3, or 2 with --arbiter 1; plain replica 2 is prone to
    /// split-brain.
    #[arg(
        long,
        value_name = "R",
        required_unless_present = "disperse",
        conflicts_with_all = ["disperse", "redundancy"]
    )]
    pub replica: Option<u32>,

    /// Make the last brick of each replica set an arbiter that stores only
    /// metadata. The only valid value is 1, with --replica 3 or --replica 2
    /// (gluster's newer spelling of the same thing); either way each set has
    /// three bricks: two data bricks and the arbiter.
    #[arg(long, value_name = "1", requires = "replica")]
    pub arbiter: Option<u32>,

    /// Erasure-code files over sets of N bricks on N different hosts instead
    /// of replicating them (N >= 3). Needs --redundancy.
    #[arg(long, value_name = "N", requires = "redundancy")]
    pub disperse: Option<u32>,

    /// With --disperse: how many bricks of each set may fail without losing
    /// data (K >= 1 and 2K < N).
    #[arg(long, value_name = "K", requires = "disperse")]
    pub redundancy: Option<u32>,

    /// How bricks are grouped into sets: `simple` takes every host's first
    /// brick, then every host's second brick, and so on (gluster's documented
    /// order; refused when uneven brick counts would put two bricks of a host
    /// in one set). `chained` lets set k use hosts k, k+1, ... in rotation,
    /// so each host's replicas spread over different neighbours; it also
    /// balances hosts with different numbers of bricks and uses every brick.
    #[arg(long, value_enum, default_value_t = LayoutChoice::Simple)]
    pub layout: LayoutChoice,

    /// What to print: `lines` prints the bricks in `gluster volume create`
    /// order, one HOST:PATH per line and nothing else; `command` prints the
    /// whole `gluster volume create` command (needs --volume; IPv6 hosts
    /// appear there without brackets, the only form the gluster CLI
    /// accepts); `json` prints the plan with its sets, the flat brick list,
    /// and the command when --volume is given.
    #[arg(long, value_enum, default_value_t = Format::Lines)]
    pub format: Format,

    /// Volume name for `--format command` and `--format json`: letters,
    /// digits, `-` and `_`.
    #[arg(long, value_name = "NAME", required_if_eq("format", "command"))]
    pub volume: Option<String>,

    /// The bricks: HOST:PATH with an absolute PATH, for example
    /// annex1:/data/brick1. Write IPv6 hosts in brackets: [fd00::1]:/data/b1.
    #[arg(value_name = "HOST:PATH", required = true, num_args = 1..)]
    pub bricks: Vec<String>,
}

/// `--layout` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LayoutChoice {
    /// Round-robin over hosts: all first bricks, then all second bricks.
    Simple,
    /// Set k uses hosts k, k+1, ...: replicas spread over neighbours.
    Chained,
}

/// `--format` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One HOST:PATH per line, in `gluster volume create` order.
    Lines,
    /// The `gluster volume create` command line.
    Command,
    /// The plan as JSON, with its sets.
    Json,
}

/// The `shoal gluster` subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum GlusterCmd {
    /// Plan the brick order of a GlusterFS volume so that no replica or
    /// disperse set has two bricks on the same host.
    ///
    /// `gluster volume create` cuts its brick list into consecutive sets of
    /// `replica` (or `disperse`) bricks. This command computes that list from
    /// the bricks you have, in a stable order (hosts and paths in natural
    /// order, so `annex2` comes before `annex10`; the order you give them in
    /// does not matter), and refuses with an explanation when no safe order
    /// exists.
    ///
    /// Example: `shoal gluster layout --replica 2 --layout chained
    /// annex1:/data/a annex1:/data/b annex2:/data/a annex2:/data/b
    /// annex3:/data/a annex3:/data/b`
    Layout(LayoutArgs),
}

/// Runs a `shoal gluster` subcommand.
pub fn run_cmd(cmd: &GlusterCmd) -> Result<()> {
    match cmd {
        GlusterCmd::Layout(args) => run(args),
    }
}

/// Builds the volume type from the flags, with messages in terms of flags.
fn volume_type(args: &LayoutArgs) -> Result<VolumeType> {
    match (args.replica, args.disperse, args.redundancy) {
        (Some(replica), None, None) => {
            let arbiter = match args.arbiter {
                None => false,
                Some(1) => true,
                Some(n) => bail!(
                    "--arbiter {n} is not supported: gluster knows only `arbiter 1` (one arbiter brick per replica set)"
                ),
            };
            Ok(VolumeType::Replica { replica, arbiter })
        }
        (None, Some(disperse), Some(redundancy)) => Ok(VolumeType::Disperse {
            disperse,
            redundancy,
        }),
        // clap's `requires`/`conflicts_with` rule the other cases out.
        _ => bail!("give either --replica R or --disperse N --redundancy K"),
    }
}

/// Plans the layout and prints it in the chosen format.
pub fn run(args: &LayoutArgs) -> Result<()> {
    let vt = volume_type(args)?;
    let layout = match args.layout {
        LayoutChoice::Simple => Layout::Simple,
        LayoutChoice::Chained => Layout::Chained,
    };
    let bricks = parse_bricks(&args.bricks)?;
    let plan = plan(vt, layout, &bricks)?;
    let command = args
        .volume
        .as_deref()
        .map(|v| plan.create_command(v))
        .transpose()?;
    for w in plan.warnings() {
        eprintln!("warning: {w}");
    }
    let text = match args.format {
        Format::Lines => plan
            .bricks()
            .iter()
            .map(|b| format!("{b}\n"))
            .collect::<String>(),
        Format::Command => format!("{}\n", command.expect("clap requires --volume")),
        Format::Json => {
            let mut s =
                serde_json::to_string_pretty(&json(&plan, args.volume.as_deref(), command))?;
            s.push('\n');
            s
        }
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// The JSON document: the plan's fields, the flat brick list, and the volume
/// name and command when a volume name was given.
fn json(plan: &Plan, volume: Option<&str>, command: Option<String>) -> serde_json::Value {
    let mut v = serde_json::to_value(plan).expect("a plan serialises");
    let obj = v.as_object_mut().expect("a plan is a JSON object");
    obj.insert(
        "bricks".into(),
        plan.bricks().iter().map(|b| b.to_string()).collect(),
    );
    obj.insert("volume".into(), volume.into());
    obj.insert("command".into(), command.into());
    v
}
