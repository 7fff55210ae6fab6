//! Local stand-ins for Azure Resource Manager and the Kubernetes API (feature `sim`); the
//! applications that run them (`crate::sandbox`, `crate::bench`) live outside. Written from
//! the API facts, independently of `crate::arm`, so they catch the client's mistakes instead
//! of sharing them.

pub mod arm;
pub mod kube;

/// What a started simulator tells its user: `KEY=VALUE` facts printed before `READY`.
pub type Facts = Vec<(String, String)>;

/// Prints the facts, then `READY`, the start-up protocol tests and tools wait for.
pub fn announce(facts: &Facts) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    for (k, v) in facts {
        let _ = writeln!(out, "{k}={v}");
    }
    let _ = writeln!(out, "READY");
    let _ = out.flush();
}
