//! `sandbox --demo`: simulators and operator in one process take the quickstart to Ready and
//! delete it in reverse dependency order, with nothing left in simulated Azure.

use std::process::Command;

#[test]
fn the_demo_reaches_ready_and_deletes_in_reverse_dependency_order() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_azure-gallery-operator"))
        .args(["sandbox", "--demo", "--speed", "20", "--dir"])
        .arg(dir.path())
        .output()
        .expect("running the sandbox");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "sandbox --demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "export KUBECONFIG=",
        "All 4 objects Ready",
        "Deleted in this order: VirtualMachine → ImageVersion → ImageDefinition → Gallery",
        "Simulated Azure holds nothing of the quickstart any more.",
    ] {
        assert!(
            stdout.contains(line),
            "the demo printed {line:?}:\n{stdout}"
        );
    }
    // Not a terminal: one plain line per change, including replication per region.
    assert!(stdout.contains("replication westeurope"), "{stdout}");
    assert!(
        dir.path().join("kubeconfig").exists() && dir.path().join("operator.log").exists(),
        "the kubeconfig and the operator log are in --dir"
    );
}
