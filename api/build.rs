//! Builds the dashboard (`web/`, npm + Vite) and embeds `web/dist` into the binary.
//!
//! Generates `$OUT_DIR/dashboard_assets.rs`: a static table of
//! `(url path, content type, bytes)` read by `src/dashboard.rs`.
//! `EASTWEST_SKIP_WEB_BUILD=1` embeds an existing `web/dist` without running npm.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::{env, fs};

const WATCHED: [&str; 7] = [
    "src",
    "index.html",
    "package.json",
    "package-lock.json",
    "vite.config.ts",
    "tsconfig.json",
    "public",
];

fn main() {
    let manifest =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let web = manifest.join("..").join("web");
    let dist = web.join("dist");
    println!("cargo:rerun-if-env-changed=EASTWEST_SKIP_WEB_BUILD");
    println!("cargo:rerun-if-changed=build.rs");

    let skip = env::var("EASTWEST_SKIP_WEB_BUILD").is_ok_and(|v| v == "1" || v == "true");
    if skip {
        // Embed what is there; re-run when the dist content changes.
        println!("cargo:rerun-if-changed={}", dist.display());
    } else if web.join("package.json").exists() {
        for name in WATCHED {
            println!("cargo:rerun-if-changed={}", web.join(name).display());
        }
        build_web(&web);
    }

    let mut files = Vec::new();
    if dist.is_dir() {
        collect(&dist, &mut files);
    } else if !skip {
        panic!(
            "web/dist was not produced by `npm run build` in {}",
            web.display()
        );
    }
    files.sort();
    let mut table = String::from("pub static DASHBOARD_ASSETS: &[(&str, &str, &[u8])] = &[\n");
    for file in &files {
        let rel = file.strip_prefix(&dist).expect("file under dist");
        let url = format!("/{}", rel.to_string_lossy().replace('\\', "/"));
        let abs = fs::canonicalize(file).expect("canonical asset path");
        writeln!(
            table,
            "    ({:?}, {:?}, include_bytes!({:?})),",
            url,
            content_type(file),
            abs.to_string_lossy()
        )
        .expect("write to string");
    }
    table.push_str("];\n");
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::write(out.join("dashboard_assets.rs"), table).expect("write dashboard_assets.rs");
}

fn build_web(web: &Path) {
    let npm = if cfg!(windows) { "npm.cmd" } else { "npm" };
    if Command::new(npm).arg("--version").output().is_err() {
        panic!(
            "\n\neastwest: `npm` was not found on PATH. The dashboard in web/ is built with npm \
             (Node.js 20+). Install Node.js/npm, or set EASTWEST_SKIP_WEB_BUILD=1 to embed an \
             existing web/dist as is.\n\n"
        );
    }
    let installed_lock = web.join("node_modules").join(".package-lock.json");
    let needs_install = match (
        modified(&installed_lock),
        modified(&web.join("package-lock.json")),
    ) {
        (Some(installed), Some(lock)) => lock > installed,
        _ => true,
    };
    if needs_install {
        // `npm ci` refuses lockfiles that list rollup's per-platform optional packages
        // without entries of their own (what this registry mirror produces); `install`
        // still honours the pinned versions, and `--no-save` keeps the tree untouched.
        run(
            npm,
            &["install", "--no-audit", "--no-fund", "--no-save"],
            web,
        );
    }
    run(npm, &["run", "build"], web);
}

fn run(npm: &str, args: &[&str], dir: &Path) {
    let status = Command::new(npm)
        .args(args)
        .current_dir(dir)
        .status()
        .unwrap_or_else(|e| panic!("eastwest: could not run `npm {}`: {e}", args.join(" ")));
    if !status.success() {
        panic!(
            "\n\neastwest: `npm {}` failed in {} ({status}). Fix the dashboard build, or set \
             EASTWEST_SKIP_WEB_BUILD=1 to embed an existing web/dist.\n\n",
            args.join(" "),
            dir.display()
        );
    }
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, files);
        } else {
            files.push(path);
        }
    }
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}
