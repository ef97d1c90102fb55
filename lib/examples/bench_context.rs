//! Benchmark driver (bench/run.sh P4): build an image from the context directory DIR through
//! imgforge's engine (the context is streamed as an uncompressed tar while it is archived),
//! tag it REFERENCE, and print the image ID. Run under `/usr/bin/time -v` to read the peak RSS.
//!
//! Usage: `bench_context DIR REFERENCE`

use imgforge::engine::{BuildSpec, Engine};
use imgforge::{event::Silent, DockerEngine};
use std::collections::BTreeMap;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: bench_context DIR REFERENCE");
        std::process::exit(2);
    }
    let engine = DockerEngine::connect().await.expect("engine");
    let spec = BuildSpec {
        step: "bench/context".into(),
        context_dir: args[1].clone().into(),
        reference: args[2].clone(),
        labels: BTreeMap::new(),
        build_args: BTreeMap::new(),
        tree: None,
    };
    let id = engine
        .build(&spec, &Silent, &tokio_util::sync::CancellationToken::new())
        .await
        .expect("build");
    println!("{id}");
}
