//! Writes `crates/seal/tests/vectors.json`:
//! `cargo run -p once-seal --example make_vectors`. Then copy the changed values into the
//! "Test vectors" section of docs/encryption.md; `tests/vectors.rs` fails until both agree.

#[path = "../tests/support/vectors.rs"]
mod vectors;

fn main() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors.json");
    let text = serde_json::to_string_pretty(&vectors::compute()).expect("JSON values");
    std::fs::write(path, format!("{text}\n")).expect("write tests/vectors.json");
    println!("wrote {path}");
}
