//! `sandbox`: simulators and operator in one process. `--demo` takes the quickstart to Ready
//! and deletes it in reverse dependency order, with nothing left in simulated Azure; without
//! `--demo`, the commands examples/ tells its reader to run work as written.

use std::{
    io::{BufRead as _, BufReader},
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

fn sandbox() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_azure-gallery-operator"));
    cmd.arg("sandbox");
    // SAFETY: prctl is async-signal-safe; the sandbox dies with the test process.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    cmd
}

#[test]
fn the_demo_reaches_ready_and_deletes_in_reverse_dependency_order() {
    let dir = tempfile::tempdir().unwrap();
    let out = sandbox()
        .args(["--demo", "--speed", "20", "--dir"])
        .arg(dir.path())
        .output()
        .expect("running the sandbox");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "sandbox --demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = dir.path().join("operator.log");
    for line in [
        format!("source {}", dir.path().join("sandbox.env").display()),
        "All 4 objects Ready after".into(),
        "Deleted in this order: VirtualMachine → ImageVersion → ImageDefinition → Gallery".into(),
        "Simulated Azure holds nothing of the quickstart any more.".into(),
        // The summary ends the output, the log it names is kept (--dir).
        format!("Operator log: {}\n", log.display()),
    ] {
        assert!(
            stdout.contains(&line),
            "the demo printed {line:?}:\n{stdout}"
        );
    }
    assert!(
        stdout.trim_end().ends_with(&log.display().to_string()),
        "the summary is the last thing on screen:\n{stdout}"
    );
    // Not a terminal: one plain line per change, including replication per region, and the
    // deletion shown as such (not as the Ready state the status still holds).
    assert!(stdout.contains("replication westeurope"), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("Gallery/platform-images") && l.contains("Deleting")),
        "{stdout}"
    );
    for file in ["kubeconfig", "operator.log", "sandbox.env"] {
        assert!(dir.path().join(file).exists(), "{file} is in --dir");
    }
}

#[test]
fn the_demo_removes_its_temporary_directory() {
    let out = sandbox()
        .args(["--demo", "--speed", "20"])
        .output()
        .expect("running the sandbox");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let dir = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("files: "))
        .and_then(|l| l.strip_suffix(" (removed on exit)"))
        .unwrap_or_else(|| panic!("the sandbox names its directory:\n{stdout}"));
    assert!(
        !Path::new(dir).exists(),
        "{dir} is removed when the demo ends"
    );
}

/// A running `sandbox` (no demo), stopped on drop.
struct Running {
    child: Child,
    env_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl Running {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut child = sandbox()
            .args(["--speed", "20", "--dir"])
            .arg(dir.path())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut printed = Vec::new();
        for line in BufReader::new(child.stdout.take().unwrap()).lines() {
            let line = line.unwrap();
            let done = line == "Press Ctrl-C to stop.";
            printed.push(line);
            if done {
                break;
            }
        }
        let env_file = dir.path().join("sandbox.env");
        let printed = printed.join("\n");
        // What the cross-tenant example needs, on screen and in the file.
        for name in ["AZURE_CLIENT_ID=", "AZURE_CLIENT_SECRET=", "KUBECONFIG="] {
            assert!(
                printed.contains(name),
                "the sandbox prints {name}:\n{printed}"
            );
        }
        assert!(
            printed.contains(&format!("source {}", env_file.display())),
            "{printed}"
        );
        Self {
            child,
            env_file,
            _dir: dir,
        }
    }

    /// Runs a shell command as a reader of examples/ would: in the repository, after
    /// `source sandbox.env`.
    fn sh(&self, command: &str) -> String {
        self.try_sh(command)
            .unwrap_or_else(|text| panic!("`{command}` failed:\n{text}"))
    }

    fn try_sh(&self, command: &str) -> Result<String, String> {
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!("source {} && {command}", self.env_file.display()))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() {
            Ok(text)
        } else {
            Err(text)
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

/// The `kubectl` commands a manifest's comments give: indented blocks (with `\` continuation
/// lines) and inline `` `kubectl …` `` spans.
fn commands(manifest: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut block: Option<String> = None;
    for line in manifest.lines() {
        let Some(comment) = line.strip_prefix('#') else {
            continue;
        };
        let text = comment.trim();
        if let Some(cmd) = block.as_mut() {
            cmd.push(' ');
            cmd.push_str(text.trim_end_matches('\\').trim());
            if !text.ends_with('\\') {
                out.push(block.take().unwrap());
            }
            continue;
        }
        if text.starts_with("kubectl ") {
            if text.ends_with('\\') {
                block = Some(text.trim_end_matches('\\').trim().to_string());
            } else {
                out.push(text.to_string());
            }
            continue;
        }
        for (i, span) in text.split('`').enumerate() {
            if i % 2 == 1 && span.starts_with("kubectl ") {
                out.push(span.to_string());
            }
        }
    }
    out
}

#[test]
fn the_commands_in_example_comments_are_found() {
    let cross = commands(include_str!("../examples/cross-tenant-vm.yaml"));
    assert_eq!(
        cross,
        [
            "kubectl create secret generic tenant-2-publisher --from-literal=AZURE_TENANT_ID=0b4e9a7c-5d1f-4c2e-9a3b-7f6d2e1c0a02 --from-literal=AZURE_CLIENT_ID=$AZURE_CLIENT_ID --from-literal=AZURE_CLIENT_SECRET=$AZURE_CLIENT_SECRET"
        ]
    );
    assert_eq!(
        commands(include_str!("../examples/multi-region-replication.yaml")),
        [
            "kubectl get imgver",
            "kubectl get imgver ubuntu-fleet-2.3.0 -o yaml"
        ]
    );
}

#[test]
fn every_example_works_in_the_sandbox_as_its_comments_say() {
    let sandbox = Running::start();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&examples)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut later = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let relative = format!("examples/{}", file.file_name().unwrap().to_string_lossy());
        let cmds = commands(&text);
        // What a comment says to create comes first; reads follow the apply.
        for cmd in cmds.iter().filter(|c| c.starts_with("kubectl create")) {
            sandbox.sh(cmd);
        }
        let apply = format!("kubectl apply -f {relative}");
        if !cmds.contains(&apply) {
            sandbox.sh(&apply);
        }
        for cmd in cmds.iter().filter(|c| !c.starts_with("kubectl create")) {
            if cmd.starts_with("kubectl apply") {
                sandbox.sh(cmd);
            } else {
                later.push(cmd.clone());
            }
        }
    }
    if let Err(text) = sandbox.try_sh(
        "kubectl wait --for=condition=Ready galleries,imagedefinitions,imageversions,virtualmachines,virtualmachinescalesets --all --timeout=180s",
    ) {
        let state = sandbox.try_sh("kubectl get azure-gallery").unwrap_or_else(|e| e);
        panic!("not every example became Ready:\n{text}\n{state}");
    }
    for cmd in later {
        sandbox.sh(&cmd);
    }
    let replication = sandbox.sh("kubectl get imgver ubuntu-fleet-2.3.0 -o yaml");
    assert!(replication.contains("regions:"), "{replication}");
}
