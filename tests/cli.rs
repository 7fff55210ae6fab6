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
        "--shard-selector",
    ] {
        assert!(
            help.contains(option),
            "run --help documents {option}:\n{help}"
        );
    }
}

#[test]
fn run_help_names_the_environment_it_reads() {
    let help = stdout(&ago(&["run", "--help"]));
    for variable in [
        "AZURE_FEDERATED_TOKEN_FILE",
        "AZURE_CLIENT_ID",
        "AZURE_TENANT_ID",
        "AZURE_CLIENT_SECRET",
        "AZURE_USE_MANAGED_IDENTITY",
        "AZURE_SUBSCRIPTION_ID",
        "RUST_LOG",
        "POD_NAMESPACE",
    ] {
        assert!(
            help.contains(variable),
            "run --help names {variable}:\n{help}"
        );
    }
}

#[test]
fn bench_needs_objects_or_plot_and_says_so() {
    let help = stdout(&ago(&["bench", "--help"]));
    assert!(
        help.contains("Usage: azure-gallery-operator bench [OPTIONS] <--objects <N>|--plot <DIR>>"),
        "{help}"
    );
    let out = ago(&["bench"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--objects <N>"));
    assert_eq!(
        ago(&["bench", "--objects", "1", "--plot", "d"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn sandbox_keep_is_only_for_the_demo() {
    let out = ago(&["sandbox", "--keep"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--demo"), "{stderr}");
}

/// `sim arm --help` lists every fact `sim arm` announces.
#[test]
fn sim_help_says_what_the_simulators_print() {
    use std::io::{BufRead as _, BufReader};
    let help = stdout(&ago(&["sim", "arm", "--help"]));
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_azure-gallery-operator"))
        .args(["sim", "arm", "--ca-out"])
        .arg(dir.path().join("ca.pem"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let keys: Vec<String> = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map(Result::unwrap)
        .take_while(|l| l != "READY")
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.to_string()))
        .collect();
    let _ = child.kill();
    let _ = child.wait();
    assert!(keys.len() > 10, "{keys:?}");
    for key in keys {
        assert!(help.contains(&key), "sim arm --help names {key}:\n{help}");
    }
    assert!(help.contains("READY"), "{help}");
    let kube = stdout(&ago(&["sim", "kube", "--help"]));
    assert!(
        kube.contains("KUBECONFIG=") && kube.contains("READY"),
        "{kube}"
    );
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

/// A kubeconfig that parses but names no reachable server: `run` gets past reading it.
fn unreachable_kubeconfig(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n",
    )
    .unwrap();
    path
}

#[test]
fn run_without_any_identity_stops_at_start_saying_why_each_source_does_not_apply() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = unreachable_kubeconfig(dir.path());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_azure-gallery-operator"));
    cmd.arg("run")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["--metrics-addr", "127.0.0.1:0"])
        // No `az` anywhere on PATH, and no Azure variable but a client ID.
        .env("PATH", dir.path())
        .env("AZURE_CLIENT_ID", "7d1e2f3a-4b5c-4d6e-8f70-112233445566");
    for (key, _) in std::env::vars() {
        if key.starts_with("AZURE_") && key != "AZURE_CLIENT_ID" {
            cmd.env_remove(key);
        }
    }
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for why in [
        "workload identity: AZURE_FEDERATED_TOKEN_FILE, AZURE_TENANT_ID not set",
        "client secret: AZURE_CLIENT_SECRET, AZURE_TENANT_ID not set",
        "managed identity: AZURE_USE_MANAGED_IDENTITY not set",
        "Azure CLI: `az` is not on PATH",
    ] {
        assert!(stderr.contains(why), "says {why:?}:\n{stderr}");
    }
    // One log line per source tried, then the error.
    assert_eq!(stderr.matches("Azure identity: ").count(), 4, "{stderr}");
    assert!(
        stderr.contains("no Azure identity for the operator"),
        "{stderr}"
    );
}
