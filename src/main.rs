//! The `sharecheck` command line: the arguments are in `cli/args.rs`, each command in its own
//! module under `cli/`.

mod cli;

fn main() {
    runtime_dir();
    let cli = cli::args::Cli::from_command_line();
    if let Err(e) = cli::dispatch(cli) {
        eprintln!("sharecheck: error: {e:#}");
        std::process::exit(2);
    }
}

/// Mesa's Vulkan drivers (lavapipe included) connect to Wayland while they enumerate, and
/// libwayland prints "error: XDG_RUNTIME_DIR is invalid or not set" once per adapter when
/// there is no such directory (services, containers, ssh without a login session). A
/// private directory of our own keeps that off the output; it is set before any thread
/// exists, so changing the environment is sound.
fn runtime_dir() {
    if cfg!(not(feature = "gpu")) || std::env::var_os("XDG_RUNTIME_DIR").is_some() {
        return;
    }
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    let dir = std::env::temp_dir().join(format!("sharecheck-runtime-{uid}"));
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
    // Only a directory of ours that nobody else can enter (another user could have made it
    // first, to catch what is put there).
    let ok = std::fs::symlink_metadata(&dir)
        .is_ok_and(|m| m.is_dir() && m.uid() == uid && m.permissions().mode() & 0o077 == 0);
    if ok {
        std::env::set_var("XDG_RUNTIME_DIR", &dir);
    }
}
