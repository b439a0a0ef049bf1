//! The conformance suite every `TextEmbedder` passes (the local model now, Bedrock's
//! later): dimensions, normalisation, batching equals one by one, empty input refused,
//! long input truncated with a flag, and related texts closer than unrelated ones.

use super::{EmbedPurpose, TextEmbedder};
use crate::analysis::visual::cosine;
use crate::error::Error;

/// Runs every check; panics with what failed.
pub async fn text_embedder(embedder: &dyn TextEmbedder) {
    let texts: Vec<String> = [
        "A goal is scored and the crowd erupts.",
        "The striker shoots and the fans cheer loudly.",
        "Quarterly tax filing deadlines for small businesses.",
        "slow pan over a quiet lake at dawn",
    ]
    .map(String::from)
    .to_vec();
    let batch = embedder
        .embed(&texts, EmbedPurpose::Index)
        .await
        .expect("batch embeds");
    assert_eq!(batch.len(), texts.len());
    for (i, e) in batch.iter().enumerate() {
        assert_eq!(
            e.vector.len(),
            embedder.dimensions(),
            "text {i}: dimensions"
        );
        let norm = e.vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "text {i}: norm {norm}");
        assert!(!e.truncated, "text {i} is short");
    }
    for (i, text) in texts.iter().enumerate() {
        let single = embedder
            .embed(std::slice::from_ref(text), EmbedPurpose::Index)
            .await
            .expect("single embeds");
        let similarity = cosine(&single[0].vector, &batch[i].vector);
        assert!(
            similarity > 0.9999,
            "text {i}: batch and single differ (cosine {similarity})"
        );
    }
    let related = cosine(&batch[0].vector, &batch[1].vector);
    let unrelated = cosine(&batch[0].vector, &batch[2].vector);
    assert!(
        related > unrelated + 0.3,
        "related {related} vs unrelated {unrelated}"
    );

    let empty = embedder
        .embed(&["  ".to_string()], EmbedPurpose::Query)
        .await;
    assert!(
        matches!(empty, Err(Error::InvalidInput(ref m)) if m.contains("empty")),
        "{empty:?}"
    );
    assert!(embedder
        .embed(&[], EmbedPurpose::Query)
        .await
        .expect("no texts")
        .is_empty());

    let long = "the crowd cheers as the team scores again ".repeat(200);
    let long = embedder
        .embed(&[long], EmbedPurpose::Index)
        .await
        .expect("long text embeds");
    assert!(
        long[0].truncated,
        "a 1,600-word text is truncated and says so"
    );
    assert_eq!(long[0].vector.len(), embedder.dimensions());
}
