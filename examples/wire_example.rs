//! Prints the worked example of docs/wire-format.md: the genesis block as a job message, a
//! stratum share batch, and the verdict batch it gets. `cargo run --example wire_example`.

fn main() {
    for (title, bytes) in sharecheck::wire::example::messages() {
        println!("{title} ({} bytes):\n", bytes.len());
        println!("{}\n", sharecheck::wire::example::hex_dump(&bytes));
    }
}
