//! The packaging a self-hoster installs: the systemd unit passes `systemd-analyze verify`
//! with the real binary in its `ExecStart`.

use std::process::Command;

const UNIT: &str = include_str!("../../deploy/whatsapp-memory.service");
const INSTALLED_BINARY: &str = "/usr/local/bin/whatsapp-memory";

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    if Command::new("systemd-analyze").arg("--version").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "CI must have systemd-analyze (Debian's systemd package)");
        eprintln!("systemd-analyze is not installed: the unit is not verified here (CI verifies it)");
        return;
    }
    assert!(UNIT.contains(&format!("ExecStart={INSTALLED_BINARY} serve")), "the unit starts the installed binary");
    let dir = tempfile::tempdir().unwrap();
    // verify checks that ExecStart is an executable: point it at the binary just built.
    let unit = UNIT.replace(INSTALLED_BINARY, env!("CARGO_BIN_EXE_whatsapp-memory"));
    let path = dir.path().join("whatsapp-memory.service");
    std::fs::write(&path, unit).unwrap();
    let output = Command::new("systemd-analyze").arg("verify").arg(&path).output().unwrap();
    let complaints = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "systemd-analyze verify failed: {complaints}");
    // Warnings (unknown settings, bad values) go to stderr with a zero status.
    let own: Vec<&str> = complaints.lines().filter(|line| line.contains("whatsapp-memory.service")).collect();
    assert!(own.is_empty(), "systemd-analyze complained about the unit: {own:?}");
}

#[test]
fn the_unit_sandboxes_the_service() {
    for setting in [
        "DynamicUser=yes",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=\n",
        "StateDirectory=whatsapp-memory",
        "Environment=ENV=production",
    ] {
        assert!(UNIT.contains(setting), "the unit lacks {setting:?}");
    }
}
