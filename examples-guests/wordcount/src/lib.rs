//! `wordcount`: word frequencies, most frequent first (WIT-first, wit-bindgen).

use std::collections::BTreeMap;

wit_bindgen::generate!({ world: "cue:examples/wordcount", path: ["../../wit", "../wit"], generate_all });

use cue::job::host::{Level, log};

struct WordCounter;

impl Guest for WordCounter {
    fn count_words(text: String) -> Vec<WordCount> {
        let mut counts: BTreeMap<String, u32> = BTreeMap::new();
        for word in text.split_whitespace() {
            *counts.entry(word.to_lowercase()).or_default() += 1;
        }
        log(Level::Info, &format!("{} distinct words", counts.len()));
        let mut words: Vec<WordCount> =
            counts.into_iter().map(|(word, count)| WordCount { word, count }).collect();
        // BTreeMap order is alphabetical; a stable sort by count keeps it for ties.
        words.sort_by(|a, b| b.count.cmp(&a.count));
        words
    }
}

export!(WordCounter);
