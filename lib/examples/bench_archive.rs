//! Benchmark driver (bench/run.sh P1): write a goshim-style `tar.bz2` of the files listed in
//! LIST (paths relative to BASE, one per line) with imgforge's archive writer, the way the
//! `archives/goshim.tar.bz2` step does.
//!
//! Usage: `bench_archive BASE LIST OUT [THREADS]` (THREADS 0 = one per core; `single` = the
//! single-threaded `bzip2` crate encoder).

use imgforge::archive::{
    bzip2_encoder, finish_bzip2, finish_parallel_bzip2, parallel_bzip2_encoder,
    write_file_list_archive, ArchiveEntry, ArchiveOptions,
};
use std::io::BufWriter;
use std::path::PathBuf;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: bench_archive BASE LIST OUT [THREADS|single]");
        std::process::exit(2);
    }
    let base = PathBuf::from(&args[1]);
    let list = std::fs::read_to_string(&args[2]).expect("read LIST");
    let entries: Vec<ArchiveEntry> = list
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| ArchiveEntry {
            source: base.join(l),
            name: l.to_string(),
        })
        .collect();
    let out = BufWriter::new(std::fs::File::create(&args[3]).expect("create OUT"));
    let opts = ArchiveOptions { mtime: 0 };
    match args.get(4).map(String::as_str) {
        Some("single") => {
            let mut enc = bzip2_encoder(out);
            write_file_list_archive(&entries, &mut enc, &opts).expect("archive");
            finish_bzip2(enc).expect("finish");
        }
        t => {
            let threads = t.map(|t| t.parse().expect("THREADS")).unwrap_or(0);
            let mut enc = parallel_bzip2_encoder(out, threads);
            write_file_list_archive(&entries, &mut enc, &opts).expect("archive");
            finish_parallel_bzip2(enc).expect("finish");
        }
    }
}
