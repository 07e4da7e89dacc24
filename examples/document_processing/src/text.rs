//! The offline workers' text analysis: deterministic heuristics, no model. Markup is
//! stripped and whitespace normalized; a paragraph's language is the one whose stopwords
//! it uses most; a summary is the first sentences; topics are the most frequent words
//! that are not stopwords; sentiment counts the words of two lists.

use std::collections::HashMap;

/// The languages the heuristics know: code, then stopwords, positive words and negative
/// words, each list space-separated.
const LANGUAGES: [Language; 2] = [
    Language {
        code: "en",
        stopwords: "the and of to in is are was were that this with for it be by we our you \
                    they have has from at an or not but will its their which now all every \
                    each who more than when one after makes there",
        positive: "good great happy reliable smooth fast faster easy easier excellent love \
                   thank thanks pleased better best helped improved enjoy",
        negative: "bad poor slow late delay delayed broken angry disappointed problem \
                   problems fail failed worse worst crash cancelled unhappy",
    },
    Language {
        code: "fr",
        stopwords: "le la les de des du un une et est sont que qui dans pour pas sur avec ce \
                    cette il elle nous vous ils au aux par plus mais ou son sa ses leur été ont \
                    ne se chaque après sans tous leurs",
        positive: "bon bonne excellent excellente heureux content rapide fiable merci \
                   agréable réussi parfait mieux meilleur ravi ravis",
        negative: "mauvais mauvaise lent lente retard retards annulé annulés panne pannes \
                   problème problèmes déçu déçus colère pire échec inacceptable",
    },
];

/// A paragraph needs this many stopwords of a language to be counted as written in it.
const MIN_STOPWORDS: usize = 2;

/// Words shorter than this are never topics.
const MIN_TOPIC_LEN: usize = 4;

/// What the heuristics know of one language.
struct Language {
    code: &'static str,
    stopwords: &'static str,
    positive: &'static str,
    negative: &'static str,
}

impl Language {
    /// Whether `word` is one of `list`'s words.
    fn lists(list: &str, word: &str) -> bool {
        list.split_whitespace().any(|listed| listed == word)
    }

    /// The languages of `codes`.
    fn of(codes: &[String]) -> impl Iterator<Item = &'static Language> + '_ {
        LANGUAGES
            .iter()
            .filter(|language| codes.iter().any(|code| code == language.code))
    }
}

/// `raw` without markup (`<p>`, `<b>`, …), each paragraph (blocks separated by a blank
/// line) on one line with single spaces, paragraphs separated by one blank line.
pub fn normalize(raw: &str) -> String {
    let mut text = String::with_capacity(raw.len());
    let mut in_tag = false;
    for c in raw.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            _ if !in_tag => text.push(c),
            _ => {}
        }
    }
    paragraphs(&text).join("\n\n")
}

/// The non-empty paragraphs of `text`, whitespace collapsed.
pub fn paragraphs(text: &str) -> Vec<String> {
    text.replace("\r\n", "\n")
        .split("\n\n")
        .map(|block| block.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|paragraph| !paragraph.is_empty())
        .collect()
}

/// The lower-cased words of `text` (letters only: `l'usine` is `l` and `usine`).
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphabetic())
        .filter(|word| !word.is_empty())
        .map(str::to_lowercase)
}

/// The language code of `paragraph`: the language whose stopwords it uses most (at
/// least [`MIN_STOPWORDS`]; the first listed wins a tie), or none.
pub fn language_of(paragraph: &str) -> Option<&'static str> {
    let words: Vec<String> = words(paragraph).collect();
    let mut best: Option<(&'static str, usize)> = None;
    for language in &LANGUAGES {
        let hits = words
            .iter()
            .filter(|word| Language::lists(language.stopwords, word))
            .count();
        if hits >= MIN_STOPWORDS && best.is_none_or(|(_, most)| hits > most) {
            best = Some((language.code, hits));
        }
    }
    best.map(|(code, _)| code)
}

/// The text of each language of `text`, its paragraphs in document order, languages in
/// the order they first appear. Paragraphs of no known language are left out.
pub fn sections(text: &str) -> Vec<(&'static str, String)> {
    let mut sections: Vec<(&'static str, String)> = Vec::new();
    for paragraph in paragraphs(text) {
        let Some(code) = language_of(&paragraph) else {
            continue;
        };
        match sections.iter_mut().find(|(known, _)| *known == code) {
            Some((_, section)) => {
                section.push_str("\n\n");
                section.push_str(&paragraph);
            }
            None => sections.push((code, paragraph)),
        }
    }
    sections
}

/// The first `count` sentences of `text` (each ending in `.`, `!` or `?` before a space
/// or the end), whitespace collapsed; all of it when it has fewer.
pub fn first_sentences(text: &str, count: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut ends = flat
        .match_indices(['.', '!', '?'])
        .map(|(at, _)| at + 1)
        .filter(|&end| end == flat.len() || flat[end..].starts_with(' '));
    match ends.nth(count.saturating_sub(1)) {
        Some(end) => flat[..end].to_owned(),
        None => flat,
    }
}

/// The `count` most frequent words of `text` of at least [`MIN_TOPIC_LEN`] letters that
/// are no stopword of `languages`, most frequent first (a tie: the first seen first).
pub fn topics(text: &str, languages: &[String], count: usize) -> Vec<String> {
    let stop = |word: &str| Language::of(languages).any(|l| Language::lists(l.stopwords, word));
    let mut seen: Vec<(String, usize)> = Vec::new();
    let mut at: HashMap<String, usize> = HashMap::new();
    for word in words(text).filter(|w| w.chars().count() >= MIN_TOPIC_LEN && !stop(w)) {
        match at.get(&word) {
            Some(&index) => seen[index].1 += 1,
            None => {
                at.insert(word.clone(), seen.len());
                seen.push((word, 1));
            }
        }
    }
    // A stable sort keeps first-seen order among equal counts.
    seen.sort_by_key(|(_, count)| std::cmp::Reverse(*count));
    seen.into_iter().take(count).map(|(word, _)| word).collect()
}

/// How many words of `text` are in the positive and in the negative lists of
/// `languages`.
pub fn polarity(text: &str, languages: &[String]) -> (usize, usize) {
    let count = |word: &str, list: fn(&Language) -> &'static str| {
        Language::of(languages)
            .filter(|l| Language::lists(list(l), word))
            .count()
    };
    words(text).fold((0, 0), |(positive, negative), word| {
        (
            positive + count(&word, |l| l.positive),
            negative + count(&word, |l| l.negative),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_goes_and_paragraphs_stay() {
        let raw = "<p>One  <b>bold</b>\nline.</p>\n\n\n<p>Two.</p>";
        assert_eq!(normalize(raw), "One bold line.\n\nTwo.");
    }

    #[test]
    fn each_paragraph_has_its_language() {
        let text = "The cat is on the mat.\n\nLe chat est sur le tapis.\n\nXyz.";
        assert_eq!(language_of("The cat is on the mat."), Some("en"));
        let sections = sections(text);
        assert_eq!(
            sections,
            [
                ("en", "The cat is on the mat.".to_owned()),
                ("fr", "Le chat est sur le tapis.".to_owned())
            ]
        );
    }

    #[test]
    fn a_summary_is_the_first_sentences() {
        let text = "One is here. Two, at 3.5 points! Three? Four.";
        assert_eq!(first_sentences(text, 2), "One is here. Two, at 3.5 points!");
        assert_eq!(first_sentences("No stop at all", 2), "No stop at all");
        assert_eq!(first_sentences("Only. One", 3), "Only. One");
    }

    #[test]
    fn topics_are_frequent_words_without_stopwords() {
        let en = ["en".to_owned()];
        let text =
            "The journal and the runner. The runner reads every journal, then the runner stops.";
        assert_eq!(topics(text, &en, 2), ["runner", "journal"]);
    }

    #[test]
    fn polarity_counts_both_lists() {
        let fr = ["fr".to_owned()];
        assert_eq!(
            polarity("Merci, mais le train était en retard.", &fr),
            (1, 1)
        );
    }
}
