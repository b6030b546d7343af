//! The quickstart end to end, scaled down: it reshards midway, checks every key's order and
//! exits 0 with a summary that says nothing was lost.

#[test]
fn the_quickstart_reshards_midway_and_reports_nothing_lost() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_quickstart"))
        .args(["--records", "30000", "--keys", "300", "--rate", "10000"])
        .env("NO_PROXY", "127.0.0.1,localhost")
        .output()
        .expect("quickstart runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let line = |name: &str| -> u64 {
        stdout
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .and_then(|l| l.split_whitespace().last()?.parse().ok())
            .unwrap_or_else(|| panic!("no {name:?} line in\n{stdout}"))
    };
    assert_eq!(line("records produced"), 30_000);
    assert_eq!(line("records consumed"), 30_000);
    assert_eq!(line("lost"), 0);
    assert_eq!(line("order violations"), 0);
    assert!(stdout.contains("split shardId-000000000000"), "{stdout}");
    assert!(stdout.contains("OK: nothing lost"), "{stdout}");
}
