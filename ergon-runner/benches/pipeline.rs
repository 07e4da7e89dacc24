//! The pipeline benchmark (being written).

fn main() {}
