//! Runs the built `shoal` binary: `shoal gluster layout` in every output
//! format, and its error paths (planner errors and flag errors).

use std::process::{Command, Output};

fn shoal(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(args)
        .output()
        .expect("run shoal")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("utf-8 stdout")
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).expect("utf-8 stderr")
}

/// The example, given in shuffled order.
const CHAINED: &[&str] = &[
    "gluster",
    "layout",
    "--replica",
    "2",
    "--layout",
    "chained",
    "annex3:/data/b",
    "annex1:/data/a",
    "annex2:/data/b",
    "annex1:/data/b",
    "annex3:/data/a",
    "annex2:/data/a",
];

#[test]
fn lines_are_bricks_in_create_order_and_nothing_else() {
    let o = shoal(CHAINED);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "annex1:/data/a\nannex2:/data/a\n\
         annex2:/data/b\nannex3:/data/a\n\
         annex3:/data/b\nannex1:/data/b\n"
    );
    // Replica 2 is valid but risky: the warning goes to stderr only.
    assert!(stderr(&o).contains("warning: replica 2 volumes are prone to split-brain"));

    let o = shoal(&[
        "gluster",
        "layout",
        "--replica",
        "3",
        "--format",
        "lines",
        "annex10:/b",
        "annex2:/b",
        "annex1:/b",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "annex1:/b\nannex2:/b\nannex10:/b\n");
    assert_eq!(stderr(&o), "");
}

#[test]
fn command_format() {
    let o = shoal(&[
        "gluster",
        "layout",
        "--replica",
        "3",
        "--arbiter",
        "1",
        "--format",
        "command",
        "--volume",
        "mirror",
        "s3:/arb",
        "s1:/d",
        "s2:/d",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "gluster volume create mirror replica 3 arbiter 1 transport tcp s1:/d s2:/d s3:/arb\n"
    );

    let o = shoal(&[
        "gluster",
        "layout",
        "--disperse",
        "3",
        "--redundancy",
        "1",
        "--format",
        "command",
        "--volume",
        "ec",
        "[fd00::3]:/b",
        "[fd00::1]:/b",
        "[fd00::2]:/b",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "gluster volume create ec disperse 3 redundancy 1 transport tcp fd00::1:/b fd00::2:/b fd00::3:/b\n"
    );
}

#[test]
fn json_format() {
    let mut args = CHAINED.to_vec();
    args.extend(["--format", "json", "--volume", "mirror"]);
    let o = shoal(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("valid JSON");
    assert_eq!(
        v,
        serde_json::json!({
            "volume": "mirror",
            "command": "gluster volume create mirror replica 2 transport tcp \
                        annex1:/data/a annex2:/data/a annex2:/data/b annex3:/data/a annex3:/data/b annex1:/data/b",
            "volume_type": {"type": "replica", "replica": 2, "arbiter": false},
            "layout": "chained",
            "set_size": 2,
            "sets": [
                {"bricks": ["annex1:/data/a", "annex2:/data/a"]},
                {"bricks": ["annex2:/data/b", "annex3:/data/a"]},
                {"bricks": ["annex3:/data/b", "annex1:/data/b"]}
            ],
            "bricks": [
                "annex1:/data/a", "annex2:/data/a", "annex2:/data/b",
                "annex3:/data/a", "annex3:/data/b", "annex1:/data/b"
            ]
        })
    );
    // Without --volume there is no command.
    let mut args = CHAINED.to_vec();
    args.extend(["--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&shoal(&args))).unwrap();
    assert_eq!(v["volume"], serde_json::Value::Null);
    assert_eq!(v["command"], serde_json::Value::Null);
}

/// Asserts failure, an empty stdout and `want` in stderr.
fn fails_with(args: &[&str], want: &str) {
    let o = shoal(args);
    assert!(!o.status.success(), "{args:?} succeeded: {}", stdout(&o));
    assert_eq!(stdout(&o), "", "{args:?}: nothing on stdout on error");
    let err = stderr(&o);
    assert!(
        err.contains(want),
        "{args:?}: stderr {err:?} lacks {want:?}"
    );
}

#[test]
fn errors_explain_and_exit_non_zero() {
    fails_with(
        &["gluster", "layout", "--replica", "3", "a:/x", "b:/x", "a:/y", "b:/y"],
        "replica 3 puts each set's 3 bricks on 3 different hosts, but the bricks are on only 2 host(s): \
         add bricks on more hosts or lower the count",
    );
    fails_with(
        &[
            "gluster",
            "layout",
            "--replica",
            "2",
            "a:/x",
            "b:/x",
            "c:/x",
        ],
        "3 bricks do not divide into sets of 2 (replica 2): add 1 brick(s) or remove 1",
    );
    fails_with(
        &["gluster", "layout", "--replica", "2", "::1:/p", "a:/p"],
        "`::1:/p` looks like an IPv6 address without brackets; write it as `[::1]:/p`",
    );
    fails_with(
        &["gluster", "layout", "--replica", "2", "a:/x", "b:x"],
        "`b:x`: the brick path `x` is relative",
    );
    fails_with(
        &[
            "gluster",
            "layout",
            "--replica",
            "2",
            "h1:/a",
            "h1:/b",
            "h1:/c",
            "h2:/a",
            "h3:/a",
            "h4:/a",
        ],
        "use the chained layout",
    );
    fails_with(
        &[
            "gluster",
            "layout",
            "--replica",
            "2",
            "--arbiter",
            "2",
            "a:/x",
            "b:/x",
            "c:/x",
        ],
        "--arbiter 2 is not supported: gluster knows only `arbiter 1`",
    );
    fails_with(
        &[
            "gluster",
            "layout",
            "--disperse",
            "4",
            "--redundancy",
            "2",
            "a:/x",
            "b:/x",
            "c:/x",
            "d:/x",
        ],
        "redundancy 2 is too large for disperse 4",
    );
    fails_with(
        &[
            "gluster",
            "layout",
            "--replica",
            "2",
            "--format",
            "command",
            "--volume",
            "all",
            "a:/x",
            "b:/x",
        ],
        "`all` is not a valid gluster volume name: gluster reserves `all`",
    );
}

#[test]
fn flag_errors_come_from_clap() {
    fails_with(
        &[
            "gluster",
            "layout",
            "--replica",
            "2",
            "--disperse",
            "3",
            "a:/x",
        ],
        "the argument '--replica <R>' cannot be used with '--disperse <N>'",
    );
    fails_with(
        &[
            "gluster",
            "layout",
            "--replica",
            "3",
            "--format",
            "command",
            "a:/x",
        ],
        "--volume <NAME>",
    );
    fails_with(&["gluster", "layout", "a:/x"], "--replica <R>");
    fails_with(
        &[
            "gluster",
            "layout",
            "--disperse",
            "3",
            "a:/x",
            "b:/x",
            "c:/x",
        ],
        "--redundancy <K>",
    );
    fails_with(&["gluster", "layout", "--replica", "2"], "<HOST:PATH>");
}

#[test]
fn help_explains_every_option() {
    let o = shoal(&["gluster", "layout", "--help"]);
    assert!(o.status.success());
    let help = stdout(&o);
    for flag in [
        "--replica <R>",
        "--arbiter <1>",
        "--disperse <N>",
        "--redundancy <K>",
        "--layout <LAYOUT>",
        "--format <FORMAT>",
        "--volume <NAME>",
        "<HOST:PATH>",
    ] {
        assert!(help.contains(flag), "help lacks {flag}:\n{help}");
    }
    assert!(help.contains("split-brain"));
    assert!(help.contains("natural order"));
}
