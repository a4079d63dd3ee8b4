//! Rebuilds the binary when a migration changes: `include_dir!` embeds `migrations/edge/`.
fn main() {
    println!("cargo:rerun-if-changed=../migrations/edge");
}
