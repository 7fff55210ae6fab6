//! The command line contract of design.md §3: every subcommand exists and is documented, and a
//! subcommand whose issue has not landed fails loudly instead of pretending to work.

use std::process::{Command, Output};

fn ago(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_azure-gallery-operator"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn help_lists_every_subcommand() {
    let out = ago(&["--help"]);
    assert!(out.status.success());
    for cmd in ["run", "crds", "sandbox", "sim", "bench"] {
        assert!(
            stdout(&out)
                .lines()
                .any(|l| l.trim_start().starts_with(cmd)),
            "--help lists {cmd}:\n{}",
            stdout(&out)
        );
    }
    let sim = stdout(&ago(&["sim", "--help"]));
    assert!(sim.contains("arm") && sim.contains("kube"), "{sim}");
}

#[test]
fn run_documents_its_options() {
    let help = stdout(&ago(&["run", "--help"]));
    for option in [
        "--kubeconfig",
        "--arm-endpoint",
        "--authority-host",
        "--ca-bundle",
        "--namespace",
        "--metrics-addr",
        "--concurrency",
        "--resync",
        "--leader-elect",
    ] {
        assert!(
            help.contains(option),
            "run --help documents {option}:\n{help}"
        );
    }
}

#[test]
fn a_bad_option_is_a_usage_error() {
    let out = ago(&["crds", "--bogus"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--bogus"));
}

#[test]
fn run_without_a_cluster_fails_naming_the_kubeconfig() {
    let out = ago(&[
        "run",
        "--kubeconfig",
        "/nonexistent/kubeconfig",
        "--metrics-addr",
        "127.0.0.1:0",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/kubeconfig"), "{stderr}");
}

#[test]
fn plain_logs_into_a_pipe_carry_no_colour_codes() {
    let out = ago(&[
        "run",
        "--kubeconfig",
        "/nonexistent/kubeconfig",
        "--metrics-addr",
        "127.0.0.1:0",
        "--log-format",
        "plain",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ERROR"), "the failure is logged: {stderr}");
    assert!(
        !stderr.contains("\x1b["),
        "colour codes in a pipe: {stderr:?}"
    );
}
