//! Following files through rotation and restarts: every line exactly once.
//!
//! Exactly-once is checked with a barrier: after the expected count is reached,
//! one more line is appended to the live file; once it is counted the tailer has
//! polled every file again since the rotation, so a re-read would have shown up,
//! and the count must be exactly expected + 1.

use std::time::Duration;

use crate::helpers::*;

const LINES: &str = r#"reachguard_lines_total{source="app"}"#;
const ACCESS: &str = r#"reachguard_events_total{type="access"}"#;

fn batch(prefix: &str, from: u64, n: u64) -> Vec<String> {
    (from..from + n)
        .map(|i| access_line(&format!("{prefix}{i}"), "wiki/home", i))
        .collect()
}

/// Truncate in place, as copytruncate does after the copy.
fn truncate(path: &std::path::Path) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(0)
        .unwrap();
}

fn settle(daemon: &Daemon, log: &std::path::Path, expected: f64) {
    wait_until(Duration::from_secs(20), "the expected lines", || {
        daemon.metric(LINES) >= expected
    });
    append(log, &[access_line("barrier", "wiki/home", 86_399)]);
    wait_until(Duration::from_secs(20), "the barrier line", || {
        daemon.metric(LINES) >= expected + 1.0
    });
    assert_eq!(
        daemon.metric(LINES),
        expected + 1.0,
        "a line was delivered twice"
    );
    assert_eq!(daemon.metric(ACCESS), expected + 1.0);
}

#[test]
fn rotation_by_rename_delivers_every_line_once() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let log = logs.join("app.log");
    append(&log, &batch("a", 0, 200));
    let mut daemon = Daemon::start(
        dir.path(),
        &config(dir.path(), &format!("{}/*.log*", logs.display()), None),
    );
    wait_until(Duration::from_secs(20), "the first batch", || {
        daemon.metric(LINES) >= 200.0
    });
    // The writer keeps writing to the old inode for a moment after the rename,
    // as a real logger does until it reopens; those lines must not be lost. The
    // rotated name still matches the glob, so identity (not path) must keep it
    // from being read again.
    std::fs::rename(&log, logs.join("app.log.1")).unwrap();
    append(&logs.join("app.log.1"), &batch("b", 200, 50));
    append(&log, &batch("c", 250, 100));
    settle(&daemon, &log, 350.0);
    assert!(daemon.sigterm().success());
}

#[test]
fn rotation_by_copytruncate_delivers_every_line_once() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, &batch("a", 0, 300));
    let mut daemon = Daemon::start(
        dir.path(),
        &config(dir.path(), &log.display().to_string(), None),
    );
    wait_until(Duration::from_secs(20), "the first batch", || {
        daemon.metric(LINES) >= 300.0
    });
    // copytruncate: copy aside (not followed), truncate in place, keep writing.
    std::fs::copy(&log, dir.path().join("app.log.1")).unwrap();
    truncate(&log);
    append(&log, &batch("b", 300, 40));
    settle(&daemon, &log, 340.0);
    assert!(daemon.sigterm().success());
}

#[test]
fn a_restart_in_the_middle_of_a_file_resumes_without_loss_or_repeats() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let cfg = config(dir.path(), &log.display().to_string(), None);
    append(&log, &batch("a", 0, 300));
    let mut first = Daemon::start(dir.path(), &cfg);
    wait_until(Duration::from_secs(20), "the first part", || {
        first.metric(LINES) >= 300.0
    });
    // A half-written line at the moment of shutdown.
    let partial = access_line("split", "wiki/home", 40_000);
    let (head, tail) = partial.split_at(30);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .and_then(|mut f| std::io::Write::write_all(&mut f, head.as_bytes()))
        .unwrap();
    assert!(first.sigterm().success(), "log:\n{}", first.log());

    // While it is down: the rest of the split line, then more.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .and_then(|mut f| std::io::Write::write_all(&mut f, format!("{tail}\n").as_bytes()))
        .unwrap();
    append(&log, &batch("b", 300, 200));
    let mut second = Daemon::start(dir.path(), &cfg);
    // The second process counts only what it read: the completed split line and
    // the 200 new ones. Anything from before the restart would be a repeat.
    settle(&second, &log, 201.0);
    assert_eq!(
        second.metric(r#"reachguard_decode_errors_total{source="app"}"#),
        0.0,
        "the split line decodes whole"
    );
    assert!(second.sigterm().success());
}

#[test]
fn copytruncate_under_a_glob_matching_the_copies_delivers_every_line_once_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let log = logs.join("app.log");
    let cfg = config(dir.path(), &format!("{}/app.log*", logs.display()), None);
    let copytruncate = |to: &str| {
        // logrotate's copytruncate with rotate 2 and compress: older copies move
        // on and one is compressed, then the live file is copied and truncated.
        let (one, two) = (logs.join("app.log.1"), logs.join("app.log.2"));
        if two.exists() {
            std::fs::rename(&two, logs.join("app.log.3.gz")).unwrap();
        }
        if one.exists() {
            std::fs::rename(&one, &two).unwrap();
        }
        std::fs::copy(&log, logs.join(to)).unwrap();
        truncate(&log);
    };
    append(&log, &batch("a", 0, 300));
    let mut first = Daemon::start(dir.path(), &cfg);
    wait_until(Duration::from_secs(20), "the first batch", || {
        first.metric(LINES) >= 300.0
    });
    copytruncate("app.log.1");
    append(&log, &batch("b", 300, 40));
    copytruncate("app.log.1");
    append(&log, &batch("c", 340, 25));
    settle(&first, &log, 365.0);
    assert!(first.sigterm().success(), "log:\n{}", first.log());

    // While it is down: lines it never read, then another rotation.
    append(&log, &batch("d", 365, 30));
    copytruncate("app.log.1");
    append(&log, &batch("e", 395, 20));
    // And a new source listed before it: "app" resumes from its own cursor,
    // whatever its place in the config.
    let other = dir.path().join("other.log");
    append(&other, &[]);
    let cfg = with_source_first(&cfg, "other", &other);
    let mut second = Daemon::start(dir.path(), &cfg);
    // The 30 lines only the copy holds now and the 20 new ones; anything else
    // would be a repeat.
    settle(&second, &log, 50.0);
    assert!(second.sigterm().success());
}
