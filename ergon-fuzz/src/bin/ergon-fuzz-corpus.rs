//! Writes each target's seeds into `fuzz/corpus/<target>/` (cargo-fuzz's default corpus,
//! which libFuzzer then grows) and its dictionary into `fuzz/dict/<target>.dict`
//! (libFuzzer's `-dict=`). Run it once before a long run: see `fuzz/README.md`.

use std::fmt::Write as _;

use ergon_fuzz::{TARGETS, seeds};

/// A token as a libFuzzer dictionary entry: quoted, with `\xNN` for quotes, backslashes
/// and anything not printable ASCII.
fn entry(token: &str) -> String {
    let mut line = String::from("\"");
    for &byte in token.as_bytes() {
        if byte.is_ascii_graphic() && byte != b'"' && byte != b'\\' || byte == b' ' {
            line.push(char::from(byte));
        } else {
            write!(line, "\\x{byte:02x}").expect("writing to a String");
        }
    }
    line.push('"');
    line
}

fn main() -> std::io::Result<()> {
    let fuzz = seeds::repo_root().join("fuzz");
    for target in TARGETS {
        let corpus = fuzz.join("corpus").join(target.name);
        std::fs::create_dir_all(&corpus)?;
        let seeds = seeds::seeds(target.name);
        for (index, seed) in seeds.iter().enumerate() {
            std::fs::write(corpus.join(format!("seed-{index:03}")), seed)?;
        }
        let dict: String = target
            .dictionary
            .iter()
            .flat_map(|group| group.iter())
            .map(|token| entry(token) + "\n")
            .collect();
        std::fs::create_dir_all(fuzz.join("dict"))?;
        std::fs::write(
            fuzz.join("dict").join(format!("{}.dict", target.name)),
            dict,
        )?;
        println!(
            "{}: {} seeds in {}",
            target.name,
            seeds.len(),
            corpus.display()
        );
    }
    Ok(())
}
