//! Where each target's inputs start: the repository's example configs and payloads, the
//! hand-written inputs in `fuzz/seeds/<target>/`, and the crashes kept in
//! `fuzz/regressions/<target>/`.

use std::path::{Path, PathBuf};

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("ergon-fuzz sits in the repository's root")
        .to_path_buf()
}

/// The files of `dir` ending in `.ext` (any file for `""`), by name; none when it is
/// missing.
fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.is_file() && path.to_string_lossy().ends_with(ext))
        .collect();
    files.sort();
    files
}

/// The examples' files ending in `.ext` (`examples/<name>/*.ext`), by path.
fn example_files(ext: &str) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(repo_root().join("examples"))
        .expect("the examples folder")
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .collect();
    dirs.sort();
    dirs.iter().flat_map(|dir| files(dir, ext)).collect()
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()))
}

/// The first lines of each example input.
fn example_lines(per_file: usize) -> Vec<Vec<u8>> {
    example_files(".jsonl")
        .iter()
        .map(|path| read(path))
        .flat_map(|text| {
            text.split_inclusive(|&b| b == b'\n')
                .take(per_file)
                .map(<[u8]>::to_vec)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The seeds of target `name`: from the examples (configs for `config`, payload lines for
/// `payload`, the first lines of each input, under a few option bytes, for `file_lines`)
/// and from `fuzz/seeds/<name>/`.
pub fn seeds(name: &str) -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = match name {
        "config" => example_files(".toml")
            .iter()
            .map(|path| read(path))
            .collect(),
        "payload" => example_lines(3)
            .into_iter()
            .map(|line| line.trim_ascii_end().to_vec())
            .collect(),
        "file_lines" => example_files(".jsonl")
            .iter()
            .zip([0x00, 0x13, 0x21, 0x3f].into_iter().cycle())
            .map(|(path, options)| {
                let text = read(path);
                let head = text.split_inclusive(|&b| b == b'\n').take(8).flatten();
                std::iter::once(options).chain(head.copied()).collect()
            })
            .collect(),
        _ => Vec::new(),
    };
    let own = repo_root().join("fuzz/seeds").join(name);
    seeds.extend(files(&own, "").iter().map(|path| read(path)));
    seeds
}

/// The inputs kept in `fuzz/regressions/<name>/`, with their paths.
pub fn regressions(name: &str) -> Vec<(PathBuf, Vec<u8>)> {
    files(&repo_root().join("fuzz/regressions").join(name), "")
        .into_iter()
        .map(|path| {
            let bytes = read(&path);
            (path, bytes)
        })
        .collect()
}
