//! `make demo` end to end: demo/up.sh brings up its own control plane, the operator and a Git
//! server, redeploys with a webhook call and prints what happened; demo/down.sh stops it all.

mod support;

use std::path::PathBuf;
use std::process::Command;

use support::cluster::testenv_tool;
use support::git_repo::TempDir;

/// Runs demo/down.sh for `dir` when dropped, so a failing test leaves nothing running.
struct Down(PathBuf);

impl Drop for Down {
    fn drop(&mut self) {
        let _ = Command::new(root().join("demo/down.sh")).env("DEMO_DIR", &self.0).output();
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn make_demo_redeploys_with_the_webhook_call_and_demo_down_stops_everything() {
    let Some(_) = testenv_tool("kube-apiserver") else { return };
    let temp = TempDir::new("tugboat-demo").expect("temp dir");
    let dir = temp.path().join("demo");
    let down = Down(dir.clone());
    // Output to files, not pipes: the processes the demo leaves running must not hold our pipe.
    let (out_path, err_path) = (temp.path().join("stdout"), temp.path().join("stderr"));
    let status = Command::new(root().join("demo/up.sh"))
        .env("DEMO_DIR", &dir)
        .env("TUGBOAT_BIN", env!("CARGO_BIN_EXE_tugboat"))
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .status()
        .expect("run demo/up.sh");
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    assert!(status.success(), "demo/up.sh failed:\n{stdout}\n{stderr}");
    for expected in [
        "live Deployment web: SERVICE_TAG=stable",
        "HTTP 202",
        "env SERVICE_TAG          = development",
        "image                    = registry.example.com/web:development",
        "restarted [\"Deployment/web\"]",
        "deployment \"web\" successfully rolled out",
        "make demo-down",
    ] {
        assert!(stdout.contains(expected), "the demo output shows {expected:?}:\n{stdout}");
    }
    let restarted = stdout.lines().find_map(|l| l.trim().strip_prefix("restartedAt annotation   = ")).unwrap_or("");
    assert!(restarted.trim().parse::<jiff::Timestamp>().is_ok(), "a restart time: {restarted:?}\n{stdout}");

    let pid: u32 = std::fs::read_to_string(dir.join("operator.pid")).expect("pid file").trim().parse().expect("pid");
    drop(down);
    assert!(!dir.exists(), "demo-down removes the demo's state");
    assert!(!PathBuf::from(format!("/proc/{pid}")).exists(), "demo-down stops the operator");
}
