//! Whatever the input, `verify` never panics and gives one verdict per share line.

mod common;
use common::*;
use proptest::prelude::*;

fn lines() -> Vec<String> {
    let mut v = vec![genesis_job("g", true).to_string()];
    for i in 0..4 {
        v.push(genesis_share(i, "g").to_string());
    }
    v.push(
        serde_json::json!({"share": {"id": 9, "header": GENESIS_HEADER, "difficulty": 1}})
            .to_string(),
    );
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Valid lines with random bytes overwritten, inserted or removed.
    #[test]
    fn mutated_lines(edits in proptest::collection::vec((0usize..6, 0usize..400, any::<char>(), 0u8..3), 1..6)) {
        let mut ls = lines();
        for (line, pos, ch, op) in edits {
            let l = &mut ls[line];
            let chars: Vec<char> = l.chars().collect();
            let p = pos % (chars.len() + 1);
            let mut c = chars.clone();
            match op {
                0 if p < c.len() => c[p] = ch,
                1 => c.insert(p, ch),
                _ if p < c.len() => { c.remove(p); }
                _ => {}
            }
            *l = c.into_iter().collect();
        }
        let backend = sharecheck::backend::open("cpu", 1).unwrap();
        let vs = verify_lines(&ls, backend.as_ref(), 2);
        // Every line that still parses as a share (or fails to be a job) has a verdict;
        // at most one per line.
        prop_assert!(vs.len() <= ls.join("\n").lines().count());
        for v in &vs {
            prop_assert!(v["status"].is_string());
        }
    }

    /// Arbitrary JSON values in every share field.
    #[test]
    fn arbitrary_field_values(field in prop::sample::select(vec!["id", "job_id", "extranonce1", "extranonce2", "ntime", "nonce", "version_bits", "difficulty", "target", "header"]),
                              value in prop_oneof![
                                  Just(serde_json::Value::Null),
                                  any::<bool>().prop_map(serde_json::Value::from),
                                  any::<i64>().prop_map(serde_json::Value::from),
                                  any::<f64>().prop_map(serde_json::Value::from),
                                  ".{0,90}".prop_map(serde_json::Value::from),
                                  "[0-9a-fA-F]{0,170}".prop_map(serde_json::Value::from),
                              ]) {
        let mut share = genesis_share(1, "g");
        share["share"][field] = value;
        let vs = verify_values(&[genesis_job("g", true), share]);
        prop_assert_eq!(vs.len(), 1);
    }
}
