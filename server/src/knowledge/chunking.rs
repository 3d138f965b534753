//! Splitting a document into passages small enough to embed well: on Markdown headings first, then on
//! paragraphs, then (for a wall of text) on sentences and words. Short neighbouring sections share a chunk;
//! a section too long for one chunk is split with some overlap, and every piece keeps its heading, so a
//! passage cut from the middle still says what it is about. Sentences are found as everywhere else in the
//! server (`crate::text`), so "e.g. this" or "3.5 GB" is not cut.

use crate::text::sentence_spans;

/// all-MiniLM-L6-v2 reads at most 256 tokens; English prose runs about 4-5 characters per token.
pub const MAX_CHUNK_CHARS: usize = 900;
/// Text repeated from the end of one chunk at the start of the next, so a fact cut at the seam survives whole.
pub const OVERLAP_CHARS: usize = 150;

/// The chunks of `text`, in order. Empty for text with nothing but white space.
pub fn chunk(text: &str) -> Vec<String> {
    let mut chunks = Vec::new();
    let mut current = String::new();
    for section in sections(text) {
        let body_pieces: Vec<String> = paragraphs(&section.body).into_iter().flat_map(|p| split_long(&p, MAX_CHUNK_CHARS)).collect();
        let whole = join_section(section.heading.as_deref(), &body_pieces);
        if whole.is_empty() {
            continue;
        }
        // Short sections travel together.
        if fits(&current, &whole) {
            append(&mut current, &whole);
            continue;
        }
        flush(&mut chunks, &mut current);
        if whole.chars().count() <= MAX_CHUNK_CHARS {
            current = whole;
            continue;
        }
        // A long section: pack its paragraphs, each new chunk opening with the heading and an overlap.
        let heading = section.heading.unwrap_or_default();
        current = heading.clone();
        for piece in body_pieces {
            if !fits(&current, &piece) && current.chars().count() > heading.chars().count() {
                let overlap = tail(&current[heading.len()..], OVERLAP_CHARS);
                flush(&mut chunks, &mut current);
                current = heading.clone();
                if fits(&current, &overlap) && fits(&format!("{current}\n\n{overlap}"), &piece) {
                    append(&mut current, &format!("…{overlap}"));
                }
            }
            append(&mut current, &piece);
        }
    }
    flush(&mut chunks, &mut current);
    chunks
}

struct Section {
    heading: Option<String>,
    body: String,
}

/// Cuts at Markdown heading lines, ignoring `#` lines inside fenced code blocks.
fn sections(text: &str) -> Vec<Section> {
    let mut sections = vec![Section { heading: None, body: String::new() }];
    let mut in_code = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            in_code = !in_code;
        }
        if !in_code && is_heading(trimmed) {
            sections.push(Section { heading: Some(trimmed.trim_end().to_owned()), body: String::new() });
            continue;
        }
        if let Some(section) = sections.last_mut() {
            section.body.push_str(line);
            section.body.push('\n');
        }
    }
    sections
}

fn is_heading(line: &str) -> bool {
    let hashes = line.chars().take_while(|c| *c == '#').count();
    (1..=6).contains(&hashes) && line[hashes..].starts_with(' ')
}

/// Blank-line separated blocks, trimmed, without empty ones.
fn paragraphs(body: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut block = String::new();
    for line in body.lines() {
        if line.trim().is_empty() {
            if !block.trim().is_empty() {
                blocks.push(block.trim().to_owned());
            }
            block.clear();
        } else {
            if !block.is_empty() {
                block.push('\n');
            }
            block.push_str(line.trim_end());
        }
    }
    if !block.trim().is_empty() {
        blocks.push(block.trim().to_owned());
    }
    blocks
}

/// A paragraph longer than `max` characters, cut after sentences, or between words when a sentence is
/// itself too long (or, for text without spaces, anywhere). Sentences on lines of their own stay so.
fn split_long(paragraph: &str, max: usize) -> Vec<String> {
    if paragraph.chars().count() <= max {
        return vec![paragraph.to_owned()];
    }
    let mut pieces = Vec::new();
    let mut current = String::new();
    let mut line_break_before = false;
    for span in sentence_spans(paragraph) {
        let sentence = span.trim();
        if !sentence.is_empty() {
            let units = if sentence.chars().count() > max { words(sentence, max) } else { vec![sentence.to_owned()] };
            for (index, unit) in units.iter().enumerate() {
                if !current.is_empty() && current.chars().count() + 1 + unit.chars().count() > max {
                    pieces.push(std::mem::take(&mut current));
                }
                if !current.is_empty() {
                    current.push(if index == 0 && line_break_before { '\n' } else { ' ' });
                }
                current.push_str(unit);
            }
            line_break_before = false;
        }
        line_break_before |= span[span.trim_end().len()..].contains('\n');
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

fn words(text: &str, max: usize) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut current = String::new();
    for word in text.split_whitespace() {
        let mut word = word.to_owned();
        // A "word" longer than a chunk (a hash, a URL, text without spaces) is cut where it must be.
        while word.chars().count() > max {
            let cut: String = word.chars().take(max).collect();
            word = word.chars().skip(max).collect();
            if !current.is_empty() {
                pieces.push(std::mem::take(&mut current));
            }
            pieces.push(cut);
        }
        if !current.is_empty() && current.chars().count() + 1 + word.chars().count() > max {
            pieces.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(&word);
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

fn join_section(heading: Option<&str>, pieces: &[String]) -> String {
    let mut text = heading.unwrap_or_default().to_owned();
    for piece in pieces {
        append(&mut text, piece);
    }
    text
}

fn fits(current: &str, addition: &str) -> bool {
    current.chars().count() + 2 + addition.chars().count() <= MAX_CHUNK_CHARS
}

fn append(current: &mut String, addition: &str) {
    if !current.is_empty() {
        current.push_str("\n\n");
    }
    current.push_str(addition);
}

fn flush(chunks: &mut Vec<String>, current: &mut String) {
    let text = std::mem::take(current);
    if !text.trim().is_empty() {
        chunks.push(text.trim().to_owned());
    }
}

/// The last `max` characters of `text`, starting at a word.
fn tail(text: &str, max: usize) -> String {
    let count = text.chars().count();
    if count <= max {
        return text.trim().to_owned();
    }
    let start: String = text.chars().skip(count - max).collect();
    match start.split_once(char::is_whitespace) {
        Some((_, rest)) => rest.trim().to_owned(),
        None => start.trim().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paragraph(words: usize, tag: &str) -> String {
        (0..words).map(|i| format!("{tag}{i}")).collect::<Vec<_>>().join(" ") + "."
    }

    #[test]
    fn short_notes_stay_whole_and_blank_text_has_no_chunks() {
        let note = "# Title\n\nFirst paragraph.\n\n## Part\n\nSecond paragraph.";
        assert_eq!(chunk(note), vec!["# Title\n\nFirst paragraph.\n\n## Part\n\nSecond paragraph.".to_owned()]);
        assert!(chunk("  \n\n\t").is_empty());
    }

    #[test]
    fn long_sections_split_on_paragraphs_with_overlap_and_their_heading() {
        let text = format!("## Install\n\n{}\n\n{}\n\n{}", paragraph(150, "a"), paragraph(150, "b"), paragraph(150, "c"));
        let chunks = chunk(&text);
        assert!(chunks.len() >= 2, "{chunks:?}");
        for piece in &chunks {
            assert!(piece.chars().count() <= MAX_CHUNK_CHARS, "{} chars", piece.chars().count());
            assert!(piece.starts_with("## Install"), "every chunk keeps its heading: {piece}");
        }
        // The second chunk repeats the end of the first.
        let end_of_first: String = chunks[0].split_whitespace().last().unwrap().to_owned();
        assert!(chunks[1].contains(&end_of_first), "no overlap between {:?} and {:?}", chunks[0], chunks[1]);
        // Nothing is lost.
        for word in ["a0", "a149.", "b0", "b149.", "c0", "c149."] {
            assert!(chunks.iter().any(|c| c.split_whitespace().any(|w| w == word)), "{word} lost");
        }
    }

    #[test]
    fn walls_of_text_and_code_fences_are_handled() {
        let wall = "x".repeat(5 * MAX_CHUNK_CHARS);
        let chunks = chunk(&wall);
        assert_eq!(chunks.iter().map(|c| c.chars().count()).sum::<usize>(), wall.len());
        assert!(chunks.iter().all(|c| c.chars().count() <= MAX_CHUNK_CHARS));

        let fenced = "# Script\n\n```sh\n# not a heading\necho hi\n```";
        assert_eq!(chunk(fenced).len(), 1);
        assert!(chunk(fenced)[0].contains("# not a heading"));
    }

    #[test]
    fn long_paragraphs_are_cut_after_sentences_not_abbreviations_and_keep_their_lines() {
        let sentence = "Parlance keeps notes, e.g. a recipe, on this machine and reads them back when asked about them. ";
        let wall = sentence.repeat(12);
        let chunks = chunk(wall.trim());
        assert!(chunks.len() >= 2, "{chunks:?}");
        for piece in &chunks {
            assert!(piece.chars().count() <= MAX_CHUNK_CHARS, "{} chars", piece.chars().count());
            assert!(piece.starts_with("Parlance keeps") || piece.starts_with('…'), "cut inside a sentence: {piece}");
            assert!(piece.ends_with("about them."), "cut inside a sentence: {piece}");
        }

        let list = (0..40).map(|i| format!("- item {i} of a long list without full stops")).collect::<Vec<_>>().join("\n");
        let chunks = chunk(&list);
        assert!(chunks.len() >= 2, "{chunks:?}");
        for line in list.lines() {
            assert!(chunks.iter().any(|c| c.lines().any(|l| l == line)), "{line:?} lost or merged");
        }
    }

    #[test]
    fn sections_that_do_not_fit_together_start_new_chunks() {
        let text = format!("# One\n\n{}\n\n# Two\n\n{}", paragraph(150, "o"), paragraph(150, "t"));
        let chunks = chunk(&text);
        assert_eq!(chunks.len(), 2, "{chunks:?}");
        assert!(chunks[0].starts_with("# One") && chunks[1].starts_with("# Two"));
    }
}
