//! `wordcount`: word frequencies, most frequent first, written with the Cue SDK.

/// Word frequencies.
#[cue_sdk::jobs]
mod jobs {
    use std::collections::BTreeMap;

    /// A word and how often it occurs.
    #[derive(cue_sdk::Type)]
    pub struct WordCount {
        /// The word, lowercased.
        pub word: String,
        /// How many times it occurs.
        pub count: u32,
    }

    /// Splits on whitespace, lowercases, and returns each word with its count, most frequent
    /// first, ties in alphabetical order.
    pub fn count_words(text: String) -> Vec<WordCount> {
        let mut counts: BTreeMap<String, u32> = BTreeMap::new();
        for word in text.split_whitespace() {
            *counts.entry(word.to_lowercase()).or_default() += 1;
        }
        cue_sdk::info!("{} distinct words", counts.len());
        let mut words: Vec<WordCount> =
            counts.into_iter().map(|(word, count)| WordCount { word, count }).collect();
        // BTreeMap order is alphabetical; a stable sort by count keeps it for ties.
        words.sort_by_key(|w| std::cmp::Reverse(w.count));
        words
    }
}
