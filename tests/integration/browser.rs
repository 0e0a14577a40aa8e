//! The HTML reports of `sim run`, `sim sweep` and `sim compare` in a real
//! browser: Debian's headless Chromium loads each `index.html` from disk with
//! networking disabled, every chart image decodes, the tables are there, and
//! nothing reaches the console. Skips, saying why, when Chromium is absent
//! and cannot be installed (not root, or no apt-get); .ci/install-system-deps
//! installs it.

use crate::support::{ensure_system, temp_dir, Sim};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Chromium's path, installing it with .ci/install-system-deps when possible;
/// `Err` says why the test cannot run here.
fn chromium() -> Result<PathBuf, String> {
    let find = || {
        ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
            .iter()
            .map(PathBuf::from)
            .find(|path| path.exists())
    };
    ensure_system("chromium", "Chromium", || find().is_some())?;
    find().ok_or_else(|| "Chromium is installed but not found".to_string())
}

/// Loads `page` in headless Chromium (no network, fresh profile) and returns
/// the DOM after load and the page's console lines.
fn load(chromium: &Path, page: &Path, profile: &Path) -> (String, Vec<String>) {
    let output = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=5000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let console = String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter(|line| line.contains(":CONSOLE") || line.contains("Uncaught"))
        .map(str::to_string)
        .collect();
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        console,
    )
}

/// A copy of `index` with a probe that, after load, writes each image's
/// decoded width into the DOM (the report itself has no script).
fn probed(index: &Path, dir: &Path) -> PathBuf {
    let html = std::fs::read_to_string(index).expect("index.html");
    let probe = "<script>window.addEventListener('load', () => document.body.setAttribute('data-image-widths', Array.from(document.images).map(i => i.complete ? i.naturalWidth : -1).join(',')));</script>\n</body>";
    let page = dir.join("probed.html");
    std::fs::write(&page, html.replace("</body>", probe)).expect("probe page");
    page
}

/// The decoded widths of the page's images, from the probe.
fn image_widths(dom: &str) -> Vec<i64> {
    let start = dom.find("data-image-widths=\"").expect("probe ran") + "data-image-widths=\"".len();
    let end = start + dom[start..].find('"').unwrap();
    dom[start..end]
        .split(',')
        .filter(|text| !text.is_empty())
        .map(|text| text.parse().unwrap())
        .collect()
}

fn check_report(chromium: &Path, dir: &Path, charts: usize, tables: usize, text: &str) {
    let index = dir.join("index.html");
    let html = std::fs::read_to_string(&index).unwrap();
    assert!(
        !html.contains("http:") && !html.contains("https:") && !html.contains("<link"),
        "the page refers to the network"
    );
    let page = probed(&index, dir);
    let (dom, console) = load(
        chromium,
        &page,
        &temp_dir(&format!(
            "chromium-profile-{}",
            dir.file_name().unwrap().to_string_lossy()
        )),
    );
    let widths = image_widths(&dom);
    assert_eq!(widths.len(), charts, "{}", index.display());
    assert!(
        widths.iter().all(|width| *width >= 1000),
        "an image did not decode: {widths:?}"
    );
    assert_eq!(dom.matches("<table").count(), tables, "{}", index.display());
    assert!(dom.contains(text), "{} lacks {text:?}", index.display());
    assert!(console.is_empty(), "console output: {console:?}");
}

// Each command's index.html renders its charts and tables in Chromium, with
// nothing on the console; a page that does log is caught (the check works).
#[test]
fn html_reports_render_in_headless_chromium() {
    let chromium = match chromium() {
        Ok(path) => path,
        Err(reason) => {
            eprintln!("skipping html_reports_render_in_headless_chromium: {reason}");
            return;
        }
    };
    let control = temp_dir("browser-control");
    std::fs::write(
        control.join("index.html"),
        "<!DOCTYPE html><html><body><script>console.error('boom')</script></body></html>",
    )
    .unwrap();
    let (_, console) = load(
        &chromium,
        &control.join("index.html"),
        &temp_dir("chromium-profile-control"),
    );
    assert_eq!(
        console.len(),
        1,
        "a console error was not seen: {console:?}"
    );

    let run = temp_dir("browser-run");
    Sim::new()
        .args([
            "run",
            "tests/fixtures/sweep/retry-short.json",
            "--out",
            run.to_str().unwrap(),
        ])
        .run();
    check_report(&chromium, &run, 2, 0, "availability");

    let sweep = temp_dir("browser-sweep");
    Sim::new()
        .args([
            "sweep",
            "tests/fixtures/sweep/sweep.json",
            "--seeds",
            "2",
            "--out",
            sweep.to_str().unwrap(),
        ])
        .run();
    check_report(
        &chromium,
        &sweep,
        4,
        1,
        "Points (mean over seeds, 95% t-interval)",
    );

    let compare = temp_dir("browser-compare");
    Sim::new()
        .args([
            "compare",
            "tests/fixtures/sweep/retry-short.json",
            "tests/fixtures/sweep/retry-short-budget.json",
            "--seeds",
            "3",
            "--out",
            compare.to_str().unwrap(),
        ])
        .run();
    check_report(&chromium, &compare, 3, 2, "retry-short-budget better");
}
