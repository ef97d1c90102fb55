//! What every CLI test file shares: the `imgforge` binary run as a user runs it.

use std::process::{Command, Output};

/// Run `imgforge ARGS` with `env` set and the build and TLS variables of the caller's
/// environment removed (so a developer's DOCKER_NS or DOCKER_TLS_VERIFY cannot change a test);
/// `DOCKER_HOST` is kept, so the tests reach the engine the test process reaches.
pub fn imgforge(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_imgforge"));
    c.args(args);
    for v in [
        "DOCKER_NS",
        "BASE_DOCKER_NS",
        "DOCKER_TAG",
        "ARCH",
        "EXTRA_VERSION",
        "BASE_VERSION",
        "SOURCE_DATE_EPOCH",
        "BUILD_DIR",
        "CHAINTOOL_URL",
        "DOCKER_TLS_VERIFY",
        "DOCKER_CERT_PATH",
        "DOCKER_TLS",
    ] {
        c.env_remove(v);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// (stdout, stderr) as text.
pub fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}
