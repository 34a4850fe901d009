//! `cargo xtask <command>`: builds and tests Chatalot with nothing but cargo and the package
//! registries. Every tool it needs is installed idempotently, at a pinned version:
//! the `wasm32-unknown-unknown` target (rustup), `wasm-bindgen-cli` (the exact version in
//! Cargo.lock, from crates.io) and, for browser tests, Chromium + ChromeDriver (Debian packages).

mod desktop;
mod image;

use std::{
    env,
    path::{Path, PathBuf},
    process::{Command, ExitCode},
    time::Instant,
};

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  run [ARGS…]     build in release mode and start the server (ARGS go to chatalot-server)
  build [--dev]   build the server and the web assets (release unless --dev)
  rootfs DIR [--dev]
                  build, then lay out the container's root filesystem in DIR (the Dockerfile runs it)
  desktop [--dev] [--test]
                  build the desktop app (src-tauri/, release unless --dev) and its .deb; --test also
                  drives its window under Xvfb against a debug server (installs WebKitGTK packages)
  image [--dev]   build, then the container image with podman from those files (offline), and
                  start the server from the image's exported filesystem to check it
  test            install what tests need, build, and run every test (unit, database, browser)
  lint            cargo fmt --check, leptosfmt --check (view! macros), cargo deny, cargo clippy -D warnings
  fmt             format the code: leptosfmt on app/src, then cargo fmt
  deny            cargo-deny: licenses, banned and duplicate crates, sources (offline; see deny.toml)
  bench [ARGS…]   release builds, figures printed: the gateway load generator (bench/; ARGS go to
                  it), the browser figures (end2end/benches: first load, felt latency), the crypto
                  core; --browser-only or --crypto-only runs just that part
  fuzz [SECS] [TARGET…]
                  build the fuzz targets (fuzz/) with coverage and run each for SECS seconds
                  [default: 600] on its corpus; `cargo xtask test` runs each for 15 s
  check-wasm-deps fail if the browser bundle links server-only crates

environment:
  CARGO_TARGET_DIR     where builds go                [default: ./target]
  CHATALOT_TOOLS_DIR   where pinned tools are installed [default: ~/.cache/chatalot/tools]
  TEST_DATABASE_URL    postgres://… to also run the database tests on PostgreSQL
  TEST_NATS_URL        nats://… for the two-node test (needs PostgreSQL too)
                       [default: nats://127.0.0.1:4222 when a NATS server answers there]";

/// Crates that must never be linked into the browser bundle.
const SERVER_ONLY_CRATES: &[&str] =
    &["domain", "entity", "migration", "sea-orm", "sqlx", "sqlx-core", "tokio", "argon2", "mio", "jsonwebtoken"];

type Result<T = ()> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => run(&args[1..]),
        Some("build") => build(!args.iter().any(|a| a == "--dev")).map(|_| ()),
        Some("rootfs") => match args.get(1).filter(|a| !a.starts_with("--")) {
            Some(dir) => {
                let release = !args.iter().any(|a| a == "--dev");
                build(release).and_then(|server| image::rootfs(&server, &site_dir(release), Path::new(dir)))
            }
            None => Err(format!("rootfs needs a directory\n\n{USAGE}")),
        },
        Some("desktop") => desktop::command(&args[1..]),
        Some("image") => image::image(!args.iter().any(|a| a == "--dev")),
        Some("test") => test(),
        Some("lint") => lint(),
        Some("fmt") => fmt(),
        Some("deny") => deny(false),
        Some("bench") => bench(&args[1..]),
        Some("fuzz") => fuzz(&args[1..]),
        Some("check-wasm-deps") => check_wasm_deps(),
        Some("-h" | "--help" | "help") | None => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some(other) => Err(format!("unknown command {other:?}\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The checkout to work on. `cargo run` sets `CARGO_MANIFEST_DIR` when it starts xtask; that is
/// preferred to the value compiled in, because checkouts sharing one target directory share the
/// `xtask` binary too, and the last one built would otherwise decide which checkout is tested.
fn root() -> PathBuf {
    let manifest =
        env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    // xtask lives in the workspace: its parent is the checkout.
    manifest.parent().map_or_else(|| manifest.clone(), Path::to_path_buf)
}

fn target_dir() -> PathBuf {
    env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| if p.is_absolute() { p } else { root().join(p) })
        .unwrap_or_else(|| root().join("target"))
}

fn tools_dir() -> PathBuf {
    env::var_os("CHATALOT_TOOLS_DIR").map(PathBuf::from).unwrap_or_else(|| {
        let home = env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| root().join(".tools"));
        home.join(".cache/chatalot/tools")
    })
}

/// Runs one named stage and prints how long it took.
fn stage<T>(name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    println!("==> {name}");
    let started = Instant::now();
    let out = f();
    let secs = started.elapsed().as_secs_f64();
    match &out {
        Ok(_) => println!("==> {name}: done in {secs:.1} s"),
        Err(_) => println!("==> {name}: FAILED after {secs:.1} s"),
    }
    out
}

/// Variables every cargo command of this run gets (the services the tests may use): the build
/// scripts compile tests that need an absent service as ignored, so every build of the run must
/// see the same values or it would rebuild.
static TEST_ENV: std::sync::OnceLock<Vec<(&'static str, String)>> = std::sync::OnceLock::new();

fn cargo() -> Command {
    let mut cmd = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root()).env("CARGO_TARGET_DIR", target_dir());
    for (name, value) in TEST_ENV.get().into_iter().flatten() {
        cmd.env(name, value);
    }
    cmd
}

fn status(cmd: &mut Command) -> Result {
    let shown = format!("{cmd:?}");
    let st = cmd.status().map_err(|e| format!("cannot run {shown}: {e}"))?;
    if st.success() { Ok(()) } else { Err(format!("{shown} failed ({st})")) }
}

/// The whole test run is killed after this long, so that a hang fails CI instead of stalling it.
const TEST_TIMEOUT_SECS: u64 = 30 * 60;

/// Like `status`, but kills the command (and everything it started) after `limit`.
fn status_within(cmd: &mut Command, limit: std::time::Duration) -> Result {
    let shown = format!("{cmd:?}");
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(cmd, 0);
    let mut child = cmd.spawn().map_err(|e| format!("cannot run {shown}: {e}"))?;
    let started = Instant::now();
    loop {
        if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
            return if st.success() { Ok(()) } else { Err(format!("{shown} failed ({st})")) };
        }
        if started.elapsed() > limit {
            #[cfg(unix)]
            let _ = Command::new("kill").args(["-KILL", &format!("-{}", child.id())]).status();
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{shown} did not finish within {} s and was killed", limit.as_secs()));
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

fn output(cmd: &mut Command) -> Option<String> {
    cmd.output().ok().filter(|o| o.status.success()).map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
}

fn which(name: &str) -> Option<PathBuf> {
    env::var_os("PATH").and_then(|paths| env::split_paths(&paths).map(|p| p.join(name)).find(|p| p.is_file()))
}

// ---------------------------------------------------------------------------------------------
// Tools

fn ensure_wasm_target() -> Result {
    let installed = output(Command::new("rustup").args(["target", "list", "--installed"])).unwrap_or_default();
    if installed.lines().any(|l| l.trim() == "wasm32-unknown-unknown") {
        return Ok(());
    }
    status(Command::new("rustup").args(["target", "add", "wasm32-unknown-unknown"]))
}

/// The wasm-bindgen version in Cargo.lock (the workspace pins it with `=`).
fn locked_wasm_bindgen() -> Result<String> {
    let lock = std::fs::read_to_string(root().join("Cargo.lock")).map_err(|e| format!("Cargo.lock: {e}"))?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == "name = \"wasm-bindgen\""
            && let Some(v) = lines.next().and_then(|l| l.strip_prefix("version = \""))
        {
            return Ok(v.trim_end_matches('"').to_owned());
        }
    }
    Err("wasm-bindgen is not in Cargo.lock".into())
}

/// A tool from crates.io at exactly `version`, installed into the tools directory (under
/// `<bin>-<version>`) if it is not there yet, once per machine; returns the path of binary `bin`.
fn ensure_tool(krate: &str, version: &str, bin: &str) -> Result<PathBuf> {
    ensure_tool_with(krate, version, bin, &[], true)
}

/// [`ensure_tool`] with cargo features; `says_version`: whether `bin --version` prints it (else a
/// binary in the versioned directory is taken as that version).
fn ensure_tool_with(krate: &str, version: &str, bin: &str, features: &[&str], says_version: bool) -> Result<PathBuf> {
    let dir = tools_dir().join(format!("{bin}-{version}"));
    let path = dir.join("bin").join(bin);
    let have = if says_version {
        let said = output(Command::new(&path).arg("--version")).unwrap_or_default();
        said.split_whitespace().any(|word| word == version)
    } else {
        path.is_file()
    };
    if have {
        return Ok(path);
    }
    println!("installing {krate} {version} into {} (once per machine, a few minutes)", dir.display());
    let install = |locked: bool| {
        let mut cmd = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.args(["install", krate, "--version", version, "--root"]).arg(&dir);
        if !features.is_empty() {
            cmd.arg("--features").arg(features.join(","));
        }
        // A separate target dir: installing must not invalidate the workspace's build cache.
        cmd.env("CARGO_TARGET_DIR", tools_dir().join("build"));
        if locked {
            cmd.arg("--locked");
        }
        status(&mut cmd)
    };
    // Its lockfile may name a dependency version the registry no longer serves: fall back to a fresh resolution.
    install(true).or_else(|_| install(false))?;
    Ok(path)
}

/// The wasm-bindgen CLI at the version in Cargo.lock (it must match the library exactly).
fn ensure_wasm_bindgen() -> Result<PathBuf> {
    ensure_tool("wasm-bindgen-cli", &locked_wasm_bindgen()?, "wasm-bindgen")
}

/// The WASM splitter (the one cargo-leptos runs for Leptos's lazy routes), pinned.
const WASM_SPLIT_VERSION: &str = "0.2.4";

/// Cuts the browser bundle at its split points (`app/src/split.rs`). It has no `--version`.
fn ensure_wasm_split() -> Result<PathBuf> {
    ensure_tool_with("wasm_split_cli_support", WASM_SPLIT_VERSION, "wasm-split-cli", &["build-binary"], false)
}

/// The `view!` formatter, pinned: a newer leptosfmt may format differently and fail `lint` on
/// code nobody changed.
const LEPTOSFMT_VERSION: &str = "0.1.33";

fn ensure_leptosfmt() -> Result<PathBuf> {
    ensure_tool("leptosfmt", LEPTOSFMT_VERSION, "leptosfmt")
}

/// The dependency policy checker, pinned like every tool here.
const CARGO_DENY_VERSION: &str = "0.20.2";

fn ensure_cargo_deny() -> Result<PathBuf> {
    ensure_tool("cargo-deny", CARGO_DENY_VERSION, "cargo-deny")
}

/// Licenses, banned and duplicate crates, and crate sources, as `deny.toml` says. Not advisories: the
/// advisory database cannot be fetched on this project's machines, so they are left to
/// `cargo deny check advisories` where the network allows it.
/// `quiet` (in `lint`) shows errors only; `cargo xtask deny` also lists the duplicate crates.
fn deny(quiet: bool) -> Result {
    stage("deny: licenses, bans, sources (cargo-deny)", || {
        let deny = ensure_cargo_deny()?;
        let level = if quiet { "error" } else { "warn" };
        status(Command::new(deny).current_dir(root()).args([
            "--log-level",
            level,
            "check",
            "licenses",
            "bans",
            "sources",
        ]))
    })
}

/// Chromium and ChromeDriver from Debian's packages (same version, so they always match).
fn ensure_chromium() -> Result {
    if which("chromedriver").is_some() && (which("chromium").is_some() || which("chromium-browser").is_some()) {
        return Ok(());
    }
    if which("apt-get").is_none() {
        return Err(
            "browser tests need chromium and chromedriver on PATH; install them with your package manager".into()
        );
    }
    apt_install(&["chromium", "chromium-driver"])
}

/// Debian packages, with `sudo` when not root.
/// Whether this process runs as root (apt without sudo, chroot).
fn is_root() -> bool {
    matches!(output(Command::new("id").arg("-u")).as_deref().map(str::trim), Some("0"))
}

fn apt_install(packages: &[&str]) -> Result {
    if which("apt-get").is_none() {
        return Err(format!("this needs {packages:?}; install them with your package manager"));
    }
    let sudo = !is_root();
    let apt = |args: &[&str]| {
        let mut cmd = if sudo {
            let mut c = Command::new("sudo");
            c.arg("-n").arg("apt-get");
            c
        } else {
            Command::new("apt-get")
        };
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        status(&mut cmd)
    };
    apt(&["update", "-q"])?;
    apt(&[&["install", "-y", "-q"], packages].concat())
}

// ---------------------------------------------------------------------------------------------
// Build

/// Where a build puts the site: `<target>/site` for release (beside `release/`, the layout a
/// deployment copies), `<target>/debug/site` for a dev build. A debug server finds the latter first
/// (`<binary dir>/site`), and the release server never serves a debug bundle (16 MB of WASM).
pub fn site_dir(release: bool) -> PathBuf {
    if release { target_dir().join("site") } else { target_dir().join("debug").join("site") }
}

/// Builds the server binary and the site (see [`site_dir`]); returns the server binary's path.
fn build(release: bool) -> Result<PathBuf> {
    let (bindgen, splitter) = stage("tools: wasm target, wasm-bindgen-cli, wasm-split-cli", || {
        ensure_wasm_target()?;
        Ok((ensure_wasm_bindgen()?, ensure_wasm_split()?))
    })?;
    let (wasm_profile, wasm_dir, server_args, server_dir): (&str, &str, &[&str], &str) = if release {
        ("wasm-release", "wasm-release", &["--release"], "release")
    } else {
        ("dev", "debug", &[], "debug")
    };
    stage("build: browser bundle (wasm32)", || {
        // `cargo rustc`: the splitter needs the relocations in the linked module, and a flag
        // given here reaches the final link only (the dependencies' builds stay cached).
        status(cargo().args([
            "rustc",
            "-p",
            "frontend",
            "--lib",
            "--target",
            "wasm32-unknown-unknown",
            "--profile",
            wasm_profile,
            "--",
            "-Clink-arg=--emit-relocs",
        ]))
    })?;
    let target = target_dir();
    let site = site_dir(release);
    stage("build: wasm-split, wasm-bindgen, assets", || {
        let pkg = site.join("pkg");
        std::fs::create_dir_all(&pkg).map_err(|e| format!("{}: {e}", pkg.display()))?;
        let wasm = target.join("wasm32-unknown-unknown").join(wasm_dir).join("frontend.wasm");
        // The split points' code goes to chunks (`split_*.wasm`, and `chunk_*.wasm` for code that
        // several share) with their loader `__wasm_split.js`; the rest, `chatalot.wasm`, is what
        // wasm-bindgen then finishes as usual.
        let split = target.join("wasm-split").join(wasm_dir);
        let _ = std::fs::remove_dir_all(&split);
        std::fs::create_dir_all(&split).map_err(|e| format!("{}: {e}", split.display()))?;
        status(Command::new(&splitter).args(["--target", "web", "--out-name", "chatalot"]).arg(&wasm).arg(&split))?;
        for entry in std::fs::read_dir(&pkg).map_err(|e| format!("{}: {e}", pkg.display()))? {
            let path = entry.map_err(|e| e.to_string())?.path();
            if is_chunk(&path) {
                std::fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            }
        }
        let mut cmd = Command::new(&bindgen);
        cmd.args(["--target", "web", "--no-typescript", "--keep-lld-exports", "--out-name", "chatalot", "--out-dir"])
            .arg(&pkg)
            .arg(split.join("chatalot.wasm"));
        if release {
            cmd.args(["--remove-name-section", "--remove-producers-section"]);
        }
        status(&mut cmd)?;
        copy_dir(&root().join("public"), &site)?;
        let mut files = vec![pkg.join("chatalot_bg.wasm"), pkg.join("chatalot.js")];
        for entry in std::fs::read_dir(&split).map_err(|e| format!("{}: {e}", split.display()))? {
            let from = entry.map_err(|e| e.to_string())?.path();
            if is_chunk(&from) {
                let to = pkg.join(from.file_name().unwrap_or_default());
                let mut bytes = std::fs::read(&from).map_err(|e| format!("{}: {e}", from.display()))?;
                if release && from.extension().is_some_and(|e| e == "wasm") {
                    // The splitter keeps the function names in each chunk (about two thirds of it).
                    bytes = strip_names(&bytes).ok_or_else(|| format!("{}: not a WASM module", from.display()))?;
                }
                std::fs::write(&to, bytes).map_err(|e| format!("{}: {e}", to.display()))?;
                files.push(to);
            }
        }
        for file in &files {
            precompress(file, release)?;
        }
        bundle_version(&pkg, &files)
    })?;
    stage("build: server", || {
        status(cargo().args(["build", "-p", "server", "--bin", "chatalot-server"]).args(server_args))
    })?;
    Ok(target.join(server_dir).join("chatalot-server"))
}

fn copy_dir(from: &Path, to: &Path) -> Result {
    std::fs::create_dir_all(to).map_err(|e| format!("{}: {e}", to.display()))?;
    for entry in std::fs::read_dir(from).map_err(|e| format!("{}: {e}", from.display()))? {
        let entry = entry.map_err(|e| e.to_string())?;
        let dest = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &dest)?;
        } else {
            std::fs::copy(entry.path(), &dest).map_err(|e| format!("{}: {e}", dest.display()))?;
        }
    }
    Ok(())
}

/// `wasm` without its `name` and `producers` sections (debugging aids, as wasm-bindgen's
/// `--remove-name-section` drops from the main module); `None` if it is not a WASM module.
fn strip_names(wasm: &[u8]) -> Option<Vec<u8>> {
    // An unsigned LEB128 number at `at`: its value and where it ends.
    fn leb(bytes: &[u8], mut at: usize) -> Option<(usize, usize)> {
        let (mut value, mut shift) = (0usize, 0);
        loop {
            let byte = *bytes.get(at)?;
            at += 1;
            value |= usize::from(byte & 0x7f).checked_shl(shift)?;
            shift += 7;
            if byte < 0x80 {
                return Some((value, at));
            }
        }
    }
    let mut out = wasm.get(..8)?.to_vec();
    let mut at = 8;
    while at < wasm.len() {
        let (size, body) = leb(wasm, at + 1)?;
        let end = body.checked_add(size).filter(|&e| e <= wasm.len())?;
        let custom_name = (wasm[at] == 0)
            .then(|| leb(wasm, body))
            .flatten()
            .and_then(|(len, name)| wasm.get(name..name.checked_add(len)?));
        if !matches!(custom_name, Some(b"name" | b"producers")) {
            out.extend_from_slice(&wasm[at..end]);
        }
        at = end;
    }
    Some(out)
}

/// Whether `path` is one of the splitter's outputs that the site serves: a chunk or its loader
/// (not the main module, which wasm-bindgen finishes), or a compressed copy of one.
fn is_chunk(path: &Path) -> bool {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    name.starts_with("split_") || name.starts_with("chunk_") || name.starts_with("__wasm_split")
}

/// Writes `pkg/version`: a hash of the JS and WASM `files` (the glue, the main module, the
/// chunks). The server puts it in the assets' path and serves them `immutable`
/// (server/src/http.rs, `pkg_dir`); every node built from the same files links the same path, and
/// the loader fetches chunks beside itself, so a page never mixes two builds.
fn bundle_version(pkg: &Path, files: &[PathBuf]) -> Result {
    use std::hash::Hasher;
    // SipHash with fixed keys: the same bytes give the same version on every machine and run.
    let mut hasher = std::hash::DefaultHasher::new();
    let mut files = files.to_vec();
    files.sort();
    for path in &files {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        hasher.write(path.file_name().unwrap_or_default().as_encoded_bytes());
        hasher.write_u8(0);
        hasher.write(&bytes);
        hasher.write_u8(0);
    }
    let version = format!("{:016x}", hasher.finish());
    std::fs::write(pkg.join("version"), format!("{version}\n")).map_err(|e| format!("{}: {e}", pkg.display()))?;
    println!("    bundle version {version}: served as /pkg/{version}-<stylesheet>/…, immutable");
    Ok(())
}

/// Writes `<file>.gz` (gzip -9, which every browser takes) and, for a release build, `<file>.br`
/// (brotli at its best quality, which every current browser takes over https and loopback; about a
/// fifth smaller for the WASM). The server picks one by the request's `Accept-Encoding`. A debug
/// bundle gets no brotli copy: it is large, and compressing it at quality 11 would take minutes.
fn precompress(file: &Path, release: bool) -> Result {
    use std::io::Write;
    let data = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let with_suffix = |suffix: &str| {
        let mut name = file.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(&data).map_err(|e| e.to_string())?;
    let gz = enc.finish().map_err(|e| e.to_string())?;
    std::fs::write(with_suffix(".gz"), &gz).map_err(|e| format!("{}.gz: {e}", file.display()))?;
    let br = with_suffix(".br");
    let br_len = if release {
        let mut out = Vec::new();
        {
            // Quality 11, a 16 MiB window (the most browsers accept).
            let mut enc = brotli::CompressorWriter::new(&mut out, 64 * 1024, 11, 24);
            enc.write_all(&data).map_err(|e| e.to_string())?;
        }
        std::fs::write(&br, &out).map_err(|e| format!("{}: {e}", br.display()))?;
        format!(", {} brotli", out.len())
    } else {
        // A stale copy from an earlier release build would be served in place of this one.
        let _ = std::fs::remove_file(&br);
        String::new()
    };
    println!(
        "    {}: {} bytes, {} gzipped{br_len}",
        file.file_name().unwrap_or_default().to_string_lossy(),
        data.len(),
        gz.len()
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Commands

fn run(args: &[String]) -> Result {
    let server = build(true)?;
    println!("==> starting {} (Ctrl-C stops it)", server.display());
    status(Command::new(server).args(args).current_dir(root()))
}

fn check_wasm_deps() -> Result {
    stage("check: browser bundle links no server-only crate", || {
        let tree = output(cargo().args([
            "tree",
            "-p",
            "frontend",
            "--target",
            "wasm32-unknown-unknown",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ]))
        .ok_or("cargo tree failed")?;
        let names: std::collections::BTreeSet<&str> =
            tree.lines().filter_map(|l| l.split_whitespace().next()).collect();
        let found: Vec<&&str> = SERVER_ONLY_CRATES.iter().filter(|c| names.contains(**c)).collect();
        if found.is_empty() {
            println!("    {} crates in the browser bundle, none of {:?}", names.len(), SERVER_ONLY_CRATES);
            Ok(())
        } else {
            Err(format!(
                "the browser bundle depends on server-only crates: {found:?} (run `cargo tree -p frontend --target wasm32-unknown-unknown -i <crate>`)"
            ))
        }
    })
}

fn test() -> Result {
    let started = Instant::now();
    match env::var("TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => println!("==> database tests run on SQLite and on PostgreSQL"),
        _ => println!("==> TEST_DATABASE_URL is not set: database tests run on SQLite only, PostgreSQL is SKIPPED"),
    }
    let nats = env::var("TEST_NATS_URL").ok().filter(|u| !u.is_empty()).or_else(|| {
        let local = std::net::SocketAddr::from(([127, 0, 0, 1], 4222));
        std::net::TcpStream::connect_timeout(&local, std::time::Duration::from_secs(1))
            .is_ok()
            .then(|| "nats://127.0.0.1:4222".to_owned())
    });
    match &nats {
        Some(url) => println!("==> the two-node test uses NATS at {url}"),
        None => println!("==> no NATS (TEST_NATS_URL unset, nothing on 127.0.0.1:4222): the two-node test is SKIPPED"),
    }
    let _ = TEST_ENV.set(nats.iter().map(|url| ("TEST_NATS_URL", url.clone())).collect());
    stage("tools: chromium, chromedriver", ensure_chromium)?;
    let server = build(false)?;
    check_wasm_deps()?;
    let nextest = output(cargo().args(["nextest", "--version"])).is_some();
    let runner = if nextest { "cargo nextest" } else { "cargo test" };
    stage(&format!("test: {runner} (unit, database, server functions, browser)"), || {
        let mut cmd = cargo();
        if nextest {
            // Per-test timeouts: see .config/nextest.toml.
            cmd.args(["nextest", "run", "--no-fail-fast"]);
        } else {
            cmd.args(["test", "--no-fail-fast"]);
        }
        cmd.env("CHATALOT_SERVER_BIN", &server).env("CHATALOT_SITE_DIR", site_dir(false));
        status_within(&mut cmd, std::time::Duration::from_secs(TEST_TIMEOUT_SECS))
    })?;
    stage("test: crypto core as WASM in headless Chromium", || {
        status_within(&mut browser_crypto_tests("dev", "::tests::")?, std::time::Duration::from_secs(TEST_TIMEOUT_SECS))
    })?;
    image::build_and_check(&server, &site_dir(false))?;
    stage("test: compose.yaml through podman-compose config", image::compose_config)?;
    desktop::desktop(false, Some(&server))?;
    run_fuzz_targets(FUZZ_BRIEFLY_SECS, FUZZ_TARGETS)?;
    println!("==> all tests passed in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The crypto core's wasm-bindgen tests in headless Chromium: `filter` picks them by path.
fn browser_crypto_tests(profile: &str, filter: &str) -> Result<Command> {
    let runner = ensure_wasm_bindgen()?.with_file_name("wasm-bindgen-test-runner");
    let chromedriver = which("chromedriver").ok_or("chromedriver is not on PATH")?;
    let mut cmd = cargo();
    cmd.args(["test", "-p", "app", "--lib", "--target", "wasm32-unknown-unknown", "--features", "hydrate"])
        .args(["--profile", profile, "--", filter])
        .env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER", runner)
        .env("CHROMEDRIVER", chromedriver)
        .env("WASM_BINDGEN_TEST_TIMEOUT", "300");
    Ok(cmd)
}

/// The gateway load generator against the release server, the browser figures (first load on a
/// slow phone, felt latency: `end2end/benches/browser.rs`) against the release server and site, then
/// the crypto figures (release WASM in headless Chromium); prints figures, never fails on time.
/// `--crypto-only` and `--browser-only` run just that part.
fn bench(args: &[String]) -> Result {
    let crypto = || {
        stage("bench: crypto in headless Chromium (release WASM)", || {
            status(browser_crypto_tests("wasm-release", "figures::")?.arg("--nocapture"))
        })
    };
    if args.iter().any(|a| a == "--crypto-only") {
        return crypto();
    }
    if args.iter().any(|a| a == "--browser-only") {
        return browser_bench();
    }
    stage("build: release server and bench", || {
        status(cargo().args(["build", "--release", "-p", "server", "-p", "bench", "--bins"]))
    })?;
    let dir = target_dir().join("release");
    stage("bench: gateway", || {
        status(Command::new(dir.join("bench")).args(args).env("CHATALOT_SERVER_BIN", dir.join("chatalot-server")))
    })?;
    browser_bench()?;
    crypto()
}

/// The browser figures against the release server and its site (built first).
fn browser_bench() -> Result {
    stage("tools: chromium, chromedriver", ensure_chromium)?;
    let server = build(true)?;
    stage("bench: first load and felt latency in headless Chromium", || {
        status(
            cargo()
                .args(["bench", "-p", "end2end", "--bench", "browser"])
                .env("CHATALOT_SERVER_BIN", &server)
                .env("CHATALOT_SITE_DIR", site_dir(true)),
        )
    })
}

/// The fuzz targets in `fuzz/fuzz_targets`: every decoder of untrusted input.
const FUZZ_TARGETS: &[&str] = &["gateway_frame", "server_fn_args", "crypto_envelopes"];
/// How long `cargo xtask test` runs each fuzz target.
const FUZZ_BRIEFLY_SECS: u64 = 15;
/// libFuzzer's coverage instrumentation, as cargo-fuzz passes it (all stable flags), but without
/// `--cfg fuzzing`: under it vodozemac skips its MAC and signature checks.
const FUZZ_RUSTFLAGS: &str = "-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
    -Cllvm-args=-sanitizer-coverage-trace-compares -Cllvm-args=-sanitizer-coverage-stack-depth";

/// `cargo xtask fuzz [SECS] [TARGET…]`: every target (or those named) for SECS seconds each.
fn fuzz(args: &[String]) -> Result {
    let secs = args.iter().find_map(|a| a.parse::<u64>().ok()).unwrap_or(600);
    let named: Vec<&str> = args.iter().filter(|a| a.parse::<u64>().is_err()).map(String::as_str).collect();
    if let Some(unknown) = named.iter().find(|n| !FUZZ_TARGETS.contains(n)) {
        return Err(format!("no fuzz target {unknown:?}; there are {}", FUZZ_TARGETS.join(", ")));
    }
    let targets: Vec<&str> = FUZZ_TARGETS.iter().copied().filter(|t| named.is_empty() || named.contains(t)).collect();
    run_fuzz_targets(secs, &targets)
}

/// Builds the fuzz targets with coverage (in their own target directory: the flags differ) and
/// runs each on its corpus (kept under the target directory, seeded from `fuzz/seeds/<target>`).
/// A crash, a panic or an input that takes over 10 s fails, with the input saved.
fn run_fuzz_targets(secs: u64, targets: &[&str]) -> Result {
    let dir = target_dir().join("fuzz");
    let host = output(Command::new("rustc").arg("-vV"))
        .and_then(|v| v.lines().find_map(|l| l.strip_prefix("host: ").map(str::to_owned)))
        .ok_or("cannot ask rustc for the host target")?;
    stage("fuzz: build the targets with coverage instrumentation", || {
        // With an explicit --target, the flags skip build scripts and proc macros.
        let flags = FUZZ_RUSTFLAGS.split_whitespace().collect::<Vec<_>>().join(" ");
        status(cargo().env("CARGO_TARGET_DIR", &dir).env("RUSTFLAGS", flags).args([
            "build",
            "-p",
            "fuzz",
            "--bins",
            "--profile",
            "fuzz",
            "--target",
            &host,
        ]))
    })?;
    let mut report = Vec::new();
    for target in targets {
        let (corpus, artifacts) = (dir.join("corpus").join(target), dir.join("artifacts").join(target));
        for d in [&corpus, &artifacts] {
            std::fs::create_dir_all(d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
        }
        let seeds = root().join("fuzz").join("seeds").join(target);
        stage(&format!("fuzz: {target} for {secs} s"), || {
            let mut cmd = Command::new(dir.join(&host).join("fuzz").join(target));
            cmd.arg(format!("-max_total_time={secs}"))
                .args(["-print_final_stats=1", "-timeout=10", "-rss_limit_mb=2048"])
                .arg(format!("-artifact_prefix={}/", artifacts.display()))
                .arg(&corpus);
            if seeds.is_dir() {
                cmd.arg(&seeds);
            }
            let out = cmd.output().map_err(|e| format!("cannot run the fuzz target {target}: {e}"))?;
            let log = String::from_utf8_lossy(&out.stderr);
            let stat = |name: &str| {
                log.lines().find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned())).unwrap_or_default()
            };
            if !out.status.success() {
                let tail: Vec<&str> = log.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect();
                return Err(format!(
                    "{target} found a failing input (saved in {}):\n{}",
                    artifacts.display(),
                    tail.join("\n")
                ));
            }
            let inputs = std::fs::read_dir(&corpus).map(|d| d.count()).unwrap_or(0);
            report.push(format!(
                "{target}: {} executions in {secs} s, {inputs} inputs in the corpus, peak {} MB, no findings",
                stat("stat::number_of_executed_units:"),
                stat("stat::peak_rss_mb:"),
            ));
            Ok(())
        })?;
    }
    for line in report {
        println!("==> fuzz: {line}");
    }
    Ok(())
}

/// leptosfmt first, rustfmt second: rustfmt leaves `view!` bodies alone but may move the code
/// around them, and leptosfmt accepts what rustfmt makes of its output.
fn fmt() -> Result {
    let leptosfmt = ensure_leptosfmt()?;
    status(Command::new(leptosfmt).current_dir(root()).args(["--quiet", "--max-width", "120", "app/src"]))?;
    status(cargo().args(["fmt", "--all"]))?;
    status(cargo().current_dir(root().join("src-tauri")).args(["fmt", "--all"]))
}

fn lint() -> Result {
    stage("lint: cargo fmt --check", || {
        status(cargo().args(["fmt", "--all", "--", "--check"]))?;
        // The desktop app's workspace too (its clippy runs where WebKitGTK is installed: `cargo xtask desktop`).
        status(cargo().current_dir(root().join("src-tauri")).args(["fmt", "--all", "--", "--check"]))
    })?;
    stage("lint: leptosfmt --check (view! macros)", || {
        let leptosfmt = ensure_leptosfmt()?;
        let out = Command::new(leptosfmt)
            .current_dir(root())
            .args(["--check", "--max-width", "120", "app/src"])
            .output()
            .map_err(|e| format!("cannot run leptosfmt: {e}"))?;
        if out.status.success() {
            return Ok(());
        }
        // It prints its settings and every file; say only what is wrong.
        let said = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
        let wrong: Vec<&str> = said.lines().filter(|l| !l.starts_with('✅') && l.contains('/')).collect();
        Err(format!("view! macros are not formatted (run `cargo xtask fmt`):\n{}", wrong.join("\n")))
    })?;
    deny(true)?;
    stage("lint: cargo clippy (server)", || {
        status(cargo().args([
            "clippy",
            "--workspace",
            "--exclude",
            "frontend",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))
    })?;
    stage("lint: cargo clippy (browser)", || {
        ensure_wasm_target()?;
        status(cargo().args(["clippy", "-p", "frontend", "--target", "wasm32-unknown-unknown", "--", "-D", "warnings"]))
    })
}

#[cfg(test)]
mod tests {
    use super::strip_names;

    /// A custom section named `name` holding `body`.
    fn custom(name: &str, body: &[u8]) -> Vec<u8> {
        let mut content = vec![name.len() as u8];
        content.extend_from_slice(name.as_bytes());
        content.extend_from_slice(body);
        let mut section = vec![0, content.len() as u8];
        section.extend(content);
        section
    }

    #[test]
    fn chunks_lose_their_names_and_keep_everything_else() {
        let header = b"\0asm\x01\0\0\0".to_vec();
        // A type section with one `() -> ()` function type.
        let types = vec![1, 4, 1, 0x60, 0, 0];
        let kept = custom("target_features", b"+x");
        let wasm =
            [header.clone(), custom("name", &[1; 100]), types.clone(), kept.clone(), custom("producers", b"rustc")]
                .concat();
        assert_eq!(strip_names(&wasm), Some([header, types, kept].concat()));
        assert_eq!(strip_names(&wasm[..wasm.len() - 1]), None, "a cut section is refused");
        assert_eq!(strip_names(b"\0asm"), None);
    }
}
