//! The local model against sentence-transformers: the reference vectors in
//! `fixtures/minilm-reference.json` were made with sentence-transformers
//! 6.2.0 from the same weights (short, empty, whitespace-only, past the
//! 256-token limit, non-English, emoji). Every one must match with cosine
//! similarity of at least 0.999, alone and inside one mixed batch.
//!
//! The model is the one the set-up scripts unpack
//! (`LAKEHOUSE_MODELS_DIR`, default `~/.cache/lakehouse/models`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use lakehouse_ext_embed::{LOCAL_MODEL_DIR, LocalModel};

fn model_dir() -> PathBuf {
    std::env::var_os("LAKEHOUSE_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
                .join(".cache/lakehouse/models")
        })
        .join(LOCAL_MODEL_DIR)
}

fn reference() -> BTreeMap<String, Vec<f32>> {
    #[derive(serde::Deserialize)]
    struct Fixture {
        vectors: BTreeMap<String, Vec<f32>>,
    }
    let text = include_str!("fixtures/minilm-reference.json");
    serde_json::from_str::<Fixture>(text).unwrap().vectors
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

#[test]
fn vectors_match_sentence_transformers() {
    let model = LocalModel::load(&model_dir()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(model.dimensions(), 384);
    let reference = reference();
    assert_eq!(reference.len(), 22);
    let texts: Vec<String> = reference.keys().cloned().collect();
    let together = model.embed(&texts).unwrap();
    for (i, (text, expected)) in reference.iter().enumerate() {
        let alone = model.embed(std::slice::from_ref(text)).unwrap();
        let batched = &together[i * 384..(i + 1) * 384];
        for (how, got) in [("alone", alone.as_slice()), ("in a batch", batched)] {
            let similarity = cosine(got, expected);
            assert!(
                similarity >= 0.999,
                "{text:?} embedded {how}: cosine similarity {similarity} to sentence-transformers"
            );
            let norm = got.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-4, "{text:?} {how}: norm {norm}");
        }
    }
}

#[test]
fn a_missing_model_names_the_set_up_command() {
    let e = LocalModel::load(std::path::Path::new("/nonexistent/model")).unwrap_err();
    let message = e.to_string();
    assert!(
        message.contains("bootstrap.sh") && message.contains("/nonexistent/model"),
        "{message}"
    );
}
