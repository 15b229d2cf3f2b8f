//! Property tests (proptest): every parser of host output (`parse::every::PARSERS`) takes
//! arbitrary bytes, as a hostile or broken host may print them, without a panic: random bytes,
//! lines built from the tokens real output is made of, numbers out of every range, and a
//! million lines. Speed is the bench's business (`benches/parsers.rs`), not asserted here.

use proptest::prelude::*;

use crate::parse::every::PARSERS;

fn all_parsers(text: &str) {
    for (name, parse) in PARSERS {
        let result = std::panic::catch_unwind(|| parse(text));
        assert!(result.is_ok(), "{name} panicked on {text:?}");
    }
}

/// Pieces of real output and of its edge cases, joined into lines.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("Inst ".to_owned()),
        Just("Conf ".to_owned()),
        Just("(".to_owned()),
        Just(")".to_owned()),
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just("\t".to_owned()),
        Just(" ".to_owned()),
        Just("ii ".to_owned()),
        Just("noarch".to_owned()),
        Just(".x86_64".to_owned()),
        Just("-1.0-1".to_owned()),
        Just(":".to_owned()),
        Just("=".to_owned()),
        Just("\"".to_owned()),
        Just("==> ".to_owned()),
        Just(" <==".to_owned()),
        Just("@@tendhost ".to_owned()),
        Just("{\"".to_owned()),
        Just("}".to_owned()),
        Just("1e300".to_owned()),
        Just("-1".to_owned()),
        Just("NaN".to_owned()),
        Just("18446744073709551615".to_owned()),
        Just("99999999999999999999999".to_owned()),
        Just("E: Could not get lock ".to_owned()),
        Just("Error: ".to_owned()),
        Just("Obsoleting Packages".to_owned()),
        Just("@@proc ".to_owned()),
        Just("map ".to_owned()),
        Just(" r-xp ".to_owned()),
        Just(" (deleted)".to_owned()),
        Just("NEEDRESTART-SVC: ".to_owned()),
        "[a-z0-9.+~-]{0,12}",
        any::<u64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|x| x.to_string()),
        "\\PC{0,4}",
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::collection::vec(token(), 0..12).prop_map(|line| line.concat()),
        0..24,
    )
    .prop_map(|lines| lines.join("\n"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        all_parsers(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn output_shaped_text_never_panics(text in text()) {
        all_parsers(&text);
    }
}

#[test]
fn a_million_lines_and_one_huge_line_end() {
    let lines = "ii \tpkg\tamd64\t1.0-1\nInst pkg [1.0] (1.1 repo [amd64])\n".repeat(500_000);
    all_parsers(&lines);
    let huge = "x".repeat(8 << 20);
    all_parsers(&huge);
}
