//! Memory stays bounded by workers × batch size, not by the table: checksum a table hundreds of
//! times larger than a batch and watch the process's peak RSS.

use std::time::Duration;

use upkeep_core::Engine;
use upkeep_test_support::TestDb;

/// Peak RSS (VmHWM) of a running child in KiB, polled until it exits.
fn run_and_watch_peak_kib(
    mut cmd: std::process::Command,
) -> (std::process::ExitStatus, u64, String) {
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut peak = 0u64;
    let watcher = std::thread::spawn(move || {
        while let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            let Some(hwm) = status.lines().find(|l| l.starts_with("VmHWM:")) else {
                break;
            };
            let kib: u64 = hwm
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            peak = peak.max(kib);
            std::thread::sleep(Duration::from_millis(10));
        }
        peak
    });
    let out = child.wait_with_output().unwrap();
    let peak = watcher.join().unwrap();
    (
        out.status,
        peak,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn pg_checksum_of_a_large_table_stays_within_bounded_memory() {
    let db = TestDb::new(Engine::Postgres).await;
    // 120,000 rows of 4 KiB text: ~480 MiB streamed, 230 times the 2 MiB batch bound.
    db.execute(
        "CREATE TABLE big (id bigint PRIMARY KEY, payload text);
         INSERT INTO big SELECT g, repeat(md5(g::text), 128) FROM generate_series(1, 120000) g;
         ANALYZE big;",
    )
    .await;
    let url = db.target.secret_url().to_owned();
    let (status, peak_kib, err) = tokio::task::spawn_blocking(move || {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_upkeep"));
        cmd.args([
            "checksum",
            &url,
            "--jobs",
            "2",
            "--chunk-rows",
            "20000",
            "--json",
        ]);
        run_and_watch_peak_kib(cmd)
    })
    .await
    .unwrap();
    assert!(status.success(), "{err}");
    assert!(peak_kib > 0, "the watcher read the process's memory");
    // Two workers × (4 queued + 2 in hand) × ~2 MiB batches, plus the runtime.
    assert!(
        peak_kib < 96 * 1024,
        "peak RSS {peak_kib} KiB for a ~480 MiB table"
    );
}

/// One value of 50 MB does not multiply: a batch of one row holds it, the in-flight budget
/// keeps a second such batch from queueing behind it, and chunks are hashed and compressed
/// piece by piece. The drill saw 333-363 MB before.
#[tokio::test]
async fn pg_backup_and_restore_of_50_mb_values_stay_under_300_mb() {
    let db = TestDb::new(Engine::Postgres).await;
    db.execute(
        "CREATE TABLE blobs (id int PRIMARY KEY, b bytea, t text);
         INSERT INTO blobs SELECT 1, decode(repeat(md5('x'), 3125000), 'hex'), NULL;
         INSERT INTO blobs SELECT 2, NULL, repeat(md5('y'), 1562500);
         INSERT INTO blobs SELECT 3, decode(repeat(md5('z'), 3125000), 'hex'), NULL;
         INSERT INTO blobs SELECT g, 'ab', 'cd' FROM generate_series(4, 2000) g;",
    )
    .await;
    let copy = TestDb::new(Engine::Postgres).await;
    let repo = tempfile::tempdir().unwrap();
    let (from, to, path) = (
        db.target.secret_url().to_owned(),
        copy.target.secret_url().to_owned(),
        repo.path().display().to_string(),
    );
    let peaks = tokio::task::spawn_blocking(move || {
        let bin = env!("CARGO_BIN_EXE_upkeep");
        let mut backup = std::process::Command::new(bin);
        backup.args(["backup", &from, "--repo", &path, "--jobs", "2", "-q"]);
        let (status, backup_kib, err) = run_and_watch_peak_kib(backup);
        assert!(status.success(), "{err}");
        let mut restore = std::process::Command::new(bin);
        restore.args(["restore", "--repo", &path, "--to", &to, "--jobs", "2", "-q"]);
        let (status, restore_kib, err) = run_and_watch_peak_kib(restore);
        assert!(status.success(), "{err}");
        (backup_kib, restore_kib)
    })
    .await
    .unwrap();
    for (what, kib) in [("backup", peaks.0), ("restore", peaks.1)] {
        assert!(
            kib > 50 * 1024,
            "{what}: the watcher read the process's memory"
        );
        assert!(
            kib < 300 * 1024,
            "{what}: peak RSS {kib} KiB with 50 MB values"
        );
    }
}
