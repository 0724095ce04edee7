//! A small XML writer: elements of fixed names around escaped text.
//!
//! Written by hand rather than taken from `quick-xml`: eic only writes a
//! handful of fixed shapes and never reads XML, so the one thing it needs is
//! text escaping, about twenty lines; `quick-xml` is a whole streaming
//! reader and writer, not otherwise in the tree, for that.
//!
//! Text is escaped for element content and attributes alike (`&`, `<`, `>`,
//! `"`, `'`); a carriage return becomes `&#13;` so parsers do not fold it
//! into a newline. Characters XML 1.0 cannot carry at all, even as
//! references (the C0 controls other than tab, newline and carriage return,
//! lone surrogates cannot occur in `str`, and U+FFFE/U+FFFF), become U+FFFD:
//! a tag value holding one would otherwise make the whole response
//! unparseable for every client.

pub(crate) const PROLOG: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";

pub(crate) struct Xml {
    out: String,
}

impl Xml {
    pub(crate) fn with_capacity(n: usize) -> Xml {
        Xml {
            out: String::with_capacity(n),
        }
    }

    /// Markup the caller wrote: never client text.
    pub(crate) fn raw(&mut self, markup: &str) {
        self.out.push_str(markup);
    }

    pub(crate) fn open(&mut self, name: &str) {
        self.out.push('<');
        self.out.push_str(name);
        self.out.push('>');
    }

    pub(crate) fn close(&mut self, name: &str) {
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
    }

    /// `<name>escaped text</name>`.
    pub(crate) fn text_element(&mut self, name: &str, text: &str) {
        self.open(name);
        escape_into(&mut self.out, text);
        self.close(name);
    }

    /// `<name><item>…</item>…</name>`, or `<name/>` without items (the
    /// element is there either way, so a client tells "none" from "not
    /// sent").
    pub(crate) fn item_set(&mut self, name: &str, items: &[String]) {
        if items.is_empty() {
            self.out.push('<');
            self.out.push_str(name);
            self.out.push_str("/>");
            return;
        }
        self.open(name);
        for item in items {
            self.text_element("item", item);
        }
        self.close(name);
    }

    pub(crate) fn finish(self) -> String {
        self.out
    }
}

pub(crate) fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#13;"),
            '\t' | '\n' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

/// Escapes text for XML (and so HTML) element content and quoted
/// attributes; characters XML cannot carry become U+FFFD.
pub fn escape(text: &str) -> String {
    let mut s = String::new();
    escape_into(&mut s, text);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_keeps_the_rest() {
        assert_eq!(escape("a&b<c>d\"e'f"), "a&amp;b&lt;c&gt;d&quot;e&apos;f");
        assert_eq!(escape("tab\there\nnl"), "tab\there\nnl");
        assert_eq!(escape("cr\r"), "cr&#13;");
        assert_eq!(escape("héllo ✓"), "héllo ✓");
        assert_eq!(escape("]]>"), "]]&gt;");
    }

    #[test]
    fn characters_xml_cannot_carry_become_replacement() {
        assert_eq!(
            escape("a\u{0}b\u{1b}c\u{FFFF}"),
            "a\u{FFFD}b\u{FFFD}c\u{FFFD}"
        );
    }
}
