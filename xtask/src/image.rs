//! The container image: `cargo xtask rootfs DIR` lays out the runtime root filesystem (the
//! Dockerfile's last stage copies it), and `cargo xtask image` builds the image from it with
//! podman, offline, then proves what it holds: it exports the image's filesystem and starts the
//! server from it in a chroot, as the image's user, with the image's environment and entrypoint,
//! and asks `/healthz`, a page, an asset and the image's own HEALTHCHECK command. (Running
//! containers does not work on the machines this project is built on; building images does.)

use super::{Result, output, root, stage, status, target_dir};
use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

/// The unprivileged user the server runs as in the image (matches the Dockerfile's `USER`).
pub const UID: u32 = 10001;
const TAG: &str = "localhost/chatalot:dev";
const SERVER: &str = "usr/local/bin/chatalot-server";
const SITE: &str = "usr/share/chatalot/site";

/// Lays out the runtime root filesystem from a built server and site: `<out>/files/` is the image's
/// root, `<out>/volume/` the empty `/data` (copied separately, to belong to the server's user).
pub fn rootfs(server: &Path, site: &Path, out: &Path) -> Result {
    if out.exists() {
        std::fs::remove_dir_all(out).map_err(|e| format!("cannot clear {}: {e}", out.display()))?;
    }
    std::fs::create_dir_all(out.join("volume")).map_err(|e| format!("{}: {e}", out.display()))?;
    let dir = &out.join("files");
    let put = |from: &Path, to: &str| -> Result {
        let dest = dir.join(to.trim_start_matches('/'));
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        // Through symlinks: the file itself, under the name the binary asks for.
        std::fs::copy(from, &dest).map(|_| ()).map_err(|e| format!("cannot copy {}: {e}", from.display()))
    };
    put(server, SERVER)?;
    super::copy_dir(site, &dir.join(SITE))?;
    // The C libraries the binary links, where the dynamic loader will look for them.
    let ldd = output(Command::new("ldd").arg(server)).ok_or("ldd failed (Debian: libc-bin)")?;
    let mut libs = 0;
    for line in ldd.lines() {
        let path = match line.split_once("=>") {
            Some((_, right)) => right.split_whitespace().next(),
            None => line.split_whitespace().next().filter(|p| p.starts_with('/')),
        };
        if let Some(path) = path.filter(|p| p.starts_with('/')) {
            put(Path::new(path), path)?;
            libs += 1;
        }
    }
    if libs == 0 {
        return Err(format!("ldd found no libraries for {}:\n{ldd}", server.display()));
    }
    let certs = Path::new("/etc/ssl/certs/ca-certificates.crt");
    if !certs.is_file() {
        return Err("CA certificates are missing: install ca-certificates".into());
    }
    put(certs, "/etc/ssl/certs/ca-certificates.crt")?;
    let write = |to: &str, text: String| {
        let dest = dir.join(to);
        std::fs::create_dir_all(dest.parent().unwrap_or(dir)).map_err(|e| e.to_string())?;
        std::fs::write(&dest, text).map_err(|e| format!("{}: {e}", dest.display()))
    };
    write(
        "etc/passwd",
        format!("root:x:0:0:root:/root:/sbin/nologin\nchatalot:x:{UID}:{UID}:Chatalot:/data:/sbin/nologin\n"),
    )?;
    write("etc/group", format!("root:x:0:\nchatalot:x:{UID}:\n"))?;
    write("etc/nsswitch.conf", "hosts: files dns\n".into())?;
    println!("    root filesystem in {}: server, site, {libs} libraries, CA certificates, user {UID}", out.display());
    Ok(())
}

/// `cargo xtask image [--dev]`: builds the server and site, then the image from them; checks
/// compose.yaml.
pub fn image(release: bool) -> Result {
    let server = super::build(release)?;
    build_and_check(&server, &super::site_dir(release))?;
    stage("image: compose.yaml through podman-compose config", compose_config)
}

/// The image from an already built server and site, then the smoke run.
pub fn build_and_check(server: &Path, site: &Path) -> Result {
    ensure_podman()?;
    let work = target_dir().join("image");
    let context = work.join("context");
    stage("image: root filesystem", || rootfs(server, site, &context.join("rootfs")))?;
    stage("image: podman build (runtime stage from the files above)", || {
        let version = env!("CARGO_PKG_VERSION");
        let git =
            |args: &[&str]| output(Command::new("git").current_dir(root()).args(args)).map(|r| r.trim().to_owned());
        let revision = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
        let source = git(&["remote", "get-url", "origin"]).unwrap_or_else(|| "a local checkout".into());
        let started = Instant::now();
        status(
            Command::new("podman")
                // Docker's image format: OCI images have no HEALTHCHECK.
                .args(["build", "--quiet", "--format", "docker", "--build-arg", "ROOTFS=prebuilt", "-t", TAG, "-f"])
                .arg(root().join("Dockerfile"))
                .arg(format!("--build-arg=VERSION={version}"))
                .arg(format!("--build-arg=REVISION={revision}"))
                .arg(format!("--build-arg=SOURCE_URL={source}"))
                .arg(&context)
                .stdout(Stdio::null()),
        )?;
        let size = output(Command::new("podman").args(["image", "inspect", TAG, "--format", "{{.Size}}"]))
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(0);
        println!("    {TAG}: {:.1} MB, built in {:.1} s", size as f64 / 1e6, started.elapsed().as_secs_f64());
        Ok(())
    })?;
    let exported = work.join("exported");
    stage("image: export its filesystem", || export(&exported))?;
    stage("image: smoke run from the exported filesystem (chroot, image user and entrypoint)", || {
        if !super::is_root() {
            println!(
                "    SKIPPED: the smoke run chroots into the image, which needs root; run this as root to check it"
            );
            return Ok(());
        }
        smoke(&exported)
    })
}

/// Podman from Debian's packages (building images works here; running containers does not).
fn ensure_podman() -> Result {
    if super::which("podman").is_none() {
        super::apt_install(&["podman"])?;
    }
    Ok(())
}

/// What the image says about itself, as `podman image inspect` reports it.
struct ImageConfig {
    user: String,
    env: Vec<(String, String)>,
    entrypoint: Vec<String>,
    healthcheck: Vec<String>,
    labels: String,
}

fn inspect() -> Result<ImageConfig> {
    let field = |format: &str| {
        output(Command::new("podman").args(["image", "inspect", TAG, "--format", format]))
            .map(|s| s.trim().to_owned())
            .ok_or_else(|| format!("podman image inspect {format} failed"))
    };
    // Go templates: one item per line.
    let lines = |format: &str| -> Result<Vec<String>> {
        Ok(field(&format!("{{{{range {format}}}}}{{{{.}}}}\n{{{{end}}}}"))?.lines().map(str::to_owned).collect())
    };
    Ok(ImageConfig {
        user: field("{{.Config.User}}")?,
        env: lines(".Config.Env")?
            .iter()
            .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
            .collect(),
        entrypoint: lines(".Config.Entrypoint")?,
        healthcheck: lines(".Config.Healthcheck.Test")?,
        labels: field("{{json .Config.Labels}}")?,
    })
}

fn export(into: &Path) -> Result {
    if into.exists() {
        std::fs::remove_dir_all(into).map_err(|e| format!("cannot clear {}: {e}", into.display()))?;
    }
    std::fs::create_dir_all(into).map_err(|e| e.to_string())?;
    let id = output(Command::new("podman").args(["create", TAG])).ok_or("podman create failed")?;
    let id = id.trim();
    let exported = (|| {
        let mut podman = Command::new("podman")
            .args(["export", id])
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("podman export: {e}"))?;
        let stdout = podman.stdout.take().ok_or("podman export: no output")?;
        status(Command::new("tar").arg("-x").arg("-C").arg(into).stdin(stdout))?;
        let st = podman.wait().map_err(|e| e.to_string())?;
        if st.success() { Ok(()) } else { Err(format!("podman export failed ({st})")) }
    })();
    let _ = Command::new("podman").args(["rm", id]).stdout(Stdio::null()).status();
    exported
}

/// Starts the exported image the way a container engine would (its user, environment, working
/// directory `/`, entrypoint) in a chroot, with only /data writable by that user.
fn smoke(rootfs: &Path) -> Result {
    let image = inspect()?;
    println!("    user {}, entrypoint {:?}, healthcheck {:?}", image.user, image.entrypoint, image.healthcheck);
    println!("    labels {}", image.labels);
    if image.user != format!("{UID}:{UID}") {
        return Err(format!("the image runs as {:?}, not the unprivileged user {UID}", image.user));
    }
    for label in ["org.opencontainers.image.version", "org.opencontainers.image.source"] {
        if !image.labels.contains(label) {
            return Err(format!("the image has no label {label}"));
        }
    }
    let data = rootfs.join("data");
    let owner = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&data).map_err(|e| e.to_string())?);
    if owner != UID {
        return Err(format!("/data belongs to uid {owner}, not {UID}: the server could not write its volume"));
    }
    // Everything else is root's and not writable by the server's user: a read-only root.
    let writable = output(Command::new("find").arg(rootfs).args(["-path"]).arg(&data).args([
        "-prune",
        "-o",
        "(",
        "-perm",
        "-o+w",
        "-o",
        "-user",
        &UID.to_string(),
        ")",
        "-print",
    ]))
    .unwrap_or_default();
    let writable: Vec<&str> = writable.lines().filter(|l| !l.trim().is_empty()).collect();
    if !writable.is_empty() {
        return Err(format!("outside /data, the server's user could write to: {writable:?}"));
    }
    let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
    let chroot = |args: &[String]| {
        let mut cmd = Command::new("chroot");
        cmd.arg(format!("--userspec={UID}:{UID}")).arg(rootfs).args(args).env_clear();
        for (k, v) in &image.env {
            cmd.env(k, v);
        }
        // The one thing a deployment sets differently here: the port (the host's network is shared).
        cmd.env("LISTEN_ADDR", format!("0.0.0.0:{port}")).env("REGISTRATION_MODE", "open");
        cmd
    };
    let started = Instant::now();
    let mut server = chroot(&image.entrypoint)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot chroot into {} (needs root): {e}", rootfs.display()))?;
    let result = (|| {
        let health = loop {
            if let Some(reply) = get(port, "/healthz") {
                break reply;
            }
            if let Ok(Some(st)) = server.try_wait() {
                return Err(format!("the server in the image exited ({st}) before answering"));
            }
            if started.elapsed() > Duration::from_secs(30) {
                return Err("the server in the image did not answer /healthz within 30 s".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        println!(
            "    GET /healthz after {:.2} s: {}",
            started.elapsed().as_secs_f64(),
            health.lines().next().unwrap_or("")
        );
        println!("    {}", health.rsplit("\r\n").next().unwrap_or(""));
        for (path, want) in [("/healthz", "\"database\":\"ok\""), ("/register", "<html"), ("/pkg/chatalot.js", "")] {
            let reply = get(port, path).ok_or_else(|| format!("GET {path}: no answer"))?;
            let status = reply.lines().next().unwrap_or("");
            if !status.contains(" 200") || !reply.contains(want) {
                return Err(format!("GET {path} from the image: {status}"));
            }
            println!("    GET {path}: {status}");
        }
        let check = chroot(&image.healthcheck[1..]).output().map_err(|e| e.to_string())?;
        if image.healthcheck.first().map(String::as_str) != Some("CMD") || !check.status.success() {
            return Err(format!(
                "the image's HEALTHCHECK {:?} failed: {}",
                image.healthcheck,
                String::from_utf8_lossy(&check.stderr)
            ));
        }
        println!("    HEALTHCHECK {:?}: exit 0", &image.healthcheck[1..]);
        let written = std::fs::read_dir(&data).map_err(|e| e.to_string())?;
        let mut names: Vec<String> = written.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        println!("    /data now holds {names:?}");
        if !names.iter().any(|n| n == "chatalot.db") {
            return Err("the server wrote no database into /data".into());
        }
        Ok(())
    })();
    // SIGTERM, as the image's STOPSIGNAL says: a graceful stop, exit 0.
    let _ = Command::new("kill").args(["-TERM", &server.id().to_string()]).status();
    let stopped = Instant::now();
    let exit = loop {
        if let Ok(Some(st)) = server.try_wait() {
            break Some(st);
        }
        if stopped.elapsed() > Duration::from_secs(30) {
            let _ = server.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut log = String::new();
    if let Some(mut err) = server.stderr.take() {
        let _ = err.read_to_string(&mut log);
    }
    if let Some(mut out) = server.stdout.take() {
        let _ = out.read_to_string(&mut log);
    }
    result.map_err(|e| format!("{e}\nserver log:\n{log}"))?;
    match exit {
        Some(st) if st.success() => {
            println!("    SIGTERM: stopped gracefully in {:.2} s", stopped.elapsed().as_secs_f64());
            Ok(())
        }
        other => Err(format!("the server did not stop cleanly on SIGTERM ({other:?})\n{log}")),
    }
}

/// A plain HTTP/1.0 GET on the loopback address: the whole reply.
fn get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes()).ok()?;
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).ok()?;
    Some(String::from_utf8_lossy(&reply).into_owned())
}

/// `compose.yaml` as a compose implementation reads it: podman-compose (pinned, from PyPI, in a
/// virtual environment under the tools directory) resolves it with `config`, which fails on a
/// file it cannot parse or interpolate. The tests check what it must say (server/tests).
pub fn compose_config() -> Result {
    let venv = super::tools_dir().join("podman-compose-1.5.0");
    let bin = venv.join("bin").join("podman-compose");
    if !bin.is_file() {
        status(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
        status(Command::new(venv.join("bin").join("pip")).args(["install", "--quiet", "podman-compose==1.5.0"]))?;
    }
    // A throwaway copy with a secret file in place, so the check needs nothing from the checkout.
    let dir = target_dir().join("image").join("compose-check");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("secrets")).map_err(|e| e.to_string())?;
    std::fs::copy(root().join("compose.yaml"), dir.join("compose.yaml")).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("secrets").join("db_password"), "not-a-real-password\n").map_err(|e| e.to_string())?;
    for profile in [None, Some("cluster")] {
        let mut cmd = Command::new(&bin);
        cmd.current_dir(&dir).args(["-f", "compose.yaml"]);
        if let Some(p) = profile {
            cmd.args(["--profile", p]);
        }
        let out = cmd.arg("config").output().map_err(|e| format!("cannot run podman-compose: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || !text.contains("services:") {
            return Err(format!(
                "podman-compose config rejected compose.yaml ({}):\n{}{}",
                profile.unwrap_or("default profile"),
                text,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        // The services, as it resolved them (two-space keys under the top-level `services:`).
        let mut services = Vec::new();
        let mut inside = false;
        for line in text.lines() {
            if !line.starts_with(' ') {
                inside = line == "services:";
            } else if inside && !line.starts_with("   ") && line.ends_with(':') {
                services.push(line.trim().trim_end_matches(':'));
            }
        }
        println!("    {}: services {}", profile.unwrap_or("default profile"), services.join(", "));
    }
    Ok(())
}
