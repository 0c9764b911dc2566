//! The parts of docs/ generated from the code: the DoAction reference in
//! docs/flight-sql.md comes from the action registry of a real server
//! core, the settings table of docs/operations.md from the declaration of
//! the settings. A change that is not in the docs fails here;
//! `LAKEHOUSE_UPDATE_DOCS=1 cargo test -p lakehouse-server --test
//! generated_docs` writes the section anew.

use std::path::PathBuf;

use lakehouse_server::config::{ServeArgs, Settings};
use lakehouse_server::server::Core;

/// Checks (or, with `LAKEHOUSE_UPDATE_DOCS`, rewrites) the text between
/// `<!-- NAME:begin -->` and `<!-- NAME:end -->` in `doc`.
fn check_section(doc: &str, name: &str, generated: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs")
        .join(doc);
    let text = std::fs::read_to_string(&path).unwrap();
    let begin =
        format!("<!-- {name}:begin (generated; see server/app/tests/generated_docs.rs) -->\n");
    let end = format!("<!-- {name}:end -->");
    let (before, rest) = text
        .split_once(&begin)
        .unwrap_or_else(|| panic!("{} has no line {begin:?}", path.display()));
    let (current, after) = rest
        .split_once(&end)
        .unwrap_or_else(|| panic!("{} has no line {end:?}", path.display()));
    if std::env::var_os("LAKEHOUSE_UPDATE_DOCS").is_some() {
        std::fs::write(&path, format!("{before}{begin}{generated}{end}{after}")).unwrap();
        return;
    }
    assert_eq!(
        current,
        generated,
        "the {name} section of {} is out of date: run `LAKEHOUSE_UPDATE_DOCS=1 cargo test -p lakehouse-server --test generated_docs`",
        path.display()
    );
}

#[tokio::test]
async fn the_action_reference_lists_every_action_of_the_registry() {
    let config = ServeArgs {
        config: None,
        settings: Settings {
            storage: Some("memory://".into()),
            enable_extensions: Some(vec!["example".into()]),
            ..Settings::default()
        },
    }
    .resolve()
    .unwrap();
    let core = Core::open(&config).await.unwrap();
    let reference = core.actions.reference();
    for name in [
        "create_table",
        "vacuum",
        "list_extensions",
        "embed",
        "create_index",
        "count_words",
    ] {
        assert!(
            reference.contains(&format!("| `{name}` |")),
            "{name} missing from\n{reference}"
        );
    }
    check_section("flight-sql.md", "actions", &reference);
}

#[test]
fn the_settings_table_lists_every_setting() {
    check_section("operations.md", "settings", &Settings::reference());
}
