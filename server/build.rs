//! Compiles the stylesheet: Tailwind-style utility classes found in `app/src` (by encre-css, pure
//! Rust, offline) followed by `style/main.css`. The result is embedded in the binary.

#![allow(clippy::expect_used)] // a build script reports failure by panicking

use std::{env, fs, path::Path};

fn main() {
    test_cfgs();
    // Read at run time, not baked in with `env!`: a build script compiled in another checkout
    // sharing this target directory would otherwise read that checkout's sources.
    let manifest_dir = env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR");
    let root = Path::new(&manifest_dir).join("..");
    let app_src = root.join("app/src");
    let main_css = root.join("style/main.css");
    // Relative to this package: two checkouts sharing one target directory (a clone run by CI on
    // a developer's machine) must each watch their own sources.
    println!("cargo:rerun-if-changed=../app/src");
    println!("cargo:rerun-if-changed=../style/main.css");

    let mut sources = String::new();
    collect(&app_src, &mut sources);
    let config = encre_css::Config::default(); // dark: follows prefers-color-scheme
    let utilities = encre_css::generate([sources.as_str()], &config);
    let extra = fs::read_to_string(&main_css).unwrap_or_default();
    let out = Path::new(&env::var("OUT_DIR").expect("OUT_DIR")).join("app.css");
    let css = format!("{utilities}\n{extra}");
    let mut hasher = std::hash::DefaultHasher::new();
    std::hash::Hash::hash(&css, &mut hasher);
    println!("cargo:rustc-env=CHATALOT_CSS_ETAG=\"{:016x}\"", std::hash::Hasher::finish(&hasher));
    compressed(&out.with_extension("css.br"), &out.with_extension("css.gz"), css.as_bytes());
    fs::write(out, css).expect("write app.css");
}

/// The stylesheet compressed once, at build time (brotli at its best quality, and gzip -9), for
/// browsers that take either: about a fifth of its size on the wire, at no cost per request.
fn compressed(br: &Path, gz: &Path, css: &[u8]) {
    use std::io::Write;
    let mut out = Vec::new();
    {
        let mut enc = brotli::CompressorWriter::new(&mut out, 64 * 1024, 11, 22);
        enc.write_all(css).expect("brotli");
    }
    fs::write(br, out).expect("write app.css.br");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(css).expect("gzip");
    fs::write(gz, enc.finish().expect("gzip")).expect("write app.css.gz");
}

fn collect(dir: &Path, out: &mut String) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push_str(&fs::read_to_string(&path).unwrap_or_default());
            out.push('\n');
        }
    }
}

/// Which services the integration tests may use, decided when they are compiled: a test that
/// needs PostgreSQL or NATS is compiled as ignored (reported as skipped, with the reason) when the
/// variable naming it is unset, and fails, not passes, when it is set but the service is down.
fn test_cfgs() {
    for (var, cfg) in [("TEST_DATABASE_URL", "chatalot_pg"), ("TEST_NATS_URL", "chatalot_nats")] {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        println!("cargo:rerun-if-env-changed={var}");
        if env::var(var).is_ok_and(|v| !v.trim().is_empty()) {
            println!("cargo:rustc-cfg={cfg}");
        }
    }
}
