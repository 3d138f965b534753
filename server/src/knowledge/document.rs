//! An uploaded or ingested file as a note: only Markdown and plain text, checked from the bytes.

use parlance_shared::NewNote;

use super::seed::note_from_markdown;

pub const DOCUMENT_EXTENSIONS: [&str; 3] = ["md", "markdown", "txt"];

#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("{name} is not a Markdown or text file: send a .md or .txt file")]
    WrongExtension { name: String },
    #[error("{name} is {kind}, not text: send a .md or .txt file")]
    Binary { name: String, kind: String },
    #[error("{name} is not UTF-8 text: save it as UTF-8 and send it again")]
    NotUtf8 { name: String },
    #[error("{name} is empty")]
    Empty { name: String },
}

pub fn has_document_extension(name: &str) -> bool {
    std::path::Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|ext| DOCUMENT_EXTENSIONS.iter().any(|known| ext.eq_ignore_ascii_case(known)))
}

/// Reads a document; `name` is its file name, which also titles a document without a `# ` heading.
pub fn read(name: &str, bytes: &[u8], source: Option<String>) -> Result<NewNote, DocumentError> {
    // The content decides: a PDF renamed to .txt is still refused.
    if let Some(kind) = infer::get(bytes) {
        return Err(DocumentError::Binary { name: name.to_owned(), kind: format!("{} ({})", kind.mime_type(), kind.extension()) });
    }
    let text = std::str::from_utf8(bytes).map_err(|_| DocumentError::NotUtf8 { name: name.to_owned() })?;
    if text.contains('\0') {
        return Err(DocumentError::Binary { name: name.to_owned(), kind: "binary data".into() });
    }
    if !has_document_extension(name) {
        return Err(DocumentError::WrongExtension { name: name.to_owned() });
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim().is_empty() {
        return Err(DocumentError::Empty { name: name.to_owned() });
    }
    Ok(note_from_markdown(text, name, source))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_read_and_everything_else_refused_by_content() {
        let note = read("bike.md", b"# My bike\n\nA Trek.", None).unwrap();
        assert_eq!((note.title.as_str(), note.text.as_str()), ("My bike", "A Trek."));
        assert!(matches!(read("photo.txt", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", None), Err(DocumentError::Binary { .. })));
        assert!(matches!(read("notes.txt", b"abc\0def", None), Err(DocumentError::Binary { .. })));
        assert!(matches!(read("latin1.txt", b"caf\xe9", None), Err(DocumentError::NotUtf8 { .. })));
        assert!(matches!(read("notes.docx", b"plain words", None), Err(DocumentError::WrongExtension { .. })));
        assert!(matches!(read("blank.md", b" \n", None), Err(DocumentError::Empty { .. })));
    }
}
