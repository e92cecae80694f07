//! Every string the kiosk's screens translate (`@tr` in `ui/kiosk/app.slint`,
//! whose context is the enclosing component) has a translation in every
//! bundled language, with the same `{}` placeholders: a new string cannot
//! ship in English on a French kiosk unnoticed.

use std::collections::BTreeMap;
use std::path::Path;

/// The text of a double-quoted string starting at `text` (after the quote).
fn quoted(text: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => out.push(chars.next()?),
            c => out.push(c),
        }
    }
    None
}

/// `(context, msgid)` of every `@tr("...")`, the context being the component.
fn slint_strings(source: &str) -> Vec<(String, String)> {
    let mut component = String::new();
    let mut found = Vec::new();
    for line in source.lines() {
        let trimmed = line.trim_start();
        let declared = trimmed
            .strip_prefix("export component ")
            .or_else(|| trimmed.strip_prefix("component "));
        if let Some(rest) = declared {
            component = rest
                .split(|c: char| !c.is_alphanumeric() && c != '_' && c != '-')
                .next()
                .unwrap_or_default()
                .to_owned();
        }
        let mut rest = line;
        while let Some(at) = rest.find("@tr(\"") {
            rest = &rest[at + 5..];
            let text = quoted(rest).expect("a closed string after @tr(");
            found.push((component.clone(), text));
        }
    }
    found
}

/// `(msgctxt, msgid) -> msgstr` of a PO file (one line per field).
fn po_entries(source: &str) -> BTreeMap<(String, String), String> {
    let mut entries = BTreeMap::new();
    let (mut context, mut id) = (String::new(), None::<String>);
    for line in source.lines() {
        if let Some(rest) = line.strip_prefix("msgctxt \"") {
            context = quoted(rest).expect("msgctxt");
        } else if let Some(rest) = line.strip_prefix("msgid \"") {
            id = quoted(rest);
        } else if let Some(rest) = line.strip_prefix("msgstr \"") {
            if let Some(id) = id.take() {
                entries.insert((context.clone(), id), quoted(rest).expect("msgstr"));
            }
            context.clear();
        }
    }
    entries
}

#[test]
fn every_screen_string_is_translated_in_every_bundled_language() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ui/kiosk");
    let strings =
        slint_strings(&std::fs::read_to_string(root.join("app.slint")).expect("app.slint"));
    assert!(strings.len() > 40, "{} strings found", strings.len());
    let mut languages = 0;
    for entry in std::fs::read_dir(root.join("lang")).expect("lang folder") {
        let dir = entry.expect("entry").path();
        let po = dir.join("LC_MESSAGES/aisle-kiosk.po");
        let entries = po_entries(&std::fs::read_to_string(&po).expect("po file"));
        languages += 1;
        let mut missing = Vec::new();
        for (context, id) in &strings {
            match entries.get(&(context.clone(), id.clone())) {
                Some(text) if !text.is_empty() => assert_eq!(
                    text.matches("{}").count(),
                    id.matches("{}").count(),
                    "{}: the placeholders of {id:?} in {context}",
                    po.display()
                ),
                _ => missing.push(format!("{context}: {id:?}")),
            }
        }
        assert!(
            missing.is_empty(),
            "{} lacks:\n{}",
            po.display(),
            missing.join("\n")
        );
    }
    assert!(languages >= 1, "at least one language besides English");
}
