//! `cargo xtask desktop [--dev] [--test]`: the desktop app (`src-tauri/`, a workspace of its own
//! with its own lock file, built into `<target>/desktop`). Installs the WebKitGTK build
//! prerequisites from Debian's packages, builds the app, optionally drives its real window under
//! Xvfb (WebKitWebDriver, a real server, a fresh kernel keyring), and packages a `.deb` by hand
//! with `dpkg-deb`: tauri-cli takes 30 minutes to compile and AppImage needs tools from GitHub,
//! which this project's machines cannot reach.

use super::{Result, cargo, output, root, stage, status, target_dir, which};
use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// Build prerequisites (the set verified on this machine kind; see the desktop notes).
const BUILD_PACKAGES: &[&str] = &[
    "libwebkit2gtk-4.1-dev",
    "libayatana-appindicator3-dev",
    "librsvg2-dev",
    "libxdo-dev",
    "libssl-dev",
    "libdbus-1-dev",
    "pkg-config",
    "build-essential",
    "file",
];
/// What the window test runs under.
const TEST_PACKAGES: &[&str] = &["xvfb", "xauth", "webkit2gtk-driver", "dbus", "dbus-x11", "keyutils", "openssl"];

fn ensure_packages(test: bool) -> Result {
    let built =
        output(Command::new("pkg-config").args(["--exists", "webkit2gtk-4.1", "ayatana-appindicator3-0.1"])).is_some();
    let testable =
        ["xvfb-run", "WebKitWebDriver", "keyctl", "dbus-run-session", "openssl"].iter().all(|t| which(t).is_some());
    let mut wanted: Vec<&str> = Vec::new();
    if !built {
        wanted.extend(BUILD_PACKAGES);
    }
    if test && !testable {
        wanted.extend(TEST_PACKAGES);
    }
    if wanted.is_empty() { Ok(()) } else { super::apt_install(&wanted) }
}

fn desktop_cargo(target: &Path) -> Command {
    let mut cmd = cargo();
    // Its own workspace: its own lock file and target directory (no feature churn with the server).
    cmd.current_dir(root().join("src-tauri")).env("CARGO_TARGET_DIR", target);
    cmd
}

/// The command line: `--dev` builds the debug app, `--test` also builds the server (debug) and
/// drives the window against it.
pub fn command(args: &[String]) -> Result {
    let release = !args.iter().any(|a| a == "--dev");
    let server = if args.iter().any(|a| a == "--test") { Some(super::build(false)?) } else { None };
    desktop(release, server.as_deref())
}

/// Builds the app; with `server` (a built server binary, its site in `<target>/site`), tests it.
pub fn desktop(release: bool, server: Option<&Path>) -> Result {
    let test = server.is_some();
    stage("desktop: WebKitGTK build prerequisites (Debian packages)", || ensure_packages(test))?;
    let target = target_dir().join("desktop");
    let profile = if release { "release" } else { "debug" };
    stage(&format!("desktop: build ({profile})"), || {
        let mut cmd = desktop_cargo(&target);
        cmd.args(["build", "--locked", "--bin", "chatalot-desktop"]);
        if release {
            cmd.arg("--release");
        }
        status(&mut cmd)
    })?;
    let app = target.join(profile).join("chatalot-desktop");
    if test {
        // Lints need WebKitGTK's headers, so they run here rather than in `cargo xtask lint`.
        stage("desktop: cargo clippy -D warnings", || {
            status(desktop_cargo(&target).args(["clippy", "--locked", "--all-targets", "--", "-D", "warnings"]))
        })?;
    }
    if let Some(server) = server {
        stage("desktop: unit tests, then the window under Xvfb (WebKitWebDriver)", || {
            let screenshot = target.join("desktop-window.png");
            let mut cmd = Command::new("xvfb-run");
            cmd.args(["-a", "-s", "-screen 0 1280x800x24", "dbus-run-session", "--", "keyctl", "session", "-"])
                .arg(env_cargo())
                .args(["test", "--locked"])
                .args(if release { &["--release"][..] } else { &[][..] })
                .args(["--", "--include-ignored", "--nocapture", "--test-threads=1"])
                .current_dir(root().join("src-tauri"))
                .env("CARGO_TARGET_DIR", &target)
                .env("CHATALOT_SERVER_BIN", server)
                // The test server is a dev build (`--test` builds one): its site.
                .env("CHATALOT_SITE_DIR", super::site_dir(false))
                .env("CHATALOT_DESKTOP_SCREENSHOT", &screenshot);
            status(&mut cmd)?;
            println!("    screenshot of the window: {}", screenshot.display());
            Ok(())
        })?;
    }
    let deb = stage("desktop: .deb (dpkg-deb)", || package_deb(&app, &target))?;
    println!("==> desktop: {}", deb.display());
    Ok(())
}

fn env_cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// `chatalot-desktop_<version>_<arch>.deb`: the binary, a desktop entry that also handles
/// `chatalot://` links, and the icons.
fn package_deb(app: &Path, target: &Path) -> Result<PathBuf> {
    let version = env!("CARGO_PKG_VERSION");
    let arch = output(Command::new("dpkg").arg("--print-architecture"))
        .map(|a| a.trim().to_owned())
        .ok_or("dpkg is missing")?;
    let tree = target.join("deb").join("chatalot-desktop");
    let _ = std::fs::remove_dir_all(&tree);
    let put = |to: &str, from: &Path| -> Result {
        let dest = tree.join(to);
        std::fs::create_dir_all(dest.parent().unwrap_or(&tree)).map_err(|e| e.to_string())?;
        std::fs::copy(from, &dest).map(|_| ()).map_err(|e| format!("{}: {e}", from.display()))
    };
    let write = |to: &str, text: &str| -> Result {
        let dest = tree.join(to);
        std::fs::create_dir_all(dest.parent().unwrap_or(&tree)).map_err(|e| e.to_string())?;
        std::fs::write(&dest, text).map_err(|e| format!("{}: {e}", dest.display()))
    };
    put("usr/bin/chatalot-desktop", app)?;
    status(Command::new("strip").arg("--strip-debug").arg(tree.join("usr/bin/chatalot-desktop")))?;
    let icons = root().join("src-tauri").join("icons");
    for (size, file) in [("32x32", "32.png"), ("128x128", "128.png"), ("256x256", "icon.png")] {
        put(&format!("usr/share/icons/hicolor/{size}/apps/chatalot-desktop.png"), &icons.join(file))?;
    }
    write(
        "usr/share/applications/chatalot-desktop.desktop",
        "[Desktop Entry]\nType=Application\nName=Chatalot\nComment=End-to-end-encrypted chat on your own server\n\
         Exec=chatalot-desktop %u\nIcon=chatalot-desktop\nTerminal=false\nCategories=Network;InstantMessaging;Chat;\n\
         MimeType=x-scheme-handler/chatalot;\nStartupWMClass=chatalot-desktop\n",
    )?;
    let size_kib = dir_size(&tree) / 1024;
    write(
        "DEBIAN/control",
        &format!(
            "Package: chatalot-desktop\nVersion: {version}\nArchitecture: {arch}\nMaintainer: Chatalot <chatalot@localhost>\n\
             Installed-Size: {size_kib}\nDepends: libwebkit2gtk-4.1-0, libgtk-3-0, libdbus-1-3, libayatana-appindicator3-1\n\
             Section: net\nPriority: optional\nDescription: Chatalot for the desktop\n \
             Connects to your Chatalot server and opens its end-to-end-encrypted chat in a window,\n \
             with the vault key in the system keychain, notifications and a tray icon.\n"
        ),
    )?;
    let deb = target.join(format!("chatalot-desktop_{version}_{arch}.deb"));
    status(Command::new("dpkg-deb").args(["--root-owner-group", "--build"]).arg(&tree).arg(&deb))?;
    let listing = output(Command::new("dpkg-deb").arg("--contents").arg(&deb)).unwrap_or_default();
    for needed in ["usr/bin/chatalot-desktop", "chatalot-desktop.desktop", "256x256/apps/chatalot-desktop.png"] {
        if !listing.contains(needed) {
            return Err(format!("the .deb lacks {needed}:\n{listing}"));
        }
    }
    let bytes = std::fs::metadata(&deb).map(|m| m.len()).unwrap_or(0);
    println!("    {}: {:.1} MiB ({} files)", deb.display(), bytes as f64 / 1048576.0, listing.lines().count());
    Ok(deb)
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            _ => e.metadata().map(|m| m.len()).unwrap_or(0),
        })
        .sum()
}
