//! Finds the built-in specs and templates: every `payload-specs/*.toml` and
//! `dockerfiles/<name>/Dockerfile.in` of the repository (and of the Fabric 2.x/3.x line,
//! `payload-specs/v2/*.toml` and `dockerfiles/v2/<name>/Dockerfile.in`), embedded into the library
//! (`$OUT_DIR/builtin_specs.rs`), so adding an image is adding files, with no Rust edit.

use std::fmt::Write;
use std::path::{Path, PathBuf};

fn files(dir: &Path, f: impl Fn(&Path) -> Option<(String, PathBuf)>) -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .filter_map(|e| f(&e.path()))
        .collect();
    out.sort();
    out
}

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("..");
    let specs_dir = root.join("payload-specs");
    let templates_dir = root.join("dockerfiles");
    // a directory as rerun-if-changed: rerun when any file in it is added, removed or changed
    println!("cargo:rerun-if-changed={}", specs_dir.display());
    println!("cargo:rerun-if-changed={}", templates_dir.display());
    let specs = files(&specs_dir, |p| {
        if p.extension()? != "toml" {
            return None;
        }
        Some((
            p.file_name()?.to_string_lossy().to_string(),
            p.canonicalize().ok()?,
        ))
    });
    let template = |prefix: &'static str| {
        move |p: &Path| {
            let t = p.join("Dockerfile.in");
            if !t.is_file() {
                return None;
            }
            Some((
                format!("{prefix}{}", p.file_name()?.to_string_lossy()),
                t.canonicalize().ok()?,
            ))
        }
    };
    let mut templates = files(&templates_dir, template(""));
    // the Fabric 2.x/3.x line: `dockerfiles/v2/<name>`, named `v2/<name>` in specs
    templates.extend(files(&templates_dir.join("v2"), template("v2/")));
    let specs_v2 = files(&specs_dir.join("v2"), |p| {
        if p.extension()? != "toml" {
            return None;
        }
        Some((
            p.file_name()?.to_string_lossy().to_string(),
            p.canonicalize().ok()?,
        ))
    });
    println!("cargo:rerun-if-changed={}", specs_dir.join("v2").display());
    println!(
        "cargo:rerun-if-changed={}",
        templates_dir.join("v2").display()
    );
    for (_, t) in &templates {
        println!("cargo:rerun-if-changed={}", t.display());
    }
    let mut out = String::new();
    let list = |out: &mut String, name: &str, items: &[(String, PathBuf)]| {
        writeln!(out, "/// Built in: `(name, text)`, found by build.rs.").unwrap();
        writeln!(out, "const {name}: &[(&str, &str)] = &[").unwrap();
        for (n, p) in items {
            writeln!(
                out,
                "    ({n:?}, include_str!({:?})),",
                p.display().to_string()
            )
            .unwrap();
        }
        writeln!(out, "];").unwrap();
    };
    list(&mut out, "BUILTIN_SPECS", &specs);
    list(&mut out, "BUILTIN_SPECS_V2", &specs_v2);
    list(&mut out, "BUILTIN_TEMPLATES", &templates);
    let dest = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("builtin_specs.rs");
    std::fs::write(dest, out).unwrap();
}
