//! docs/wire-format.md's worked example is the code's output, byte for byte.

#[test]
fn worked_example_matches_the_code() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/wire-format.md"))
        .unwrap();
    for (what, bytes) in sharecheck::wire::example::messages() {
        let block = format!(
            "{what} ({} bytes):\n\n```text\n{}\n```",
            bytes.len(),
            sharecheck::wire::example::hex_dump(&bytes)
        );
        assert!(
            doc.contains(&block),
            "docs/wire-format.md lacks the current {what}:\n{block}"
        );
    }
}
