//! Making a small LLM's answer readable aloud: its markdown (`**bold**`, `# headings`, `` `code` ``, bullets,
//! links) and raw URLs are read out symbol by symbol by espeak-ng ("asterisk asterisk"), so they go first.
//! Line breaks stay: the sentence splitter uses them.

use reqwest::Url;

/// `text` without markdown markup, with URLs shortened to their host ("docs.rs").
pub fn speakable(text: &str) -> String {
    text.lines().map(speakable_line).collect::<Vec<_>>().join("\n")
}

fn speakable_line(line: &str) -> String {
    let line = line.trim();
    let line = line.trim_start_matches(['#', '>']).trim_start();
    // Bullets; "1." stays, it reads well and the splitter knows it.
    let line = ["- ", "* ", "+ ", "• "].iter().find_map(|bullet| line.strip_prefix(bullet)).unwrap_or(line);
    let without_links = markdown_links_to_text(line);
    let words: Vec<String> = without_links.split_whitespace().map(speakable_word).filter(|w| !w.is_empty()).collect();
    words.join(" ")
}

/// `[label](https://...)` reads as "label".
fn markdown_links_to_text(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(open) = rest.find('[') {
        let Some(close) = rest[open..].find("](").map(|i| open + i) else { break };
        let Some(end) = rest[close..].find(')').map(|i| close + i) else { break };
        out.push_str(&rest[..open]);
        out.push_str(&rest[open + 1..close]);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

fn speakable_word(word: &str) -> String {
    let bare = word.trim_matches(|c: char| matches!(c, '*' | '_' | '`' | '~' | '(' | ')' | '<' | '>' | '"' | '\''));
    if let Some(host) = url_host(bare) {
        let trailing: String = word.chars().rev().take_while(|c| matches!(c, '.' | ',' | ';' | ':' | '!' | '?')).collect();
        return format!("{host}{}", trailing.chars().rev().collect::<String>());
    }
    word.chars()
        .filter_map(|c| match c {
            '*' | '`' | '#' | '~' | '|' => None,
            // snake_case and __bold__ read as words.
            '_' => Some(' '),
            c => Some(c),
        })
        .collect::<String>()
        .trim()
        .to_owned()
}

fn url_host(word: &str) -> Option<String> {
    let word = word.trim_end_matches(['.', ',', ';', ':', '!', '?', ')']);
    let url = if word.starts_with("http://") || word.starts_with("https://") {
        Url::parse(word).ok()?
    } else if word.starts_with("www.") {
        Url::parse(&format!("https://{word}")).ok()?
    } else {
        return None;
    };
    let host = url.host_str()?;
    Some(host.strip_prefix("www.").unwrap_or(host).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_is_dropped() {
        let answer = "# Summary\n**Parlance** runs `cargo run` for you.\n- first point\n* second_point\n> quoted\n| a | b |";
        assert_eq!(speakable(answer), "Summary\nParlance runs cargo run for you.\nfirst point\nsecond point\nquoted\na b");
    }

    #[test]
    fn links_and_urls_read_as_names() {
        assert_eq!(
            speakable("See [the docs](https://docs.rs/ort) or https://www.example.com/a/b?c=d, then www.rust-lang.org."),
            "See the docs or example.com, then rust-lang.org."
        );
    }

    #[test]
    fn plain_text_is_unchanged() {
        let text = "Dr. Smith paid 3.5 dollars, e.g. cash. Is it 9 p.m.? Yes: it's late!";
        assert_eq!(speakable(text), text);
    }
}
