//! Rebuild when a migration changes: `sqlx::migrate!` embeds the files, but only nightly
//! compilers track them by themselves.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
