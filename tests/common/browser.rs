//! Debian's headless Chromium driven by playwright-core (`tests/browser/publish.mjs`): the web
//! app as a person uses it.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

/// Runs `tests/browser/publish.mjs`; returns its JSON events.
/// One Chromium at a time: on a 2-core machine, parallel 720p encoders starve each other and
/// the rate the relay gets says more about the machine than about the relay.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub async fn browser(args: &[&str]) -> Vec<Value> {
    let _turn = ONE_BROWSER.lock().await;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        dir.join("node_modules/playwright-core").exists(),
        "playwright-core is missing: run scripts/test.sh (it runs npm ci in tests/browser)"
    );
    let output = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new("node")
            .arg("publish.mjs")
            .args(args)
            .current_dir(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the browser run ends within 90 s")
    .expect("node runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "browser run failed: {stderr}");
    String::from_utf8_lossy(&output.stdout).lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

pub fn event<'a>(events: &'a [Value], name: &str) -> &'a Value {
    events.iter().find(|e| e["event"] == name).unwrap_or_else(|| panic!("no {name} event in {events:?}"))
}
